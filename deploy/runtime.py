"""One Predictor API over every runtime: `deploy.runtime.load(path).predict(image) -> mask`.

The backend is chosen by the artifact's suffix; pre/post-processing comes from the model card
embedded in (or stored beside) the artifact and is the same code training and evaluation use.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from deploy.targets import SUFFIXES, get_target, target_for_artifact
from deploy.tokenizer import ClipBPETokenizer, WordPieceTokenizer
from deploy.vocabulary import pad_vocabulary
from edgeseg import checks
from edgeseg.card import check_card, read_card_file, vocabulary_palette
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
        classes = checks.class_names(classes, "set_embeddings", self.max_classes)
        if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2:
            raise UserError(f"set_embeddings: embeddings must be a 2-D array [K, {self.card['text_dim']}], not "
                            f"{getattr(embeddings, 'shape', type(embeddings).__name__)}")
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
        names = checks.class_names(names, "set_classes", self.max_classes,
                                   same=self.text_encoder.same_text if self.text_encoder else None)
        if self.text_encoder is None:
            raise UserError("this artifact has no text encoder beside it (export with --text-encoder), or embed the "
                            "names with python -m edgeseg.text and call set_embeddings")
        self.set_embeddings(self.text_encoder.embed(names), names)

    @property
    def output(self) -> str:
        """What the graph returns (deploy.export --output): logits, probs or mask."""
        return self.card.get("output", "logits")

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model input [1, 3, S, S] float32 -> logits [K, h, w] (K = the current vocabulary's size), probs
        [K, S, S], or for a mask artifact the class indices [S, S]."""
        inputs = checks.model_input(inputs, self.card["img_size"])
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

    def predict_logits(self, image: np.ndarray | str | Path) -> np.ndarray:
        """uint8 RGB [H, W, 3] (or an image path) -> logits [K, h, w] at the model's output stride (probs [K, S, S] for a probs
        artifact)."""
        if self.output == "mask":
            raise UserError("this artifact returns class masks (exported with --output mask); export with "
                            "--output logits or probs for scores")
        return self._logits(checks.image(image))

    def _logits(self, image: np.ndarray) -> np.ndarray:
        """A checked uint8 RGB image -> the graph's scores."""
        if self.card.get("input") == "uint8":
            return self._frame(image)
        return self.run(preprocess(image, self.card))

    def predict(self, image: np.ndarray | str | Path) -> np.ndarray:
        """uint8 RGB [H, W, 3] (or an image path) -> class-index mask [H, W]."""
        image = checks.image(image)
        if self.output == "mask":  # the graph upsampled and took the argmax at S x S; nearest to the image size
            return resize_mask(self._logits(image), image.shape[0], image.shape[1])
        return logits_to_mask(self._logits(image), image.shape[0], image.shape[1], mask_grid(self.card))


# What a text card must hold (deploy.text_export writes it): field -> (check, what it must be).
TEXT_CARD_FIELDS: dict[str, tuple[Any, str]] = {
    "target": (lambda v: v in SUFFIXES.values(), f"one of {', '.join(SUFFIXES.values())}"),
    "text_encoder": (lambda v: isinstance(v, str) and bool(v), "a text encoder id"),
    "text_dim": (lambda v: checks.is_int(v) and v > 0, "a positive integer"),
    "tokenizer": (lambda v: v in ("bert-wordpiece", "clip-bpe"), "bert-wordpiece or clip-bpe"),
    "vocab": (lambda v: isinstance(v, str) and Path(v).name == v and bool(v), "a file name in the folder"),
    "max_length": (lambda v: checks.is_int(v) and 4 <= v <= 4096, "an integer >= 4"),
    "context_tokens": (lambda v: checks.is_int(v) and v >= 0, "an integer >= 0"),
    "batch": (lambda v: checks.is_int(v) and v > 0, "a positive integer"),
    "templates": (lambda v: isinstance(v, list) and all(isinstance(t, str) and t.count("{}") == 1 for t in v),
                  "a list of prompt templates, each with one {}"),
}


def check_text_card(card: Any, source: Path) -> dict:
    """A text encoder's card, checked field by field: one UserError naming the file and the field."""
    if not isinstance(card, dict) or card.get("format") != "edgeseg-text-encoder/1":
        raise UserError(f"{source} is not an edgeseg text encoder card (format "
                        f"{card.get('format') if isinstance(card, dict) else type(card).__name__!r})")
    fields = dict(TEXT_CARD_FIELDS)
    if card.get("tokenizer") == "clip-bpe":
        fields["merges"] = fields["vocab"]
    else:
        fields["lowercase"] = (lambda v: isinstance(v, bool), "true or false")
    checks.fields(card, fields, str(source), "text card", missing_hint="export the text encoder again")
    if not card["templates"] and card["context_tokens"] == 0 and "{}" not in str(card.get("context_template", "{}")):
        raise UserError(f"{source}: text card has no prompt templates and no context template")
    return card


class TextEncoder:
    """The exported text tower of an open-vocabulary artifact (its `text_encoder/` folder): class names ->
    embeddings [K, D] with numpy tokenization and the card's template ensemble; no torch."""

    def __init__(self, folder: str | Path, threads: int | None = None, backend: Any = None) -> None:
        """`backend` replaces the artifact's runtime (a torch simulation where the runtime cannot run here)."""
        folder = Path(folder)
        card_file = folder / "text_card.json"
        if not card_file.is_file():
            raise UserError(f"{folder} holds no text encoder (text_card.json missing); export with --text-encoder")
        self.card = check_text_card(_read_json(card_file), card_file)
        _check_digests(folder, self.card.get("files") or {})
        artifact = folder / f"model{get_target(self.card['target']).SUFFIX}"
        self.backend = backend or load_backend(artifact, self.card["target"], threads, "text encoder")
        self.version = self.backend.version
        try:
            if self.card["tokenizer"] == "clip-bpe":
                self.tokenizer = ClipBPETokenizer(folder / self.card["vocab"], folder / self.card["merges"],
                                                  self.card["max_length"])
            else:
                self.tokenizer = WordPieceTokenizer(folder / self.card["vocab"], self.card["lowercase"],
                                                    self.card["max_length"])
        except UserError:
            raise
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
            raise UserError(f"tokenizer files in {folder} are damaged ({type(exc).__name__}: "
                            f"{str(exc)[:100]}); export the text encoder again") from exc

    def prompts(self, name: str) -> list[str]:
        return [template.format(name) for template in self.card["templates"]] or \
            [self.card.get("context_template", "{}").format(name)]

    def same_text(self, name: str) -> tuple[int, ...]:
        """What the model sees of a name: its token ids (an uncased tokenizer gives 'Sky' and 'sky' the same)."""
        return tuple(self.tokenizer.tokens(name))

    def embed(self, names: list[str]) -> np.ndarray:
        """[K, D] float32 L2-normalised class embeddings, as edgeseg.text / the learned context gives them."""
        names = checks.class_names(names, "embed", same=self.same_text)
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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UserError(f"{path} is not readable JSON ({str(exc)[:120]}); export the artifact again") from exc


def _check_digests(folder: Path, files: dict) -> None:
    """Files the exporter recorded by sha256 (tokenizer assets): a changed or truncated one is refused."""
    from edgeseg.io import file_hash

    for name, digest in files.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} is missing (the text encoder folder is incomplete); export it again")
        if file_hash(path, len(digest)) != digest:
            raise UserError(f"{path} differs from the file the exporter wrote (sha256 mismatch: damaged or "
                            "replaced); export the text encoder again")


def load_backend(artifact: Path, target: str, threads: int | None, what: str = "model") -> Any:
    """The target's runtime on an artifact file; a missing, truncated or foreign file is one UserError."""
    if not artifact.exists():
        raise UserError(f"{what} {artifact} is missing; export it again")
    module = get_target(target)
    try:
        return module.load(artifact, threads)
    except UserError:
        raise
    except ImportError as exc:
        from deploy.targets import missing_package

        raise missing_package(target, exc) from exc
    except Exception as exc:  # a truncated or foreign file: the runtime's own error, in one line
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        raise UserError(f"{what} {artifact} cannot be loaded by its runtime ({type(exc).__name__}: {first}); "
                        "the file is damaged or not an edgeseg export: export it again") from exc


def read_card(path: Path, backend: Any) -> dict:
    """The card embedded in the artifact, else card.json beside it; both checked field by field (an app reads
    the card.json it ships with, so a damaged one is refused even where the model embeds its own)."""
    sidecar = path.parent / "card.json"
    beside = read_card_file(sidecar) if sidecar.is_file() else None
    card = getattr(backend, "card", None)
    if card is None:
        if beside is None:
            raise UserError(f"{path} carries no edgeseg model card and there is no card.json beside it")
        return beside
    return check_card(card, f"{path} (its embedded model card)")


def find_artifact(path: Path) -> Path:
    """An artifact file (.onnx, .xml, .tflite, .mlpackage), or the one such file in an export folder."""
    if path.is_dir() and path.suffix != ".mlpackage":
        found = [p for p in path.iterdir() if p.suffix in SUFFIXES]
        if len(found) != 1:
            raise UserError(f"{path}: expected one artifact ({'/'.join(SUFFIXES)}) in the folder, found "
                            f"{len(found)}")
        path = found[0]
    if not path.exists():
        raise UserError(f"artifact {path} not found")
    return path


def load(path: str | Path, threads: int | None = None, text_embeddings: str | np.ndarray | None = None,
         classes: list[str] | None = None) -> Predictor:
    """Load an artifact (.onnx, .xml, .tflite, .mlpackage, or an export folder holding one). Everything read
    from the folder is checked (model card, model file, embeddings, text encoder card, tokenizer files): a
    damaged or foreign file gives one UserError naming it."""
    threads = checks.threads(threads)
    path = find_artifact(Path(path))
    target = target_for_artifact(str(path))
    backend = load_backend(path, target, threads)
    card = dict(read_card(path, backend))
    if isinstance(text_embeddings, (str, Path)):
        text_embeddings = load_embeddings(Path(text_embeddings), int(card["text_dim"]))
    if text_embeddings is None and card.get("open_vocab") and (path.parent / "text_embeddings.npy").is_file():
        text_embeddings = load_embeddings(path.parent / "text_embeddings.npy", int(card["text_dim"]))
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


def load_embeddings(path: str | Path, text_dim: int | None = None) -> np.ndarray:
    """A [K, D] float .npy (never unpickled); shape and values checked."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read text embeddings {path}: {str(exc)[:120]}") from exc
    if not isinstance(array, np.ndarray) or array.ndim != 2 or not np.issubdtype(array.dtype, np.floating) \
            or (text_dim is not None and array.shape[1] != text_dim) or not len(array):
        shown = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
        raise UserError(f"text embeddings {path} are {shown}; expected float [K, {text_dim or 'D'}]")
    if not np.isfinite(array).all():
        raise UserError(f"text embeddings {path} contain NaN or infinity")
    return array.astype(np.float32)
