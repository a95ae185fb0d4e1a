"""Reading a pool back and scoring it: the challenge's forget and final scores, KLoM and ToW, per method.

Rows: every method run under the pool, then the references that are available, "original" (no unlearning: the
original's single evaluation replicated N times) and "retrain" (retrained members N..2N-1 scored as if they
were unlearned: the practical ceiling). A row is scored only when its unlearned and retrained members were made
by the same `imgunlearn` code; otherwise the error names both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgunlearn.challenge.klom import klom, tow
from imgunlearn.challenge.klom import klom_summary as summarise_klom
from imgunlearn.challenge.pool.data import SAMPLED_SPLITS
from imgunlearn.challenge.pool.hashing import derive_seed
from imgunlearn.challenge.pool.store import (
    JSON_OPTIONS,
    ORIGINAL,
    RETRAIN_METHOD,
    RETRAINED,
    SCORE_NAME,
    TIME_CUTOFF,
    UNLEARNED,
    PoolMembers,
    load_members,
    method_manifest,
    method_slug,
    pool_methods,
    read_manifest,
    read_member,
)
from imgunlearn.challenge.scoring import final_score, forget_score_from_epsilons, per_example_epsilons
from imgunlearn.io import write_json

KLOM_SETS = ("forget", *SAMPLED_SPLITS)


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
        ValueError: Members made from different inputs or by different code are mixed; a member file is
            truncated or corrupt (named).
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
        unlearned = _replicate_original(pool / f"{ORIGINAL}.npz", n_models)
    else:
        if n_models is None:
            n_models = int(method_manifest(pool, method)["n_models"])
        retrained = load_members(retrain_dir, range(n_models), retrain_hash, retrained_seed)
        if method == RETRAIN_METHOD:
            unlearned = load_members(retrain_dir, range(n_models, 2 * n_models), retrain_hash, retrained_seed)
        else:
            entry = method_manifest(pool, method)
            unlearned = load_members(pool / "methods" / method_slug(method), range(n_models), entry["input_hash"],
                                     lambda k: derive_seed(base_seed, UNLEARNED, k))
    if unlearned.code != retrained.code:
        raise ValueError(f"{method!r} in {pool} cannot be scored: its members ({unlearned.directory}) were made by "
                         f"imgunlearn code {unlearned.code} and the retrained members ({retrained.directory}) by "
                         f"{retrained.code}; rerun `imgunlearn challenge run --method {method} --overwrite` so that "
                         "both come from one version")
    return unlearned, retrained


def _replicate_original(path: Path, n_models: int) -> PoolMembers:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: shard 0 of `imgunlearn challenge run` evaluates the original")
    confidences, meta, samples = read_member(path, with_samples=True)
    repeat = lambda key: np.full(n_models, meta[key], dtype=np.float64)  # noqa: E731
    return PoolMembers(
        indices=[0] * n_models, seeds=np.full(n_models, -1), confidences=np.tile(confidences, (n_models, 1)),
        retain_acc=repeat("retain_acc"), test_acc=repeat("test_acc"), forget_acc=repeat("forget_acc"),
        wall_time=np.zeros(n_models), input_hash=meta["input_hash"], code=str(meta.get("code", "unknown")),
        samples={split: np.tile(values, (n_models, 1)) for split, values in samples.items()}, directory=path,
    )


def klom_summary(unlearned: PoolMembers, retrained: PoolMembers) -> dict[str, dict[str, float]]:
    """KLoM (mean and 95th percentile over examples) on the forget set and on the fixed retain / test samples.

    A sampled set is left out when a pool's members do not store it.
    """
    summary = {}
    for name in KLOM_SETS:
        if name == "forget":
            u, r = unlearned.confidences, retrained.confidences
        elif name in unlearned.samples and name in retrained.samples:
            u, r = unlearned.samples[name], retrained.samples[name]
        else:
            continue
        if u.shape[1] == 0:
            continue
        values = klom(u, r)  # [n examples]
        summary[name] = {**summarise_klom(values), "n_examples": int(values.size)}
    return summary


def tow_score(unlearned: PoolMembers, retrained: PoolMembers) -> float:
    """ToW of the pools' mean accuracies (fractions) on forget, retain and test (NaN if a split is empty)."""
    accuracies = [{split: float(getattr(members, f"{split}_acc").mean()) for split in ("forget", "retain", "test")}
                  for members in (unlearned, retrained)]
    if not all(np.isfinite(value) for accs in accuracies for value in accs.values()):
        return float("nan")
    return tow(accuracies[0], accuracies[1])


def score_members(unlearned: PoolMembers, retrained: PoolMembers) -> dict[str, Any]:
    """The challenge scores of an unlearned pool against a retrained pool of the same size, with KLoM and ToW.

    Accuracies are pool means in percent (`{"unlearned": ..., "retrained": ...}`); times are mean seconds of
    the unlearning call and of retraining; `epsilons` lists the per-example ε in forget-set order; `klom` maps
    forget / retain / test to the mean and 95th percentile of per-example KLoM; `tow` is ToW.
    """
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
        "klom": klom_summary(unlearned, retrained),
        "tow": tow_score(unlearned, retrained),
        "code": unlearned.code,
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
    test_acc, forget_acc in percent, time_ratio, passes_time_cutoff, klom, tow, epsilons, ...), `score.json`
    holding all rows, and `report.md` with its figures in `report/`.

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
            write_json(pool / "methods" / method_slug(name) / SCORE_NAME, scores[name], **JSON_OPTIONS)
    if write:
        write_json(pool / SCORE_NAME, {"pool": str(pool), "notes": notes, "methods": scores}, **JSON_OPTIONS)
    if report:
        from imgunlearn.challenge.report import write_report

        write_report(pool, {name: (scores[name], *pools[name]) for name in scores}, notes=notes)
    return scores
