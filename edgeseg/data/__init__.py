"""Datasets: the embedded synthetic default and real layouts, plus torch wrappers for train/val.

`--data` forms: omitted -> synthetic-scenes; `synthetic-attributes` (embedded, names that carry the look,
for the zero-shot protocol); `ade20k:PATH`; `folder:PATH`; or a plain PATH
(ADE20K layout detected by images/training + annotations/training, else the generic folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from edgeseg.data.attributes import SyntheticAttributes
from edgeseg.data.folder import ade20k, generic_folder
from edgeseg.data.public import cityscapes, coco_stuff, voc
from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.data.transforms import train_augment
from edgeseg.errors import UserError
from edgeseg.zeroshot import remap_labels
from edgeseg.preprocess import normalize, preprocess


class SegmentationSource(Protocol):
    """What every dataset provides: class names and (uint8 RGB image, int64 mask) pairs."""

    name: str
    classes: list[str]

    def __len__(self) -> int: ...
    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...
    def describe(self, index: int) -> str: ...


# Embedded (generated) datasets by --data name.
EMBEDDED: dict[str, Callable[[str, int], SegmentationSource]] = {
    "synthetic": lambda split, size: SyntheticScenes(split, size=size),
    "synthetic-scenes": lambda split, size: SyntheticScenes(split, size=size),
    "synthetic-attributes": lambda split, size: SyntheticAttributes(split, size=size),
}

LAYOUTS: dict[str, Callable[[Path, str], SegmentationSource]] = {
    "ade20k": ade20k, "cocostuff": coco_stuff, "voc": voc, "cityscapes": cityscapes, "folder": generic_folder,
}


def build_source(spec: str | None, split: str, img_size: int = 128) -> SegmentationSource:
    """Resolve a `--data` value into a dataset for `split` ('train' or 'val')."""
    if not spec:
        spec = "synthetic-scenes"
    if spec in EMBEDDED:
        return EMBEDDED[spec](split, img_size)
    kind, sep, rest = spec.partition(":")
    if sep and kind in LAYOUTS:
        root = Path(rest)
    elif sep and len(kind) > 1:
        raise UserError(f"unknown dataset kind '{kind}'; valid: {', '.join(EMBEDDED)}, "
                        f"{', '.join(f'{k}:PATH' for k in LAYOUTS)}")
    else:
        root = Path(spec)
        kind = "ade20k" if (root / "images" / "training").is_dir() and (root / "annotations").is_dir() else "folder"
    if not root.is_dir():
        hint = "" if sep or any(c in spec for c in "/.") else f" (embedded datasets: {', '.join(EMBEDDED)})"
        raise UserError(f"--data {root} is not a folder{hint}")
    if kind == "folder" and not (root / "classes.txt").is_file():
        raise UserError(f"--data {root}: expected classes.txt + images/ + masks/ (generic layout) or the ADE20K "
                        "layout images/training + annotations/training (voc:, cityscapes:, cocostuff: take their prefix)")
    return LAYOUTS[kind](root, split)


def data_spec_for(card: dict, spec: str | None) -> str | None:
    """`--data` as given, else the embedded dataset the model was trained on (None: the default one)."""
    if spec:
        return spec
    return card.get("dataset") if card.get("dataset") in EMBEDDED else None


class TrainSet(Dataset):
    """Augmented crops; items are addressed by (index, augmentation seed) so runs are reproducible."""

    def __init__(self, source: SegmentationSource, img_size: int, mean: list[float], std: list[float],
                 with_geometry: bool = False, label_map: np.ndarray | None = None) -> None:
        self.source, self.img_size, self.mean, self.std = source, img_size, mean, std
        self.with_geometry = with_geometry
        self.label_map = label_map  # zero-shot: full class index -> training index, unseen -> ignore

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        index, seed = item
        image, mask = self.source.load(index)
        if self.label_map is not None:
            mask = remap_labels(mask, self.label_map)
        geometry: list[float] = []
        image, mask = train_augment(image, mask, self.img_size, np.random.default_rng(seed), geometry=geometry)
        sample = (torch.from_numpy(normalize(image, self.mean, self.std)), torch.from_numpy(mask))
        if self.with_geometry:  # which image and which box of it (distill's cached teacher maps)
            return (*sample, torch.tensor([float(index), *geometry]))
        return sample


class ValSet(Dataset):
    """Images resized to the model's static input; masks kept at full resolution."""

    def __init__(self, source: SegmentationSource, card: dict) -> None:
        self.source, self.card = source, card

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.source.load(index)
        return torch.from_numpy(preprocess(image, self.card)[0]), torch.from_numpy(mask)


def collate_val(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Stack the (equal-size) inputs; masks stay a list since real images differ in size."""
    return torch.stack([image for image, _ in batch]), [mask for _, mask in batch]


class IterationSampler(Sampler):
    """Batches for iterations [start, total): epoch e shuffles with seed+e; each sample gets its own
    augmentation seed. Iteration i's batch depends only on (seed, i), so a resumed run sees the same data.
    `rank`/`world` split each global batch across distributed processes."""

    def __init__(self, length: int, batch_size: int, total_iters: int, seed: int, start_iter: int = 0,
                 rank: int = 0, world: int = 1) -> None:
        self.length, self.batch_size, self.total, self.seed = length, batch_size, total_iters, seed
        self.start, self.rank, self.world = start_iter, rank, world

    def __len__(self) -> int:
        return self.total - self.start

    def _order(self, epoch: int) -> np.ndarray:
        if getattr(self, "_cached_epoch", None) != epoch:
            self._cached_epoch, self._cached_order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.length)
        return self._cached_order

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        global_batch = self.batch_size * self.world
        for it in range(self.start, self.total):
            batch = []
            for j in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
                position = it * global_batch + j
                epoch, offset = divmod(position, self.length)
                batch.append((int(self._order(epoch)[offset]), self.seed * 1_000_003 + position))
            yield batch
