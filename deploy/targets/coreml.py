"""Core ML .mlpackage via coremltools (mlprogram, iOS 16+): fp32/fp16 compute precision, int8 weights
via coremltools.optimize. Prediction runs on macOS only; on Linux the spec is validated instead."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

PRECISIONS = ("fp32", "fp16", "int8")
SUFFIX = ".mlpackage"


def export(graph: torch.nn.Module, example_inputs: tuple, path: Path, precision: str,
           calibration: list[tuple[np.ndarray, ...]], card: dict) -> None:
    import coremltools as ct

    traced = torch.jit.trace(graph.eval(), example_inputs)
    names = ["image", "text_embeddings"][: len(example_inputs)]
    inputs = [ct.TensorType(name=n, shape=tuple(t.shape), dtype=np.float32) for n, t in zip(names, example_inputs)]
    model = ct.convert(traced, inputs=inputs, outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS16,
                       compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16)
    if precision == "int8":
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_weights

        config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
        model = linear_quantize_weights(model, config)
    model.user_defined_metadata["edgeseg_card"] = json.dumps(card)
    model.user_defined_metadata["classes"] = ",".join(card["classes"])
    model.short_description = f"edgeseg {card['backbone']}/{card['head']} ({len(card['classes'])} classes)"
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
        return list(feature.type.multiArrayType.shape)

    return {
        "inputs": {f.name: shape(f) for f in spec.description.input},
        "outputs": {f.name: shape(f) for f in spec.description.output},
        "metadata": dict(spec.description.metadata.userDefined),
        "ops": sorted(ops),
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
        return np.asarray(self.model.predict(dict(zip(self.names, inputs)))["logits"], dtype=np.float32)


def load(path: Path, threads: int | None = None) -> Backend:
    return Backend(path, threads)
