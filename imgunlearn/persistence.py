"""Saving and loading every model of the library: one directory holding `config.json` and `model.safetensors`.

Both tracks use it: I2I models (`save` / `load_model`, plus the task in `task.json`) and the challenge's
classifiers (`save_classifier` / `load_classifier`). A model carries `model.config`, a JSON dict whose
`"name"` is its registry name and whose other entries are the factory's keyword arguments.

Loading never trusts the config alone. Before anything is allocated, the weights file's safetensors header
is read and the model is built on the `meta` device (shapes only, no memory), and every tensor name and
shape is compared: a config that does not match its weights (e.g. `channels: [200000, 200000]`) fails at
once with an error naming the file and the first mismatching tensor. A corrupt or truncated weights file is
reported with its path. The model is then built directly on `map_location` and the weights are loaded
there. Files are written atomically (`imgunlearn.io`); only safetensors are read, never pickles.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from imgunlearn.io import atomic_write_bytes, write_json

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TASK_NAME = "task.json"
MAX_HEADER_BYTES = 100 * 1024 * 1024
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}

Builder = Callable[[dict[str, Any]], nn.Module]
"""Builds a model from its saved config (registry name and arguments)."""


def save_model(model: nn.Module, directory: str | Path, config: dict[str, Any] | None = None) -> Path:
    """Write `model.safetensors` and `config.json` into `directory` (created if needed), each atomically.

    Args:
        model: The model; its state dict is saved (moved to the CPU first).
        directory: Where to write.
        config: What rebuilds the model (default `model.config`); must name the registered model in `"name"`.

    Returns:
        The directory.
    """
    config = getattr(model, "config", None) if config is None else config
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"{type(model).__name__} has no `config` naming its registered model; "
                         "build it with create_model / create_classifier")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_NAME, safetensors_bytes(state))
    write_json(directory / CONFIG_NAME, config, sort_keys=True)
    return directory


def read_config(directory: str | Path, kind: str = "model") -> dict[str, Any]:
    """The config saved in `directory`; clear errors for a missing file, bad JSON or a missing `"name"`."""
    directory = Path(directory)
    for required in (directory / CONFIG_NAME, directory / WEIGHTS_NAME):
        if not required.is_file():
            raise FileNotFoundError(f"not a saved {kind}: {required} is missing")
    path = directory / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(config, dict) or "name" not in config:
        raise ValueError(f"{path} has no 'name' entry naming the registered {kind}")
    return config


def read_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors file's header, checked against the file's size.

    Only the header is read. Raises a ValueError naming the file if it is not a complete safetensors file.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{path} is not a safetensors file: only {size} bytes")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a safetensors file (or is truncated): header of {length} bytes "
                             f"in a file of {size} bytes")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a safetensors file: unreadable header ({error})") from error
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file: the header is not a JSON object")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    data_size = size - 8 - length
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = info["dtype"], tuple(int(n) for n in info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a safetensors file: bad header entry for {name!r}") from error
        expected = math.prod(shape) * DTYPE_BYTES.get(dtype, 0)
        if dtype not in DTYPE_BYTES or end - start != expected or not 0 <= start <= end <= data_size:
            raise ValueError(f"{path} is corrupt or truncated: tensor {name!r} ({dtype}, {list(shape)}) does not "
                             f"fit its bytes {start}..{end} of {data_size}")
        tensors[name] = (dtype, shape)
    return tensors


def check_weights(model: nn.Module, header: dict[str, tuple[str, tuple[int, ...]]], path: str | Path) -> None:
    """Raise a ValueError naming `path` unless the model's state dict has exactly the header's names and shapes."""
    state = model.state_dict()
    for name, tensor in state.items():
        if name in header and tuple(tensor.shape) != header[name][1]:
            raise ValueError(f"{path} does not match its config: tensor {name!r} has shape {list(header[name][1])} "
                             f"in the file, but the config builds {list(tensor.shape)}")
    missing = [k for k in state if k not in header]
    unexpected = [k for k in header if k not in state]
    if missing or unexpected:
        raise ValueError(f"{path} does not match its config: {len(missing)} tensors missing "
                         f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")


def load_model_dir(directory: str | Path, build: Builder, map_location: str | torch.device = "cpu",
                   kind: str = "model") -> nn.Module:
    """Rebuild a model saved by `save_model` on `map_location` and load its weights (in eval mode).

    Args:
        directory: The folder holding `config.json` and `model.safetensors`.
        build: Makes the model from the config (e.g. `create_model(**config)`).
        map_location: Device to build and load on.
        kind: What is loaded, for error messages ("model", "classifier").
    """
    directory = Path(directory)
    config = read_config(directory, kind)
    weights = directory / WEIGHTS_NAME
    header = read_header(weights)
    try:
        with torch.device("meta"):
            shapes_only = build(dict(config))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{directory / CONFIG_NAME} does not describe a valid {kind}: {error}") from error
    check_weights(shapes_only, header, weights)
    del shapes_only
    device = torch.device(map_location)
    with torch.device(device):
        model = build(dict(config))
    try:
        state = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ValueError(f"could not read the weights {weights}: {error}") from error
    model.load_state_dict(state)
    return model.eval()
