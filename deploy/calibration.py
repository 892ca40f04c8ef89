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
    path = Path(spec)
    if spec != "synthetic" and path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        files = list_images(path)
        if len(files) < count:
            raise UserError(f"calibration folder {path} has {len(files)} images but --calib-size is {count}; "
                            "add images or lower --calib-size")
        return [preprocess(read_image(f), card) for f in files[:count]]
    source = build_source(data_spec_for(card, None) if spec == "synthetic" else spec, split, card["img_size"])
    if len(source) < count:
        raise UserError(f"calibration data {spec} has {len(source)} images but --calib-size is {count}")
    return [preprocess(source.load(i)[0], card) for i in range(count)]
