"""`EncoderDecoder`: your own trained encoder and decoder as an `ImageToImageModel`.

Any two `nn.Module`s of yours become a model every method can unlearn, as long as they follow this contract:

- **encoder**: called as `encoder(x)` with `x = cat([model_input, mask], dim=1)`, `[B, 4, H, W]`
  (`encoder_input="concat"`, the default), `x = model_input`, `[B, 3, H, W]` (`"image"`), or called as
  `encoder(model_input, mask)` (`"pair"`). It returns a tensor or a list / tuple of tensors (e.g. skip
  features). Whatever it returns must be *everything* the decoder reads: encoder-only methods (the
  encoder-teacher method) train the encoder alone and steer the output only through these features.
- **decoder**: called as `decoder(latent)` with exactly what the encoder returned (a tuple arrives as a list);
  returns the completed image `[B, 3, H, W]`, in [0, 1] (end it with a sigmoid), or set `output="sigmoid"` /
  `"clamp"` to have the adapter map it there.
- **loss**: `"mse"` or `"l1"` between the output and the clean image: the objective the methods' retain terms
  and `imgunlearn.pretrain` use.
- The two modules share no parameter (then the decoder provably does not move when only the encoder trains).

Anything else (a decoder that reads the visible pixels, another loss, randomness inside the encoder) is a
subclass that keeps the constructor's arguments and overrides `encode` / `decode` / `reconstruction_loss`;
it is saved and loaded as itself.

Saving records each module's class path (`"my_package.MyEncoder"`) and constructor arguments
(`encoder_args`) in config.json; weights go to model.safetensors as always. Loading such a directory imports
those classes, so `load_model(directory)` refuses it unless the caller says it trusts the directory:
`load_model(directory, trust_class_path=True)`. A class path you wrote yourself (Python or your own YAML) is
imported without asking. Weights are only ever read from safetensors files, never unpickled.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from imgunlearn.models.base import ImageToImageModel, Latent
from imgunlearn.persistence import WEIGHTS_NAME, check_weights, read_header
from imgunlearn.registry import MODELS

ENCODER_INPUTS = ("concat", "image", "pair")
OUTPUTS = ("none", "sigmoid", "clamp")
LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


def class_path(cls: type) -> str:
    """`"package.module.Class"`: how config.json names a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


def import_module_class(path: str) -> type[nn.Module]:
    """The `nn.Module` subclass named by `path` (`"package.module.Class"`); a clear error for anything else."""
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"a class path is 'package.module.Class', got {path!r}")
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import the class {path!r}: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"{path!r} is not an nn.Module class")
    return cls


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


class EncoderDecoder(ImageToImageModel):
    """Two user modules as an I2I model (the contract is in the module docstring).

    Args:
        encoder: The encoder module, or its class path (`"my_package.MyEncoder"`, built with `encoder_args`).
        decoder: The decoder module, or its class path (built with `decoder_args`).
        encoder_args: The encoder class's constructor arguments (JSON values). With a module instance they must
            rebuild it (same tensor names and shapes), so that a saved model can be loaded again; checked here.
        decoder_args: The same for the decoder.
        encoder_input: How the encoder is called: `concat` (`[B, 4, H, W]`: input and mask), `image`
            (`[B, 3, H, W]`) or `pair` (`encoder(model_input, mask)`).
        output: `none` (the decoder returns images in [0, 1]), `sigmoid` or `clamp` (applied to its output).
        loss: Reconstruction loss, `mse` or `l1`.
        weights: Trained weights to load: a safetensors file (or a saved model directory holding
            model.safetensors) whose tensors are named `encoder.<name>` and `decoder.<name>`, as
            `EncoderDecoder(...).state_dict()` or a module holding the two as `.encoder` / `.decoder` names them.
            Not stored in the config (a saved model carries its own weights).
    """

    family = "encoder_decoder"

    def __init__(self, encoder: str | nn.Module, decoder: str | nn.Module, encoder_args: dict[str, Any] | None = None,
                 decoder_args: dict[str, Any] | None = None, encoder_input: str = "concat", output: str = "none",
                 loss: str = "mse", weights: str | None = None) -> None:
        super().__init__()
        if encoder_input not in ENCODER_INPUTS:
            raise ValueError(f"unknown encoder_input {encoder_input!r}; known: {', '.join(ENCODER_INPUTS)}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; known: {', '.join(OUTPUTS)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
        encoder, encoder_path, encoder_args = self._part("encoder", encoder, encoder_args)
        decoder, decoder_path, decoder_args = self._part("decoder", decoder, decoder_args)
        shared = {id(p) for p in encoder.parameters()} & {id(p) for p in decoder.parameters()}
        if shared:
            raise ValueError(f"the encoder and decoder share {len(shared)} parameters; an encoder-only method would "
                             "move the decoder through them: give each part its own")
        self.encoder, self.decoder = encoder, decoder
        self.encoder_input, self.output, self.loss = encoder_input, output, loss
        self.config = {"name": "encoder_decoder", "encoder": encoder_path, "encoder_args": encoder_args,
                       "decoder": decoder_path, "decoder_args": decoder_args, "encoder_input": encoder_input,
                       "output": output, "loss": loss}
        if type(self) is not EncoderDecoder:  # a subclass (same constructor arguments) is rebuilt as itself
            self.config["model_class"] = class_path(type(self))
        if weights is not None:
            self.load_weights(weights)

    @staticmethod
    def _part(role: str, part: str | nn.Module, args: dict[str, Any] | None) -> tuple[nn.Module, str, dict[str, Any]]:
        """The module, its class path and constructor arguments; checks the arguments rebuild it and are JSON."""
        args = {} if args is None else dict(args)
        try:
            json.dumps(args)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{role}_args must hold JSON values (numbers, strings, lists, dicts): {error}") from error
        if isinstance(part, str):
            cls = import_module_class(part)
            try:
                return cls(**args), part, args
            except (TypeError, ValueError) as error:
                raise ValueError(f"cannot build the {role} {part}(**{args}): {error}") from error
        if not isinstance(part, nn.Module):
            raise ValueError(f"the {role} must be an nn.Module or a class path, got {type(part).__name__}")
        path = class_path(type(part))
        if "<locals>" in path:
            raise ValueError(f"the {role} class {path} is defined inside a function; define it at module level so "
                             "that a saved model can import it again")
        try:
            with torch.device("meta"):  # shapes only, no memory
                rebuilt = type(part)(**args)
        except Exception as error:  # whatever the user's constructor raises, say what to do about it
            raise ValueError(f"{path}(**{args}) does not rebuild the {role} ({error}); pass its constructor "
                             f"arguments as {role}_args") from error
        if not _same_shapes(part, rebuilt):
            raise ValueError(f"{path}(**{args}) builds other tensors than the given {role}; pass its constructor "
                             f"arguments as {role}_args")
        return part, path, args

    def load_weights(self, weights: str | Path) -> None:
        """Load a safetensors file (or a saved model directory's model.safetensors) into both parts."""
        path = Path(weights)
        if path.is_dir():
            path = path / WEIGHTS_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no weights file at {path}")
        if path.suffix != ".safetensors":
            raise ValueError(f"weights are read from safetensors files only (never unpickled), got {path}; convert "
                             "with safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')")
        check_weights(self, read_header(path), path)
        device = next(self.parameters(), torch.empty(0)).device
        self.load_state_dict(load_file(str(path), device=str(device)))

    # ---- the ImageToImageModel contract -------------------------------------------------------------

    def encode(self, model_input: Tensor, mask: Tensor, target: Tensor | None = None, seed: int | None = None) -> Latent:
        if self.encoder_input == "pair":
            latent = self.encoder(model_input, mask)
        elif self.encoder_input == "concat":
            latent = self.encoder(torch.cat([model_input, mask], dim=1))  # [B, 4, H, W]
        else:
            latent = self.encoder(model_input)
        if isinstance(latent, tuple | list) and all(isinstance(t, Tensor) for t in latent):
            return list(latent)
        if not isinstance(latent, Tensor):
            raise ValueError(f"the encoder must return a tensor or a list of tensors, got {type(latent).__name__}")
        return latent

    def decode(self, latent: Latent, model_input: Tensor, mask: Tensor) -> Tensor:
        image = self.decoder(latent)
        if not isinstance(image, Tensor) or image.shape != model_input.shape:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"the decoder must return images shaped like the input {tuple(model_input.shape)}, "
                             f"got {shape}")
        if self.output == "sigmoid":
            return torch.sigmoid(image)
        return image.clamp(0.0, 1.0) if self.output == "clamp" else image

    def forward(self, model_input: Tensor, mask: Tensor) -> Tensor:
        return self.decode(self.encode(model_input, mask), model_input, mask)

    def reconstruction_loss(self, model_input: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        return LOSSES[self.loss](self(model_input, mask), target)

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoder.parameters()



def encoder_decoder(model_class: str | None = None, **kwargs: Any) -> EncoderDecoder:
    """Rebuild a saved `EncoderDecoder` (or the subclass named by `model_class`) from its config."""
    cls = EncoderDecoder if model_class is None else import_module_class(model_class)
    if not issubclass(cls, EncoderDecoder):
        raise ValueError(f"model_class {model_class!r} is not an EncoderDecoder subclass")
    return cls(**kwargs)


def imported_classes(config: dict[str, Any]) -> list[str]:
    """The class paths that loading `config` imports (`load_model` asks for trust before it does)."""
    return [str(config[key]) for key in ("model_class", "encoder", "decoder") if key in config]


encoder_decoder.imported_classes = imported_classes  # type: ignore[attr-defined]
MODELS.add("encoder_decoder", encoder_decoder)
