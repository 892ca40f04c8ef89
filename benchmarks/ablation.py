"""Ablation of the prompting methods: every preset (and the plain heads) at equal budget.

python -m benchmarks.ablation --out runs/ablation [--variants a,b,...] [edgeseg.train flags ...]

Each variant trains with the same backbone, data, seed and budget (the extra flags go to
edgeseg.train), then its best checkpoint is measured: val mIoU, parameters (all / trainable) and
GFLOPs at 512². A finished variant whose options are unchanged is reused (its OUT/NAME/row.json),
so an interrupted ablation continues. Writes OUT/ablation.md and OUT/ablation.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from benchmarks.cost import count_params, gflops
from benchmarks.machine import cpu_info
from edgeseg.card import load_model
from edgeseg.config import parse_with_config, training_parser
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text
from edgeseg.presets import PRESETS, describe
from edgeseg.train import Run, train
from edgeseg.registry import Registry

# variant id (also its folder under OUT) -> edgeseg.train flags; the plain heads first, then the presets.
VARIANTS: Registry[list[str]] = Registry("variant", {
    "plain-fusion": ["--head", "fusion"],
    "plain-denseclip": ["--head", "denseclip"],
    "fusion-context": ["--head", "fusion", "--context-tokens", "8"],
    "fusion-icpc-loss": ["--head", "fusion", "--multiscale-align", "--contrastive-weight", "0.5"],
    **{name: ["--preset", name] for name in PRESETS},
})

# Training flags that change how fast a run goes, not what it computes (each sample's augmentation is seeded by
# its index, so the data-loader worker count does not change the batches).
NOT_IDENTITY = ("--out", "--workers")
REPO = Path(__file__).resolve().parent.parent


def run_identity(argv: list[str]) -> list[str]:
    """What makes two training runs the same run: the argv without its `--out` folder (where its row.json lives)
    and speed-only flags, with paths inside this checkout made relative to it. So finished rows still match after
    their folder was moved (e.g. rows trained on a GPU machine, copied under a report folder)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in NOT_IDENTITY:
            skip = True
        elif any(arg.startswith(flag + "=") for flag in NOT_IDENTITY):
            continue
        else:
            kept.append(_repo_relative(arg))
    return kept


def _repo_relative(arg: str) -> str:
    """An absolute path inside this checkout (e.g. configs/splits/*.txt), written relative to it."""
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(REPO):
        return path.relative_to(REPO).as_posix()
    return arg


def training_device() -> str:
    """Where this process trains: the CUDA device's name, else the CPU's."""
    if torch.cuda.is_available():
        return f"CUDA {torch.cuda.get_device_name()}"
    return f"CPU {cpu_info()['cpu']}"


def _history(out: Path) -> list[dict]:
    """metrics.csv's rows (validation rows carry `val_mIoU`)."""
    with open(out / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def run_variant(name: str, flags: list[str], train_args: list[str], out: Path,
                parser: Callable[[], argparse.ArgumentParser] = lambda: training_parser("edgeseg.train", ""),
                run_class: type[Run] = Run) -> dict:
    """Train one variant (or reuse its finished row) and measure its best checkpoint.

    `parser`/`run_class` select the trainer (edgeseg.train by default; distill.train for distillation)."""
    argv = [*train_args, *flags, "--out", str(out)]
    preset = flags[flags.index("--preset") + 1] if "--preset" in flags else None
    resolved = describe(preset) if preset else ""  # a changed preset definition is a new variant
    row_file = out / "row.json"
    if row_file.is_file():
        row = json.loads(row_file.read_text())
        if run_identity(row.get("argv", [])) == run_identity(argv) and row.get("resolved", "") == resolved:
            print(f"== {name}: reusing {row_file}", file=sys.stderr)
            return row
    targs = parse_with_config(parser(), argv)
    if not row_file.is_file() and (out / "last.pt").is_file():  # interrupted (or trained, not yet measured): go on
        targs.resume = "auto"
    print(f"== {name}: {' '.join(flags)}{' (resuming from its last.pt)' if targs.resume else ''}", file=sys.stderr)
    started = time.time()
    final = train(targs, run_class)
    seconds = time.time() - started
    history = _history(out)
    if targs.resume:  # the trainer's clock of its last session (a run resumed with nothing left to train took ~0 s)
        seconds = max(seconds, float(history[-1]["seconds"]))
    model, card = load_model(str(out / "best.pt"))
    trainable = count_params(model)
    if card["head_config"].get("freeze_backbone"):
        trainable -= count_params(model.backbone)
    row = {"variant": name, "flags": " ".join(flags), "argv": argv, "resolved": resolved, "head": card["head"],
           "backbone": targs.backbone, "pretrained": card.get("pretrained"), "iters": targs.iters,
           "batch": targs.batch_size, "img_size": targs.img_size, "seed": targs.seed,
           "final_mIoU": final["mIoU"], "best_mIoU": max(float(r["val_mIoU"]) for r in history if r.get("val_mIoU")),
           "params_M": count_params(model) / 1e6, "trainable_M": trainable / 1e6,
           "context_tokens": card.get("context_tokens", 0), "gflops_512": gflops(model, 512),
           "train_seconds": round(seconds, 1), "val_images": targs.val_limit or "all", "device": training_device(),
           **({"resumed": True} if targs.resume else {})}
    write_json(row_file, row)
    return row


def markdown(rows: list[dict], note: str) -> str:
    lines = ["| variant | flags | final val mIoU | best val mIoU | params (M) | trainable (M) | GFLOPs @512² | train time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | `{r['flags']}` | {100 * r['final_mIoU']:.1f} | {100 * r['best_mIoU']:.1f} | "
                     f"{r['params_M']:.2f} | {r['trainable_M']:.2f} | {r['gflops_512']:.2f} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n\n" + note + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.splitlines()[0],
                                     epilog="variants: " + ", ".join(VARIANTS))
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list (see below)")
    parser.add_argument("--out", default="runs/ablation")
    args, train_args = parser.parse_known_args(argv)
    if any(flag in train_args for flag in ("--preset", "--head", "--out")):
        raise UserError("--preset/--head/--out are set per variant; pass only the shared edgeseg.train flags")
    names = VARIANTS.choose(args.variants)
    out = Path(args.out)
    rows = [run_variant(name, VARIANTS[name], train_args, out / name) for name in names]
    first = rows[0]
    machine = cpu_info()
    device = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    note = (f"Same budget for every row: {first['backbone']} ({first['pretrained']}), {first['iters']} iterations × "
            f"batch {first['batch']} at {first['img_size']}², seed {first['seed']}; data: embedded synthetic-scenes, "
            f"val mIoU on {first.get('val_images', 'its')} val images. Presets: " + "; ".join(f"`{p}` = `{describe(p)}`" for p in PRESETS)
            + f". Machine: {machine['cpu']}, {machine['cores']} logical cores, {device}, torch threads {torch.get_num_threads()}.")
    text = markdown(rows, note)
    write_text(out / "ablation.md", text)
    write_json(out / "ablation.json", rows)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
