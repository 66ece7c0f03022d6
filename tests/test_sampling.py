"""Seeded sampling: each distribution's standardised moments, the correlated own key, the projection layer's
weights, and streams that depend on the task's parameters alone."""

import math

import numpy as np
import pytest

from sqrtdk.core import theory
from sqrtdk.core.sampling import Source, init_weights, qk_blocks, standard, task_seed
from sqrtdk.core.theory import Entries

Z = 5.0
N = 2**20


@pytest.mark.parametrize(
    "entries",
    [Entries(), Entries("uniform"), Entries("rademacher"), Entries("student-t", df=30.0)],
    ids=lambda e: e.dist,
)
def test_standardised_draws_have_the_moments_of_their_distribution(entries):
    z = standard(np.random.default_rng(1), (N,), entries).astype(np.float64)
    for power, want in ((1, 0.0), (2, 1.0), (4, entries.moment(4))):
        values = z**power
        se = values.std() / math.sqrt(N) or 1e-12  # rademacher's z^2 is exactly 1
        assert abs(values.mean() - want) < Z * se + 1e-6, (power, values.mean(), want)


def test_a_query_and_its_own_key_are_correlated_and_no_other_pair_is():
    rho = 0.6
    q, k = next(qk_blocks(np.random.default_rng(2), 1, 64, 128, 256, Entries(rho=rho), 1))
    own = np.mean(q[0] * k[0, :64])  # unit variances: the mean product is the correlation
    others = np.mean(q[0] * k[0, 64:128])
    se = 1 / math.sqrt(64 * 256)  # sd of a product of (nearly) unit normals, over 64 x 256 products
    assert abs(own - rho) < Z * math.sqrt(1 + rho * rho) * se and abs(others) < Z * se


@pytest.mark.parametrize("init", theory.INITS)
def test_init_weights_have_the_documented_variances(init):
    source = Source(inputs="projected", d_model=256, heads=4, init=init, init_std=0.05)
    w, b = init_weights(np.random.default_rng(3), source)
    v_w, v_b = theory.init_variances(init, 256, 0.05)
    w = w.astype(np.float64).ravel()
    assert abs(w.var() - v_w) < Z * v_w * math.sqrt(2 / w.size) * 1.5  # within 5 SE of its variance
    assert (b.var() == 0) if v_b == 0 else abs(b.var() - v_b) < Z * v_b * math.sqrt(2 / b.size) * 1.5
    kurtosis = np.mean((w - w.mean()) ** 4) / w.var() ** 2 - 3
    if init in ("normal", "lecun"):  # normal weights: excess kurtosis 0 (its sd here about 0.01)
        assert abs(kurtosis) < 0.1
    else:  # uniform on +-sqrt(3 v_w), as PyTorch draws them: excess kurtosis -1.2, never beyond the bound
        assert abs(kurtosis + 1.2) < 0.1 and 0.999 < np.abs(w).max() / math.sqrt(3 * v_w) <= 1 + 1e-6


def test_streams_depend_on_the_task_alone():
    a = task_seed(0, {"d_k": 4, "mean": 0.0}).generate_state(4)
    assert np.array_equal(a, task_seed(0, {"mean": -0.0, "d_k": 4}).generate_state(4))  # order, -0.0
    assert not np.array_equal(a, task_seed(0, {"d_k": 5, "mean": 0.0}).generate_state(4))
    assert not np.array_equal(a, task_seed(1, {"d_k": 4, "mean": 0.0}).generate_state(4))


def test_d_k_is_d_model_over_heads_for_projected_inputs():
    assert Source().d_k(64) == 64
    assert Source(inputs="projected", d_model=512, heads=8).d_k(64) == 64
    assert Source(inputs="projected", d_model=384, heads=12).d_k(7) == 32
