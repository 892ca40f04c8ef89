"""The one pre/post-processing path, shared by training, evaluation, export checks and every runtime."""
from __future__ import annotations

import numpy as np
from PIL import Image


def normalize(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """uint8 [H, W, 3] -> float32 [3, H, W], (x/255 - mean) / std."""
    x = image.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def to_frame(inputs: np.ndarray, card: dict) -> np.ndarray:
    """A normalised model input [1, 3, S, S] (or [3, S, S]) back to the uint8 RGB frame [S, S, 3] it came from."""
    x = inputs[0] if inputs.ndim == 4 else inputs
    x = x.transpose(1, 2, 0) * np.asarray(card["std"], np.float32) + np.asarray(card["mean"], np.float32)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def unit_input(frame: np.ndarray) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float32 [1, 3, H, W] in [0, 1] (a graph that normalises inside: --mediapipe)."""
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None], np.float32) / 255.0


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 RGB to the model's static square input (bilinear)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def preprocess(image: np.ndarray, card: dict) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> model input float32 [1, 3, S, S] for the card's size/mean/std."""
    return normalize(resize_image(image, int(card["img_size"])), card["mean"], card["std"])[None]


def _interp_matrix(out_size: int, in_size: int) -> np.ndarray:
    """Rows of bilinear weights, align_corners=False (same as torch's F.interpolate)."""
    scale = in_size / out_size
    src = np.clip((np.arange(out_size) + 0.5) * scale - 0.5, 0, None)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((out_size, in_size), dtype=np.float32)
    m[np.arange(out_size), lo] += 1.0 - frac
    m[np.arange(out_size), hi] += frac
    return m


def upsample_logits(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """[K, h, w] -> [K, H, W] bilinear (align_corners=False), numpy only so runtimes need no torch."""
    rows, cols = _interp_matrix(height, logits.shape[1]), _interp_matrix(width, logits.shape[2])
    return np.matmul(np.matmul(rows, logits.astype(np.float32)), cols.T)


def logits_to_mask(logits: np.ndarray, height: int, width: int) -> np.ndarray:
    """[K, h, w] logits -> uint8/int mask [H, W] at the original image size."""
    mask = upsample_logits(logits, height, width).argmax(axis=0)
    return mask.astype(np.uint8 if logits.shape[0] <= 255 else np.int32)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Class-index mask [h, w] -> [H, W] by nearest neighbour (pixel centres), keeping its dtype."""
    rows = np.minimum(((np.arange(height) + 0.5) * mask.shape[0] / height).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mask.shape[1] / width).astype(np.int64), mask.shape[1] - 1)
    return mask[rows[:, None], cols[None, :]]


def colorize(mask: np.ndarray, palette: list[list[int]]) -> np.ndarray:
    """Mask [H, W] -> RGB [H, W, 3] using the card's palette (ignore -> black)."""
    table = np.zeros((256 if mask.max(initial=0) < 256 else int(mask.max()) + 1, 3), dtype=np.uint8)
    table[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[mask]


def overlay(image: np.ndarray, mask: np.ndarray, palette: list[list[int]], alpha: float = 0.5) -> np.ndarray:
    """Blend the colorized mask onto the image."""
    return (image.astype(np.float32) * (1 - alpha) + colorize(mask, palette).astype(np.float32) * alpha).astype(np.uint8)
