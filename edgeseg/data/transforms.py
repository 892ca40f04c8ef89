"""Training augmentation (random scale, crop, flip, photometric) on uint8 images + int masks."""
from __future__ import annotations

import numpy as np
from PIL import Image

from edgeseg.card import IGNORE_INDEX


def _resize(image: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))
    lbl = np.asarray(Image.fromarray(mask.astype(np.int32)).resize((width, height), Image.NEAREST)).astype(np.int64)
    return img, lbl


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter (mmseg's PhotoMetricDistortion ranges)."""
    x = image.astype(np.float32)
    if rng.random() < 0.5:
        x = x + rng.uniform(-32, 32)
    if rng.random() < 0.5:
        x = x * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:  # hue rotation about the grey axis
        angle = np.deg2rad(rng.uniform(-18, 18))
        cos, sin = np.cos(angle), np.sin(angle)
        k = np.full((3, 3), (1 - cos) / 3)
        k += np.eye(3) * cos
        s = sin / np.sqrt(3)
        k += np.array([[0, -s, s], [s, 0, -s], [-s, s, 0]])
        x = x @ k.T.astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def train_augment(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
                  scale_range: tuple[float, float] = (0.5, 2.0),
                  geometry: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scale the shorter side to size*U(scale_range), random-crop size x size (pad with ignore), flip, jitter.

    If `geometry` is a list, it receives the crop's box in the original image's normalised coordinates,
    [x0, y0, x1, y1] (x0 > x1 when flipped; > 1 where the crop runs into padding)."""
    scale = rng.uniform(*scale_range) * size / min(image.shape[:2])
    height, width = max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))
    image, mask = _resize(image, mask, height, width)
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)))
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE_INDEX)
    top = int(rng.integers(0, image.shape[0] - size + 1))
    left = int(rng.integers(0, image.shape[1] - size + 1))
    image, mask = image[top:top + size, left:left + size], mask[top:top + size, left:left + size]
    box = [left / width, top / height, (left + size) / width, (top + size) / height]
    if rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
        box = [box[2], box[1], box[0], box[3]]
    if geometry is not None:
        geometry[:] = box
    return photometric(np.ascontiguousarray(image), rng), np.ascontiguousarray(mask)
