"""Segment images with an exported artifact (any runtime), writing overlays and masks. Imports no torch.

python -m deploy.predict --model runs/export/onnx-fp32/model.onnx --source IMG_OR_DIR --out DIR
python -m deploy.predict --model runs/export/tflite-fp32-openvocab --classes "sky,grass,road" --source IMG_OR_DIR
"""
from __future__ import annotations

import argparse
from typing import Sequence

from deploy.runtime import load_embeddings
from edgeseg import checks
from edgeseg.api import load
from edgeseg.errors import UserError, cli_main
from edgeseg.predict import parse_class_names, write_predictions


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="artifact (.onnx, .xml, .tflite, .mlpackage) or its folder")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", default="runs/predict", help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's)")
    parser.add_argument("--classes", default=None, metavar="NAMES|FILE",
                        help="open-vocab artifacts: the class names to segment (comma list or one per line); embedded "
                             "by the artifact's text encoder (--text-encoder export) unless --text-embeddings is given")
    parser.add_argument("--text-embeddings", default=None,
                        help="open-vocab artifacts: [K, D] .npy from python -m edgeseg.text, for the --classes names")
    args = parser.parse_args(argv)
    model = load(args.model, threads=checks.threads(args.threads, "--threads"))  # a thin wrapper over the Python API
    if model.kind != "artifact":
        raise UserError(f"{args.model} is a checkpoint: use python -m edgeseg.predict --checkpoint ...")
    if args.text_embeddings and not args.classes:
        raise UserError("--text-embeddings needs --classes: the names of its rows, in order")
    if args.classes:
        names = parse_class_names(args.classes)
        model.set_classes(names, load_embeddings(args.text_embeddings) if args.text_embeddings else None)
    write_predictions(model, args.source, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
