"""benchmarks.zeroshot in its CI mode: trains, scores, runs the controls, writes the table, JSON and plot."""
import json

from tests.conftest import run_cli


def test_zeroshot_benchmark_fast_mode(tmp_path):
    out, docs = tmp_path / "zs", tmp_path / "docs"
    proc = run_cli("benchmarks.zeroshot", "--fast", "--variants", "head-fusion", "--iters", "2",
                   "--out", str(out), "--docs", str(docs), timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "zeroshot.json").read_text())
    (entry,) = result["table"]
    assert entry["variant"] == "head-fusion" and entry["seeds"] == [0, 1]
    for key in ("mIoU_seen", "mIoU_unseen", "hIoU", "shuffle_unseen", "unrelated_unseen"):
        assert 0.0 <= entry[key]["mean"] <= 1.0 and entry[key]["std"] >= 0.0, key
    assert len(result["runs"]) == 2 and all(len(r["per_class_iou"]) == 37 for r in result["runs"])
    table = (docs / "zeroshot-results.md").read_text()
    assert "| head-fusion |" in table and "- commit: `" in table and "FAST MODE" in table
    assert (docs / "zeroshot.png").stat().st_size > 10_000 and (out / "zeroshot.png").is_file()
    # a second call reuses the finished runs instead of training again
    proc = run_cli("benchmarks.zeroshot", "--fast", "--variants", "head-fusion", "--iters", "2", "--out", str(out),
                   "--report-only")
    assert proc.returncode == 0 and "reusing" not in proc.stderr and "edgeseg.train" not in proc.stderr
