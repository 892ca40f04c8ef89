"""Compare heads (fusion / denseclip / linear) at equal budget on the same backbone, data and seed.

python -m benchmarks.heads --iters 1000 --out runs/heads   (extra flags go to edgeseg.train)

Each head is one variant of benchmarks.ablation (trained by its run_variant, reused when unchanged);
writes OUT/heads.md and OUT/heads.json: best and final val mIoU, params (all / head) and GFLOPs at 512².
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from benchmarks.ablation import run_variant
from benchmarks.cost import count_params
from benchmarks.machine import cpu_info
from edgeseg.card import load_model
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text
from edgeseg.models import HEADS


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.heads", description=__doc__.splitlines()[0])
    parser.add_argument("--heads", default="fusion,denseclip,linear", help=f"comma list of {', '.join(HEADS)}")
    parser.add_argument("--out", default="runs/heads")
    args, train_args = parser.parse_known_args(argv)
    heads = HEADS.choose(args.heads)
    if any(flag in train_args for flag in ("--head", "--out")):
        raise UserError("--head/--out are set per head; pass only the shared edgeseg.train flags")
    rows = []
    for head in heads:
        out = Path(args.out) / head
        row = run_variant(head, ["--head", head], train_args, out)
        model, _ = load_model(str(out / "best.pt"))
        rows.append(dict(row, head_params_M=count_params(model.head) / 1e6))
    lines = ["| head | backbone | iters × batch | final val mIoU | best val mIoU | params (M) | head params (M) | GFLOPs @512² |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['head']} | {r['backbone']} | {r['iters']} × {r['batch']} | {100 * r['final_mIoU']:.1f} | "
                     f"{100 * r['best_mIoU']:.1f} | {r['params_M']:.2f} | {r['head_params_M']:.2f} | {r['gflops_512']:.2f} |")
    machine = cpu_info()
    lines.append(f"\nMachine: {machine['cpu']}, {machine['cores']} logical cores; data: embedded synthetic-scenes val "
                 f"({rows[0]['val_images']} images).")
    write_text(Path(args.out) / "heads.md", "\n".join(lines) + "\n")
    write_json(Path(args.out) / "heads.json", rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
