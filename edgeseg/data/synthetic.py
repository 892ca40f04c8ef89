"""`synthetic-scenes`: the embedded default dataset, procedurally generated (no download).

Honestly synthetic: each scene has an optional sky above a wavy horizon, a noisy Voronoi
partition of "stuff" regions, and 0-3 objects. Every class has a texture family with
randomised colour, scale and lighting, and several families overlap in colour (overcast
sky / road / rock, sand / cardboard box, snow / pale sky) so texture and context matter.
Deterministic by (seed, index); train and val use different seeds.
"""
from __future__ import annotations

import colorsys
from typing import Callable

import numpy as np
from PIL import Image

STUFF = ["grass", "water", "road", "brick wall", "sand", "snow", "wood", "rock"]
OBJECTS = ["ball", "box", "traffic cone"]
CLASSES = ["sky", *STUFF, *OBJECTS]

Texture = Callable[[np.random.Generator, int], np.ndarray]


def _noise(rng: np.random.Generator, size: int, grid: int, stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Smooth value noise in [0, 1] at `size`, from a random grid (optionally anisotropic)."""
    gy, gx = max(2, int(grid * stretch[0])), max(2, int(grid * stretch[1]))
    small = rng.random((gy, gx)).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize((size, size), Image.BICUBIC)).clip(0, 1)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0), 1), min(max(v, 0), 1)), dtype=np.float32)


def _shade(color: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """color [3] * per-pixel brightness [H, W] -> [H, W, 3]."""
    return color[None, None, :] * amount[..., None]


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy / size, xx / size


def sky(rng, size):
    yy, _ = _coords(size)
    base = [_hsv(0.58 + rng.normal(0, 0.02), 0.55, 0.95), _hsv(0.56, 0.25, 0.9),
            _hsv(0.6, 0.05, 0.72), _hsv(0.07, 0.5, 0.95)][rng.integers(4)]
    img = _shade(base, 0.85 + 0.25 * yy)
    clouds = np.clip((_noise(rng, size, 4) - rng.uniform(0.5, 0.75)) * 3, 0, 1)[..., None]
    return img * (1 - clouds) + clouds * 0.95


def grass(rng, size):
    color = _hsv(rng.uniform(0.2, 0.38), rng.uniform(0.5, 0.85), rng.uniform(0.35, 0.7))
    blades = _noise(rng, size, size // 2, stretch=(0.12, 1.0))
    return _shade(color, 0.6 + 0.7 * blades * _noise(rng, size, 6) + 0.2 * rng.random((size, size)))


def water(rng, size):
    yy, xx = _coords(size)
    color = _hsv(rng.uniform(0.5, 0.62), rng.uniform(0.4, 0.8), rng.uniform(0.35, 0.75))
    freq = rng.uniform(25, 60)
    waves = np.sin(yy * freq + 2.0 * _noise(rng, size, 5) * np.pi) * 0.5 + 0.5
    glint = (waves > 0.93).astype(np.float32) * 0.4
    return np.clip(_shade(color, 0.75 + 0.35 * waves) + glint[..., None], 0, 1)


def road(rng, size):
    grey = rng.uniform(0.2, 0.5)
    img = _shade(_hsv(0.6, 0.05, grey), 0.8 + 0.4 * rng.random((size, size)))
    if rng.random() < 0.6:
        yy, xx = _coords(size)
        angle = rng.uniform(-0.5, 0.5)
        line = np.abs((xx - 0.5) * np.cos(angle) - (yy - 0.5) * np.sin(angle)) < 0.015
        dashes = (np.sin((yy * np.cos(angle) + xx * np.sin(angle)) * 40) > 0)
        paint = _hsv(0.14, 0.8, 0.9) if rng.random() < 0.4 else np.array([0.92, 0.92, 0.92], np.float32)
        img[line & dashes] = paint
    return img


def brick_wall(rng, size):
    yy, xx = _coords(size)
    rows = rng.uniform(8, 16)
    row = np.floor(yy * rows)
    offset = (row % 2) * 0.5
    col = np.floor(xx * rows / 2 + offset)
    mortar = ((yy * rows) % 1 < 0.12) | (((xx * rows / 2 + offset) % 1) < 0.06)
    base = _hsv(rng.uniform(0.0, 0.06), rng.uniform(0.45, 0.75), rng.uniform(0.45, 0.75))
    jitter = np.random.default_rng(int(rng.integers(1 << 30))).uniform(0.8, 1.15, size=(64, 64))
    brick = _shade(base, jitter[row.astype(int) % 64, col.astype(int) % 64])
    brick[mortar] = rng.uniform(0.6, 0.8)
    return brick


def sand(rng, size):
    yy, xx = _coords(size)
    color = _hsv(rng.uniform(0.08, 0.13), rng.uniform(0.3, 0.5), rng.uniform(0.7, 0.9))
    ripples = np.sin((yy + 0.4 * xx) * rng.uniform(20, 40) + 3 * _noise(rng, size, 4)) * 0.06
    return _shade(color, 0.92 + ripples + 0.12 * rng.random((size, size)))


def snow(rng, size):
    color = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.0, 0.12), rng.uniform(0.85, 1.0))
    img = _shade(color, 0.85 + 0.15 * _noise(rng, size, 3))
    sparkle = rng.random((size, size)) > 0.995
    img[sparkle] = 1.0
    return img


def wood(rng, size):
    yy, xx = _coords(size)
    along, across = (yy, xx) if rng.random() < 0.5 else (xx, yy)
    color = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.5, 0.75), rng.uniform(0.35, 0.65))
    grain = np.sin(across * rng.uniform(40, 90) + 4 * _noise(rng, size, 3, stretch=(1.0, 0.3))) * 0.5 + 0.5
    seams = ((across * rng.uniform(3, 6)) % 1) < 0.03
    img = _shade(color, 0.75 + 0.3 * grain)
    img[seams] *= 0.45
    return img


def rock(rng, size):
    color = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.25), rng.uniform(0.35, 0.6))
    blotches = 0.6 * _noise(rng, size, 8) + 0.4 * _noise(rng, size, 20)
    cracks = np.abs(_noise(rng, size, 6) - 0.5) < 0.02
    img = _shade(color, 0.6 + 0.7 * blotches)
    img[cracks] *= 0.4
    return img


STUFF_TEXTURES: dict[str, Texture] = {"grass": grass, "water": water, "road": road, "brick wall": brick_wall,
                                      "sand": sand, "snow": snow, "wood": wood, "rock": rock}


def _draw_object(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, label: int, kind: str) -> None:
    """Paint one object (ball / box / traffic cone) with shading, in place."""
    size = image.shape[0]
    yy, xx = _coords(size)
    r = rng.uniform(0.07, 0.18)
    cy, cx = rng.uniform(0.2, 0.9), rng.uniform(0.1, 0.9)
    if kind == "ball":
        dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        region = dist < r
        light = np.clip(1.1 - np.sqrt((yy - cy + r / 2) ** 2 + (xx - cx + r / 2) ** 2) / (1.6 * r), 0.35, 1.1)
        color = _hsv(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0))
        paint = _shade(color, light)
    elif kind == "box":
        angle = rng.uniform(-0.6, 0.6)
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        aspect = rng.uniform(0.6, 1.4)
        region = (np.abs(u) < r) & (np.abs(v) < r * aspect)
        color = _hsv(rng.uniform(0.07, 0.11), rng.uniform(0.4, 0.6), rng.uniform(0.55, 0.8)) if rng.random() < 0.7 \
            else _hsv(rng.random(), 0.5, 0.7)
        edge = (np.abs(np.abs(u) - r) < 0.012) | (np.abs(np.abs(v) - r * aspect) < 0.012)
        paint = _shade(color, 1.0 - 0.35 * edge + 0.25 * (np.abs(u) < 0.02))
    else:  # traffic cone: a triangle with white bands
        height = 2.2 * r
        top, bottom = cy - height / 2, cy + height / 2
        half_width = (yy - top) / height * r
        region = (yy > top) & (yy < bottom) & (np.abs(xx - cx) < half_width)
        bands = (((yy - top) / height * 3) % 1 < 0.25) & (yy > top + height * 0.2)
        paint = _shade(_hsv(rng.uniform(0.02, 0.08), 0.9, rng.uniform(0.8, 1.0)), 0.9 + 0.2 * (xx - cx) / r)
        paint[bands] = 0.95
    image[region] = paint[region]
    mask[region] = label


def generate_scene(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: uint8 RGB [size, size, 3] and int64 label mask [size, size]."""
    rng = np.random.default_rng([seed, index])
    yy, xx = _coords(size)
    mask = np.zeros((size, size), dtype=np.int64)
    image = np.zeros((size, size, 3), dtype=np.float32)
    # Stuff: noisy Voronoi cells below an optional sky.
    cells = int(rng.integers(1, 5))
    names = rng.choice(STUFF, size=cells, replace=True)
    centers = rng.random((cells, 2)).astype(np.float32)
    warp_y, warp_x = (_noise(rng, size, 4) - 0.5) * 0.3, (_noise(rng, size, 4) - 0.5) * 0.3
    dist = (yy[None] + warp_y - centers[:, 0, None, None]) ** 2 + (xx[None] + warp_x - centers[:, 1, None, None]) ** 2
    owner = dist.argmin(axis=0)
    for cell, name in enumerate(names):
        region = owner == cell
        if region.any():
            image[region] = STUFF_TEXTURES[name](rng, size)[region]
            mask[region] = CLASSES.index(name)
    if rng.random() < 0.7:
        horizon = rng.uniform(0.2, 0.55) + 0.06 * np.sin(xx * rng.uniform(3, 12) + rng.uniform(0, 6)) \
            + 0.04 * (_noise(rng, size, 6) - 0.5)
        region = yy < horizon
        image[region] = sky(rng, size)[region]
        mask[region] = CLASSES.index("sky")
    for _ in range(int(rng.integers(0, 4))):
        kind = OBJECTS[int(rng.integers(len(OBJECTS)))]
        _draw_object(rng, image, mask, CLASSES.index(kind), kind)
    # Global lighting and sensor noise.
    image = image * rng.uniform(0.75, 1.2) + rng.uniform(-0.06, 0.06)
    image = image + rng.normal(0, rng.uniform(0.005, 0.03), image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


class GeneratedScenes:
    """Base of the embedded datasets: `length` deterministic scenes of `size` pixels made by `generate`
    (seed, index, size); 2000 train / 100 val scenes with one seed per split."""

    name = ""
    classes: list[str] = []
    seeds = {"train": 0, "val": 1}

    @staticmethod
    def generate(seed: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __init__(self, split: str = "train", size: int = 128, length: int | None = None, seed: int | None = None):
        self.split = split
        self.size = size
        self.length = length or (2000 if split == "train" else 100)
        self.seed = seed if seed is not None else self.seeds["train" if split == "train" else "val"]

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.generate(self.seed, index, self.size)

    def describe(self, index: int) -> str:
        return f"{self.name}[{self.split}#{index}]"


class SyntheticScenes(GeneratedScenes):
    """The default embedded data (train seed 1000, val seed 2000)."""

    name = "synthetic-scenes"
    classes = CLASSES
    seeds = {"train": 1000, "val": 2000}
    generate = staticmethod(generate_scene)
