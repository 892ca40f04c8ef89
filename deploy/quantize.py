"""PT2E int8 (w8a8) quantization of an export graph, calibrated on model inputs in torch; shared by the TFLite
target (litert_torch lowers the quantize/dequantize pairs) and Core ML W8A8 (coremltools converts them)."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from deploy.targets import EARLY_FLOAT


def pt2e_int8(graph: torch.nn.Module, example_inputs: tuple, calibration: list[tuple[np.ndarray, ...]],
              fold_weights: bool = False, early_float: bool = True) -> tuple[torch.nn.Module, object]:
    """Symmetric int8, per-channel weights, static per-tensor activations; returns (quantized module, quantizer).

    Attention, LayerNorm, the fusion module and the cosine score stay float: quantized, the normalisation's
    mul/add wrecked the score maps (29% TFLite agreement measured); convs and the rest of the decoder are int8.
    `early_float` keeps the backbone's stem and first two stages float too (deploy.targets.EARLY_FLOAT).
    `fold_weights` stores the weights as int8 constants (what Core ML needs); litert_torch wants them unfolded."""
    try:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        from edgeseg.errors import UserError

        raise UserError(f"PT2E int8 needs litert-torch's quantizer: pip install 'edgeseg[tflite]' "
                        f"({exc.name} is missing)") from exc

    from deploy.outputs import PostProcess
    from edgeseg.models.fusion import BidirectionalFusion
    from edgeseg.models.layers import Attention, CosineScore

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    for module_type in (BidirectionalFusion, Attention, CosineScore, torch.nn.LayerNorm, PostProcess):
        quantizer.set_module_type(module_type, None)
    exported = torch.export.export(graph, example_inputs).module()
    if early_float:  # by module name, as PT2EQuantizer's name filter spells it from the graph's module stack
        for node in exported.graph.nodes:
            for key, (qualified, _) in node.meta.get("nn_module_stack", {}).items():
                if qualified.endswith(EARLY_FLOAT):  # set_module_name asserts a config; None = leave float
                    quantizer.module_name_config[key[len("L__self___"):].replace("_", ".")] = None
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for sample in calibration:
            prepared(*[torch.from_numpy(x) for x in sample])
    return convert_pt2e(prepared, fold_quantize=fold_weights), quantizer


def as_numpy(module: torch.nn.Module) -> Callable[..., np.ndarray]:
    """A torch module as a numpy function (what parity.compare takes)."""

    @torch.no_grad()
    def run(*inputs: np.ndarray) -> np.ndarray:
        return module(*[torch.from_numpy(x) for x in inputs]).numpy()

    return run
