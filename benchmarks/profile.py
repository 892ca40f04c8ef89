"""Where the milliseconds go: a per-layer time breakdown of exported models, grouped by the module that made them.

python -m benchmarks.profile --checkpoint runs/demo/best.pt [--peers lraspp] [--targets openvino,onnx]
    [--precisions fp32,int8] [--img-size 512 | 128,512] [--threads 2] [--runs 30] [--out runs/profile]

Each model is exported (or its artifact reused, by export key) at each --img-size and run --runs times with the
runtime's own profiler on: OpenVINO's per-node performance counters (what `benchmark_app -pc` prints) and
ONNX Runtime's node profiler. Node times are summed per module (`backbone.body.blocks.3`,
`head.fusion.blocks.0`, `head.decoder`...; the exporters keep torch's module path in node names) and per
operator type. TFLite is not profiled: the LiteRT op profiler is not in the pip wheels (`litert-benchmark`
has no op-profiling flag) — its cost per part shows in the speed variants timed by benchmarks.pareto.
Writes OUT/profile.md and OUT/profile.json (`make results STEPS=profile` stamps it into docs/profile.md).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from benchmarks.latency import _artifact, timed_models
from benchmarks.machine import describe_machine
from benchmarks.timing import time_function
from benchmarks.peers import PEERS
from deploy.roles import onnx_module_path
from edgeseg import checks
from edgeseg.errors import UserError, cli_main
from edgeseg.io import write_json, write_text

PROFILED = ("openvino", "onnx")


def module_of(node: str) -> str:
    """The torch module path a runtime node came from ('' when the exporter or runtime renamed it):
    OpenVINO `__module.head.fusion.blocks.0.ffn.0/aten::linear/MatMul`, ONNX `/head/fusion/blocks.0/ffn/ffn.0/MatMul`."""
    if node.startswith("__module."):
        return node[len("__module."):].split("/", 1)[0]
    return onnx_module_path(node)


def group_of(module: str) -> str:
    """A readable part of the model for a module path: backbone stage, fusion block, decoder level, score..."""
    if not module:
        return "(fused / unnamed nodes)"
    parts = module.split(".")
    if parts[:2] == ["backbone", "body"]:
        if len(parts) > 3 and parts[2] == "blocks":
            return f"backbone stage {parts[3]}"
        return "backbone stem"
    if parts[0] == "backbone":  # torchvision backbones: backbone.<layer index>
        return f"backbone layer {parts[1]}" if len(parts) > 1 else "backbone"
    if parts[0] == "head" and len(parts) > 1:
        if parts[1] == "fusion" and len(parts) > 3:
            return f"head.fusion.blocks.{parts[3]}"
        if parts[1] in ("laterals", "smooth", "decoder"):  # FPN-lite: its laterals, upsample-adds (merges), smoothing
            level = next((p for p in parts[2:] if p[-1].isdigit()), "")
            return f"head.decoder level {level.split('.')[-1]}" if level else "head.decoder"
        return ".".join(parts[:2])
    return ".".join(parts[:2])


def _inputs_for(shapes: list[tuple[list[int], str]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for shape, dtype in shapes:
        if "uint8" in dtype or dtype in ("u8",):
            out.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
        else:
            out.append(rng.standard_normal(shape).astype(np.float32))
    return out


Profile = tuple[dict[str, float], dict[str, float], str, float]  # ms per node, ms per op type, runtime, wall p50 ms


def profile_openvino(path: Path, threads: int, warmup: int, runs: int) -> Profile:
    """Mean ms per node name and per (node type / executed kernel) over `runs` inferences, f32 pinned like deploy;
    the wall-clock p50 of the same inferences."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True})
    request = compiled.create_infer_request()
    inputs = _inputs_for([(list(i.get_shape()), str(i.get_element_type())) for i in compiled.inputs])
    # a fused node is named after one of its parts (often a renamed constant): name it after the first original
    # layer that carries a torch module path
    origin: dict[str, str] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        names = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
        origin[op.get_friendly_name()] = next((n for n in names if module_of(n)), op.get_friendly_name())
    nodes: dict[str, float] = defaultdict(float)
    kinds: dict[str, float] = defaultdict(float)
    wall: list[float] = []
    for i in range(warmup + runs):
        started = time.perf_counter()
        request.infer(inputs)
        if i < warmup:
            continue
        wall.append(1000 * (time.perf_counter() - started))
        for info in request.profiling_info:
            if info.status != ov.ProfilingInfo.Status.EXECUTED:  # NOT_RUN / OPTIMIZED_OUT nodes cost nothing
                continue
            ms = info.real_time.total_seconds() * 1000 / runs
            nodes[origin.get(info.node_name, info.node_name)] += ms
            kinds[f"{info.node_type} ({info.exec_type})"] += ms
    return dict(nodes), dict(kinds), f"openvino {ov.__version__}", float(np.median(wall))


def profile_onnx(path: Path, threads: int, warmup: int, runs: int) -> Profile:
    """Mean ms per node and per operator type from onnxruntime's profiler (kernel time of each node); the
    wall-clock p50 of `runs` inferences timed with the profiler off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = _inputs_for([([d if isinstance(d, int) else 1 for d in i.shape], i.type) for i in session.get_inputs()])
    feed = dict(zip([i.name for i in session.get_inputs()], inputs))
    wall = time_function(lambda: session.run(None, feed), warmup, runs)["p50_ms"]
    options.enable_profiling = True
    options.profile_file_prefix = str(path.parent / "ort-profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(warmup + runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    per_run: dict[str, list[float]] = defaultdict(list)
    op_type: dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            name = e["name"][: -len("_kernel_time")]
            per_run[name].append(e["dur"] / 1000)
            op_type[name] = e.get("args", {}).get("op_name", "?")
    nodes = {n: float(np.mean(t[-runs:])) for n, t in per_run.items()}  # the last `runs` calls (after warm-up)
    kinds: dict[str, float] = defaultdict(float)
    for n, ms in nodes.items():
        kinds[op_type[n]] += ms
    return nodes, dict(kinds), f"onnxruntime {ort.__version__}", float(wall)


PROFILERS = {"openvino": profile_openvino, "onnx": profile_onnx}
MODEL_FILES = {"openvino": "model.xml", "onnx": "model.onnx"}


def breakdown(nodes: dict[str, float]) -> dict[str, float]:
    """ms per model part (group_of(module_of(node))), in the order the parts first appear."""
    parts: dict[str, float] = {}
    for node, ms in nodes.items():
        group = group_of(module_of(node))
        parts[group] = parts.get(group, 0.0) + ms
    return parts


def _order(part: str) -> tuple:
    """Backbone parts first (by stage), then the head's, then the rest; numbers compared as numbers."""
    first = 0 if part.startswith("backbone") else 1 if part.startswith(("head", "classifier")) else 2
    return first, re.sub(r"\d+", "", part), [int(n) for n in re.findall(r"\d+", part)]


def markdown(results: list[dict], note: str) -> str:
    """Per model: a table of its parts (ms and share per target × precision), then its top operator types."""
    lines: list[str] = []
    for model, size in dict.fromkeys((r["model"], r.get("size")) for r in results):
        mine = [r for r in results if r["model"] == model and r.get("size") == size]
        parts = sorted({p for r in mine for p in r["parts"]}, key=_order)
        title = f"**{model}**" + (f" at {size}²" if size else "")
        lines += [title, "", "| part | " + " | ".join(f"{r['target']} {r['precision']} ms (share)" for r in mine)
                  + " |", "|---|" + "---|" * len(mine)]
        for part in parts:
            cells = ["–" if r["parts"].get(part) is None
                     else f"{r['parts'][part]:.2f} ({100 * r['parts'][part] / r['total_ms']:.0f} %)" for r in mine]
            lines.append(f"| {part} | " + " | ".join(cells) + " |")
        lines += ["| **sum of node times** | " + " | ".join(f"**{r['total_ms']:.2f}**" for r in mine) + " |",
                  "| wall-clock p50 (profiler off for ONNX Runtime) | "
                  + " | ".join(f"{r['wall_p50_ms']:.2f}" for r in mine) + " |",
                  "| nodes executed | " + " | ".join(str(r["node_count"]) for r in mine) + " |", ""]
        for r in mine:
            top = sorted(r["kinds"].items(), key=lambda kv: -kv[1])[:6]
            lines.append(f"- {r['target']} {r['precision']}, top operator types: "
                         + ", ".join(f"{k} {v:.2f} ms" for k, v in top) + ".")
        lines.append("")
    return "\n".join(lines) + "\n" + note + "\n"


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--peers", default="lraspp", help=f"comma list of {', '.join(PEERS)}, or none")
    parser.add_argument("--targets", default="openvino,onnx", help=f"comma list of {', '.join(PROFILED)}")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--img-size", default="512", help="input size, or a comma list of sizes (e.g. 128,512)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default="runs/profile")
    args = parser.parse_args(argv)
    checks.threads(args.threads, "--threads")
    targets = args.targets.split(",")
    if unknown := [t for t in targets if t not in PROFILERS]:
        raise UserError(f"cannot profile {unknown[0]}; profiled targets: {', '.join(PROFILED)} (TFLite: the LiteRT "
                        "op profiler is not in the pip wheels)")
    precisions = args.precisions.split(",")
    try:
        sizes = [int(v) for v in args.img_size.split(",")]
    except ValueError as exc:
        raise UserError(f"--img-size must be a size or a comma list of sizes, got '{args.img_size}'") from exc
    out = Path(args.out)
    results = []
    for size in sizes:
        models, calibration, verify = timed_models(args.checkpoint, size, args.peers, precisions)
        card = models["edgeseg"][1]
        jobs = [(name, t, p) for name in models for t in targets for p in precisions]
        for name, target, precision in tqdm(jobs, desc=f"profile {size}²", file=sys.stderr):
            net, net_card = models[name]
            folder, report = _artifact(net, net_card, target, precision, out / "artifacts" / f"{name}-{size}",
                                       calibration, verify)
            nodes, kinds, version, wall = PROFILERS[target](folder / MODEL_FILES[target], args.threads, args.warmup,
                                                            args.runs)
            results.append({"model": name, "size": size, "target": target, "precision": precision, "runtime": version,
                            "total_ms": sum(nodes.values()), "wall_p50_ms": wall, "node_count": len(nodes),
                            "parts": breakdown(nodes), "kinds": kinds,
                            "agreement": report.get("pixel_agreement"), "nodes": nodes})
    note = (f"Per-node times from the runtime's profiler, mean over {args.runs} inferences after {args.warmup} "
            f"warm-ups, {args.threads} thread(s), K = {len(card['classes'])}, logits output; "
            "OpenVINO with f32 inference precision pinned (as deploy.runtime runs it). Node times include the "
            "profiler's own cost per node, so their sum can exceed the wall-clock p50 (ONNX Runtime's p50 is timed "
            "with its profiler off): compare parts within a column, and the wall-clock p50 and node counts across "
            "models (each node also costs its dispatch). Nodes the runtime fused or renamed "
            f"carry no module path: `(fused / unnamed nodes)`. Machine: {describe_machine()}.")
    text = markdown(results, note)
    write_text(out / "profile.md", text)
    write_json(out / "profile.json", {"results": results, "command": sys.argv})
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
