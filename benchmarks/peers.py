"""Peer models: untrained ones for the timing harness (PEERS), and our family + peers trained at equal budget.

python -m benchmarks.peers --out runs/peers --iters 1200 [--seeds 0,1,2]   # trains the family and LR-ASPP alike

Seed 0 of a model trains into OUT/NAME (what benchmarks.pareto times), seed N > 0 into OUT/NAME-seedN; with several
seeds the table gives each model's mean ± sample std. FAMILY members train with edgeseg.train; EXTERNAL peers
(YOLO26n-sem) with their own trainer and recipe, on the same data at the same budget in images seen.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from edgeseg.card import make_card
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text
from edgeseg.registry import Registry


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
                          text_encoder="none", text_dim=1, open_vocab=False)  # output_stride 8: the card's rule
    return LRASPPLogits(len(card["classes"])).eval(), peer_card


def other_head(head: str) -> Callable[[dict], tuple[nn.Module, dict]]:
    """Our model with another head (same backbone, classes and text embeddings)."""

    def build(card: dict) -> tuple[nn.Module, dict]:
        from edgeseg.card import build_model, output_stride

        peer_card = dict(card, head=head, output_stride=output_stride(head, card["head_config"]))
        return build_model(peer_card).eval(), peer_card

    return build


def family_member(name: str) -> Callable[[dict], tuple[nn.Module, dict]]:
    """Our model as FAMILY[name]'s edgeseg.train flags build it, with the card's classes and text embeddings
    (random weights: for timing and profiles)."""

    def build(card: dict) -> tuple[nn.Module, dict]:
        from edgeseg.card import build_model, output_stride
        from edgeseg.config import head_config, parse_with_config, training_parser

        args = parse_with_config(training_parser("benchmarks.peers", ""), FAMILY[name])
        config = head_config(args)
        peer_card = dict(card, backbone=args.backbone, head=args.head, head_config=config,
                         output_stride=output_stride(args.head, config))
        return build_model(peer_card).eval(), peer_card

    return build


def yolo26n_sem(card: dict) -> tuple[nn.Module, dict]:
    """Ultralytics YOLO26n-sem with our class count (random weights; needs ultralytics: benchmarks.yolo)."""
    from benchmarks.yolo import build, card_for

    return build(len(card["classes"]))[1], card_for(card["classes"], card["img_size"])


PEERS: Registry[Callable[[dict], tuple[nn.Module, dict]]] = Registry("peer", {
    "lraspp": lraspp,
    "linear": other_head("linear"),
    "denseclip": other_head("denseclip"),
    "edgeseg-r32-d1": family_member("edgeseg-r32-d1"),
    "edgeseg-v4s-r32-d1": family_member("edgeseg-v4s-r32-d1"),
    "yolo26n-sem": yolo26n_sem,
}, extra=("none",))


# Trained at equal budget by `python -m benchmarks.peers`: our family and the peers, each one edgeseg.train
# variant (same data, augmentation, iterations, batch, seed and loop; only the model differs).
FAMILY: dict[str, list[str]] = {
    "edgeseg": ["--backbone", "mobilenetv3", "--head", "fusion"],  # the demo model
    # the demo model with its decoder stopped at stride 8 (LR-ASPP's output stride): docs/profile.md
    "edgeseg-s8": ["--backbone", "mobilenetv3", "--head", "fusion", "--out-stride", "8"],
    # the demo model with a narrower decoder / pixel embedding (the stride-4 work): docs/profile.md
    "edgeseg-w64": ["--backbone", "mobilenetv3", "--head", "fusion", "--decoder-width", "64"],
    "edgeseg-w32": ["--backbone", "mobilenetv3", "--head", "fusion", "--decoder-width", "32"],
    "edgeseg-w64-d1": ["--backbone", "mobilenetv3", "--head", "fusion", "--decoder-width", "64", "--depth", "1"],
    # the redesigned head: decoder, pixel embeddings and scores at stride 8, a 32-channel text-conditioned stride-4
    # refinement (no 128-wide tensor at stride 4), one fusion block (docs/head-seeds.md, docs/pareto.md)
    "edgeseg-r32-d1": ["--backbone", "mobilenetv3", "--head", "fusion", "--refine-width", "32", "--depth", "1"],
    # the same head on MobileNetV4-Conv-Small (plain convolutions: no SE or hard-swish islands for the runtimes)
    "edgeseg-v4s-r32-d1": ["--backbone", "mobilenetv4-small", "--head", "fusion", "--refine-width", "32", "--depth", "1"],
    "edgeseg-small": ["--backbone", "mobilenetv3-small", "--head", "fusion", "--width", "64", "--depth", "1",
                      "--out-stride", "8"],
    # torchvision's lraspp_mobilenet_v3_large, layer for layer (3.22 M parameters at 12 classes)
    "lraspp": ["--backbone", "mobilenetv3-os16", "--head", "lraspp"],
}


# Peers trained by their own trainer (same data, same images seen): name -> its module (train, load, HEAD).
EXTERNAL: dict[str, str] = {"yolo26n-sem": "benchmarks.yolo"}
# What an external run's identity is made of: the shared flags it honours (the rest are edgeseg.train's recipe).
EXTERNAL_FLAGS = ("iters", "batch_size", "img_size", "data")


def _external(name: str):
    import importlib

    return importlib.import_module(EXTERNAL[name])


def train_external(name: str, train_args: list[str], out: Path, seed: int, dataset_root: Path) -> dict:
    """Train (or reuse, when its budget, data and seed are unchanged) one seed of an EXTERNAL peer."""
    import json
    import sys

    from edgeseg.config import parse_with_config, training_parser
    from edgeseg.io import write_json

    targs = parse_with_config(training_parser("edgeseg.train", ""), train_args)
    identity = {flag: getattr(targs, flag) for flag in EXTERNAL_FLAGS} | {"seed": seed, "peer": name}
    row_file = out / "row.json"
    if row_file.is_file() and json.loads(row_file.read_text()).get("identity") == identity:
        print(f"== {name}: reusing {row_file}", file=sys.stderr)
        return json.loads(row_file.read_text())
    row = _external(name).train(out, iters=targs.iters, batch=targs.batch_size, img_size=targs.img_size, seed=seed,
                                data=targs.data, dataset_root=dataset_root)
    row["identity"] = identity
    write_json(row_file, row)
    return row


def train_family(names: list[str], train_args: list[str], out: Path, seeds: Sequence[int] = (0,)) -> list[dict]:
    """Train (or reuse, when unchanged) each named model (FAMILY or EXTERNAL) with the same shared flags, once per
    seed."""
    from benchmarks.ablation import run_variant

    def one(name: str, seed: int) -> dict:
        folder = out / (name if seed == 0 else f"{name}-seed{seed}")
        if name in EXTERNAL:
            return train_external(name, train_args, folder, seed, out / f"{name}-data")
        return run_variant(name, FAMILY[name], [*train_args, "--seed", str(seed)], folder)

    return [dict(one(name, seed), model=name) for name in names for seed in seeds]


def recipe_notes(names: Sequence[str | None]) -> str:
    """What differs in the recipes of the EXTERNAL peers among `names` (for a table's note; '' when none)."""
    return "".join(f" {_external(n).RECIPE}." for n in dict.fromkeys(names) if n in EXTERNAL)


def load_trained(path: str) -> tuple[nn.Module, dict]:
    """A checkpoint trained by `python -m benchmarks.peers` (weights only): ours, or an EXTERNAL peer's (by the
    head its card names) -> (model in eval mode, card)."""
    from edgeseg.card import build_model, check_card
    from edgeseg.io import load_checkpoint

    payload = load_checkpoint(path)
    card = check_card(payload["card"], path)
    if name := external_peer(card):
        return _external(name).load(payload)
    return build_model(card, payload["model"]), card


def external_peer(card: dict) -> str | None:
    """The EXTERNAL peer a card describes (by the head it names), else None (one of ours)."""
    return next((name for name in EXTERNAL if card["head"] == _external(name).HEAD), None)


def seeds_table(rows: list[dict], note: str) -> str:
    """One line per model: best val mIoU mean ± sample std over its seeds (and each seed's), size, cost."""
    lines = ["| model | flags | seeds | best val mIoU (mean ± std) | per seed | params (M) | GFLOPs @512² | train time |",
             "|---|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        values = [100 * r["best_mIoU"] for r in mine]
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        lines.append(f"| {model} | `{mine[0]['flags']}` | {len(mine)} | {statistics.mean(values):.1f}{spread} | "
                     + ", ".join(f"{v:.1f}" for v in values) + f" | {mine[0]['params_M']:.2f} | "
                     f"{mine[0]['gflops_512']:.2f} | {statistics.mean(r['train_seconds'] for r in mine) / 60:.1f} min |")
    return "\n".join(lines) + "\n\n" + note + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """python -m benchmarks.peers --out runs/peers [--models a,b] [shared edgeseg.train flags, e.g. --iters 1200]"""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peers", allow_abbrev=False,  # --seed is not --seeds
                                     description="Train our model family and the peers at equal budget.",
                                     epilog="models: " + ", ".join(f"{k} = {' '.join(v)}" for k, v in FAMILY.items())
                                     + "; trained by their own trainer: " + ", ".join(
                                         f"{k} ({EXTERNAL[k]})" for k in EXTERNAL))
    parser.add_argument("--models", default=",".join(FAMILY), help="comma list (see below; default: FAMILY; "
                        f"trained by their own trainer: {', '.join(EXTERNAL)})")
    parser.add_argument("--out", default="runs/peers")
    parser.add_argument("--seeds", default="0", help="comma list of training seeds (mean ± std over them)")
    args, train_args = parser.parse_known_args(argv)
    names = Registry("model", {**FAMILY, **EXTERNAL}).choose(args.models)
    if any(flag in train_args for flag in ("--backbone", "--head", "--out", "--preset", "--seed")):
        raise UserError("--backbone/--head/--preset/--out/--seed are set per model; pass only shared edgeseg.train "
                        "flags (seeds: --seeds)")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as exc:
        raise UserError(f"--seeds must be a comma list of integers: {exc}") from exc
    rows = train_family(names, train_args, Path(args.out), seeds)
    devices = ", ".join(dict.fromkeys(r.get("device", "not recorded") for r in rows))
    text = seeds_table(rows, "Every row: the same edgeseg.train flags (" + (" ".join(train_args) or "defaults")
                       + f"), data and augmentation; seeds {args.seeds}; only the model differs. Best val mIoU on "
                       f"the embedded synthetic-scenes val split. Trained on: {devices}." + recipe_notes(names))
    write_text(Path(args.out) / "peers.md", text)
    write_json(Path(args.out) / "peers.json", rows)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
