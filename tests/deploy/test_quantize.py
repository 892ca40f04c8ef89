"""deploy.quantize: the PT2E int8 recipe's graph rewrites, checked on the .tflite that LiteRT runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.tflite_int8 import operator_counts
from deploy.quantize import GatedHardswish, gated_hardswish
from tests.conftest import run_cli


class _Residual(nn.Module):
    """Two MobileNetV3-like residual blocks in a row (conv-BN-hardswish, conv-BN, + shortcut)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.Hardswish())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.Hardswish(),
                          nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels)) for _ in range(2))
        self.out = nn.Conv2d(channels, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


def test_gated_hardswish_is_the_same_function_on_a_copy():
    model = _Residual().eval()
    gated = gated_hardswish(model)
    assert not any(isinstance(m, nn.Hardswish) for m in gated.modules())
    assert sum(isinstance(m, GatedHardswish) for m in gated.modules()) == 3
    assert sum(isinstance(m, nn.Hardswish) for m in model.modules()) == 3  # the original is untouched
    x = torch.linspace(-5, 5, 3 * 16 * 16).reshape(1, 3, 16, 16)
    torch.testing.assert_close(gated(x), model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("recipe", [{}, {"tensor_adds": True, "gate_hardswish": True}], ids=["plain", "recipe"])
def test_tflite_int8_recipe_quantizes_residual_adds_and_leaves_no_int8_hardswish(tmp_path, recipe):
    pytest.importorskip("litert_torch")
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from deploy.quantize import pt2e_int8

    torch.manual_seed(0)
    model = _Residual().eval()
    example = (torch.randn(1, 3, 32, 32),)
    calibration = [(np.random.default_rng(i).standard_normal((1, 3, 32, 32)).astype(np.float32),) for i in range(4)]
    quantized, quantizer = pt2e_int8(model, example, calibration, early_float=False, **recipe)
    path = tmp_path / "model.tflite"
    litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    ops = operator_counts(path)
    if recipe:  # what the TFLite target ships: both residual adds int8, every hardswish a gate product
        assert ops["ADD:int8"] == 2 and ops["HARD_SWISH:int8"] == 0 and ops["MUL:int8"] == 3, ops
    else:  # litert_torch's annotators alone (the regression the recipe fixes): a float add between blocks
        assert ops["ADD:float32"] >= 1 and ops["HARD_SWISH:int8"] >= 1, ops
    from deploy.targets import tflite

    assert tflite.RECIPES[tflite.DEFAULT_RECIPE] == {"tensor_adds": True, "gate_hardswish": True}
    assert tflite.settings({}, "int8")["recipe"] == tflite.DEFAULT_RECIPE and tflite.settings({}, "fp32") == {}


def test_unknown_tflite_recipe_is_a_one_line_error(tiny_run, tmp_path):
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "tflite", "--precision",
                   "int8", "--calib-data", "synthetic", "--tflite-int8-recipe", "fastest", "--out", str(tmp_path))
    assert proc.returncode == 2 and "unknown TFLite int8 recipe 'fastest'" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


class _ConvAttention(nn.Module):
    """A conv, then self-attention over its pixels (edgeseg's Attention: Linear + matmul)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        from edgeseg.models.layers import Attention

        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.attention = Attention(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixels = self.conv(x).flatten(2).transpose(1, 2)
        return self.attention(pixels, pixels)


def test_attention_stays_float_in_tflite_int8(tmp_path):
    """The float modules are found by name: PT2EQuantizer's type filter compares classes with the strings
    torch.export now records, so by type every Linear of the fusion module was quantized."""
    pytest.importorskip("litert_torch")
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    from deploy.quantize import pt2e_int8

    model = _ConvAttention().eval()
    example = (torch.randn(1, 3, 16, 16),)
    calibration = [(np.random.default_rng(i).standard_normal((1, 3, 16, 16)).astype(np.float32),) for i in range(4)]
    quantized, quantizer = pt2e_int8(model, example, calibration, early_float=False)
    path = tmp_path / "model.tflite"
    litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
    ops = operator_counts(path)
    assert ops["CONV_2D:int8"] == 1 and ops["FULLY_CONNECTED:float32"] == 4 and ops["FULLY_CONNECTED:int8"] == 0, ops
