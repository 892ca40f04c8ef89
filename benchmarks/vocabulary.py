"""What open vocabulary costs on the device: the exported text encoder per name and per vocabulary, and
the open-vocab segmenter at K_max slots next to the closed-set artifact at the trained K.

python -m benchmarks.vocabulary --open runs/export/onnx-fp32-openvocab --closed runs/export/onnx-fp32 \
    [--threads 2] [--runs 20] [--out runs/vocabulary] [--docs docs]
python -m benchmarks.vocabulary --checkpoint runs/demo/best.pt [--targets onnx,openvino,tflite]
    [--precisions fp32,int8] [--max-classes 32] [--img-size S] [--out runs/vocabulary]

`--open` must hold a text encoder (deploy.export --open-vocab --text-encoder). Each figure is the median
of --runs timed calls after warm-up, in this process, with the runtime's thread count fixed. Writes
OUT/vocabulary.{md,json} (and DOCS/vocabulary-cost-<target>.md stamped with commit and machine).
`--checkpoint` exports both artifacts itself for every target × precision (OUT/artifacts, the exporter's own
verification: int8 calibrated on random vocabularies, parity at K = 1, K_max/2 and K_max with real names) and
writes one table: the export's agreement per vocabulary size, the text encoder's cost, open vs closed latency.
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
from edgeseg import checks
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


def _k_cells(report: dict) -> str:
    """Pixel agreement with torch at each exported vocabulary size (K = 1 / mid / K_max), refused flagged."""
    by_k = report.get("by_classes", {})
    cells = " / ".join(f"{100 * by_k[k]:.1f}" for k in sorted(by_k, key=int))
    return f"{cells} %" + ("" if report.get("passed", True) else " **refused**")


def from_checkpoint(args: argparse.Namespace) -> str:
    """Export open-vocab (+ text encoder) and closed-set artifacts per target × precision, measure each pair."""
    from tqdm import tqdm

    from deploy.export import export

    out = Path(args.out)
    jobs = [(t, p) for t in args.targets.split(",") for p in args.precisions.split(",")]
    rows = []
    for target, precision in tqdm(jobs, desc="vocabulary", file=sys.stderr):
        options = dict(target=target, precision=precision, calib_data="synthetic", img_size=args.img_size,
                       enforce=False, progress=False)
        opened = export(args.checkpoint, out=out / "artifacts" / "open", open_vocab=True, text_encoder=True,
                        max_classes=args.max_classes, **options)[0]
        closed = export(args.checkpoint, out=out / "artifacts" / "closed", **options)[0]
        result = measure(Path(opened["artifact"]).parent, Path(closed["artifact"]).parent, args.threads, args.warmup,
                         args.runs)
        rows.append({"target": target, "precision": precision, "open": opened, "closed_report": closed, **result})
    write_json(out / "vocabulary.json", rows)
    first = rows[0]
    lines = [f"| runtime, precision | open-vocab agreement with torch at K = {' / '.join(sorted(first['open'].get('by_classes', {}), key=int))} "
             "| text encoder: size, min cosine to torch, masks from its embeddings vs torch's | embed 1 name "
             "| embed K_max names | segmenter, open vocab at K_max (p50) | closed set at the trained K (p50) "
             "| open / closed |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        text, open_, closed = r["text_encoder"], r["segmenter_open"], r["segmenter_closed"]
        all_names_s = text[f"K={r['k_max']}_ms"] / 1000
        encoder = r["open"].get("text_encoder", {})
        masks = encoder.get("mask_agreement_by_classes", {})
        check = (f"{encoder['min_cosine']:.5f} over {encoder['names']} names, masks "
                 + " / ".join(f"{100 * masks[k]:.1f}" for k in sorted(masks, key=int)) + " %"
                 if "min_cosine" in encoder else "not checked")
        lines.append(f"| {r['target']} {r['precision']} | {_k_cells(r['open'])} | {text['size_mb']:.0f} MB "
                     f"({text['precision']}), {check} | {text['per_name_ms']:.0f} ms | {all_names_s:.2f} s "
                     f"| {open_['p50_ms']:.1f} ms | {closed['p50_ms']:.1f} ms | {open_['p50_ms'] / closed['p50_ms']:.2f} |")
    from benchmarks.machine import describe_machine

    return ("\n".join(lines) + f"\n\nCheckpoint `{args.checkpoint}` at {first['img_size']}², K_max = {first['k_max']} "
            f"slots, {first['threads']} threads, medians of {args.runs} runs; text encoder: "
            f"{first['text_encoder']['prompts_per_name']} prompts per name. Agreement: pixel agreement of the "
            "artifact's argmax with torch on 16 held-out val images at each vocabulary size (trained names first, "
            "then real names a user may type; threshold per precision in `deploy/parity.py`; **refused** = the "
            f"exporter would not ship it). Machine: {describe_machine()}.\n")


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vocabulary", description=__doc__.splitlines()[0])
    parser.add_argument("--open", default=None, help="open-vocab artifact folder with a text_encoder/")
    parser.add_argument("--checkpoint", default=None, help="export the open and closed artifacts from this checkpoint")
    parser.add_argument("--targets", default="onnx,openvino,tflite", help="with --checkpoint")
    parser.add_argument("--precisions", default="fp32,int8", help="with --checkpoint")
    parser.add_argument("--max-classes", type=int, default=32, help="with --checkpoint: K_max slots")
    parser.add_argument("--img-size", type=int, default=None, help="with --checkpoint (default: the trained size)")
    parser.add_argument("--closed", default=None, help="the closed-set artifact of the same checkpoint and size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default="runs/vocabulary")
    parser.add_argument("--docs", default=None, help="also write DOCS/vocabulary-cost-<target>.md")
    args = parser.parse_args(argv)
    checks.threads(args.threads, "--threads")
    if (args.open is None) == (args.checkpoint is None):
        raise UserError("give --open ARTIFACT (with --closed) or --checkpoint CKPT")
    if args.checkpoint:
        if not Path(args.checkpoint).is_file():
            raise UserError(f"--checkpoint {args.checkpoint} not found")
        text = from_checkpoint(args)
        write_text(Path(args.out) / "vocabulary.md", text)
        print(text)
        return 0
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
