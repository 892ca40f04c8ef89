"""The checks every surface shares: the Python API (`edgeseg.load`), the torch-free runtime
(`deploy.runtime`) and the CLIs take images, class-name vocabularies and numeric options through these,
so the same mistake gets the same one-line `UserError` wherever it is made. Nothing here coerces: a value
of the wrong kind is refused with what was given and what is expected. Torch-free.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from edgeseg.errors import UserError

# A bound on open-vocabulary slots (--max-classes): the graph scores every slot at every pixel, and the export
# embeds and verifies a vocabulary of K_max names, so cost grows with it. 1024 holds the largest label sets in use
# (LVIS: 1203 categories is the one common set above it; split such a vocabulary into several artifacts).
MAX_SLOTS = 1024
# Longest class name accepted anywhere, in characters (the tokenizers' own limits, stricter, apply after this).
MAX_NAME_CHARS = 200


def image(value: Any, what: str = "predict") -> np.ndarray:
    """A path or an array -> uint8 RGB [H, W, 3]; a UserError for anything else (never a silent conversion:
    a float array in [0, 1] is refused, not read as 0..255)."""
    if isinstance(value, (str, os.PathLike)):
        from edgeseg.io import read_image

        return read_image(Path(value))
    if not isinstance(value, np.ndarray):
        raise UserError(f"{what} takes an image path or a numpy uint8 RGB array [H, W, 3], not {type(value).__name__}")
    if value.ndim != 3 or value.shape[2] != 3:
        raise UserError(f"image array has shape {value.shape}; expected [H, W, 3] RGB "
                        "(convert grayscale/RGBA first, e.g. PIL's .convert('RGB'))")
    if value.dtype != np.uint8:
        raise UserError(f"image array has dtype {value.dtype}; expected uint8 in 0..255 "
                        "(for floats in 0..1: (image * 255).round().astype(np.uint8))")
    if min(value.shape[:2]) < 1:
        raise UserError(f"image array is empty: shape {value.shape}")
    return value


def model_input(value: Any, size: int) -> np.ndarray:
    """A preprocessed model input: float [1, 3, S, S] (as `edgeseg.preprocess.preprocess` returns)."""
    if not isinstance(value, np.ndarray) or value.shape != (1, 3, size, size) \
            or not np.issubdtype(value.dtype, np.floating):
        shown = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise UserError(f"run() takes a preprocessed float input [1, 3, {size}, {size}], not {shown} "
                        "(predict() takes images)")
    return value.astype(np.float32, copy=False)


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON true would pass isinstance(..., int))."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def fields(record: dict, table: dict[str, tuple[Callable[[Any], bool], str]], source: str, what: str,
           optional: Sequence[str] = (), missing_hint: str = "") -> None:
    """Each field of a JSON record (a card) against its (check, what it must be): one UserError naming `source`
    and the first field missing (unless `optional`) or of the wrong kind."""
    from edgeseg.card import json_preview

    for field, (ok, expected) in table.items():
        if field not in record:
            if field in optional:
                continue
            raise UserError(f"{source}: {what} field '{field}' is missing{f'; {missing_hint}' if missing_hint else ''}")
        if not ok(record[field]):
            raise UserError(f"{source}: {what} field '{field}' is {json_preview(record[field])}; expected {expected}")


def integer(value: Any, name: str, low: int | None = None, high: int | None = None, why: str = "") -> int:
    """An int option in [low, high]; refuses bools, floats and strings instead of converting them."""
    if not is_int(value):
        raise UserError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise UserError(f"{name} {value}: must be at least {low}{f' ({why})' if why else ''}")
    if high is not None and value > high:
        raise UserError(f"{name} {value}: must be at most {high}{f' ({why})' if why else ''}")
    return value


def integer_list(value: str, name: str, low: int = 1, high: int | None = None) -> list[int]:
    """A comma list of integers ("1,2") from a CLI flag, each in [low, high]."""
    items = [v.strip() for v in str(value).split(",") if v.strip()]
    if not items:
        raise UserError(f"{name}: give at least one integer")
    out = []
    for item in items:
        try:
            number = int(item)
        except ValueError:
            raise UserError(f"{name}: '{item}' is not an integer") from None
        out.append(integer(number, name, low, high))
    return out


def img_size(value: Any, name: str = "--img-size") -> int:
    """A static input size: an integer in 32..4096 and a multiple of 32 (the backbone stride)."""
    value = integer(value, name, 32, 4096)
    if value % 32:
        raise UserError(f"{name} {value} must be a multiple of 32 (the backbone stride)")
    return value


def threads(value: Any, name: str = "threads") -> int | None:
    """A runtime thread count: None (the runtime's default) or a positive integer."""
    return None if value is None else integer(value, name, 1, 1024)


def class_names(names: Any, what: str = "set_classes", limit: int | None = None,
                same: Callable[[str], Hashable] | None = None) -> list[str]:
    """A vocabulary: a list (or tuple) of non-empty strings, at most `limit` of them, no two the same — nor the
    same under `same` (the tokenizer's view of a name: an uncased tokenizer embeds 'Sky' and 'sky' identically,
    so one of them could never win a pixel). Returns the names stripped of outer whitespace."""
    if isinstance(names, (str, bytes)):
        raise UserError(f"{what}: give a list of class names, not one string ({str(names)[:40]!r}); "
                        f"e.g. [{str(names)[:20]!r}]")
    if not isinstance(names, Sequence) and not (isinstance(names, np.ndarray) and names.ndim == 1):
        raise UserError(f"{what}: give a list of class names, not {type(names).__name__}")
    names = list(names)
    if not names:
        raise UserError(f"{what}: the list of class names is empty; give at least one class name")
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise UserError(f"{what}: class name #{index + 1} is {type(name).__name__} {name!r}; names are strings")
        if not name.strip():
            raise UserError(f"{what}: class name #{index + 1} is empty; names must be non-empty strings")
        if len(name) > MAX_NAME_CHARS:
            raise UserError(f"{what}: class name #{index + 1} ('{name[:30]}...') has {len(name)} characters; "
                            f"at most {MAX_NAME_CHARS}")
    names = [name.strip() for name in names]
    if limit is not None and len(names) > limit:
        raise UserError(f"{what}: {len(names)} classes given but at most {limit} fit "
                        "(an open-vocabulary artifact: re-export with a larger --max-classes)")
    seen: dict[Hashable, str] = {}
    for name in names:
        key = name if same is None else same(name)
        if key in seen:
            other = seen[key]
            if other == name:
                raise UserError(f"{what}: '{name}' is given twice")
            raise UserError(f"{what}: '{other}' and '{name}' are the same words to this model's tokenizer, so they "
                            "get the same embedding and one could never win a pixel; keep one")
        seen[key] = name
    return names
