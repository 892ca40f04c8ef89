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
from deploy.tokenizer import ClipBPETokenizer, WordPieceTokenizer
from deploy.vocabulary import pad_vocabulary
from edgeseg.card import check_card, vocabulary_palette
from edgeseg.errors import UserError
from edgeseg.preprocess import logits_to_mask, mask_grid, preprocess, resize_mask, to_frame, unit_input


class Predictor:
    """Runs an exported artifact on uint8 RGB images. An open-vocabulary artifact segments whichever
    1..K_max classes were set last (`set_embeddings`), padded into its static slots."""

    def __init__(self, backend: Any, card: dict, target: str, text_embeddings: np.ndarray | None = None) -> None:
        self.backend, self.card, self.target = backend, card, target
        self.open_vocab = bool(card.get("open_vocab"))
        self.max_classes = int(card.get("max_classes") or len(card["classes"]))
        self._vocabulary: tuple[np.ndarray, ...] = ()
        self._trained = (list(card["classes"]), list(card["palette"]))  # known names keep their colour
        self.text_encoder: TextEncoder | None = None
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
        self.card = dict(self.card, classes=list(classes), palette=vocabulary_palette(list(classes), *self._trained))

    def set_classes(self, names: list[str]) -> None:
        """Segment these class names from now on, embedded on the device by the exported text encoder."""
        if not self.open_vocab:
            raise UserError(f"{self.target} artifact has its {len(self.classes)} classes baked in; "
                            "export with --open-vocab --text-encoder to change the vocabulary")
        check_class_names(names)
        if len(names) > self.max_classes:
            raise UserError(f"{len(names)} classes given but this artifact holds at most {self.max_classes} "
                            "(re-export with a larger --max-classes)")
        if self.text_encoder is None:
            raise UserError("this artifact has no text encoder beside it (export with --text-encoder), or embed the "
                            "names with python -m edgeseg.text and call set_embeddings")
        names = [n.strip() for n in names]
        self.set_embeddings(self.text_encoder.embed(names), names)

    @property
    def output(self) -> str:
        """What the graph returns (deploy.export --output): logits, probs or mask."""
        return self.card.get("output", "logits")

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model input [1, 3, S, S] float32 -> logits [K, h, w] (K = the current vocabulary's size), probs
        [K, S, S], or for a mask artifact the class indices [S, S]."""
        kind = self.card.get("input")
        if kind == "uint8":  # the artifact preprocesses: give it the frame the input came from
            return self._frame(to_frame(inputs, self.card))
        if kind == "unit":  # MediaPipe-ready: float RGB in [0, 1], normalised inside
            return self._call(unit_input(to_frame(inputs, self.card)))
        return self._call(inputs.astype(np.float32))

    def _frame(self, image: np.ndarray) -> np.ndarray:
        """A uint8 RGB frame [H, W, 3] straight into an artifact with the preprocessing inside."""
        return self._call(np.ascontiguousarray(image[None]))

    def _call(self, image: np.ndarray) -> np.ndarray:
        """The backend on the image input and the current vocabulary; the used class maps (or the mask)."""
        result = np.asarray(self.backend(image, *self._vocabulary))[0]
        if self.output == "mask":
            return result
        return result[: len(self.card["classes"])] if self.open_vocab else result

    def predict_logits(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] -> logits [K, h, w] at the model's output stride (probs [K, S, S] for a probs
        artifact)."""
        if self.output == "mask":
            raise UserError("this artifact returns class masks (exported with --output mask); export with "
                            "--output logits or probs for scores")
        if self.card.get("input") == "uint8":
            return self._frame(image)
        return self.run(preprocess(image, self.card))

    def predict(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB [H, W, 3] -> class-index mask [H, W]."""
        if self.output == "mask":  # the graph upsampled and took the argmax at S x S; nearest to the image size
            raw = self._frame(image) if self.card.get("input") == "uint8" else self.run(preprocess(image, self.card))
            return resize_mask(raw, image.shape[0], image.shape[1])
        return logits_to_mask(self.predict_logits(image), image.shape[0], image.shape[1], mask_grid(self.card))


class TextEncoder:
    """The exported text tower of an open-vocabulary artifact (its `text_encoder/` folder): class names ->
    embeddings [K, D] with numpy tokenization and the card's template ensemble; no torch."""

    def __init__(self, folder: str | Path, threads: int | None = None, backend: Any = None) -> None:
        """`backend` replaces the artifact's runtime (a torch simulation where the runtime cannot run here)."""
        folder = Path(folder)
        card_file = folder / "text_card.json"
        if not card_file.is_file():
            raise UserError(f"{folder} holds no text encoder (text_card.json missing); export with --text-encoder")
        try:
            self.card = json.loads(card_file.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{card_file} is not readable JSON: {exc}") from exc
        module = get_target(self.card["target"])
        artifact = folder / f"model{module.SUFFIX}"
        try:
            self.backend = backend or module.load(artifact, threads)
        except Exception as exc:  # a truncated or foreign file: the runtime's own error, in one line
            raise UserError(f"text encoder {artifact} cannot be loaded ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); export it again") from exc
        self.version = self.backend.version
        if self.card.get("tokenizer") == "clip-bpe":
            self.tokenizer = ClipBPETokenizer(folder / self.card["vocab"], folder / self.card["merges"],
                                              self.card["max_length"])
        else:
            self.tokenizer = WordPieceTokenizer(folder / self.card["vocab"], self.card["lowercase"],
                                                self.card["max_length"])

    def prompts(self, name: str) -> list[str]:
        return [template.format(name) for template in self.card["templates"]] or \
            [self.card.get("context_template", "{}").format(name)]

    def embed(self, names: list[str]) -> np.ndarray:
        """[K, D] float32 L2-normalised class embeddings, as edgeseg.text / the learned context gives them."""
        check_class_names(names)
        rows = []
        for name in names:
            prompts = self.prompts(name)
            ids, truncated = self.tokenizer.encode(prompts, reserved=self.card["context_tokens"])
            if truncated:
                room = self.card["max_length"] - 2 - self.card["context_tokens"]
                raise UserError(f"class name '{name[:40]}' is too long for this text encoder: its prompt exceeds "
                                f"{room} tokens ('{truncated[0][:60]}'); shorten it")
            if all(token == self.tokenizer.unk for token in self.tokenizer.tokens(name)):
                raise UserError(f"class name '{name[:40]}' has no word this text encoder knows (all [UNK])")
            vectors = np.concatenate([np.asarray(self.backend(ids[i: i + self.card["batch"]]), np.float32)
                                      for i in range(0, len(ids), self.card["batch"])])
            mean = vectors.mean(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        return np.stack(rows).astype(np.float32)


def check_class_names(names: list[str]) -> None:
    """A vocabulary a user typed: non-empty names, no duplicates."""
    if not isinstance(names, (list, tuple)) or not names:
        raise UserError("give at least one class name")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise UserError("class names must be non-empty strings")
    stripped = [n.strip() for n in names]
    if len(set(stripped)) != len(stripped):
        raise UserError(f"class name '{next(n for n in stripped if stripped.count(n) > 1)}' is given twice")


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
    if card.get("open_vocab") and (path.parent / "text_encoder").is_dir():
        predictor.text_encoder = TextEncoder(path.parent / "text_encoder", threads)
        spec = predictor.text_encoder.card
        if (spec["text_encoder"], spec["text_dim"]) != (card["text_encoder"], card["text_dim"]) or \
                spec.get("source_checkpoint") != card.get("source_checkpoint"):
            raise UserError(f"{path.parent / 'text_encoder'} does not belong to this segmenter (text encoder "
                            f"{spec['text_encoder']}/{spec['text_dim']}-d from checkpoint {spec.get('source_checkpoint')} vs "
                            f"{card['text_encoder']}/{card['text_dim']}-d from {card.get('source_checkpoint')})")
    if classes is not None and card.get("open_vocab"):
        predictor.set_embeddings(text_embeddings, list(classes))
    return predictor



def _load_embeddings(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        return np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read text embeddings {path}: {exc}") from exc
