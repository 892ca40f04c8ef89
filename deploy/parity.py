"""Artifact-vs-torch agreement: argmax pixel agreement, mIoU of artifact labels vs torch labels,
logit differences. Thresholds per precision decide whether an export passes."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from edgeseg.metrics import ConfusionMatrix
from edgeseg.registry import Registry

# the export precisions and their pixel-agreement thresholds: the one list of precisions
THRESHOLDS: Registry[float] = Registry("precision", {"fp32": 0.999, "fp16": 0.995, "int8": 0.97})
PRECISIONS = THRESHOLDS


def compare(reference: Callable[..., np.ndarray], candidate: Callable[..., np.ndarray],
            samples: list[tuple[np.ndarray, ...]], num_classes: int, precision: str) -> dict:
    """Run both on every sample; summarise how closely the candidate's logits and labels follow."""
    confusion = ConfusionMatrix(num_classes)
    agree = total = 0
    masks = False
    max_diff = 0.0
    abs_diffs = []
    for sample in samples:
        ref, out = np.asarray(reference(*sample)), np.asarray(candidate(*sample))
        if ref.shape != out.shape:
            raise ValueError(f"artifact output shape {out.shape} differs from torch's {ref.shape}")
        if np.issubdtype(ref.dtype, np.integer):  # class-index masks (--output mask): compared as they are
            ref_labels, out_labels = ref.astype(np.int64), out.astype(np.int64)
            masks = True
            agree += int((ref_labels == out_labels).sum())
            total += ref_labels.size
            confusion.update(out_labels, ref_labels)
            continue
        ref, out = ref.astype(np.float32), out.astype(np.float32)
        if len(sample) == 3:  # open vocabulary (image, text [K_max, D], valid [K_max]): the used slots, as apps read
            used = int(sample[2].sum())
            ref, out = ref[:, :used], out[:, :used]
        ref_labels, out_labels = ref.argmax(1), out.argmax(1)
        agree += int((ref_labels == out_labels).sum())
        total += ref_labels.size
        confusion.update(out_labels, ref_labels)
        diff = np.abs(ref - out)
        max_diff = max(max_diff, float(diff.max()))
        abs_diffs.append(float(diff.mean()))
    agreement = agree / max(total, 1)
    threshold = THRESHOLDS[precision]
    return {
        "precision": precision,
        "images": len(samples),
        "compared": "masks" if masks else "scores",
        "pixel_agreement": agreement,
        "miou_vs_torch": confusion.summary([str(i) for i in range(num_classes)])["mIoU"],
        "max_abs_logit_diff": max_diff,
        "mean_abs_logit_diff": float(np.mean(abs_diffs)) if abs_diffs else 0.0,
        "threshold": threshold,
        "passed": agreement >= threshold,
    }


def torch_reference(graph: torch.nn.Module) -> Callable[..., np.ndarray]:
    """The export graph in torch (fp32), as a numpy function."""
    from deploy.quantize import as_numpy

    return as_numpy(graph)
