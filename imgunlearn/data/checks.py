"""Consistency checks over a set of splits, run before any training."""

from __future__ import annotations

from pathlib import Path

import torch

from imgunlearn.data.splits import PROXY_RETAIN, SPLIT_TO_CSV, ImageSet
from imgunlearn.data.tasks import Task


def check_splits(splits: dict[str, ImageSet], task: Task, proxy_retain: ImageSet | None = None) -> None:
    """Raise a ValueError naming the problem unless the splits can be used together.

    Checks: the forget set is not empty; there is a retain set (the real one or a proxy); no file is in two
    splits; no image is in both forget and retain (same content); every image has the same size; the
    task's mask fits that size.
    """
    if len(splits["forget_train"]) == 0:
        raise ValueError("the forget set is empty: list at least one forget image")
    if len(splits["retain_train"]) == 0 and (proxy_retain is None or len(proxy_retain) == 0):
        raise ValueError("the retain set is empty: list retain images or give a proxy retain folder")

    named = dict(splits)
    if proxy_retain is not None:
        named[PROXY_RETAIN] = proxy_retain
    owner: dict[str, str] = {}
    for name, images in named.items():
        if images.pixels is not None:
            continue  # in-memory tiles have no files to share
        for path in images.names:
            key = str(Path(path).resolve())
            if key in owner:
                where = f"listed twice in {_label(name)}" if owner[key] == name else \
                    f"in both {_label(owner[key])} and {_label(name)}"
                raise ValueError(f"{path} is {where}")
            owner[key] = name

    forget_content: dict[str, str] = {}
    for name in ("forget_train", "forget_holdout"):
        forget_content.update(zip(named[name].fingerprints(), named[name].names, strict=True))
    for name in ("retain_train", "retain_holdout", PROXY_RETAIN):
        if name not in named:
            continue
        for digest, path in zip(named[name].fingerprints(), named[name].names, strict=True):
            if digest in forget_content:
                raise ValueError(f"the same image is a forget image ({forget_content[digest]}) and a "
                                 f"{_label(name)} image ({path})")

    sized = [(name, images) for name, images in named.items() if len(images)]
    first_name, first = sized[0]
    for name, images in sized[1:]:
        if images.size != first.size:
            raise ValueError(f"{_label(name)} images are {images.size[0]}x{images.size[1]} ({images.names[0]}) but "
                             f"{_label(first_name)} images are {first.size[0]}x{first.size[1]}; set resize")
    check_task_fits(task, first.size, first.names[0])


def check_task_fits(task: Task, size: tuple[int, int], example: str) -> None:
    """Raise if images of `size` (H, W) are too small for `task`'s mask."""
    try:
        task.sample_mask(torch.zeros(1, 3, *size), torch.Generator().manual_seed(0))
    except ValueError as e:
        raise ValueError(f"images of {size[0]}x{size[1]} (e.g. {example}) are too small for the "
                         f"{task.name} task: {e}") from None


def _label(name: str) -> str:
    return SPLIT_TO_CSV.get(name, name)

