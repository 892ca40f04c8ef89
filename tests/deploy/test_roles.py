"""One keep-float policy by layer role: the same roles found in every model (ours, torchvision's LR-ASPP), and
each int8 target keeping exactly those modules float."""
import numpy as np
import pytest
import torch

from deploy.roles import (
    KEEP_FLOAT,
    ROLES,
    float_roles,
    inside,
    modules_in_roles,
    onnx_module_path,
    openvino_patterns,
)
from edgeseg.models import Segmenter

IMAGE = (torch.randn(1, 3, 64, 64),)


def ours(**config) -> Segmenter:
    return Segmenter("mobilenetv3", "fusion", torch.randn(4, 16), {"dim": 32, "heads": 2, "depth": 1, **config}).eval()


def test_early_role_is_found_by_stride_in_any_backbone():
    from benchmarks.peers import LRASPPLogits

    # timm (ours): stem and the first two stages run at stride 2 and 4, blocks.2 at stride 8
    early = modules_in_roles(ours(), IMAGE, ("early",))
    assert {"backbone.body.conv_stem", "backbone.body.blocks.0", "backbone.body.blocks.1"} <= set(early)
    assert not any(inside(p, ["backbone.body.blocks.2"]) for p in early)
    # torchvision's LR-ASPP names its layers backbone.0, backbone.1, ...: the same role, other names
    peer = LRASPPLogits(4).eval()
    assert modules_in_roles(peer, IMAGE, ("early",)) == ["backbone.0", "backbone.1", "backbone.2", "backbone.3"]
    # the trained LR-ASPP peer (our timm backbone, dilated): the same layers as ours
    trained = Segmenter("mobilenetv3-os16", "lraspp", torch.randn(4, 16)).eval()
    assert modules_in_roles(trained, IMAGE, ("early",)) == modules_in_roles(ours(), IMAGE, ("early",))


def test_head_roles_cover_attention_score_and_the_score_embeddings():
    model = ours(refine_width=8)
    assert modules_in_roles(model, IMAGE, ("attention",)) == ["head.fusion", "head.text_proj.1"]
    assert modules_in_roles(model, IMAGE, ("score",)) == ["head.refine.score", "head.score"]
    assert modules_in_roles(model, IMAGE, ("embedding",)) == ["head.aux_embed", "head.pixel_embed", "head.refine.embed"]
    # a peer without text has none of them
    from benchmarks.peers import LRASPPLogits

    assert modules_in_roles(LRASPPLogits(4).eval(), IMAGE, ("attention", "score", "embedding")) == []
    with pytest.raises(ValueError, match="unknown role"):
        modules_in_roles(model, IMAGE, ("nope",))


def test_policy_table_and_recipe_switch():
    assert set(KEEP_FLOAT) == {"onnx", "openvino", "tflite", "coreml"}
    assert all(set(roles) <= set(ROLES) for roles in KEEP_FLOAT.values())
    assert float_roles("onnx", early=False) == ("score", "embedding")
    assert float_roles("openvino", early=True)[0] == "early"
    assert float_roles("tflite") == KEEP_FLOAT["tflite"]


def test_runtime_names_map_back_to_module_paths():
    assert onnx_module_path("/head/fusion/blocks.0/ffn/ffn.0/MatMul") == "head.fusion.blocks.0.ffn.0"
    assert onnx_module_path("/backbone/body/blocks/blocks.1/blocks.1.0/conv_pw/Conv") == "backbone.body.blocks.1.0.conv_pw"
    assert onnx_module_path("Constant_12") == ""
    import re

    (pattern,) = openvino_patterns(["head.score"])
    assert re.fullmatch(pattern, "__module.head.score/aten::mul/Multiply")
    assert not re.fullmatch(pattern, "__module.head.scores_x/aten::mul/Multiply")


def test_onnx_int8_keeps_the_peers_early_layers_float_like_ours(tmp_path):
    """The untrained torchvision LR-ASPP's stem and first stages ran int8 while ours stayed float (their names
    did not match the list); by role, both keep them float."""
    pytest.importorskip("onnxruntime")
    import onnx

    from benchmarks.peers import LRASPPLogits
    from deploy.targets import onnx as onnx_target

    peer = LRASPPLogits(4).eval()
    calibration = [(np.random.default_rng(i).standard_normal((1, 3, 64, 64)).astype(np.float32),) for i in range(2)]
    path = tmp_path / "peer.onnx"
    onnx_target.export(peer, IMAGE, path, "int8", calibration, {"head": "lraspp"})
    nodes = onnx.load(str(path)).graph.node
    early = ["backbone.0", "backbone.1", "backbone.2", "backbone.3"]
    quantized = [n.name for n in nodes if n.op_type == "QLinearConv"]
    float_convs = [n.name for n in nodes if n.op_type == "Conv"]
    assert quantized and not any(inside(onnx_module_path(n), early) for n in quantized)
    assert any(inside(onnx_module_path(n), early) for n in float_convs)
