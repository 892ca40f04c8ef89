"""What open vocabulary costs on the device: the exported text encoder per name and per vocabulary, and
the open-vocab segmenter at K_max slots next to the closed-set artifact at the trained K.

python -m benchmarks.vocabulary --open runs/export/onnx-fp32-openvocab --closed runs/export/onnx-fp32 \
    [--threads 2] [--runs 20] [--out runs/vocabulary] [--docs docs]

`--open` must hold a text encoder (deploy.export --open-vocab --text-encoder). Each figure is the median
of --runs timed calls after warm-up, in this process, with the runtime's thread count fixed. Writes
OUT/vocabulary.{md,json} (and DOCS/vocabulary-cost-<target>.md stamped with commit and machine).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.stamp import stamp
from benchmarks.timing import time_function
from deploy.runtime import load
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text

WORDS = ("cat", "sofa", "window", "bicycle", "lamp", "tree", "person", "car", "dog", "chair", "boat", "cup", "bird",
         "bottle", "bus", "horse", "sheep", "train", "monitor", "plant", "door", "floor", "ceiling", "mountain")


def names(count: int) -> list[str]:
    return [WORDS[i] if i < len(WORDS) else f"{WORDS[i % len(WORDS)]} {i}" for i in range(count)]


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("model*") if p.is_file()) / 1e6


def measure(open_folder: Path, closed_folder: Path | None, threads: int, warmup: int, runs: int) -> dict:
    predictor = load(open_folder, threads)
    if predictor.text_encoder is None:
        raise UserError(f"{open_folder} has no text encoder: export with --open-vocab --text-encoder")
    encoder, k_max = predictor.text_encoder, predictor.max_classes
    size = int(predictor.card["img_size"])
    image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    result = {"threads": threads, "runs": runs, "k_max": k_max, "img_size": size,
              "text_encoder": {"target": encoder.card["target"], "precision": encoder.card["precision"],
                               "prompts_per_name": len(encoder.prompts("x")),
                               "size_mb": _size_mb(open_folder / "text_encoder"),
                               "runtime": encoder.version}}
    vocabularies = sorted({1, min(16, k_max), k_max})
    for count in vocabularies:
        words = names(count)
        timing = time_function(lambda: encoder.embed(words), warmup=1, runs=max(3, runs // max(1, count // 4)))
        result["text_encoder"][f"K={count}_ms"] = timing["p50_ms"]
    result["text_encoder"]["per_name_ms"] = result["text_encoder"]["K=1_ms"]
    predictor.set_classes(names(k_max))
    timing = time_function(lambda: predictor.run(image), warmup, runs)
    result["segmenter_open"] = {"classes": k_max, "p50_ms": timing["p50_ms"], "p90_ms": timing["p90_ms"],
                                "size_mb": _size_mb(open_folder), "target": predictor.target}
    if closed_folder is not None:
        closed = load(closed_folder, threads)
        if int(closed.card["img_size"]) != size:
            raise UserError(f"--closed {closed_folder} is {closed.card['img_size']}² but --open is {size}²")
        timing = time_function(lambda: closed.run(image), warmup, runs)
        result["segmenter_closed"] = {"classes": len(closed.classes), "p50_ms": timing["p50_ms"],
                                      "p90_ms": timing["p90_ms"], "size_mb": _size_mb(closed_folder),
                                      "target": closed.target}
    return result


def markdown(result: dict) -> str:
    text = result["text_encoder"]
    lines = [f"Text encoder ({text['target']} {text['precision']}, {text['size_mb']:.1f} MB, "
             f"{text['prompts_per_name']} prompt(s) per name, {result['threads']} threads, {text['runtime']}):", "",
             "| vocabulary | embed time (p50) | per name |", "|---|---|---|"]
    for key, value in text.items():
        if key.startswith("K=") and key.endswith("_ms"):
            count = int(key[2:-3])
            lines.append(f"| {count} name(s) | {value:.1f} ms | {value / count:.1f} ms |")
    open_, closed = result["segmenter_open"], result.get("segmenter_closed")
    lines += ["", f"Segmenter at {result['img_size']}², {result['threads']} threads (p50 / p90):", "",
              "| artifact | classes | p50 | p90 | size |", "|---|---|---|---|---|",
              f"| open vocabulary ({open_['target']}) | {open_['classes']} slots (K_max) | {open_['p50_ms']:.1f} ms | "
              f"{open_['p90_ms']:.1f} ms | {open_['size_mb']:.1f} MB |"]
    if closed:
        lines.append(f"| closed set ({closed['target']}) | {closed['classes']} (trained) | {closed['p50_ms']:.1f} ms | "
                     f"{closed['p90_ms']:.1f} ms | {closed['size_mb']:.1f} MB |")
        lines += ["", f"Open vocabulary at K_max costs {open_['p50_ms'] / closed['p50_ms']:.2f}x the closed-set "
                      f"latency (ratio of medians from one run)."]
    return "\n".join(lines) + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vocabulary", description=__doc__.splitlines()[0])
    parser.add_argument("--open", required=True, help="open-vocab artifact folder with a text_encoder/")
    parser.add_argument("--closed", default=None, help="the closed-set artifact of the same checkpoint and size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="runs/vocabulary")
    parser.add_argument("--docs", default=None, help="also write DOCS/vocabulary-cost-<target>.md")
    args = parser.parse_args(argv)
    result = measure(Path(args.open), Path(args.closed) if args.closed else None, args.threads, args.warmup, args.runs)
    text = markdown(result)
    write_json(Path(args.out) / "vocabulary.json", result)
    write_text(Path(args.out) / "vocabulary.md", text)
    if args.docs:
        command = "python -m benchmarks.vocabulary " + " ".join(argv if argv is not None else sys.argv[1:])
        target = result["segmenter_open"]["target"]
        write_text(Path(args.docs) / f"vocabulary-cost-{target}.md",
                   stamp("Open vocabulary on the device: what it costs", command) + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
