"""End-to-end CLI tests: train (+resume), evaluate, predict, and their one-line errors."""
import csv
import json

import numpy as np
import torch
from PIL import Image

from edgeseg.io import load_checkpoint
from tests.conftest import run_cli, write_image


def test_train_writes_outputs(tiny_run):
    for name in ("last.pt", "best.pt", "metrics.csv", "model_card.json"):
        assert (tiny_run / name).is_file(), name
    card = json.loads((tiny_run / "model_card.json").read_text())
    assert card["backbone"] == "mobilenetv3-small" and card["head"] == "fusion"
    assert card["text_encoder"] == "minilm" and len(card["classes"]) == len(card["palette"]) >= 10
    rows = list(csv.DictReader((tiny_run / "metrics.csv").open()))
    assert rows[-1]["iter"] == "6" and rows[-1]["val_mIoU"] != ""
    payload = load_checkpoint(tiny_run / "last.pt")
    assert payload["iteration"] == 6 and "optimizer" in payload


def test_resume_continues_from_last_iteration(tiny_run, tmp_path):
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "last.pt").write_bytes((tiny_run / "last.pt").read_bytes())
    proc = run_cli("edgeseg.train", "--backbone", "mobilenetv3-small", "--iters", "8", "--batch-size", "2",
                   "--img-size", "64", "--pretrained", "none", "--val-limit", "4", "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert "resuming from iteration 6" in proc.stderr
    assert load_checkpoint(out / "last.pt")["iteration"] == 8


def test_evaluate_cli_json_and_table(tiny_run):
    proc = run_cli("edgeseg.evaluate", "--checkpoint", str(tiny_run / "best.pt"), "--limit", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert 0.0 <= summary["mIoU"] <= 1.0 and len(summary["per_class_iou"]) >= 10
    table = run_cli("edgeseg.evaluate", "--checkpoint", str(tiny_run / "best.pt"), "--limit", "2")
    assert table.returncode == 0 and "mIoU" in table.stdout and "brick wall" in table.stdout


def test_predict_cli_writes_overlays_and_masks(tiny_run, tmp_path):
    images = tmp_path / "images"
    write_image(images / "a.png", np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    write_image(images / "b.jpg", np.zeros((30, 30), np.uint8))
    proc = run_cli("edgeseg.predict", "--checkpoint", str(tiny_run / "best.pt"), "--source", str(images),
                   "--out", str(tmp_path / "pred"))
    assert proc.returncode == 0, proc.stderr
    mask = Image.open(tmp_path / "pred" / "a_mask.png")
    assert mask.size == (70, 50) and mask.mode == "P"
    assert Image.open(tmp_path / "pred" / "a_overlay.png").size == (70, 50)
    assert np.asarray(mask).max() < 12
    assert len(json.loads((tmp_path / "pred" / "legend.json").read_text())) == 12


def test_user_mistakes_are_one_line_errors(tmp_path):
    cases = [
        ("edgeseg.train", "--backbone", "resnet9000", "--out", str(tmp_path / "x")),
        ("edgeseg.train", "--head", "mlp", "--out", str(tmp_path / "x")),
        ("edgeseg.train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")),
        ("edgeseg.train", "--img-size", "100", "--out", str(tmp_path / "x")),
        ("edgeseg.evaluate", "--checkpoint", str(tmp_path / "missing.pt")),
        ("edgeseg.predict", "--checkpoint", str(tmp_path / "missing.pt"), "--source", str(tmp_path)),
    ]
    for args in cases:
        proc = run_cli(*args)
        assert proc.returncode != 0, args
        assert "Traceback" not in proc.stderr, proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, proc.stderr


def test_not_a_checkpoint_is_refused(tmp_path):
    fake = tmp_path / "fake.pt"
    torch.save({"weights": torch.zeros(2)}, fake)
    proc = run_cli("edgeseg.evaluate", "--checkpoint", str(fake))
    assert proc.returncode != 0 and "not an edgeseg checkpoint" in proc.stderr
