import math

import numpy as np
import pytest
import torch
from challenge_oracle import (
    double_threshold_grid,
    oracle_confidence,
    oracle_epsilons,
    oracle_forget_score,
    oracle_forget_score_from_epsilons,
    single_threshold_grid,
)

from imgunlearn.challenge import scoring
from imgunlearn.challenge.scoring import (
    epsilon_table,
    final_score,
    forget_buckets,
    forget_score,
    forget_score_from_epsilons,
    logit_scaled_confidence,
    max_forget_epsilon,
    per_example_epsilons,
)

DELTA = 1e-5


def assert_matches_oracle(unlearned, retrained):
    fast = per_example_epsilons(unlearned, retrained)
    expected = oracle_epsilons(unlearned, retrained)
    np.testing.assert_allclose(fast, expected, rtol=0, atol=1e-6)  # float32 epsilons: a 1-2 ulp budget
    assert forget_score(unlearned, retrained) == oracle_forget_score(unlearned, retrained)
    return fast


def pools(seed, n_models, n_examples, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    unlearned = rng.normal(shift, scale, size=(n_models, n_examples)) + rng.normal(0, 2, size=n_examples)
    retrained = rng.normal(0.0, 1.0, size=(n_models, n_examples)) + rng.normal(0, 2, size=n_examples)
    return unlearned, retrained


# --- logit-scaled confidence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_confidence_matches_oracle_for_numpy_and_torch(dtype):
    rng = np.random.default_rng(0)
    logits = (rng.normal(0, 6, size=(3, 20, 10))).astype(dtype)  # [models, examples, classes]
    labels = rng.integers(0, 10, size=20)
    expected = np.stack([oracle_confidence(model_logits, labels) for model_logits in logits])
    for value in (logits, torch.from_numpy(logits)):
        conf = logit_scaled_confidence(value, torch.from_numpy(labels) if torch.is_tensor(value) else labels)
        assert conf.dtype == np.float64 and conf.shape == (3, 20)
        np.testing.assert_allclose(conf, expected, rtol=1e-12, atol=1e-12)


def test_confidence_values():
    # Two classes: log(p / q) is exactly the logit margin.
    logits = np.array([[2.0, -1.5], [0.0, 0.0], [-3.0, 4.0]])
    np.testing.assert_allclose(logit_scaled_confidence(logits, np.array([0, 1, 0])), [3.5, 0.0, -7.0], atol=1e-12)
    # Ten classes in float64: z_y - logsumexp(other logits).
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, size=(5, 10))
    y = np.arange(5)
    others = np.array([np.log(np.exp(np.delete(z[i], y[i])).sum()) for i in range(5)])
    np.testing.assert_allclose(logit_scaled_confidence(z, y), z[np.arange(5), y] - others, atol=1e-9)
    # float32 logits agree with float64 to float32 precision.
    np.testing.assert_allclose(
        logit_scaled_confidence(z.astype(np.float32), y), logit_scaled_confidence(z, y), atol=1e-5
    )
    # A saturated example stops at -log(1e-45), about 103.6, instead of overflowing.
    saturated = logit_scaled_confidence(np.array([[500.0, 0.0]]), np.array([0]))
    assert saturated[0] == pytest.approx(-math.log(1e-45))


def test_confidence_rejects_bad_input():
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        logit_scaled_confidence(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"labels\[1\] = 3 is outside \[0, 3\)"):
        logit_scaled_confidence(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"logits\[1, 2\] is nan"):
        logit_scaled_confidence(np.array([[0.0, 1, 2], [0, 1, np.nan]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        logit_scaled_confidence(np.zeros((2, 3)), np.array([0.0, 1.0]))


# --- fast scorer against the oracle --------------------------------------------------------------------------


@pytest.mark.parametrize("n_models", [3, 8, 32, 64])
def test_matches_oracle_on_random_pools(n_models):
    unlearned, retrained = pools(n_models, n_models, 4, shift=0.7, scale=1.3)
    assert_matches_oracle(unlearned, retrained)


def test_matches_oracle_with_ties_and_equal_medians():
    rng = np.random.default_rng(3)
    unlearned = rng.integers(-4, 5, size=(16, 6)) * 0.25  # many exact ties within and across pools
    retrained = rng.integers(-4, 5, size=(16, 6)) * 0.25
    retrained[:, 0] = unlearned[:, 0][::-1]  # same values in another order: equal medians
    assert_matches_oracle(unlearned, retrained)


def test_identical_pools_are_indistinguishable():
    unlearned, _ = pools(4, 32, 5)
    eps = assert_matches_oracle(unlearned, unlearned.copy())
    np.testing.assert_array_equal(eps, 0.0)
    assert forget_score(unlearned, unlearned) == 1.0


def test_peaky_pools():
    rng = np.random.default_rng(5)
    retrained = rng.normal(size=(24, 3))
    unlearned = rng.normal(size=(24, 3))
    unlearned[:, 0] = 1.0 + rng.uniform(0, 0.009 * np.ptp(retrained[:, 0]), size=24)  # range ratio < 1%: peaky
    # 20% of the other range, amid the other pool: not peaky, and not separable either.
    unlearned[:, 1] = np.median(retrained[:, 1]) + rng.uniform(-0.1, 0.1, size=24) * np.ptp(retrained[:, 1])
    unlearned[:, 2] = 7.0  # constant beside a spread pool
    eps = assert_matches_oracle(unlearned, retrained)
    assert eps[0] == 50.0 and eps[2] == 50.0
    assert eps[1] < 50.0


def test_values_exactly_on_grid_points():
    rng = np.random.default_rng(6)
    n_models, n_examples = 24, 5
    unlearned, retrained = pools(6, n_models, n_examples, shift=0.3)
    for i in range(n_examples):
        u, r = unlearned[:, i], retrained[:, i]
        pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        right, lefts, _ = double_threshold_grid(pos, neg)
        single = single_threshold_grid(pos, neg).astype(np.float64)
        for pool in (u, r):
            lo, hi = pool.min(), pool.max()
            candidates = np.concatenate([right, np.concatenate(lefts), single])
            candidates = candidates[(candidates > lo) & (candidates < hi)]
            interior = np.flatnonzero((pool > lo) & (pool < hi))  # keep each pool's range and hence every grid
            chosen = rng.choice(interior, size=len(interior) // 2, replace=False)
            pool[chosen] = rng.choice(candidates, size=len(chosen))
        # Both grids are unchanged (medians may flip, ranges do not), so the new values sit on thresholds.
        new_pos, new_neg = (r, u) if np.median(r) > np.median(u) else (u, r)
        np.testing.assert_array_equal(double_threshold_grid(new_pos, new_neg)[0], right)
        np.testing.assert_array_equal(single_threshold_grid(new_pos, new_neg), single)
    assert_matches_oracle(unlearned, retrained)


def test_counts_on_grid_points_match_brute_force():
    rng = np.random.default_rng(7)
    pos = rng.normal(1, 1, size=16)
    neg = rng.normal(0, 1.5, size=16)
    right, lefts, swapped = double_threshold_grid(pos, neg)
    single = single_threshold_grid(pos, neg).astype(np.float64)
    for pool, candidates in ((pos, single), (neg, right), (neg[::-1], np.concatenate(lefts))):
        candidates = candidates[(candidates > pool.min()) & (candidates < pool.max())]
        interior = [i for i in range(len(pool)) if pool.min() < pool[i] < pool.max()][:3]
        pool[interior] = candidates[[0, len(candidates) // 2, -1]]  # values exactly on thresholds
    # The replaced values are interior, so neither grid moved, and the inclusive comparisons matter.
    np.testing.assert_array_equal(single_threshold_grid(pos, neg), single)
    np.testing.assert_array_equal(double_threshold_grid(pos, neg)[0], right)
    assert ((pos[:, None] < single).sum(0) != (pos[:, None] <= single).sum(0)).any()
    assert ((neg[:, None] <= right).sum(0) != (neg[:, None] < right).sum(0)).any()
    pools_ = scoring._SortedPools(pos, neg)
    fp, fn = scoring._single_threshold_counts(pools_, 16)
    np.testing.assert_array_equal(fp, (neg[:, None] >= single[None, :]).sum(0))
    np.testing.assert_array_equal(fn, (pos[:, None] < single[None, :]).sum(0))
    fp, fn = scoring._double_threshold_counts(pools_, pos, neg, 16)
    peaky, other = (neg, pos) if swapped else (pos, neg)
    t_l, t_r = np.stack(lefts), right[:, None]  # [R, 400], [R, 1]
    np.testing.assert_array_equal(fp, sum((t_l <= v) & (v <= t_r) for v in other))
    np.testing.assert_array_equal(fn, 16 - sum((t_l <= v) & (v <= t_r) for v in peaky))


def test_both_pools_constant():
    same = per_example_epsilons(np.full((8, 1), 2.5), np.full((8, 1), 2.5))
    different = per_example_epsilons(np.full((8, 2), 2.5), np.full((8, 2), 2.501))
    assert same.tolist() == [0.0] and different.tolist() == [50.0, 50.0]
    np.testing.assert_array_equal(oracle_epsilons(np.full((8, 2), 2.5), np.full((8, 2), 2.501)), different)
    assert per_example_epsilons(np.full((8, 1), 1.0), np.full((8, 1), 3.0), cap=20.0).tolist() == [20.0]
    # A single model per pool is always "both constant".
    assert per_example_epsilons([[1.0, 4.0]], [[1.0, 3.0]]).tolist() == [0.0, 50.0]


def test_every_threshold_discarded_gives_zero():
    # Two pools closer together than one grid step: every threshold has fp = 0 or fn = 0 without separating.
    unlearned, retrained = np.array([[0.0], [0.001]]), np.array([[0.002], [0.005]])
    pos, neg = retrained[:, 0], unlearned[:, 0]
    right, lefts, swapped = double_threshold_grid(pos, neg)
    peaky, other = (neg, pos) if swapped else (pos, neg)
    t_l, t_r = np.stack(lefts), right[:, None]  # [R, 400], [R, 1]
    fn = 2 - sum(((t_l <= v) & (v <= t_r)).astype(int) for v in peaky)
    fp = sum(((t_l <= v) & (v <= t_r)).astype(int) for v in other)
    single = single_threshold_grid(pos, neg).astype(np.float64)
    single_fp, single_fn = (neg[:, None] >= single).sum(0), (pos[:, None] < single).sum(0)
    for fp_, fn_ in ((fp, fn), (single_fp, single_fn)):
        assert np.all((fp_ == 0) | (fn_ == 0)) and not np.any((fp_ == 0) & (fn_ == 0))
    assert per_example_epsilons(unlearned, retrained).tolist() == [0.0]


def test_table_and_direct_routes_agree(monkeypatch):
    unlearned, retrained = pools(8, 32, 6, shift=0.5)
    expected = per_example_epsilons(unlearned, retrained)
    monkeypatch.setattr(scoring, "MAX_TABLE_MODELS", 0)
    np.testing.assert_array_equal(per_example_epsilons(unlearned, retrained), expected)


@pytest.mark.slow
def test_matches_oracle_at_challenge_size():
    unlearned, retrained = pools(9, 512, 3, shift=0.4, scale=1.2)
    assert_matches_oracle(unlearned, retrained)


# --- properties from the spec --------------------------------------------------------------------------------


def test_swapping_pools_keeps_epsilons_where_medians_differ():
    unlearned, retrained = pools(10, 64, 30, shift=0.2)
    retrained[:, 0] = unlearned[::-1, 0]  # equal medians: the positive side is not symmetric there
    forward = per_example_epsilons(unlearned, retrained)
    backward = per_example_epsilons(retrained, unlearned)
    differ = np.median(unlearned, 0) != np.median(retrained, 0)
    assert not differ[0] and differ[1:].all()
    np.testing.assert_array_equal(forward[differ], backward[differ])


def test_same_distribution_scores_well_above_separated_pools():
    rng = np.random.default_rng(11)
    retrained = rng.normal(size=(64, 40))
    same = forget_score(rng.normal(size=(64, 40)), retrained)
    shifted = forget_score(rng.normal(1.5, 1.0, size=(64, 40)), retrained)  # original-vs-retrain-like
    separated = forget_score(rng.normal(8.0, 1.0, size=(64, 40)), retrained)
    assert same > 0.1 and same > 4 * shifted and separated == 0.0


def test_one_crossing_each_way_gives_the_largest_finite_epsilon():
    n = 64
    rng = np.random.default_rng(12)
    unlearned = rng.uniform(10, 11, size=(n, 2))
    retrained = rng.uniform(0, 1, size=(n, 2))
    unlearned[0], retrained[0] = -5.0, 15.0  # one model of each pool lies beyond the other pool
    eps = per_example_epsilons(unlearned, retrained)
    np.testing.assert_allclose(eps, math.log(n - 1 - n * DELTA), atol=1e-5)
    assert eps[0] == epsilon_table(n)[np.isfinite(epsilon_table(n))].max()
    np.testing.assert_array_equal(eps, oracle_epsilons(unlearned, retrained))


def test_epsilon_table_entries():
    table = epsilon_table(10)
    assert table.shape == (11, 11) and table.dtype == np.float32
    assert table[0, 0] == np.inf  # perfect separation
    assert table[0, 3] == -np.inf and table[4, 0] == -np.inf  # one rate zero: discarded
    assert table[10, 10] == -np.inf  # both terms take the log of a negative number
    np.testing.assert_array_equal(table, table.T)
    expected = np.log(np.float32(1 - DELTA) - np.float32(0.2)) - np.log(np.float32(0.1))
    assert table[2, 1] == expected and table[2, 1].dtype == np.float32
    assert table[5, 5] == 0.0  # a coin flip proves nothing
    with pytest.raises(ValueError, match="n_models must be >= 1, got 0"):
        epsilon_table(0)


# --- forget score and final score ----------------------------------------------------------------------------


def test_buckets():
    buckets = forget_buckets(512)
    assert max_forget_epsilon(512) == 7.0 and len(buckets) == 14
    assert buckets[0] == (0.0, 1.0) and buckets[-1] == (6.5, 2.0**-13)
    assert forget_buckets(3) == [(0.0, 1.0), (0.5, 0.5)]
    assert forget_buckets(2) == [] and forget_buckets(1) == []


def test_forget_score_from_epsilons_bucket_edges():
    eps = np.array([0.0, 0.4999, 0.5, 1.0, 6.4999, 6.5, 6.9999, 7.0, 50.0])
    expected = (1 + 1 + 0.5 + 0.25 + 2.0**-12 + 2.0**-13 + 2.0**-13 + 0 + 0) / len(eps)
    assert forget_score_from_epsilons(eps, 512) == expected
    rng = np.random.default_rng(13)
    random_eps = np.concatenate([rng.uniform(0, 8, 200), rng.integers(0, 16, 50) * 0.5])
    for n in (3, 8, 64, 512, 10_000):
        assert forget_score_from_epsilons(random_eps, n) == oracle_forget_score_from_epsilons(random_eps, n)


def test_fewer_than_three_models_score_zero():
    assert forget_score_from_epsilons(np.zeros(5), 2) == 0.0
    assert forget_score(np.zeros((2, 4)), np.zeros((2, 4))) == 0.0
    assert forget_score(np.ones((1, 4)), np.ones((1, 4))) == 0.0


def test_final_score():
    assert final_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.36)
    assert final_score(0.2, 95.0, 95.0, 90.0, 90.0) == 0.2
    with pytest.raises(ValueError, match="retain_acc_retrained must be positive"):
        final_score(0.5, 90.0, 0.0, 80.0, 100.0)
    with pytest.raises(ValueError, match=r"test_acc_unlearned must be a finite non-negative number, got nan"):
        final_score(0.5, 90.0, 100.0, float("nan"), 100.0)
    with pytest.raises(ValueError, match=r"forget_score must be in \[0, 1\]"):
        final_score(1.5, 90.0, 100.0, 80.0, 100.0)


# --- validation ----------------------------------------------------------------------------------------------


def test_scorer_rejects_bad_input():
    good = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"unlearned_confs must be 2-D"):
        per_example_epsilons(np.zeros(4), good)
    with pytest.raises(ValueError, match=r"retrained_confs must be 2-D.*\(0, 3\)"):
        per_example_epsilons(good, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="pools differ in size: 4 unlearned vs 5 retrained"):
        per_example_epsilons(good, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="example counts differ: 3 unlearned vs 2 retrained"):
        per_example_epsilons(good, np.zeros((4, 2)))
    bad = good.copy()
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"retrained_confs\[2, 1\] is inf"):
        forget_score(good, bad)
    with pytest.raises(ValueError, match=r"epsilons\[1\] is nan"):
        forget_score_from_epsilons(np.array([0.0, np.nan]), 64)
    with pytest.raises(ValueError, match="delta must be in"):
        per_example_epsilons(good, good, delta=1.0)


def test_accepts_torch_tensors():
    unlearned, retrained = pools(14, 16, 3, shift=0.5)
    np.testing.assert_array_equal(
        per_example_epsilons(torch.from_numpy(unlearned), torch.from_numpy(retrained)),
        per_example_epsilons(unlearned, retrained),
    )
