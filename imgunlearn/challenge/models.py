"""Age-group classifiers for the challenge track, registered in `CLASSIFIERS`.

- `resnet18`: torchvision `resnet18(num_classes=10)`, the challenge's model (random init; no downloads).
- `cnn_small`: four 3×3 conv layers (16-32-64-128 channels) with batch norm, sized for CPU runs.
- `cnn_tiny`: the same with 8-16-16-32 channels, for tests.

Inputs are `[B, 3, 32, 32]` float32 holding uint8 values (no normalisation, as in the challenge); the first
batch norm absorbs the scale. Every model built by `create_classifier` carries `model.config` (the registry
name and arguments), which `save_classifier` / `load_classifier` use to round-trip it through safetensors
(`imgunlearn.persistence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgunlearn.persistence import load_model_dir, save_model
from imgunlearn.registry import CLASSIFIERS


class SmallCNN(nn.Module):
    """Conv-BN-ReLU layers, 2×2 max pooling after all but the last, global average pooling and a linear head.

    Args:
        channels: Output channels of each conv layer.
        num_classes: Number of age groups.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128), num_classes: int = 10) -> None:
        super().__init__()
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"channels must list positive widths, got {list(channels)}")
        layers: list[nn.Module] = []
        in_ch = 3
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(in_ch, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            in_ch = ch
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).mean(dim=(2, 3))  # [B, C, h, w] -> [B, C]
        return self.fc(x)


@CLASSIFIERS.register("resnet18")
def resnet18(num_classes: int = 10) -> nn.Module:
    from torchvision.models import resnet18 as tv_resnet18

    return tv_resnet18(weights=None, num_classes=num_classes)


@CLASSIFIERS.register("cnn_small")
def cnn_small(num_classes: int = 10, channels: Sequence[int] = (16, 32, 64, 128)) -> nn.Module:
    return SmallCNN(channels, num_classes)


@CLASSIFIERS.register("cnn_tiny")
def cnn_tiny(num_classes: int = 10, channels: Sequence[int] = (8, 16, 16, 32)) -> nn.Module:
    return SmallCNN(channels, num_classes)


def create_classifier(name: str, num_classes: int = 10, seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build the registered classifier `name`.

    Args:
        name: A name from `list_classifiers()`.
        num_classes: Number of age groups.
        seed: Seeds the weight initialisation (without touching the global RNG); None uses the global RNG.
        **kwargs: Further arguments of the factory (e.g. `channels`).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    factory = CLASSIFIERS.get(name)
    if seed is None:
        model = factory(num_classes=num_classes, **kwargs)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = factory(num_classes=num_classes, **kwargs)
    model.config = {"name": name, "num_classes": num_classes, **{k: _jsonable(v) for k, v in kwargs.items()}}
    return model


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def list_classifiers(pattern: str = "*") -> list[str]:
    """Registered classifier names matching an fnmatch pattern."""
    return CLASSIFIERS.list(pattern)


def save_classifier(model: nn.Module, directory: str | Path) -> Path:
    """Write `config.json` and `model.safetensors` for a model made by `create_classifier`, atomically."""
    if not isinstance(getattr(model, "config", None), dict) or "name" not in model.config:
        raise ValueError("the model has no `config` naming its registered classifier; build it with create_classifier")
    return save_model(model, directory)


def load_classifier(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a classifier saved by `save_classifier` on `map_location` and load its weights (in eval mode).

    The config is checked against the weights' tensor shapes before the network is built (see
    `imgunlearn.persistence`).
    """
    return load_model_dir(directory, lambda config: create_classifier(**config), map_location, kind="classifier")
