"""Latency, size and memory of every exported target and precision, side by side with peers.

python -m benchmarks.latency --checkpoint runs/demo/best.pt --targets onnx,openvino,tflite \
    --precisions fp32,int8 --runs 30 --out runs/bench

Exports each artifact at --img-size (or reuses OUT/artifacts/...), then times each one in its
own process with the thread count fixed: same input, warm-up, then timed runs. Writes
results.csv, results.json, results.md and latency.png.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.cost import count_params, gflops
from benchmarks.machine import cpu_info, peak_gflops
from benchmarks.peers import PEERS
from deploy.calibration import load_inputs
from deploy.export import export_one
from deploy.outputs import OUTPUTS
from deploy import rewrites
from deploy.targets import TARGETS, get_target
from edgeseg import checks
from edgeseg.card import load_model
from edgeseg.errors import UserError, cli_main
from edgeseg.io import file_hash, write_json, write_text

FIELDS = ["model", "target", "precision", "output", "threads", "output_bytes", "p50_ms", "e2e_p50_ms", "p90_ms", "mean_ms", "std_ms", "runs", "size_mb",
          "peak_rss_mb", "gflops", "achieved_gflops_s", "pixel_agreement", "runtime_version", "status"]


def _timing(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.timing", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        raise RuntimeError(lines[-1] if lines else f"exit {proc.returncode}")
    return json.loads(proc.stdout)


def export_key(card: dict, target: str, precision: str, calibration: list) -> str:
    """What an artifact was made from: the card (with the checkpoint's hash), target, precision, the target's own
    settings (e.g. ONNX's int8 recipe) and the calibration images (hashed), so a folder is reused only for exactly
    the same export."""
    settings = getattr(get_target(target), "settings", lambda card, precision: {})(card, precision)
    made_from = {"card": {k: v for k, v in card.items() if k != "export_key"}, "target": target, "precision": precision}
    if settings:  # only where a target has them, so the other targets' keys (and reusable folders) stay as they were
        made_from["settings"] = settings
    if card.get("output") == "mask" and (names := rewrites.requested(card, target, precision)):
        made_from["rewrites"] = names  # deploy.rewrites: a graph rewritten for this target is another artifact
    digest = hashlib.sha256(json.dumps(made_from, sort_keys=True, default=list).encode())
    for sample in calibration:
        for array in sample:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _artifact(model: torch.nn.Module, card: dict, target: str, precision: str, out: Path,
              calibration: list, verify: list) -> tuple[Path, dict]:
    """Export (or reuse, when its export key matches) one artifact; the report says whether parity passed."""
    output = card.get("output", "logits")
    folder = out / f"{target}-{precision}{'' if output == 'logits' else '-' + output}"
    key = export_key(card, target, precision, calibration if precision == "int8" else [])
    if (folder / "parity.json").is_file() and (folder / "card.json").is_file():
        if json.loads((folder / "card.json").read_text()).get("export_key") == key:
            return folder, json.loads((folder / "parity.json").read_text())
        print(f"{folder}: made from another checkpoint or options; exporting again", file=sys.stderr)
    size = card["img_size"]
    report = export_one(model, (torch.zeros(1, 3, size, size),), dict(card, export_key=key), target, precision, out,
                        calibration, verify, enforce=False)
    return folder, report


def timed_models(checkpoint: str, img_size: int, peers: str, precisions: list[str], calib_data: str = "synthetic"
                 ) -> tuple[dict[str, tuple[torch.nn.Module, dict]], list, list]:
    """The checkpoint's model (as `edgeseg`) and the named peers (`none` or a comma list) at `img_size`, with the
    int8 calibration images (train split; none without int8) and 4 held-out verification images."""
    names = [] if peers == "none" else PEERS.choose(peers)
    model, card = load_model(checkpoint)
    card = dict(card, img_size=img_size, open_vocab=False, source_checkpoint=file_hash(checkpoint))
    models = {"edgeseg": (model, card), **{name: PEERS[name](card) for name in names}}
    calibration = [(x,) for x in load_inputs(calib_data, card, 16, "train")] if "int8" in precisions else []
    return models, calibration, [(x,) for x in load_inputs("synthetic", card, 4, "val")]


def plot(rows: list[dict], path: Path, accuracy: dict[str, float]) -> None:
    """Bar chart of p50 latency per model/target/precision (+ latency vs mIoU where known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"].startswith("ok")]
    panels = 2 if accuracy else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 * panels, max(4, 0.3 * len(ok) + 1.5)), squeeze=False)
    labels = [f"{r['model']} {r['target']} {r['precision']} t{r['threads']}"
              f"{' (below parity threshold)' if 'BELOW' in r['status'] else ''}" for r in ok]
    axes[0][0].barh(labels, [r["p50_ms"] for r in ok], xerr=[r["p90_ms"] - r["p50_ms"] for r in ok], color="tab:blue")
    axes[0][0].set_xlabel("latency p50 (ms), whisker to p90")
    axes[0][0].invert_yaxis()
    if accuracy:
        for r in ok:
            key = f"{r['target']}-{r['precision']}"
            if r["model"] == "edgeseg" and key in accuracy:
                axes[0][1].scatter(r["p50_ms"], 100 * accuracy[key])
                axes[0][1].annotate(f"{key} t{r['threads']}", (r["p50_ms"], 100 * accuracy[key]), fontsize=7)
        axes[0][1].set_xlabel("latency p50 (ms)")
        axes[0][1].set_ylabel("val mIoU (%)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    from edgeseg.io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def comparison(rows: list[dict]) -> str:
    """Ours next to each peer per runtime, precision and output: p50 at every thread count, and the ratio at the
    most threads (the headline a user compares); empty when no peer was timed."""
    ok = {(r["model"], r["target"], r["precision"], r.get("output", "logits"), r["threads"]): r
          for r in rows if r["status"].startswith("ok")}
    peers = list(dict.fromkeys(r["model"] for r in rows if r["model"] != "edgeseg"))
    threads = sorted({r["threads"] for r in rows})
    keys = list(dict.fromkeys((r["target"], r["precision"], r.get("output", "logits")) for r in rows))
    if not peers:
        return ""
    slash = " / ".join(f"{n}T" for n in threads)
    lines = [f"| runtime, precision, output | edgeseg p50 ms ({slash}) | "
             + " | ".join(f"{p} p50 ms ({slash}) | edgeseg / {p} ({threads[-1]}T)" for p in peers)
             + " | edgeseg agreement vs torch |", "|---|---|" + "---|---|" * len(peers) + "---|"]
    for target, precision, output in keys:
        def p50s(model: str) -> str:
            return " / ".join(f"{ok[(model, target, precision, output, n)]['p50_ms']:.1f}"
                              if (model, target, precision, output, n) in ok else "–" for n in threads)

        ours = ok.get(("edgeseg", target, precision, output, threads[-1]))
        cells = []
        for peer in peers:
            theirs = ok.get((peer, target, precision, output, threads[-1]))
            ratio = f"{ours['p50_ms'] / theirs['p50_ms']:.2f}" if ours and theirs else "–"
            cells.append(f"{p50s(peer)} | {ratio}")
        agreement = ("–" if not ours or ours.get("pixel_agreement") is None
                     else f"{100 * ours['pixel_agreement']:.2f} %" + (" (below threshold)" if "BELOW" in ours["status"]
                                                                      else ""))
        lines.append(f"| {target} {precision} {output} | {p50s('edgeseg')} | " + " | ".join(cells) + f" | {agreement} |")
    return "\n".join(lines) + "\n\n"


def markdown(rows: list[dict], machine: dict, peak: str, command: str) -> str:
    head = ("| model | target | precision | output | threads | p50 ms (end to end: + app post-process to the mask) | "
            "p90 ms | mean ± std ms | size MB | output KB | peak RSS MB | GFLOP/s (achieved) | agreement vs torch | "
            "status |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [comparison(rows) + head]
    for r in rows:
        if not r["status"].startswith("ok"):
            lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {r.get('output', 'logits')} | "
                         f"{r['threads']} | – | – | – | – | – | – | – | – | {r['status']} |")
            continue
        agreement = "–" if r.get("pixel_agreement") is None else f"{100 * r['pixel_agreement']:.2f}%"
        e2e = f" ({r['e2e_p50_ms']:.1f})" if r.get("e2e_p50_ms") is not None else ""
        kb = f"{r['output_bytes'] / 1024:.0f}" if r.get("output_bytes") else "–"
        lines.append(f"| {r['model']} | {r['target']} | {r['precision']} | {r.get('output', 'logits')} | {r['threads']} | "
                     f"{r['p50_ms']:.1f}{e2e} | {r['p90_ms']:.1f} | {r['mean_ms']:.1f} ± {r['std_ms']:.1f} | "
                     f"{r['size_mb']:.2f} | {kb} | {r['peak_rss_mb']:.0f} | {r['achieved_gflops_s']:.1f} | {agreement} | "
                     f"{r['status']} |")
    isa = ", ".join(k for k, v in machine["isa"].items() if v) or "none"
    lines += ["", f"Machine: {machine['cpu']}, {machine['cores']} logical cores, ISA: {isa}.",
              f"Peak: {peak}.", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--targets", default="onnx,openvino,tflite", help=f"comma list of {', '.join(TARGETS)} or all")
    parser.add_argument("--precisions", default="fp32,fp16,int8")
    parser.add_argument("--img-size", type=int, default=512)
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--peers", default="lraspp", help=f"comma list of {', '.join(PEERS)}, or none")
    parser.add_argument("--calib-data", default="synthetic", help="int8 calibration images")
    parser.add_argument("--allow-below-threshold", action="store_true",
                        help="also time artifacts whose parity is below the export threshold (marked in every "
                             "table and plot); by default they are skipped, as deploy.export would refuse them")
    parser.add_argument("--outputs", default="logits",
                        help="comma list of graph outputs (logits, probs, mask; deploy.export --output): each is "
                             "also timed end to end, with the app's post-processing to the S x S mask")
    parser.add_argument("--accuracy", default=None, help="accuracy.json from benchmarks.accuracy (for the plot)")
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--docs", default=None, help="also write DOCS/NAME.md (the table stamped with commit, "
                                                      "checkpoint and machine) and DOCS/NAME.png")
    parser.add_argument("--docs-name", default="latency-results", help="NAME of the docs files")
    args = parser.parse_args(argv)
    targets = [t for t in TARGETS if t != "coreml"] if args.targets == "all" else args.targets.split(",")
    if "coreml" in targets:
        raise UserError("Core ML cannot be timed on Linux; benchmark it on a Mac (targets: onnx, openvino, tflite)")
    threads = checks.integer_list(args.threads, "--threads", 1, 1024)
    precisions = args.precisions.split(",")
    out = Path(args.out)
    models, calibration, verify = timed_models(args.checkpoint, args.img_size, args.peers, precisions, args.calib_data)
    model, card = models["edgeseg"]
    model_gflops = {name: gflops(net, args.img_size) for name, (net, _) in models.items()}
    machine = cpu_info()
    peak, peak_how = peak_gflops(machine)
    outputs = OUTPUTS.choose(args.outputs)
    jobs = [(name, t, p, o, n) for name in models for t in targets for p in precisions for o in outputs
            for n in threads]
    jobs += [(name, "torch", "fp32", "logits", n) for name in models for n in threads]
    rows = []
    for name, target, precision, output, n in tqdm(jobs, desc="benchmark", file=sys.stderr):
        net, net_card = models[name]
        net_card = dict(net_card, output=output)
        row = {"model": name, "target": target, "precision": precision, "output": output, "threads": n,
               "status": "ok", "gflops": model_gflops[name]}
        try:
            if target == "torch":  # eager baseline, in this process (its RSS includes the harness)
                timing = _time_torch(net, args, n)
                size_mb = sum(v.numel() * v.element_size() for v in net.state_dict().values()) / 1e6
                agreement, passed = None, True
            else:
                folder, report = _artifact(net, net_card, target, precision, out / "artifacts" / name, calibration,
                                           verify)
                if not report.get("passed", True) and not args.allow_below_threshold:
                    row["status"] = (f"skipped: parity {100 * report.get('pixel_agreement', 0):.2f}% below "
                                     f"{100 * report.get('threshold', 0):.1f}% (--allow-below-threshold times it)")
                    rows.append(row)
                    continue
                timing = _timing(["--artifact", str(folder), "--threads", str(n), "--warmup", str(args.warmup),
                                  "--runs", str(args.runs)])
                if outputs != ["logits"]:  # what the app waits for: model + its post-processing to the mask
                    row["e2e_p50_ms"] = _timing(["--artifact", str(folder), "--threads", str(n), "--warmup",
                                                 str(args.warmup), "--runs", str(args.runs), "--postprocess"])["p50_ms"]
                row["output_bytes"] = timing.get("output_bytes")
                size_mb, agreement = report["bytes"] / 1e6, report.get("pixel_agreement")
                passed = report.get("passed", True)
            row.update({k: timing[k] for k in ("p50_ms", "p90_ms", "mean_ms", "std_ms", "runs", "peak_rss_mb",
                                                "runtime_version", "times_ms")})
            if not passed:
                row["status"] = "ok, BELOW parity threshold"
            row.update(size_mb=size_mb, pixel_agreement=agreement,
                       achieved_gflops_s=row["gflops"] / timing["p50_ms"] * 1000)
        except (UserError, RuntimeError) as exc:
            row["status"] = f"failed: {str(exc)[:120]}"
        rows.append(row)
    command = "python -m benchmarks.latency " + " ".join(argv if argv is not None else sys.argv[1:])
    accuracy = json.loads(Path(args.accuracy).read_text()) if args.accuracy else {}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "results.csv", buffer.getvalue())
    write_json(out / "results.json", {"machine": machine, "peak_gflops": peak, "peak_derivation": peak_how,
                                      "command": command, "params_M": count_params(model) / 1e6, "rows": rows})
    table = markdown(rows, machine, peak_how, command)
    write_text(out / "results.md", table)
    plot(rows, out / "latency.png", accuracy)
    if args.docs:
        from benchmarks.stamp import stamp

        write_text(Path(args.docs) / f"{args.docs_name}.md",
                   stamp("Latency", command, {"checkpoint": file_hash(args.checkpoint)}) + table)
        plot(rows, Path(args.docs) / f"{args.docs_name}.png", accuracy)
    print(table)
    return 0


def _time_torch(net: torch.nn.Module, args: argparse.Namespace, threads: int) -> dict:
    """In-process torch timing for peers that have no edgeseg checkpoint (RSS is this process's)."""
    from benchmarks.timing import peak_rss_mb, time_function

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    x = torch.randn(1, 3, args.img_size, args.img_size)

    def run():
        with torch.inference_mode():
            net(x)

    try:
        result = time_function(run, args.warmup, args.runs)
    finally:
        torch.set_num_threads(previous)
    return {**result, "peak_rss_mb": peak_rss_mb(), "runtime_version": f"torch {torch.__version__}"}


if __name__ == "__main__":
    raise SystemExit(main())
