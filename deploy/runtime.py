"""One Predictor API over every runtime: `deploy.runtime.load(path).predict(image) -> mask`.

The backend is chosen by the artifact's suffix; pre/post-processing comes from the model card
embedded in (or stored beside) the artifact and is the same code training and evaluation use.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deploy.targets import get_target, target_for_artifact
from edgeseg.card import check_card
from edgeseg.errors import UserError
from edgeseg.preprocess import logits_to_mask, preprocess


class Predictor:
    """Runs an exported artifact on uint8 RGB images."""

    def __init__(self, backend: Any, card: dict, target: str, text_embeddings: np.ndarray | None = None) -> None:
        self.backend, self.card, self.target = backend, card, target
        self.open_vocab = bool(card.get("open_vocab"))
        self.text_embeddings = text_embeddings
        if self.open_vocab and text_embeddings is None:
            raise UserError("open-vocabulary artifact: pass text embeddings (python -m edgeseg.text --out emb.npy)")

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model input [1, 3, S, S] float32 -> logits [K, h, w]."""
        extra = (self.text_embeddings.astype(np.float32),) if self.open_vocab else ()
        return np.asarray(self.backend(inputs.astype(np.float32), *extra))[0]

    def predict_logits(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] -> logits [K, h, w] at the model's output stride."""
        return self.run(preprocess(image, self.card))

    def predict(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] -> class-index mask [H, W]."""
        return logits_to_mask(self.predict_logits(image), image.shape[0], image.shape[1])


def read_card(path: Path, backend: Any) -> dict:
    """The card embedded in the artifact, else card.json beside it."""
    card = getattr(backend, "card", None)
    if card is None:
        sidecar = path.parent / "card.json"
        if not sidecar.is_file():
            raise UserError(f"{path} carries no edgeseg model card and there is no card.json beside it")
        card = json.loads(sidecar.read_text())
    return check_card(card, str(path))


def load(path: str | Path, threads: int | None = None, text_embeddings: str | np.ndarray | None = None,
         classes: list[str] | None = None) -> Predictor:
    """Load an artifact (.onnx, .xml, .tflite, .mlpackage, or an export folder holding one)."""
    path = Path(path)
    if path.is_dir() and path.suffix != ".mlpackage":
        found = [p for p in path.iterdir() if p.suffix in (".onnx", ".xml", ".tflite", ".mlpackage")]
        if len(found) != 1:
            raise UserError(f"{path}: expected one artifact (.onnx/.xml/.tflite/.mlpackage) in the folder")
        path = found[0]
    if not path.exists():
        raise UserError(f"artifact {path} not found")
    target = target_for_artifact(str(path))
    backend = get_target(target).load(path, threads)
    card = dict(read_card(path, backend))
    if isinstance(text_embeddings, (str, Path)):
        text_embeddings = _load_embeddings(Path(text_embeddings))
    if text_embeddings is None and card.get("open_vocab") and (path.parent / "text_embeddings.npy").is_file():
        text_embeddings = _load_embeddings(path.parent / "text_embeddings.npy")
    if text_embeddings is not None and card.get("open_vocab"):
        if text_embeddings.shape != (len(card["classes"]), card["text_dim"]):
            raise UserError(f"text embeddings are {text_embeddings.shape} but this artifact takes "
                            f"({len(card['classes'])}, {card['text_dim']}) (K is fixed at export)")
        if classes is not None:
            card["classes"] = list(classes)
    return Predictor(backend, card, target, text_embeddings)


def _load_embeddings(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read text embeddings {path}: {exc}") from exc
