"""Export targets, registered by name. Each module provides:

  PRECISIONS: tuple of supported precisions
  SUFFIX: artifact file/folder suffix
  export(graph, example_inputs, path, precision, calibration, card) -> simulation | None   (writes `path`)
  load(path) -> Backend                                                     (a callable runtime)
and optionally settings(card, precision) -> dict: the exporter's own choices that change the artifact beyond
the card (e.g. ONNX's int8 recipe), so a benchmark reuses an artifact only while they are unchanged;
where `calibration` is a list of model-input tuples ([1, 3, S, S] image first; needed for int8) and
`simulation`, when given, computes in torch what the artifact computes: parity uses it where the
artifact's runtime cannot run here (Core ML on Linux).
"""
from __future__ import annotations

import importlib
from types import ModuleType

from edgeseg.errors import UserError
from edgeseg.registry import Registry

# Graph inputs by position: the image, then (open vocabulary) the padded class embeddings [K_max, D]
# and their validity mask [K_max] (1 = a class, 0 = an unused slot).
INPUT_NAMES = ("image", "text_embeddings", "valid")

TARGETS: Registry[str] = Registry("target", {
    "onnx": "deploy.targets.onnx",
    "openvino": "deploy.targets.openvino",
    "coreml": "deploy.targets.coreml",
    "tflite": "deploy.targets.tflite",
}, extra=("all",))
SUFFIXES: dict[str, str] = {".onnx": "onnx", ".xml": "openvino", ".mlpackage": "coreml", ".tflite": "tflite"}
EXTRAS: dict[str, str] = {"onnx": "-e .", "openvino": '-e ".[openvino]"', "coreml": '-e ".[coreml]"',
                          "tflite": '-e ".[tflite]"'}  # what `pip install` needs for each target (in a checkout)


def missing_package(target: str, exc: ImportError) -> UserError:
    """The one-line error for a target whose optional package is not installed: name the extra."""
    return UserError(f"target '{target}' needs the package '{exc.name}': pip install {EXTRAS[target]}")


def get_target(name: str) -> ModuleType:
    """Import a target module by name; clear errors for unknown names and missing packages."""
    try:
        return importlib.import_module(TARGETS.lookup(name))
    except ImportError as exc:
        raise missing_package(name, exc) from exc


def target_for_artifact(path: str) -> str:
    """Which target wrote an artifact, from its suffix."""
    for suffix, name in SUFFIXES.items():
        if str(path).rstrip("/").endswith(suffix):
            return name
    raise UserError(f"{path}: unknown artifact type; expected one of {', '.join(SUFFIXES)}")
