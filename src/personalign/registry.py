"""Name-based registries for the pluggable parts (datasets, methods, models, metrics).

A :class:`Registry` maps a name to an object, or lazily to a ``"module:attribute"`` string that is
imported on first use, so registering something never imports heavy dependencies. Unknown names
raise :class:`UnknownNameError` listing what is available, in the style of lm-evaluation-harness.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry is asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind, self.name, self.available = kind, name, available
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(available) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    """A named collection of ``T`` with lazy ``"module:attr"`` entries and helpful errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, obj: T | str | None = None, *, help: str = "") -> Callable[[T], T] | T:
        """Register ``obj`` (or a ``"module:attr"`` path) under ``name``; usable as a decorator."""
        if obj is None:

            def deco(o: T) -> T:
                self.register(name, o, help=help)
                return o

            return deco
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj
        self._help[name] = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
        return obj

    def get(self, name: str) -> T:
        """Return the entry for ``name``, importing it if it was registered lazily."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def help(self, name: str) -> str:
        """One-line description of ``name``."""
        self.get(name)
        return self._help.get(name, "")

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
