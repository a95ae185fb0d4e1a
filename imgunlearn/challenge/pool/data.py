"""The splits a pool is run on, and the fixed retain / test samples its members are also evaluated on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from imgunlearn.challenge.pool.hashing import derive_seed, hash_dataset, hash_json

SPLITS = ("retain", "forget", "val", "test")
SAMPLE_SIZE = 256
"""Retain and test examples whose confidences every member stores too (for KLoM beside the forget set)."""
SAMPLED_SPLITS = ("retain", "test")


@dataclass
class PoolData:
    """The four splits a pool is run on. Items are dicts `{"image", "age_group"}` or `(image, label)` pairs.

    Args:
        retain: Training images the unlearned model must keep (the retrained models' training set).
        forget: Training images to forget; their confidences are what the forget score compares.
        val: Validation images, handed to the unlearning function.
        test: Held-out images for test accuracy.
        batch_size: Batch size of the loaders handed to the unlearning function (64 in the challenge).
        split_hash: Content hash of the four splits; computed from the items when not given.
    """

    retain: Dataset
    forget: Dataset
    val: Dataset
    test: Dataset
    batch_size: int = 64
    split_hash: str | None = field(default=None)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if len(self.forget) == 0:
            raise ValueError("the forget set is empty")
        if self.split_hash is None:
            self.split_hash = hash_json({name: hash_dataset(getattr(self, name)) for name in SPLITS})

    def unlearning_loaders(self, seed: int) -> tuple[DataLoader, DataLoader, DataLoader]:
        """Shuffled (retain, forget, val) loaders, each with its own generator seeded from `seed`."""
        loaders = []
        for offset, dataset in enumerate((self.retain, self.forget, self.val)):
            generator = torch.Generator().manual_seed(seed * 3 + offset)
            loaders.append(DataLoader(dataset, batch_size=self.batch_size, shuffle=True, generator=generator))
        return loaders[0], loaders[1], loaders[2]


def sample_indices(data: PoolData, base_seed: int, size: int = SAMPLE_SIZE) -> dict[str, list[int]]:
    """The fixed sample of each of `SAMPLED_SPLITS`: `min(size, len)` sorted indices drawn without replacement.

    Drawn from `derive_seed(base_seed, "sample-<split>", 0)`, so every member of a pool (and every shard) uses
    the same examples; the pool manifest records them.
    """
    samples = {}
    for split in SAMPLED_SPLITS:
        count = len(getattr(data, split))
        rng = np.random.default_rng(derive_seed(base_seed, f"sample-{split}", 0))
        chosen = rng.choice(count, size=min(size, count), replace=False) if count else np.zeros(0, dtype=int)
        samples[split] = sorted(int(i) for i in chosen)
    return samples
