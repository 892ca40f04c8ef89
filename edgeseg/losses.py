"""Training losses: decoder CE + auxiliary pixel-text CE on the score maps (DenseCLIP, weight 0.4)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeseg.card import IGNORE_INDEX


def upsampled_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits bilinearly upsampled to the label size (255 ignored)."""
    logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX)


def segmentation_loss(outputs: dict, labels: torch.Tensor, aux_weight: float = 0.4) -> tuple[torch.Tensor, dict]:
    """Total loss and its named parts (floats, for logging)."""
    parts = {"ce": upsampled_ce(outputs["logits"], labels)}
    for i, score_map in enumerate(outputs.get("aux", [])):
        parts[f"aux{i}"] = aux_weight * upsampled_ce(score_map, labels)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}
