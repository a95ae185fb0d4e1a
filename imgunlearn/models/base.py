"""The one interface every image-to-image family implements.

A model maps a degraded or partly hidden image (`model_input`, `[B, 3, H, W]` in [0, 1]) and the mask of
hidden pixels (`mask`, `[B, 1, H, W]`, 1 = hidden) to a clean image `[B, 3, H, W]` in [0, 1]. It is split
into an encoder (everything `encode` runs, whose parameters `encoder_parameters` yields) and a decoder
(everything else). Encoder-only unlearning methods optimise the encoder alone, so the decoder never moves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from imgunlearn.persistence import load_model_dir, read_config, save_model
from imgunlearn.registry import MODELS

Latent = Tensor | list[Tensor]
"""What `encode` returns: one tensor, or a list of feature maps (skips, down-path outputs, ...)."""


class ImageToImageModel(nn.Module, ABC):
    """Base class of every I2I family.

    Subclasses set `self.config` (a JSON-serialisable dict of the keyword arguments the registered factory
    needs to rebuild the model, including `"name"`: the registry name), implement the abstract methods, and
    are built by a factory registered in `imgunlearn.registry.MODELS`.
    """

    family: str = ""
    config: dict[str, Any]

    @abstractmethod
    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        """Every feature the decoder consumes.

        Args:
            model_input: Degraded / masked image, `[B, 3, H, W]` in [0, 1].
            mask: Hidden pixels, `[B, 1, H, W]`, 1 = hidden.
            target: The clean image the model is asked to produce, when known. Families whose encoder sees
                only the input ignore it; the diffusion family noises it (its encoder sees `x_t`).
            seed: Fixes any randomness inside the encoder (diffusion timesteps and noise) so that a student
                and its reference called with the same seed see the same draws. Ignored by deterministic
                families.
        """

    @abstractmethod
    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        """Back to image space, `[B, 3, H, W]`."""

    @abstractmethod
    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        """The completed image, `[B, 3, H, W]` in [0, 1]."""

    @abstractmethod
    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """The family's own training objective (a scalar) for producing `target`."""

    @abstractmethod
    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the encoder: exactly those `encode` uses."""

    def decoder_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter that is not an encoder parameter."""
        encoder_ids = {id(p) for p in self.encoder_parameters()}
        return (p for p in self.parameters() if id(p) not in encoder_ids)

    def forget_reference_encode(
        self, masked_input: Tensor, mask: Tensor, masked_target: Tensor, seed: int | None = None
    ) -> Latent:
        """What a frozen reference encodes as the forget target of the encoder-teacher method.

        `masked_target` is the image the forget set should turn into (noise, pixelated or flat image) and
        `masked_input` the task's model input made from it with the same mask. The default encodes that
        input; the diffusion family overrides it (its reference sees pure noise in the hidden region).
        """
        return self.encode(masked_input, mask, target=masked_target, seed=seed)

    def training_state(self) -> dict[str, Any]:
        """State that training needs to resume exactly but a saved model does not carry (kept out of the weights
        file): Lightning checkpoints store it beside the weights. Default: none."""
        return {}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `training_state` returned (from a checkpoint)."""
        if state:
            raise ValueError(f"{self.config['name']} keeps no training state, got keys {sorted(state)}")

    # ---- persistence -------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `config.json` and `model.safetensors` into `directory` (see `imgunlearn.persistence`).

        `imgunlearn.save(model, directory, task)` also writes the task, which a saved model should carry.
        """
        return save_model(self, directory)


def create_model(name: str, **kwargs: Any) -> ImageToImageModel:
    """Build the registered model `name` (e.g. `"unet_tiny"`) with optional overrides."""
    model = MODELS.get(name)(**kwargs)
    if not isinstance(model, ImageToImageModel):
        raise TypeError(f"model factory {name!r} returned {type(model).__name__}, not an ImageToImageModel")
    return model


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching an fnmatch pattern."""
    return MODELS.list(pattern)


def _build(config: dict[str, Any]) -> ImageToImageModel:
    name = config.pop("name")
    return create_model(name, **config)


def load_model(path: str | Path, map_location: str | torch.device = "cpu",
               trust_class_path: bool = False) -> ImageToImageModel:
    """Load a saved model (a directory holding config.json and model.safetensors), built on `map_location`.

    The config is checked against the weights' tensor shapes before the model is built (see
    `imgunlearn.persistence`); the model is returned in eval mode.

    Args:
        path: The model directory.
        map_location: Device to build and load on.
        trust_class_path: Allow a config that names classes to import (a user's own model saved through
            `imgunlearn.models.adapter.EncoderDecoder`). Importing a module runs its code and building a class
            runs its constructor, so such a directory is refused unless you trust where it came from.
    """
    if not trust_class_path:
        _refuse_imports(Path(path))
    return load_model_dir(path, _build, map_location, kind="imgunlearn model")


def _refuse_imports(path: Path) -> None:
    config = read_config(path, "imgunlearn model")
    name = config.get("name")
    factory = MODELS.get(name) if isinstance(name, str) and name in MODELS else None
    classes = getattr(factory, "imported_classes", None)
    if classes is not None:
        raise ValueError(f"{path / 'config.json'} names classes to import ({', '.join(classes(config))}); load it "
                         "with load_model(path, trust_class_path=True) only if you trust this directory")
