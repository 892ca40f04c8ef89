"""One registry helper: every user-facing table of names (backbones, heads, targets, recipes, steps, ...) is a
`Registry`, so a lookup of a wrong name fails the same way everywhere, as one line naming what is valid.

    HEADS = Registry("head")

    @HEADS.register("fusion")
    class FusionHead: ...

    HEADS.lookup("mlp")            # UserError: unknown head 'mlp'; valid: fusion, ...
    TARGETS.choose("onnx,coreml")  # a comma list, each name checked: ["onnx", "coreml"]

A Registry is a dict (insertion order is the order users see), so `name in REGISTRY`, iteration and `[name]` work
as before. `extra` are words a command accepts beside the names ("all", "none", "auto"): listed as valid, never
entries.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, TypeVar

from edgeseg.errors import UserError

V = TypeVar("V")


class Registry(dict[str, V]):
    """Name -> entry for one kind of thing (`what`, singular: "backbone")."""

    def __init__(self, what: str, entries: Mapping[str, V] | Iterable[tuple[str, V]] = (), *,
                 extra: tuple[str, ...] = ()) -> None:
        super().__init__(entries)
        self.what = what
        self.extra = extra

    def register(self, name: str) -> Callable[[V], V]:
        """Decorator: add the decorated object under `name` (a name registered twice is a programming error)."""

        def add(entry: V) -> V:
            if name in self:
                raise ValueError(f"{self.what} '{name}' is registered twice")
            self[name] = entry
            return entry

        return add

    def valid(self) -> str:
        """What the error lists: the names, then the extra words."""
        return ", ".join([*self, *self.extra])

    def lookup(self, name: str, where: str = "") -> V:
        """The entry of `name`; else UserError "[where: ]unknown <what> '<name>'; valid: ..."."""
        if name not in self:
            raise UserError(f"{where + ': ' if where else ''}unknown {self.what} '{name}'; valid: {self.valid()}")
        return self[name]

    def check(self, name: str, where: str = "") -> str:
        """`name` itself when it is registered or one of the extra words; else the lookup's error."""
        if name not in self.extra:
            self.lookup(name, where)
        return name

    def choose(self, value: str | Iterable[str]) -> list[str]:
        """A comma list ("a,b") or a sequence of registered names; else one UserError naming all the unknown ones.
        The extra words are the caller's to handle before (`all` alone, ...): inside a list they are unknown."""
        names = [n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()]
        if unknown := [n for n in names if n not in self]:
            raise UserError(f"unknown {self.what}(s) {', '.join(unknown)}; valid: {self.valid()}")
        return names
