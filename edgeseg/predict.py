"""Segment images with a checkpoint: colour overlays and palette masks a person can look at.

python -m edgeseg.predict --checkpoint runs/demo/best.pt --source IMG_OR_DIR --out DIR [--classes "a,b,c"]

For each image NAME writes DIR/NAME_overlay.png (image blended with the class colours) and
DIR/NAME_mask.png (indexed PNG: pixel value = class index, coloured by the card's palette),
plus DIR/legend.json (class index -> name, colour).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from tqdm import tqdm

from edgeseg.card import build_model, check_card
from edgeseg.errors import UserError, cli_main
from edgeseg.io import list_images, load_checkpoint, read_image, write_json, write_png
from edgeseg.preprocess import logits_to_mask, overlay, preprocess

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch


def torch_logits_fn(model: torch.nn.Module, device: str = "cpu",
                    text_embeddings: np.ndarray | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a preprocessed input [1, 3, S, S] to logits [K, h, w] for a torch model
    (scored against `text_embeddings` [K, D] instead of its own classes when given)."""
    import torch

    text = None if text_embeddings is None else torch.from_numpy(np.asarray(text_embeddings, np.float32)).to(device)

    @torch.no_grad()
    def run(inputs: np.ndarray) -> np.ndarray:
        image = torch.from_numpy(inputs).to(device)
        return (model(image) if text is None else model(image, text))[0].float().cpu().numpy()

    return run


def parse_class_names(value: str) -> list[str]:
    """`--classes`: a comma list ("cat,sofa") or a text file with one name per line."""
    from edgeseg.text import read_class_names

    names = read_class_names(value) if Path(value).is_file() else [n.strip() for n in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UserError("--classes: no class names given")
    if len(set(names)) != len(names):
        raise UserError(f"--classes: '{next(n for n in names if names.count(n) > 1)}' is listed twice")
    return names


def vocabulary(card: dict, names: list[str], context: dict | None) -> tuple[dict, np.ndarray]:
    """A card for the vocabulary `names` and its embeddings, for a model that takes any number of classes."""
    from edgeseg.card import vocabulary_palette
    from edgeseg.models.heads import accepts_any_k
    from edgeseg.prompt_learner import embed_class_names

    if not accepts_any_k(card) and len(names) != len(card["classes"]):
        raise UserError(f"this model's head is sized for its {len(card['classes'])} classes (a closed-set "
                        f"{card['head']} head); give {len(card['classes'])} names, or train with --class-agnostic")
    embeddings = embed_class_names(card, names, context)
    return dict(card, classes=names, palette=vocabulary_palette(names, card["classes"], card["palette"])), embeddings


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
    import torch

    parser = argparse.ArgumentParser(prog="python -m edgeseg.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="last.pt / best.pt from edgeseg.train")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", default="runs/predict", help="output folder")
    parser.add_argument("--classes", default=None, metavar="NAMES|FILE",
                        help="segment these class names instead of the model's own (comma list or one per line; "
                             "any names, unseen ones included, for a model whose head takes any vocabulary)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.checkpoint)
    card = check_card(payload.get("card"), args.checkpoint)
    model = build_model(card, payload["model"]).to(args.device)
    text = None
    if args.classes is not None:
        card, text = vocabulary(card, parse_class_names(args.classes), payload.get("context"))
    write_predictions(torch_logits_fn(model, args.device, text), card, args.source, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
