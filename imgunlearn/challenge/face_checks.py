"""Checks of face-age data: plausible ages, whole age groups, and one person per image (by file and pixels).

Each raises a ValueError naming the image and the value. Without them one typo (an age of -1e9) silently
stretches the equal-width age groups so that every other age falls into one group, a fractional age group is
truncated, and one image under two people lands on both sides of a person-disjoint forget split.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch


def check_ages(ages: np.ndarray, image_ids: Sequence[str], age_range: tuple[float, float]) -> None:
    """Raise a ValueError naming the first age that is not finite or lies outside `age_range`."""
    low, high = (float(v) for v in age_range)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"age_range {tuple(age_range)} must be two finite ages, lowest first")
    bad = ~np.isfinite(ages) | (ages < low) | (ages > high)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"age {ages[i]:g} of image {image_ids[i]!r} is outside the plausible range {low:g}..{high:g} "
                         "(set age_range if such ages are real)")


def whole_groups(age_group: Sequence[Any] | np.ndarray, image_ids: Sequence[str]) -> np.ndarray:
    """`age_group` as int64, refusing values that are not whole numbers (2.7 is not group 2)."""
    values = np.asarray(age_group)
    if values.dtype == bool or not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"age groups must be whole numbers, got {values.dtype} values")
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"age group {values[i]:g} of image {image_ids[i]!r} is not a whole number")
    return values.astype(np.int64)


def check_one_person_per_image(images: torch.Tensor, person_ids: np.ndarray, image_ids: Sequence[str]) -> None:
    """Raise a ValueError when identical pixels are listed under two different people."""
    owner: dict[bytes, int] = {}
    for i, image in enumerate(images.numpy()):
        digest = hashlib.sha1(image.tobytes()).digest()
        first = owner.setdefault(digest, i)
        if person_ids[first] != person_ids[i]:
            raise ValueError(f"images {image_ids[first]!r} (person {_plain(person_ids[first])!r}) and "
                             f"{image_ids[i]!r} (person {_plain(person_ids[i])!r}) have the same pixels; one "
                             f"image under two people would land on both sides of a forget split")


def check_listed_once(paths: list[Path], persons: list[Any] | None, csv_path: Path) -> None:
    """Raise a ValueError naming the rows of `csv_path` that list one image file twice."""
    seen: dict[Path, int] = {}
    for i, path in enumerate(paths):
        key = path.resolve()
        if key in seen:
            j = seen[key]
            who = "" if persons is None else (f" (under person {persons[j]!r} and person {persons[i]!r})"
                                               if persons[i] != persons[j] else f" (both under person {persons[i]!r})")
            raise ValueError(f"{csv_path}: image {path} is listed twice, in rows {j + 2} and {i + 2}{who}")
        seen[key] = i


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
