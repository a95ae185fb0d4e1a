"""A direct transcription of the challenge scoring spec, used as the test oracle for the fast scorer.

Every model is compared with every threshold, step by step as the spec describes; nothing is clever.
It is slow (about a second per example at N = 512) and only used by the tests and the scorer benchmark.
The edge cases the spec leaves to the project are defined as in `imgunlearn.challenge.scoring`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DELTA = 1e-5
CAP = 50.0
PER_UNIT = 100
BUFFER = 2.0
ROWS_PER_CHUNK = 32


def oracle_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logit-scaled confidence of `[n, n_classes]` logits (max subtracted and exp in the logits' dtype)."""
    logits = np.asarray(logits)
    confs = np.empty(len(logits))
    for i, (z, y) in enumerate(zip(logits, labels, strict=True)):
        probs = np.exp(z - z.max()).astype(np.float64)
        probs = probs / probs.sum()
        p = probs[y]
        probs[y] = 0
        q = probs.sum()
        confs[i] = np.log(p + 1e-45) - np.log(q + 1e-45)
    return confs


def double_threshold_grid(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], bool]:
    """(right thresholds, left thresholds per right one, whether pos and neg were swapped)."""
    pos_diff = pos.max() - pos.min()
    neg_diff = neg.max() - neg.min()
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    swapped = bool(pos_diff >= neg_diff)
    if swapped:
        pos, neg = neg, pos
    width = smallest
    lo = pos.min() + width - BUFFER
    hi = pos.max() + BUFFER
    right = np.linspace(lo, hi, int(np.ceil((hi - lo) * PER_UNIT)))
    n_left = int(np.ceil(2 * BUFFER * PER_UNIT))
    lefts = [np.linspace(t_r - width - BUFFER, t_r - width + BUFFER, n_left) for t_r in right]
    return right, lefts, swapped


def single_threshold_grid(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The float32 grid of the single-threshold family."""
    pooled = np.concatenate([pos, neg])
    lo, hi = pooled.min(), pooled.max()
    n = int(np.ceil((hi - lo) * PER_UNIT))
    return torch.linspace(float(lo), float(hi), n).numpy()  # torch's default dtype: float32


def _rates(pos_predicted_pos: np.ndarray, neg_predicted_pos: np.ndarray, n: int):
    """float32 (tpr, fnr, fpr, tnr) from `[N, T]` boolean predictions."""
    n32 = np.float32(n)
    tpr = np.sum(pos_predicted_pos, axis=0).astype(np.float32) / n32
    fnr = np.sum(~pos_predicted_pos, axis=0).astype(np.float32) / n32
    fpr = np.sum(neg_predicted_pos, axis=0).astype(np.float32) / n32
    tnr = np.sum(~neg_predicted_pos, axis=0).astype(np.float32) / n32
    return tpr, fnr, fpr, tnr


def _threshold_epsilons(tpr, fnr, fpr, tnr, delta: float) -> np.ndarray:
    """Per-threshold float32 epsilon; +inf = perfect separation, NaN = discarded.

    A term taking the log of a non-positive number is ignored; with both ignored the threshold is discarded.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.float32(1 - delta) - fpr) - np.log(fnr)
        b = np.log(np.float32(1 - delta) - fnr) - np.log(fpr)
    eps = np.where(np.isnan(a), b, np.where(np.isnan(b), a, np.maximum(a, b)))
    eps = np.where(np.isnan(eps), eps, np.maximum(eps, np.float32(0)))
    eps = np.where(fpr * fnr == 0, np.float32(np.nan), eps)
    eps = np.where((fpr + fnr == 0) & (tpr + tnr == 2), np.float32(np.inf), eps)
    return eps.astype(np.float32)


def oracle_example_epsilon(pos: np.ndarray, neg: np.ndarray, delta: float = DELTA, cap: float = CAP) -> float:
    """Epsilon of one example; `pos` is the pool with the larger median."""
    n = len(pos)
    pos_diff = pos.max() - pos.min()
    neg_diff = neg.max() - neg.min()
    if pos_diff == 0 and neg_diff == 0:
        return 0.0 if pos[0] == neg[0] else cap
    largest = pos_diff if pos_diff > neg_diff else neg_diff
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if smallest / largest < 0.01:
        return cap

    surviving = []
    right, lefts, swapped = double_threshold_grid(pos, neg)
    peaky, other = (neg, pos) if swapped else (pos, neg)
    for start in range(0, len(right), ROWS_PER_CHUNK):
        t_r = np.repeat(right[start : start + ROWS_PER_CHUNK], len(lefts[0]))
        t_l = np.concatenate(lefts[start : start + ROWS_PER_CHUNK])
        peaky_pp = (t_l[None, :] <= peaky[:, None]) & (peaky[:, None] <= t_r[None, :])  # [N, T]
        other_pp = (t_l[None, :] <= other[:, None]) & (other[:, None] <= t_r[None, :])
        eps = _threshold_epsilons(*_rates(peaky_pp, other_pp, n), delta)
        surviving.append(eps[~np.isnan(eps)])

    grid = single_threshold_grid(pos, neg)
    pos_pp = pos[:, None] >= grid[None, :]  # float64 values against float32 thresholds
    neg_pp = neg[:, None] >= grid[None, :]
    eps = _threshold_epsilons(*_rates(pos_pp, neg_pp, n), delta)
    surviving.append(eps[~np.isnan(eps)])

    surviving = np.concatenate(surviving)
    if surviving.size == 0:
        return 0.0
    return float(np.clip(surviving.max(), 0, cap))


def oracle_epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA, cap: float = CAP):
    """Per-example epsilons of `[N, n_examples]` confidences."""
    eps = []
    for i in range(unlearned.shape[1]):
        u, r = unlearned[:, i], retrained[:, i]
        pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        eps.append(oracle_example_epsilon(pos, neg, delta, cap))
    return np.array(eps)


def oracle_forget_score_from_epsilons(eps: np.ndarray, n_models: int) -> float:
    max_eps = math.ceil(math.log(n_models - 1)) if n_models > 2 else 0
    buckets = {}
    start, points = 0.0, 1.0
    while start + 0.5 <= max_eps:
        buckets[start] = points
        points /= 2
        start += 0.5
    total = 0.0
    for e in eps:
        for start, points in buckets.items():
            if e < start + 0.5:
                total += points
                break
    return total / len(eps)


def oracle_forget_score(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    return oracle_forget_score_from_epsilons(oracle_epsilons(unlearned, retrained), unlearned.shape[0])
