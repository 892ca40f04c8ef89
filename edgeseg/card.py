"""The model card: everything needed to rebuild a model and pre/post-process its inputs.

It is saved in every checkpoint, as `model_card.json` beside it, and inside every exported
artifact, so that training, evaluation, export verification and runtimes cannot drift apart.
"""
from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING, Any, Callable


from edgeseg.checks import fields, is_int
from edgeseg.errors import UserError

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch

CARD_FORMAT = "edgeseg-card/1"
IGNORE_INDEX = 255


def default_palette(num_classes: int) -> list[list[int]]:
    """Distinct colors: golden-ratio hues, alternating lightness."""
    colors = []
    for i in range(num_classes):
        hue = (i * 0.618033988749895) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.45 if i % 2 else 0.6, 0.85)
        colors.append([int(r * 255), int(g * 255), int(b * 255)])
    return colors


def vocabulary_palette(names: list[str], classes: list[str], palette: list[list[int]]) -> list[list[int]]:
    """Colours for a new vocabulary: a name the model was trained on keeps its colour, others get defaults."""
    known = dict(zip(classes, palette))
    return [known.get(name, color) for name, color in zip(names, default_palette(len(names)))]


def output_stride(head: str, head_config: dict[str, Any]) -> int:
    """Stride of a head's logits: the linear probe's 32, LR-ASPP's 8, the decoders' `out_stride` (default 4)."""
    return {"linear": 32, "lraspp": 8}.get(head, int(head_config.get("out_stride", 4)))


def pixel_dim(head_config: dict[str, Any]) -> int:
    """Channels of a head's pixel embeddings (its `pixels` output): the decoder width, else the head width."""
    return int(head_config.get("decoder_width") or head_config.get("dim", 128))


def make_card(*, classes: list[str], backbone: str, head: str, head_config: dict[str, Any], img_size: int,
              mean: list[float], std: list[float], text_encoder: str, text_dim: int,
              palette: list[list[int]] | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-able card (plain lists/str/numbers only, so checkpoints stay weights-only loadable)."""
    return {
        "format": CARD_FORMAT,
        "classes": list(classes),
        "palette": palette or default_palette(len(classes)),
        "backbone": backbone,
        "head": head,
        "head_config": dict(head_config),
        "img_size": int(img_size),
        "mean": [float(m) for m in mean],
        "std": [float(s) for s in std],
        "text_encoder": text_encoder,
        "text_dim": int(text_dim),
        "ignore_index": IGNORE_INDEX,
        "output_stride": output_stride(head, head_config),
        **extra,
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _names(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(n, str) and n.strip() for n in v)


def _colours(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(c, list) and len(c) == 3 and all(is_int(x) and 0 <= x <= 255
                                                                                   for x in c) for c in v)


def _three(positive: bool) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and len(v) == 3 and all(_is_number(x) and (x > 0 or not positive) for x in v)


# Each field a runtime or a rebuild reads: (check, what it must be). Required unless listed in OPTIONAL.
FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "classes": (_names, "a non-empty list of class-name strings"),
    "palette": (_colours, "a list of [r, g, b] colours (0..255)"),
    "backbone": (lambda v: isinstance(v, str) and bool(v), "a backbone name"),
    "head": (lambda v: isinstance(v, str) and bool(v), "a head name"),
    "head_config": (lambda v: isinstance(v, dict), "a mapping"),
    "img_size": (lambda v: is_int(v) and 0 < v <= 8192, "a positive integer"),
    "mean": (_three(False), "3 numbers"),
    "std": (_three(True), "3 positive numbers"),
    "text_encoder": (lambda v: isinstance(v, str) and bool(v), "a text encoder id"),
    "text_dim": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "output_stride": (lambda v: is_int(v) and v > 0, "a positive integer"),
    # set by deploy.export on an artifact's card
    "open_vocab": (lambda v: isinstance(v, bool), "true or false"),
    "max_classes": (lambda v: v is None or (is_int(v) and v > 0), "a positive integer"),
    "output": (lambda v: v in ("logits", "probs", "mask"), "logits, probs or mask"),
    "input": (lambda v: v in ("float", "uint8", "unit"), "float, uint8 or unit"),
    "layout": (lambda v: v in ("nchw", "nhwc"), "nchw or nhwc"),
}
OPTIONAL = ("palette", "head_config", "text_encoder", "output_stride", "open_vocab", "max_classes", "output", "input",
            "layout")


def check_card(card: Any, source: str) -> dict[str, Any]:
    """Validate a card read from a file: one UserError naming the file and the first field that is missing or
    of the wrong kind, so a damaged or foreign card never surfaces as a KeyError or TypeError later."""
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise UserError(f"{source} has no valid edgeseg model card (format {found!r}; expected {CARD_FORMAT!r})")
    fields(card, FIELDS, source, "model card", OPTIONAL)
    if "palette" in card and len(card["palette"]) < len(card["classes"]):
        raise UserError(f"{source}: model card field 'palette' has {len(card['palette'])} colours for "
                        f"{len(card['classes'])} classes")
    if card.get("open_vocab") and card.get("max_classes") is not None and card["max_classes"] < len(card["classes"]):
        raise UserError(f"{source}: model card field 'max_classes' ({card['max_classes']}) is below its "
                        f"{len(card['classes'])} classes")
    return card


def json_preview(value: Any, limit: int = 40) -> str:
    """A short form of a JSON value for an error message."""
    import json

    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_card_file(path: Any) -> dict[str, Any]:
    """A card.json (or any card-carrying JSON file): read, parsed and checked, each failure one UserError."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise UserError(f"{path} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} cannot be read ({exc})") from exc
    try:
        card = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from exc
    return check_card(card, str(path))


def build_model(card: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """Rebuild the segmenter a card describes (and load its weights, strictly)."""
    import torch

    from edgeseg.models import Segmenter

    text = torch.zeros(len(card["classes"]), int(card["text_dim"]))
    model = Segmenter(card["backbone"], card["head"], text, card.get("head_config"))
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            raise UserError(f"checkpoint weights do not fit its card ({card['backbone']}/{card['head']}, "
                            f"{len(card['classes'])} classes): {str(exc).splitlines()[0]}") from exc
    return model.eval()


def load_model(path: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a checkpoint (weights_only) and return (model in eval mode, card)."""
    from edgeseg.io import load_checkpoint

    payload = load_checkpoint(path)
    card = check_card(payload["card"], path)
    return build_model(card, payload["model"]), card
