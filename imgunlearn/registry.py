"""One small registry used for models and unlearning methods.

A registry maps a name to a factory (a function or a class). Names are unique; `list` filters with
shell-style patterns, like timm's `list_models("unet_*")`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A named collection of factories.

    Args:
        kind: What the registry holds ("model", "method", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator adding a factory under `name` (default: the factory's `__name__`)."""

        def add(factory: T) -> T:
            key = name or factory.__name__
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._entries[key] = factory
            return factory

        return add

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as `name`; a clear error listing the known names otherwise."""
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the fnmatch `pattern`."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


MODELS = Registry("model")
METHODS = Registry("method")
