"""Seeded samplers that hand each index its own degradation seed, sharded over the processes of a DDP job.

Every sampler yields keys `(index, draw_seed)` (see `datasets.py`); the order and the draw seeds of epoch `e`
depend only on `(seed, e)`. Lightning calls `set_epoch` before each epoch; without it the epoch advances by one
each time a sampler is iterated.

The training samplers are *batch* samplers: every process draws the same global order of the epoch and takes
its own batches from it (`shard_batches`), so each item is used once per epoch across all processes, no
process sees another's items, and every process makes the same number of steps (DDP needs that). With one
process the batches are the global order cut into `batch_size` pieces, the last one shorter. The number of
processes and this process's rank are read from `torch.distributed` when the sampler is used (or given), so
Lightning must not wrap the sampler a second time: the Lightning commands and the Python API run the Trainer
with `use_distributed_sampler=False`, and `ForgetRetainDataModule.train_dataloader` refuses a Trainer that
would wrap it.

Resuming in the middle of an epoch: `ResumableLoader` (a DataLoader) reports how many batches of which epoch
it has handed out (`state_dict`, saved in Lightning checkpoints); loading that state makes the next pass skip
the batches already trained on, so a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from imgunlearn.data.datasets import mix_seed


def world() -> tuple[int, int]:
    """`(num_processes, rank)` of the default process group, `(1, 0)` outside of one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def shard_batches(num: int, batch_size: int, num_replicas: int = 1, rank: int = 0) -> list[list[int]]:
    """The positions `0..num-1` of one epoch's global order that process `rank` trains on, batch by batch.

    Step `s` uses positions `[s·R·B, (s+1)·R·B)` (R processes, batch size B), process `r` the `r`-th block of B.
    The last, shorter step is split as evenly as possible; when it has fewer items than processes, the last two
    steps are split evenly instead, so no process gets an empty batch. Every process gets the same number of
    batches and every position goes to exactly one process.

    Raises:
        ValueError: If the items cannot give every process a non-empty batch at every step.
    """
    if batch_size < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need batch_size >= 1 and 0 <= rank < num_replicas, got {batch_size}, {rank}, {num_replicas}")
    step = num_replicas * batch_size
    full, rest = divmod(num, step)
    if rest and rest < num_replicas and (full == 0 or batch_size == 1):
        raise ValueError(f"cannot shard {num} items over {num_replicas} processes with batch size {batch_size} so that "
                         "every process gets a non-empty batch at every step; use fewer processes or a larger batch")
    if rest and rest < num_replicas:  # too few for one item each: share the last full step with them
        full -= 1
        rest += step
    batches = [list(range(s * step + rank * batch_size, s * step + (rank + 1) * batch_size)) for s in range(full)]
    if rest:
        slots = num_replicas * (2 if rest > step else 1)  # the tail's (step, process) slots in order
        sizes = [rest // slots + (i < rest % slots) for i in range(slots)]
        starts = [full * step + sum(sizes[:i]) for i in range(slots)]
        for i in range(rank, slots, num_replicas):
            batches.append(list(range(starts[i], starts[i] + sizes[i])))
    return batches


def _draw_seeds(n: int, generator: torch.Generator) -> list[int]:
    return torch.randint(0, 2**62, (n,), generator=generator).tolist()


class _EpochSampler(Sampler):
    seed_name: str | None = None
    """Salt of the epoch seeds (default: the class name)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.epoch = 0
        self._skip: dict[int, int] = {}
        self.iter_epoch, self.iter_start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, batches: int) -> None:
        """Continue at epoch `epoch`, skipping its first `batches` batches (a finished epoch moves on)."""
        if batches >= len(self):
            epoch, batches = epoch + 1, 0
        self.epoch = epoch
        self._skip = {epoch: batches} if batches else {}

    def _generator(self) -> torch.Generator:
        """The epoch's generator; the sampler moves to the next epoch."""
        self.iter_epoch = self.epoch
        self.iter_start = self._skip.pop(self.epoch, 0)
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.seed_name or type(self).__name__, self.epoch))
        self.epoch += 1
        return generator


class ShuffledSampler(_EpochSampler):
    """Every index of a dataset of `num` items once per epoch, in a seeded order (one process, item by item).

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


class _ShardedBatchSampler(_EpochSampler):
    """Batches of keys of this process's share of a seeded global epoch order (see `shard_batches`)."""

    def __init__(self, num: int, batch_size: int, seed: int, num_replicas: int | None, rank: int | None) -> None:
        super().__init__(seed)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if (num_replicas is None) != (rank is None):
            raise ValueError(f"give both num_replicas and rank or neither, got {num_replicas} and {rank}")
        self.num, self.batch_size = num, batch_size
        self._world = None if num_replicas is None else (num_replicas, rank)

    def shard(self) -> list[list[int]]:
        replicas, rank = self._world or world()
        return shard_batches(self.num, self.batch_size, replicas, rank)

    def __len__(self) -> int:
        return len(self.shard())

    def epoch_keys(self, generator: torch.Generator) -> list[Any]:
        """The global order of the epoch: one key per position."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[Any]]:
        # a generator: DataLoader iterators call iter() more than once before the first batch; only the pass that
        # is actually consumed may move the epoch on
        keys = self.epoch_keys(self._generator())
        for batch in self.shard()[self.iter_start:]:
            yield [keys[p] for p in batch]


class ShuffledBatchSampler(_ShardedBatchSampler):
    """Batches over a dataset of `num` items, every index once per epoch across all processes, seeded order.

    Args:
        num: Dataset length.
        batch_size: Items per batch and process.
        seed: Seed of the order and of the draw seeds.
        num_replicas: Number of processes (default: from `torch.distributed` when used, else 1).
        rank: This process's rank (given with `num_replicas`).
    """

    seed_name = "ShuffledSampler"  # one process: the same order and draws as `ShuffledSampler`

    def __init__(self, num: int, batch_size: int, seed: int = 0, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        if num < 1:
            raise ValueError(f"cannot sample from an empty dataset (got {num} items)")
        super().__init__(num, batch_size, seed, num_replicas, rank)

    def epoch_keys(self, generator: torch.Generator) -> list[tuple[int, int]]:
        order = torch.randperm(self.num, generator=generator).tolist()
        return list(zip(order, _draw_seeds(self.num, generator), strict=True))


class PairedSampler(_ShardedBatchSampler):
    """Batches of keys `((forget_index, seed), (retain_index, seed))` for a `PairedDataset`.

    One epoch is one pass over the forget set in a seeded order (the anchor), shared out over the processes.
    Retain indices follow seeded permutations of the retain set, concatenated until there are as many as forget
    indices, so every retain image is used as evenly as possible (oversampled when smaller, subsampled when
    larger; each epoch draws fresh permutations).

    Args:
        num_forget: Forget set size.
        num_retain: Retain set size.
        batch_size: Pairs per batch and process.
        seed: Seed of both orders and of the draw seeds.
        num_replicas: Number of processes (default: from `torch.distributed` when used, else 1).
        rank: This process's rank (given with `num_replicas`).
    """

    def __init__(self, num_forget: int, num_retain: int, batch_size: int = 1, seed: int = 0,
                 num_replicas: int | None = None, rank: int | None = None) -> None:
        if num_forget < 1 or num_retain < 1:
            raise ValueError(f"paired sampling needs forget and retain images, got {num_forget} and {num_retain}")
        super().__init__(num_forget, batch_size, seed, num_replicas, rank)
        self.num_forget = num_forget
        self.num_retain = num_retain

    def epoch_keys(self, generator: torch.Generator) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        n = self.num_forget
        forget = torch.randperm(n, generator=generator).tolist()
        repeats = -(-n // self.num_retain)
        retain = torch.cat([torch.randperm(self.num_retain, generator=generator) for _ in range(repeats)])[:n]
        forget_keys = zip(forget, _draw_seeds(n, generator), strict=True)
        retain_keys = zip(retain.tolist(), _draw_seeds(n, generator), strict=True)
        return list(zip(forget_keys, retain_keys, strict=True))


class ResumableLoader(DataLoader):
    """A DataLoader over a sharded batch sampler whose position survives a checkpoint.

    `state_dict()` gives the epoch and the number of batches handed out in it; `load_state_dict` makes the next
    pass start after them. Lightning saves and restores this state in its checkpoints (it treats any loader with
    `state_dict` / `load_state_dict` as resumable).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handed_out = 0

    def __iter__(self) -> Iterator[Any]:
        self._handed_out = 0
        for batch in super().__iter__():
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        sampler = self.batch_sampler
        return {"epoch": sampler.iter_epoch, "batches": sampler.iter_start + self._handed_out}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume(int(state["epoch"]), int(state["batches"]))
