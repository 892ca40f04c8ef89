"""Images for int8 calibration and export verification, preprocessed exactly as at inference."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.data import build_source, data_spec_for
from edgeseg.errors import UserError
from edgeseg.io import IMAGE_SUFFIXES, list_images, read_image
from edgeseg.preprocess import preprocess


def load_inputs(spec: str, card: dict, count: int, split: str = "val") -> list[np.ndarray]:
    """`count` model inputs [1, 3, S, S] from a folder of images, a dataset spec or `synthetic`."""
    return load_inputs_with_ids(spec, card, count, split)[0]


def load_inputs_with_ids(spec: str, card: dict, count: int, split: str = "val") -> tuple[list[np.ndarray], list[str]]:
    """Model inputs plus an id per image (its file, or dataset + split + index), so calibration and
    verification sets can be checked for overlap. A dataset gives its `split`; a plain image folder has no
    split: calibration ("train") takes its first images, verification ("val") its last."""
    path = Path(spec)
    if spec != "synthetic" and path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        files = list_images(path)
        if len(files) < count:
            raise UserError(f"image folder {path} has {len(files)} images but {count} are needed; "
                            "add images or lower --calib-size / --verify-images")
        chosen = files[:count] if split == "train" else files[len(files) - count:]
        return [preprocess(read_image(f), card) for f in chosen], [str(f.resolve()) for f in chosen]
    source = build_source(data_spec_for(card, None) if spec == "synthetic" else spec, split, card["img_size"])
    if len(source) < count:
        raise UserError(f"data {spec} has {len(source)} {split} images but {count} are needed")
    return [preprocess(source.load(i)[0], card) for i in range(count)], [source.describe(i) for i in range(count)]


def check_disjoint(calibration_ids: list[str], verification_ids: list[str]) -> None:
    """int8 parity must be measured on images the quantizer did not see."""
    if overlap := sorted(set(calibration_ids) & set(verification_ids)):
        raise UserError(f"{len(overlap)} verification image(s) are also calibration images (e.g. {overlap[0]}); "
                        "give --verify-data other images, or a larger folder (calibration takes its first images, "
                        "verification its last)")
