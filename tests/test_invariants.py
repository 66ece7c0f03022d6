"""Properties that must hold for any input, checked with hypothesis against explicit float64 formulas."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sqrtdk import executors
from sqrtdk.core.rows import Rule, row_metrics, sample_rows
from sqrtdk.core.scores import sample_scores
from sqrtdk.core.softmax import entropy, jacobian_fro, softmax
from sqrtdk.experiments.variance.measure import variance_rows

logit = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
rows = st.integers(1, 5).flatmap(
    lambda r: st.integers(1, 40).flatmap(lambda n: arrays(np.float64, (r, n), elements=logit))
)


@given(rows)
def test_softmax_rows_sum_to_one_and_entropy_is_bounded(s):
    p, shifted, log_total = softmax(s)
    assert np.allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all(p >= 0)
    h = entropy(p, shifted, log_total)
    assert np.all(h >= -1e-12) and np.all(h <= math.log(s.shape[-1]) + 1e-9)


@given(rows)
def test_jacobian_rows_sum_to_zero_symmetric_psd(s):
    p = softmax(s)[0]
    for row, fro in zip(p, jacobian_fro(p)):
        jac = np.diag(row) - np.outer(row, row)  # written out, n x n
        assert np.allclose(jac.sum(axis=1), 0.0, atol=1e-12)
        assert np.array_equal(jac, jac.T)
        assert np.linalg.eigvalsh(jac).min() >= -1e-12
        assert math.isclose(fro, np.linalg.norm(jac), rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=60)
@given(
    n=st.integers(1, 40),
    d_k=st.integers(1, 8),
    log_c=st.floats(-3, 3),
    normalised=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fused_statistics_match_the_explicit_softmax(n, d_k, log_c, normalised, seed):
    """row_metrics never normalises where it need not; the explicit float64 softmax is the oracle."""
    rng = np.random.default_rng(seed)
    q, k, g = rng.normal(size=(1, 3, d_k)), rng.normal(size=(1, n, d_k)), rng.normal(size=(1, 3, n))
    rule = Rule("r", 10.0**log_c, normalised)
    scores = q @ k.swapaxes(-1, -2)
    sat = row_metrics("saturation", scores, rule, q, k, None, 0.9)
    grad = row_metrics("gradient", scores, rule, q, k, g, 1e-3)
    logits = scores * rule.c
    if normalised:
        logits = logits / (np.linalg.norm(q, axis=-1)[..., None] * np.linalg.norm(k, axis=-1)[..., None, :])
    p = softmax(logits)[0][0]  # (3, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
    # weights below e^-30 of the largest count as 0 in row_metrics; a sum of squares that includes the
    # largest weight (1) keeps float64's absolute 1e-16, so ||J||_F of a nearly one-hot row is good to
    # sqrt(4e-16) = 2e-8 absolute
    close = dict(rtol=1e-7, atol=2e-8)
    assert np.allclose(sat["max_prob_mean"], p.max(axis=-1), **close)
    assert np.allclose(sat["entropy_mean"], h, **close)
    participation = sat["participation_mean"]
    assert np.allclose(participation, 1 / (p * p).sum(axis=-1), **close)
    assert np.all(participation >= 1 - 1e-9) and np.all(participation <= n + 1e-9)
    jg = np.array([(np.diag(r) - np.outer(r, r)) @ gi for r, gi in zip(p, g[0])])  # J g, J written out
    assert np.allclose(grad["grad_logits_mean"], np.linalg.norm(jg, axis=-1), **close)
    fro = [np.linalg.norm(np.diag(r) - np.outer(r, r)) for r in p]
    assert np.allclose(grad["jacobian_fro_mean"], fro, **close)
    assert np.allclose(grad["jacobian_diag_max_mean"], (p * (1 - p)).max(axis=-1), **close)


@settings(max_examples=15, deadline=None)
@given(d_k=st.integers(1, 300), seed=st.integers(0, 2**63 - 1))
def test_scaled_over_unscaled_variance_is_one_over_d_k(d_k, seed):
    rows = {r["scaling"]: r for r in variance_rows(sample_scores(d_k, 5000, seed=seed), ("none", "sqrt", "linear"))}
    assert rows["sqrt"]["variance"] / rows["none"]["variance"] == np.float64(1) / d_k or math.isclose(
        rows["sqrt"]["variance"] / rows["none"]["variance"], 1 / d_k, rel_tol=1e-14
    )
    assert math.isclose(rows["linear"]["variance"] / rows["none"]["variance"], 1 / d_k**2, rel_tol=1e-14)


@settings(max_examples=12, deadline=None)
@given(chunk=st.integers(1, 2**18), d_k=st.sampled_from([3, 16, 70]))
def test_rows_do_not_depend_on_chunk_size(chunk, d_k):
    reference = variance_rows(sample_scores(d_k, 20000, seed=4))
    assert variance_rows(sample_scores(d_k, 20000, seed=4, chunk_scores=chunk)) == reference
    a = sample_rows("gradient", d_k, 24, 200, seed=4, scalings=("sqrt", "qknorm"))
    b = sample_rows("gradient", d_k, 24, 200, seed=4, scalings=("sqrt", "qknorm"), chunk_scores=chunk)
    assert np.array_equal(a.replicate_means, b.replicate_means)


def test_rows_do_not_depend_on_thread_count(monkeypatch):
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(executors, "_task_threads", threads)
        threaded = executors.map_replicates
        results.append(
            (
                variance_rows(
                    sample_scores(40, 50000, seed=2, cosine=True, map_replicates=threaded), ("none", "qknorm")
                ),
                sample_rows("saturation", 40, 64, 600, seed=2, map_replicates=threaded).replicate_means.tolist(),
            )
        )
    assert results[0] == results[1] == results[2]
