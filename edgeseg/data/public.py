"""The public benchmarks the seed papers report, in their official on-disk layouts.

  voc:PATH         Pascal VOC 2012: PATH = VOCdevkit/VOC2012 (or VOCdevkit); JPEGImages/*.jpg,
                   SegmentationClass/*.png (palette indices 0..20, 255 = boundary -> ignored),
                   ImageSets/Segmentation/{train,val}.txt.
  cityscapes:PATH  Cityscapes: leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and
                   gtFine/{train,val}/<city>/*_gtFine_labelIds.png; the official labelId -> trainId map
                   gives the 19 classes, every other id is ignored.
  cocostuff:PATH   COCO-Stuff-10k v1.1: images/*.jpg, annotations/*.mat (field S, ids 0..182),
                   imageLists/{train,test}.txt; the 171 used ids -> 0..170, 0 (unlabeled) -> ignored.
(ADE20K, 150 classes, is `ade20k:PATH` in edgeseg.data.folder.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data.classes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN,
    COCO_STUFF_CLASSES,
    COCO_STUFF_IDS,
    VOC_CLASSES,
)
from edgeseg.data.folder import LabelledFolder
from edgeseg.errors import UserError


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(f"{what}: {path} is missing (see the dataset layouts in README)")
    return path


def _list_file(path: Path) -> list[str]:
    return [line.split()[0] for line in _need(path, "split list").read_text().splitlines() if line.strip()]


def voc(root: Path, split: str) -> LabelledFolder:
    """Pascal VOC 2012 segmentation (21 classes)."""
    if (root / "VOC2012").is_dir():
        root = root / "VOC2012"
    names = _list_file(root / "ImageSets" / "Segmentation" / f"{split}.txt")
    pairs = [(_need(root / "JPEGImages" / f"{n}.jpg", "voc image"),
              _need(root / "SegmentationClass" / f"{n}.png", "voc mask")) for n in names]
    dataset = LabelledFolder(pairs, list(VOC_CLASSES))
    dataset.name = "voc2012"
    return dataset


def cityscapes(root: Path, split: str) -> LabelledFolder:
    """Cityscapes fine annotations (19 classes)."""
    images = _need(root / "leftImg8bit" / split, "cityscapes images")
    pairs = []
    for image in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        mask = root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"
        pairs.append((image, _need(mask, "cityscapes label")))
    if not pairs:
        raise UserError(f"no *_leftImg8bit.png under {images}")
    dataset = LabelledFolder(pairs, list(CITYSCAPES_CLASSES), lookup=CITYSCAPES_LABEL_TO_TRAIN)
    dataset.name = "cityscapes"
    return dataset


def read_coco_stuff_mat(path: Path) -> np.ndarray:
    """The label map `S` of a COCO-Stuff-10k annotation .mat (MATLAB v5; read as data, nothing executed)."""
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path), variable_names=["S"])["S"], dtype=np.int64)
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"cannot read COCO-Stuff annotation {path}: {exc}") from exc


def coco_stuff(root: Path, split: str) -> LabelledFolder:
    """COCO-Stuff-10k (171 classes): official ids 1..182 -> train ids 0..170."""
    names = _list_file(root / "imageLists" / f"{'train' if split == 'train' else 'test'}.txt")
    pairs = [(_need(root / "images" / f"{n}.jpg", "coco-stuff image"),
              _need(root / "annotations" / f"{n}.mat", "coco-stuff annotation")) for n in names]
    used = [i + 1 for i, name in enumerate(COCO_STUFF_IDS) if name is not None]
    dataset = LabelledFolder(pairs, list(COCO_STUFF_CLASSES), lookup={raw: k for k, raw in enumerate(used)},
                             mask_reader=read_coco_stuff_mat)
    dataset.name = "cocostuff10k"
    return dataset
