"""Map-style datasets yielding the item dicts every method and evaluation consumes.

An item is::

    {"image":  float [3, H, W] in [0, 1]   the clean image
     "input":  float [3, H, W]             the task's model input (degraded / partly hidden)
     "mask":   float [1, H, W]             hidden pixels (1 = hidden)
     "forget_mask": float [1, H, W]        content to forget: the box of a forget image, all ones for a
                                           forget image without a box, zeros for a retain image
     "index":  int                         position in the split}

The degradation of an item is drawn from a generator seeded per draw. With `fixed=True` the draw seed is a
function of (seed, split, index), so an item is the same every time (evaluation). With `fixed=False` each
access draws fresh degradation; the samplers in `sampling.py` pass the draw seed with the index
(`dataset[(index, draw_seed)]`), so training is reproducible whatever the number of loader workers.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from imgunlearn.data.splits import ImageSet, split_kind
from imgunlearn.data.tasks import Task

Key = int | tuple[int, int]
"""An index, or `(index, draw_seed)`."""


def mix_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and strings (strings hashed with CRC32, stable across runs)."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) % 2**63 for p in parts]
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


class SplitDataset(Dataset):
    """The items of one split under a task.

    Args:
        images: The split's images and boxes.
        task: Makes `(input, mask)` from each image.
        split: The split's name (`forget_train`, ..., `proxy_retain`); decides whether items are forget
            items (forget_mask = box) or retain items (forget_mask = zeros) and salts the degradation seeds.
        fixed: Same degradation for an index every time (evaluation) instead of fresh draws (training).
        seed: Seed of the degradations.
    """

    def __init__(self, images: ImageSet, task: Task, split: str, fixed: bool = True, seed: int = 0) -> None:
        self.images = images
        self.task = task
        self.split = split
        self.forget = split_kind(split) == "forget"
        self.fixed = fixed
        self.seed = seed
        self._draws = torch.Generator().manual_seed(mix_seed(seed, split, "draws"))

    def __len__(self) -> int:
        return len(self.images)

    def draw_seed(self, index: int) -> int:
        """The degradation seed of `index` when `fixed`."""
        return mix_seed(self.seed, self.split, index)

    def __getitem__(self, key: Key) -> dict[str, Tensor | int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.split} with {len(self)} images")
        if seed is None:
            seed = self.draw_seed(index) if self.fixed else int(torch.randint(0, 2**62, (), generator=self._draws))
        image = torch.from_numpy(np.ascontiguousarray(self.images.image(index))).float() / 255.0  # [3, H, W]
        model_input, mask = self.task(image[None], torch.Generator().manual_seed(int(seed)))  # [1, 3, H, W]
        return {"image": image, "input": model_input[0], "mask": mask[0], "forget_mask": self.forget_mask(index),
                "index": index}

    def forget_mask(self, index: int) -> Tensor:
        """`[1, H, W]`: 1 on the content to forget (see the module docstring)."""
        h, w = self.images.size
        if not self.forget:
            return torch.zeros(1, h, w)
        top, left, bh, bw = (int(v) for v in self.images.boxes[index])
        if top < 0:
            return torch.ones(1, h, w)
        region = torch.zeros(1, h, w)
        region[:, top : top + bh, left : left + bw] = 1.0
        return region


class PairedDataset(Dataset):
    """`{"forget": item, "retain": item}` for a key `(forget_key, retain_key)` from `PairedSampler`."""

    def __init__(self, forget: SplitDataset, retain: SplitDataset) -> None:
        self.forget = forget
        self.retain = retain

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, key: tuple[Key, Key]) -> dict[str, dict[str, Tensor | int]]:
        forget_key, retain_key = key
        return {"forget": self.forget[forget_key], "retain": self.retain[retain_key]}


class UnionDataset(Dataset):
    """Several split datasets end to end; keys may carry a draw seed like `SplitDataset`'s."""

    def __init__(self, datasets: list[SplitDataset]) -> None:
        self.datasets = [d for d in datasets if len(d)]
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: Key) -> dict[str, Tensor | int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        local = int(index - self.offsets[part])
        item = self.datasets[part][local if seed is None else (local, seed)]
        item["index"] = int(index)
        return item
