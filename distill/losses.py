"""Distillation losses: feature cosine on projected student features, KL on pixel-class score maps."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def feature_cosine_loss(student: torch.Tensor, teacher: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """mean(1 - cos) per pixel between student [B, D, h, w] and teacher [B, D, h', w'] (resized to h, w).

    `valid` [B, 1, h, w] (0/1) masks pixels the teacher has no value for (padding of cached maps)."""
    teacher = _resize(teacher.float(), student.shape[-2:])
    loss = 1.0 - F.cosine_similarity(student.float(), teacher, dim=1, eps=1e-6)
    if valid is None:
        return loss.mean()
    valid = valid[:, 0].float()
    return (loss * valid).sum() / valid.sum().clamp(min=1.0)


def score_kl_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0,
                  valid: torch.Tensor | None = None) -> torch.Tensor:
    """tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)) per pixel, averaged; [B, K, h, w] maps."""
    teacher = _resize(teacher.float(), student.shape[-2:])
    log_p_student = F.log_softmax(student.float() / tau, dim=1)
    log_p_teacher = F.log_softmax(teacher / tau, dim=1)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=1) * tau * tau
    if valid is None:
        return kl.mean()
    valid = valid[:, 0].float()
    return (kl * valid).sum() / valid.sum().clamp(min=1.0)
