"""The pool runner: N unlearned and N retrained-from-scratch classifiers, one small result file per model.

A pool directory (`out`) holds everything measured for one original model and one data split:

    out/pool.json                              what the pool was built from (split, original, recipe hashes)
    out/original.npz                           the original evaluated once (the "no unlearning" reference)
    out/methods/<method>/method.json           the method's spec, pool size and input hash
    out/methods/<method>/model_00007.npz       one file per unlearned model
    out/methods/<method>/score.json            written by `score_pool` (also for the two reference rows)
    out/score.json, out/report.md, out/report/ every scored row, the comparison table and the figures
    cache/retrained-<key>/model_00007.npz      retrained models, keyed by a hash of (split, training recipe)
                                               and shared by every method and pool that uses them

Every model file is one `.npz`, written to a temporary name and renamed, so it is either complete or
absent. It holds `confidences` (float64 `[|S|]`, the logit-scaled confidence of every forget example) and
`meta`, a JSON string with the retain / test / forget accuracies (fractions in [0, 1]), the wall time of
the training or unlearning call alone, the member's index and seed, and the hash of the inputs. A run that
is killed restarts where it stopped: complete files are skipped, temporary files are ignored. `shard=(i, n)`
gives shard `i` the members whose index is `i` modulo `n`, separately for each kind, so that `n` jobs split
the work exactly and evenly.

Seeds: member `k` of a kind gets `derive_seed(base_seed, kind, k)`; every member runs inside `seeded(seed)`
(Python, NumPy and torch generators seeded, deterministic algorithms on) and the unlearning loaders shuffle
with their own `torch.Generator` from that seed, so the same seeds give the same numbers on CPU with the same
number of torch threads (another thread count changes float rounding, about 1e-7 in the confidences; each
file records its thread count).

The "retrain" reference (an independent retrained pool scored as if it were unlearned) uses retrained
members `N .. 2N-1` of the cache as its unlearned pool, against members `0 .. N-1`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import os
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from imgunlearn import io as fileio

RETRAINED = "retrained"
UNLEARNED = "unlearned"
ORIGINAL = "original"
RETRAIN_METHOD = "retrain"
POOL_MANIFEST = "pool.json"
METHOD_MANIFEST = "method.json"
SCORE_NAME = "score.json"
TIME_CUTOFF = 0.2
"""A method whose mean unlearning time exceeds this fraction of the mean retraining time fails the cutoff."""

UnlearningFn = Callable[[nn.Module, DataLoader, DataLoader, DataLoader], "nn.Module | None"]
"""The challenge signature `unlearning(net, retain_loader, forget_loader, val_loader)`; edits or returns `net`."""

RetrainFn = Callable[[int], nn.Module]
"""`retrain(seed)`: a classifier trained from scratch on the retain set only."""


# ---- data --------------------------------------------------------------------------------------------------


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


SPLITS = ("retain", "forget", "val", "test")


def split_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """`(images, labels)` of a batch given as a dict `{"image", "age_group"}` or as a pair."""
    if isinstance(batch, Mapping):
        if "image" not in batch or "age_group" not in batch:
            raise ValueError(f"batch dict needs 'image' and 'age_group' keys, got {sorted(batch)}")
        return batch["image"], batch["age_group"]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise ValueError(f"cannot read images and labels from a batch of type {type(batch).__name__}")


# ---- hashing and seeds -------------------------------------------------------------------------------------


def hash_json(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value (keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def hash_dataset(dataset: Dataset) -> str:
    """Content hash of a dataset: its own `content_hash()`, its in-memory `images` and `age_group`, or every item."""
    own = getattr(dataset, "content_hash", None)
    if callable(own):
        return str(own())
    images, labels = getattr(dataset, "images", None), getattr(dataset, "age_group", None)
    if isinstance(images, Tensor) and labels is not None and len(images) == len(dataset):  # in-memory fast path
        digest = hashlib.sha256(f"{images.dtype}:{tuple(images.shape)}".encode())
        digest.update(images.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        return digest.hexdigest()
    digest = hashlib.sha256()
    for index in range(len(dataset)):
        image, label = split_batch(dataset[index])
        image = torch.as_tensor(image).detach().cpu().contiguous()
        digest.update(str((index, image.dtype, tuple(image.shape), int(label))).encode())
        digest.update(image.numpy().tobytes())
    return digest.hexdigest()


def hash_state_dict(module: nn.Module) -> str:
    """Hash of a module's weights and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def hash_callable(fn: Callable[..., Any]) -> str:
    """Hash of what an unlearning callable runs: its source (unwrapped), plus its `repr` for a method object.

    Registered methods are objects whose `repr` lists their hyperparameters, so other hyperparameters give
    another hash. Without source (a builtin, an interactive definition) the qualified name stands in.
    """
    fn = inspect.unwrap(fn)
    target = fn if inspect.isroutine(fn) or inspect.isclass(fn) else type(fn)
    try:
        text = inspect.getsource(target)
    except (OSError, TypeError):
        text = f"{getattr(target, '__module__', '')}:{getattr(target, '__qualname__', repr(target))}"
    if target is not fn:
        text += "\n" + repr(fn)
    return hashlib.sha256(text.encode()).hexdigest()


def derive_seed(base_seed: int, kind: str, index: int) -> int:
    """The seed of member `index` of pool `kind`: independent streams for every (base seed, kind, index)."""
    digest = hashlib.sha256(f"{base_seed}/{kind}/{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch, turn on deterministic algorithms, and restore everything afterwards."""
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` -> `(i, n)` with `0 <= i < n`."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {text!r}")
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


def method_slug(name: str) -> str:
    """A directory name for a method spec: `"pkg.mod:fn"` -> `"pkg.mod-fn"`."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    if not slug:
        raise ValueError(f"cannot make a directory name from method {name!r}")
    return slug


# ---- evaluation and member files ---------------------------------------------------------------------------


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 256, device: str | torch.device = "cpu"):
    """Logits `[M, C]` and labels `[M]` of `model` (in eval mode) over `dataset`, in order."""
    model.eval()
    logits, labels = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        images, targets = split_batch(batch)
        logits.append(model(images.to(device)).float().cpu())
        labels.append(torch.as_tensor(targets).long().cpu())
    return torch.cat(logits), torch.cat(labels)


def evaluate_member(model: nn.Module, data: PoolData, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Forget-set confidences and the retain / test / forget accuracies (fractions) of one model."""
    from imgunlearn.challenge.scoring import logit_scaled_confidence

    result: dict[str, Any] = {}
    for split in ("retain", "test", "forget"):
        logits, labels = predict(model, getattr(data, split), device=device)
        result[f"{split}_acc"] = float((logits.argmax(1) == labels).double().mean()) if len(labels) else float("nan")
        if split == "forget":
            result["confidences"] = np.asarray(logit_scaled_confidence(logits.double().numpy(), labels.numpy()))
    return result


def member_path(directory: Path, index: int) -> Path:
    return directory / f"model_{index:05d}.npz"


def write_json(path: str | Path, value: Any) -> None:
    """Write `value` as indented JSON with sorted keys, atomically and synced to disk."""
    fileio.write_json(path, value, sort_keys=True, default=float, fsync=True)


def write_member(path: Path, confidences: np.ndarray, meta: Mapping[str, Any]) -> None:
    """Write one model's result file atomically."""
    conf = np.asarray(confidences, dtype=np.float64)
    meta_text = np.array(json.dumps(dict(meta), sort_keys=True))
    fileio.atomic_write_bytes(path, lambda handle: np.savez(handle, confidences=conf, meta=meta_text), fsync=True)


def read_member(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """`(confidences, meta)` of a result file."""
    with np.load(path, allow_pickle=False) as archive:
        return archive["confidences"].astype(np.float64), json.loads(str(archive["meta"]))


def _existing(path: Path, input_hash: str, n_forget: int) -> bool:
    """Whether `path` is a complete result of these inputs; mixed inputs raise, unreadable files are redone."""
    if not path.exists():
        return False
    try:
        confidences, meta = read_member(path)
    except Exception as error:  # noqa: BLE001 - an unreadable file is simply redone
        warnings.warn(f"redoing unreadable result file {path}: {error}", stacklevel=3)
        return False
    if meta.get("input_hash") != input_hash:
        raise ValueError(
            f"{path} was made from other inputs (hash {str(meta.get('input_hash'))[:12]}, expected "
            f"{input_hash[:12]}): the data split, recipe, method or original changed; use a new output directory"
        )
    return confidences.shape == (n_forget,)


@dataclass
class PoolMembers:
    """Results of the members `indices` of one pool, stacked in index order."""

    indices: list[int]
    seeds: np.ndarray  # [N]
    confidences: np.ndarray  # [N, |S|]
    retain_acc: np.ndarray  # [N]
    test_acc: np.ndarray  # [N]
    forget_acc: np.ndarray  # [N]
    wall_time: np.ndarray  # [N]
    input_hash: str


def load_members(
    directory: str | Path,
    indices: Sequence[int],
    input_hash: str | None = None,
    seed_of: Callable[[int], int] | None = None,
) -> PoolMembers:
    """Read the result files of members `indices`; a clear error names missing members or mixed inputs.

    Args:
        directory: Where the member files are.
        indices: Which members, in order.
        input_hash: The hash every member must carry (None: only require them to agree).
        seed_of: Member index -> seed, to name the seeds of missing members in the error.
    """
    directory = Path(directory)
    missing = [k for k in indices if not member_path(directory, k).is_file()]
    if missing:
        seeds = f" (seeds {', '.join(str(seed_of(k)) for k in missing[:10])}{', ...' if len(missing) > 10 else ''})"
        raise FileNotFoundError(
            f"pool {directory} is incomplete: {len(missing)} of {len(indices)} models missing, "
            f"indices {_ranges(missing)}{seeds if seed_of else ''}; rerun `imgunlearn challenge run` with the "
            "same arguments (and every --shard) to make them"
        )
    rows = [read_member(member_path(directory, k)) for k in indices]
    hashes = sorted({meta["input_hash"] for _, meta in rows})
    if len(hashes) > 1:
        raise ValueError(f"pool {directory} mixes models made from different inputs: hashes {[h[:12] for h in hashes]}")
    if input_hash is not None and hashes and hashes != [input_hash]:
        raise ValueError(f"pool {directory} holds models made from other inputs (hash {hashes[0][:12]}) than its "
                         f"manifest says ({input_hash[:12]})")
    lengths = {conf.shape for conf, _ in rows}
    if len(lengths) > 1:
        raise ValueError(f"pool {directory} mixes forget sets of different sizes: {sorted(lengths)}")
    metas = [meta for _, meta in rows]
    column = lambda key: np.array([meta[key] for meta in metas], dtype=np.float64)  # noqa: E731
    return PoolMembers(
        indices=list(indices),
        seeds=np.array([meta["seed"] for meta in metas], dtype=np.int64),
        confidences=np.stack([conf for conf, _ in rows]) if rows else np.zeros((0, 0)),
        retain_acc=column("retain_acc"),
        test_acc=column("test_acc"),
        forget_acc=column("forget_acc"),
        wall_time=column("wall_time"),
        input_hash=hashes[0] if hashes else "",
    )


def _ranges(indices: Sequence[int]) -> str:
    """`[0, 1, 2, 5, 7, 8]` -> `"0-2, 5, 7-8"`."""
    parts, start = [], None
    for position, k in enumerate(indices):
        if start is None:
            start = k
        if position + 1 == len(indices) or indices[position + 1] != k + 1:
            parts.append(str(start) if start == k else f"{start}-{k}")
            start = None
    return ", ".join(parts)


# ---- running a pool ----------------------------------------------------------------------------------------


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
        progress: Show a tqdm bar (models done, time left).
        progress_position: Line of the bar (parallel shards in one terminal use one line each).
    """
    summary = RunSummary()
    todo: list[tuple[MemberJob, int]] = []
    for job in jobs:
        summary.directories[job.kind] = job.directory
        mine = shard_indices(job.indices, shard)
        done = {k for k in mine if _existing(member_path(job.directory, k), job.input_hash, len(data.forget))}
        summary.skipped[job.kind] = len(done)
        summary.made[job.kind] = 0
        todo += [(job, k) for k in mine if k not in done]
    skipped = sum(summary.skipped.values())
    bar = tqdm(total=len(todo), desc=f"pool shard {shard[0]}/{shard[1]} ({skipped} done before)", unit="model",
               disable=not progress, dynamic_ncols=True, position=progress_position)
    with bar:
        for job, index in todo:
            bar.set_postfix_str(f"{job.kind} {index}")
            seed = derive_seed(base_seed, job.kind, index)
            with seeded(seed):
                model, wall_time = job.build(seed)
                result = evaluate_member(model, data, device=device)
            confidences = result.pop("confidences")
            meta = {"kind": job.kind, "index": index, "seed": seed, "wall_time": wall_time,
                    "threads": torch.get_num_threads(), "input_hash": job.input_hash, **result}
            write_member(member_path(job.directory, index), confidences, meta)
            summary.made[job.kind] += 1
            bar.update(1)
    return summary


def retrain_job(directory: Path, retrain: RetrainFn, input_hash: str, indices: Sequence[int]) -> MemberJob:
    """Members trained from scratch on the retain set by `retrain(seed)`."""

    def build(seed: int) -> tuple[nn.Module, float]:
        start = time.perf_counter()
        model = retrain(seed)
        return model, time.perf_counter() - start

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
    """Members made by running `unlearning` on a fresh copy of `original`; only the call itself is timed."""

    def build(seed: int) -> tuple[nn.Module, float]:
        net = copy.deepcopy(original).to(device).train()
        retain_loader, forget_loader, val_loader = data.unlearning_loaders(seed)
        start = time.perf_counter()
        returned = unlearning(net, retain_loader, forget_loader, val_loader)
        wall_time = time.perf_counter() - start
        return (returned if isinstance(returned, nn.Module) else net), wall_time

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


def _check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    if not path.is_file():
        return
    old = json.loads(path.read_text())
    for key in ("split_hash", "original_hash", "retrain_key", "base_seed"):
        if old.get(key) != manifest[key]:
            raise ValueError(
                f"{path.parent} was built with another {key} ({str(old.get(key))[:12]} vs {str(manifest[key])[:12]}); "
                f"mixing would make the scores meaningless: use a new --out directory"
            )


def _check_method_manifest(path: Path, name: str, input_hash: str) -> None:
    if path.is_file() and json.loads(path.read_text()).get("input_hash") != input_hash:
        raise ValueError(
            f"method {name!r} in {path.parent.parent.parent} was run with other inputs (its code, hyperparameters, "
            "batch size or seed changed): file the new results under another name (--name) or remove "
            f"{path.parent}"
        )


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
        original: The trained original model; never modified.
        retrain: `retrain(seed)` trains a fresh classifier on `data.retain` only.
        recipe: JSON-serialisable description of `retrain` (model, epochs, optimiser, ...); with the split it
            keys the retrained cache, so it must change whenever `retrain` would train differently.
        method: A registered method name, `"module:function"`, a callable with the challenge signature, or
            `"retrain"` for the reference pool alone.
        n_models: Pool size N.
        method_name: Name the results are filed under (default: the spec, or `module:qualname`).
        cache_dir: Shared directory of retrained pools (default: `out/cache`).
        shard: `(i, n)`: run only the members whose index is `i` modulo `n`.
        base_seed: Root of every member's seed.
        device: Where unlearning and evaluation run.
        progress: Show a tqdm bar.
        progress_position: Line of the bar.

    Returns:
        How many members were made and skipped, per kind.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    out = Path(out)
    name, unlearning = _resolve_method(method, method_name)
    if unlearning is not None and name in (RETRAIN_METHOD, ORIGINAL):
        raise ValueError(f"method name {name!r} is reserved for the reference rows; pass another method_name")
    recipe_hash = hash_json(dict(recipe))
    retrain_hash = hash_json({"kind": RETRAINED, "split": data.split_hash, "recipe": recipe_hash, "seed": base_seed})
    retrain_dir = Path(cache_dir) if cache_dir is not None else out / "cache"
    retrain_dir = retrain_dir / f"retrained-{retrain_hash[:16]}"
    original_hash = hash_state_dict(original)
    manifest = {
        "split_hash": data.split_hash, "original_hash": original_hash, "recipe": dict(recipe),
        "recipe_hash": recipe_hash, "retrain_key": retrain_hash, "retrain_dir": _relative(retrain_dir, out),
        "base_seed": base_seed, "n_forget": len(data.forget), "batch_size": data.batch_size,
    }
    _check_manifest(out / POOL_MANIFEST, manifest)
    write_json(out / POOL_MANIFEST, manifest)
    write_json(retrain_dir / "recipe.json", {"split_hash": data.split_hash, "recipe": dict(recipe)})

    n_retrained = 2 * n_models if unlearning is None else n_models
    jobs = [retrain_job(retrain_dir, retrain, retrain_hash, range(n_retrained))]
    method_dir = out / "methods" / method_slug(name)
    method_hash = retrain_hash
    if unlearning is not None:
        method_hash = hash_json({"kind": UNLEARNED, "split": data.split_hash, "original": original_hash,
                                 "method": name, "source": hash_callable(unlearning),
                                 "batch_size": data.batch_size, "seed": base_seed})
        jobs.append(unlearn_job(method_dir, unlearning, original, data, method_hash, range(n_models), device))
    _check_method_manifest(method_dir / METHOD_MANIFEST, name, method_hash)
    write_json(method_dir / METHOD_MANIFEST, {"method": name, "n_models": n_models, "input_hash": method_hash})

    original_path = out / f"{ORIGINAL}.npz"
    original_input = hash_json({"kind": ORIGINAL, "split": data.split_hash, "original": original_hash})
    if shard[0] == 0 and not _existing(original_path, original_input, len(data.forget)):
        result = evaluate_member(original, data, device=device)
        write_member(original_path, result.pop("confidences"),
                     {"kind": ORIGINAL, "index": 0, "seed": -1, "wall_time": 0.0, "input_hash": original_input,
                      **result})
    return run_members(jobs, data, shard=shard, base_seed=base_seed, device=device, progress=progress,
                       progress_position=progress_position)


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:  # another drive
        return str(path.resolve())


# ---- loading and scoring -----------------------------------------------------------------------------------


def read_manifest(pool: str | Path) -> dict[str, Any]:
    """The `pool.json` of a pool directory, with `retrain_dir` resolved to a path."""
    path = Path(pool) / POOL_MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"not a pool directory: {path} is missing (run `imgunlearn challenge run` first)")
    manifest = json.loads(path.read_text())
    manifest["retrain_dir"] = (Path(pool) / manifest["retrain_dir"]).resolve()
    return manifest


def pool_methods(pool: str | Path) -> dict[str, int]:
    """Every method run under `pool` (the "retrain" reference included when it was run), with its pool size."""
    found = {}
    for path in sorted((Path(pool) / "methods").glob(f"*/{METHOD_MANIFEST}")):
        entry = json.loads(path.read_text())
        found[entry["method"]] = int(entry["n_models"])
    return found


def _method_manifest(pool: Path, name: str) -> dict[str, Any]:
    path = pool / "methods" / method_slug(name) / METHOD_MANIFEST
    if not path.is_file():
        known = ", ".join(pool_methods(pool)) or "none"
        raise FileNotFoundError(f"method {name!r} was never run in {pool}; methods there: {known}")
    return json.loads(path.read_text())


def load_pool(pool: str | Path, method: str, n_models: int | None = None) -> tuple[PoolMembers, PoolMembers]:
    """The unlearned and retrained pools `(U, R)` a method is scored on.

    Args:
        pool: The pool directory.
        method: A method run under `pool`, `"retrain"` (retrained members N..2N-1 as U) or `"original"` (the
            original's single evaluation replicated N times as U: a deterministic method that returns the
            original unchanged gives exactly these N identical models).
        n_models: N (default: the size the method was run with; required for `"original"` unless some method
            was run).

    Raises:
        FileNotFoundError: A pool is incomplete; the message names the missing member indices.
        ValueError: Members made from different inputs are mixed.
    """
    pool = Path(pool)
    manifest = read_manifest(pool)
    retrain_dir, retrain_hash, base_seed = manifest["retrain_dir"], manifest["retrain_key"], manifest["base_seed"]
    retrained_seed = lambda k: derive_seed(base_seed, RETRAINED, k)  # noqa: E731
    if method == ORIGINAL:
        if n_models is None:
            sizes = pool_methods(pool)
            if not sizes:
                raise ValueError("pass n_models to score the original: no method was run in this pool")
            n_models = max(sizes.values())
        retrained = load_members(retrain_dir, range(n_models), retrain_hash, retrained_seed)
        return _replicate_original(pool / f"{ORIGINAL}.npz", n_models), retrained
    if n_models is None:
        n_models = int(_method_manifest(pool, method)["n_models"])
    retrained = load_members(retrain_dir, range(n_models), retrain_hash, retrained_seed)
    if method == RETRAIN_METHOD:
        return load_members(retrain_dir, range(n_models, 2 * n_models), retrain_hash, retrained_seed), retrained
    entry = _method_manifest(pool, method)
    unlearned = load_members(pool / "methods" / method_slug(method), range(n_models), entry["input_hash"],
                             lambda k: derive_seed(base_seed, UNLEARNED, k))
    return unlearned, retrained


def _replicate_original(path: Path, n_models: int) -> PoolMembers:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: shard 0 of `imgunlearn challenge run` evaluates the original")
    confidences, meta = read_member(path)
    repeat = lambda key: np.full(n_models, meta[key], dtype=np.float64)  # noqa: E731
    return PoolMembers(
        indices=[0] * n_models, seeds=np.full(n_models, -1), confidences=np.tile(confidences, (n_models, 1)),
        retain_acc=repeat("retain_acc"), test_acc=repeat("test_acc"), forget_acc=repeat("forget_acc"),
        wall_time=np.zeros(n_models), input_hash=meta["input_hash"],
    )


def score_members(unlearned: PoolMembers, retrained: PoolMembers) -> dict[str, Any]:
    """The challenge scores of an unlearned pool against a retrained pool of the same size.

    Accuracies are pool means in percent (`{"unlearned": ..., "retrained": ...}`); times are mean seconds of
    the unlearning call and of retraining; `epsilons` lists the per-example ε in forget-set order.
    """
    from imgunlearn.challenge.scoring import final_score, forget_score_from_epsilons, per_example_epsilons

    n_models = unlearned.confidences.shape[0]
    if retrained.confidences.shape != unlearned.confidences.shape:
        raise ValueError(f"pool shapes differ: unlearned {unlearned.confidences.shape}, "
                         f"retrained {retrained.confidences.shape}")
    epsilons = np.asarray(per_example_epsilons(unlearned.confidences, retrained.confidences), dtype=np.float64)
    forget = float(forget_score_from_epsilons(epsilons, n_models))
    means = {key: {side: 100 * float(getattr(members, key).mean())
                   for side, members in (("unlearned", unlearned), ("retrained", retrained))}
             for key in ("retain_acc", "test_acc", "forget_acc")}  # percent, as the challenge's final score
    final = final_score(forget, means["retain_acc"]["unlearned"], means["retain_acc"]["retrained"],
                        means["test_acc"]["unlearned"], means["test_acc"]["retrained"])
    unlearn_time, retrain_time = float(unlearned.wall_time.mean()), float(retrained.wall_time.mean())
    time_ratio = unlearn_time / retrain_time if retrain_time > 0 else float("inf")
    return {
        "n_models": n_models,
        "n_forget": int(unlearned.confidences.shape[1]),
        "forget_score": forget,
        "final_score": float(final),
        **means,
        "unlearn_time": unlearn_time,
        "retrain_time": retrain_time,
        "time_ratio": time_ratio,
        "passes_time_cutoff": bool(time_ratio <= TIME_CUTOFF),
        "epsilon_median": float(np.median(epsilons)),
        "epsilons": epsilons.tolist(),
    }


def score_pool(
    pool: str | Path,
    methods: Sequence[str] | None = None,
    n_models: int | None = None,
    *,
    write: bool = True,
    report: bool = True,
) -> dict[str, dict[str, Any]]:
    """Score methods of a pool and the two reference rows; write `score.json` files and `report.md`.

    Rows: every method in `methods` (default: all run under `pool`), then the references that are available,
    at the size N of the largest scored method (or `n_models`): "original" (no unlearning) and "retrain" (an
    independent retrained pool scored as if unlearned, which needs `run --method retrain`).

    Writes `methods/<method>/score.json` per row (flat keys: forget_score, final_score, n_models, retain_acc,
    test_acc, forget_acc in percent, time_ratio, passes_time_cutoff, epsilons, ...), `score.json` holding all rows,
    and `report.md` with its figures in `report/`.

    Returns:
        Row name -> score dict.
    """
    pool = Path(pool)
    read_manifest(pool)
    available = pool_methods(pool)
    names = list(methods) if methods else [name for name in available if name != RETRAIN_METHOD]
    if not names and RETRAIN_METHOD not in available:
        raise ValueError(f"nothing to score in {pool}: no method was run there")
    pools = {name: load_pool(pool, name, n_models) for name in names}
    size = n_models or max([u.confidences.shape[0] for u, _ in pools.values()] + [available.get(RETRAIN_METHOD, 0)])
    notes = []
    for reference in (ORIGINAL, RETRAIN_METHOD):
        if reference in pools:
            continue
        try:
            pools[reference] = load_pool(pool, reference, size)
        except (FileNotFoundError, ValueError) as error:
            notes.append(f"reference row {reference!r} skipped: {error}")
    scores = {}
    for name, (unlearned, retrained) in pools.items():
        scores[name] = {"method": name, **score_members(unlearned, retrained)}
        if write:
            write_json(pool / "methods" / method_slug(name) / SCORE_NAME, scores[name])
    if write:
        write_json(pool / SCORE_NAME, {"pool": str(pool), "notes": notes, "methods": scores})
    if report:
        from imgunlearn.challenge.report import write_report

        write_report(pool, {name: (scores[name], *pools[name]) for name in scores}, notes=notes)
    return scores
