"""Confusion-matrix metrics: mIoU, pixel accuracy, per-class IoU."""
from __future__ import annotations

import numpy as np
import torch

from edgeseg.card import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a K x K confusion matrix over (prediction, label) pixels, ignoring 255."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor) -> None:
        prediction = np.asarray(prediction).reshape(-1).astype(np.int64)
        label = np.asarray(label).reshape(-1).astype(np.int64)
        valid = (label != IGNORE_INDEX) & (label >= 0) & (label < self.num_classes)
        index = label[valid] * self.num_classes + prediction[valid]
        self.matrix += np.bincount(index, minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both labels and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def summary(self, class_names: list[str]) -> dict:
        iou = self.iou()
        total = self.matrix.sum()
        return {
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
            "pixel_accuracy": float(np.diag(self.matrix).sum() / total) if total else 0.0,
            "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
            "pixels": int(total),
        }
