"""The pool runner: N unlearned and N retrained-from-scratch classifiers, one small result file per model.

A run that is killed restarts where it stopped: complete member files are skipped, temporary files ignored.
`shard=(i, n)` makes only the members whose index is `i` modulo `n` (see `shards`).

Seeds: member `k` of a kind gets `derive_seed(base_seed, kind, k)`; every member runs inside
`seeded(seed, deterministic=True)` (Python, NumPy and torch seeded, deterministic algorithms on) and the
unlearning loaders shuffle with their own `torch.Generator` from that seed, so the same seeds give the same
numbers on CPU with the same number of torch threads (another thread count changes float rounding, about 1e-7
in the confidences; each file records its thread count and device).

Devices: the original, every retrained and unlearned model and every batch go to `device`; the user's
`unlearning` receives a network already there, and the timed calls synchronise the device before and after.

Resuming and `overwrite`: a pool resumes only where its configuration matches. `pool.json` keys the pool by
split, original weights, recipe, base seed and the retain / test sample; `method.json` keys a method's members
by its input hash (split, original, method settings, batch size, seed and code: see `hashing`). A mismatch is
refused, naming what changed; `overwrite=True` replaces only what was made from another configuration: the
whole pool (methods, original evaluation, scores) when `pool.json` differs, else this method's members when its
`method.json` differs. Matching members are kept. The retrained cache is keyed by (split, recipe, code), so
other code trains new retrained members in another cache entry; it is never removed unless
`overwrite_cache=True`, which retrains this run's entry from scratch.

The "retrain" reference (an independent retrained pool scored as if it were unlearned) uses retrained
members `N .. 2N-1` of the cache as its unlearned pool, against members `0 .. N-1`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from imgunlearn.challenge.pool.data import PoolData, sample_indices
from imgunlearn.challenge.pool.hashing import code_digest, derive_seed, hash_callable, hash_json, hash_state_dict
from imgunlearn.challenge.pool.shards import shard_indices
from imgunlearn.challenge.pool.store import (
    JSON_OPTIONS,
    METHOD_MANIFEST,
    ORIGINAL,
    POOL_MANIFEST,
    RETRAIN_METHOD,
    RETRAINED,
    UNLEARNED,
    check_method,
    check_pool,
    member_done,
    member_path,
    method_slug,
    relative_path,
    remove_aside,
    write_member,
)
from imgunlearn.challenge.scoring import logit_scaled_confidence
from imgunlearn.challenge.training import check_same_architecture, predict, seeded, synchronize
from imgunlearn.io import write_json

UnlearningFn = Callable[[nn.Module, DataLoader, DataLoader, DataLoader], "nn.Module | None"]
"""The challenge signature `unlearning(net, retain_loader, forget_loader, val_loader)`; edits or returns `net`."""

RetrainFn = Callable[[int], nn.Module]
"""`retrain(seed)`: a classifier trained from scratch on the retain set only (the runner moves it to the device)."""



def evaluate_member(model: nn.Module, data: PoolData, device: str | torch.device = "cpu",
                    samples: Mapping[str, Sequence[int]] | None = None, name: str = "the model") -> dict[str, Any]:
    """Forget-set confidences, the retain / test / forget accuracies (fractions) and the sampled confidences.

    Returns a dict with `retain_acc`, `test_acc`, `forget_acc`, `confidences` (`[|S|]`) and `samples`
    (split -> confidences of the examples `samples[split]`).

    Raises:
        ValueError: "non-finite outputs of <name> on <split>" when a logit is NaN or infinite.
    """
    result: dict[str, Any] = {"samples": {}}
    for split in ("retain", "test", "forget"):
        logits, labels = predict(model, getattr(data, split), device=device)
        if not torch.isfinite(logits).all():
            row, column = (int(i) for i in torch.nonzero(~torch.isfinite(logits))[0])
            raise ValueError(f"non-finite outputs of {name} on {split}: logits[{row}, {column}] = "
                             f"{logits[row, column].item()}")
        result[f"{split}_acc"] = float((logits.argmax(1) == labels).double().mean()) if len(labels) else float("nan")
        if split == "forget":
            result["confidences"] = np.asarray(logit_scaled_confidence(logits.double().numpy(), labels.numpy()))
        elif samples is not None and split in samples:
            chosen = torch.as_tensor(list(samples[split]), dtype=torch.long)
            result["samples"][split] = np.asarray(
                logit_scaled_confidence(logits[chosen].double().numpy(), labels[chosen].numpy()))
    return result


@dataclass
class MemberJob:
    """One kind of pool members: the directory their files go to, their indices, and how to make one.

    `build(seed)` returns the trained or unlearned model and the wall time of the work itself (seconds).
    """

    kind: str
    directory: Path
    indices: list[int]
    input_hash: str
    build: Callable[[int], tuple[nn.Module, float]]


@dataclass
class RunSummary:
    """What a (shard of a) pool run did: models made and skipped per kind, and where they are."""

    made: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    directories: dict[str, Path] = field(default_factory=dict)


def run_members(
    jobs: Sequence[MemberJob],
    data: PoolData,
    *,
    shard: tuple[int, int] = (0, 1),
    base_seed: int = 0,
    device: str | torch.device = "cpu",
    samples: Mapping[str, Sequence[int]] | None = None,
    replace_other_inputs: bool = False,
    progress: bool = True,
    progress_position: int = 0,
) -> RunSummary:
    """Make every member of `jobs` that shard `shard` owns and has no complete result file yet.

    Args:
        jobs: The kinds of members to make.
        data: The splits the members are evaluated on.
        shard: `(i, n)`: make only members whose index is `i` modulo `n`.
        base_seed: Seeds of member `k` of kind `kind` are `derive_seed(base_seed, kind, k)`.
        device: Where models are evaluated.
        samples: Split -> indices of the fixed retain / test sample whose confidences are stored too.
        replace_other_inputs: Remake a member whose file holds another input hash (instead of refusing).
        progress: Show a tqdm bar (models done, time left).
        progress_position: Line of the bar (parallel shards in one terminal use one line each).
    """
    summary = RunSummary()
    todo: list[tuple[MemberJob, int]] = []
    for job in jobs:
        summary.directories[job.kind] = job.directory
        mine = shard_indices(job.indices, shard)
        done = set()
        for k in mine:
            try:
                if member_done(member_path(job.directory, k), job.input_hash, len(data.forget)):
                    done.add(k)
            except ValueError:
                if not replace_other_inputs:
                    raise
        summary.skipped[job.kind] = len(done)
        summary.made[job.kind] = 0
        todo += [(job, k) for k in mine if k not in done]
    skipped = sum(summary.skipped.values())
    bar = tqdm(total=len(todo), desc=f"pool shard {shard[0]}/{shard[1]} ({skipped} done before)", unit="model",
               disable=not progress, dynamic_ncols=True, position=progress_position)
    code = code_digest()
    with bar:
        for job, index in todo:
            bar.set_postfix_str(f"{job.kind} {index}")
            seed = derive_seed(base_seed, job.kind, index)
            with seeded(seed, deterministic=True):
                model, wall_time = job.build(seed)
                result = evaluate_member(model, data, device=device, samples=samples,
                                         name=f"{job.kind} model {index} (seed {seed})")
            confidences, sampled = result.pop("confidences"), result.pop("samples")
            meta = {"kind": job.kind, "index": index, "seed": seed, "wall_time": wall_time, "device": str(device),
                    "threads": torch.get_num_threads(), "input_hash": job.input_hash, "code": code, **result}
            write_member(member_path(job.directory, index), confidences, meta, sampled)
            summary.made[job.kind] += 1
            bar.update(1)
    return summary


def retrain_job(directory: Path, retrain: RetrainFn, input_hash: str, indices: Sequence[int],
                device: str | torch.device = "cpu") -> MemberJob:
    """Members trained from scratch on the retain set by `retrain(seed)`; the call is timed on `device`."""

    def build(seed: int) -> tuple[nn.Module, float]:
        synchronize(device)
        start = time.perf_counter()
        model = retrain(seed)
        synchronize(device)
        return model.to(device), time.perf_counter() - start

    return MemberJob(RETRAINED, directory, list(indices), input_hash, build)


def unlearn_job(
    directory: Path,
    unlearning: UnlearningFn,
    original: nn.Module,
    data: PoolData,
    input_hash: str,
    indices: Sequence[int],
    device: str | torch.device = "cpu",
) -> MemberJob:
    """Members made by running `unlearning` on a fresh copy of `original` on `device`; only the call is timed."""

    def build(seed: int) -> tuple[nn.Module, float]:
        net = copy.deepcopy(original).to(device).train()
        retain_loader, forget_loader, val_loader = data.unlearning_loaders(seed)
        synchronize(device)
        start = time.perf_counter()
        returned = unlearning(net, retain_loader, forget_loader, val_loader)
        synchronize(device)
        wall_time = time.perf_counter() - start
        result = returned if isinstance(returned, nn.Module) else net
        check_same_architecture(original, result, f"the network returned by the unlearning function (seed {seed})")
        return result.to(device), wall_time

    return MemberJob(UNLEARNED, directory, list(indices), input_hash, build)


def _resolve_method(method: str | UnlearningFn, method_name: str | None) -> tuple[str, UnlearningFn | None]:
    if isinstance(method, str):
        if method == RETRAIN_METHOD:
            return method, None
        from imgunlearn.challenge.methods import resolve_unlearning

        return method_name or method, resolve_unlearning(method)
    if not callable(method):
        raise ValueError(f"method must be a name, 'module:function' or a callable, got {method!r}")
    return method_name or f"{method.__module__}:{method.__qualname__}", method


def run_pool(
    out: str | Path,
    data: PoolData,
    original: nn.Module,
    retrain: RetrainFn,
    recipe: Mapping[str, Any],
    method: str | UnlearningFn = RETRAIN_METHOD,
    n_models: int = 32,
    *,
    method_name: str | None = None,
    cache_dir: str | Path | None = None,
    shard: tuple[int, int] = (0, 1),
    base_seed: int = 0,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
    overwrite_cache: bool = False,
    make_members: bool = True,
    progress: bool = True,
    progress_position: int = 0,
) -> RunSummary:
    """Run (a shard of) the pool of `method` and of the retrained models it is compared with.

    Makes retrained members `0 .. n_models-1` (cached under `cache_dir`), the `n_models` unlearned members
    of `method`, and evaluates the original once. With `method="retrain"` it makes retrained members
    `0 .. 2*n_models-1` instead: the second half is the independent "retrain" reference pool.

    Args:
        out: The pool directory (one per original model and split).
        data: The splits.
        original: The trained original model; never modified (a copy goes to `device`).
        retrain: `retrain(seed)` trains a fresh classifier on `data.retain` only (on `device`, ideally).
        recipe: JSON-serialisable description of `retrain` (model, epochs, optimiser, ...); with the split and
            the code it keys the retrained cache, so it must change whenever `retrain` would train differently.
        method: A registered method name, `"module:function"`, a callable with the challenge signature, or
            `"retrain"` for the reference pool alone.
        n_models: Pool size N.
        method_name: Name the results are filed under (default: the spec, or `module:qualname`).
        cache_dir: Shared directory of retrained pools (default: `out/cache`).
        shard: `(i, n)`: run only the members whose index is `i` modulo `n`.
        base_seed: Root of every member's seed and of the retain / test sample.
        device: Where the original, unlearning, retrained models and evaluation run.
        overwrite: Replace what in `out` was made from another configuration (see the module docstring).
        overwrite_cache: Remove this run's retrained cache entry first (one shard only).
        make_members: False: only check and write the manifests and evaluate the original (what a parent
            process does once before its shard processes start).
        progress: Show a tqdm bar.
        progress_position: Line of the bar.

    Returns:
        How many members were made and skipped, per kind.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    if overwrite_cache and shard[1] > 1:
        raise ValueError("overwrite_cache with several shards would let them delete each other's retrained "
                         "models; clear the cache with one unsharded run first")
    out = Path(out)
    name, unlearning = _resolve_method(method, method_name)
    if unlearning is not None and name in (RETRAIN_METHOD, ORIGINAL):
        raise ValueError(f"method name {name!r} is reserved for the reference rows; pass another method_name")
    code = code_digest()
    samples = sample_indices(data, base_seed)
    recipe_hash = hash_json(dict(recipe))
    retrain_hash = hash_json({"kind": RETRAINED, "split": data.split_hash, "recipe": recipe_hash, "seed": base_seed,
                              "samples": samples, "code": code})
    retrain_dir = Path(cache_dir) if cache_dir is not None else out / "cache"
    retrain_dir = retrain_dir / f"retrained-{retrain_hash[:16]}"
    original_hash = hash_state_dict(original)
    manifest = {
        "split_hash": data.split_hash, "original_hash": original_hash, "recipe": dict(recipe),
        "recipe_hash": recipe_hash, "retrain_key": retrain_hash, "retrain_dir": relative_path(retrain_dir, out),
        "base_seed": base_seed, "n_forget": len(data.forget), "batch_size": data.batch_size, "samples": samples,
        "code": code,
    }
    device_original = copy.deepcopy(original).to(device).eval()
    n_retrained = 2 * n_models if unlearning is None else n_models
    jobs = [retrain_job(retrain_dir, retrain, retrain_hash, range(n_retrained), device)]
    method_dir = out / "methods" / method_slug(name)
    method_hash = retrain_hash
    if unlearning is not None:
        method_hash = hash_json({"kind": UNLEARNED, "split": data.split_hash, "original": original_hash,
                                 "method": name, "source": hash_callable(unlearning), "samples": samples,
                                 "batch_size": data.batch_size, "seed": base_seed, "code": code})
        jobs.append(unlearn_job(method_dir, unlearning, device_original, data, method_hash, range(n_models), device))
    check_pool(out, manifest, overwrite)  # everything is checked before anything is written
    if unlearning is not None:
        check_method(method_dir, name, method_hash, overwrite, code)
    else:  # the reference's members live in the retrained cache, which is keyed by code and recipe already
        (method_dir / "score.json").unlink(missing_ok=True)
    write_json(out / POOL_MANIFEST, manifest, **JSON_OPTIONS)
    if overwrite_cache:
        remove_aside(retrain_dir)
    write_json(retrain_dir / "recipe.json", {"split_hash": data.split_hash, "recipe": dict(recipe), "code": code},
               **JSON_OPTIONS)
    write_json(method_dir / METHOD_MANIFEST, {"method": name, "n_models": n_models, "input_hash": method_hash,
                                              "code": code}, **JSON_OPTIONS)

    original_path = out / f"{ORIGINAL}.npz"
    original_input = hash_json({"kind": ORIGINAL, "split": data.split_hash, "original": original_hash,
                                "samples": samples, "code": code})
    if shard[0] == 0:
        try:
            done = member_done(original_path, original_input, len(data.forget))
        except ValueError:  # the original's one evaluation by other code: cheap, made again
            done = False
        if not done:
            result = evaluate_member(device_original, data, device=device, samples=samples, name="the original")
            confidences, sampled = result.pop("confidences"), result.pop("samples")
            write_member(original_path, confidences,
                         {"kind": ORIGINAL, "index": 0, "seed": -1, "wall_time": 0.0, "input_hash": original_input,
                          "device": str(device), "code": code, **result}, sampled)
    if not make_members:
        return RunSummary()
    return run_members(jobs, data, shard=shard, base_seed=base_seed, device=device, samples=samples,
                       replace_other_inputs=overwrite, progress=progress, progress_position=progress_position)
