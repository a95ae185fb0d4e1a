"""Pool files: one `.npz` per member, the manifests, and reading members back.

Layout of a pool directory (`out`):

    out/pool.json                              what the pool was built from (split, original, recipe, samples)
    out/original.npz                           the original evaluated once (the "no unlearning" reference)
    out/methods/<method>/method.json           the method's spec, pool size and input hash
    out/methods/<method>/model_00007.npz       one file per unlearned model
    out/methods/<method>/score.json            written by `score_pool` (also for the two reference rows)
    out/score.json, out/report.md, out/report/ every scored row, the comparison table and the figures
    cache/retrained-<key>/model_00007.npz      retrained models, keyed by a hash of (split, recipe, code)

A member file holds `confidences` (float64 `[|S|]`, the logit-scaled confidence of every forget example),
`retain_sample` and `test_sample` (the same for the pool's fixed sample of retain and test examples, listed in
`pool.json`), and `meta`, a JSON string: retain / test / forget accuracies (fractions), the wall time of the
training or unlearning call alone, index, seed, device, torch thread count, the `imgunlearn` code digest and the
input hash. Files are written to a temporary name and renamed, so each is either complete or absent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgunlearn import io as fileio
from imgunlearn.challenge.pool.data import SAMPLED_SPLITS

RETRAINED = "retrained"
UNLEARNED = "unlearned"
ORIGINAL = "original"
RETRAIN_METHOD = "retrain"
POOL_MANIFEST = "pool.json"
METHOD_MANIFEST = "method.json"
SCORE_NAME = "score.json"
TIME_CUTOFF = 0.2
"""A method whose mean unlearning time exceeds this fraction of the mean retraining time fails the cutoff."""
JSON_OPTIONS: dict[str, Any] = {"sort_keys": True, "default": float, "fsync": True}
"""How pool JSON files are written (`imgunlearn.io.write_json` options)."""


def method_slug(name: str) -> str:
    """A directory name for a method spec: `"pkg.mod:fn"` -> `"pkg.mod-fn"`."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")
    if not slug:
        raise ValueError(f"cannot make a directory name from method {name!r}")
    return slug


def member_path(directory: Path, index: int) -> Path:
    return Path(directory) / f"model_{index:05d}.npz"


def write_member(path: Path, confidences: np.ndarray, meta: Mapping[str, Any],
                 samples: Mapping[str, np.ndarray] | None = None) -> None:
    """Write one model's result file atomically (`samples`: split -> confidences of its fixed sample)."""
    arrays = {"confidences": np.asarray(confidences, dtype=np.float64),
              "meta": np.array(json.dumps(dict(meta), sort_keys=True))}
    for split, values in (samples or {}).items():
        arrays[f"{split}_sample"] = np.asarray(values, dtype=np.float64)
    fileio.atomic_write_bytes(path, lambda handle: np.savez(handle, **arrays), fsync=True)


def read_member(path: Path, with_samples: bool = False) -> Any:
    """`(confidences, meta)` of a result file, or `(confidences, meta, samples)` with `with_samples`.

    Raises:
        ValueError: The file is truncated or corrupt (the message names it).
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            confidences = archive["confidences"].astype(np.float64)
            meta = json.loads(str(archive["meta"]))
            samples = {split: archive[f"{split}_sample"].astype(np.float64) for split in SAMPLED_SPLITS
                       if f"{split}_sample" in archive.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, KeyError, EOFError) as error:
        raise ValueError(f"pool member {path} is unreadable (truncated or corrupt: {type(error).__name__}: "
                         f"{error}); delete it and rerun `imgunlearn challenge run` to make it again") from None
    return (confidences, meta, samples) if with_samples else (confidences, meta)


def member_done(path: Path, input_hash: str, n_forget: int) -> bool:
    """Whether `path` is a complete result of these inputs; other inputs raise, unreadable files are redone."""
    if not path.exists():
        return False
    try:
        confidences, meta = read_member(path)
    except ValueError as error:
        warnings.warn(f"redoing {error}", stacklevel=3)
        return False
    if meta.get("input_hash") != input_hash:
        raise ValueError(
            f"{path} was made from other inputs (hash {str(meta.get('input_hash'))[:12]}, code "
            f"{meta.get('code', '?')}; expected {input_hash[:12]}): the data split, recipe, method, original or "
            "imgunlearn code changed; rerun with --overwrite to replace them or use a new output directory"
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
    code: str = ""
    samples: dict[str, np.ndarray] = field(default_factory=dict)  # split -> [N, sample size]
    directory: Path | None = None


def ranges(indices: Sequence[int]) -> str:
    """`[0, 1, 2, 5, 7, 8]` -> `"0-2, 5, 7-8"`."""
    parts, start = [], None
    for position, k in enumerate(indices):
        if start is None:
            start = k
        if position + 1 == len(indices) or indices[position + 1] != k + 1:
            parts.append(str(start) if start == k else f"{start}-{k}")
            start = None
    return ", ".join(parts)


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
    indices = list(indices)
    missing = [k for k in indices if not member_path(directory, k).is_file()]
    if missing:
        seeds = f" (seeds {', '.join(str(seed_of(k)) for k in missing[:10])}{', ...' if len(missing) > 10 else ''})"
        raise FileNotFoundError(
            f"pool {directory} is incomplete: {len(missing)} of {len(indices)} models missing, "
            f"indices {ranges(missing)}{seeds if seed_of else ''}; rerun `imgunlearn challenge run` with the "
            "same arguments (and every --shard) to make them"
        )
    rows = [read_member(member_path(directory, k), with_samples=True) for k in indices]
    codes: dict[str, list[int]] = {}
    for k, (_, meta, _) in zip(indices, rows, strict=True):
        codes.setdefault(str(meta.get("code", "unknown")), []).append(k)
    if len(codes) > 1:
        detail = "; ".join(f"members {ranges(ks)} by code {code}" for code, ks in sorted(codes.items()))
        raise ValueError(f"pool {directory} mixes members made by different imgunlearn code: {detail}; "
                         "rerun `imgunlearn challenge run` with --overwrite to remake them with one version")
    hashes = sorted({meta["input_hash"] for _, meta, _ in rows})
    if len(hashes) > 1:
        raise ValueError(f"pool {directory} mixes models made from different inputs: hashes {[h[:12] for h in hashes]}")
    if input_hash is not None and hashes and hashes != [input_hash]:
        raise ValueError(f"pool {directory} holds models made from other inputs (hash {hashes[0][:12]}) than its "
                         f"manifest says ({input_hash[:12]})")
    lengths = {conf.shape for conf, _, _ in rows}
    if len(lengths) > 1:
        raise ValueError(f"pool {directory} mixes forget sets of different sizes: {sorted(lengths)}")
    metas = [meta for _, meta, _ in rows]
    column = lambda key: np.array([meta[key] for meta in metas], dtype=np.float64)  # noqa: E731
    samples = {split: np.stack([s[split] for _, _, s in rows]) for split in SAMPLED_SPLITS
               if rows and all(split in s for _, _, s in rows)}
    return PoolMembers(
        indices=indices,
        seeds=np.array([meta["seed"] for meta in metas], dtype=np.int64),
        confidences=np.stack([conf for conf, _, _ in rows]) if rows else np.zeros((0, 0)),
        retain_acc=column("retain_acc"),
        test_acc=column("test_acc"),
        forget_acc=column("forget_acc"),
        wall_time=column("wall_time"),
        input_hash=hashes[0] if hashes else "",
        code=next(iter(codes), ""),
        samples=samples,
        directory=directory,
    )


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


def method_manifest(pool: Path, name: str) -> dict[str, Any]:
    """The `method.json` of method `name` under `pool`; a clear error lists the methods run there."""
    path = Path(pool) / "methods" / method_slug(name) / METHOD_MANIFEST
    if not path.is_file():
        known = ", ".join(pool_methods(pool)) or "none"
        raise FileNotFoundError(f"method {name!r} was never run in {pool}; methods there: {known}")
    return json.loads(path.read_text())


# ---- resuming: what must match, and what --overwrite removes -------------------------------------------------

POOL_KEYS = ("split_hash", "original_hash", "recipe_hash", "base_seed", "samples")
"""What `pool.json` must agree on for a pool to resume."""


def remove_aside(path: Path) -> None:
    """Rename `path` aside, then delete it (a crash never leaves half of it in place)."""
    if path.exists():
        trash = path.with_name(f".{path.name}.removed-{secrets.token_hex(4)}")
        os.replace(path, trash)
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink(missing_ok=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def check_pool(out: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Refuse a pool directory built for another `POOL_KEYS`; with `overwrite` clear it (never the cache)."""
    old = read_json(out / POOL_MANIFEST)
    if old is None:
        return
    changed = [key for key in POOL_KEYS if old.get(key) != manifest[key]]
    if not changed:
        return
    if not overwrite:
        raise ValueError(f"{out} is a pool of another {', '.join(changed)} ({str(old.get(changed[0]))[:12]} vs "
                         f"{str(manifest[changed[0]])[:12]}); mixing would make the scores meaningless: pass "
                         "--overwrite to replace that pool (its retrained cache is kept) or use a new --out directory")
    for name in ("methods", f"{ORIGINAL}.npz", "score.json", "report.md", "report"):
        remove_aside(out / name)


def check_method(method_dir: Path, name: str, input_hash: str, overwrite: bool, code: str) -> None:
    """Refuse a method directory made from other inputs; with `overwrite` remove its members."""
    old = read_json(method_dir / METHOD_MANIFEST)
    if old is None or old.get("input_hash") == input_hash:
        return
    if not overwrite:
        raise ValueError(
            f"method {name!r} in {method_dir.parent.parent} was run with other inputs (code {old.get('code', '?')} "
            f"now {code}; or its hyperparameters, batch size or seed changed): pass --overwrite to replace "
            f"its members, or file the new results under another name (--name)")
    remove_aside(method_dir)


def relative_path(path: Path, start: Path) -> str:
    """`path` relative to `start` (absolute when on another drive)."""
    try:
        return os.path.relpath(path.resolve(), start.resolve())
    except ValueError:  # another drive
        return str(path.resolve())
