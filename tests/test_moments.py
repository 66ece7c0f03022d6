"""Streaming moments against numpy and scipy on the same data."""

import math

import numpy as np
import pytest
from scipy import stats

from sqrtdk.core.moments import Moments, add_in_order, batch_means, block_power_sums


def test_power_sums_give_numpy_moments():
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 3.0, size=(10, 50)).astype(np.float32) + 1000  # large mean, skewed
    sums = np.zeros(4)
    for block in np.split(x, 5):
        sums = add_in_order(sums, block_power_sums(block[None, ...], shift=1006.0))
    m = Moments.from_power_sums(x.size, sums, shift=1006.0)
    flat = x.astype(np.float64).ravel()
    assert m.mean == pytest.approx(flat.mean(), rel=1e-12)
    assert m.variance == pytest.approx(flat.var(ddof=1), rel=1e-9)
    assert m.excess_kurtosis == pytest.approx(stats.kurtosis(flat), rel=1e-7)
    scaled = m.scaled(0.5)
    assert scaled.variance == pytest.approx(0.25 * m.variance)
    assert scaled.excess_kurtosis == pytest.approx(m.excess_kurtosis)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (40, 256), (9, 4096), (5, 8192), (3, 8193), (2, 40000)])
def test_block_power_sums_do_not_depend_on_how_many_blocks_come_at_once(shape):
    """Short blocks are reduced several at once: each block's sums are the same to the bit as the block
    alone, and as exact sums (math.fsum in float64) to rounding; adding rows in order likewise."""
    rng = np.random.default_rng(shape[1])
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    together = block_power_sums(x, 0.5)
    alone = np.vstack([block_power_sums(block[None, :], 0.5) for block in x])
    assert np.array_equal(together, alone)
    y = x.astype(np.float64) - 0.5
    exact = np.array([[math.fsum(row**p) for p in (1, 2, 3, 4)] for row in y])
    scale = np.array([[math.fsum(np.abs(row) ** p) for p in (1, 2, 3, 4)] for row in y])
    assert np.all(np.abs(together - exact) <= 1e-12 * scale)
    in_order = np.zeros(4)
    for row in together:
        in_order = in_order + row
    for cut in (0, 1, 5, len(together)):  # the loop for a few rows and the cumulative sum for many
        assert np.array_equal(add_in_order(add_in_order(np.zeros(4), together[:cut]), together[cut:]), in_order)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 999, 4999])
def test_tail_quantiles_are_numpys_to_the_bit(n):
    """The bootstrap intervals' quantiles from four order statistics: np.quantile's default (linear
    interpolation) to the bit, skewed values and ties included, at every level sqrtdk offers."""
    from sqrtdk.core.moments import tail_quantiles

    rng = np.random.default_rng(n)
    for draw in range(20):
        t = rng.standard_normal(n) ** 3
        if draw % 4 == 0:
            t = np.round(t, 1)  # ties
        for level in (0.5, 0.9, 0.95, 0.99, 0.999):
            alpha = 1 - level
            assert tail_quantiles(t, alpha) == tuple(np.quantile(t, [alpha / 2, 1 - alpha / 2])), (n, level)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 8, 15, 16, 31, 63, 64, 200, 1999, 2000, 2001, 10**5])
@pytest.mark.parametrize("p", [0.05, 0.6, 0.975, 0.9995])
def test_t_quantile_against_scipy(p, df):
    """The closed-form series with Newton's method (df <= 2000), and scipy beyond, against scipy.stats."""
    from sqrtdk.core.moments import t_quantile

    assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10)


@pytest.mark.parametrize("p", [0.6, 0.975, 0.9995])
def test_t_quantile_closed_forms(p):
    """t_1 is Cauchy, t_2 has F^-1(p) = (2p - 1) / sqrt(2 p (1 - p)), and t_inf is the normal."""
    from statistics import NormalDist

    from sqrtdk.core.moments import t_quantile

    assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-12)
    assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
    assert t_quantile(p, 10**9) == pytest.approx(NormalDist().inv_cdf(p), abs=1e-6)


def test_batch_means_interval_is_t_interval():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    est = batch_means(2.5, values, 0.95)
    se = values.std(ddof=1) / 2
    assert est.se == pytest.approx(se)
    assert est.ci_high - 2.5 == pytest.approx(stats.t.ppf(0.975, 3) * se)


def test_add_in_order_is_sequential():
    # in float64, ((0 + 1e16) + 1) - 1e16 = 0 but 1e16 - 1e16 + 1 = 1: the order shows in the result
    rows = np.array([[1e16, 0, 0, 0], [1.0, 0, 0, 0], [-1e16, 0, 0, 0]] * 3)
    assert add_in_order(np.zeros(4), rows)[0] == 0.0
    total = np.zeros(4)
    for row in rows:
        total = total + row
    assert np.array_equal(add_in_order(np.zeros(4), rows), total)


def test_mean_interval_follows_the_skew_and_falls_back_to_t():
    """Below 32 replicates: mean +- t se. From 32 on, the studentized bootstrap: nearly the t interval for
    normal replicate means, longer on the long side for right-skewed ones, and the same on every call."""
    from sqrtdk.core.moments import mean_interval, t_quantile

    def interval(values):
        return mean_interval(batch_means(float(values.mean()), values, 0.95), values, 0.95)

    rng = np.random.default_rng(1)
    few = rng.standard_normal(16)
    se = few.std(ddof=1) / 4
    half = t_quantile(0.975, 15) * se
    assert interval(few) == pytest.approx((few.mean() - half, few.mean() + half), rel=1e-12)

    normal = rng.standard_normal(256)
    low, high = interval(normal)
    se = normal.std(ddof=1) / 16
    assert low == pytest.approx(normal.mean() - 1.97 * se, abs=0.15 * se)
    assert high == pytest.approx(normal.mean() + 1.97 * se, abs=0.15 * se)

    skewed = rng.exponential(size=64) ** 3
    low, high = interval(skewed)
    assert high - skewed.mean() > 1.3 * (skewed.mean() - low)
    assert interval(skewed) == (low, high)
    tiny = interval(skewed * 1e-160)
    assert tiny[0] == pytest.approx(low * 1e-160, rel=1e-9) and tiny[1] == pytest.approx(high * 1e-160, rel=1e-9)


def test_an_interval_on_the_reciprocal_scale():
    """value / (1 +- h / value) for the half-width h of the symmetric interval: symmetric in 1 / value,
    longer above than on the log scale, none where it would reach 1 / value = 0, and the estimate itself
    where it is 0."""
    from sqrtdk.core.moments import Estimate, on_reciprocal_scale

    low, high = on_reciprocal_scale(Estimate(2.0, 0.1, 1.8, 2.2))
    assert 1 / low - 1 / 2.0 == pytest.approx(1 / 2.0 - 1 / high) == pytest.approx(0.2 / 4)
    assert high - 2.0 > 2.0 * math.exp(0.1) - 2.0 and 2.0 - low < 2.0 - 2.0 / math.exp(0.1)
    assert on_reciprocal_scale(Estimate(2.0, 1.0, -0.5, 4.5)) == (None, None)
    assert on_reciprocal_scale(Estimate(0.0, 0.0, 0.0, 0.0)) == (0.0, 0.0)
