"""Numbers a reader can trust (issue #16): calibration and verification images are disjoint, benchmark
artifacts are re-exported when the checkpoint changes, OpenVINO fp32 rows really run in f32."""
import json

import numpy as np
import pytest

from benchmarks.latency import _artifact
from deploy.calibration import check_disjoint, load_inputs_with_ids
from edgeseg.card import load_model
from edgeseg.errors import UserError
from edgeseg.io import file_hash, load_checkpoint, save_checkpoint
from tests.conftest import run_cli, write_image


def test_calibration_and_verification_images_are_disjoint(tiny_run, tmp_path):
    _, card = load_model(str(tiny_run / "best.pt"))
    _, calibration = load_inputs_with_ids("synthetic", card, 16, "train")
    _, verification = load_inputs_with_ids("synthetic", card, 16, "val")
    names = lambda records: {r["image"] for r in records}  # noqa: E731
    assert len(names(calibration)) == 16 and not names(calibration) & names(verification)
    check_disjoint(calibration, verification)
    folder = tmp_path / "images"
    for i in range(6):
        write_image(folder / f"{i}.png", np.full((32, 32, 3), 20 * i, np.uint8))
    _, first = load_inputs_with_ids(str(folder), card, 3, "train")
    _, last = load_inputs_with_ids(str(folder), card, 3, "val")
    assert not names(first) & names(last)  # a plain folder: calibration takes its first images, verification its last
    _, too_many = load_inputs_with_ids(str(folder), card, 4, "val")
    with pytest.raises(UserError, match="also calibration images"):
        check_disjoint(first, too_many)
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx", "--precision", "int8",
                   "--calib-data", str(folder), "--calib-size", "4", "--verify-images", "4", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "also calibration images" in proc.stderr and not (tmp_path / "o").exists()


def test_benchmark_reexports_when_the_checkpoint_changes(tiny_run, tmp_path):
    model, card = load_model(str(tiny_run / "best.pt"))
    card = dict(card, open_vocab=False, source_checkpoint=file_hash(tiny_run / "best.pt"))
    out = tmp_path / "artifacts"
    folder, first = _artifact(model, card, "onnx", "fp32", out, [], [])
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    assert _artifact(model, card, "onnx", "fp32", out, [], [])[1] == first  # same checkpoint: reused
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp
    changed = tmp_path / "changed.pt"  # another checkpoint (one weight moved) in the same --out folder
    payload = load_checkpoint(tiny_run / "best.pt")
    key = next(k for k, v in payload["model"].items() if v.is_floating_point() and v.dim() == 4)
    payload["model"][key] = payload["model"][key] + 0.01
    save_checkpoint(changed, payload)
    other, other_card = load_model(str(changed))
    other_card = dict(other_card, open_vocab=False, source_checkpoint=file_hash(changed))
    _artifact(other, other_card, "onnx", "fp32", out, [], [])
    assert json.loads((folder / "card.json").read_text())["source_checkpoint"] == file_hash(changed)
    assert (folder / "model.onnx").stat().st_mtime_ns != stamp


def test_openvino_fp32_runs_in_f32(tiny_run, tmp_path):
    """On a CPU with native bf16 OpenVINO would run an fp32 IR in bf16 by default; our runtime pins f32."""
    pytest.importorskip("openvino")
    from deploy.runtime import load

    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "openvino",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    compiled = load(tmp_path / "openvino-fp32").backend.compiled
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower() in ("f32", "<type: 'float32'>", "float32")
    precisions = {op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ops()
                  if "runtimePrecision" in op.get_rt_info()}
    assert "f32" in precisions and "bf16" not in precisions, precisions  # default here: bf16 nodes


def test_export_key_follows_the_onnx_int8_recipe(monkeypatch):
    """A changed default recipe (an exporter change, not a card change) must not reuse the old int8 artifact."""
    import deploy.targets.onnx as onnx_target
    from benchmarks.latency import export_key

    card = {"backbone": "mobilenetv3", "source_checkpoint": "abc", "img_size": 64}
    calibration = [(np.zeros((1, 3, 4, 4), np.float32),)]
    pinned = dict(card, onnx_int8_recipe="u8s8-qop-pct-early-ops")  # --onnx-int8-recipe named on the card
    before, before_pinned = export_key(card, "onnx", "int8", calibration), export_key(pinned, "onnx", "int8", calibration)
    fp32, other_target = export_key(card, "onnx", "fp32", []), export_key(card, "openvino", "int8", calibration)
    monkeypatch.setattr(onnx_target, "DEFAULT_RECIPE", "u8s8-qop-pct-early")
    assert export_key(card, "onnx", "int8", calibration) != before
    assert export_key(pinned, "onnx", "int8", calibration) == before_pinned
    assert export_key(card, "onnx", "fp32", []) == fp32 and export_key(card, "openvino", "int8", calibration) == other_target


def test_export_key_follows_the_tflite_int8_recipe(monkeypatch):
    import deploy.targets.tflite as tflite_target
    from benchmarks.latency import export_key

    card = {"backbone": "mobilenetv3", "source_checkpoint": "abc", "img_size": 64}
    calibration = [(np.zeros((1, 3, 4, 4), np.float32),)]
    before, fp32 = export_key(card, "tflite", "int8", calibration), export_key(card, "tflite", "fp32", [])
    monkeypatch.setattr(tflite_target, "DEFAULT_RECIPE", "litert")
    assert export_key(card, "tflite", "int8", calibration) != before
    assert export_key(card, "tflite", "fp32", []) == fp32
