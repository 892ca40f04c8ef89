"""What a MediaPipe app gets: the stock ImageSegmenter on our --mediapipe TFLite artifacts, on real-size frames.

python -m benchmarks.mediapipe --checkpoint runs/demo/best.pt [--precisions fp32,int8] [--sizes 128,384,360x480,720x1280]
    [--images 10] [--out runs/mediapipe]

Exports (or reuses) `deploy.export --target tflite --mediapipe` artifacts, then for frames of each size
(embedded val scenes rendered at that size) compares MediaPipe Tasks' category mask with deploy.runtime's
predict (which resizes as MediaPipe does) and with the resize training used (PIL antialiased), and scores
both against the labels: the mIoU the app really sees, and what MediaPipe's non-antialiased resize costs.
Writes OUT/mediapipe.md and OUT/mediapipe.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from deploy.export import export
from deploy.parity import THRESHOLDS
from deploy.runtime import load
from edgeseg.data import build_source
from edgeseg.errors import CheckFailed, UserError, cli_main
from edgeseg.io import write_json, write_text
from edgeseg.metrics import ConfusionMatrix
from edgeseg.preprocess import resize_mask


def parse_sizes(value: str) -> list[tuple[int, int]]:
    """'128,360x480' -> [(128, 128), (360, 480)] as (height, width)."""
    sizes = []
    for item in value.split(","):
        try:
            h, _, w = item.strip().partition("x")
            sizes.append((int(h), int(w or h)))
        except ValueError as exc:
            raise UserError(f"--sizes: '{item}' is not N or HxW") from exc
    return sizes


def frames(data: str | None, height: int, width: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` val scenes rendered at max(H, W), stretched to H x W (mask by nearest neighbour)."""
    source = build_source(data, "val", max(height, width))
    out = []
    for index in range(min(count, len(source))):
        image, mask = source.load(index)
        if image.shape[:2] != (height, width):
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
            mask = resize_mask(mask, height, width)
        out.append((np.ascontiguousarray(image), mask))
    return out


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mediapipe", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--sizes", default="128,384,360x480,720x1280", help="frame sizes: N or HxW, comma list")
    parser.add_argument("--images", type=int, default=10, help="val scenes per size")
    parser.add_argument("--data", default=None, help="validation data (default: the embedded synthetic-scenes)")
    parser.add_argument("--out", default="runs/mediapipe")
    args = parser.parse_args(argv)
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as exc:
        raise UserError('this benchmark runs the stock MediaPipe client: pip install -e ".[mediapipe]"') from exc
    sizes, precisions = parse_sizes(args.sizes), args.precisions.split(",")
    out = Path(args.out)
    reports = export(args.checkpoint, "tflite", ",".join(precisions), out / "artifacts", calib_data="synthetic",
                     mediapipe=True, progress=False)
    rows = []
    for report in reports:
        folder = Path(report["artifact"]).parent
        precision = report["precision"]
        segmenter = vision.ImageSegmenter.create_from_options(vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=str(folder / "model.tflite")), output_category_mask=True,
            output_confidence_masks=False))
        predictor = load(folder)
        classes = len(predictor.classes)
        for height, width in tqdm(sizes, desc=f"mediapipe {precision}", file=sys.stderr):
            scores = {k: ConfusionMatrix(classes) for k in ("mediapipe", "runtime", "antialias")}
            agree = {"runtime": [], "antialias": []}
            for image, label in frames(args.data, height, width, args.images):
                app = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
                app_mask = app.category_mask.numpy_view().squeeze(-1)
                ours = predictor.predict(image)
                predictor.card["resize"] = "antialias"  # the resize training used
                smooth = predictor.predict(image)
                predictor.card["resize"] = "mediapipe"
                for name, mask in (("mediapipe", app_mask), ("runtime", ours), ("antialias", smooth)):
                    scores[name].update(mask, label)
                agree["runtime"].append(float((app_mask == ours).mean()))
                agree["antialias"].append(float((app_mask == smooth).mean()))
            rows.append({"precision": precision, "height": height, "width": width, "images": len(agree["runtime"]),
                         "agree_runtime": float(np.mean(agree["runtime"])),
                         "agree_antialias": float(np.mean(agree["antialias"])),
                         **{f"miou_{k}": v.summary(predictor.classes)["mIoU"] for k, v in scores.items()}})
        segmenter.close()
    lines = ["| precision | frame (H × W) | MediaPipe mask = deploy.runtime | MediaPipe mask = antialiased-resize "
             "prediction | val mIoU through MediaPipe | val mIoU, antialiased resize |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['height']} × {r['width']} | {100 * r['agree_runtime']:.2f} % | "
                     f"{100 * r['agree_antialias']:.2f} % | {100 * r['miou_mediapipe']:.1f} | "
                     f"{100 * r['miou_antialias']:.1f} |")
    lines.append(f"\nMediaPipe Tasks `ImageSegmenter` (PyPI mediapipe, category mask) on `deploy.export --target tflite "
                 f"--mediapipe` artifacts of `{args.checkpoint}`; {args.images} embedded val scenes per size, rendered "
                 "at the larger side and stretched to H × W. deploy.runtime reads the artifact's card (`resize: "
                 "mediapipe`) and resizes and upsamples as MediaPipe does; the antialiased column is the resize "
                 f"training used (PIL). Agreement thresholds: {', '.join(f'{p} {100 * THRESHOLDS[p]:g} %' for p in precisions)}.")
    text = "\n".join(lines) + "\n"
    write_text(out / "mediapipe.md", text)
    write_json(out / "mediapipe.json", rows)
    print(text)
    failed = [r for r in rows if r["agree_runtime"] < THRESHOLDS[r["precision"]]]
    if failed:
        raise CheckFailed("MediaPipe's mask differs from deploy.runtime's below the threshold at "
                          + ", ".join(f"{r['precision']} {r['height']}x{r['width']}" for r in failed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
