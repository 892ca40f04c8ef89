"""Accuracy of every exported artifact on a validation set, next to torch's.

python -m benchmarks.accuracy --checkpoint runs/demo/best.pt [--data PATH] --out runs/bench

Writes OUT/accuracy.json ({"torch": mIoU, "<target>-<precision>": mIoU, ...}) and accuracy.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from benchmarks.latency import _artifact
from deploy.calibration import load_inputs
from deploy.runtime import load
from edgeseg.card import load_model
from edgeseg.data import build_source
from edgeseg.errors import UserError, cli_main
from edgeseg.evaluate import evaluate_model
from edgeseg.io import file_hash, write_json, write_text
from edgeseg.metrics import ConfusionMatrix


def artifact_miou(folder: Path, source, limit: int | None) -> float:
    """mIoU of an artifact (through deploy.runtime) against the dataset's labels."""
    predictor = load(folder)
    confusion = ConfusionMatrix(len(predictor.classes))
    for index in range(min(limit or len(source), len(source))):
        image, mask = source.load(index)
        confusion.update(predictor.predict(image), mask)
    return confusion.summary(predictor.classes)["mIoU"]


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default=None, help="validation data (default: embedded synthetic-scenes val)")
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--calib-data", default="synthetic")
    parser.add_argument("--limit", type=int, default=None, help="first N validation images only")
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args(argv)
    model, card = load_model(args.checkpoint)
    card = dict(card, open_vocab=False, source_checkpoint=file_hash(args.checkpoint))
    source = build_source(args.data, "val", card["img_size"])
    if list(source.classes) != list(card["classes"]):
        raise UserError("the data's classes differ from the checkpoint's")
    out = Path(args.out)
    results = {"torch": evaluate_model(model, card, source, limit=args.limit, progress=False)["mIoU"]}
    precisions = args.precisions.split(",")
    calibration = [(x,) for x in load_inputs(args.calib_data, card, 16, "train")] if "int8" in precisions else []
    verify = [(x,) for x in load_inputs("synthetic", card, 4, "val")]
    jobs = [(t, p) for t in args.targets.split(",") for p in precisions]
    for target, precision in tqdm(jobs, desc="accuracy", file=sys.stderr):
        folder, _ = _artifact(model, card, target, precision, out / "artifacts" / "edgeseg-native", calibration, verify)
        results[f"{target}-{precision}"] = artifact_miou(folder, source, args.limit)
    lines = ["| model | val mIoU | Δ vs torch |", "|---|---|---|"]
    lines += [f"| {name} | {100 * v:.2f} | {100 * (v - results['torch']):+.2f} |" for name, v in results.items()]
    lines.append(f"\nData: {source.name} val ({args.limit or len(source)} images); checkpoint {args.checkpoint}.")
    write_json(out / "accuracy.json", results)
    write_text(out / "accuracy.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
