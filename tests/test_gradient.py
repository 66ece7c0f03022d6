"""The gradient experiment's rows, reading and table: the reference column against an explicit Jacobian,
vanishing gradients where the unscaled softmax freezes, and sentences built from the numbers shown."""

import math

import numpy as np
import pytest

import sqrtdk
from sqrtdk.experiments import gradient
from sqrtdk.experiments._attention import figures as attention_figures
from sqrtdk.experiments._attention import measure as attention
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
    assert [attention.METRICS[m].short for m in attention.GRADIENT] == [h for h in headings if h != "theory"]
    assert headings[headings.index("‖J‖²") + 1] == "theory"  # the exact E||J||_F^2 beside its measurement
    assert all(len(c.cells) == len(result.rows) for c in table.columns)
    row = result.rows[0]
    assert table.columns[4].cells[0] == with_se(row["jacobian_fro_mean"], row["jacobian_fro_mean_se"])
    assert math.isfinite(row["jacobian_fro_mean_se"])


def test_the_freezing_point_is_where_the_spread_reaches_s_c():
    """Against d_k the spread grows like sqrt(d_k), so s = s_c at d_k (s_c / s)^2; against n, s_c grows
    to meet s at n = exp(s^2 / 2)."""
    row = {"logit_std": 4.0, "critical_logit_std": math.sqrt(2 * math.log(128)), "d_k": 16}
    assert attention_figures.freezing_point(row, "d_k") == pytest.approx(16 * 2 * math.log(128) / 16, rel=1e-12)
    assert attention_figures.freezing_point(row, "seq_len") == pytest.approx(math.exp(8.0), rel=1e-12)
    assert attention_figures.freezing_point({**row, "logit_std": None}, "d_k") is None


def test_per_row_counts_are_numpys_histogram_of_the_same_values():
    """The oracle: numpy's histogram over explicit edges, and a count of what lies below and above."""
    from sqrtdk.core.rows import GRAD_Q_BINS, grad_q_bins, grad_q_counts

    low, high, width = GRAD_Q_BINS
    rng = np.random.default_rng(3)
    values = np.concatenate([10.0 ** rng.uniform(low - 2, high + 2, 5000), np.zeros(7)])
    edges = 10.0 ** np.arange(low, high + width / 2, width)
    inside, _ = np.histogram(values, edges)
    expected = [np.sum(values < edges[0]), *inside, np.sum(values >= edges[-1])]
    counts = grad_q_counts(values)
    assert len(counts) == grad_q_bins() and counts.sum() == len(values)
    # numpy closes its last bin on the right, this count puts HIGH itself above: equal for these draws
    assert list(counts) == expected


def test_every_row_is_counted_once_whichever_way_the_replicates_run():
    """The counts add up to the rows, per rule, and do not depend on how trials are chunked or on the
    threads that run the replicates (as the means do not)."""
    from sqrtdk import executors
    from sqrtdk.core.rows import sample_rows

    one = sample_rows("gradient", 64, 128, 4096)
    other = sample_rows("gradient", 64, 128, 4096, chunk_scores=2**12, map_replicates=executors.map_replicates)
    assert one.grad_q_counts is not None and (one.grad_q_counts.sum(axis=1) == one.n_rows).all()
    assert np.array_equal(one.grad_q_counts, other.grad_q_counts)
    assert sample_rows("saturation", 64, 128, 1024).grad_q_counts is None


def test_the_per_row_picture_shows_frozen_rows_below_and_the_rest_above_the_scaled_ones():
    """At d_k = 1024, n = 128 unscaled: a share of rows passes (almost) no gradient, while another share
    passes more than every scaled row; the mean over rows lies above the scaled rows' range."""
    from sqrtdk.core.rows import GRAD_Q_BINS

    result = sqrtdk.run("gradient", dim=[4, 1024], seq_len=128, samples=2048)
    fig = result.figures()["gradient_rows"]()
    sample = next(o for o in result.outputs if o.d_k == 1024)
    none, sqrt = (sample.grad_q_counts[sample.scalings.index(s)] for s in ("none", "sqrt"))
    low, _, width = GRAD_Q_BINS
    occupied = np.flatnonzero(sqrt)
    assert none[0] / none.sum() > 0.05  # below 1e-8
    assert none[occupied[-1] + 1 :].sum() / none.sum() > 0.2  # above every scaled row
    mean = next(r["grad_q_mean"] for r in result.rows if r["d_k"] == 1024 and r["scaling"] == "none")
    assert mean > 10 ** (low + width * occupied[-1])
    assert [ax.get_title() for ax in fig.axes] == ["$d_k$ = 4, $n$ = 128", "$d_k$ = 1024, $n$ = 128"]
