"""Segment images with a checkpoint: colour overlays and palette masks a person can look at.

python -m edgeseg.predict --checkpoint runs/demo/best.pt --source IMG_OR_DIR --out DIR

For each image NAME writes DIR/NAME_overlay.png (image blended with the class colours) and
DIR/NAME_mask.png (indexed PNG: pixel value = class index, coloured by the card's palette),
plus DIR/legend.json (class index -> name, colour).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from edgeseg.card import load_model
from edgeseg.errors import cli_main
from edgeseg.io import list_images, read_image, write_json, write_png
from edgeseg.preprocess import logits_to_mask, overlay, preprocess


def torch_logits_fn(model: torch.nn.Module, device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A function from a preprocessed input [1, 3, S, S] to logits [K, h, w] for a torch model."""

    @torch.no_grad()
    def run(inputs: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(inputs).to(device))[0].float().cpu().numpy()

    return run


def write_predictions(logits_fn: Callable[[np.ndarray], np.ndarray], card: dict, source: str, out: str) -> int:
    """Predict every image of `source` and write overlay + mask PNGs into `out`; returns the count."""
    files = list_images(source)
    out_dir = Path(out)
    for path in tqdm(files, desc="predict", file=sys.stderr, disable=len(files) < 2):
        image = read_image(path)
        mask = logits_to_mask(logits_fn(preprocess(image, card)), image.shape[0], image.shape[1])
        write_png(out_dir / f"{path.stem}_overlay.png", overlay(image, mask, card["palette"]))
        write_png(out_dir / f"{path.stem}_mask.png", mask, palette=card["palette"])
    write_json(out_dir / "legend.json", [{"index": i, "class": name, "color": color}
                                         for i, (name, color) in enumerate(zip(card["classes"], card["palette"]))])
    print(f"wrote {len(files)} overlays and masks to {out_dir}", file=sys.stderr)
    return len(files)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeseg.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="last.pt / best.pt from edgeseg.train")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", default="runs/predict", help="output folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    model, card = load_model(args.checkpoint)
    write_predictions(torch_logits_fn(model.to(args.device), args.device), card, args.source, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
