"""The Python API: edgeseg.load -> predict / set_classes / export / evaluate, and the README's examples."""
import re
import subprocess
import sys

import numpy as np
import pytest

import edgeseg
from edgeseg.errors import UserError
from tests.conftest import ROOT


def _readme_api_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_checkpoint_predict_classes_and_outputs(tiny_run):
    model = edgeseg.load(tiny_run / "best.pt")
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    mask = model.predict(image)
    assert mask.shape == (50, 70) and mask.dtype == np.uint8 and mask.max() < len(model.classes)
    probs = model.predict(image, output="probs")
    assert probs.shape == (len(model.classes), 50, 70)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probs.argmax(0), mask)
    assert [m.shape for m in model.predict([image, image[:20]])] == [(50, 70), (20, 70)]
    model.set_classes(["sky", "grass"])
    assert model.classes == ["sky", "grass"] and model.predict(image).max() <= 1
    assert set(edgeseg.list_presets()) >= {"denseclip", "icpc", "mvp", "spm", "edgeseg"}
    assert "mobilenetv3" in edgeseg.list_backbones() and "fusion" in edgeseg.list_heads()


def test_evaluate_matches_the_cli(tiny_run):
    summary = edgeseg.load(tiny_run / "best.pt").evaluate(limit=4)
    assert 0.0 <= summary["mIoU"] <= 1.0 and len(summary["per_class_iou"]) == 12


def test_bad_inputs_are_user_errors(tiny_run, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="neither a checkpoint"):
        edgeseg.load(tmp_path / "notes.txt")
    with pytest.raises(UserError, match="not found"):
        edgeseg.load(tmp_path / "missing.pt")
    model = edgeseg.load(tiny_run / "best.pt")
    with pytest.raises(UserError, match="dtype float32"):
        model.predict(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(UserError, match=r"shape \(8, 8\)"):
        model.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(UserError, match="not found"):
        model.predict(tmp_path / "nope.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(UserError, match="corrupt"):
        model.predict(tmp_path / "broken.jpg")
    with pytest.raises(UserError, match="output"):
        model.predict(np.zeros((8, 8, 3), np.uint8), output="boxes")
    with pytest.raises(UserError, match="twice"):
        model.set_classes(["sky", "sky"])
    with pytest.raises(UserError, match="one target"):
        model.export(target="onnx,tflite")


@pytest.mark.slow
def test_readme_python_examples_run(tiny_run, tmp_path):
    """The README's three examples, as written, in a folder laid out like a checkout after `make demo`."""
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "best.pt").symlink_to(tiny_run / "best.pt")
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    blocks = _readme_api_blocks()
    assert len(blocks) == 3
    checks = ["assert mask.ndim == 2", "assert (folder / 'text_encoder').is_dir()",
              "assert len(masks) == 2 and model.classes == ['sky', 'grass', 'road']; "
              "assert 'torch' not in sys.modules, 'the artifact example imported torch'"]
    for block, check in zip(blocks, checks):
        script = f"import sys\n{block}\n{check}\n"
        proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, (block, proc.stderr[-3000:])
