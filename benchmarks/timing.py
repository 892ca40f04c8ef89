"""Time one model in a fresh process (so peak RSS and thread settings belong to this run alone).

python -m benchmarks.timing --artifact runs/export/onnx-fp32 --threads 2 --warmup 10 --runs 50
python -m benchmarks.timing --checkpoint best.pt --threads 2 ...        (torch eager baseline)
Prints one JSON object: raw times (ms), p50/p90/p99/mean/std, load and first-run time, peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Callable, Sequence

import numpy as np

from edgeseg import checks
from edgeseg.errors import cli_main


def summarize(times_ms: Sequence[float]) -> dict:
    """Percentiles (numpy's linear interpolation), mean and std of the timed runs."""
    t = np.asarray(times_ms, dtype=np.float64)
    return {"runs": int(t.size), "p50_ms": float(np.percentile(t, 50)), "p90_ms": float(np.percentile(t, 90)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()), "std_ms": float(t.std()),
            "min_ms": float(t.min())}


def time_function(run: Callable[[], object], warmup: int, runs: int) -> dict:
    """First run, `warmup` untimed runs, then `runs` timed runs (perf_counter)."""
    start = time.perf_counter()
    run()
    first = (time.perf_counter() - start) * 1000
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return {"first_run_ms": first, "warmup": warmup, **summarize(times), "times_ms": times}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _torch_runner(checkpoint: str, threads: int, img_size: int | None):
    import torch

    from edgeseg.card import load_model

    torch.set_num_threads(threads)
    model, card = load_model(checkpoint)
    size = img_size or card["img_size"]
    x = torch.randn(1, 3, size, size)

    def run():
        with torch.inference_mode():
            model(x)

    return run, f"torch {torch.__version__}"


def _artifact_runner(artifact: str, threads: int, postprocess: bool = False):
    """The artifact's run on a fixed input; with `postprocess`, plus what an app then does to get the S x S
    class mask (numpy upsample + argmax for logits/probs artifacts; nothing for --output mask ones)."""
    from deploy.runtime import load
    from edgeseg.preprocess import logits_to_mask

    predictor = load(artifact, threads=threads)
    size = predictor.card["img_size"]
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    output_bytes = int(np.asarray(predictor.run(x)).nbytes)  # what the graph hands the app
    if postprocess and predictor.output != "mask":
        return (lambda: logits_to_mask(predictor.run(x), size, size)), predictor.backend.version, output_bytes
    return (lambda: predictor.run(x)), predictor.backend.version, output_bytes


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.timing", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--artifact")
    source.add_argument("--checkpoint")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--img-size", type=int, default=None, help="torch baseline input size")
    parser.add_argument("--postprocess", action="store_true",
                        help="artifacts: include the app's post-processing to an S x S class mask (end to end)")
    args = parser.parse_args(argv)
    checks.threads(args.threads, "--threads")
    start = time.perf_counter()
    extra = {}
    if args.checkpoint:
        run, version = _torch_runner(args.checkpoint, args.threads, args.img_size)
    else:
        run, version, extra["output_bytes"] = _artifact_runner(args.artifact, args.threads, args.postprocess)
    load_ms = (time.perf_counter() - start) * 1000
    result = {"runtime_version": version, "threads": args.threads, "load_ms": load_ms,
              **time_function(run, args.warmup, args.runs), "peak_rss_mb": peak_rss_mb(), **extra}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
