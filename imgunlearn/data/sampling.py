"""Seeded samplers that hand each index its own degradation seed.

Both samplers run in the main process and yield keys `(index, draw_seed)` (see `datasets.py`); the order
and the draw seeds of epoch `e` depend only on `(seed, e)`. Lightning calls `set_epoch` before each epoch;
without it the epoch advances by one each time the sampler is iterated.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from imgunlearn.data.datasets import mix_seed


class _EpochSampler(Sampler):
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, type(self).__name__, self.epoch))
        self.epoch += 1
        return generator


def _draw_seeds(n: int, generator: torch.Generator) -> list[int]:
    return torch.randint(0, 2**62, (n,), generator=generator).tolist()


class ShuffledSampler(_EpochSampler):
    """Every index of a dataset of `num` items once per epoch, in a seeded order.

    Args:
        num: Dataset length.
        seed: Seed of the order and of the draw seeds.
    """

    def __init__(self, num: int, seed: int = 0) -> None:
        super().__init__(seed)
        self.num = num

    def __len__(self) -> int:
        return self.num

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = self._generator()
        order = torch.randperm(self.num, generator=generator).tolist()
        return iter(list(zip(order, _draw_seeds(self.num, generator), strict=True)))


class PairedSampler(_EpochSampler):
    """Keys `((forget_index, seed), (retain_index, seed))` for a `PairedDataset`.

    One epoch is one pass over the forget set in a seeded order (the anchor). Retain indices follow
    seeded permutations of the retain set, concatenated until there are as many as forget indices, so
    every retain image is used as evenly as possible (oversampled when smaller, subsampled when larger;
    each epoch continues with fresh permutations).

    Args:
        num_forget: Forget set size.
        num_retain: Retain set size.
        seed: Seed of both orders and of the draw seeds.
    """

    def __init__(self, num_forget: int, num_retain: int, seed: int = 0) -> None:
        if num_forget < 1 or num_retain < 1:
            raise ValueError(f"paired sampling needs forget and retain images, got {num_forget} and {num_retain}")
        super().__init__(seed)
        self.num_forget = num_forget
        self.num_retain = num_retain

    def __len__(self) -> int:
        return self.num_forget

    def __iter__(self) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        generator = self._generator()
        n = self.num_forget
        forget = torch.randperm(n, generator=generator).tolist()
        repeats = -(-n // self.num_retain)
        retain = torch.cat([torch.randperm(self.num_retain, generator=generator) for _ in range(repeats)])[:n]
        forget_keys = zip(forget, _draw_seeds(n, generator), strict=True)
        retain_keys = zip(retain.tolist(), _draw_seeds(n, generator), strict=True)
        return iter(list(zip(forget_keys, retain_keys, strict=True)))
