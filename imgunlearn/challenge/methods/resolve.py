"""Turn a method name or a user's `module:function` into a callable with the challenge signature."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from imgunlearn.challenge.methods.base import CLASSIFIER_METHODS

Unlearning = Callable[[nn.Module, DataLoader, DataLoader, DataLoader], nn.Module]


def _load_function(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.rpartition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:function' or 'path/to/file.py:function', got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"unlearning file not found: {path}")
        module_spec = importlib.util.spec_from_file_location(f"_imgunlearn_user_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            raise ValueError(f"cannot import module {module_name!r} of {spec!r}: {error}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no function {attribute!r}")
    return function


def returning(function: Callable[..., Any]) -> Unlearning:
    """Wrap a challenge-signature function so that it always returns the network.

    The Kaggle form changes `net` in place and returns None; the starting-kit form returns a network.
    """

    def unlearning(net: nn.Module, retain_loader: DataLoader, forget_loader: DataLoader,
                   val_loader: DataLoader | None = None) -> nn.Module:
        result = function(net, retain_loader, forget_loader, val_loader)
        if result is None:
            return net
        if not isinstance(result, nn.Module):
            raise TypeError(f"unlearning function {getattr(function, '__name__', function)!r} returned "
                            f"{type(result).__name__}; expected None (in place) or an nn.Module")
        return result

    unlearning.__wrapped__ = function
    return unlearning


def resolve_unlearning(spec: str | Callable[..., Any], **hyperparameters: Any) -> Unlearning:
    """A callable `unlearning(net, retain_loader, forget_loader, val_loader) -> net`.

    Args:
        spec: A registered method name (`list_methods()`), `"module:function"`, `"path/to/file.py:function"`,
            or a function. Functions may work in place and return None, or return the network.
        **hyperparameters: Constructor arguments of a registered method (e.g. `epochs=2, seed=3`); not
            accepted for functions.
    """
    if isinstance(spec, str) and ":" not in spec:
        cls = CLASSIFIER_METHODS.get(spec)
        accepted = inspect.signature(cls).parameters
        for key in hyperparameters:
            if key not in accepted:
                raise ValueError(f"method {spec!r} has no hyperparameter {key!r}; it takes {', '.join(accepted)}")
        return cls(**hyperparameters)
    if hyperparameters:
        raise ValueError(f"hyperparameters {sorted(hyperparameters)} apply to registered methods only, not {spec!r}")
    function = _load_function(spec) if isinstance(spec, str) else spec
    if not callable(function):
        raise TypeError(f"expected a method name, 'module:function' or a callable, got {type(spec).__name__}")
    return returning(function)


def list_methods(pattern: str = "*") -> list[str]:
    """Registered classifier unlearning methods matching an fnmatch pattern."""
    return CLASSIFIER_METHODS.list(pattern)
