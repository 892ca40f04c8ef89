"""Datasets in the layouts users already have on disk: a generic folder and ADE20K (mmseg layout)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from edgeseg.card import IGNORE_INDEX
from edgeseg.errors import UserError
from edgeseg.io import IMAGE_SUFFIXES, read_image, read_mask
from edgeseg.text import read_class_names


def _pair_files(image_dir: Path, mask_dir: Path, mask_suffix: str = ".png") -> list[tuple[Path, Path]]:
    """Pair images with same-stem masks; any unpaired file is an error naming it."""
    if not image_dir.is_dir() or not mask_dir.is_dir():
        missing = image_dir if not image_dir.is_dir() else mask_dir
        raise UserError(f"dataset folder {missing} is missing")
    images = {p.stem: p for p in sorted(image_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() == mask_suffix}
    if not images:
        raise UserError(f"no images in {image_dir}")
    if only_images := sorted(set(images) - set(masks)):
        raise UserError(f"image {images[only_images[0]]} has no mask {mask_dir / (only_images[0] + mask_suffix)} "
                        f"({len(only_images)} unpaired images)")
    if only_masks := sorted(set(masks) - set(images)):
        raise UserError(f"mask {masks[only_masks[0]]} has no image in {image_dir} ({len(only_masks)} unpaired masks)")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


class LabelledFolder:
    """Image/mask pairs with a label mapping; masks are checked against the class count on load."""

    name = "folder"

    def __init__(self, pairs: list[tuple[Path, Path]], classes: list[str], reduce_zero_label: bool = False,
                 out_of_range: str = "error", lookup: dict[int, int] | None = None,
                 mask_reader: Callable[[Path], np.ndarray] = read_mask) -> None:
        self.pairs = pairs
        self.classes = classes
        self.reduce_zero_label = reduce_zero_label
        self.out_of_range = out_of_range
        self.mask_reader = mask_reader
        self.table: np.ndarray | None = None
        if lookup is not None:  # official raw id -> train id; every other id -> ignore
            self.table = np.full(max(max(lookup) + 1, 256), IGNORE_INDEX, dtype=np.int64)
            for raw, train_id in lookup.items():
                self.table[raw] = train_id

    def __len__(self) -> int:
        return len(self.pairs)

    def describe(self, index: int) -> str:
        return str(self.pairs[index][0])

    def map_labels(self, raw: np.ndarray, mask_path: Path) -> np.ndarray:
        """Apply the dataset's label mapping; values outside [0, K) other than 255 are an error."""
        mask = raw.astype(np.int64)
        if self.table is not None:
            mask = self.table[np.clip(mask, 0, len(self.table) - 1)]
        if self.reduce_zero_label:
            mask = np.where((mask == 0) | (mask == IGNORE_INDEX), IGNORE_INDEX, mask - 1)
        bad = (mask >= len(self.classes)) & (mask != IGNORE_INDEX)
        if bad.any():
            value = int(mask[bad].max())
            if self.out_of_range == "error":
                raise UserError(f"mask {mask_path} has label {value} but classes.txt lists {len(self.classes)} "
                                f"classes (0..{len(self.classes) - 1}, 255 = ignore); fix the mask or the class list")
            mask[bad] = IGNORE_INDEX
        return mask

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image, raw = read_image(image_path), self.mask_reader(mask_path)
        if raw.shape != image.shape[:2]:
            raise UserError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but its image is "
                            f"{image.shape[1]}x{image.shape[0]}")
        return image, self.map_labels(raw, mask_path)


def generic_folder(root: Path, split: str) -> LabelledFolder:
    """`root/classes.txt`, `root/images[/train|val]/*`, `root/masks[/train|val]/*.png`.

    Without train/val subfolders, every 10th pair (sorted by name) is validation.
    """
    classes = read_class_names(root / "classes.txt")
    if (root / "images" / "train").is_dir():
        pairs = _pair_files(root / "images" / split, root / "masks" / split)
    else:
        every = _pair_files(root / "images", root / "masks")
        pairs = [p for i, p in enumerate(every) if (i % 10 == 9) == (split == "val")] or every
    return LabelledFolder(pairs, classes)


def ade20k(root: Path, split: str) -> LabelledFolder:
    """ADE20K in the mmseg layout: images/{training,validation}/*.jpg, annotations/.../*.png;
    label 0 ("other") -> ignore, 1..150 -> 0..149."""
    from edgeseg.data.classes import ADE20K_CLASSES

    folder = {"train": "training", "val": "validation"}[split]
    pairs = _pair_files(root / "images" / folder, root / "annotations" / folder)
    dataset = LabelledFolder(pairs, list(ADE20K_CLASSES), reduce_zero_label=True)
    dataset.name = "ade20k"
    return dataset
