"""Splitting a pool over jobs: `--shard i/n`, `--shard auto` (torchrun or SLURM), and devices per job.

Shard `(i, n)` owns the members whose index is `i` modulo `n`, separately for each kind, so `n` jobs split the
work exactly and evenly, whatever launched them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

AUTO = "auto"


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` -> `(i, n)` with `0 <= i < n`."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4) or be 'auto', got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"shard {text!r} needs n >= 1 and 0 <= i < n")
    return index, count


def shard_indices(indices: Sequence[int], shard: tuple[int, int]) -> list[int]:
    """The members of `indices` that shard `(i, n)` runs: those with `index % n == i`."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count} needs n >= 1 and 0 <= i < n")
    return [k for k in indices if k % count == index]


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"environment variable {name}={env[name]!r} is not an integer") from None


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The shard a launcher assigned to this process; `(0, 1)` when none did.

    Looked up in this order:

    - torchrun (and other `torch.distributed` launchers): `RANK` / `WORLD_SIZE`;
    - a SLURM job array: `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`) / `SLURM_ARRAY_TASK_COUNT`; when the
      array tasks also run several `srun` tasks each, the two are combined (`task * SLURM_NTASKS + SLURM_PROCID`
      of `count * SLURM_NTASKS`);
    - `srun` tasks of one SLURM job: `SLURM_PROCID` / `SLURM_NTASKS`.
    """
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        shard = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    elif "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        task = _int(env, "SLURM_ARRAY_TASK_ID") - (_int(env, "SLURM_ARRAY_TASK_MIN")
                                                    if "SLURM_ARRAY_TASK_MIN" in env else 0)
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
        ntasks = _int(env, "SLURM_NTASKS") if "SLURM_NTASKS" in env else 1
        procid = _int(env, "SLURM_PROCID") if ntasks > 1 and "SLURM_PROCID" in env else 0
        shard = task * ntasks + procid, count * ntasks
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        shard = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
    else:
        return 0, 1
    if shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"the launcher's environment gives shard {shard[0]}/{shard[1]}, which is not 0 <= i < n")
    return shard


def resolve_shard(text: str | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """`--shard`: None -> `(0, 1)`, `"auto"` -> `shard_from_env`, `"i/n"` -> `parse_shard`."""
    if text is None:
        return 0, 1
    if text.strip() == AUTO:
        return shard_from_env(env)
    return parse_shard(text)


def local_device(device: str, env: Mapping[str, str] | None = None) -> str:
    """`cuda` without an index under a launcher -> `cuda:<local rank>` (`LOCAL_RANK` or `SLURM_LOCALID`)."""
    env = os.environ if env is None else env
    if device != "cuda":
        return device
    for name in ("LOCAL_RANK", "SLURM_LOCALID"):
        if name in env:
            import torch

            count = max(torch.cuda.device_count(), 1)
            return f"cuda:{_int(env, name) % count}"
    return device


def job_devices(device: str, jobs: int, device_count: int) -> list[str]:
    """The device of each of `jobs` parallel jobs: `cuda` spreads them over `cuda:0 .. cuda:K-1` (round robin
    over the `device_count` visible GPUs); any other device (or an explicit `cuda:N`) is shared by all."""
    if device == "cuda" and device_count > 0:
        return [f"cuda:{job % device_count}" for job in range(jobs)]
    return [device] * jobs
