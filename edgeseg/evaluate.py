"""Evaluate a checkpoint: mIoU, pixel accuracy and per-class IoU on a validation set.

python -m edgeseg.evaluate --checkpoint runs/demo/best.pt [--data PATH] [--json] [--control shuffle|unrelated]

A checkpoint trained with --unseen is scored over all its class names at once (seen and unseen
compete): mIoU(S), mIoU(U) and hIoU are reported next to mIoU and per-class IoU.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgeseg.card import build_model, check_card
from edgeseg.data import ValSet, build_source, collate_val, data_spec_for
from edgeseg.errors import UserError, cli_main
from edgeseg.metrics import ConfusionMatrix
from edgeseg.io import load_checkpoint
from edgeseg.zeroshot import CONTROLS, parse_unseen, remap_labels, zero_shot_metrics


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, card: dict, source, device: torch.device | str = "cpu",
                   batch_size: int = 8, limit: int | None = None, progress: bool = True,
                   amp: bool = False, classes: list[str] | None = None,
                   text_embeddings: torch.Tensor | np.ndarray | None = None,
                   label_map: np.ndarray | None = None) -> dict:
    """Run `model` over `source` and return the metric summary (predictions at full mask size).

    By default every class of the card is scored with the model's own embeddings. `classes` +
    `text_embeddings` score another vocabulary (labels mapped by `label_map`, e.g. the seen classes of a
    zero-shot split; or the controls). When the card holds a zero-shot split and all its classes are
    scored, the summary adds mIoU_seen, mIoU_unseen and hIoU."""
    if list(source.classes) != list(card["classes"]):
        raise UserError(f"the data's {len(source.classes)} classes differ from the checkpoint's "
                        f"{len(card['classes'])}; evaluate on data with the same classes.txt")
    names = list(classes or card["classes"])
    text = None if text_embeddings is None else torch.as_tensor(text_embeddings).float()
    dataset = ValSet(source, card)
    if limit:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_val)
    confusion = ConfusionMatrix(len(names))
    was_training = model.training
    model.eval()
    device = torch.device(device)
    text = None if text is None else text.to(device)
    for images, masks in tqdm(loader, desc="evaluate", leave=False, disable=not progress, file=sys.stderr):
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            logits = (model(images.to(device)) if text is None else model(images.to(device), text)).float()
        for single, mask in zip(logits, masks):
            up = F.interpolate(single[None], size=mask.shape, mode="bilinear", align_corners=False)
            label = mask if label_map is None else remap_labels(mask.numpy(), label_map)
            confusion.update(up[0].argmax(0).cpu(), label)
    model.train(was_training)
    summary = confusion.summary(names)
    if card.get("unseen") and names == list(card["classes"]):
        summary.update(zero_shot_metrics(summary["per_class_iou"], card["unseen"]))
        summary["unseen"] = list(card["unseen"])
    return summary


def format_table(summary: dict) -> str:
    """Per-class IoU table + headline metrics, as plain text (unseen classes marked)."""
    unseen = set(summary.get("unseen", []))
    width = max(len(name) for name in summary["per_class_iou"]) + 2
    lines = [f"{'class':<{width}}IoU"]
    for name, value in summary["per_class_iou"].items():
        mark = "  (unseen)" if name in unseen else ""
        lines.append(f"{name:<{width}}{'  n/a' if value is None else f'{100 * value:5.1f}'}{mark}")
    lines.append(f"{'mIoU':<{width}}{100 * summary['mIoU']:5.1f}")
    lines.append(f"{'pixel acc':<{width}}{100 * summary['pixel_accuracy']:5.1f}")
    if "hIoU" in summary:
        for key, label in (("mIoU_seen", "mIoU(S)"), ("mIoU_unseen", "mIoU(U)"), ("hIoU", "hIoU")):
            lines.append(f"{label:<{width}}{100 * summary[key]:5.1f}")
    if "control" in summary:
        lines.append(f"(control: {summary['control']})")
    return "\n".join(lines)


def control_embeddings(card: dict, context: dict | None, control: str, seed: int = 0) -> np.ndarray:
    """The model's class embeddings with the unseen rows altered by a control (see edgeseg.zeroshot)."""
    from edgeseg.prompt_learner import embed_class_names
    from edgeseg.zeroshot import control_names, shuffled_rows, split_from_card

    split = split_from_card(card)
    if split is None:
        raise UserError("--control needs a checkpoint trained with --unseen (a zero-shot split)")
    if control == "shuffle":
        return shuffled_rows(embed_class_names(card, split.classes, context), split.unseen_indices, seed)
    return embed_class_names(card, control_names(split, control), context)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeseg.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="last.pt / best.pt from edgeseg.train")
    parser.add_argument("--data", default=None, help="validation data (default: the embedded data the model was trained on, val split)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--unseen", default=None, metavar="NAMES|FILE",
                        help="the zero-shot split to report (must equal the checkpoint's; default: the checkpoint's)")
    parser.add_argument("--control", choices=CONTROLS, default=None,
                        help="zero-shot control: 'shuffle' permutes the unseen classes' embeddings among themselves, "
                             "'unrelated' replaces the unseen names with unrelated words")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.checkpoint)
    card = check_card(payload.get("card"), args.checkpoint)
    model = build_model(card, payload["model"]).to(args.device)
    if args.unseen is not None:
        given = parse_unseen(args.unseen, card["classes"])
        trained = list(card.get("unseen") or [])
        if given != trained:
            what = f"held out {', '.join(trained)}" if trained else "was trained with every class seen"
            raise UserError(f"--unseen {', '.join(given)} disagrees with the checkpoint, which {what}; "
                            "drop --unseen to use the checkpoint's split")
    source = build_source(data_spec_for(card, args.data), "val", card["img_size"])
    text = control_embeddings(card, payload.get("context"), args.control) if args.control else None
    summary = evaluate_model(model, card, source, args.device, args.batch_size, args.limit,
                             amp=args.device.startswith("cuda"), text_embeddings=text)
    summary["checkpoint"], summary["data"] = args.checkpoint, source.name
    if args.control:
        summary["control"] = args.control
    print(json.dumps(summary, indent=2) if args.json else format_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
