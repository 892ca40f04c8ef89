"""The accuracy–latency frontier: val mIoU against p50 latency per runtime, for our family and trained peers.

python -m benchmarks.pareto --models edgeseg=runs/peers/edgeseg/best.pt,lraspp=runs/peers/lraspp/best.pt
    [--targets onnx,openvino,tflite] [--precisions fp32,int8] [--threads 1,2] [--runs 30] [--rounds 5]
    [--out runs/pareto]

Each checkpoint is exported (or its artifact reused, by export key) to every target × precision at its trained
size — int8 calibrated and parity-checked at that size — and each artifact is scored on the embedded val split
through its runtime (the mIoU an app gets) and timed by benchmarks.timing in its own process with the thread
count fixed, in --rounds interleaved rounds (median of the rounds' p50s). Artifacts below their parity threshold
are kept out of the frontier (listed, marked). Writes OUT/pareto.md, OUT/pareto.json and OUT/pareto.png (one
panel per runtime: mIoU vs p50, the frontier drawn).
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from benchmarks.accuracy import artifact_miou
from benchmarks.latency import _artifact, _timing
from benchmarks.machine import describe_machine
from benchmarks.peers import external_peer, load_trained, recipe_notes
from deploy.calibration import load_inputs
from edgeseg import checks
from edgeseg.data import build_source
from edgeseg.errors import UserError, cli_main
from edgeseg.evaluate import evaluate_model
from edgeseg.io import atomic_write, file_hash, write_json, write_text


def parse_models(value: str) -> dict[str, str]:
    """'a=path,b=path' -> {a: path}; each path must exist."""
    models = {}
    for item in value.split(","):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--models: '{item}' is not NAME=CHECKPOINT")
        if not Path(path.strip()).is_file():
            raise UserError(f"--models: {path.strip()} not found (train it: python -m benchmarks.peers)")
        models[name.strip()] = path.strip()
    return models


def frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and mIoU (higher), by latency."""
    best, out = -1.0, []
    for latency, miou in sorted(points, key=lambda p: (p[0], -p[1])):
        if miou > best:
            out.append((latency, miou))
            best = miou
    return out


def plot(rows: list[dict], path: Path, threads: int) -> None:
    """One panel per runtime: mIoU vs p50 at `threads`, fp32 circles, int8 triangles, the frontier as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    models = list(dict.fromkeys(r["model"] for r in rows))
    colours = {m: f"C{i}" for i, m in enumerate(models)}
    for ax, target in zip(axes[0], targets):
        ok = [r for r in rows if r["target"] == target and r["threads"] == threads and r.get("passed")]
        for r in ok:
            ax.scatter(r["p50_ms"], 100 * r["miou"], color=colours[r["model"]],
                       marker="o" if r["precision"] != "int8" else "^", s=50)
            ax.annotate(f"{r['model']} {r['precision']}", (r["p50_ms"], 100 * r["miou"]), fontsize=7)
        line = frontier([(r["p50_ms"], 100 * r["miou"]) for r in ok])
        if line:
            ax.plot(*zip(*line), color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{target}, {threads} thread(s)")
        ax.set_xlabel("p50 latency (ms)")
        ax.set_ylabel("val mIoU (%)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def markdown(rows: list[dict], torch_miou: dict[str, float], threads: list[int], note: str) -> str:
    """Per runtime × precision: each model's mIoU and p50 at every thread count, ratios to the first peer."""
    models = list(torch_miou)
    slash = " / ".join(f"{n}T" for n in threads)
    lines = [f"| runtime, precision | model | val mIoU (torch: {', '.join(f'{m} {100 * v:.1f}' for m, v in torch_miou.items())}) "
             f"| p50 ms ({slash}) | int8 / fp32 p50 ({threads[-1]}T) | parity | on the frontier ({threads[-1]}T) |",
             "|---|---|---|---|---|---|---|"]
    index = {(r["model"], r["target"], r["precision"], r["threads"]): r for r in rows}
    targets = list(dict.fromkeys(r["target"] for r in rows))
    for target in targets:
        best = frontier([(r["p50_ms"], r["miou"]) for r in rows
                         if r["target"] == target and r["threads"] == threads[-1] and r.get("passed")])
        for precision in dict.fromkeys(r["precision"] for r in rows):
            for model in models:
                r = index.get((model, target, precision, threads[-1]))
                if r is None:
                    continue
                p50s = " / ".join(f"{index[(model, target, precision, n)]['p50_ms']:.1f}"
                                  if (model, target, precision, n) in index else "–" for n in threads)
                fp32 = index.get((model, target, "fp32", threads[-1]))
                ratio = f"{r['p50_ms'] / fp32['p50_ms']:.2f}" if precision == "int8" and fp32 else "–"
                parity = f"{100 * r['agreement']:.2f} %" + ("" if r.get("passed") else " **below threshold**")
                on = "yes" if r.get("passed") and (r["p50_ms"], r["miou"]) in best else ""
                lines.append(f"| {target} {precision} | {model} | {100 * r['miou']:.1f} | {p50s} | {ratio} | {parity} "
                             f"| {on} |")
    ratios = "".join(ratio_table(rows, models, threads[-1], reference) for reference in REFERENCES)
    return "\n".join(lines) + "\n\n" + ratios + note + "\n"


REFERENCES = ("lraspp", "yolo26n-sem")  # the peers every other model's latency is given relative to (when timed)


def ratio_table(rows: list[dict], models: list[str], threads: int, reference: str = "lraspp") -> str:
    """Each model's latency over the reference peer's, per runtime × precision at `threads`: the median of the
    per-round ratios (both timed in the same round), with their range — what a ratio from one run cannot show.
    A cell whose row (either side) is below its parity threshold says so: it is not a valid comparison."""
    index = {(r["model"], r["target"], r["precision"], r["threads"]): r for r in rows}
    ours = [m for m in models if m != reference]
    targets, precisions = dict.fromkeys(r["target"] for r in rows), dict.fromkeys(r["precision"] for r in rows)
    columns = [(t, p) for t in targets for p in precisions if (reference, t, p, threads) in index]
    if reference not in models or not ours or not columns:
        return ""
    lines = [f"Latency / {reference}'s ({threads} threads; median of the {len(rows[0]['p50_rounds_ms'])} rounds' "
             "ratios, their range in brackets; below 1 = faster than the peer):", "",
             "| model | " + " | ".join(f"{t} {p}" for t, p in columns) + " |", "|---|" + "---|" * len(columns)]
    for model in ours:
        cells = []
        for target, precision in columns:
            mine, peer = index.get((model, target, precision, threads)), index[(reference, target, precision, threads)]
            if mine is None:
                cells.append("–")
                continue
            per_round = [a / b for a, b in zip(mine["p50_rounds_ms"], peer["p50_rounds_ms"])]
            invalid = [name for name, r in ((model, mine), (reference, peer)) if not r.get("passed", True)]
            flag = f" **invalid: {' and '.join(invalid)} below parity**" if invalid else ""
            cells.append(f"{np.median(per_round):.2f} ({min(per_round):.2f}–{max(per_round):.2f}){flag}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pareto", description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="NAME=CHECKPOINT comma list (from python -m benchmarks.peers)")
    parser.add_argument("--targets", default="onnx,openvino,tflite")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per artifact per round")
    parser.add_argument("--rounds", type=int, default=5,
                        help="timing rounds: each times every artifact once (in its own process), in a rotated order; "
                             "an artifact's p50 is the median of its rounds' p50s, so drift of the machine between "
                             "artifacts cancels out of the ratios")
    parser.add_argument("--limit", type=int, default=None, help="score on the first N val images (default all)")
    parser.add_argument("--output", default="mask", choices=("mask", "logits"),
                        help="graph output timed: mask = the S x S class mask (upsample + argmax in the graph, the "
                             "same output for every model), logits = each model's own output stride")
    parser.add_argument("--img-size", type=int, default=None,
                        help="export, score and time every model at this size (default: each model's trained size); "
                             "e.g. 512 for camera-frame scale with models trained at 128")
    parser.add_argument("--out", default="runs/pareto")
    args = parser.parse_args(argv)
    if args.img_size is not None:
        checks.img_size(args.img_size)
    if args.rounds < 1 or args.runs < 1:
        raise UserError(f"--rounds and --runs must be at least 1 (got {args.rounds} and {args.runs})")
    models = parse_models(args.models)
    targets, precisions = args.targets.split(","), args.precisions.split(",")
    if "coreml" in targets:
        raise UserError("Core ML cannot be timed on Linux; benchmark it on a Mac (targets: onnx, openvino, tflite)")
    try:
        threads = checks.integer_list(args.threads, "--threads", 1, 1024)
    except ValueError as exc:
        raise UserError(f"--threads must be a comma list of integers: {exc}") from exc
    out = Path(args.out)
    rows, torch_miou, trained = [], {}, {}
    jobs = [(m, t, p) for m in models for t in targets for p in precisions]
    loaded = {}
    for name, checkpoint in models.items():
        model, card = load_trained(checkpoint)
        trained[name] = card["img_size"]
        card = dict(card, open_vocab=False, source_checkpoint=file_hash(checkpoint), output=args.output,
                    img_size=args.img_size or card["img_size"])
        source = build_source(None, "val", card["img_size"])
        torch_miou[name] = evaluate_model(model, card, source, limit=args.limit, progress=False)["mIoU"]
        calibration = [(x,) for x in load_inputs("synthetic", card, 16, "train")] if "int8" in precisions else []
        verify = [(x,) for x in load_inputs("synthetic", card, 16, "val")]
        loaded[name] = (model, card, source, calibration, verify)
    built = []
    for name, target, precision in tqdm(jobs, desc="pareto: export + score", file=sys.stderr):
        model, card, source, calibration, verify = loaded[name]
        folder, report = _artifact(model, card, target, precision, out / "artifacts" / name, calibration, verify)
        built.append((name, target, precision, folder, report, artifact_miou(folder, source, args.limit), card))
    timed = [(i, n) for i in range(len(built)) for n in threads]
    rounds: dict[tuple[int, int], list[dict]] = {key: [] for key in timed}
    with tqdm(total=len(timed) * args.rounds, desc="pareto: timing", file=sys.stderr) as bar:
        for r in range(args.rounds):
            shift = r * len(timed) // max(args.rounds, 1)
            for i, n in timed[shift:] + timed[:shift]:
                rounds[(i, n)].append(_timing(["--artifact", str(built[i][3]), "--threads", str(n), "--warmup",
                                               str(args.warmup), "--runs", str(args.runs)]))
                bar.update(1)
    for (i, n), timings in rounds.items():
        name, target, precision, folder, report, miou, card = built[i]
        rows.append({"model": name, "target": target, "precision": precision, "threads": n, "miou": miou,
                     "p50_ms": float(np.median([t["p50_ms"] for t in timings])),
                     "p90_ms": float(np.median([t["p90_ms"] for t in timings])),
                     "p50_rounds_ms": [t["p50_ms"] for t in timings],
                     "agreement": report.get("pixel_agreement", 0.0), "passed": bool(report.get("passed", True)),
                     "bytes": report.get("bytes"), "img_size": card["img_size"], "classes": len(card["classes"])})
    where = "its trained size" if args.img_size is None else f"{args.img_size}² (val images rendered at that size)"
    note = (f"Models: {', '.join(f'{n} `{c}` (trained at {trained[n]}²)' for n, c in models.items())}; each artifact "
            f"exported at {where} (int8 calibrated on 16 train images, parity on 16 held-out val images), scored on the "
            f"embedded synthetic-scenes val split through its runtime ({args.limit or 'all'} images) and timed in its "
            f"own process: warm-up {args.warmup}, {args.runs} runs, p50; {args.rounds} round(s), each timing every "
            f"artifact once in a rotated order, median of the rounds' p50s. Same K for every model; output: "
            + ("the S×S class mask (the upsample and argmax in the graph), the same for every model"
               if args.output == "mask" else "logits at each model's own stride (ours 4 or 8, LR-ASPP 8)")
            + f". Machine: {describe_machine()}." + recipe_notes([external_peer(v[1]) for v in loaded.values()]))
    text = markdown(rows, torch_miou, threads, note)
    write_text(out / "pareto.md", text)
    write_json(out / "pareto.json", {"rows": rows, "torch_miou": torch_miou, "models": models})
    plot(rows, out / "pareto.png", threads[-1])
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
