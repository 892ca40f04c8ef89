"""Segment images with an exported artifact (any runtime), writing overlays and masks.

python -m deploy.predict --model runs/export/onnx-fp32/model.onnx --source IMG_OR_DIR --out DIR
"""
from __future__ import annotations

import argparse
from typing import Sequence

from deploy.runtime import load
from edgeseg.errors import cli_main
from edgeseg.predict import write_predictions
from edgeseg.text import read_class_names


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="artifact (.onnx, .xml, .tflite, .mlpackage) or its folder")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--out", default="runs/predict", help="output folder")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's)")
    parser.add_argument("--text-embeddings", default=None, help="open-vocab artifacts: [K, D] .npy from edgeseg.text")
    parser.add_argument("--classes", default=None, help="open-vocab artifacts: class names file matching the .npy")
    args = parser.parse_args(argv)
    classes = read_class_names(args.classes) if args.classes else None
    predictor = load(args.model, args.threads, args.text_embeddings, classes)
    write_predictions(predictor.run, predictor.card, args.source, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
