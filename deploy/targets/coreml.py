"""Core ML .mlpackage via coremltools from torch.export (mlprogram, iOS 16+): fp32/fp16 compute precision, int8 weights
via coremltools.optimize; with the card's `w8a8`, int8 weights and activations (iOS 17+): the graph is
quantized with PT2E and calibrated in torch (Core ML's own activation calibration runs the model, which needs
macOS), then converted with its quantize/dequantize ops. Prediction runs on macOS only; on Linux the spec is
validated instead, and a W8A8 export also returns the torch simulation of the converted graph for parity.

The `image` input is a Core ML ImageType (RGB, 0-255: a CVPixelBuffer / CGImage straight from the camera);
the card's per-channel mean/std are folded into the graph, because ImageType's own `scale` is one scalar."""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deploy.targets import INPUT_NAMES

PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = ".mlpackage"


class ImageInput(torch.nn.Module):
    """[0, 1] RGB (what ImageType gives with scale 1/255) -> (x - mean) / std -> the segmenter."""

    def __init__(self, graph: torch.nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.segmenter = graph
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.segmenter((image - self.mean) * self.inv_std, *rest)


def to_rgb(image: np.ndarray, card: dict) -> np.ndarray:
    """Normalised model input [1, 3, S, S] -> the RGB [0, 1] the ImageType input gives the graph (x * std + mean)."""
    mean, std = (np.asarray(card[k], dtype=np.float32).reshape(1, 3, 1, 1) for k in ("mean", "std"))
    return (image * std + mean).astype(np.float32)


def _w8a8(wrapped: ImageInput, example_inputs: tuple, calibration: list[tuple[np.ndarray, ...]], card: dict):
    """PT2E int8 of the image-input graph calibrated on RGB [0, 1] images; returns (quantized module to convert,
    numpy simulation taking normalised inputs like every other backend)."""
    from deploy.quantize import as_numpy, pt2e_int8

    rgb = [(to_rgb(x, card), *rest) for x, *rest in calibration]
    quantized, _ = pt2e_int8(wrapped, example_inputs, rgb, fold_weights=True, target="coreml")
    run = as_numpy(quantized)

    def simulation(image: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        return run(to_rgb(image, card), *rest)

    return quantized, simulation


def export(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str,
           calibration: list[tuple[np.ndarray, ...]], card: dict) -> Callable[..., np.ndarray] | None:
    import coremltools as ct

    wrapped = ImageInput(graph.eval(), card["mean"], card["std"]).eval()
    w8a8 = precision == "int8" and bool(card.get("w8a8"))
    module, simulation = _w8a8(wrapped, example_inputs, calibration, card) if w8a8 else (wrapped, None)
    source = torch.export.export(module, example_inputs).run_decompositions({})
    inputs = [ct.ImageType(name="image", shape=tuple(example_inputs[0].shape), scale=1.0 / 255.0,
                           bias=[0.0, 0.0, 0.0], color_layout=ct.colorlayout.RGB)]
    for name, example in zip(INPUT_NAMES[1:], example_inputs[1:]):
        inputs.append(ct.TensorType(name=name, shape=tuple(example.shape), dtype=np.float32))
    output = card.get("output_name", "logits")
    model = ct.convert(source, inputs=inputs, outputs=[ct.TensorType(name=output)], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS17 if w8a8 else ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
    if precision == "int8" and not w8a8:
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

        config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
        model = linear_quantize_weights(model, config)
    model.user_defined_metadata["edgeseg_card"] = json.dumps(card)
    model.user_defined_metadata["classes"] = ",".join(card["classes"])
    if len(example_inputs) == 1:  # Xcode's model preview: an image segmenter with its labels and colours
        model.user_defined_metadata["com.apple.coreml.model.preview.type"] = "imageSegmenter"
        model.user_defined_metadata["com.apple.coreml.model.preview.params"] = json.dumps({
            "labels": card["classes"], "colors": ["#%02x%02x%02x" % tuple(c) for c in card["palette"]]})
    model.short_description = f"edgeseg {card['backbone']}/{card['head']} ({len(card['classes'])} classes)"
    model.input_description["image"] = f"RGB image {card['img_size']}x{card['img_size']} (normalisation is inside)"
    if len(example_inputs) > 1:
        model.input_description["text_embeddings"] = "class text embeddings [K_max, D], unused rows zero"
        model.input_description["valid"] = "1 for each row of text_embeddings that is a class, 0 for unused slots"
    model.output_description[output] = {
        "logits": f"class scores [1, K, S/{card['output_stride']}, S/{card['output_stride']}]; argmax over K after "
                  "upsampling gives the mask",
        "probs": "class probabilities [1, K, S, S] (softmax over K) at the input size",
        "mask": "class indices [1, S, S] (int32) into the classes in the metadata"}[card.get("output", "logits")]
    model.save(str(path))
    return simulation


def export_text(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str, spec: dict) -> None:
    """The text encoder (token ids [N, L] int32 -> embeddings [N, D]) as an mlprogram; spec in the metadata."""
    import coremltools as ct

    source = torch.export.export(graph.eval(), example_inputs).run_decompositions({})
    model = ct.convert(source, inputs=[ct.TensorType(name="input_ids", shape=tuple(example_inputs[0].shape),
                                                     dtype=np.int32)],
                       outputs=[ct.TensorType(name="embeddings")], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
    model.user_defined_metadata["edgeseg_text_encoder"] = json.dumps(spec)
    model.short_description = f"edgeseg text encoder ({spec['text_encoder']}, {spec['text_dim']}-d)"
    model.input_description["input_ids"] = (f"WordPiece ids [N, {spec['max_length']}] (vocab.txt; [CLS] .. [SEP], "
                                            "pad 0): the prompts of one class name")
    model.output_description["embeddings"] = "L2-normalised prompt embeddings [N, D]; average and renormalise"
    model.save(str(path))


def spec_summary(path: Path) -> dict:
    """What can be checked without macOS: inputs, outputs, metadata and the op types of the program."""
    import coremltools as ct

    model = ct.models.MLModel(str(path), skip_model_load=True)
    spec = model.get_spec()
    ops: set[str] = set()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.update(op.type for op in block.operations)

    def shape(feature) -> list[int]:
        if feature.type.HasField("imageType"):
            image = feature.type.imageType
            return [1, 3, int(image.height), int(image.width)]
        return list(feature.type.multiArrayType.shape)

    return {
        "inputs": {f.name: shape(f) for f in spec.description.input},
        "outputs": {f.name: shape(f) for f in spec.description.output},
        "metadata": dict(spec.description.metadata.userDefined),
        "ops": sorted(ops),
        "image_input": any(f.type.HasField("imageType") for f in spec.description.input),
        "spec_version": spec.specificationVersion,
    }


class Backend:
    """Core ML runtime (macOS only)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import coremltools as ct

        if platform.system() != "Darwin":
            from edgeseg.errors import UserError

            raise UserError("Core ML prediction needs macOS; on Linux use spec checks (deploy.export verifies the spec)")
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        self.names = [i.name for i in self.model.get_spec().description.input]
        self.card = json.loads(self.model.user_defined_metadata["edgeseg_card"])
        self.version = f"coremltools {ct.__version__}"

    def __call__(self, *inputs: np.ndarray) -> np.ndarray:
        from PIL import Image

        rgb = np.clip(np.round(to_rgb(inputs[0], self.card)[0] * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        feed = {self.names[0]: Image.fromarray(rgb), **dict(zip(self.names[1:], inputs[1:]))}
        return np.asarray(self.model.predict(feed)["logits"], dtype=np.float32)


def load(path: Path, threads: int | None = None) -> Backend:
    return Backend(path, threads)
