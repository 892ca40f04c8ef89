"""Training losses.

- decoder CE + auxiliary pixel-text CE on every score map (DenseCLIP, weight 0.4);
- ICPC align-guided pixel-text contrastive loss (`--contrastive-weight`);
- MVP-SEG orthogonal constraint between a class's prompt views (`--ortho-weight`) and the
  presence-gate classification loss of global prompt refining (`--presence-weight`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgeseg.card import IGNORE_INDEX
from edgeseg.models.layers import l2_normalize
from edgeseg.models.prompting import orthogonal_loss


@dataclass(frozen=True)
class LossWeights:
    """Weights of the optional loss terms (0 = off)."""

    aux: float = 0.4
    contrastive: float = 0.0
    ortho: float = 0.0
    presence: float = 0.0
    temperature: float = 0.07


def upsampled_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits bilinearly upsampled to the label size (255 ignored)."""
    logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour labels at a feature map's size."""
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def align_guided_contrastive(pixels: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor,
                             temperature: float = 0.07) -> torch.Tensor:
    """ICPC's align-guided pixel-text contrastive loss.

    pixels [B, D, h, w], tokens [B, K, D] (or [K, D]), labels [B, H, W]. For each labelled pixel an InfoNCE
    over the K class embeddings (positive: its class, negatives: the others), weighted by how badly the
    pixel is aligned now, w = 1 - p(true class) (no gradient), so well-aligned pixels stop pulling.
    """
    labels = downsample_labels(labels, pixels.shape[-2:])
    if tokens.dim() == 2:
        tokens = tokens.unsqueeze(0).expand(pixels.shape[0], -1, -1)
    cosine = torch.matmul(l2_normalize(tokens.float(), -1), l2_normalize(pixels.float(), 1).flatten(2))  # [B, K, hw]
    logits = (cosine / temperature).transpose(1, 2).reshape(-1, tokens.shape[1])
    target = labels.reshape(-1)
    valid = target != IGNORE_INDEX
    if not bool(valid.any()):
        return logits.sum() * 0.0
    logits, target = logits[valid], target[valid]
    nll = F.cross_entropy(logits, target, reduction="none")
    weight = 1.0 - torch.softmax(logits.detach(), dim=-1).gather(1, target[:, None])[:, 0]
    return (weight * nll).sum() / weight.sum().clamp(min=1e-6)


def presence_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[B, K] 1.0 where the class occurs in the image's labels."""
    valid = torch.where(labels == IGNORE_INDEX, torch.full_like(labels, num_classes), labels)
    onehot = F.one_hot(valid.flatten(1), num_classes + 1).amax(dim=1)
    return onehot[:, :num_classes].float()


def segmentation_loss(outputs: dict, labels: torch.Tensor,
                      weights: LossWeights = LossWeights()) -> tuple[torch.Tensor, dict]:
    """Total loss and its named parts (floats, for logging)."""
    parts = {"ce": upsampled_ce(outputs["logits"], labels)}
    for i, score_map in enumerate(outputs.get("aux", [])):
        parts[f"aux{i}"] = weights.aux * upsampled_ce(score_map, labels)
    if weights.contrastive:
        parts["contrastive"] = weights.contrastive * align_guided_contrastive(
            outputs["pixels"], outputs["tokens"], labels, weights.temperature)
    if weights.ortho and "views" in outputs:
        parts["ortho"] = weights.ortho * orthogonal_loss(outputs["views"])
    if weights.presence and "presence" in outputs:
        target = presence_targets(labels, outputs["presence"].shape[1])
        parts["presence"] = weights.presence * F.binary_cross_entropy_with_logits(outputs["presence"].float(), target)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}
