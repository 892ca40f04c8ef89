"""The per-layer profiler names each runtime node after the torch module that made it, and times real nodes."""
import json

from benchmarks.profile import breakdown, group_of, module_of
from tests.conftest import run_cli


def test_node_names_map_to_modules_and_parts():
    assert module_of("__module.head.fusion.blocks.0.ffn.0/aten::linear/MatMul") == "head.fusion.blocks.0.ffn.0"
    assert module_of("/backbone/body/blocks.3/blocks.3.1/bn2/act/HardSwish") == "backbone.body.blocks.3.1.bn2.act"
    assert module_of("Multiply_436789") == ""
    assert group_of("backbone.body.blocks.3.1.bn2") == "backbone stage 3"
    assert group_of("backbone.body.conv_stem") == "backbone stem"
    assert group_of("head.fusion.blocks.1.self_attn.q") == "head.fusion.blocks.1"
    assert group_of("head.laterals.1.0") == "head.decoder level 1"
    assert group_of("head.score") == "head.score" and group_of("classifier.cbr.0") == "classifier.cbr"
    assert breakdown({"/head/score/Mul": 1.0, "/head/score/ReduceSum": 0.5, "Constant_1": 0.25}) == {
        "head.score": 1.5, "(fused / unnamed nodes)": 0.25}


def test_profile_cli_on_tiny_model(tiny_run, tmp_path):
    proc = run_cli("benchmarks.profile", "--checkpoint", str(tiny_run / "best.pt"), "--targets", "onnx,openvino",
                   "--precisions", "fp32", "--img-size", "64", "--warmup", "1", "--runs", "3", "--peers", "none",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "profile.json").read_text())["results"]
    assert [(r["target"], r["precision"]) for r in results] == [("onnx", "fp32"), ("openvino", "fp32")]
    for r in results:
        assert r["total_ms"] > 0 and abs(sum(r["parts"].values()) - r["total_ms"]) < 1e-6
        named = sum(ms for part, ms in r["parts"].items() if part != "(fused / unnamed nodes)")
        assert named > 0.5 * r["total_ms"]  # most of the time is traced back to a module
        assert any(p.startswith("backbone") for p in r["parts"]) and any(p.startswith("head") for p in r["parts"])
        assert r["wall_p50_ms"] > 0 and r["node_count"] == len(r["nodes"]) > 10
    assert "**edgeseg**" in (tmp_path / "profile.md").read_text()
    bad = run_cli("benchmarks.profile", "--checkpoint", str(tiny_run / "best.pt"), "--targets", "tflite")
    assert bad.returncode == 2 and "cannot profile tflite" in bad.stderr
