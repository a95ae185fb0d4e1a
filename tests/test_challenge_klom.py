"""KLoM and ToW against direct transcriptions of their definitions, and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imgunlearn.challenge.klom import klom, klom_summary, tow
from imgunlearn.challenge.scoring import logit_scaled_confidence


def klom_loop(unlearned, retrained, bins=20, clip=100.0):
    """The definition, one example at a time: clip, equal-width bins over both pools, Σ_{p>0} p log(p / max(q, 1e-5))."""
    values = []
    for i in range(unlearned.shape[1]):
        u = np.clip(unlearned[:, i], -clip, clip)
        r = np.clip(retrained[:, i], -clip, clip)
        lo, hi = min(u.min(), r.min()), max(u.max(), r.max())
        u_counts, _ = np.histogram(u, bins=bins, range=(lo, hi))
        r_counts, _ = np.histogram(r, bins=bins, range=(lo, hi))
        total = 0.0
        for u_count, r_count in zip(u_counts, r_counts, strict=True):
            p, q = u_count / len(u), r_count / len(r)
            if p > 0:
                total += p * math.log(p / max(q, 1e-5))
        values.append(total)
    return np.array(values)


def test_klom_matches_the_transcription_on_random_pools():
    rng = np.random.default_rng(0)
    n = 60
    shift = rng.uniform(-3, 3, n)  # some examples far apart (empty retrained bins), some overlapping
    unlearned = rng.normal(shift, rng.uniform(0.1, 3, n), size=(32, n))
    retrained = rng.normal(0.0, 1.0, size=(24, n))  # a different pool size
    unlearned[:, :5] *= 50  # beyond the clip for some models
    expected = klom_loop(unlearned, retrained)
    got = klom(unlearned, retrained)
    assert got.shape == (n,)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert (got > 0.05).mean() > 0.5  # the pools differ, so most values are clearly positive
    np.testing.assert_allclose(klom(unlearned, retrained, bins=7, clip=5.0), klom_loop(unlearned, retrained, 7, 5.0),
                               rtol=1e-12, atol=1e-12)


def test_klom_on_values_exactly_on_bin_edges():
    # Integer margins 0..20 over the range [0, 20]: every value but the extremes sits on an edge.
    unlearned = np.arange(21, dtype=float)[:, None].repeat(3, axis=1)  # [21, 3]
    retrained = np.array([0.0, 20.0, 5.0, 5.0])[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(klom(unlearned, retrained), klom_loop(unlearned, retrained), rtol=1e-12)


def test_klom_empty_bins_by_hand():
    # Range [0, 10]: unlearned 3/4 in the first bin, 1/4 in the last; retrained all in the last.
    unlearned = np.array([[0.0], [0.0], [0.0], [10.0]])
    retrained = np.array([[10.0], [10.0], [10.0], [10.0]])
    expected = 0.75 * math.log(0.75 / 1e-5) + 0.25 * math.log(0.25 / 1.0)
    assert klom(unlearned, retrained)[0] == pytest.approx(expected, rel=1e-12)
    # Retrained mass where there is no unlearned mass contributes nothing: swapping gives a different value.
    assert klom(retrained, unlearned)[0] == pytest.approx(1.0 * math.log(1.0 / 0.25), rel=1e-12)


def test_klom_constant_and_identical_pools():
    same = np.full((8, 4), 5.0)
    np.testing.assert_array_equal(klom(same, same.copy()), np.zeros(4))  # combined range zero: one bin, KLoM 0
    apart = klom(np.full((8, 1), 5.0), np.full((6, 1), 7.0))  # two constants: first bin vs last bin
    assert apart[0] == pytest.approx(math.log(1e5), rel=1e-12)
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(16, 10))
    np.testing.assert_allclose(klom(pool, rng.permutation(pool, axis=0)), 0.0, atol=1e-15)
    # Beyond the clip, different values become the same value.
    np.testing.assert_allclose(klom(np.full((4, 2), 1e3), np.full((4, 2), 200.0)), 0.0, atol=0)


def test_klom_margin_is_the_challenge_confidence():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=4, size=(50, 10))
    labels = rng.integers(0, 10, 50)
    others = np.where(np.eye(10, dtype=bool)[labels], -np.inf, logits)
    margin = logits[np.arange(50), labels] - np.log(np.exp(others).sum(axis=1))
    np.testing.assert_allclose(logit_scaled_confidence(torch.tensor(logits), torch.tensor(labels)), margin,
                               rtol=1e-9, atol=1e-9)


def test_klom_rejects_bad_input():
    good = np.zeros((4, 3))
    with pytest.raises(ValueError, match="different examples"):
        klom(good, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        klom(np.full((4, 3), np.nan), good)
    with pytest.raises(ValueError, match="no models"):
        klom(np.zeros((0, 3)), good)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        klom(np.zeros(4), good)
    with pytest.raises(ValueError, match="bins must be at least 1, got 0"):
        klom(good, good, bins=0)


def test_klom_summary_by_hand():
    summary = klom_summary(np.arange(101, dtype=float))
    assert summary == {"mean": 50.0, "p95": 95.0}
    with pytest.raises(ValueError, match="no examples"):
        klom_summary(np.array([]))


def tow_loop(u, r):
    product = 1.0
    for name in ("forget", "retain", "test"):
        product *= 1 - abs(u[name] - r[name])
    return product


def test_tow_matches_the_formula():
    u = {"forget": 0.5, "retain": 0.9, "test": 0.8}
    r = {"forget": 0.2, "retain": 0.95, "test": 0.85, "val": 0.1}  # other sets are ignored
    assert tow(u, r) == pytest.approx(0.7 * 0.95 * 0.95, rel=1e-12) == pytest.approx(tow_loop(u, r))
    assert tow(u, u) == 1.0
    assert tow({"forget": 1.0, "retain": 0.5, "test": 0.5}, {"forget": 0.0, "retain": 0.5, "test": 0.5}) == 0.0


def test_tow_rejects_percentages_and_missing_sets():
    u = {"forget": 0.5, "retain": 0.9, "test": 0.8}
    with pytest.raises(ValueError, match="retrained retain accuracy must be a fraction in \\[0, 1\\], got 95"):
        tow(u, {"forget": 0.2, "retain": 95, "test": 0.85})
    with pytest.raises(ValueError, match="unlearned accuracies have no 'test' entry"):
        tow({"forget": 0.5, "retain": 0.9}, u)
