"""Each exact export rewrite (deploy.rewrites) measured per runtime: the same checkpoint exported with and
without it (class-mask output, each size), both parity-checked against torch, each timed in a process of its
own in alternated rounds. A rewrite is on by default (`REWRITES[name].on`, per precision) only where this table shows it
faster (`verdict`).

python -m benchmarks.rewrites --checkpoint runs/demo/best.pt --sizes 128,512 --docs docs
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from benchmarks.latency import _timing
from benchmarks.onnx_int8 import NOISE, publish
from deploy.export import export
from deploy.parity import PRECISIONS
from deploy.rewrites import REWRITES
from deploy.targets import TARGETS
from edgeseg import checks
from edgeseg.errors import UserError, cli_main
from edgeseg.io import file_hash
from edgeseg.registry import Registry

# the runtimes that run here (Core ML needs macOS)
RUNNABLE: Registry[str] = Registry("target", {t: TARGETS[t] for t in ("onnx", "openvino", "tflite")})


def _export(checkpoint: str, folder: Path, target: str, size: int, rewrite: str, args) -> dict:
    """One class-mask artifact (reused when its folder holds a parity report of this checkpoint)."""
    name = f"{target}-{args.precision}-mask"
    report_file = folder / name / "parity.json"
    card_file = folder / name / "card.json"
    if not (report_file.is_file() and card_file.is_file()
            and json.loads(card_file.read_text()).get("source_checkpoint") == file_hash(checkpoint)):
        export(checkpoint, target, args.precision, folder, img_size=size, output="mask", rewrite=rewrite,
               verify_images=args.verify_images, calib_data=args.calib_data if args.precision == "int8" else None,
               enforce=False, progress=False)
    return json.loads(report_file.read_text()) | {"folder": str(folder / name)}


def separate_processes(folders: dict[str, str], args) -> dict[str, dict]:
    """Each artifact timed in a process of its own, the pair alternated `rounds` times (order rotated); per
    artifact the median of the rounds' p50s. Not two sessions in one process: an idle ONNX Runtime session's
    spinning threads slow the other one's runs (in-process interleaving put this pair's ratio anywhere from
    0.5x to 1.5x at 128²)."""
    p50s: dict[str, list[float]] = {key: [] for key in folders}
    for round_ in range(args.rounds):
        order = list(folders) if round_ % 2 == 0 else list(folders)[::-1]
        for key in order:
            p50s[key].append(_timing(["--artifact", folders[key], "--threads", str(args.threads), "--warmup",
                                      str(args.warmup), "--runs", str(args.runs)])["p50_ms"])
    return {key: {"p50_ms": float(np.median(values)), "round_p50s_ms": values} for key, values in p50s.items()}


def markdown(rows: list[dict], note: str) -> str:
    lines = ["| size | runtime | rewrite | p50 as trained (ms) | p50 rewritten (ms) | rewritten / as trained | "
             "mask agreement vs torch: as trained / rewritten | applied |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']}² | {r['target']} | `{r['rewrite']}` | {r['p50_before']:.2f} | {r['p50_after']:.2f} "
                     f"| {r['ratio']:.2f}x | {100 * r['agreement_before']:.2f} / {100 * r['agreement_after']:.2f} % "
                     f"| {'yes' if r['applied'] else 'no (does not apply)'} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


def verdict(rows: list[dict]) -> dict[str, list[str]]:
    """Per rewrite, the targets where it passed parity at every size, was faster beyond timing noise at one size
    (ratio below 1/NOISE) and slower beyond it at none (ratio at most NOISE)."""
    out: dict[str, list[str]] = {}
    for name in dict.fromkeys(r["rewrite"] for r in rows):
        mine = [r for r in rows if r["rewrite"] == name]
        out[name] = [t for t in dict.fromkeys(r["target"] for r in mine)
                     if all(r["passed"] and r["applied"] and r["ratio"] <= NOISE for r in mine if r["target"] == t)
                     and any(r["ratio"] < 1 / NOISE for r in mine if r["target"] == t)]
    return out


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rewrites", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="best.pt from edgeseg.train (the demo model)")
    parser.add_argument("--rewrites", default=",".join(REWRITES), help=f"comma list of {', '.join(REWRITES)}")
    parser.add_argument("--targets", default=",".join(RUNNABLE), help=f"comma list of {', '.join(RUNNABLE)}")
    parser.add_argument("--sizes", default="128,512", help="input sizes (multiples of 32)")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16 or int8 (int8: calibrated on --calib-data, "
                        "the keep-float roles of deploy.roles; DOCS/rewrites-int8.md)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternated timing rounds (a process per artifact each)")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per artifact per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--verify-images", type=int, default=16)
    parser.add_argument("--calib-data", default="synthetic")
    parser.add_argument("--out", default="runs/rewrites")
    parser.add_argument("--docs", default=None, help="also write DOCS/rewrites.md (DOCS/rewrites-PRECISION.md)")
    args = parser.parse_args(argv)
    names, targets = REWRITES.choose(args.rewrites), RUNNABLE.choose(args.targets)
    if not names or not targets:
        raise UserError("give at least one rewrite and one target")
    sizes = checks.integer_list(args.sizes, "--sizes", 32, 4096)
    PRECISIONS.lookup(args.precision, where="--precision")
    checks.threads(args.threads, "--threads")
    for value, flag in ((args.rounds, "--rounds"), (args.runs, "--runs"), (args.verify_images, "--verify-images")):
        checks.integer(value, flag, 1)
    out = Path(args.out)
    rows = []
    jobs = [(size, target, name) for size in sizes for target in targets for name in names]
    for size, target, name in tqdm(jobs, desc="rewrites", file=sys.stderr):
        before = _export(args.checkpoint, out / f"{size}" / "none", target, size, "none", args)
        after = _export(args.checkpoint, out / f"{size}" / name, target, size, name, args)
        applied = name in json.loads((Path(after["folder"]) / "card.json").read_text()).get("rewrites_applied", [])
        timed = separate_processes({"before": before["folder"], "after": after["folder"]}, args)
        rows.append({"size": size, "target": target, "rewrite": name, "applied": applied,
                     "p50_before": timed["before"]["p50_ms"], "p50_after": timed["after"]["p50_ms"],
                     "ratio": timed["after"]["p50_ms"] / timed["before"]["p50_ms"],
                     "agreement_before": before["pixel_agreement"], "agreement_after": after["pixel_agreement"],
                     "passed": bool(before["passed"] and after["passed"]), "timing": timed})
    faster = verdict(rows)
    note = (f"Checkpoint `{file_hash(args.checkpoint)}`, {args.precision}, class-mask output (upsample + argmax in the "
            f"graph), {args.threads} threads; each artifact timed in a process of its own, the pair alternated "
            f"{args.rounds} times ({args.runs} runs after {args.warmup} warm-up runs each), median of the rounds' p50s; "
            "agreement: pixel agreement of the artifact's masks with the torch model's "
            f"on {args.verify_images} held-out val images (the export parity gate). Ratios within {100 * (NOISE - 1):.0f} % "
            "of 1 are timing noise. On by default where parity passed at every size, the rewrite was faster beyond the "
            "noise at one size and slower beyond it at none: "
            + "; ".join(f"`{n}`: {', '.join(t) or 'none'}" for n, t in faster.items())
            + f". Shipped defaults at {args.precision} (deploy.rewrites.REWRITES): "
            + "; ".join(f"`{n}`: {', '.join(r.on.get(args.precision, ())) or 'none'}" for n, r in REWRITES.items())
            + ".")
    doc = "rewrites" if args.precision == "fp32" else f"rewrites-{args.precision}"
    publish(out, "rewrites", markdown(rows, note), {"rows": rows, "faster": faster}, args.docs, doc,
            f"Exact export rewrites, measured per runtime ({args.precision})", argv, {"model": file_hash(args.checkpoint)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
