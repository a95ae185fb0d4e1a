"""Every registry of the library, in one place, and the small `Registry` class they share.

A registry maps a name to an entry: a factory (function or class) for models and methods, a `MetricSpec`
for metrics. Names are unique; `list` filters with shell-style patterns, like timm's `list_models("unet_*")`.
The modules that fill a registry are imported on its first lookup, so `import imgunlearn` stays fast and
pulls in heavy families (diffusers) only when used.

| registry             | holds                                            | filled by                          |
|----------------------|--------------------------------------------------|------------------------------------|
| `MODELS`             | I2I model factories (`unet_tiny`, ...)           | `imgunlearn.models.<family>`       |
| `METHODS`            | I2I unlearning methods (`UnlearningModule`s)     | `imgunlearn.methods.<method>`      |
| `CLASSIFIERS`        | face-age classifier factories                    | `imgunlearn.challenge.models`      |
| `CLASSIFIER_METHODS` | classifier unlearning methods                    | `imgunlearn.challenge.methods`     |
| `METRICS`            | evaluation metric specs (`psnr`, `fid`, ...)     | `imgunlearn.evaluation.metric_set` |
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class Registry:
    """A named collection of entries (usually factories).

    Args:
        kind: What the registry holds ("model", "method", ...), used in error messages.
        modules: Modules whose import registers the built-in entries; imported on the first lookup.
    """

    def __init__(self, kind: str, modules: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._modules = list(modules)

    def _load(self) -> None:
        while self._modules:
            importlib.import_module(self._modules.pop(0))

    def add(self, name: str, entry: Any) -> None:
        """Register `entry` under `name`; a clear error if the name is taken."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def update(self, entries: Mapping[str, Any]) -> None:
        """`add` every item of `entries`, in order."""
        for name, entry in entries.items():
            self.add(name, entry)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator adding a factory under `name` (default: the factory's `__name__`)."""

        def add(factory: T) -> T:
            self.add(name or factory.__name__, factory)
            return factory

        return add

    def get(self, name: str) -> Any:
        """The entry registered as `name`; a clear error listing the known names otherwise."""
        self._load()
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the fnmatch `pattern`."""
        self._load()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        """Names in registration order."""
        self._load()
        return iter(list(self._entries))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries loaded)"


MODELS = Registry("model", [f"imgunlearn.models.{family}" for family in ("unet", "vqgan", "mae", "diffusion", "adapter")])
METHODS = Registry("method", [f"imgunlearn.methods.{name}" for name in (
    "encoder_teacher", "noisy_label", "max_loss", "retain_label", "random_encoder", "finetune")])
CLASSIFIERS = Registry("classifier", ["imgunlearn.challenge.models"])
CLASSIFIER_METHODS = Registry("classifier unlearning method", ["imgunlearn.challenge.methods"])
METRICS = Registry("metric", ["imgunlearn.evaluation.metric_set"])


def list_methods(pattern: str = "*") -> list[str]:
    """Registered I2I unlearning method names matching an fnmatch pattern."""
    return METHODS.list(pattern)
