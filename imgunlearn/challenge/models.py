"""Age-group classifiers for the challenge track, registered in `CLASSIFIERS`.

- `resnet18`: torchvision `resnet18(num_classes=10)`, the challenge's model (random init; no downloads).
- `cnn_small`: four 3×3 conv layers (16-32-64-128 channels) with batch norm, sized for CPU runs.
- `cnn_tiny`: the same with 8-16-16-32 channels, for tests.

Inputs are `[B, 3, 32, 32]` float32 holding uint8 values (no normalisation, as in the challenge); the first
batch norm absorbs the scale. Every model built by `create_classifier` carries `model.config` (the registry
name and arguments), which `save_classifier` / `load_classifier` use to round-trip it through safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from imgunlearn.io import atomic_write_bytes, write_json
from imgunlearn.registry import Registry

CLASSIFIERS = Registry("classifier")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


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
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError("the model has no `config` naming its registered classifier; build it with create_classifier")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, save(state))
    write_json(directory / CONFIG_NAME, config, sort_keys=True)
    return directory


def load_classifier(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a classifier saved by `save_classifier` and load its weights (in eval mode)."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for required in (config_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(f"not a saved classifier: {required} is missing")
    config = json.loads(config_path.read_text())
    if "name" not in config:
        raise ValueError(f"{config_path} has no 'name' entry naming the registered classifier")
    model = create_classifier(**config)
    model.load_state_dict(load_file(str(weights_path), device=str(map_location)))
    return model.eval()
