"""PT2E int8 (w8a8) quantization of an export graph, calibrated on model inputs in torch; shared by the TFLite
target (litert_torch lowers the quantize/dequantize pairs) and Core ML W8A8 (coremltools converts them)."""
from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from deploy.roles import float_roles, inside, modules_in_roles


def pt2e_int8(graph: torch.nn.Module, example_inputs: tuple, calibration: list[tuple[np.ndarray, ...]],
              fold_weights: bool = False, early_float: bool = True,
              tensor_adds: bool = False, gate_hardswish: bool = False,
              target: str = "tflite") -> tuple[torch.nn.Module, object]:
    """Symmetric int8, per-channel weights, static per-tensor activations; returns (quantized module, quantizer).

    The modules of the roles `deploy.roles.KEEP_FLOAT[target]` keeps float stay float (attention, LayerNorm and
    the fusion module); convs and the rest of the decoder are int8. The cosine score and the output's
    post-process are quantized where the annotators reach them (their muls, the resize): kept float, the score's
    broadcast breaks litert's NHWC rewrite at conversion.
    `early_float` keeps the backbone's layers at stride <= 4 float too (the `early` role: stem, first stages).
    `fold_weights` stores the weights as int8 constants (what Core ML needs); litert_torch wants them unfolded.
    `tensor_adds` quantizes every tensor + tensor add outside the float modules (`_with_tensor_adds`).
    `gate_hardswish` writes each nn.Hardswish as x * hardsigmoid(x) (`GatedHardswish`; the TFLite recipe)."""
    try:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        from edgeseg.errors import UserError

        raise UserError(f"PT2E int8 needs litert-torch's quantizer: pip install 'edgeseg[tflite]' "
                        f"({exc.name} is missing)") from exc

    quantizer = (_with_tensor_adds(PT2EQuantizer) if tensor_adds else PT2EQuantizer)().set_global(
        get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    source = gated_hardswish(graph) if gate_hardswish else graph
    keep = modules_in_roles(source, example_inputs, float_roles(target, early=early_float))
    exported = torch.export.export(source, example_inputs).module()
    # Float modules by name, as PT2EQuantizer's name filter spells it from the graph's module stack. Its type
    # filter (set_module_type) compares classes, and torch.export now records each module's type as a string:
    # by type nothing was left float (every TFLite int8 artifact before this quantized the fusion module's linears;
    # kept float: 99.15 against 99.06 % agreement, the same latency). set_module_name asserts a config; None = float.
    for node in exported.graph.nodes:
        for key, (qualified, _kind) in node.meta.get("nn_module_stack", {}).items():
            if inside(qualified, keep):
                quantizer.module_name_config[key[len("L__self___"):].replace("_", ".")] = None
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for sample in calibration:
            prepared(*[torch.from_numpy(x) for x in sample])
    return convert_pt2e(prepared, fold_quantize=fold_weights), quantizer


class GatedHardswish(torch.nn.Module):
    """hardswish(x) written as x * hardsigmoid(x), the same function. Under PT2E int8 the .tflite then holds an
    int8 MUL of x and its gate (the gate's add/clamp/scale run float on the dequantized x) instead of an int8
    HARD_SWISH, which XNNPACK does not take (it ran in the interpreter's own kernel): the demo model's int8
    went from 1.24x to 0.83x its fp32 latency, LR-ASPP's from 1.55x to 0.67x (docs/tflite-int8-recipes.md)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.nn.functional.hardsigmoid(x)


def gated_hardswish(graph: torch.nn.Module) -> torch.nn.Module:
    """A copy of `graph` with every nn.Hardswish replaced by GatedHardswish (the original is left as it is)."""
    graph = copy.deepcopy(graph)
    for module in list(graph.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Hardswish):
                setattr(module, name, GatedHardswish())
    return graph


def _with_tensor_adds(base: type) -> type:
    """`base` (litert_torch's PT2EQuantizer) that also annotates each tensor + tensor `aten.add` outside the
    modules kept float. Its own add annotator finds adds by `source_fn_stack`, which torch.export no longer
    records, so every residual add of the backbone stayed float (DEQUANTIZE -> ADD -> QUANTIZE in the
    .tflite) and the sum of two chained residual blocks passed between them unquantized."""
    from litert_torch.quantize.pt2e_quantizer import _get_not_module_type_or_name_filter
    from litert_torch.quantize.pt2e_quantizer_utils import (
        QuantizationAnnotation,
        _is_annotated,
        get_input_act_qspec,
        get_output_act_qspec,
    )

    class TensorAddQuantizer(base):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            quantizable = _get_not_module_type_or_name_filter(list(self.module_type_config),
                                                              list(self.module_name_config))
            config = self.global_config
            for node in model.graph.nodes:
                operands = node.args[:2]
                if (node.op == "call_function" and node.target == torch.ops.aten.add.Tensor
                        and all(isinstance(a, torch.fx.Node) and a.op != "get_attr" for a in operands)
                        and quantizable(node) and not _is_annotated([node])):
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={a: get_input_act_qspec(config) for a in operands},
                        output_qspec=get_output_act_qspec(config), _annotated=True)
            return super().annotate(model)

    return TensorAddQuantizer


def as_numpy(module: torch.nn.Module) -> Callable[..., np.ndarray]:
    """A torch module as a numpy function (what parity.compare takes)."""

    @torch.no_grad()
    def run(*inputs: np.ndarray) -> np.ndarray:
        return module(*[torch.from_numpy(x) for x in inputs]).numpy()

    return run
