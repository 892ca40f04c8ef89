"""The timing harness on a tiny model: run counts, percentiles, size/RSS, valid PNG plot."""
import json

import numpy as np

from benchmarks.latency import plot
from benchmarks.machine import cpu_info, peak_gflops
from benchmarks.timing import summarize, time_function
from tests.conftest import run_cli


def test_percentiles_match_numpy():
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0]
    summary = summarize(samples)
    assert summary["runs"] == 7
    assert summary["p50_ms"] == np.percentile(samples, 50) == 4.0
    assert summary["p90_ms"] == np.percentile(samples, 90)
    assert abs(summary["mean_ms"] - np.mean(samples)) < 1e-12 and abs(summary["std_ms"] - np.std(samples)) < 1e-12


def test_time_function_counts_runs():
    calls = []
    result = time_function(lambda: calls.append(1), warmup=3, runs=7)
    assert len(calls) == 1 + 3 + 7 and result["runs"] == 7 and len(result["times_ms"]) == 7


def test_machine_peak_is_derived():
    info = cpu_info()
    assert info["cores"] >= 1 and "avx2" in info["isa"]
    peak, how = peak_gflops(info)
    assert (peak is None) or (peak > 0 and "GFLOP/s" in how)


def test_latency_cli_on_tiny_model(tiny_run, tmp_path):
    out = tmp_path / "bench"
    proc = run_cli("benchmarks.latency", "--checkpoint", str(tiny_run / "best.pt"), "--targets", "onnx",
                   "--precisions", "fp32", "--img-size", "64", "--threads", "1", "--warmup", "2", "--runs", "5",
                   "--peers", "lraspp", "--outputs", "logits,mask", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    masks = {r["model"]: r for r in results["rows"] if r["output"] == "mask"}
    logits = {r["model"]: r for r in results["rows"] if r["output"] == "logits" and r["target"] == "onnx"}
    for name in ("edgeseg", "lraspp"):  # the in-graph mask: smaller output, timed end to end next to logits
        assert masks[name]["output_bytes"] == 64 * 64 and masks[name]["e2e_p50_ms"] > 0
        side = 64 // json.loads((out / "artifacts" / name / "onnx-fp32" / "card.json").read_text())["output_stride"]
        assert logits[name]["output_bytes"] == 12 * side * side * 4 and logits[name]["e2e_p50_ms"] > 0
    rows = {(r["model"], r["target"]): r for r in results["rows"] if r["output"] == "logits"}
    assert set(rows) == {("edgeseg", "onnx"), ("edgeseg", "torch"), ("lraspp", "onnx"), ("lraspp", "torch")}
    for row in rows.values():
        assert row["status"] == "ok" and row["runs"] == 5 and len(row["times_ms"]) == 5
        assert row["p50_ms"] == np.percentile(row["times_ms"], 50)
        assert row["size_mb"] > 0 and row["peak_rss_mb"] > 0
    assert (out / "results.csv").read_text().startswith("model,target,precision")
    assert "| edgeseg | onnx | fp32 | mask | 1 |" in (out / "results.md").read_text()
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_writes_png(tmp_path):
    rows = [{"model": "edgeseg", "target": "onnx", "precision": "fp32", "threads": 1, "p50_ms": 3.0,
             "p90_ms": 4.0, "status": "ok"}]
    plot(rows, tmp_path / "p.png", {"onnx-fp32": 0.5})
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_train_speed_cli_times_both_modes(tmp_path):
    proc = run_cli("benchmarks.train_speed", "--img-size", "64", "--batch-size", "2", "--iters", "2", "--warmup", "1",
                   "--backbone", "mobilenetv3-small", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "train_speed.json").read_text())
    modes = [row["mode"] for row in result["rows"]]
    assert modes[0] == "fp32" and modes[1].startswith("AMP") and len(result["rows"][1]["times"]) == 2
    assert result["speedup"] == result["rows"][0]["median_s"] / result["rows"][1]["median_s"]
    assert "AMP speed-up" in (tmp_path / "train_speed.md").read_text()


def test_ablation_cli_reuses_finished_variants(tmp_path):
    flags = ["--variants", "plain-fusion,mvp", "--backbone", "mobilenetv3-small",
             "--iters", "2", "--batch-size", "2", "--img-size", "64", "--val-limit", "2", "--pretrained", "none",
             "--out", str(tmp_path)]
    proc = run_cli("benchmarks.ablation", *flags)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["plain-fusion", "mvp"]
    assert rows[1]["flags"] == "--preset mvp" and rows[1]["gflops_512"] > rows[0]["gflops_512"] * 0.5
    assert all(0 <= r["best_mIoU"] <= 1 and r["params_M"] > 0 for r in rows)
    again = run_cli("benchmarks.ablation", *flags)
    assert again.returncode == 0 and again.stderr.count("reusing") == 2
    best = (tmp_path / "mvp" / "best.pt").read_bytes()
    (tmp_path / "mvp" / "row.json").unlink()  # trained, but stopped before its row was written: resumed, not retrained
    resumed = run_cli("benchmarks.ablation", *flags)
    assert resumed.returncode == 0 and "mvp: --preset mvp (resuming from its last.pt)" in resumed.stderr, resumed.stderr
    row = json.loads((tmp_path / "mvp" / "row.json").read_text())
    assert row["resumed"] and row["best_mIoU"] == rows[1]["best_mIoU"] and row["train_seconds"] > 0
    assert (tmp_path / "mvp" / "best.pt").read_bytes() == best
    bad = run_cli("benchmarks.ablation", "--variants", "nope", "--out", str(tmp_path))
    assert bad.returncode == 2 and "unknown variant" in bad.stderr


def test_run_identity_ignores_folder_workers_and_checkout_path():
    from benchmarks.ablation import REPO, run_identity

    split = str(REPO / "configs" / "splits" / "synthetic-attributes-unseen.txt")
    here = ["--unseen", split, "--iters", "600", "--workers", "3", "--seed", "0", "--out", "runs/zs/a-seed0"]
    moved = ["--unseen", "configs/splits/synthetic-attributes-unseen.txt", "--iters", "600", "--seed", "0",
             "--workers=0", "--out", "runs/report/zeroshot/a-seed0"]
    assert run_identity(here) == run_identity(moved) == ["--unseen", "configs/splits/synthetic-attributes-unseen.txt",
                                                        "--iters", "600", "--seed", "0"]
    assert run_identity([*here[:-2], "--seed", "1"]) != run_identity(here)  # what it computes still tells runs apart
    assert run_identity(["--unseen", "/elsewhere/configs/x.txt"]) == ["--unseen", "/elsewhere/configs/x.txt"]
