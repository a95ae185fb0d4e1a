"""The NeurIPS 2023 Machine Unlearning Challenge forget score and final score, computed by counting.

For each forget example the challenge compares the confidences of N unlearned models with those of N
retrained-from-scratch models. Two families of decision rules (one threshold, and an interval between two
thresholds) are swept over about 1.6 * 10^5 thresholds; each gives false-positive / false-negative rates and
an (epsilon, delta)-style epsilon, and the example's epsilon is the largest one. The forget score turns the
per-example epsilons into points, and the final score scales it by the utility ratios.

The official code compares every model with every threshold. Here a rate is a whole-number count divided by
N, so each threshold's epsilon is read from a table indexed by (false-positive count, false-negative count),
built once per N, and the counts come from `np.searchsorted` on the sorted confidences, vectorised over every
threshold. Every grid and every float32 / float64 step is kept exactly as in the official code, so the
numbers are identical.

Cases the official code leaves undefined are defined here:

- both pools constant: epsilon 0 if the two constants are equal (the pools are indistinguishable), and
  `cap` if they differ (a threshold between them separates the pools perfectly);
- every threshold discarded (each one has a zero false-positive or false-negative rate without separating
  the pools): epsilon 0;
- fewer than 3 models: there are no buckets and the forget score is 0 whatever the epsilons;
- a threshold for which one of the two epsilon terms takes the log of a non-positive number (a rate of 1)
  uses the other term, and is discarded when both are undefined.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
NUM_LEFT_THRESHOLDS = math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT)  # 400
PEAKY_RATIO = 0.01
BUCKET_WIDTH = 0.5
MAX_TABLE_MODELS = 2048
"""Pools up to this size read epsilons from a cached `[N + 1, N + 1]` table; larger ones compute them."""


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16,):
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def logit_scaled_confidence(logits: Any, labels: Any) -> np.ndarray:
    """The challenge's per-example statistic, `log(p + 1e-45) - log(q + 1e-45)`.

    `p` is the softmax probability of the true label and `q` the summed probability of the other classes.
    As in the official code, the max logit is subtracted and the exponential taken in the logits' own
    floating dtype; the normalisation, `p`, `q` and the log-ratio are float64.

    Args:
        logits: `[..., n_examples, n_classes]`, numpy or torch (any leading dims, e.g. a models axis).
        labels: `[n_examples]` integer labels in `[0, n_classes)`.

    Returns:
        float64 confidences, `[..., n_examples]`.
    """
    logits = _to_numpy(logits)
    labels = _to_numpy(labels)
    if logits.ndim < 2:
        raise ValueError(f"logits must be [..., n_examples, n_classes], got shape {logits.shape}")
    n_examples, n_classes = logits.shape[-2:]
    if labels.shape != (n_examples,):
        raise ValueError(f"labels must have shape ({n_examples},) to match logits {logits.shape}, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if n_examples and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(np.flatnonzero((labels < 0) | (labels >= n_classes))[0])
        raise ValueError(f"labels[{bad}] = {labels[bad]} is outside [0, {n_classes})")
    if logits.dtype.kind != "f":
        logits = logits.astype(np.float64)
    if not np.isfinite(logits).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(logits))[0])
        raise ValueError(f"logits{list(bad)} is {logits[bad]}; logits must be finite")

    flat = logits.reshape(-1, n_classes)  # [M * n_examples, n_classes]
    rows = np.arange(flat.shape[0])
    targets = np.broadcast_to(labels, logits.shape[:-1]).reshape(-1)  # [M * n_examples]
    probs = np.exp(flat - flat.max(axis=1, keepdims=True)).astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)
    p = probs[rows, targets]
    probs[rows, targets] = 0
    q = probs.sum(axis=1)
    conf = np.log(p + 1e-45) - np.log(q + 1e-45)
    return conf.reshape(logits.shape[:-1])


def _epsilon_from_counts(fp: np.ndarray, fn: np.ndarray, n_models: int, delta: float) -> np.ndarray:
    """float32 epsilon of thresholds with `fp` false positives and `fn` false negatives out of N per pool.

    Returns +inf for perfect separation and -inf for a discarded threshold.
    """
    n = np.float32(n_models)
    fpr = fp.astype(np.float32) / n
    fnr = fn.astype(np.float32) / n
    tpr = (n_models - fn).astype(np.float32) / n
    tnr = (n_models - fp).astype(np.float32) / n
    one_minus_delta = np.float32(1 - delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(one_minus_delta - fpr) - np.log(fnr), np.log(one_minus_delta - fnr) - np.log(fpr))
    eps = np.maximum(eps, np.float32(0))  # NaN (both terms undefined) stays NaN
    perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
    discarded = ~perfect & ((fpr * fnr == 0) | np.isnan(eps))
    eps[perfect] = np.inf
    eps[discarded] = -np.inf
    return eps


@functools.lru_cache(maxsize=4)
def epsilon_table(n_models: int, delta: float = DELTA) -> np.ndarray:
    """Every per-threshold epsilon N models can produce, indexed by counts.

    Args:
        n_models: Pool size N.
        delta: The delta of the (epsilon, delta) guarantee.

    Returns:
        Read-only float32 `[N + 1, N + 1]`, entry `[fp, fn]` for a threshold that puts `fp` of the negative
        pool on the positive side and `fn` of the positive pool on the negative side: +inf for perfect
        separation, -inf for a discarded threshold.
    """
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    counts = np.arange(n_models + 1)
    fp, fn = np.meshgrid(counts, counts, indexing="ij")  # [N + 1, N + 1] each
    table = _epsilon_from_counts(fp, fn, n_models, delta)
    table.setflags(write=False)
    return table


def _validate_confs(unlearned_confs: Any, retrained_confs: Any) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, value in (("unlearned_confs", unlearned_confs), ("retrained_confs", retrained_confs)):
        array = np.asarray(_to_numpy(value), dtype=np.float64)
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(f"{name} must be 2-D [n_models >= 1, n_examples >= 1], got shape {array.shape}")
        if not np.isfinite(array).all():
            model, example = np.argwhere(~np.isfinite(array))[0]
            raise ValueError(f"{name}[{model}, {example}] is {array[model, example]}; confidences must be finite")
        arrays.append(array)
    unlearned, retrained = arrays
    if unlearned.shape[0] != retrained.shape[0]:
        raise ValueError(
            f"pools differ in size: {unlearned.shape[0]} unlearned vs {retrained.shape[0]} retrained models"
        )
    if unlearned.shape[1] != retrained.shape[1]:
        raise ValueError(f"example counts differ: {unlearned.shape[1]} unlearned vs {retrained.shape[1]} retrained")
    return unlearned, retrained


class _SortedPools:
    """Both pools of one example merged and sorted, with running counts of each pool."""

    def __init__(self, pos: np.ndarray, neg: np.ndarray) -> None:
        values = np.concatenate([pos, neg])  # [2N]
        order = np.argsort(values, kind="stable")
        self.values = values[order]
        self.cum_pos = np.concatenate([[0], np.cumsum(order < len(pos))])  # [2N + 1]
        self.cum_neg = np.arange(len(values) + 1) - self.cum_pos

    def below(self, thresholds: np.ndarray, inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
        """Counts of pos and neg values `< t` (or `<= t` if `inclusive`) for every threshold."""
        index = np.searchsorted(self.values, thresholds, side="right" if inclusive else "left")
        return self.cum_pos[index], self.cum_neg[index]


def _double_threshold_counts(
    pools: _SortedPools, pos: np.ndarray, neg: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fp, fn) of every (left, right) threshold pair; positive means `t_l <= c <= t_r`."""
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    width = neg_range if pos_range > neg_range else pos_range
    peaky_is_neg = pos_range >= neg_range  # the peakier pool is called positive by this family
    peaky = neg if peaky_is_neg else pos
    lo, hi = peaky.min() + width - BUFFER, peaky.max() + BUFFER
    right = np.linspace(lo, hi, math.ceil((hi - lo) * THRESHOLDS_PER_UNIT))  # [R]
    left = np.linspace(right - width - BUFFER, right - width + BUFFER, NUM_LEFT_THRESHOLDS, axis=1)  # [R, 400]
    le_pos, le_neg = pools.below(right, inclusive=True)
    lt_pos, lt_neg = pools.below(left, inclusive=False)
    inside_pos = np.maximum(le_pos[:, None] - lt_pos, 0)  # [R, 400]
    inside_neg = np.maximum(le_neg[:, None] - lt_neg, 0)
    if peaky_is_neg:
        return inside_pos, n - inside_neg
    return inside_neg, n - inside_pos


def _single_threshold_counts(pools: _SortedPools, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fp, fn) of every single threshold on the float32 grid; positive means `c >= t`."""
    lo, hi = float(pools.values[0]), float(pools.values[-1])
    grid = torch.linspace(lo, hi, math.ceil((hi - lo) * THRESHOLDS_PER_UNIT), dtype=torch.float32)
    below_pos, below_neg = pools.below(grid.numpy().astype(np.float64), inclusive=False)
    return n - below_neg, below_pos


def _example_epsilon(pos: np.ndarray, neg: np.ndarray, delta: float, cap: float) -> float:
    n = len(pos)
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    if pos_range == 0 and neg_range == 0:
        return 0.0 if pos[0] == neg[0] else cap
    largest, smallest = max(pos_range, neg_range), min(pos_range, neg_range)
    if smallest / largest < PEAKY_RATIO:
        return cap
    pools = _SortedPools(pos, neg)
    best = -np.inf
    for fp, fn in (_double_threshold_counts(pools, pos, neg, n), _single_threshold_counts(pools, n)):
        if n <= MAX_TABLE_MODELS:
            eps = epsilon_table(n, delta).reshape(-1)[fp * (n + 1) + fn]
        else:
            eps = _epsilon_from_counts(fp, fn, n, delta)
        if eps.size:
            best = max(best, float(eps.max()))
    return float(min(max(best, 0.0), cap))


def per_example_epsilons(
    unlearned_confs: Any, retrained_confs: Any, delta: float = DELTA, cap: float = EPSILON_CAP
) -> np.ndarray:
    """The challenge's epsilon of every forget example.

    The pool with the larger median is positive. An example whose smaller pool range is below 1% of the
    larger gets `cap` (one pool is much peakier). Otherwise epsilon is the largest over the double- and
    single-threshold families, clipped to `[0, cap]`. See the module docstring for the edge cases.

    Args:
        unlearned_confs: `[N, n_examples]` logit-scaled confidences under the unlearned models.
        retrained_confs: `[N, n_examples]` the same under the retrained models.
        delta: The delta of the (epsilon, delta) guarantee.
        cap: Largest epsilon reported.

    Returns:
        float64 `[n_examples]`.
    """
    if not 0 <= delta < 1:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    if not cap > 0:
        raise ValueError(f"cap must be positive, got {cap}")
    unlearned, retrained = _validate_confs(unlearned_confs, retrained_confs)
    retrained_is_pos = np.median(retrained, axis=0) > np.median(unlearned, axis=0)  # [n_examples]
    pos = np.where(retrained_is_pos, retrained, unlearned)  # [N, n_examples]
    neg = np.where(retrained_is_pos, unlearned, retrained)
    return np.array([_example_epsilon(pos[:, i], neg[:, i], delta, cap) for i in range(pos.shape[1])])


def max_forget_epsilon(n_models: int) -> float:
    """`ceil(ln(N - 1))`, the end of the last scoring bucket (7 for N = 512); -inf for N = 1."""
    if n_models < 1:
        raise ValueError(f"n_models must be >= 1, got {n_models}")
    if n_models == 1:
        return -math.inf
    return float(np.ceil(np.log(n_models - 1)))


def forget_buckets(n_models: int) -> list[tuple[float, float]]:
    """The scoring buckets for N models as `(start, points)`: width 0.5 from 0, bucket k worth `2**-k`.

    Buckets exist while `start + 0.5 <= ceil(ln(N - 1))`: 14 for N = 512, none for N < 3.
    """
    max_eps = max_forget_epsilon(n_models)
    buckets = []
    start, points = 0.0, 1.0
    while start + BUCKET_WIDTH <= max_eps:
        buckets.append((start, points))
        start, points = start + BUCKET_WIDTH, points / 2
    return buckets


def forget_score_from_epsilons(epsilons: Any, n_models: int) -> float:
    """Mean points of the per-example epsilons: an example scores the first bucket with `eps < start + 0.5`.

    Args:
        epsilons: `[n_examples]` per-example epsilons (non-negative).
        n_models: Pool size N the epsilons were measured with.
    """
    eps = np.asarray(_to_numpy(epsilons), dtype=np.float64)
    if eps.ndim != 1 or eps.size == 0:
        raise ValueError(f"epsilons must be 1-D and non-empty, got shape {eps.shape}")
    if np.isnan(eps).any() or (eps < 0).any():
        bad = int(np.flatnonzero(np.isnan(eps) | (eps < 0))[0])
        raise ValueError(f"epsilons[{bad}] is {eps[bad]}; epsilons must be non-negative numbers")
    buckets = forget_buckets(n_models)
    ends = np.array([start + BUCKET_WIDTH for start, _ in buckets])
    points = np.array([p for _, p in buckets] + [0.0])  # past the last bucket: no points
    earned = points[np.searchsorted(ends, eps, side="right")]  # first bucket whose end exceeds eps
    return float(earned.sum()) / eps.size


def forget_score(unlearned_confs: Any, retrained_confs: Any) -> float:
    """The challenge's forget score F in [0, 1] from `[N, n_examples]` confidences of both pools."""
    epsilons = per_example_epsilons(unlearned_confs, retrained_confs)
    return forget_score_from_epsilons(epsilons, np.shape(_to_numpy(unlearned_confs))[0])


def final_score(
    forget_score: float,
    retain_acc_unlearned: float,
    retain_acc_retrained: float,
    test_acc_unlearned: float,
    test_acc_retrained: float,
) -> float:
    """`F * (retain acc unlearned / retrained) * (test acc unlearned / retrained)`.

    Args:
        forget_score: F from `forget_score`.
        retain_acc_unlearned: Mean retain-set accuracy of the unlearned pool, in percent.
        retain_acc_retrained: Mean retain-set accuracy of the retrained pool, in percent.
        test_acc_unlearned: Mean test-set accuracy of the unlearned pool, in percent.
        test_acc_retrained: Mean test-set accuracy of the retrained pool, in percent.
    """
    values = {
        "forget_score": forget_score,
        "retain_acc_unlearned": retain_acc_unlearned,
        "retain_acc_retrained": retain_acc_retrained,
        "test_acc_unlearned": test_acc_unlearned,
        "test_acc_retrained": test_acc_retrained,
    }
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {value}")
    if forget_score > 1:
        raise ValueError(f"forget_score must be in [0, 1], got {forget_score}")
    for name in ("retain_acc_retrained", "test_acc_retrained"):
        if values[name] == 0:
            raise ValueError(f"{name} must be positive to form a ratio, got 0")
    return forget_score * (retain_acc_unlearned / retain_acc_retrained) * (test_acc_unlearned / test_acc_retrained)
