"""Which ONNX Runtime int8 recipe to ship, by measurement on this CPU: agreement with torch and latency.

python -m benchmarks.onnx_int8 --checkpoint runs/demo/best.pt [--sizes 128,512] [--threads 1,2] [--docs docs]

For each recipe of deploy.targets.onnx.RECIPES (activation type S8/U8, QDQ or QOperator format,
reduce_range on/off; convolutions per channel, MinMax calibration) and each size, exports the closed-set
model and (with --open-vocab) the K_max open-vocabulary graph, verified on held-out val images, then
times every artifact with the fp32 one, interleaved in one process (rounds x runs, p50 per artifact) so
the ratios share the machine's state. Writes OUT/onnx-int8.{md,json} and, with --docs,
DOCS/onnx-int8-recipes.md stamped with the commit, checkpoint and machine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks.stamp import stamp
from benchmarks.timing import summarize
from deploy.export import export
from deploy.targets.onnx import DEFAULT_RECIPE, RECIPES
from edgeseg import checks
from edgeseg.errors import UserError, cli_main
from edgeseg.io import file_hash, write_json, write_text


def _export(checkpoint: str, out: Path, size: int, recipe: str | None, open_vocab: bool, args) -> dict:
    """One artifact (reused if its folder holds a parity report), its parity report."""
    precision = "int8" if recipe else "fp32"
    folder = out / f"{recipe or 'fp32'}-{size}{'-openvocab' if open_vocab else ''}"
    name = f"onnx-{precision}{'-openvocab' if open_vocab else ''}"
    if not (folder / name / "parity.json").is_file():
        export(checkpoint, "onnx", precision, folder, calib_data=args.calib_data, calib_size=args.calib_size,
               img_size=size, open_vocab=open_vocab, max_classes=args.max_classes if open_vocab else None,
               verify_images=args.verify_images, onnx_int8_recipe=recipe, enforce=False, progress=False)
    return json.loads((folder / name / "parity.json").read_text()) | {"folder": str(folder / name)}


def interleaved_p50(folders: dict[str, str], threads: int, rounds: int, runs: int, warmup: int) -> dict[str, dict]:
    """Time every artifact in turn, `rounds` times `runs` runs each, in this process; summary per artifact."""
    from deploy.runtime import load

    predictors = {key: load(folder, threads=threads) for key, folder in folders.items()}
    inputs = {}
    for key, predictor in predictors.items():
        size = predictor.card["img_size"]
        inputs[key] = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        for _ in range(warmup):
            predictor.run(inputs[key])
    times: dict[str, list[float]] = {key: [] for key in predictors}
    for _ in range(rounds):
        for key, predictor in predictors.items():
            for _ in range(runs):
                start = time.perf_counter()
                predictor.run(inputs[key])
                times[key].append((time.perf_counter() - start) * 1000)
    return {key: summarize(values) for key, values in times.items()}


NOISE = 1.05  # p50 ratios within 5 % are not told apart by these runs


def timing_fields(timed: dict[int, dict[str, dict]], key: str, threads: list[int]) -> dict:
    """A recipe row's timing (the int8 recipe benchmarks): p50 per thread count, its ratio to the fp32
    artifact's, and the whole summaries; `timed` is {threads: interleaved_p50(...)}."""
    return {"p50": {t: timed[t][key]["p50_ms"] for t in threads},
            "ratio": {t: timed[t][key]["p50_ms"] / timed[t]["fp32"]["p50_ms"] for t in threads},
            "timing": {t: timed[t][key] for t in threads}}


def fastest_then_most_accurate(passing: list[dict], threads: int, accuracy: Callable[[dict], float]) -> str | None:
    """The rule both int8 recipe benchmarks ship by: among passing rows the fastest at `threads`, and within
    NOISE of it the one `accuracy` ranks highest."""
    if not passing:
        return None
    fastest = min(r["p50"][threads] for r in passing)
    return max((r for r in passing if r["p50"][threads] <= NOISE * fastest), key=accuracy)["recipe"]


def publish(out: Path, name: str, text: str, payload: dict, docs: str | None, doc: str, title: str,
            argv: Sequence[str] | None, checkpoints: dict[str, str]) -> None:
    """OUT/NAME.{md,json}, and with `docs` DOCS/DOC.md stamped with the command (benchmarks.NAME with
    underscores), commit, checkpoints and machine; prints the table."""
    write_text(out / f"{name}.md", text)
    write_json(out / f"{name}.json", payload)
    if docs:
        command = f"python -m benchmarks.{name.replace('-', '_')} " + " ".join(
            argv if argv is not None else sys.argv[1:])
        write_text(Path(docs) / f"{doc}.md", stamp(title, command, checkpoints) + text)
    print(text)


def choose(rows: list[dict], size: int, threads: int) -> str | None:
    """The recipe to ship at `size`: passing rows only; the fastest, and among those within NOISE of it the
    one with the highest worst-case agreement (closed set, and every K of the open vocabulary)."""
    passing = [r for r in rows if r["size"] == size and r["recipe"] != "fp32" and r["passed"]
               and r.get("open_passed", True)]
    return fastest_then_most_accurate(passing, threads,
                                      lambda r: min([r["agreement"], *r.get("by_classes", {}).values()]))


def markdown(rows: list[dict], note: str) -> str:
    lines = ["| size | recipe | closed-set agreement | open-vocab agreement at K = 1 / mid / K_max | size MB | "
             + " | ".join(f"p50 ms, {t} thr (int8 / fp32)" for t in sorted({t for r in rows for t in r["p50"]}))
             + " |", "|---|---|---|---|---|" + "---|" * len({t for r in rows for t in r["p50"]})]
    for r in rows:
        agreement = f"{100 * r['agreement']:.2f} %{'' if r['passed'] else ' (below 97 %)'}"
        by_k = " / ".join(f"{100 * v:.1f}" for v in r["by_classes"].values()) if r.get("by_classes") else "–"
        timing = " | ".join(f"{r['p50'][t]:.2f} ({r['ratio'][t]:.2f}×)" if r["recipe"] != "fp32" else f"{r['p50'][t]:.2f}"
                            for t in sorted(r["p50"]))
        lines.append(f"| {r['size']}² | {r['recipe']} | {agreement} | {by_k} | {r['bytes'] / 1e6:.2f} | {timing} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_int8", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list of {', '.join(RECIPES)}")
    parser.add_argument("--sizes", default=None, help="comma list of input sizes (default: the trained size)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per artifact per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--calib-data", default="synthetic")
    parser.add_argument("--calib-size", type=int, default=32)
    parser.add_argument("--verify-images", type=int, default=16)
    parser.add_argument("--open-vocab", action="store_true", help="also check the K_max open-vocabulary graph")
    parser.add_argument("--max-classes", type=int, default=None)
    parser.add_argument("--out", default="runs/onnx-int8")
    parser.add_argument("--docs", default=None, help="also write DOCS/onnx-int8-recipes.md")
    args = parser.parse_args(argv)
    recipes = RECIPES.choose(args.recipes)
    try:
        threads = checks.integer_list(args.threads, "--threads", 1, 1024)
        from edgeseg.card import load_model

        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [load_model(args.checkpoint)[1]["img_size"]]
    except ValueError as exc:
        raise UserError(f"--sizes/--threads must be comma lists of integers: {exc}") from exc
    out = Path(args.out)
    rows = []
    for size in sizes:
        print(f"== {size}²: exporting fp32 + {len(recipes)} int8 recipes", file=sys.stderr, flush=True)
        reports = {recipe: _export(args.checkpoint, out, size, None if recipe == "fp32" else recipe, False, args)
                   for recipe in ["fp32", *recipes]}
        open_reports = {recipe: _export(args.checkpoint, out, size, recipe, True, args)
                        for recipe in recipes} if args.open_vocab else {}
        timed = {t: interleaved_p50({k: r["folder"] for k, r in reports.items()}, t, args.rounds, args.runs,
                                    args.warmup) for t in threads}
        for recipe, report in reports.items():
            row = {"size": size, "recipe": recipe, "agreement": report["pixel_agreement"], "passed": report["passed"],
                   "bytes": report["bytes"], **timing_fields(timed, recipe, threads)}
            if recipe in open_reports:
                row["by_classes"] = open_reports[recipe].get("by_classes", {})
                row["open_passed"] = open_reports[recipe]["passed"]
            rows.append(row)
    best = {size: choose(rows, size, max(threads)) for size in sizes}
    note = (f"Checkpoint `{args.checkpoint}`; calibration: {args.calib_size} train images of `{args.calib_data}`, "
            f"verification: {args.verify_images} held-out val images; timing: {args.rounds} interleaved rounds × "
            f"{args.runs} runs per artifact after {args.warmup} warm-up runs, p50 (int8 / fp32 ratio in brackets). "
            f"Shipped default: `{DEFAULT_RECIPE}`. The rule: among recipes that pass 97 % "
            f"{'(closed set and open vocabulary at every K) ' if args.open_vocab else ''}the fastest at "
            f"{max(threads)} threads, and within {100 * (NOISE - 1):.0f} % of it (timing noise) the most accurate: "
            + (", ".join(f"{s}²: `{r}`" for s, r in best.items() if r) or "none") + ".")
    publish(out, "onnx-int8", markdown(rows, note), {"rows": rows, "best": best}, args.docs, "onnx-int8-recipes",
            "ONNX Runtime int8 recipes", argv, {"checkpoint": file_hash(args.checkpoint)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
