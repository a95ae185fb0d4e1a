"""KLoM and ToW: two more ways to compare a pool of unlearned models with a pool of retrained ones. Pure NumPy.

- **KLoM** (KL divergence of margins; Georgiev et al., "Attribute-to-Delete", 2024), per example: the margins
  of the N unlearned and the N' retrained models on that example (margin = logit of the true class minus the
  logsumexp of the others, which is exactly the challenge's logit-scaled confidence), clipped to ±`clip`, are
  binned into `bins` equal-width bins over the combined range of both pools; with p the unlearned share and q
  the retrained share per bin, and q floored at 1e-5 where p > 0,

      KLoM = Σ_{bins with p > 0} p · log(p / q).

  0 means the two pools put the same share of models in every bin; it grows as the unlearned margins land
  where retrained ones do not (at most log(1e5) ≈ 11.5, all unlearned mass in bins without retrained mass).
  Bins are half-open `[e_k, e_{k+1})` except the last, which holds the maximum (NumPy's histogram rule).
  Defined edge cases: empty bins contribute nothing (p = 0) or are floored (q = 0 < p); when both pools are
  one and the same constant (combined range zero) every value falls in one bin and KLoM = 0; two pools with
  the same values in any order give KLoM = 0.
- **ToW** (tug of war; Zhao et al., 2024): `Π over forget, retain, test of (1 - |acc_U - acc_R|)`, accuracies as
  fractions; 1 means the unlearned and retrained models are equally accurate on all three sets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

Q_FLOOR = 1e-5
"""The retrained share used where a bin holds unlearned but no retrained margins."""

TOW_SETS = ("forget", "retain", "test")


def _pool(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} margins must be a [models, examples] array, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} margins hold no models (shape {array.shape})")
    if np.isnan(array).any():
        raise ValueError(f"{name} margins contain NaN")
    return array


def margin_bins(unlearned: np.ndarray, retrained: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every margin, `[N, n]` and `[N', n]`, on each example's equal-width bins over both pools."""
    lo = np.minimum(unlearned.min(axis=0), retrained.min(axis=0))  # [n]
    hi = np.maximum(unlearned.max(axis=0), retrained.max(axis=0))  # [n]
    inner = np.linspace(lo, hi, bins + 1, axis=1)[:, 1:-1]  # [n, bins - 1]: the edges between bins

    def index(pool: np.ndarray) -> np.ndarray:
        # The number of inner edges at or below a value is its bin; the maximum falls in the last bin.
        return (pool[:, :, None] >= inner[None]).sum(axis=2)  # [models, n]

    return index(unlearned), index(retrained)


def klom(unlearned: np.ndarray, retrained: np.ndarray, bins: int = 20, clip: float = 100.0) -> np.ndarray:
    """KLoM of every example.

    Args:
        unlearned: Margins of the unlearned models, `[N, n]` (N models, n examples).
        retrained: Margins of the retrained models, `[N', n]` (N' may differ from N).
        bins: Number of equal-width bins over each example's combined range.
        clip: Margins are clipped to `[-clip, clip]` first.

    Returns:
        `[n]` float64 KLoM values (≥ 0).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if not clip > 0:
        raise ValueError(f"clip must be positive, got {clip}")
    u, r = _pool(unlearned, "unlearned"), _pool(retrained, "retrained")
    if u.shape[1] != r.shape[1]:
        raise ValueError(f"unlearned and retrained margins cover different examples: {u.shape} vs {r.shape}")
    u, r = np.clip(u, -clip, clip), np.clip(r, -clip, clip)
    u_bin, r_bin = margin_bins(u, r, bins)
    edges = np.arange(bins)
    p = (u_bin[:, :, None] == edges).sum(axis=0) / u.shape[0]  # [n, bins]
    q = (r_bin[:, :, None] == edges).sum(axis=0) / r.shape[0]  # [n, bins]
    used = p > 0
    ratio = np.where(used, p / np.where(used, np.maximum(q, Q_FLOOR), 1.0), 1.0)
    return np.where(used, p * np.log(ratio), 0.0).sum(axis=1)


def klom_summary(values: np.ndarray) -> dict[str, float]:
    """`{"mean", "p95"}` of per-example KLoM values (the 95th percentile by linear interpolation)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError("cannot summarise KLoM over no examples")
    return {"mean": float(array.mean()), "p95": float(np.percentile(array, 95))}


def tow(unlearned_acc: Mapping[str, float], retrained_acc: Mapping[str, float]) -> float:
    """Tug of war: `Π over forget, retain, test of (1 - |acc_U - acc_R|)`.

    Args:
        unlearned_acc: Mean accuracy of the unlearned models per set, as fractions in [0, 1].
        retrained_acc: The same for the retrained models.
    """
    product = 1.0
    for name in TOW_SETS:
        for label, accs in (("unlearned", unlearned_acc), ("retrained", retrained_acc)):
            if name not in accs:
                raise ValueError(f"{label} accuracies have no {name!r} entry (need {', '.join(TOW_SETS)})")
            if not 0.0 <= accs[name] <= 1.0:
                raise ValueError(f"{label} {name} accuracy must be a fraction in [0, 1], got {accs[name]}")
        product *= 1.0 - abs(unlearned_acc[name] - retrained_acc[name])
    return float(product)
