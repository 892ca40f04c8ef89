"""The Hugging Face hub, reached only when it answers: cached files first, a bounded reachability check, and
the offline switches held for one local load. Every weights download (timm backbones, open_clip towers) goes
through here, so no default path waits on network retries offline (huggingface_hub reads HF_HUB_OFFLINE once,
at import, and otherwise retries each request for tens of seconds)."""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Sequence


def offline_requested() -> bool:
    """EDGESEG_OFFLINE=1 (the tests set it): never try the network."""
    return os.environ.get("EDGESEG_OFFLINE") == "1"


def reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """A bounded check that the weights hub answers."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def may_download() -> bool:
    return not offline_requested() and reachable()


def cached_file(repo_id: str, filenames: Sequence[str]) -> str | None:
    """The first of `filenames` from `repo_id` in the local Hugging Face cache, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE for the duration of a local model load only, so loading a text
    encoder never stops a later `--pretrained auto` in the same process from reaching the hub."""
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({name: "1" for name in saved})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
