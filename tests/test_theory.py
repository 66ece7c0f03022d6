"""Closed forms against brute-force float64 simulation and numerical integration."""

import math

import numpy as np
import pytest
from scipy import integrate, special

from sqrtdk import theory

Z = 5.0  # standard errors allowed: rare enough across the whole suite


def brute_force_scores(d_k, n, mean, std, seed):
    """n independent dot products, each from its own q and k, in float64: no blocks, no streaming."""
    rng = np.random.default_rng(seed)
    q = rng.normal(mean, std, size=(n, d_k))
    k = rng.normal(mean, std, size=(n, d_k))
    return np.einsum("ij,ij->i", q, k)


@pytest.mark.parametrize("d_k,mean,std", [(1, 0.0, 1.0), (3, 0.0, 2.0), (16, 0.5, 1.0), (64, 0.0, 1.0),
                                          (8, -1.0, 0.5), (256, 0.3, 1.7)])
def test_mean_and_variance_match_simulation(d_k, mean, std):
    x = brute_force_scores(d_k, 200_000, mean, std, seed=d_k)
    n = len(x)
    mu, var = theory.score_mean(d_k, mean, std), theory.score_variance(d_k, mean, std)
    assert abs(x.mean() - mu) < Z * math.sqrt(var / n)
    fourth = np.mean((x - x.mean()) ** 4)
    assert abs(x.var(ddof=1) - var) < Z * math.sqrt((fourth - var**2) / n)


@pytest.mark.parametrize("d_k,mean,std", [(1, 0.0, 1.0), (4, 0.0, 1.0), (2, 0.7, 1.0), (16, 1.0, 0.5)])
def test_excess_kurtosis_matches_simulation(d_k, mean, std):
    x = brute_force_scores(d_k, 400_000, mean, std, seed=100 + d_k)
    # standard error of the sample kurtosis from 20 independent batches
    batches = np.array([np.mean((b - b.mean()) ** 4) / np.var(b) ** 2 - 3 for b in np.split(x, 20)])
    se = batches.std(ddof=1) / math.sqrt(20)
    pooled = np.mean((x - x.mean()) ** 4) / np.var(x) ** 2 - 3
    assert abs(pooled - theory.score_excess_kurtosis(d_k, mean, std)) < Z * se


def test_excess_kurtosis_reference_values():
    for d_k in (1, 16, 64, 1024):
        assert theory.score_excess_kurtosis(d_k, 0.0, 1.0) == pytest.approx(6 / d_k)
        assert theory.score_excess_kurtosis(d_k, 0.0, 3.0) == pytest.approx(6 / d_k)  # scale-free


def test_scale():
    assert theory.scale(64, "none") == 1.0
    assert theory.scale(64, "sqrt") == 0.125
    assert theory.score_variance(64, 0.0, 1.0, theory.scale(64, "sqrt")) == pytest.approx(1.0)


@pytest.mark.parametrize("d_k", [2, 3, 10, 64, 150])
def test_bessel_form_equals_normal_mixture(d_k):
    x = np.array([0.03, 0.5, 1.0, 3.0, 10.0]) * math.sqrt(d_k)
    assert theory.score_density(x, d_k) == pytest.approx(theory.density_mixture(x, d_k), rel=1e-8)


def test_density_d1_is_k0_over_pi():
    x = np.array([0.01, 0.5, 2.0, 7.0])
    assert theory.score_density(x, 1) == pytest.approx(special.k0(x) / math.pi, rel=1e-12)


@pytest.mark.parametrize("d_k,std,c", [(1, 1.0, 1.0), (5, 2.0, 1.0), (64, 1.0, 0.125), (1024, 1.0, 1 / 32),
                                       (4096, 0.5, 1.0)])
def test_density_is_normalised_with_theory_variance(d_k, std, c):
    f = lambda z: theory.score_density(np.array([z]), d_k, std, c)[0]  # noqa: E731
    sd = math.sqrt(theory.score_variance(d_k, 0.0, std, c))
    total = 2 * integrate.quad(f, 0, 40 * sd, limit=400)[0]
    second = 2 * integrate.quad(lambda z: z * z * f(z), 0, 40 * sd, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-6)
    assert second == pytest.approx(sd**2, rel=1e-6)


def test_density_matches_simulated_histogram():
    d_k = 4
    x = brute_force_scores(d_k, 400_000, 0.0, 1.0, seed=7)
    edges = np.linspace(-6, 6, 25)
    counts, _ = np.histogram(x, edges)
    expected = np.array([integrate.quad(lambda z: theory.score_density(np.array([z]), d_k)[0], a, b)[0]
                         for a, b in zip(edges[:-1], edges[1:])]) * len(x)
    from scipy import stats

    keep = expected > 20
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4
