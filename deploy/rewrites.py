"""Exact rewrites of an export graph: the artifact computes what the trained model computes, in a form that is
cheaper on a runtime. Each one is checked at export by the same parity gate as every artifact (against the
unrewritten torch graph), and by a test; each is applied per target only where benchmarks.rewrites measured it
lower that target's latency (docs/rewrites.md).

Registry `REWRITES`: name -> Rewrite (which graphs it applies to, how it builds the rewritten graph, the
targets it is on by default). `deploy.export --rewrites auto|none|a,b` picks them; the artifact's card records
the ones applied (`rewrites`). Export side only (torch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from deploy.outputs import PostProcess
from edgeseg.registry import Registry
from edgeseg.models import OpenVocabSegmenter, Segmenter
from edgeseg.models.heads import FusionHead
from edgeseg.models.layers import l2_normalize, mask_class_maps


def _segmenter(graph: nn.Module) -> Segmenter | None:
    inner = graph.model if isinstance(graph, OpenVocabSegmenter) else graph
    return inner if isinstance(inner, Segmenter) else None


class FoldedMaskScore(nn.Module):
    """Image (+ text [K_max, D], valid [K_max]) -> class mask [1, S, S], for the fusion head.

    The trained graph scores pixels by cosine: scale * <t_k/|t_k|, (W m + b)/|W m + b|>, where m is the
    decoder's stride-4 map and W, b the 1x1 pixel embedding. Per pixel, scale/|W m + b| is one positive factor
    for every class, so the argmax over classes equals that of t̂_k·(W m + b) = (t̂_k W) m + t̂_k b: the D x D
    pixel embedding and both normalisations fold into one K x D matmul, its weights made from the
    (image-conditioned) tokens once per image. Exact at the logits' stride; the bilinear upsample before the
    argmax mixes neighbouring pixels whose factors differ, so a boundary pixel can flip: the parity gate
    measures it like any rounding."""

    def __init__(self, model: Segmenter, size: int, dtype: str) -> None:
        super().__init__()
        self.model = model
        self.score = FoldedScore()
        self.post = PostProcess("mask", size, dtype)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.post(self.scores(image, text, valid))

    def scores(self, image: torch.Tensor, text: torch.Tensor | None = None,
               valid: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, h, w] at the logits' stride: the trained logits times a positive factor per pixel."""
        head = self.model.head
        features = self.model.backbone(image)
        x, tokens = head.fused(features, self.model.text_embeddings if text is None else text, valid)
        pixels = head.decode(features, x)[-1]
        scores = self.score(tokens, pixels, head.pixel_embed.weight, head.pixel_embed.bias)
        return mask_class_maps(scores, valid)


class FoldedScore(nn.Module):
    """The folded score (t̂_k W) m + t̂_k b: [B, K, D] tokens, [B, D, h, w] decoder map -> [B, K, h, w]. Its own
    module so that int8 finds it in the `score` role (deploy.roles), like the cosine score it replaces."""

    def forward(self, tokens: torch.Tensor, pixels: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        unit = l2_normalize(tokens, dim=-1)  # [B, K, D]
        folded_weight = torch.matmul(unit, weight.flatten(1))  # [B, K, D]
        folded_bias = torch.matmul(unit, bias.unsqueeze(-1))  # [B, K, 1]
        batch, channels, height, width = pixels.shape
        if batch == 1:  # the export's static batch: plain 2-D matmuls, no batch dimension in the graph
            scores = (torch.matmul(folded_weight[0], pixels.reshape(channels, height * width))
                      + folded_bias[0]).unsqueeze(0)
        else:
            scores = torch.matmul(folded_weight, pixels.reshape(batch, channels, height * width)) + folded_bias
        return scores.reshape(batch, -1, height, width)


# int8: the fold measured at int8 (the keep-float roles apply to the folded score as to the cosine it replaces)
INT8_FOLD_TARGETS: tuple[str, ...] = ("onnx", "tflite")


def _folds(graph: nn.Module, card: dict) -> bool:
    model = _segmenter(graph)
    return (model is not None and card.get("output") == "mask" and isinstance(model.head, FusionHead)
            and model.head.multiview is None and model.head.refine is None and model.matchers is None)


@dataclass(frozen=True)
class Rewrite:
    applies: Callable[[nn.Module, dict], bool]  # (export graph before the output step, card)
    build: Callable[[nn.Module, dict], nn.Module]  # -> the whole graph, output step included
    on: dict[str, tuple[str, ...]]  # precision -> the targets where it is on by default (measured: docs/rewrites*.md)
    about: str


REWRITES: Registry[Rewrite] = Registry("rewrite", {
    "fold-mask-score": Rewrite(
        _folds, lambda graph, card: FoldedMaskScore(_segmenter(graph), card["img_size"], card["mask_dtype"]).eval(),
        # on where benchmarks.rewrites measured it faster at 128² or 512² and slower at neither (docs/rewrites.md,
        # docs/rewrites-int8.md); Core ML: not measurable on Linux, so off until a Mac measures it
        {"fp32": ("onnx", "openvino", "tflite"), "fp16": ("onnx", "openvino", "tflite"), "int8": INT8_FOLD_TARGETS},
        "class-mask graphs of the fusion head: pixel embedding + cosine folded into one K x D matmul per image"),
}, extra=("auto", "none"))


def choose(value: str | None) -> list[str] | None:
    """`--rewrites`: None / "auto" (each rewrite on its measured targets), "none", or a comma list."""
    if value in (None, "auto"):
        return None
    if value == "none":
        return []
    return REWRITES.choose(value)


def requested(card: dict, target: str, precision: str) -> list[str]:
    """The rewrites an export of this card asks for on `target` x `precision` (before checking the graph).
    `card["rewrites"]`: None = each rewrite where it is on by default (its measured targets x precisions);
    a list = exactly those."""
    asked = card.get("rewrites")
    if asked is None:
        return [n for n, r in REWRITES.items() if target in r.on.get(precision, ())]
    return list(asked)  # asked for by name: at any precision (the parity gate still decides)


def apply(graph: nn.Module, card: dict, target: str, precision: str) -> tuple[nn.Module | None, list[str]]:
    """The rewritten graph (None where no rewrite applies) and the names applied."""
    for name in requested(card, target, precision):
        if REWRITES[name].applies(graph, card):
            return REWRITES[name].build(graph, card), [name]
    return None, []
