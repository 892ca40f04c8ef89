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
from deploy.vocabulary import pad_vocabulary
from edgeseg.card import check_card, default_palette
from edgeseg.errors import UserError
from edgeseg.preprocess import logits_to_mask, preprocess


class Predictor:
    """Runs an exported artifact on uint8 RGB images. An open-vocabulary artifact segments whichever
    1..K_max classes were set last (`set_embeddings`), padded into its static slots."""

    def __init__(self, backend: Any, card: dict, target: str, text_embeddings: np.ndarray | None = None) -> None:
        self.backend, self.card, self.target = backend, card, target
        self.open_vocab = bool(card.get("open_vocab"))
        self.max_classes = int(card.get("max_classes") or len(card["classes"]))
        self._vocabulary: tuple[np.ndarray, ...] = ()
        self._trained_colors = dict(zip(card["classes"], card["palette"]))  # known names keep their colour
        if self.open_vocab:
            if text_embeddings is None:
                raise UserError("open-vocabulary artifact: pass text embeddings (python -m edgeseg.text --out emb.npy)")
            self.set_embeddings(text_embeddings, list(card["classes"]) if len(card["classes"]) == len(text_embeddings)
                                else [f"class {i}" for i in range(len(text_embeddings))])

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    def set_embeddings(self, embeddings: np.ndarray, classes: list[str]) -> None:
        """Use these class embeddings [K, D] (K <= K_max) and names for the following predictions."""
        if not self.open_vocab:
            raise UserError(f"{self.target} artifact has its {len(self.classes)} classes baked in; "
                            "export with --open-vocab to change the vocabulary")
        if len(classes) != len(embeddings):
            raise UserError(f"{len(classes)} class names for {len(embeddings)} embeddings")
        if "max_classes" in self.card:  # padded artifact: K_max slots + validity mask
            self._vocabulary = pad_vocabulary(embeddings, self.max_classes, int(self.card["text_dim"]))
        else:  # an artifact exported before the padded form: K fixed at export
            if np.shape(embeddings) != (len(self.card["classes"]), self.card["text_dim"]):
                raise UserError(f"text embeddings are {np.shape(embeddings)} but this artifact takes "
                                f"({len(self.card['classes'])}, {self.card['text_dim']}) (K is fixed at export)")
            self._vocabulary = (np.asarray(embeddings, np.float32),)
        palette = default_palette(len(classes))
        self.card = dict(self.card, classes=list(classes),
                         palette=[self._trained_colors.get(n, c) for n, c in zip(classes, palette)])

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model input [1, 3, S, S] float32 -> logits [K, h, w] (K = the current vocabulary's size)."""
        logits = np.asarray(self.backend(inputs.astype(np.float32), *self._vocabulary))[0]
        return logits[: len(self.card["classes"])] if self.open_vocab else logits

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
    predictor = Predictor(backend, card, target, text_embeddings if card.get("open_vocab") else None)
    if classes is not None and card.get("open_vocab"):
        predictor.set_embeddings(text_embeddings, list(classes))
    return predictor



def _load_embeddings(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read text embeddings {path}: {exc}") from exc
