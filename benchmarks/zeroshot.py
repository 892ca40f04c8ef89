"""Zero-shot benchmark: every head and preset, several seeds, on the embedded synthetic-attributes data.

python -m benchmarks.zeroshot [--fast] [--seeds 0,1,2] [--variants a,b] [--out runs/zeroshot] [train flags]

Each (variant, seed) trains with the fixed unseen split held out (`configs/splits/synthetic-attributes-
unseen.txt`: pixels ignored, names never embedded) at the same budget, and its best checkpoint (picked
on the seen classes only) is scored over all 37 names at once: mIoU(S), mIoU(U), hIoU, plus the two
controls that show whether the language pathway carries the information (unseen embeddings shuffled
among themselves; unseen names replaced by unrelated words). Finished runs are reused (row.json),
so an interrupted benchmark continues. Writes OUT/zeroshot.{md,json,png} and, with --docs, the same
table stamped with the commit and machine into DOCS/zeroshot-results.md + DOCS/zeroshot.png.
`--fast` is the CI mode: two variants, two seeds, a tiny budget (proves the pipeline, not the figures).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmarks.ablation import run_variant
from benchmarks.machine import describe_machine
from benchmarks.stamp import stamp
from edgeseg.data import build_source
from edgeseg.errors import UserError, cli_main
from edgeseg.evaluate import control_embeddings, evaluate_model
from edgeseg.io import file_hash, load_checkpoint, write_json, write_text
from edgeseg.card import build_model
from edgeseg.presets import describe
from edgeseg.registry import Registry

SPLIT_FILE = Path(__file__).resolve().parent.parent / "configs" / "splits" / "synthetic-attributes-unseen.txt"
DATA = "synthetic-attributes"
# variant id -> edgeseg.train flags: the three heads, then the seed papers' presets and ours.
VARIANTS: Registry[list[str]] = Registry("variant", {
    "head-fusion": ["--head", "fusion"],
    # the refined fusion head (issue #25: scores at stride 8 + a thin text-conditioned stride-4 refinement)
    "head-fusion-r32-d1": ["--head", "fusion", "--refine-width", "32", "--depth", "1"],
    "head-denseclip": ["--head", "denseclip"],
    "head-linear": ["--head", "linear"],
    **{f"preset-{name}": ["--preset", name] for name in ("denseclip", "icpc", "mvp", "spm", "edgeseg")},
})
FULL = {"iters": 600, "seeds": "0,1,2"}
FAST = {"iters": 6, "seeds": "0,1", "variants": "head-fusion,preset-mvp",
        "flags": ["--batch-size", "4", "--img-size", "64", "--val-limit", "8"]}
METRICS = ("mIoU_seen", "mIoU_unseen", "hIoU", "shuffle_unseen", "unrelated_unseen", "shuffle_hIoU", "unrelated_hIoU")


def measure(checkpoint: Path, limit: int | None, device: str) -> dict:
    """Generalized zero-shot scores of a checkpoint, plain and under each control."""
    payload = load_checkpoint(checkpoint)
    card = payload["card"]
    model = build_model(card, payload["model"]).to(device)
    source = build_source(DATA, "val", card["img_size"])
    scores = {}
    plain = evaluate_model(model, card, source, device, limit=limit, progress=False)
    scores.update({k: plain[k] for k in ("mIoU_seen", "mIoU_unseen", "hIoU", "mIoU")})
    scores["per_class_iou"] = plain["per_class_iou"]
    for control in ("shuffle", "unrelated"):
        text = control_embeddings(card, payload.get("context"), control)
        result = evaluate_model(model, card, source, device, limit=limit, progress=False, text_embeddings=text)
        scores[f"{control}_unseen"], scores[f"{control}_hIoU"] = result["mIoU_unseen"], result["hIoU"]
    scores["checkpoint_sha256"] = file_hash(checkpoint)
    scores["measured_on"] = describe_machine()
    return scores


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds, per variant (population std over the seeds run)."""
    table = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == name]
        entry = {"variant": name, "flags": runs[0]["flags"], "seeds": [r["seed"] for r in runs],
                 "params_M": runs[0]["params_M"], "trainable_M": runs[0]["trainable_M"],
                 "gflops_512": runs[0]["gflops_512"]}
        for key in METRICS:
            values = np.array([r[key] for r in runs], dtype=np.float64)
            entry[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        table.append(entry)
    return table


def _pm(stat: dict) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def markdown(table: list[dict], note: str) -> str:
    lines = ["| variant | flags | seeds | mIoU(S) | mIoU(U) | hIoU | U, shuffled names | U, unrelated names | "
             "params (M) | trainable (M) | GFLOPs @512² |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    best_u = max(table, key=lambda e: e["mIoU_unseen"]["mean"])["variant"]
    best_h = max(table, key=lambda e: e["hIoU"]["mean"])["variant"]
    for e in table:
        u, h = _pm(e["mIoU_unseen"]), _pm(e["hIoU"])
        lines.append(f"| {e['variant']} | `{e['flags']}` | {len(e['seeds'])} | {_pm(e['mIoU_seen'])} | "
                     f"{f'**{u}**' if e['variant'] == best_u else u} | {f'**{h}**' if e['variant'] == best_h else h} | "
                     f"{_pm(e['shuffle_unseen'])} | {_pm(e['unrelated_unseen'])} | {e['params_M']:.2f} | "
                     f"{e['trainable_M']:.2f} | {e['gflops_512']:.2f} |")
    return "\n".join(lines) + "\n\n" + note + "\n"


def findings(table: list[dict]) -> str:
    """What the table says, in sentences computed from it (best variants, how far the controls fall)."""
    best_u = max(table, key=lambda e: e["mIoU_unseen"]["mean"])
    best_h = max(table, key=lambda e: e["hIoU"]["mean"])
    lines = [f"- Best unseen mIoU: {best_u['variant']} ({_pm(best_u['mIoU_unseen'])}); best hIoU: "
             f"{best_h['variant']} ({_pm(best_h['hIoU'])})."]
    for e in (best_u,) if best_u is best_h else (best_u, best_h):
        drop = e["mIoU_unseen"]["mean"] - e["shuffle_unseen"]["mean"]
        lines.append(f"- {e['variant']}: shuffling the unseen names' embeddings takes mIoU(U) from "
                     f"{100 * e['mIoU_unseen']['mean']:.1f} to {100 * e['shuffle_unseen']['mean']:.1f} "
                     f"(a fall of {100 * drop:.1f} points); unrelated names give "
                     f"{100 * e['unrelated_unseen']['mean']:.1f}.")
    unused = [e["variant"] for e in table if e["mIoU_unseen"]["mean"] - e["shuffle_unseen"]["mean"]
              <= max(e["mIoU_unseen"]["std"], 0.01)]
    if unused:
        lines.append(f"- The text is NOT what these variants use for unseen classes (shuffled names score as well, "
                     f"within one std): {', '.join(unused)}.")
    else:
        lines.append("- Every variant falls under the shuffled-name control by more than its seed std: the unseen "
                     "classes are segmented through the meaning of their names.")
    return "\n".join(lines)


def plot(table: list[dict], path: Path) -> None:
    """Grouped bars: mIoU(S), mIoU(U), hIoU and the shuffled-name control, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("mIoU_seen", "mIoU(S)"), ("mIoU_unseen", "mIoU(U)"), ("hIoU", "hIoU"),
            ("shuffle_unseen", "mIoU(U), shuffled names"), ("unrelated_unseen", "mIoU(U), unrelated names")]
    x = np.arange(len(table))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(table)), 4))
    for i, (key, label) in enumerate(keys):
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, [100 * e[key]["mean"] for e in table], width,
               yerr=[100 * e[key]["std"] for e in table], label=label, capsize=2)
    ax.set_xticks(x, [e["variant"] for e in table], rotation=20, ha="right")
    ax.set_ylabel("IoU (%)")
    ax.set_title("Zero-shot on synthetic-attributes (mean ± std over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zeroshot", description=__doc__.splitlines()[0],
                                     epilog="variants: " + ", ".join(VARIANTS))
    parser.add_argument("--fast", action="store_true", help="CI mode: 2 variants x 2 seeds, tiny budget")
    parser.add_argument("--variants", default=None, help="comma list (default: all; --fast: two)")
    parser.add_argument("--seeds", default=None, help=f"comma list (default {FULL['seeds']}; at least 3 for a claim)")
    parser.add_argument("--iters", type=int, default=None, help=f"training iterations per run (default {FULL['iters']})")
    parser.add_argument("--backbone", default="efficientnet-lite",
                        help="shared backbone (default: the one with ImageNet weights offline; spm/edgeseg freeze it)")
    parser.add_argument("--val-limit", type=int, default=None, help="score on the first N val images (default all 100)")
    parser.add_argument("--out", default="runs/zeroshot")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: tabulate the finished runs under OUT (each must have its row.json)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="with --report-only: leave out runs that did not finish (the table says which)")
    parser.add_argument("--docs", default=None,
                        help="also write DOCS/NAME-results.md, DOCS/NAME.png and DOCS/NAME-rows.json (every run's row)")
    parser.add_argument("--docs-name", default="zeroshot", help="NAME of the docs files (default zeroshot)")
    args, train_args = parser.parse_known_args(argv)
    if any(f in train_args for f in ("--preset", "--head", "--out", "--seed", "--unseen", "--data")):
        raise UserError("--preset/--head/--out/--seed/--unseen/--data are set by the benchmark; "
                        "pass only shared edgeseg.train flags")
    mode = FAST if args.fast else FULL
    names = VARIANTS.choose(args.variants or mode.get("variants") or list(VARIANTS))
    try:
        seeds = [int(s) for s in (args.seeds or mode["seeds"]).split(",") if s.strip()]
    except ValueError as exc:
        raise UserError(f"--seeds must be a comma list of integers, got '{args.seeds}'") from exc
    iters = args.iters or mode["iters"]
    val_limit = args.val_limit or (8 if args.fast else None)
    shared = ["--data", DATA, "--unseen", str(SPLIT_FILE), "--backbone", args.backbone, "--iters", str(iters),
              "--val-interval", str(iters if args.fast else max(1, iters // 4)), *mode.get("flags", []), *train_args]
    if val_limit and "--val-limit" not in shared:
        shared += ["--val-limit", str(val_limit)]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = Path(args.out)
    rows: list[dict] = []
    missing: list[str] = []
    for name in names:
        for seed in seeds:
            folder = out / f"{name}-seed{seed}"
            if args.report_only:
                row = json.loads((folder / "row.json").read_text()) if (folder / "row.json").is_file() else {}
                if "hIoU" not in row:
                    if not args.allow_missing:
                        raise UserError(f"--report-only: {folder} did not finish (no scored row.json); run without "
                                        "--report-only, or add --allow-missing")
                    missing.append(f"{name} seed {seed}")
                    continue
                rows.append(row)
                continue
            row = run_variant(name, VARIANTS[name], [*shared, "--seed", str(seed)], folder)
            if "hIoU" not in row:
                row.update(measure(folder / "best.pt", val_limit, device))
                write_json(folder / "row.json", row)
            rows.append(row)
    table = aggregate(rows)
    first = rows[0]
    run_machines = sorted({r.get("measured_on", "not recorded in row.json") for r in rows})
    note = (f"Every row: {first['backbone']} ({first['pretrained']}), {first['iters']} iterations × batch "
            f"{first['batch']} at {first['img_size']}², seeds {', '.join(map(str, seeds))} (mean ± sample std); "
            f"data: embedded synthetic-attributes, 9 of 36 object classes unseen (`{SPLIT_FILE.name}`), scored "
            f"over all 37 names on {val_limit or 100} val images; best.pt picked on seen classes only. Presets: "
            + "; ".join(f"`{p}` = `{describe(p)}`" for p in ("denseclip", "icpc", "mvp", "spm", "edgeseg"))
            + f". Runs trained and scored on: {'; '.join(run_machines)}; table written on: {describe_machine()}."
            + (" FAST MODE (CI): tiny budget, the figures mean nothing." if args.fast else "")
            + (f" Not finished, left out: {', '.join(missing)}." if missing else ""))
    if not rows:
        raise UserError("no finished runs to tabulate")
    text = markdown(table, note) + "\n" + findings(table) + "\n"
    write_text(out / "zeroshot.md", text)
    write_json(out / "zeroshot.json", {"table": table, "runs": rows})
    plot(table, out / "zeroshot.png")
    if args.docs:
        docs = Path(args.docs)
        command = "python -m benchmarks.zeroshot " + " ".join(argv if argv is not None else sys.argv[1:])
        checkpoints = {f"{r['variant']}-seed{r['seed']}": r["checkpoint_sha256"] for r in rows}
        write_text(docs / f"{args.docs_name}-results.md", stamp("Zero-shot benchmark", command, checkpoints) + text)
        plot(table, docs / f"{args.docs_name}.png")
        write_json(docs / f"{args.docs_name}-rows.json", {"command": command, "runs": rows})
    print(text)
    print(json.dumps({e["variant"]: {k: round(100 * e[k]["mean"], 1) for k in ("mIoU_seen", "mIoU_unseen", "hIoU")}
                      for e in table}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
