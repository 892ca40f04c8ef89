"""Peer models: untrained ones for the timing harness (PEERS), and our family + peers trained at equal budget.

python -m benchmarks.peers --out runs/peers --iters 1200     # trains edgeseg, edgeseg-small and LR-ASPP alike
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from edgeseg.card import make_card
from edgeseg.errors import UserError, choose, cli_main
from edgeseg.io import write_json, write_text


class LRASPPLogits(nn.Module):
    """torchvision LR-ASPP MobileNetV3-Large, logits at stride 8 (the final upsample left out,
    as ours leaves out its stride-4 -> full-size upsample)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone, self.classifier = model.backbone, model.classifier

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(image))


def lraspp(card: dict) -> tuple[nn.Module, dict]:
    """LR-ASPP with our class count (random weights: latency does not depend on them)."""
    peer_card = make_card(classes=card["classes"], backbone="lraspp_mobilenet_v3_large", head="lraspp",
                          head_config={}, img_size=card["img_size"], mean=card["mean"], std=card["std"],
                          text_encoder="none", text_dim=1, open_vocab=False)
    peer_card["output_stride"] = 8
    return LRASPPLogits(len(card["classes"])).eval(), peer_card


def other_head(head: str) -> Callable[[dict], tuple[nn.Module, dict]]:
    """Our model with another head (same backbone, classes and text embeddings)."""

    def build(card: dict) -> tuple[nn.Module, dict]:
        from edgeseg.card import build_model

        peer_card = dict(card, head=head, output_stride=32 if head == "linear" else 4)
        return build_model(peer_card).eval(), peer_card

    return build


PEERS: dict[str, Callable[[dict], tuple[nn.Module, dict]]] = {
    "lraspp": lraspp,
    "linear": other_head("linear"),
    "denseclip": other_head("denseclip"),
}


# Trained at equal budget by `python -m benchmarks.peers`: our family and the peers, each one edgeseg.train
# variant (same data, augmentation, iterations, batch, seed and loop; only the model differs).
FAMILY: dict[str, list[str]] = {
    "edgeseg": ["--backbone", "mobilenetv3", "--head", "fusion"],  # the demo model
    "edgeseg-small": ["--backbone", "mobilenetv3-small", "--head", "fusion", "--width", "64", "--depth", "1"],
    # torchvision's lraspp_mobilenet_v3_large, layer for layer (3.22 M parameters at 12 classes)
    "lraspp": ["--backbone", "mobilenetv3-os16", "--head", "lraspp"],
}


def train_family(names: list[str], train_args: list[str], out: Path) -> list[dict]:
    """Train (or reuse, when unchanged) each named model of FAMILY with the same shared flags."""
    from benchmarks.ablation import run_variant

    return [run_variant(name, FAMILY[name], train_args, out / name) for name in names]


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """python -m benchmarks.peers --out runs/peers [--models a,b] [shared edgeseg.train flags, e.g. --iters 1200]"""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers",
                                     description="Train our model family and the peers at equal budget.",
                                     epilog="models: " + ", ".join(f"{k} = {' '.join(v)}" for k, v in FAMILY.items()))
    parser.add_argument("--models", default=",".join(FAMILY), help="comma list (see below)")
    parser.add_argument("--out", default="runs/peers")
    args, train_args = parser.parse_known_args(argv)
    names = choose(args.models, list(FAMILY), "model")
    if any(flag in train_args for flag in ("--backbone", "--head", "--out", "--preset")):
        raise UserError("--backbone/--head/--preset/--out are set per model; pass only shared edgeseg.train flags")
    rows = train_family(names, train_args, Path(args.out))
    from benchmarks.ablation import markdown

    text = markdown(rows, "Every row: the same edgeseg.train flags (" + (" ".join(train_args) or "defaults")
                    + "), data, augmentation and seed; only the model differs.")
    write_text(Path(args.out) / "peers.md", text)
    write_json(Path(args.out) / "peers.json", rows)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
