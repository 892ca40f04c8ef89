"""Open-vocabulary artifacts: a vocabulary of 1..K_max classes padded into the graph's static slots.

The graph takes text embeddings [K_max, D] and a validity mask [K_max] (1 = a class, 0 = an unused
slot); unused slots never win the argmax and do not change the used ones (edgeseg.models masks
them out of every softmax over classes). Padding and its checks live here, shared by the exporter,
the runtime Predictor and the benchmarks.
"""
from __future__ import annotations

import numpy as np

from edgeseg.errors import UserError

DEFAULT_MIN_SLOTS = 32  # default K_max: the trained K, at least this many slots
# Names beyond the trained ones for export checks: common words a device user may type.
EXTRA_NAMES = ("cat", "sofa", "window", "bicycle", "lamp", "tree", "person", "car", "dog", "chair", "boat", "cup",
               "red ball", "wooden table", "traffic light", "green striped umbrella", "bird", "bottle", "bus", "horse",
               "sheep", "train", "monitor", "plant", "door", "floor", "ceiling", "mountain", "bridge", "fence", "bench",
               "pillow", "flower", "book", "clock", "vase", "kite", "umbrella", "truck", "motorbike")


def vocabulary_names(card: dict, count: int) -> list[str]:
    """`count` class names for checks: the trained ones first, then common words it may not know."""
    names = list(dict.fromkeys([*card["classes"], *EXTRA_NAMES]))
    if count > len(names):
        names += [f"object {i}" for i in range(count - len(names))]
    return names[:count]


def default_max_classes(trained: int, any_k: bool) -> int:
    """K_max when --max-classes is not given: room for new names where the head takes any K."""
    return max(DEFAULT_MIN_SLOTS, trained) if any_k else trained


def pad_vocabulary(embeddings: np.ndarray, max_classes: int, text_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """[K, D] embeddings -> (text [K_max, D] with zero rows after K, valid [K_max] float32)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != text_dim:
        raise UserError(f"text embeddings are {tuple(embeddings.shape)} but this model takes [K, {text_dim}] "
                        "(a different text encoder?)")
    count = embeddings.shape[0]
    if count == 0:
        raise UserError("the vocabulary is empty: give at least one class name")
    if count > max_classes:
        raise UserError(f"{count} classes given but this artifact holds at most {max_classes} "
                        "(re-export with a larger --max-classes)")
    if not np.isfinite(embeddings).all():
        raise UserError("text embeddings contain NaN or infinity")
    text = np.zeros((max_classes, text_dim), dtype=np.float32)
    text[:count] = embeddings
    valid = np.zeros(max_classes, dtype=np.float32)
    valid[:count] = 1.0
    return text, valid


def parity_vocabularies(embeddings: np.ndarray, max_classes: int, extra: np.ndarray | None = None,
                        seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Padded vocabularies of K = 1, a middle K and K_max for export verification: the trained rows, then
    `extra` (embeddings of other real names, as a device would type them) up to K_max. Without `extra`
    (no text encoder at hand) the rows past the trained ones are trained rows plus noise of norm 0.3,
    renormalised: near neighbours of the trained classes (cosine about 0.96), a harder case."""
    rng = np.random.default_rng(seed)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    rows = list(embeddings[:max_classes])
    if extra is not None:
        rows += list(np.asarray(extra, dtype=np.float32)[: max_classes - len(rows)])
    while len(rows) < max_classes:
        noise = rng.standard_normal(embeddings.shape[1]).astype(np.float32)
        row = embeddings[len(rows) % len(embeddings)] + 0.3 * noise / np.linalg.norm(noise)
        rows.append(row / np.linalg.norm(row))
    extended = np.stack(rows)
    counts = sorted({1, max(1, max_classes // 2), max_classes})
    return [pad_vocabulary(extended[:k], max_classes, embeddings.shape[1]) for k in counts]


def calibration_vocabularies(embeddings: np.ndarray, max_classes: int, count: int, extra: np.ndarray | None = None,
                             seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` padded vocabularies for int8 calibration: random sizes 1..K_max of random class subsets in
    random order, drawn from the trained rows and `extra` (other real names), so activation ranges cover
    the vocabularies the artifact will meet (verification uses other ones: prefixes of the same pool)."""
    rng = np.random.default_rng(seed)
    pool = np.asarray(embeddings, dtype=np.float32)
    if extra is not None and len(extra):
        pool = np.concatenate([pool, np.asarray(extra, dtype=np.float32)])
    out = []
    for _ in range(count):
        size = int(rng.integers(1, min(max_classes, len(pool)) + 1))
        rows = pool[rng.permutation(len(pool))[:size]]
        out.append(pad_vocabulary(rows, max_classes, pool.shape[1]))
    return out
