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


# How a frame is resized to the model's square input. "antialias": PIL's bilinear, whose filter widens when it
# shrinks (what training sees). "mediapipe": what MediaPipe's ImageSegmenter does on CPU (its ImageToTensor's
# cv::warpAffine of a scaling): 2-tap bilinear at src = dst x in/out, no antialiasing, in OpenCV's fixed point
# (bit-exact with cv2.warpAffine on downscales; measured against the stock client: docs/mediapipe-parity.md).
# An artifact's card names the one its app uses, and deploy.runtime then predicts what the app will see.
RESIZES = ("antialias", "mediapipe")


def _warp_taps(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV warpAffine's sampling of one axis: source positions in 1/1024 pixel (AB_BITS = 10), rounded to
    1/32 (INTER_BITS = 5), edges replicated -> (lower index, upper index, fraction in 32nds)."""
    fixed = (np.round(np.arange(out_size) * (in_size / out_size) * 1024).astype(np.int64) + 16) >> 5
    lo, frac = fixed >> 5, fixed & 31
    return np.minimum(lo, in_size - 1), np.minimum(lo + 1, in_size - 1), frac


def _warp_weights() -> np.ndarray:
    """OpenCV's 8-bit bilinear table [32, 32, 2, 2]: products of the 1-D weights (32 - k, k) / 32, in 1/32768."""
    k = np.arange(32)
    one_d = np.stack([32 - k, k], axis=1)  # [32, 2]
    return np.einsum("ya,xb->yxab", one_d, one_d).astype(np.int64) * 32


_WARP_WEIGHTS = _warp_weights()


def _mediapipe_resize(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [S, S, 3] as cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE) scales it."""
    y0, y1, fy = _warp_taps(size, image.shape[0])
    x0, x1, fx = _warp_taps(size, image.shape[1])
    w = _WARP_WEIGHTS[fy[:, None], fx[None, :]][..., None]  # [S, S, 2, 2, 1]
    v = image.astype(np.int64)
    acc = (v[y0][:, x0] * w[:, :, 0, 0] + v[y0][:, x1] * w[:, :, 0, 1]
           + v[y1][:, x0] * w[:, :, 1, 0] + v[y1][:, x1] * w[:, :, 1, 1])
    return np.clip((acc + (1 << 14)) >> 15, 0, 255).astype(np.uint8)


def resize_image(image: np.ndarray, size: int, method: str = "antialias") -> np.ndarray:
    """Resize uint8 RGB [H, W, 3] to the model's static square input [S, S, 3] (see RESIZES)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    if method == "mediapipe":
        return _mediapipe_resize(image, size)
    if method != "antialias":
        raise ValueError(f"unknown resize {method!r}; valid: {', '.join(RESIZES)}")
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def mask_grid(card: dict) -> str:
    """How scores are upsampled to the image before the argmax: as MediaPipe's category mask does
    (align_corners) for an artifact whose app is MediaPipe, else at pixel centres (training's)."""
    return "align" if card.get("resize") == "mediapipe" else "half"


def preprocess(image: np.ndarray, card: dict) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> model input float32 [1, 3, S, S] for the card's size/mean/std (and resize)."""
    resized = resize_image(image, int(card["img_size"]), card.get("resize", "antialias"))
    return normalize(resized, card["mean"], card["std"])[None]


def _interp_matrix(out_size: int, in_size: int, grid: str = "half") -> np.ndarray:
    """Rows of bilinear weights from in_size to out_size samples, edges clamped. grid "half": pixel centres
    (align_corners=False, torch's F.interpolate default and OpenCV's resize); "align": align_corners=True (first
    and last samples meet; MediaPipe's category mask)."""
    if grid == "align":
        src = np.arange(out_size) * ((in_size - 1) / max(out_size - 1, 1))
    else:
        src = np.clip((np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5, 0, None)
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((out_size, in_size), dtype=np.float32)
    m[np.arange(out_size), lo] += 1.0 - frac
    m[np.arange(out_size), hi] += frac
    return m


def upsample_logits(logits: np.ndarray, height: int, width: int, grid: str = "half") -> np.ndarray:
    """[K, h, w] -> [K, H, W] bilinear (align_corners=False unless `grid` says; see _interp_matrix), numpy only
    so runtimes need no torch."""
    rows, cols = _interp_matrix(height, logits.shape[1], grid), _interp_matrix(width, logits.shape[2], grid)
    return np.matmul(np.matmul(rows, logits.astype(np.float32)), cols.T)


def logits_to_mask(logits: np.ndarray, height: int, width: int, grid: str = "half") -> np.ndarray:
    """[K, h, w] logits -> uint8/int mask [H, W] at the original image size (MediaPipe's category mask
    upsamples with grid="align")."""
    mask = upsample_logits(logits, height, width, grid).argmax(axis=0)
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
