"""The Python API in three lines: `model = edgeseg.load(path)`, `model.predict(image)`, `model.export(...)`.

    import edgeseg
    model = edgeseg.load("runs/demo/best.pt")          # a checkpoint, or an exported artifact (file or folder)
    mask = model.predict("examples/scene_00.png")     # numpy [H, W] class indices into model.classes

One `Model` over both kinds: a checkpoint runs in torch (imported on first use); an artifact runs in its
own runtime through deploy.runtime, and never imports torch. The CLIs (edgeseg.predict, edgeseg.evaluate,
deploy.export, deploy.predict) do the same work; these are the functions behind them for code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from edgeseg import checks
from edgeseg.errors import UserError
from edgeseg.registry import Registry

Image = Union[str, Path, np.ndarray]
# what a model returns per image; also what an exported graph can end with (deploy.outputs, --output)
OUTPUTS: Registry[str] = Registry("output", {
    "mask": "class indices, one per pixel",
    "probs": "class probabilities per pixel",
    "logits": "class scores at the model's output stride",
})
ARTIFACT_SUFFIXES = (".onnx", ".xml", ".tflite", ".mlpackage")


class Model:
    """A trained model (checkpoint) or an exported artifact behind one interface; see `load`."""

    def __init__(self, path: Path, kind: str, card: dict, runner: Any, context: dict | None = None,
                 device: str = "cpu") -> None:
        self.path, self.kind, self.card = path, kind, card
        self._runner, self._context, self._device = runner, context, device
        self._embeddings: np.ndarray | None = None  # a checkpoint's vocabulary after set_classes

    def __repr__(self) -> str:
        return (f"edgeseg.Model({str(self.path)!r}, {self.kind}, {len(self.classes)} classes, "
                f"{self.card['backbone']}/{self.card['head']}, {self.card['img_size']}px)")

    @property
    def classes(self) -> list[str]:
        """The names the masks index (the trained ones, or the last set_classes)."""
        return list(self.card["classes"])

    def set_classes(self, names: Sequence[str], embeddings: np.ndarray | None = None) -> None:
        """Segment these class names from now on. A checkpoint embeds them with its text encoder (through its
        learned context tokens, if trained with them); an open-vocabulary artifact with its exported text
        encoder, on the device. `embeddings` [K, D] (e.g. from python -m edgeseg.text) skips the encoder.
        Raises UserError for empty, duplicate or too many names, or embeddings of the wrong shape."""
        if self.kind == "artifact":  # the runtime checks the names against its tokenizer and its K_max
            names = checks.class_names(names, "set_classes")
            if embeddings is None:
                self._runner.set_classes(names)
            else:
                self._runner.set_embeddings(np.asarray(embeddings, np.float32), names)
            self.card = self._runner.card
            return
        from edgeseg.predict import vocabulary
        from edgeseg.text import name_checker

        names = checks.class_names(names, "set_classes", same=name_checker(self.card).same_text)
        self.card, self._embeddings = vocabulary(self.card, names, self._context, embeddings)

    def predict(self, image: Image | Sequence[Image], output: str = "mask") -> np.ndarray | list[np.ndarray]:
        """Segment an image (uint8 RGB array [H, W, 3], or a path) or a list of them.

        output: "mask" -> class indices [H, W] (uint8, int32 past 255 classes); "probs" -> softmax [K, H, W]
        float32; "logits" -> [K, H, W] float32 (both upsampled to the image size)."""
        OUTPUTS.lookup(output)
        if isinstance(image, (list, tuple)):
            return [self._predict_one(one, output) for one in image]
        return self._predict_one(image, output)

    def _predict_one(self, image: Image, output: str) -> np.ndarray:
        from edgeseg.preprocess import mask_grid, preprocess, upsample_logits

        array = as_image(image)
        if self.kind == "artifact" and self.card.get("output") == "mask":
            if output != "mask":
                raise UserError(f"{self.path} returns class masks (exported with --output mask): only "
                                "output='mask' is available; export with --output logits for scores")
            return self._runner.predict(array)
        logits = self._logits(preprocess(array, self.card))
        up = upsample_logits(logits, array.shape[0], array.shape[1], mask_grid(self.card))
        if output == "logits":
            return up
        if output == "probs":
            shifted = np.exp(up - up.max(axis=0, keepdims=True))
            return (shifted / shifted.sum(axis=0, keepdims=True)).astype(np.float32)
        return up.argmax(axis=0).astype(np.uint8 if up.shape[0] <= 255 else np.int32)

    def _logits(self, inputs: np.ndarray) -> np.ndarray:
        if self.kind == "artifact":
            return self._runner.run(inputs)
        if not hasattr(self, "_torch_fn") or self._torch_fn[0] is not self._embeddings:
            from edgeseg.predict import torch_logits_fn

            self._torch_fn = (self._embeddings, torch_logits_fn(self._runner, self._device, self._embeddings))
        return self._torch_fn[1](inputs)

    def export(self, target: str = "onnx", precision: str = "fp32", calib_data: str | None = None,
               out: str | Path = "runs/export", **options: Any) -> Path:
        """Export this checkpoint to one target x precision, verified against torch; returns the artifact
        folder (what `edgeseg.load` and `deploy.runtime.load` open). `options` are deploy.export's flags,
        underscored (open_vocab=True, max_classes=32, text_encoder=True, img_size=..., nhwc=True, ...).
        Raises CheckFailed when the artifact misses its precision's agreement threshold."""
        if self.kind != "checkpoint":
            raise UserError(f"{self.path} is an exported artifact; export from the checkpoint that made it")
        if "," in target or "," in precision or "all" in (target, precision):
            raise UserError("Model.export makes one artifact: give one target and one precision "
                            "(deploy.export.export takes lists)")
        from deploy.export import export

        report = export(self.path, target, precision, out, calib_data=calib_data, progress=False, **options)[0]
        return Path(report["artifact"]).parent

    def evaluate(self, data: str | None = None, limit: int | None = None) -> dict:
        """mIoU, pixel accuracy and per-class IoU on the val split of `data` (default: the embedded data the
        model was trained on; any `--data` form). Zero-shot checkpoints add mIoU_seen/unseen and hIoU."""
        from edgeseg.data import build_source, data_spec_for

        source = build_source(data_spec_for(self.card, data), "val", self.card["img_size"])
        if list(source.classes) != self.classes:
            raise UserError(f"the data's {len(source.classes)} classes differ from the model's {len(self.classes)}; "
                            "evaluate on data with the same classes.txt (or set_classes to match)")
        if self.kind == "checkpoint":
            from edgeseg.evaluate import evaluate_model

            return evaluate_model(self._runner, self.card, source, self._device, limit=limit,
                                  text_embeddings=self._embeddings)
        from edgeseg.metrics import ConfusionMatrix

        confusion = ConfusionMatrix(len(self.classes))
        for index in range(min(limit or len(source), len(source))):
            image, mask = source.load(index)
            confusion.update(self._runner.predict(image), mask)
        return confusion.summary(self.classes)


def as_image(image: Image) -> np.ndarray:
    """A path or an array -> uint8 RGB [H, W, 3]; a clear UserError for anything else (edgeseg.checks.image,
    the check the torch-free runtime's Predictor applies too)."""
    return checks.image(image)


def load(path: str | Path, device: str | None = None, threads: int | None = None) -> Model:
    """Open a checkpoint (`best.pt` / `last.pt` from edgeseg.train, loaded weights_only) or an exported
    artifact (.onnx, .xml, .tflite, .mlpackage, or the export folder holding one). `device` applies to
    checkpoints (default: cuda when present), `threads` to artifacts' runtimes."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: give a checkpoint (.pt from edgeseg.train) or an exported artifact "
                        "(.onnx/.xml/.tflite/.mlpackage or its folder)")
    is_artifact = path.suffix in ARTIFACT_SUFFIXES or (path.is_dir() and (path / "card.json").is_file()) or (
        path.is_dir() and any(p.suffix in ARTIFACT_SUFFIXES for p in path.iterdir()))
    if is_artifact:
        from deploy.runtime import load as load_artifact

        predictor = load_artifact(path, threads=threads)
        return Model(path, "artifact", predictor.card, predictor)
    import zipfile

    if path.is_dir() or not zipfile.is_zipfile(path):
        raise UserError(f"{path} is neither a checkpoint (.pt) nor an exported artifact "
                        "(.onnx/.xml/.tflite/.mlpackage or a folder holding one)")
    import torch

    from edgeseg.card import build_model, check_card
    from edgeseg.io import load_checkpoint

    payload = load_checkpoint(str(path))
    card = check_card(payload.get("card"), str(path))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(card, payload["model"]).to(device).eval()
    return Model(path, "checkpoint", card, model, payload.get("context"), device)


def list_backbones() -> list[str]:
    """Backbone names `edgeseg.train --backbone` takes."""
    from edgeseg.models.backbone import BACKBONES

    return list(BACKBONES)


def list_heads() -> list[str]:
    """Head names `edgeseg.train --head` takes."""
    from edgeseg.models.heads import HEADS

    return list(HEADS)


def list_presets() -> dict[str, str]:
    """Preset name -> the flags it stands for (`edgeseg.train --preset NAME`)."""
    from edgeseg.presets import PRESETS, describe

    return {name: describe(name) for name in PRESETS}
