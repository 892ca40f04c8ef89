"""OpenVINO IR via openvino.convert_model (static shape); fp16 weight compression; int8 via NNCF PTQ."""
from __future__ import annotations

from typing import TYPE_CHECKING

import json
from pathlib import Path

import numpy as np

from deploy.roles import KEEP_FLOAT, modules_in_roles, openvino_patterns
from deploy.targets import INPUT_NAMES

if TYPE_CHECKING:  # annotations only: the runtime side never imports torch
    import torch

# int8: NNCF's settings, the same for every model (ours and the peers); what stays float: deploy.roles.KEEP_FLOAT
NNCF_SETTINGS = {"preset": "mixed", "model_type": None}
PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = ".xml"


def export(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str,
           calibration: list[tuple[np.ndarray, ...]], card: dict) -> None:
    import openvino as ov

    shapes = [ov.PartialShape(list(t.shape)) for t in example_inputs]
    model = ov.convert_model(graph, example_input=example_inputs, input=shapes)
    for port, name in zip(model.inputs, card.get("input_names") or INPUT_NAMES):
        port.get_tensor().set_names({name})
    model.outputs[0].get_tensor().set_names({card.get("output_name", "logits")})
    if precision == "int8":
        import nncf

        dataset = nncf.Dataset(calibration, lambda sample: tuple(sample) if len(sample) > 1 else sample[0])
        # the fusion module and the cosine score stay float (by role, for every model), as in the TFLite and ONNX
        # recipes: quantized, the text side loses the small differences between close class names (K_max parity
        # 96.6 -> 97.1 %)
        keep = modules_in_roles(graph, example_inputs, KEEP_FLOAT["openvino"])
        model = nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
                              ignored_scope=nncf.IgnoredScope(patterns=openvino_patterns(keep), validate=False))
    if card.get("input") == "uint8":
        model = _frames_in(model, card)
    model.set_rt_info(json.dumps(card), ["edgeseg_card"])
    # save_model writes .xml + .bin; `path` is the .xml inside the (temporary) artifact folder.
    ov.save_model(model, str(path), compress_to_fp16=(precision == "fp16"))


def settings(card: dict, precision: str) -> dict:
    """What besides the card decides the artifact: for int8, NNCF's settings and the roles kept float."""
    return {**NNCF_SETTINGS, "keep_float": KEEP_FLOAT["openvino"]} if precision == "int8" else {}


def _frames_in(model, card: dict):
    """uint8 RGB NHWC frames of any size in: bilinear resize to S x S, layout and mean/std run in the model
    (PrePostProcessor), so an app feeds camera bytes; labels and model type in rt_info["model_info"], where
    the OpenVINO Model API reads them (spaces in names become underscores)."""
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

    ppp = PrePostProcessor(model)
    image = ppp.input("image")
    image.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.RGB) \
        .set_spatial_dynamic_shape()
    image.preprocess().convert_element_type(ov.Type.f32).resize(ResizeAlgorithm.RESIZE_LINEAR) \
        .mean([255.0 * m for m in card["mean"]]).scale([255.0 * s for s in card["std"]])
    image.model().set_layout(ov.Layout("NCHW"))
    model = ppp.build()
    model.set_rt_info("Segmentation", ["model_info", "model_type"])
    model.set_rt_info(" ".join(name.replace(" ", "_") for name in card["classes"]), ["model_info", "labels"])
    return model


class Backend:
    """OpenVINO CPU compiled model with a fixed thread count."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        config = {"INFERENCE_NUM_THREADS": threads} if threads else {}
        config["INFERENCE_PRECISION_HINT"] = "f32"  # run what the IR holds; fp16 IRs are decompressed to f32 on CPU
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.card = json.loads(model.get_rt_info(["edgeseg_card"]).astype(str)) \
            if model.has_rt_info(["edgeseg_card"]) else None
        self.version = f"openvino {ov.__version__}"

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        results = self.request.infer(list(inputs))
        return np.asarray(results[self.compiled.outputs[0]])


def load(path: Path, threads: int | None = None) -> Backend:
    return Backend(path, threads)
