"""Images for int8 calibration and export verification, preprocessed exactly as at inference."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edgeseg.data import build_source, data_spec_for
from edgeseg.errors import UserError
from edgeseg.io import IMAGE_SUFFIXES, list_images, read_image
from edgeseg.preprocess import preprocess


def load_inputs(spec: str, card: dict, count: int, split: str = "val") -> list[np.ndarray]:
    """`count` model inputs [1, 3, S, S] from a folder of images, a dataset spec or `synthetic`."""
    return load_inputs_with_ids(spec, card, count, split)[0]


def load_inputs_with_ids(spec: str, card: dict, count: int, split: str = "val") -> tuple[list[np.ndarray], list[dict]]:
    """Model inputs plus a record per image: `image` (its file, or dataset + split + index) and `sha256` (of
    its decoded pixels), so calibration and verification sets can be checked for overlap by name and by
    content, and parity.json can say which images did what. A dataset gives its `split`; a plain image
    folder has no split: calibration ("train") takes its first images, verification ("val") its last."""
    path = Path(spec)
    if spec != "synthetic" and path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
        files = list_images(path)
        if len(files) < count:
            raise UserError(f"image folder {path} has {len(files)} images but {count} are needed; "
                            "add images or lower --calib-size / --verify-images")
        chosen = files[:count] if split == "train" else files[len(files) - count:]
        images, names = [read_image(f) for f in chosen], [str(f.resolve()) for f in chosen]
    else:
        source = build_source(data_spec_for(card, None) if spec == "synthetic" else spec, split, card["img_size"])
        if len(source) < count:
            raise UserError(f"data {spec} has {len(source)} {split} images but {count} are needed")
        images, names = [source.load(i)[0] for i in range(count)], [source.describe(i) for i in range(count)]
    records = [{"image": name, "sha256": pixel_digest(image)} for name, image in zip(names, images)]
    return [preprocess(image, card) for image in images], records


def pixel_digest(image: np.ndarray) -> str:
    """sha256 of an image's decoded pixels and shape (first 16 hex digits): equal for copies under any name."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()[:16]


def check_disjoint(calibration: list[dict], verification: list[dict]) -> None:
    """int8 parity must be measured on images the quantizer did not see: none may share a file, nor pixels
    (copies of one frame under other names, common in frame dumps, would score ~100 %)."""
    if overlap := sorted({r["image"] for r in calibration} & {r["image"] for r in verification}):
        raise UserError(f"{len(overlap)} verification image(s) are also calibration images (e.g. {overlap[0]}); "
                        "give --verify-data other images, or a larger folder (calibration takes its first images, "
                        "verification its last)")
    seen = {r["sha256"]: r["image"] for r in calibration}
    if copies := [(r["image"], seen[r["sha256"]]) for r in verification if r["sha256"] in seen]:
        raise UserError(f"{len(copies)} verification image(s) have the same pixels as calibration images (e.g. "
                        f"{copies[0][0]} = {copies[0][1]}): a copy of a calibrated frame would pass parity unseen; "
                        "give --verify-data frames the quantizer did not see")
