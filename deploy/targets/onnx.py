"""ONNX via torch.onnx.export (static shape, opset 17); fp16 by float16 conversion; int8 by
onnxruntime static quantization on calibration images (RECIPES; default chosen by measurement)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np

from deploy.roles import as_called, float_roles, inside, modules_in_roles, onnx_module_path
from deploy.targets import INPUT_NAMES
from edgeseg.registry import Registry

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch

PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = ".onnx"
OPSET = 17
# int8 recipes: onnxruntime static quantization of the convolutions, per channel. Activation type (S8/U8),
# QDQ or QOperator format, reduce_range, calibration (MinMax / Percentile), and which convolutions stay
# float (deploy.roles.KEEP_FLOAT["onnx"], by role: the 1x1 embeddings feeding the cosine score, the score;
# `early`: whether the backbone's layers at stride <= 4 (stem, first stages) do too). `-early`: they stay float:
# at their high resolution int8 noise flips the argmax between classes whose names are close (measured at K_max).
# DEFAULT_RECIPE: of the recipes that pass the 97 % gate (closed set and open vocabulary at every K), the
# fastest, and within 5 % of it the most accurate, at 128² and 512² (`python -m benchmarks.onnx_int8`,
# docs/onnx-int8-recipes.md: Intel Xeon with AVX-512 VNNI, 2 threads; QDQ S8S8 ran at 1.6-2.3x fp32's latency,
# QOperator U8S8 with the early layers float at 0.80x (128²) to 1.19x (512²), and with the backbone's ops between
# convolutions int8 too (`-ops`) at 0.76x to 1.16x, agreement 99.37 / 98.69 %); `--onnx-int8-recipe` picks another.
RECIPES: Registry[dict] = Registry("ONNX int8 recipe", {
    "s8s8-qdq-rr": {"activation": "QInt8", "format": "QDQ", "reduce_range": True},
    "s8s8-qdq": {"activation": "QInt8", "format": "QDQ", "reduce_range": False},
    "u8s8-qdq": {"activation": "QUInt8", "format": "QDQ", "reduce_range": False},
    "u8s8-qop": {"activation": "QUInt8", "format": "QOperator", "reduce_range": False},
    "u8s8-qop-pct": {"activation": "QUInt8", "format": "QOperator", "reduce_range": False, "calibration": "Percentile"},
    "u8s8-qop-early": {"activation": "QUInt8", "format": "QOperator", "reduce_range": False, "early": True},
    "u8s8-qop-pct-early": {"activation": "QUInt8", "format": "QOperator", "reduce_range": False,
                           "calibration": "Percentile", "early": True},
    "u8s8-qop-pct-early-ops": {"activation": "QUInt8", "format": "QOperator", "reduce_range": False,
                               "calibration": "Percentile", "early": True, "backbone_ops": True},
})
# `backbone_ops`: in the backbone, the ops between convolutions (ReLU, residual Add, the Mul of hard-swish and
# squeeze-excite, its pooling) run on int8 too, so consecutive int8 convolutions need no Dequantize/Quantize
# pair between them (the profile's 13 ms of DQ/Q at 512², docs/profile.md). The head's stay float.
BACKBONE_OPS = ("Relu", "Clip", "Add", "Mul", "HardSigmoid", "GlobalAveragePool", "ReduceMean", "Sigmoid")
DEFAULT_RECIPE = "u8s8-qop-pct-early-ops"


def recipe_of(card: dict) -> str:
    """The int8 recipe an export with this card uses (the card's `onnx_int8_recipe`, else DEFAULT_RECIPE)."""
    return card.get("onnx_int8_recipe") or DEFAULT_RECIPE


def settings(card: dict, precision: str) -> dict:
    """What besides the card decides the artifact: for int8, the recipe resolved (name and its settings)."""
    if precision != "int8":
        return {}
    recipe = RECIPES[recipe_of(card)]
    ops = {"backbone_ops": BACKBONE_OPS} if recipe.get("backbone_ops") else {}
    return {"recipe": recipe_of(card), **recipe, **ops, "keep_float": float_roles("onnx", bool(recipe.get("early")))}


def export_float(graph: torch.nn.Module, example_inputs: tuple, path: Path, input_names: list[str],
                 output_name: str = "logits") -> None:
    """Plain fp32 ONNX with static shapes (TorchScript exporter: dynamo=False, set explicitly)."""
    import torch  # export side only: runtimes load this module without torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, example_inputs, str(path), opset_version=OPSET, dynamo=False,
                          input_names=input_names, output_names=[output_name], do_constant_folding=True)


class _Reader:
    """onnxruntime CalibrationDataReader over model-input arrays."""

    def __init__(self, inputs: list[dict[str, np.ndarray]]) -> None:
        self._iter = iter(inputs)

    def get_next(self):
        return next(self._iter, None)


def _add_metadata(path: Path, card: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "edgeseg_card", json.dumps(card)
    onnx.save(model, str(path))


def export(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str,
           calibration: list[tuple[np.ndarray, ...]], card: dict) -> None:
    input_names = list(card.get("input_names") or INPUT_NAMES[: len(example_inputs)])
    output_name = card.get("output_name", "logits")
    if precision == "fp32":
        export_float(graph, example_inputs, path, input_names, output_name)
    elif precision == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        with tempfile.TemporaryDirectory() as tmp:
            float_path = Path(tmp) / "float.onnx"
            export_float(graph, example_inputs, float_path, input_names, output_name)
            onnx.save(convert_float_to_float16(onnx.load(str(float_path)), keep_io_types=True), str(path))
    else:
        import onnx
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as tmp:
            float_path, prepped = Path(tmp) / "float.onnx", Path(tmp) / "prep.onnx"
            export_float(graph, example_inputs, float_path, input_names)
            quant_pre_process(str(float_path), str(prepped), skip_symbolic_shape=True)
            feeds = [dict(zip(input_names, sample)) for sample in calibration]
            # Convs per channel (with `backbone_ops`, also the backbone's ops between them): attention, LayerNorm,
            # softmax and the cosine score stay float, and so do the two 1x1 embeddings that feed the cosine
            # (quantizing them flips argmaxes; measured).
            recipe = RECIPES[recipe_of(card)]
            nodes = onnx.load(str(prepped)).graph.node
            keep = as_called(modules_in_roles(graph, example_inputs, float_roles("onnx", bool(recipe.get("early")))),
                             [onnx_module_path(n.name) for n in nodes])
            kept = {n.name for n in nodes if inside(onnx_module_path(n.name), keep)}
            keep_float = [n.name for n in nodes if n.op_type == "Conv" and n.name in kept]
            op_types = ["Conv"]
            if recipe.get("backbone_ops"):
                op_types += BACKBONE_OPS
                keep_float += [n.name for n in nodes if n.op_type in BACKBONE_OPS
                               and ("/backbone/" not in n.name or n.name in kept)]
            calibration_method = recipe.get("calibration", "MinMax")

            def quantize(method: str) -> None:
                quantize_static(str(prepped), str(path), _Reader(feeds),
                                quant_format=getattr(QuantFormat, recipe["format"]),
                                activation_type=getattr(QuantType, recipe["activation"]), weight_type=QuantType.QInt8,
                                per_channel=True, reduce_range=recipe["reduce_range"],
                                calibrate_method=getattr(CalibrationMethod, method),
                                op_types_to_quantize=op_types, nodes_to_exclude=keep_float)

            try:
                quantize(calibration_method)
            except ValueError as exc:  # numpy: a tensor's range too narrow for the histogram (e.g. untrained weights)
                if calibration_method == "MinMax" or "bins" not in str(exc):
                    raise
                warnings.warn(f"ONNX int8: {calibration_method} calibration failed ({exc}); calibrating with MinMax "
                              "(the parity check still gates the artifact)")
                quantize("MinMax")
                card = dict(card, onnx_int8_calibration=f"MinMax (fallback: {calibration_method} failed: {exc})")
    _add_metadata(path, card)


class Backend:
    """onnxruntime CPU session; call with model inputs, returns logits [1, K, h, w]."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.card = json.loads(meta["edgeseg_card"]) if "edgeseg_card" in meta else None
        self.version = f"onnxruntime {ort.__version__}"

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        return self.session.run(None, dict(zip(self.input_names, inputs)))[0]


def load(path: Path, threads: int | None = None) -> Backend:
    return Backend(path, threads)
