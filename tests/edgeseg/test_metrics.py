"""Confusion-matrix metrics against hand-computed values."""
import numpy as np

from edgeseg.metrics import ConfusionMatrix


def test_miou_and_pixel_accuracy():
    cm = ConfusionMatrix(3)
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]])
    cm.update(pred, label)
    summary = cm.summary(["a", "b", "c"])
    # class a: tp 1, fp 1, fn 1 -> 1/3; b: tp 2, fp 1 -> 2/3; c: tp 1, fn 1 -> 1/2
    np.testing.assert_allclose(list(summary["per_class_iou"].values()), [1 / 3, 2 / 3, 1 / 2])
    assert abs(summary["mIoU"] - (1 / 3 + 2 / 3 + 1 / 2) / 3) < 1e-9
    assert summary["pixel_accuracy"] == 4 / 6 and summary["pixels"] == 6


def test_absent_class_is_not_counted():
    cm = ConfusionMatrix(3)
    cm.update(np.zeros(4), np.zeros(4))
    assert cm.summary(["a", "b", "c"])["per_class_iou"]["b"] is None
    assert cm.summary(["a", "b", "c"])["mIoU"] == 1.0
