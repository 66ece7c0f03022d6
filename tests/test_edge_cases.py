"""Numerical edge cases: finite results, no floating-point warnings (tests run with warnings as errors),
and the documented empty values where a quantity does not exist."""

import math

import numpy as np
import pytest

import sqrtdk
from sqrtdk.experiments.variance.measure import (
    KURTOSIS_SE_MIN_DF,
    VARIANCE_INTERVAL_MIN_DF,
    VARIANCE_INTERVAL_MIN_DK_HEAVY,
)

ALL_RULES = ["none", "sqrt", "linear", "qknorm"]
RAISE = dict(over="raise", invalid="raise", divide="raise", under="ignore")


def finite_or_none(rows):
    for row in rows:
        for key, value in row.items():
            assert value is None or not isinstance(value, float) or math.isfinite(value), (key, value)


@pytest.mark.parametrize("std", [1e-6, 1.0, 1e3])
@pytest.mark.parametrize("d_k", [1, 2, 4096])
def test_variance_extremes(std, d_k):
    with np.errstate(**RAISE):
        result = sqrtdk.run("variance", dim=d_k, std=std, samples=4096, scaling=ALL_RULES)
    finite_or_none(result.rows)
    rows = {r["scaling"]: r for r in result.rows}
    assert abs(rows["sqrt"]["variance"] / std**4 - 1) < 6 * rows["sqrt"]["variance_se"] / std**4
    assert abs(rows["qknorm"]["variance"] - 1) < 6 * rows["qknorm"]["variance_se"]  # scale-free


@pytest.mark.parametrize("kind", ["saturation", "gradient"])
@pytest.mark.parametrize(
    "d_k,seq_len,std", [(1, 1, 1.0), (1, 2, 1e-6), (64, 16384, 1.0), (65536, 8, 1.0), (16, 128, 1e3), (16, 128, 1e-6)]
)
def test_attention_extremes(kind, d_k, seq_len, std):
    with np.errstate(**RAISE):
        result = sqrtdk.run(kind, dim=d_k, seq_len=seq_len, std=std, samples=64, scaling=ALL_RULES + ["logn"])
    finite_or_none(result.rows)
    for row in result.rows:
        if kind == "saturation":
            assert 0 <= row["entropy_mean"] <= math.log(seq_len) + 1e-9
            assert 1 - 1e-9 <= row["participation_mean"] <= seq_len + 1e-9
            if seq_len == 1:
                assert row["entropy_ratio_mean"] is None and row["max_prob_mean"] == 1.0
        else:
            assert 0 <= row["jacobian_fro_mean"] <= 1
    if std == 1e-6 and seq_len > 1:  # tiny logits: every rule but the normalising one is uniform
        row = next(r for r in result.rows if r["scaling"] == "sqrt")
        if kind == "saturation":
            assert row["max_prob_mean"] == pytest.approx(1 / seq_len, rel=1e-4)
        else:  # a uniform row's Jacobian: ||J||_F = sqrt(n - 1) / n
            assert row["jacobian_fro_mean"] == pytest.approx(row["uniform_jacobian_fro"], rel=1e-4)
    if std == 1e3 and kind == "gradient":  # logits of spread ~1e6 unscaled: one-hot rows, J = 0
        row = next(r for r in result.rows if r["scaling"] == "none")
        assert row["jacobian_fro_mean"] < 1e-6 and row["vanishing_fraction"] == 1.0


@pytest.mark.parametrize("df", [2.1, 3.0, 4.0, 4.5, 8.0, 16.0])
def test_student_t_with_few_degrees_of_freedom(df):
    """The variance's standard error needs df > 4, its interval df >= 16 and d_k >= 2, the kurtosis df > 4, its standard
    error df >= 30 and its interval d_k >= 4 as well: otherwise left empty."""
    with np.errstate(**RAISE):
        result = sqrtdk.run("variance", dim=[1, 64], dist="student-t", df=df, samples=20000)
        sat = sqrtdk.run("saturation", dim=64, seq_len=32, dist="student-t", df=df, samples=256)
    finite_or_none(result.rows + sat.rows)
    for row in result.rows:
        assert row["variance"] > 0 and row["theory_variance"] is not None
        assert (row["variance_se"] is None) == (df <= 4)
        honest = df >= VARIANCE_INTERVAL_MIN_DF and row["d_k"] >= VARIANCE_INTERVAL_MIN_DK_HEAVY
        assert (row["variance_ci_low"] is None) == (not honest)
        assert (row["excess_kurtosis"] is None) == (df <= 4)
        assert (row["theory_excess_kurtosis"] is None) == (df <= 4)
        assert (row["excess_kurtosis_se"] is None) == (df < KURTOSIS_SE_MIN_DF)


def test_layernorm_of_constant_tokens_is_finite():
    """Rademacher tokens of width 2 are often constant: LayerNorm's eps keeps them finite (zero)."""
    with np.errstate(**RAISE):
        result = sqrtdk.run(
            "variance", inputs="projected", d_model=2, heads=1, dist="rademacher", layernorm=True, samples=2048
        )
    finite_or_none(result.rows)
    assert all(r["theory_variance"] is None for r in result.rows)  # half the tokens are 0, not |x|^2 = d


def test_layernorm_theory_holds_where_tokens_are_never_constant():
    """At d_model = 64 a Rademacher token is constant with probability 2^-63: the theory holds again."""
    result = sqrtdk.run(
        "variance", inputs="projected", d_model=64, heads=4, dist="rademacher", layernorm=True, samples=2**16
    )
    for row in result.rows:
        assert abs(row["variance"] - row["theory_variance"]) < 5 * row["variance_se"], row
