"""Evaluate a checkpoint: mIoU, pixel accuracy and per-class IoU on a validation set.

python -m edgeseg.evaluate --checkpoint runs/demo/best.pt [--data PATH] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgeseg.card import load_model
from edgeseg.data import ValSet, build_source, collate_val
from edgeseg.errors import UserError, cli_main
from edgeseg.metrics import ConfusionMatrix


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, card: dict, source, device: torch.device | str = "cpu",
                   batch_size: int = 8, limit: int | None = None, progress: bool = True,
                   amp: bool = False) -> dict:
    """Run `model` over `source` and return the metric summary (predictions at full mask size)."""
    if list(source.classes) != list(card["classes"]):
        raise UserError(f"the data's {len(source.classes)} classes differ from the checkpoint's "
                        f"{len(card['classes'])}; evaluate on data with the same classes.txt")
    dataset = ValSet(source, card)
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_val)
    confusion = ConfusionMatrix(len(card["classes"]))
    was_training = model.training
    model.eval()
    device = torch.device(device)
    for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress, file=sys.stderr):
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = model(images.to(device)).float()
        for single, mask in zip(logits, masks):
            up = F.interpolate(single[None], size=mask.shape, mode="bilinear", align_corners=False)
            confusion.update(up[0].argmax(0).cpu(), mask)
    model.train(was_training)
    return confusion.summary(list(card["classes"]))


def format_table(summary: dict) -> str:
    """Per-class IoU table + headline metrics, as plain text."""
    width = max(len(name) for name in summary["per_class_iou"]) + 2
    lines = [f"{'class':<{width}}IoU"]
    for name, value in summary["per_class_iou"].items():
        lines.append(f"{name:<{width}}{'  n/a' if value is None else f'{100 * value:5.1f}'}")
    lines.append(f"{'mIoU':<{width}}{100 * summary['mIoU']:5.1f}")
    lines.append(f"{'pixel acc':<{width}}{100 * summary['pixel_accuracy']:5.1f}")
    return "\n".join(lines)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeseg.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="last.pt / best.pt from edgeseg.train")
    parser.add_argument("--data", default=None, help="validation data (default: the embedded synthetic-scenes val split)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    args = parser.parse_args(argv)
    model, card = load_model(args.checkpoint)
    model.to(args.device)
    source = build_source(args.data, "val", card["img_size"])
    summary = evaluate_model(model, card, source, args.device, args.batch_size, args.limit,
                             amp=args.device.startswith("cuda"))
    summary["checkpoint"], summary["data"] = args.checkpoint, source.name
    print(json.dumps(summary, indent=2) if args.json else format_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
