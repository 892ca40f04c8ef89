"""Training speed: iterations/s of the default model with mixed precision vs fp32, on this device.

python -m benchmarks.train_speed [--img-size 512] [--batch-size N] [--iters 10] [--warmup 3] [--out DIR]

Times edgeseg.train's own optimisation step (forward, losses, backward, AdamW) on a fixed random batch,
so data loading is not measured. CUDA: fp32 vs AMP fp16 + GradScaler + channels_last (batch 16 by
default); CPU: fp32 vs AMP bf16 (batch 4 by default). Medians over the timed iterations.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch

from benchmarks.machine import cpu_info
from edgeseg.config import parse_with_config, training_parser
from edgeseg.errors import cli_main
from edgeseg.io import write_json, write_text
from edgeseg.train import Run


def time_steps(flags: list[str], img_size: int, batch: int, iters: int, warmup: int) -> list[float]:
    """Seconds per optimisation step for a Run built from edgeseg.train `flags`."""
    with tempfile.TemporaryDirectory() as out:
        args = parse_with_config(training_parser("edgeseg.train", ""), [
            *flags, "--img-size", str(img_size), "--batch-size", str(batch), "--iters", str(warmup + iters),
            "--pretrained", "none", "--out", out])
        run = Run(args)
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(batch, 3, img_size, img_size, generator=generator)
        labels = torch.randint(0, len(run.classes), (batch, img_size, img_size), generator=generator)
        times = []
        for i in range(warmup + iters):
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run.step(images, labels)
            if run.device.type == "cuda":
                torch.cuda.synchronize()
            run.iteration += 1
            if i >= warmup:
                times.append(time.perf_counter() - start)
            print(f"  step {i + 1}/{warmup + iters}: {time.perf_counter() - start:.3f}s", file=sys.stderr)
        return times


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--img-size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 on CUDA, 4 on CPU")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations per mode")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backbone", default="mobilenetv3")
    parser.add_argument("--out", default="runs/train_speed")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    batch = args.batch_size or (16 if cuda else 4)
    modes = {"fp32": ["--no-amp", "--no-channels-last"],
             "AMP fp16 + channels_last" if cuda else "AMP bf16": ["--amp"] + (["--channels-last"] if cuda else [])}
    rows = []
    for name, flags in modes.items():
        print(f"== {name}", file=sys.stderr)
        times = time_steps(["--backbone", args.backbone, *flags], args.img_size, batch, args.iters, args.warmup)
        median = statistics.median(times)
        rows.append({"mode": name, "median_s": median, "iters_per_s": 1 / median, "images_per_s": batch / median,
                     "times": times})
    device = torch.cuda.get_device_name() if cuda else f"{cpu_info()['cpu']} (CPU, {torch.get_num_threads()} threads)"
    speedup = rows[0]["median_s"] / rows[1]["median_s"]
    lines = [f"Training speed, {args.backbone} + fusion, {args.img_size}², batch {batch}, on {device}; "
             f"median of {args.iters} steps after {args.warmup} warm-up.", "",
             "| mode | s / iteration | iterations / s | images / s |", "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['median_s']:.3f} | {r['iters_per_s']:.2f} | {r['images_per_s']:.1f} |" for r in rows]
    lines += ["", f"AMP speed-up: {speedup:.2f}x"]
    text = "\n".join(lines) + "\n"
    write_text(Path(args.out) / "train_speed.md", text)
    write_json(Path(args.out) / "train_speed.json", {"device": device, "batch": batch, "img_size": args.img_size,
                                                     "rows": rows, "speedup": speedup})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
