"""Compare heads (fusion / denseclip / linear) at equal budget on the same backbone, data and seed.

python -m benchmarks.heads --iters 1000 --out runs/heads   (extra flags go to edgeseg.train)

Writes OUT/heads.md and OUT/heads.json: best and final val mIoU, params and GFLOPs at 512².
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.cost import count_params, gflops
from edgeseg.card import load_model
from edgeseg.config import parse_with_config, training_parser
from edgeseg.errors import cli_main
from edgeseg.io import write_json, write_text
from edgeseg.models import HEADS
from edgeseg.train import train


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heads", description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default=",".join(HEADS), help="comma list of heads")
    parser.add_argument("--out", default="runs/heads")
    args, train_args = parser.parse_known_args(argv)
    rows = []
    for head in args.heads.split(","):
        out = Path(args.out) / head
        targs = parse_with_config(training_parser("edgeseg.train", ""), [*train_args, "--head", head, "--out", str(out)])
        print(f"== {head}", file=sys.stderr)
        final = train(targs)
        model, card = load_model(str(out / "best.pt"))
        rows.append({"head": head, "backbone": targs.backbone, "iters": targs.iters, "batch": targs.batch_size,
                     "img_size": targs.img_size, "seed": targs.seed,
                     "final_mIoU": final["mIoU"], "best_mIoU": max(float(r.get("val_mIoU") or 0) for r in
                                                                   _history(out)),
                     "params_M": count_params(model) / 1e6, "head_params_M": count_params(model.head) / 1e6,
                     "gflops_512": gflops(model, 512)})
    lines = ["| head | backbone | iters × batch | final val mIoU | best val mIoU | params (M) | head params (M) | GFLOPs @512² |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['head']} | {r['backbone']} | {r['iters']} × {r['batch']} | {100 * r['final_mIoU']:.1f} | "
                     f"{100 * r['best_mIoU']:.1f} | {r['params_M']:.2f} | {r['head_params_M']:.2f} | {r['gflops_512']:.2f} |")
    lines.append(f"\nMachine: {platform.processor() or platform.machine()}, {platform.system()}; data: embedded synthetic-scenes val (100 images).")
    write_text(Path(args.out) / "heads.md", "\n".join(lines) + "\n")
    write_json(Path(args.out) / "heads.json", rows)
    print("\n".join(lines))
    return 0


def _history(out: Path) -> list[dict]:
    import csv

    with open(out / "metrics.csv") as fh:
        return [row for row in csv.DictReader(fh) if row.get("val_mIoU")]


if __name__ == "__main__":
    raise SystemExit(main())
