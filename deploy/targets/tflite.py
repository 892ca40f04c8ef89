"""TFLite / LiteRT via litert_torch.convert: fp32; fp16 weights (AI Edge Quantizer float casting);
int8 (w8a8) via PT2E static quantization calibrated on images. Float inputs/outputs by default (QUANTIZE /
DEQUANTIZE ops added at the boundary); the card's `int8_io` keeps the int8 boundary tensors as the model's I/O.
The card's `layout: nhwc` gives channels-last image input and logits (the Android / LiteRT convention)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import tempfile
from pathlib import Path

import numpy as np

from edgeseg.registry import Registry

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch

PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = ".tflite"

# int8 recipes: deploy.quantize.pt2e_int8's switches. XNNPACK (LiteRT's CPU path) takes no int8 HARD_SWISH:
# each one ran in the interpreter's own kernel, so int8 MobileNetV3s were slower than fp32 until hardswish was
# written as x * hardsigmoid(x) (`gate`). `adds` quantizes the residual adds litert_torch's annotator misses.
# `int8-early` also quantizes the stem and first two stages (the `early` role of deploy.roles). Measured with
# `python -m benchmarks.tflite_int8` (docs/tflite-int8-recipes.md); `--tflite-int8-recipe` picks another.
RECIPES: Registry[dict[str, bool]] = Registry("TFLite int8 recipe", {
    "litert": {"tensor_adds": False, "gate_hardswish": False},
    "adds": {"tensor_adds": True, "gate_hardswish": False},
    "adds-gate": {"tensor_adds": True, "gate_hardswish": True},
    "adds-gate-int8-early": {"tensor_adds": True, "gate_hardswish": True, "early_float": False},
})
DEFAULT_RECIPE = "adds-gate"


def recipe_of(card: dict) -> str:
    """The int8 recipe an export with this card uses (the card's `tflite_int8_recipe`, else DEFAULT_RECIPE)."""
    return card.get("tflite_int8_recipe") or DEFAULT_RECIPE

_FP16_RECIPE = [{
    "regex": ".*", "operation": "*", "algorithm_key": "float_casting",
    "op_config": {"weight_tensor_config": {"num_bits": 16, "dtype": "FLOAT"}, "compute_precision": "FLOAT",
                  "explicit_dequantize": True},
}]


def _channels_last(graph: torch.nn.Module, example_inputs: tuple, calibration: list[tuple[np.ndarray, ...]],
                   nhwc_output: bool = True):
    """The graph with an NHWC image input [1, S, S, 3] and NHWC logits/probs [1, h, w, K] (litert's own
    wrapper: the layout transposes cancel the ones the NCHW graph would start and end with); a mask
    output [1, S, S] has no channel axis and stays as it is."""
    import litert_torch

    wrapped = litert_torch.to_channel_last_io(graph, args=[0], outputs=[0] if nhwc_output else [])
    example = (example_inputs[0].permute(0, 2, 3, 1).contiguous(), *example_inputs[1:])
    return wrapped, example, [(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), *rest) for x, *rest in calibration]


def export(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str,
           calibration: list[tuple[np.ndarray, ...]], card: dict) -> None:
    import litert_torch

    if card.get("layout") == "nhwc":
        graph, example_inputs, calibration = _channels_last(graph, example_inputs, calibration,
                                                            card.get("output", "logits") != "mask")
    if precision == "int8":
        from litert_torch.quantize.quant_config import QuantConfig

        from deploy.quantize import pt2e_int8

        recipe = dict(RECIPES[recipe_of(card)])
        if card.get("int8_io"):  # the image tensor itself is int8: its first layers cannot stay float then
            recipe["early_float"] = False
        model, pt2e_quantizer = pt2e_int8(graph, example_inputs, calibration, **recipe)
        litert_torch.convert(model, example_inputs, quant_config=QuantConfig(pt2e_quantizer=pt2e_quantizer)).export(
            str(path))
        if not card.get("int8_io"):
            from deploy.targets.tflite_io import float_io

            float_io(path)
    else:
        litert_torch.convert(graph, example_inputs).export(str(path))
        if precision == "fp16":
            from ai_edge_quantizer import quantizer

            qt = quantizer.Quantizer(str(path))
            qt.load_quantization_recipe(_FP16_RECIPE)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "fp16.tflite"
                qt.quantize().export_model(str(out))
                path.write_bytes(out.read_bytes())
    if card.get("mediapipe"):
        _mediapipe_metadata(path, card)
    # deploy.export writes card.json beside the artifact (the model card is not in the flatbuffer).


def settings(card: dict, precision: str) -> dict:
    """What besides the card decides the artifact: for int8, the PT2E recipe resolved (name and switches) and the
    quantizer's own source (deploy/quantize.py), so a changed quantizer re-exports instead of reusing."""
    if precision != "int8":
        return {}
    from edgeseg.io import file_hash

    source = file_hash(Path(__file__).resolve().parents[1] / "quantize.py")  # without importing it (torch)
    roles = file_hash(Path(__file__).resolve().parents[1] / "roles.py")
    return {"recipe": recipe_of(card), **RECIPES[recipe_of(card)], "quantizer_source": source, "roles_source": roles}


def _metadata_version_binding() -> None:
    """MediaPipe's metadata writers import a small C binding (GetMinimumMetadataParserVersion) that the
    mediapipe 1.2 wheels on PyPI leave out; tflite-support (installed without its protobuf<4 pin; needs
    libusb-1.0) ships the same function. Alias it where mediapipe's own is missing."""
    import importlib
    import sys
    import types

    name = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    try:
        binding = importlib.import_module("tensorflow_lite_support.metadata.cc.python._pywrap_metadata_version")
    except ImportError as exc:
        from edgeseg.errors import UserError

        raise UserError("--mediapipe writes TFLite metadata with tflite-support's binding: pip install --no-deps "
                        f"tflite-support (and apt-get install libusb-1.0-0) ({exc})") from exc
    for parent in ("mediapipe.tasks.cc", "mediapipe.tasks.cc.metadata", "mediapipe.tasks.cc.metadata.python"):
        sys.modules.setdefault(parent, types.ModuleType(parent))
    sys.modules[name] = binding


def _mediapipe_metadata(path: Path, card: dict) -> None:
    """TFLite Model Metadata as MediaPipe Tasks' ImageSegmenter reads it: one scalar normalisation (mean 0,
    std 255: the graph takes [0, 1] and normalises per channel itself), the labels, activation NONE."""
    _metadata_version_binding()
    from mediapipe.tasks.python.metadata.metadata_writers import image_segmenter, metadata_writer

    labels = metadata_writer.Labels().add(list(card["classes"]))
    writer = image_segmenter.MetadataWriter.create(bytearray(path.read_bytes()), input_norm_mean=[0.0],
                                                   input_norm_std=[255.0], labels=labels,
                                                   activation=image_segmenter.Activation.NONE)
    model, _ = writer.populate()
    path.write_bytes(bytes(model))


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter  # fallback; built for numpy 1
        return Interpreter, "tflite-runtime"


class Backend:
    """LiteRT interpreter (XNNPACK) with a fixed thread count. Takes and returns NCHW like every backend:
    an NHWC artifact (image input [1, S, S, 3]) gets its input and output transposed here."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        interpreter_class, name = _interpreter_class()
        self.interpreter = interpreter_class(model_path=str(path), num_threads=threads or None)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.output = self.interpreter.get_output_details()[0]
        self.card = None
        images = [list(d["shape"]) for d in self.inputs if len(d["shape"]) == 4]  # none for the text encoder
        self.nhwc = bool(images) and images[0][3] == 3 and images[0][1] != 3
        import importlib.metadata as md

        self.version = f"{name} {md.version(name)}"

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        if self.nhwc:
            inputs = (np.ascontiguousarray(inputs[0].transpose(0, 2, 3, 1)), *inputs[1:])
        by_rank = {len(detail["shape"]): detail for detail in self.inputs}  # image 4-d, text 2-d, valid 1-d
        for value in inputs:
            detail = by_rank[value.ndim]
            self.interpreter.set_tensor(detail["index"], _quantize(value, detail))
        self.interpreter.invoke()
        logits = _dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)
        return np.ascontiguousarray(logits.transpose(0, 3, 1, 2)) if self.nhwc and logits.ndim == 4 else logits


def _quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the tensor's dtype; integer tensors (PT2E int8 I/O) use their scale and zero point."""
    dtype = detail["dtype"]
    scale, zero_point = detail["quantization"]
    if np.issubdtype(dtype, np.floating) or not scale:  # float, or plain integers (token ids)
        return value.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if not scale:  # plain integers (a class-index mask): no quantization parameters
        return value
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


def load(path: Path, threads: int | None = None) -> Backend:
    return Backend(path, threads)
