"""Regenerate every figure README and docs/ publish, from a clean clone: `make results [FAST=1]`.

python -m benchmarks.report [--fast] [--steps demo,parity,...|all] [--out runs/report] [--docs docs]
    [--readme README.md] [--check-readme]

Each step runs one repo command (the same one README shows next to its table) and writes DOCS/<name>.md
stamped with the commit, the checkpoint hashes, the machine (CPU model, ISA flags, cores) and the date.
Then README's generated blocks — `<!-- report: docs/NAME.md -->` ... `<!-- /report -->` — are copied from
those files, so every table in README is traceable to one file this command wrote. `--fast` runs every
step with tiny budgets into runs/report-fast (CI proves the pipeline; its figures mean nothing).
`--check-readme` only checks that README's blocks equal their docs files (exit 1 if not).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import json
import re
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from benchmarks.stamp import ROOT, stamp
from edgeseg.errors import CheckFailed, UserError, cli_main
from edgeseg.io import file_hash, write_text
from edgeseg.registry import Registry

# A tiny training budget for --fast (CI): a few iterations, a few val images.
TINY = ["--iters", "4", "--val-interval", "2", "--val-limit", "4", "--batch-size", "4"]


@dataclass(frozen=True)
class Step:
    """One published result: the command that makes it and how its table reaches DOCS/<doc>.md."""

    doc: str                                   # DOCS/<doc>.md (and .png when `images`)
    title: str
    module: str                                # python -m <module>
    full: Callable[[Path], list[str]]          # argv for the published run, given the step's folder
    fast: Callable[[Path], list[str]]          # argv for --fast
    table: Callable[[Path, list[str]], str]    # (the step folder, its argv) -> markdown body
    checkpoints: Callable[[Path, Path], dict[str, Path | str]] = lambda step, out: {}  # Path: hashed; str: a digest
    images: dict[str, str] = field(default_factory=dict)  # file in the step folder -> DOCS/<name>
    ok_codes: tuple[int, ...] = (0,)           # exit codes that still give a table (export: 1 = refused artifact)
    cost: str = ""                             # full-mode time on the development machine (for --help)
    per_gpu: bool = False                      # on CUDA, DOCS/<doc>-<gpu>.md (e.g. train-speed-h100): one file a card

    def doc_name(self) -> str:
        """The docs file this step writes on this machine (without .md)."""
        return f"{self.doc}-{gpu_slug()}" if self.per_gpu and gpu_slug() else self.doc


def gpu_slug() -> str:
    """A short name of the CUDA card ('h100' for 'NVIDIA H100 80GB HBM3'), '' without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return ""
    name = torch.cuda.get_device_name()
    model = re.search(r"\b([A-Z]+\d+\w*)\b", name)
    return (model.group(1) if model else re.sub(r"\W+", "-", name).strip("-")).lower()


def _read(name: str) -> Callable[[Path], str]:
    return lambda folder, argv: (folder / name).read_text()


def _trained(folder: Path, out: Path) -> dict[str, Path]:
    """Every best.pt one level under a step's folder (one per variant it trained), by variant."""
    return {h.name: h / "best.pt" for h in sorted(folder.iterdir()) if (h / "best.pt").is_file()}


def _zeroshot_digests(folder: Path, out: Path) -> dict[str, str]:
    """The checkpoint digests benchmarks.zeroshot's rows recorded (runs trained elsewhere keep only their row)."""
    runs = json.loads((folder / "zeroshot.json").read_text())["runs"]
    return {f"{r['variant']}-seed{r['seed']}": r["checkpoint_sha256"][:12] for r in runs}


def _demo_ckpt(out: Path) -> str:
    return str(out / "demo" / "best.pt")


def _demo_table(folder: Path, argv: list[str]) -> str:
    """Training summary of the demo model from its metrics.csv: time, speed, the validation curve."""
    from edgeseg.config import parse_with_config, training_parser

    batch = parse_with_config(training_parser("edgeseg.train", ""), argv).batch_size
    with open(folder / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    card = json.loads((folder / "model_card.json").read_text())
    vals = [r for r in rows if r.get("val_mIoU")]
    last, best = rows[-1], max(vals, key=lambda r: float(r["val_mIoU"]))
    iters, seconds = int(last["iter"]), float(last["seconds"])
    lines = ["| backbone + head | iterations × batch | train time | iterations / s | final val mIoU | best val mIoU "
             "(iteration) | final pixel accuracy |", "|---|---|---|---|---|---|---|",
             f"| {card.get('backbone')} + {card.get('head')} | {iters} × {batch} "
             f"| {seconds:.0f} s | {iters / seconds:.2f} | {100 * float(vals[-1]['val_mIoU']):.1f} | "
             f"{100 * float(best['val_mIoU']):.1f} ({best['iter']}) | {100 * float(vals[-1]['val_pixel_accuracy']):.1f} |",
             "", "Validation curve (val mIoU at iteration): "
             + " → ".join(f"{100 * float(r['val_mIoU']):.1f} ({r['iter']})" for r in vals) + "."]
    return "\n".join(lines) + "\n"


def _parity_table(folder: Path, argv: list[str]) -> str:
    """target × precision: pixel agreement with torch fp32 / max |Δlogit| / size, from every parity.json."""
    reports: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*/parity.json")) + sorted(folder.glob("*.parity-failed.json")):
        report = json.loads(path.read_text())
        precision = report.get("precision") or path.parent.name.split("-")[1]
        reports[(report["target"], precision)] = report
    targets = sorted({t for t, _ in reports}, key=["onnx", "openvino", "tflite", "coreml"].index)
    precisions = [p for p in ("fp32", "fp16", "int8") if any(q == p for _, q in reports)]

    def cell(report: dict | None) -> str:
        if report is None:
            return "–"
        size = f"{report['bytes'] / 1e6:.1f} MB" if report.get("bytes") else ""
        if "pixel_agreement" not in report:
            return f"{size} (spec checked)"
        verdict = "" if report.get("passed", True) else " **refused**"
        return (f"{100 * report['pixel_agreement']:.2f} % / {report.get('max_abs_logit_diff', float('nan')):.2g} / "
                f"{size}{verdict}")

    lines = ["| target | " + " | ".join(precisions) + " |", "|---|" + "---|" * len(precisions)]
    lines += [f"| {t} | " + " | ".join(cell(reports.get((t, p))) for p in precisions) + " |" for t in targets]
    first = next((r for r in reports.values() if "images" in r), {})
    lines.append(f"\nCells: pixel agreement of the argmax with torch fp32 / max |Δlogit| / size on disk, on "
                 f"{first.get('images', '?')} held-out val images at the trained size (threshold per precision in "
                 "`deploy/parity.py`; **refused** = the exporter would not ship it). Core ML cannot run on Linux: "
                 "its artifacts are spec-checked only.")
    return "\n".join(lines) + "\n"


def _family(out: Path) -> str:
    """benchmarks.pareto's --models: the demo model (ours) and what the peers step trained beside it."""
    return ",".join([f"edgeseg={_demo_ckpt(out)}"] + [f"{name}={path}" for name, path in _peer_ckpts(out).items()])


def _int8_models(out: Path) -> str:
    """benchmarks.tflite_int8's --models: the demo model, and the trained LR-ASPP when the peers step made it."""
    return ",".join([f"edgeseg={_demo_ckpt(out)}"] + [f"lraspp={path}" for name, path in _peer_ckpts(out).items()
                                                      if name == "lraspp"])


def _peer_ckpts(out: Path) -> dict[str, Path]:
    """Seed-0 checkpoints the peers step trained (OUT/peers/NAME/best.pt), by model name."""
    return {p.name: p / "best.pt" for p in sorted((out / "peers").glob("*")) if (p / "best.pt").is_file()}


# benchmarks.pareto's family beside the demo model (trained by the peers step), and the seeded accuracy study of
# the speed changes (each model x 3 seeds; docs/family-seeds.md decides which changes are kept).
PARETO_FAMILY = "edgeseg-v4s-r32-d1,edgeseg-r32-d1,edgeseg-w64-d1,edgeseg-s8,edgeseg-small,lraspp,yolo26n-sem"
SEEDED_FAMILY = "edgeseg,edgeseg-r32-d1,edgeseg-s8,edgeseg-w64,edgeseg-w64-d1,edgeseg-w32,edgeseg-small,lraspp"

STEPS: Registry[Step] = Registry("step", {
    "demo": Step(
        "demo-training", "Training the demo model (make demo's recipe)", "edgeseg.train",
        full=lambda d: ["--backbone", "mobilenetv3", "--iters", "1200", "--out", str(d)],
        fast=lambda d: ["--backbone", "mobilenetv3", *TINY, "--out", str(d)],
        table=_demo_table, checkpoints=lambda d, out: {"demo": d / "best.pt"}, cost="9 min"),
    "parity": Step(
        "export-parity", "Export parity of the demo model", "deploy.export",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--target", "all", "--precision", "all",
                        "--calib-data", "synthetic", "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--target", "onnx", "--precision", "fp32,int8",
                        "--calib-data", "synthetic", "--calib-size", "4", "--verify-images", "4", "--out", str(d)],
        table=_parity_table, checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, ok_codes=(0, 1),
        cost="7 min"),
    "latency": Step(
        "latency-results", "Latency at 512², ours and LR-ASPP through one harness", "benchmarks.latency",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx,openvino,tflite",
                        "--precisions", "fp32,int8", "--runs", "30", "--allow-below-threshold",
                        "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--precisions", "fp32",
                        "--img-size", "128", "--threads", "1", "--warmup", "1", "--runs", "3", "--out", str(d)],
        table=_read("results.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"},
        images={"latency.png": "latency.png"}, cost="12 min"),
    "latency-outputs": Step(
        "latency-outputs", "End to end at 512²: logits + the app's upsample and argmax vs the mask output",
        "benchmarks.latency",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx,openvino,tflite", "--precisions",
                        "fp32,int8", "--outputs", "logits,mask", "--threads", "2", "--runs", "20", "--peers", "none",
                        "--allow-below-threshold", "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--precisions", "fp32", "--outputs",
                        "logits,mask", "--img-size", "128", "--threads", "1", "--warmup", "1", "--runs", "3",
                        "--peers", "none", "--out", str(d)],
        table=_read("results.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"},
        images={"latency.png": "latency-outputs.png"}, cost="10 min"),
    "profile": Step(
        "profile", "Where the milliseconds go at 128² and 512²: per-layer time by module, ours, the refined head "
        "(on MobileNetV3 and on MobileNetV4-Small), LR-ASPP and YOLO26n-sem", "benchmarks.profile",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--peers",
                        "lraspp,edgeseg-r32-d1,edgeseg-v4s-r32-d1,yolo26n-sem", "--targets", "openvino,onnx",
                        "--precisions", "fp32,int8", "--img-size", "128,512", "--threads", "2", "--runs", "30",
                        "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--precisions", "fp32",
                        "--img-size", "64", "--warmup", "1", "--runs", "2", "--peers", "none", "--out", str(d)],
        table=_read("profile.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="5 min"),
    "vocabulary": Step(
        "vocabulary-cost", "Vocabulary on the device: agreement per vocabulary size and what it costs",
        "benchmarks.vocabulary",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--precisions", "fp32",
                        "--max-classes", "12", "--warmup", "1", "--runs", "2", "--out", str(d)],
        table=_read("vocabulary.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="12 min"),
    "accuracy": Step(
        "accuracy-results", "Validation mIoU of every artifact next to torch", "benchmarks.accuracy",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--precisions", "fp32",
                        "--limit", "4", "--out", str(d)],
        table=_read("accuracy.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="6 min"),
    "mediapipe": Step(
        "mediapipe-parity", "What a MediaPipe app gets: stock ImageSegmenter vs deploy.runtime on real-size frames",
        "benchmarks.mediapipe",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--precisions", "fp32", "--sizes", "128,200x300",
                        "--images", "2", "--out", str(d)],
        table=_read("mediapipe.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="4 min"),
    "heads": Step(
        "heads", "Heads at equal budget", "benchmarks.heads",
        full=lambda d: ["--iters", "600", "--out", str(d)],
        fast=lambda d: ["--heads", "fusion,linear", *TINY, "--out", str(d)],
        table=_read("heads.md"),
        checkpoints=_trained,
        cost="15 min"),
    "distillation": Step(
        "distillation-results", "Distillation at equal student budget", "benchmarks.distillation",
        full=lambda d: ["--backbone", "mobilenetv3", "--iters", "400", "--val-interval", "100", "--out", str(d)],
        fast=lambda d: ["--teacher-flags", shlex.join(["--backbone", "efficientnet-lite", *TINY]),
                        "--backbone", "mobilenetv3", *TINY, "--out", str(d)],
        table=_read("distillation.md"),
        checkpoints=_trained,
        cost="20 min"),
    "train-speed": Step(
        "train-speed", "Training speed: AMP vs fp32", "benchmarks.train_speed",
        full=lambda d: ["--out", str(d)],
        fast=lambda d: ["--img-size", "64", "--batch-size", "2", "--iters", "2", "--warmup", "1", "--out", str(d)],
        table=_read("train_speed.md"), cost="3 min", per_gpu=True),
    "ablation": Step(
        "ablation-results", "Prompting methods: ablation at equal budget", "benchmarks.ablation",
        full=lambda d: ["--backbone", "efficientnet-lite", "--iters", "500", "--val-interval", "100", "--out", str(d)],
        fast=lambda d: ["--variants", "plain-fusion,edgeseg", "--backbone", "efficientnet-lite", *TINY,
                        "--out", str(d)],
        table=_read("ablation.md"),
        checkpoints=_trained,
        cost="60 min"),
    "onnx-int8": Step(
        "onnx-int8-recipes", "ONNX Runtime int8 recipes", "benchmarks.onnx_int8",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--open-vocab", "--sizes", "128,512",
                        "--threads", "1,2", "--rounds", "5", "--runs", "10", "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--recipes", "u8s8-qop-pct-early-ops", "--threads", "1",
                        "--rounds", "1", "--runs", "2", "--warmup", "1", "--calib-size", "4", "--verify-images", "4",
                        "--out", str(d)],
        table=_read("onnx-int8.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="25 min"),
    "tflite-int8": Step(
        "tflite-int8-recipes", "TFLite int8 recipes", "benchmarks.tflite_int8",
        full=lambda d: ["--models", _int8_models(d.parent), "--threads", "1,2", "--rounds", "5", "--runs", "10",
                        "--out", str(d)],
        fast=lambda d: ["--models", _int8_models(d.parent), "--recipes", "adds-gate", "--threads", "1", "--rounds",
                        "1", "--runs", "2", "--warmup", "1", "--calib-size", "4", "--verify-images", "4", "--out",
                        str(d)],
        table=_read("tflite-int8.md"),
        checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt",
                                    **{k: v for k, v in _peer_ckpts(out).items() if k == "lraspp"}},
        cost="10 min"),
    "rewrites": Step(
        "rewrites", "Exact export rewrites, measured per runtime", "benchmarks.rewrites",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--sizes", "128,512", "--threads", "2", "--rounds", "5",
                        "--runs", "100", "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--targets", "onnx", "--sizes", "64", "--threads", "1",
                        "--rounds", "1", "--runs", "2", "--warmup", "1", "--verify-images", "2", "--out", str(d)],
        table=_read("rewrites.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="6 min"),
    "rewrites-int8": Step(
        "rewrites-int8", "Exact export rewrites at int8, measured per runtime", "benchmarks.rewrites",
        full=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--precision", "int8", "--sizes", "128,512",
                        "--threads", "2", "--rounds", "5", "--runs", "100", "--out", str(d)],
        fast=lambda d: ["--checkpoint", _demo_ckpt(d.parent), "--precision", "int8", "--targets", "onnx", "--sizes",
                        "64", "--threads", "1", "--rounds", "1", "--runs", "2", "--warmup", "1", "--verify-images",
                        "2", "--out", str(d)],
        table=_read("rewrites.md"), checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt"}, cost="20 min"),
    "peers": Step(
        "peers", "Our family and the peers trained at equal budget (the demo's recipe)", "benchmarks.peers",
        full=lambda d: ["--models", PARETO_FAMILY, "--iters", "1200", "--out", str(d)],
        fast=lambda d: ["--models", "edgeseg-small,lraspp", *TINY, "--out", str(d)],
        table=_read("peers.md"),
        checkpoints=_trained,
        cost="50 min (YOLO26n-sem: 10 min)"),
    "pareto": Step(
        "pareto", "The accuracy–latency frontier", "benchmarks.pareto",
        full=lambda d: ["--models", _family(d.parent), "--runs", "100", "--out", str(d)],
        fast=lambda d: ["--models", _family(d.parent), "--targets", "onnx", "--precisions", "fp32", "--threads", "1",
                        "--warmup", "1", "--runs", "2", "--rounds", "2", "--limit", "2", "--out", str(d)],
        table=_read("pareto.md"), images={"pareto.png": "pareto.png"},
        checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt", **_peer_ckpts(out)},
        cost="25 min"),
    "pareto-512": Step(
        "pareto-512", "The accuracy–latency frontier at camera-frame scale (512²)", "benchmarks.pareto",
        full=lambda d: ["--models", _family(d.parent), "--img-size", "512", "--threads", "2", "--limit", "16",
                        "--runs", "20", "--out", str(d)],
        fast=lambda d: ["--models", _family(d.parent), "--img-size", "96", "--targets", "onnx", "--precisions", "fp32",
                        "--threads", "1", "--warmup", "1", "--runs", "2", "--rounds", "1", "--limit", "2",
                        "--out", str(d)],
        table=_read("pareto.md"), images={"pareto.png": "pareto-512.png"},
        checkpoints=lambda d, out: {"demo": out / "demo" / "best.pt", **_peer_ckpts(out)},
        cost="30 min"),
    "family-seeds": Step(
        "family-seeds", "Speed changes and the family: best val mIoU over 3 seeds at the demo's budget",
        "benchmarks.peers",
        full=lambda d: ["--models", SEEDED_FAMILY, "--seeds", "0,1,2", "--iters", "1200", "--out", str(d)],
        fast=lambda d: ["--models", "edgeseg,edgeseg-s8", "--seeds", "0,1", *TINY, "--out", str(d)],
        table=_read("peers.md"), checkpoints=_trained,
        cost="about 6 GPU minutes on an H100 as 12 parallel processes (one per model and seed); 3 hours on 2 CPU cores"),
    "head-seeds": Step(
        "head-seeds", "The redesigned head against LR-ASPP and YOLO26n-sem: best val mIoU over 3 seeds at the demo's "
        "budget", "benchmarks.peers",
        full=lambda d: ["--models", "edgeseg-r32-d1,edgeseg-v4s-r32-d1,lraspp,yolo26n-sem", "--seeds", "0,1,2",
                        "--iters", "1200", "--out", str(d)],
        fast=lambda d: ["--models", "edgeseg-r32-d1", "--seeds", "0,1", *TINY, "--out", str(d)],
        table=_read("peers.md"), checkpoints=_trained,
        cost="75 min on 2 CPU cores as two single-thread processes (one per model and seed: 20 min each), and 30 "
             "min for YOLO26n-sem's 3 seeds; minutes on a GPU"),
    "zeroshot": Step(
        "zeroshot-results", "Zero-shot benchmark", "benchmarks.zeroshot",
        full=lambda d: ["--iters", "600", "--out", str(d)],
        fast=lambda d: ["--fast", "--variants", "head-fusion", "--seeds", "0", "--out", str(d)],
        table=_read("zeroshot.md"), images={"zeroshot.png": "zeroshot.png", "zeroshot.json": "zeroshot-rows.json"},
        checkpoints=_zeroshot_digests,
        cost="about 8 GPU minutes on an H200 per variant group; 4-6 hours on 2 CPU cores"),
}, extra=("all", "none"))
# `make results` without STEPS: everything a 2-core CPU finishes in about three hours (zeroshot and family-seeds,
# GPU-sized: --steps all).
DEFAULT_STEPS = ["demo", "parity", "latency", "latency-outputs", "profile", "vocabulary", "accuracy", "mediapipe", "heads",
                 "distillation", "train-speed", "ablation", "onnx-int8", "rewrites", "rewrites-int8", "peers",
                 "tflite-int8", "pareto", "pareto-512"]
NEEDS_DEMO = {"parity", "latency", "latency-outputs", "profile", "vocabulary", "accuracy", "mediapipe", "onnx-int8",
              "rewrites", "rewrites-int8", "tflite-int8", "pareto", "pareto-512"}

# `docs/NAME.md` copies the file's whole body; `docs/NAME.md#first` only its first paragraph (e.g. a summary table).
BLOCK = re.compile(r"(<!-- report: (?P<doc>[\w./-]+)(?:#(?P<part>first))? -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)


def body_of(doc_text: str) -> tuple[str, str]:
    """(provenance line, table body) of a stamped docs file: its header list becomes one line."""
    head, _, body = doc_text.partition("\n\n- commit:")
    if not body:
        return "", doc_text.strip() + "\n"
    meta, _, rest = ("- commit:" + body).partition("\n\n")
    fields = dict(line[2:].split(": ", 1) for line in meta.splitlines() if line.startswith("- ") and ": " in line)
    command = re.search(r"Generated by `(.*)`", head)
    line = (f"<sub>Generated by `{command.group(1) if command else '?'}` at commit `{fields.get('commit', '?')}` on "
            f"{fields.get('machine', '?')}, {fields.get('date', '?')}"
            + (f"; checkpoints {fields['checkpoints (sha256, first 12 hex digits)']}"
               if "checkpoints (sha256, first 12 hex digits)" in fields else "") + ".</sub>")
    return line, rest.strip() + "\n"


def readme_blocks(readme: str, root: Path) -> list[tuple[str, str, str]]:
    """(doc path, README's block, the block its docs file gives) for every generated block."""
    out = []
    for match in BLOCK.finditer(readme):
        path = root / match["doc"]
        if not path.is_file():
            raise UserError(f"README names {match['doc']} in a report block, but that file does not exist")
        provenance, body = body_of(path.read_text())
        if match["part"] == "first":
            body = body.split("\n\n", 1)[0].strip() + "\n"
        out.append((match["doc"], match["body"], f"{body}\n{provenance}\n" if provenance else body))
    return out


def sync_readme(readme_path: Path) -> list[str]:
    """Copy every generated block of README from its docs file (paths relative to README's folder); returns the
    docs whose block changed."""
    root = readme_path.parent
    text = readme_path.read_text()
    blocks = readme_blocks(text, root)
    changed = [doc for doc, have, want in blocks if have != want]
    wanted = iter(want for _, _, want in blocks)
    text = BLOCK.sub(lambda m: m.group(1) + next(wanted) + m.group(5), text)
    write_text(readme_path, text)
    return changed


def run_step(name: str, step: Step, out: Path, docs: Path, fast: bool, command: str) -> float:
    """Run one step's command, then write DOCS/<doc>.md (+ images) from what it wrote; returns seconds."""
    folder = out / name
    argv = (step.fast if fast else step.full)(folder)
    print(f"== {name}: python -m {step.module} {shlex.join(argv)}", file=sys.stderr, flush=True)
    started = time.time()
    code = int(importlib.import_module(step.module).main(argv) or 0)
    seconds = time.time() - started
    if code not in step.ok_codes:
        raise CheckFailed(f"step {name} failed (python -m {step.module} exited {code}); see the output above")
    body = step.table(folder, argv)
    checkpoints = {k: p if isinstance(p, str) else file_hash(str(p))[:12]
                   for k, p in step.checkpoints(folder, out).items() if isinstance(p, str) or p.is_file()}
    title = step.title + (" (FAST MODE: tiny budgets, the figures mean nothing)" if fast else "")
    header = stamp(title, f"{command} (step {name}: python -m {step.module} {shlex.join(argv)})", checkpoints)
    write_text(docs / f"{step.doc_name()}.md", header + body + f"\nStep time: {seconds / 60:.1f} min.\n")
    for source, target in step.images.items():
        if (folder / source).is_file():
            shutil.copyfile(folder / source, docs / target)
    return seconds


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="steps (full-mode time on a 2-core Intel Xeon):\n" + "\n".join(
            f"  {n:13s} python -m {s.module} → docs/{s.doc}{'[-GPU]' if s.per_gpu else ''}.md ({s.cost})"
            for n, s in STEPS.items())
        + f"\ndefault: {','.join(DEFAULT_STEPS)}; 'all' adds {', '.join(n for n in STEPS if n not in DEFAULT_STEPS)}")
    parser.add_argument("--fast", action="store_true", help="tiny budgets (CI): proves the pipeline, figures mean nothing")
    parser.add_argument("--steps", default=None, help="comma list of steps, or all (default: see below)")
    parser.add_argument("--out", default=None, help="run folders (default runs/report, --fast: runs/report-fast)")
    parser.add_argument("--docs", default=None, help="where the stamped tables go (default docs/, --fast: OUT/docs)")
    parser.add_argument("--readme", default=None,
                        help="README whose generated blocks are copied from DOCS (default: README.md when DOCS is "
                             "the repo's docs/; none otherwise)")
    parser.add_argument("--check-readme", action="store_true",
                        help="run nothing: check README's generated blocks equal their docs files")
    args = parser.parse_args(argv)
    if args.check_readme:
        readme = Path(args.readme or ROOT / "README.md")
        stale = [doc for doc, have, want in readme_blocks(readme.read_text(), readme.parent) if have != want]
        if stale:
            raise CheckFailed(f"README blocks differ from {', '.join(stale)}: run python -m benchmarks.report "
                              "--steps none to copy them")
        print(f"README: every generated block equals its docs file ({len(readme_blocks(readme.read_text(), readme.parent))})")
        return 0
    names = (list(STEPS) if args.steps == "all" else [] if args.steps == "none"
             else STEPS.choose(args.steps or DEFAULT_STEPS))
    out = Path(args.out or ("runs/report-fast" if args.fast else "runs/report"))
    docs = Path(args.docs or (out / "docs" if args.fast else ROOT / "docs"))
    readme = Path(args.readme) if args.readme else (ROOT / "README.md" if docs.resolve() == (ROOT / "docs") else None)
    if NEEDS_DEMO & set(names) and "demo" not in names and not Path(_demo_ckpt(out)).is_file():
        raise UserError(f"steps {', '.join(sorted(NEEDS_DEMO & set(names)))} need the demo model "
                        f"{_demo_ckpt(out)}: add the demo step")
    command = "python -m benchmarks.report " + " ".join(argv if argv is not None else sys.argv[1:])
    times = {}
    for name in [n for n in STEPS if n in names]:  # registry order: demo before what uses it
        times[name] = run_step(name, STEPS[name], out, docs, args.fast, command.strip())
    if readme is not None:
        changed = sync_readme(readme)
        print(f"README: {len(changed)} generated block(s) updated from docs ({', '.join(changed) or 'none'})",
              file=sys.stderr)
    for name, seconds in times.items():
        print(f"{name}: {seconds / 60:.1f} min → {docs / STEPS[name].doc_name()}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
