"""The variance experiment against closed forms, with tolerances from its own batch-means errors."""

import math
import tracemalloc

import numpy as np
import pytest

from sqrtdk import theory
from sqrtdk.variance import sample_scores, variance_rows

Z = 5.0  # standard errors allowed for a single comparison


def rows_for(d_k, samples=2**18, mean=0.0, std=1.0, seed=0, **kw):
    return {r["scaling"]: r for r in variance_rows(sample_scores(d_k, samples, mean, std, seed, **kw), mean, std)}


@pytest.mark.parametrize("d_k", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
def test_scaling_law(d_k):
    std = 1.3
    rows = rows_for(d_k, samples=2**16, std=std, seed=d_k)
    assert abs(rows["none"]["variance"] - d_k * std**4) < Z * rows["none"]["variance_se"]
    assert abs(rows["sqrt"]["variance"] - std**4) < Z * rows["sqrt"]["variance_se"]
    assert rows["sqrt"]["variance"] / rows["none"]["variance"] == pytest.approx(1 / d_k, rel=1e-12)


@pytest.mark.parametrize("d_k,mean,std", [(16, 0.5, 2.0), (64, 0.5, 2.0), (8, -1.0, 0.5), (100, 0.2, 1.0)])
def test_mean_terms(d_k, mean, std):
    for scaling, row in rows_for(d_k, mean=mean, std=std, seed=3).items():
        c = theory.scale(d_k, scaling)
        assert abs(row["mean"] - c * d_k * mean**2) < Z * row["mean_se"]
        assert abs(row["variance"] - c * c * d_k * (std**4 + 2 * std**2 * mean**2)) < Z * row["variance_se"]
        assert abs(row["excess_kurtosis"] - theory.score_excess_kurtosis(d_k, mean, std)) \
            < Z * row["excess_kurtosis_se"]


@pytest.mark.parametrize("mean", [0.0, 0.5])
def test_interval_coverage(mean):
    """Over 400 seeds the 95% interval covers the true variance about 95% of the time.

    With mean 0.5 the scores of one block are correlated; an iid interval would cover too rarely.
    """
    d_k, seeds = 16, 400
    truth = theory.score_variance(d_k, mean, 1.0)
    covered = 0
    for seed in range(seeds):
        row = variance_rows(sample_scores(d_k, 2**14, mean, 1.0, seed), mean, 1.0, level=0.95)[0]
        covered += row["variance_ci_low"] <= truth <= row["variance_ci_high"]
    se = math.sqrt(0.95 * 0.05 / seeds)
    assert abs(covered / seeds - 0.95) < 4 * se


def test_same_seed_same_rows_and_other_seed_other_rows():
    a, b, c = (variance_rows(sample_scores(32, 2**15, 0.0, 1.0, s), 0.0, 1.0) for s in (5, 5, 6))
    assert a == b
    assert a != c


@pytest.mark.parametrize("chunk", [64, 1000, 2**20])
def test_chunk_size_does_not_change_rows(chunk):
    reference = sample_scores(48, 2**16, 0.3, 1.0, 9)
    other = sample_scores(48, 2**16, 0.3, 1.0, 9, chunk_scores=chunk)
    assert variance_rows(other, 0.3, 1.0) == variance_rows(reference, 0.3, 1.0)
    assert np.array_equal(other.counts, reference.counts)


def test_histogram_counts_every_score():
    s = sample_scores(2, 2**14, 0.0, 1.0, 0)
    assert s.counts.sum() + s.outside == s.n_scores
    assert s.n_scores >= 2**14


def test_memory_does_not_grow_with_samples():
    def peak(samples):
        tracemalloc.start()
        sample_scores(64, samples, 0.0, 1.0, 0, chunk_scores=2**12)
        used = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return used

    small, large = peak(2**19), peak(2**23)  # 16 times the scores
    assert large < 1.1 * small
