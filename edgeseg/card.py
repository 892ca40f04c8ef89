"""The model card: everything needed to rebuild a model and pre/post-process its inputs.

It is saved in every checkpoint, as `model_card.json` beside it, and inside every exported
artifact, so that training, evaluation, export verification and runtimes cannot drift apart.
"""
from __future__ import annotations

import colorsys
from typing import TYPE_CHECKING, Any


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


def check_card(card: Any, source: str) -> dict[str, Any]:
    """Validate a card read from a file; a clear error if it is not ours."""
    needed = ("classes", "backbone", "head", "img_size", "mean", "std", "text_dim")
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or any(k not in card for k in needed):
        raise UserError(f"{source} has no valid edgeseg model card")
    return card


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
