"""The zero-shot protocol of the seeds (generalized, inductive): held-out classes and their metrics.

Training with `--unseen NAMES|FILE` removes the unseen classes: their pixels become ignore and their
names are never embedded (the text buffer, context tokens, presence gate and prompt matchers see the
seen names only). Evaluation scores all names at once (seen and unseen compete) and reports
mIoU(S), mIoU(U) and their harmonic mean hIoU = 2·S·U / (S + U), as MVP-SEG / ZegCLIP do.

Controls (`CONTROLS`) re-embed the unseen names of a trained model to show whether the language
pathway carries the information: `shuffle` permutes the unseen embeddings among themselves,
`unrelated` replaces each unseen name with an unrelated word.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeseg.card import IGNORE_INDEX
from edgeseg.errors import UserError

# Words unrelated to any class of the embedded data (or of the public splits' unseen classes).
UNRELATED_WORDS = ("piano", "volcano", "umbrella", "violin", "telescope", "pancake", "lighthouse", "saxophone",
                   "dinosaur", "keyboard", "waffle", "harbor", "accordion", "cathedral", "pineapple", "tornado")
CONTROLS = ("shuffle", "unrelated")


def parse_unseen(value: str | Sequence[str] | None, classes: Sequence[str], flag: str = "--unseen") -> list[str]:
    """The unseen class names from a comma list, a list (YAML) or a split file (one name per line, # comments).

    Errors name the culprit: a name that is not a class, an empty list, every class unseen, a bad file."""
    if value is None:
        return []
    if isinstance(value, str) and not value.strip():
        raise UserError(f"{flag}: no class names given (an empty value would train a closed-set model; drop "
                        f"{flag} for that)")
    if isinstance(value, (list, tuple)):
        names = [str(v).strip() for v in value]
    elif _is_file(value) or value.endswith((".txt", ".split")):
        names = read_split_file(value, flag)
    else:
        names = [v.strip() for v in value.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UserError(f"{flag}: no class names given")
    known = set(classes)
    for name in names:
        if name not in known:
            close = [c for c in classes if name.lower() in c.lower() or c.lower() in name.lower()][:3]
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise UserError(f"{flag}: '{name}' is not a class of the dataset{hint}")
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{flag}: '{duplicate}' is listed twice")
    if len(names) >= len(classes):
        raise UserError(f"{flag}: all {len(classes)} classes are unseen; keep at least one class for training")
    order = {name: i for i, name in enumerate(classes)}
    return sorted(names, key=order.__getitem__)


def _is_file(value: str) -> bool:
    try:
        return Path(value).is_file()
    except OSError:  # e.g. a long comma list is no valid file name
        return False


def read_split_file(path: str, flag: str = "--unseen") -> list[str]:
    """Class names of a split file: one per line, blank lines and `#` comments skipped."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{flag}: split file {file} not found")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{flag}: split file {file} is not UTF-8 text (byte {exc.start}); "
                        "write one class name per line") from exc
    names = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    names = [n for n in names if n]
    if not names:
        raise UserError(f"{flag}: split file {file} lists no class names")
    if any("\x00" in n or len(n) > 200 for n in names):
        raise UserError(f"{flag}: split file {file} does not parse as one class name per line")
    return names


@dataclass(frozen=True)
class Split:
    """Which of `classes` are seen in training; maps full-vocabulary labels to training labels."""

    classes: tuple[str, ...]
    unseen: tuple[str, ...]

    @property
    def seen(self) -> list[str]:
        return [c for c in self.classes if c not in self.unseen]

    @property
    def seen_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.classes) if c not in self.unseen]

    @property
    def unseen_indices(self) -> list[int]:
        return [i for i, c in enumerate(self.classes) if c in self.unseen]

    def label_map(self) -> np.ndarray:
        """uint8 lookup [256]: full class index -> seen index; unseen classes and 255 -> ignore."""
        table = np.full(256, IGNORE_INDEX, dtype=np.int64)
        for seen_index, full_index in enumerate(self.seen_indices):
            table[full_index] = seen_index
        return table

    def remap(self, mask: np.ndarray) -> np.ndarray:
        """A full-vocabulary label mask as training labels (unseen pixels -> ignore)."""
        return remap_labels(mask, self.label_map())


def remap_labels(mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Labels through a [256] lookup table (Split.label_map)."""
    return table[np.clip(mask, 0, 255)]


def split_from_card(card: dict) -> Split | None:
    """The zero-shot split a checkpoint was trained with, or None (every class seen)."""
    unseen = card.get("unseen") or []
    return Split(tuple(card["classes"]), tuple(unseen)) if unseen else None


def harmonic_iou(seen: float, unseen: float) -> float:
    """hIoU = 2·S·U / (S + U); 0 when both are 0."""
    return 2 * seen * unseen / (seen + unseen) if seen + unseen > 0 else 0.0


def zero_shot_metrics(per_class_iou: dict[str, float | None], unseen: Sequence[str]) -> dict[str, float]:
    """mIoU over the seen classes, over the unseen ones, and their harmonic mean (classes absent from
    both labels and predictions, IoU None, are left out as in mIoU)."""
    unseen_set = set(unseen)
    seen_values = [v for k, v in per_class_iou.items() if k not in unseen_set and v is not None]
    unseen_values = [v for k, v in per_class_iou.items() if k in unseen_set and v is not None]
    s = float(np.mean(seen_values)) if seen_values else 0.0
    u = float(np.mean(unseen_values)) if unseen_values else 0.0
    return {"mIoU_seen": s, "mIoU_unseen": u, "hIoU": harmonic_iou(s, u)}


def control_names(split: Split, control: str) -> list[str]:
    """Class names for the `unrelated` control: unseen names replaced by unrelated words."""
    if control != "unrelated":
        raise ValueError(control)
    words = iter(w for w in UNRELATED_WORDS if w not in split.classes)
    return [next(words) if c in split.unseen else c for c in split.classes]


def shuffled_rows(embeddings: np.ndarray, rows: Sequence[int], seed: int = 0) -> np.ndarray:
    """`embeddings` with the given rows permuted among themselves, no row left in place (a derangement)."""
    rows = list(rows)
    if len(rows) < 2:
        raise UserError("the shuffle control needs at least two unseen classes")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(rows))
        if (order != np.arange(len(rows))).all():
            break
    out = embeddings.copy()
    out[rows] = embeddings[[rows[i] for i in order]]
    return out
