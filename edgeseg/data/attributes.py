"""`synthetic-attributes`: an embedded dataset whose class names carry the look (no download).

Honestly synthetic. Every object class is a composition of three words the offline text encoder
knows: a colour (red, green, blue, yellow), a pattern (striped, dotted, checkered) and a shape
(circle, square, triangle) — "red striped circle", "blue dotted square", ... — 36 object classes
plus "background" (grey-brown clutter). A scene holds 3-7 objects of random size, rotation,
pattern scale and shading on a cluttered background, with colour jitter, global lighting and
sensor noise, so small objects and fine patterns stay hard at 128² (it does not saturate).

The fixed zero-shot split (`UNSEEN`, also `configs/splits/synthetic-attributes-unseen.txt`) holds
out 9 compositions, one per (pattern, shape) pair, so every word of an unseen name appears in
several seen names: a model can only segment an unseen class by composing what the words mean.
Deterministic by (seed, index); train and val use different seeds.
"""
from __future__ import annotations

import colorsys
import itertools

import numpy as np

from edgeseg.data.synthetic import GeneratedScenes

COLOURS: dict[str, float] = {"red": 0.0, "yellow": 0.15, "green": 0.33, "blue": 0.62}  # hue
PATTERNS = ("striped", "dotted", "checkered")
SHAPES = ("circle", "square", "triangle")
OBJECT_CLASSES = [f"{c} {p} {s}" for c, p, s in itertools.product(COLOURS, PATTERNS, SHAPES)]
CLASSES = ["background", *OBJECT_CLASSES]

# One unseen colour per (pattern, shape) pair, cycling through the colours (a Latin-square-like
# split): each colour is unseen 2-3 times, each pattern and shape 3 times, never a whole word.
UNSEEN = [f"{colour} {pattern} {shape}" for (pattern, shape), colour in
          zip(itertools.product(PATTERNS, SHAPES), itertools.cycle(["red", "green", "blue", "yellow", "green",
                                                                     "blue", "yellow", "red", "blue"]))]


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0)),
                    dtype=np.float32)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-saturation clutter: smooth blotches, thin random lines and grain (never one of the colours)."""
    coarse = rng.random((6, 6)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] * (5 / size)
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = yy - y0, xx - x0
    blotch = (coarse[y0, x0] * (1 - fy) * (1 - fx) + coarse[y0 + 1, x0] * fy * (1 - fx)
              + coarse[y0, x0 + 1] * (1 - fy) * fx + coarse[y0 + 1, x0 + 1] * fy * fx)
    base = _rgb(rng.uniform(0.05, 0.12), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.7))
    image = base[None, None] * (0.7 + 0.5 * blotch[..., None])
    for _ in range(int(rng.integers(2, 7))):  # clutter lines in grey tones
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5)
        u = (xx / 5 - 0.5) * np.cos(angle) + (yy / 5 - 0.5) * np.sin(angle) - offset
        image[np.abs(u) < rng.uniform(0.004, 0.012)] = rng.uniform(0.2, 0.8)
    return image + rng.normal(0, 0.03, image.shape).astype(np.float32)


def _region(rng: np.random.Generator, shape: str, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean region of one shape plus its local (u, v) coordinates in units of its radius."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    radius = rng.uniform(0.07, 0.2)
    cy, cx = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
    angle = rng.uniform(0, 2 * np.pi)
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / radius
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / radius
    if shape == "circle":
        region = u ** 2 + v ** 2 < 1.0
    elif shape == "square":
        region = (np.abs(u) < 0.85) & (np.abs(v) < 0.85)
    else:  # equilateral-ish triangle pointing along -v
        region = (v < 0.6) & (np.abs(u) * 1.6 < 0.6 - v + 0.0) & (v > -1.1)
    return region, u, v


def _pattern(rng: np.random.Generator, pattern: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """1.0 where the object shows its colour, 0.0 where the pattern's second (pale/dark) tone shows."""
    period = rng.uniform(0.35, 0.7)  # in units of the object's radius: 3-6 repeats across it
    phase = rng.uniform(0, period, size=2)
    if pattern == "striped":
        return ((((u + phase[0]) / period) % 1.0) < 0.55).astype(np.float32)
    if pattern == "dotted":
        du = ((u + phase[0]) / period) % 1.0 - 0.5
        dv = ((v + phase[1]) / period) % 1.0 - 0.5
        return (du ** 2 + dv ** 2 > 0.22 ** 2).astype(np.float32)
    cells = np.floor((u + phase[0]) / period) + np.floor((v + phase[1]) / period)
    return (cells % 2 == 0).astype(np.float32)


def _draw_object(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, label: int) -> None:
    """Paint object class `label` (index into CLASSES) in place."""
    colour, pattern, shape = CLASSES[label].split(" ")
    region, u, v = _region(rng, shape, image.shape[0])
    main = _rgb(COLOURS[colour] + rng.normal(0, 0.02), rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    second = np.full(3, rng.uniform(0.85, 1.0), np.float32) if rng.random() < 0.7 else \
        np.full(3, rng.uniform(0.05, 0.2), np.float32)
    show = _pattern(rng, pattern, u, v)[..., None]
    light = np.clip(1.05 - 0.25 * (u + v) / 2.0, 0.6, 1.2)[..., None]  # a light from the top-left
    paint = (show * main + (1 - show) * second) * light
    image[region] = paint[region]
    mask[region] = label


def generate_scene(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: uint8 RGB [size, size, 3] and int64 label mask [size, size]."""
    rng = np.random.default_rng([seed, index, 7])
    image = _background(rng, size)
    mask = np.zeros((size, size), dtype=np.int64)
    for _ in range(int(rng.integers(3, 8))):
        _draw_object(rng, image, mask, int(rng.integers(1, len(CLASSES))))
    image = image * rng.uniform(0.75, 1.2) + rng.uniform(-0.06, 0.06)
    image = image + rng.normal(0, rng.uniform(0.01, 0.04), image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


class SyntheticAttributes(GeneratedScenes):
    """The zero-shot embedded data (train seed 3000, val seed 4000)."""

    name = "synthetic-attributes"
    classes = CLASSES
    unseen = UNSEEN
    seeds = {"train": 3000, "val": 4000}
    generate = staticmethod(generate_scene)
