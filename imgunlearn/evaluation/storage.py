"""Saved evaluation arrays and result files: uint8 images in `.npz`, JSON, all written atomically.

Layout under an evaluation directory:

    outputs/data/SPLIT.npz      image, input (uint8 [N, 3, H, W]), mask, forget_mask (bool [N, 1, H, W]), index
    outputs/MODEL/SPLIT.npz     output (uint8 [N, 3, H, W])
    evaluation.json             what was evaluated and how (models, splits, metrics, feature extractor)
    metrics.json                {MODEL: {SPLIT: {metric: value}}}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from imgunlearn import io as fileio

DATA_DIR = "data"
DATA_KEYS = ("image", "input", "mask", "forget_mask", "index")


def to_uint8(images: Tensor) -> Tensor:
    """Images in [0, 1] as uint8 (values rounded to the nearest of 256 levels)."""
    return (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def to_float(images: Tensor) -> Tensor:
    """uint8 images back to float32 in [0, 1]."""
    return images.float() / 255.0


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(path: Path, data: Any) -> None:
    """Write results with `imgunlearn.io.write_json`, NaN and infinities as null (JSON has no NaN)."""
    fileio.write_json(path, _clean(data), allow_nan=False, end="\n")


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return json.loads(path.read_text())


def save_arrays(path: Path, arrays: dict[str, Tensor]) -> None:
    fileio.atomic_write_bytes(path, lambda f: np.savez_compressed(f, **{k: v.cpu().numpy() for k, v in arrays.items()}))


def load_arrays(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"saved evaluation arrays not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def data_path(output_dir: Path, split: str) -> Path:
    return output_dir / "outputs" / DATA_DIR / f"{split}.npz"


def output_path(output_dir: Path, model: str, split: str) -> Path:
    return output_dir / "outputs" / model / f"{split}.npz"
