"""One small registry used for models and unlearning methods.

A registry maps a name to a factory (a function or a class). Names are unique; `list` filters with
shell-style patterns, like timm's `list_models("unet_*")`. The modules that fill a registry are imported on
its first lookup, so `import imgunlearn` stays fast and pulls in heavy families (diffusers) only when used.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


class Registry:
    """A named collection of factories.

    Args:
        kind: What the registry holds ("model", "method", ...), used in error messages.
        modules: Modules whose import registers the built-in entries; imported on the first lookup.
    """

    def __init__(self, kind: str, modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        self._modules = list(modules)

    def _load(self) -> None:
        while self._modules:
            importlib.import_module(self._modules.pop(0))

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
        self._load()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the fnmatch `pattern`."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)


MODELS = Registry("model", [f"imgunlearn.models.{family}" for family in ("unet", "vqgan", "mae", "diffusion")])
METHODS = Registry("method", [f"imgunlearn.methods.{name}" for name in (
    "encoder_teacher", "noisy_label", "max_loss", "retain_label", "random_encoder", "finetune")])
