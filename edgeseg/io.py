"""File I/O shared by every stage: atomic writes, safe checkpoint loading, image reading."""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgeseg.errors import UserError

PARTIAL = ".partial"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; put it at `path` only if the block succeeds.

    Works for files and directories (e.g. an artifact folder or `.mlpackage`). A directory replaces the old one
    in one atomic exchange (`swap_in`), so `path` holds the whole old or the whole new at every moment: an
    interrupt, a failure or SIGKILL at any point leaves the old one byte-identical. On failure the temp is
    removed; after SIGKILL it stays as `.NAME.PID.*.partial` until `remove_partials` (its writer is dead).
    """
    path = Path(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {parent}: {exc.strerror}; pass a writable --out") from exc
    if not os.access(parent, os.W_OK):
        raise UserError(f"output folder {parent} is not writable; pass a writable --out")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=PARTIAL + suffix, dir=parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_dir() and path.is_dir():
            swap_in(tmp, path)  # the old directory is now at `tmp`, removed below
        else:
            os.replace(tmp, path)
    finally:
        _remove(tmp)


def swap_in(new: Path, old: Path) -> None:
    """Exchange two directories atomically (Linux renameat2 RENAME_EXCHANGE): `old`'s path then holds `new`'s
    tree and `new`'s path the old tree. Where the kernel or libc lacks it, two renames with the old tree kept
    as a `.partial` in between (a crash there leaves it beside the path, never deleted before the swap)."""
    if _exchange(new, old):
        return
    parked = old.with_name(f".{old.name}.{os.getpid()}.old{PARTIAL}")
    os.replace(old, parked)
    os.replace(new, old)
    os.replace(parked, new)


def _exchange(a: Path, b: Path) -> bool:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # e.g. EINVAL on a file system without exchange support: the fallback renames


def remove_partials(folder: str | os.PathLike) -> int:
    """Delete temp files left by a writer that was killed (SIGKILL, power loss); returns the count. A temp
    whose writer (the pid in its name) still runs is left alone: it may be another export's work in progress."""
    removed = 0
    for leftover in Path(folder).glob(f".*{PARTIAL}*") if Path(folder).is_dir() else []:
        if _writer_alive(leftover.name):
            continue
        _remove(leftover)
        removed += 1
    return removed


def _writer_alive(name: str) -> bool:
    for part in name.split("."):
        if part.isdigit() and int(part) > 0:
            if int(part) == os.getpid():
                return False
            try:
                os.kill(int(part), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)` then fsync and rename onto `path`."""
    with atomic_path(path, suffix=Path(path).suffix) as tmp:
        write(tmp)
        if tmp.is_file():
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write a text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write JSON (indented, keys in insertion order)."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically save a checkpoint made of tensors and plain Python values only."""
    import torch  # lazily: image and file helpers serve torch-free runtimes too

    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`: a pickle that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found; pass the last.pt/best.pt written by edgeseg.train")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not an edgeseg checkpoint (not a torch zip file)")
    try:
        import torch

        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"refused to load {path}: not a plain weights-only checkpoint ({first[:160]})") from exc
    if not isinstance(payload, dict) or "model" not in payload or "card" not in payload:
        raise UserError(f"{path} is not an edgeseg checkpoint (missing 'model'/'card' entries)")
    return payload


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read any image as uint8 RGB [H, W, 3]; grayscale, RGBA, palette and 16-bit are converted."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                peak = arr.max() if arr.max() > 0 else 1.0
                arr = (arr / peak * 255.0).round().astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError as exc:
        raise UserError(f"image {path} not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: corrupt, truncated or not an image ({exc})") from exc


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a label PNG as integer [H, W] (palette indices kept, never converted to RGB)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGB", "RGBA"):
                raise UserError(f"mask {path} is {img.mode}; masks must be single-channel class indices (mode L or P)")
            return np.asarray(img, dtype=np.int64).copy()
    except FileNotFoundError as exc:
        raise UserError(f"mask {path} not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"cannot read mask {path}: corrupt, truncated or not an image ({exc})") from exc


def write_png(path: str | os.PathLike, array: np.ndarray, palette: list[list[int]] | None = None) -> Path:
    """Atomically write an RGB image or (with `palette`) an indexed mask PNG."""
    img = Image.fromarray(array.astype(np.uint8))
    if palette is not None:
        img = img.convert("P") if img.mode != "P" else img
        img.putpalette([c for rgb in palette for c in rgb] + [0] * (768 - 3 * len(palette)))
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def list_images(source: str | os.PathLike) -> list[Path]:
    """An image file, or the sorted image files of a folder; a clear error when there are none."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"--source {source} does not exist")
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
    return files


def file_hash(path: str | os.PathLike, length: int = 12) -> str:
    """sha256 of a file's bytes (first `length` hex digits): which checkpoint made a figure or artifact."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]
