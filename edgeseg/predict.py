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

from edgeseg import checks
from edgeseg.errors import UserError, cli_main
from edgeseg.io import list_images, read_image, write_json, write_png
from edgeseg.preprocess import overlay

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch

    from edgeseg.api import Model


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
    return checks.class_names(names, "--classes")


def vocabulary(card: dict, names: list[str], context: dict | None,
               embeddings: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """A card for the vocabulary `names` and its embeddings (given ones [K, D] are checked, not recomputed),
    for a model that takes any number of classes."""
    from edgeseg.card import vocabulary_palette
    from edgeseg.models.heads import accepts_any_k
    from edgeseg.prompt_learner import embed_class_names

    if not accepts_any_k(card) and len(names) != len(card["classes"]):
        raise UserError(f"this model's head is sized for its {len(card['classes'])} classes (a closed-set "
                        f"{card['head']} head); give {len(card['classes'])} names, or train with --class-agnostic")
    if embeddings is None:
        embeddings = embed_class_names(card, names, context)
    else:
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.shape != (len(names), card["text_dim"]):
            raise UserError(f"embeddings have shape {embeddings.shape}; expected ({len(names)}, {card['text_dim']})")
    return dict(card, classes=names, palette=vocabulary_palette(names, card["classes"], card["palette"])), embeddings


def write_predictions(model: Model, source: str, out: str) -> int:
    """Predict every image of `source` with an edgeseg.load model and write overlay + mask PNGs into `out`."""
    files = list_images(source)
    out_dir = Path(out)
    palette = model.card["palette"]
    for path in tqdm(files, desc="predict", file=sys.stderr, disable=len(files) < 2):
        image = read_image(path)
        mask = model.predict(image)
        write_png(out_dir / f"{path.stem}_overlay.png", overlay(image, mask, palette))
        write_png(out_dir / f"{path.stem}_mask.png", mask, palette=palette)
    write_json(out_dir / "legend.json", [{"index": i, "class": name, "color": color}
                                         for i, (name, color) in enumerate(zip(model.classes, palette))])
    print(f"wrote {len(files)} overlays and masks to {out_dir}", file=sys.stderr)
    return len(files)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """A thin wrapper over the Python API: edgeseg.load -> set_classes -> predict."""
    import torch

    from edgeseg.api import load

    parser = argparse.ArgumentParser(prog="python -m edgeseg.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="last.pt / best.pt from edgeseg.train")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", default="runs/predict", help="output folder")
    parser.add_argument("--classes", default=None, metavar="NAMES|FILE",
                        help="segment these class names instead of the model's own (comma list or one per line; "
                             "any names, unseen ones included, for a model whose head takes any vocabulary)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    model = load(args.checkpoint, device=args.device)
    if model.kind != "checkpoint":
        raise UserError(f"{args.checkpoint} is an exported artifact: use python -m deploy.predict --model ...")
    if args.classes is not None:
        model.set_classes(parse_class_names(args.classes))
    write_predictions(model, args.source, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
