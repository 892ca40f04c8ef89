"""benchmarks.report (`make results`): every step in fast mode writes its stamped docs file, README's generated
blocks are copied from those files, and the repository's own README matches its docs/."""
import re
import shutil

from benchmarks.report import STEPS, body_of, readme_blocks
from benchmarks.stamp import ROOT
from tests.conftest import run_cli


def test_report_fast_mode_regenerates_every_docs_table_and_readme(tmp_path):
    out, docs = tmp_path / "runs", tmp_path / "docs"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + "".join(f"<!-- report: docs/{s.doc}.md -->\nstale {name}\n<!-- /report -->\ntext\n"
                                          for name, s in STEPS.items()))
    proc = run_cli("benchmarks.report", "--fast", "--steps", "all", "--out", str(out), "--docs", str(docs),
                   "--readme", str(readme), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.count("\ntext\n") == len(STEPS)
    for name, step in STEPS.items():
        doc = (docs / f"{step.doc}.md").read_text()
        # stamped: the command (with the step's own command), commit, machine with its ISA, date
        assert f"(step {name}: python -m {step.module} " in doc and "FAST MODE" in doc, name
        assert re.search(r"- commit: `[0-9a-f]{7,}", doc) and "logical cores" in doc and "- date: 20" in doc, name
        assert "|---|" in doc, f"{name}: no table"
        provenance, body = body_of(doc)
        assert body in text and provenance in text, name
    assert "- checkpoints (sha256, first 12 hex digits): demo `" in (docs / "export-parity.md").read_text()
    assert "edgeseg / lraspp" in (docs / "latency-results.md").read_text()  # ours next to the peer
    assert (docs / "latency.png").stat().st_size > 5_000 and (docs / "zeroshot.png").is_file()
    # README and docs now agree; a hand edit of a block is caught
    assert run_cli("benchmarks.report", "--check-readme", "--readme", str(readme)).returncode == 0
    readme.write_text(text.replace("| onnx |", "| onnx (edited) |", 1))
    proc = run_cli("benchmarks.report", "--check-readme", "--readme", str(readme))
    assert proc.returncode == 1 and "export-parity.md" in proc.stderr


def test_repository_readme_blocks_equal_their_docs_files():
    """Every table README shows under a report block is exactly what benchmarks.report wrote to docs/."""
    blocks = readme_blocks((ROOT / "README.md").read_text(), ROOT)
    assert len(blocks) >= 6
    for doc, have, want in blocks:
        assert have == want, f"README block of {doc} differs from the file: python -m benchmarks.report --steps none"


def test_report_bad_input_is_one_line(tmp_path):
    proc = run_cli("benchmarks.report", "--fast", "--steps", "demo,nope", "--out", str(tmp_path))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: unknown step(s) nope")
    assert "Traceback" not in proc.stderr
    proc = run_cli("benchmarks.report", "--fast", "--steps", "latency", "--out", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "add the demo step" in proc.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_report_trains_the_exact_demo_model_make_demo_trains():
    """The published demo figures come from `make demo`'s own training command, flag for flag."""
    makefile = (ROOT / "Makefile").read_text()
    iters = re.search(r"DEMO_ITERS \?= (\d+)", makefile).group(1)
    line = next(l for l in makefile.splitlines() if "-m edgeseg.train" in l and "runs/demo" in l)
    make_argv = line.split("-m edgeseg.train", 1)[1].replace("$(DEMO_ITERS)", iters).split()
    report_argv = STEPS["demo"].full(ROOT / "runs/report/demo")
    assert make_argv[:-1] == report_argv[:-1] and make_argv[-2] == "--out"


def test_train_speed_writes_one_docs_file_per_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert STEPS["train-speed"].doc_name() == "train-speed" and STEPS["zeroshot"].doc_name() == "zeroshot-results"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for card, doc in (("NVIDIA H100 80GB HBM3", "train-speed-h100"), ("NVIDIA H200", "train-speed-h200"),
                      ("NVIDIA GeForce RTX 4090", "train-speed-nvidia-geforce-rtx-4090")):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, card=card: card)
        assert STEPS["train-speed"].doc_name() == doc  # README's GPU blocks name these files
    assert STEPS["zeroshot"].doc_name() == "zeroshot-results"  # one table whatever trained it
