"""The gradient experiment's rows, reading and table: the reference column against an explicit Jacobian,
vanishing gradients where the unscaled softmax freezes, and sentences built from the numbers shown."""

import math

import numpy as np
import pytest

import sqrtdk
from sqrtdk.experiments import _attention, gradient
from sqrtdk.output import with_se

Z = 5.0


@pytest.mark.parametrize("n", [2, 8, 128])
def test_the_uniform_rows_reference_is_the_explicit_jacobian_norm(n):
    p = np.full(n, 1 / n)
    explicit = np.linalg.norm(np.diag(p) - np.outer(p, p))  # ||diag(p) - p p^T||_F, formed
    result = sqrtdk.run("gradient", dim=4, seq_len=n, samples=64)
    assert all(r["uniform_jacobian_fro"] == pytest.approx(explicit, rel=1e-12) for r in result.rows)


def test_the_mean_squared_jacobian_norm_is_the_exact_theory():
    """E||J||_F^2 (core/exact.py) against the measured mean of ||J||_F^2, from the uniform-like scaled
    rows to the frozen unscaled ones (6 comparisons, 4 standard errors each)."""
    result = sqrtdk.run("gradient", dim=[4, 256], seq_len=[8, 128], samples=2**13, scaling=["none", "sqrt", "qknorm"])
    for r in result.rows:
        assert r["theory_jacobian_sq"] is not None
        assert abs(r["jacobian_sq_mean"] - r["theory_jacobian_sq"]) <= 4 * r["jacobian_sq_mean_se"], r
        assert r["jacobian_fro_mean"] ** 2 <= r["jacobian_sq_mean"] * (1 + 1e-9)  # Jensen: E X^2 >= (E X)^2


def test_unscaled_gradients_vanish_as_d_k_grows_and_scaled_ones_do_not():
    result = sqrtdk.run("gradient", dim=[16, 1024], seq_len=128, samples=2**12, eps=1e-3)
    by = {(r["d_k"], r["scaling"]): r for r in result.rows}
    small, large = by[16, "none"], by[1024, "none"]
    assert large["vanishing_fraction"] > 0.5 > small["vanishing_fraction"]
    assert large["vanishing_fraction_ci_low"] > small["vanishing_fraction_ci_high"]
    a, b = by[16, "sqrt"], by[1024, "sqrt"]
    assert abs(a["jacobian_fro_mean"] - b["jacobian_fro_mean"]) < 0.1 * a["jacobian_fro_mean"]
    sentences = gradient.EXPERIMENT.reading(result)
    assert any(f"{large['grad_q_mean']:.3g}" in s and "d_k = 1024" in s for s in sentences), sentences


def test_the_table_has_a_column_per_metric_named_by_the_metric_table():
    result = sqrtdk.run("gradient", dim=16, seq_len=8, samples=64)
    table = gradient.EXPERIMENT.table(result)
    headings = [c.heading for c in table.columns[4:]]
    assert [_attention.METRICS[m].short for m in _attention.GRADIENT] == [h for h in headings if h != "theory"]
    assert headings[headings.index("‖J‖²") + 1] == "theory"  # the exact E||J||_F^2 beside its measurement
    assert all(len(c.cells) == len(result.rows) for c in table.columns)
    row = result.rows[0]
    assert table.columns[4].cells[0] == with_se(row["jacobian_fro_mean"], row["jacobian_fro_mean_se"])
    assert math.isfinite(row["jacobian_fro_mean_se"])


def test_the_freezing_point_is_where_the_spread_reaches_s_c():
    """Against d_k the spread grows like sqrt(d_k), so s = s_c at d_k (s_c / s)^2; against n, s_c grows
    to meet s at n = exp(s^2 / 2)."""
    row = {"logit_std": 4.0, "critical_logit_std": math.sqrt(2 * math.log(128)), "d_k": 16}
    assert _attention.freezing_point(row, "d_k") == pytest.approx(16 * 2 * math.log(128) / 16, rel=1e-12)
    assert _attention.freezing_point(row, "seq_len") == pytest.approx(math.exp(8.0), rel=1e-12)
    assert _attention.freezing_point({**row, "logit_std": None}, "d_k") is None
