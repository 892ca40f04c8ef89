"""Which TFLite int8 recipe to ship, by measurement on this CPU: agreement with torch and LiteRT latency.

python -m benchmarks.tflite_int8 --models edgeseg=runs/demo/best.pt[,lraspp=runs/peers/lraspp/best.pt]
    [--recipes adds-gate,litert] [--output mask] [--threads 1,2] [--rounds 5] [--runs 10] [--docs docs]

For each model and each recipe of deploy.targets.tflite.RECIPES (PT2E w8a8 switches: residual adds int8,
hardswish written as x * hardsigmoid(x), early stages float or int8), exports the closed-set model at its
trained size (int8 calibrated on train images, verified on held-out val images) beside the fp32 artifact,
counts the operators LiteRT loads (and how many run on int8 inputs), then times every artifact of a model
interleaved in one process (rounds x runs, p50) so the int8 / fp32 ratios share the machine's state.
Writes OUT/tflite-int8.{md,json} and, with --docs, DOCS/tflite-int8-recipes.md stamped with the commit,
checkpoints and machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from benchmarks.onnx_int8 import NOISE, fastest_then_most_accurate, interleaved_p50, publish, timing_fields
from benchmarks.pareto import parse_models
from deploy.export import export
from deploy.outputs import OUTPUTS
from deploy.targets.tflite import DEFAULT_RECIPE, RECIPES
from edgeseg import checks
from edgeseg.errors import UserError, cli_main
from edgeseg.io import file_hash


def operator_counts(artifact: Path) -> Counter:
    """`OP:dtype` of each operator the LiteRT interpreter loads from `artifact` (dtype of its first input)."""
    from deploy.targets.tflite import _interpreter_class

    interpreter = _interpreter_class()[0](model_path=str(artifact))
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    return Counter(f"{op['op_name']}:{dtypes.get(op['inputs'][0], '?') if len(op['inputs']) else '-'}"
                   for op in interpreter._get_ops_details())


def _export(checkpoint: str, folder: Path, recipe: str | None, args) -> dict:
    """One artifact (reused when its folder holds a parity report) and its parity report."""
    precision = "int8" if recipe else "fp32"
    name = f"tflite-{precision}{'' if args.output == 'logits' else '-' + args.output}"
    if not (folder / name / "parity.json").is_file():
        export(checkpoint, "tflite", precision, folder, calib_data=args.calib_data, calib_size=args.calib_size,
               verify_images=args.verify_images, tflite_int8_recipe=recipe, output=args.output, enforce=False,
               progress=False)
    return json.loads((folder / name / "parity.json").read_text()) | {"folder": str(folder / name)}


def choose(rows: list[dict], model: str, threads: int) -> str | None:
    """The recipe the measurement picks for `model`: passing rows only; the fastest, and among those within
    NOISE of it the one with the highest agreement."""
    passing = [r for r in rows if r["model"] == model and r["recipe"] != "fp32" and r["passed"]]
    return fastest_then_most_accurate(passing, threads, lambda r: r["agreement"])


def markdown(rows: list[dict], note: str) -> str:
    threads = sorted({t for r in rows for t in r["p50"]})
    lines = ["| model | recipe | agreement | operators (on int8 inputs) | int8 HARD_SWISH | float ADD | size MB | "
             + " | ".join(f"p50 ms, {t} thr (int8 / fp32)" for t in threads) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(threads)]
    for r in rows:
        agreement = f"{100 * r['agreement']:.2f} %{'' if r['passed'] else ' (below 97 %)'}"
        ops = r["operators"]
        int8_ops = sum(n for key, n in ops.items() if key.endswith(":int8"))
        timing = " | ".join(f"{r['p50'][t]:.2f}" + (f" ({r['ratio'][t]:.2f}×)" if r["recipe"] != "fp32" else "")
                            for t in threads)
        lines.append(f"| {r['model']} | {r['recipe']} | {agreement} | {sum(ops.values())} ({int8_ops}) | "
                     f"{ops.get('HARD_SWISH:int8', 0)} | {ops.get('ADD:float32', 0)} | {r['bytes'] / 1e6:.2f} | "
                     f"{timing} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tflite_int8", description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma list of name=checkpoint")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma list of {', '.join(RECIPES)}")
    parser.add_argument("--output", default="mask", help=f"graph output: {', '.join(OUTPUTS)} (the frontier's: mask)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per artifact per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--calib-data", default="synthetic")
    parser.add_argument("--calib-size", type=int, default=16)
    parser.add_argument("--verify-images", type=int, default=16)
    parser.add_argument("--out", default="runs/tflite-int8")
    parser.add_argument("--docs", default=None, help="also write DOCS/tflite-int8-recipes.md")
    args = parser.parse_args(argv)
    models = parse_models(args.models)
    recipes = RECIPES.choose(args.recipes)
    OUTPUTS.lookup(args.output, where="--output")
    if args.rounds < 1 or args.runs < 1:
        raise UserError(f"--rounds and --runs must be at least 1 (got {args.rounds} and {args.runs})")
    try:
        threads = checks.integer_list(args.threads, "--threads", 1, 1024)
    except ValueError as exc:
        raise UserError(f"--threads must be a comma list of integers: {exc}") from exc
    out = Path(args.out)
    rows = []
    for model, checkpoint in models.items():
        reports = {recipe: _export(checkpoint, out / model / recipe, None if recipe == "fp32" else recipe, args)
                   for recipe in tqdm(["fp32", *recipes], desc=f"tflite-int8: exporting {model}", file=sys.stderr)}
        timed = {t: interleaved_p50({k: r["folder"] for k, r in reports.items()}, t, args.rounds, args.runs,
                                    args.warmup) for t in threads}
        for recipe, report in reports.items():
            rows.append({"model": model, "recipe": recipe, "agreement": report["pixel_agreement"],
                         "passed": report["passed"], "bytes": report["bytes"],
                         "operators": dict(operator_counts(next(Path(report["folder"]).glob("*.tflite")))),
                         **timing_fields(timed, recipe, threads)})
    best = {model: choose(rows, model, max(threads)) for model in models}
    note = (f"Checkpoints: {', '.join(f'{m} `{c}`' for m, c in models.items())}; output: {args.output}, at each "
            f"model's trained size; calibration: {args.calib_size} train images of `{args.calib_data}`, verification: "
            f"{args.verify_images} held-out val images; LiteRT (XNNPACK) timing: {args.rounds} interleaved rounds × "
            f"{args.runs} runs per artifact after {args.warmup} warm-up runs, p50 (int8 / fp32 of the same model in "
            f"brackets). Operators: as the interpreter loads them, before XNNPACK takes its part. Shipped default: "
            f"`{DEFAULT_RECIPE}`. The rule: among recipes that pass 97 %, the fastest at {max(threads)} threads, and "
            f"within {100 * (NOISE - 1):.0f} % of it (timing noise) the most accurate: "
            + (", ".join(f"{m}: `{r}`" for m, r in best.items() if r) or "none") + ".")
    publish(out, "tflite-int8", markdown(rows, note), {"rows": rows, "best": best}, args.docs, "tflite-int8-recipes",
            "TFLite int8 recipes", argv, {m: file_hash(c) for m, c in models.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
