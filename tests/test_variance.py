"""The variance experiment: every row against its closed form, every interval against its level."""

import pytest
from measure import variance_rows_for as rows_for

from sqrtdk.core import theory
from sqrtdk.core.sampling import Source
from sqrtdk.core.theory import Entries

Z = 5.0  # standard errors allowed for a single comparison
RULES = ("none", "sqrt", "linear", "qknorm")


def close(row, key):
    return abs(row[key] - row["theory_" + key]) < Z * row[key + "_se"]


@pytest.mark.parametrize("d_k", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
def test_scaling_law(d_k):
    std = 1.3
    rows = rows_for(d_k, samples=2**16, std=std, seed=d_k, scalings=RULES)
    assert abs(rows["none"]["variance"] - d_k * std**4) < Z * rows["none"]["variance_se"]
    assert abs(rows["sqrt"]["variance"] - std**4) < Z * rows["sqrt"]["variance_se"]
    assert rows["sqrt"]["variance"] / rows["none"]["variance"] == pytest.approx(1 / d_k, rel=1e-12)
    assert rows["linear"]["variance"] / rows["none"]["variance"] == pytest.approx(1 / d_k**2, rel=1e-12)
    # QK-norm with its default gain sqrt(d_k): variance 1 whatever the std of the entries
    assert abs(rows["qknorm"]["variance"] - 1.0) < Z * rows["qknorm"]["variance_se"]


@pytest.mark.parametrize("d_k,mean,std", [(16, 0.5, 2.0), (64, 0.5, 2.0), (8, -1.0, 0.5), (100, 0.2, 1.0)])
def test_mean_terms(d_k, mean, std):
    for row in rows_for(d_k, mean=mean, std=std, seed=3).values():
        assert close(row, "mean") and close(row, "variance") and close(row, "excess_kurtosis")


@pytest.mark.parametrize("dist,df", [("uniform", 10.0), ("rademacher", 10.0), ("student-t", 30.0)])
@pytest.mark.parametrize("d_k", [2, 16, 128])
def test_distributions_match_variance_and_kurtosis(dist, df, d_k):
    source = Source(Entries(dist, std=1.5, df=df))
    for row in rows_for(d_k, seed=d_k, source=source).values():
        assert close(row, "variance") and close(row, "excess_kurtosis")


def test_heavy_tails_leave_undefined_estimates_empty():
    rows = rows_for(16, samples=2**16, source=Source(Entries("student-t", df=3.0)))
    for row in rows.values():
        assert row["variance"] > 0 and row["variance_se"] is None and row["variance_ci_low"] is None
        assert row["excess_kurtosis"] is None and row["theory_excess_kurtosis"] is None
    six = rows_for(16, samples=2**16, source=Source(Entries("student-t", df=6.0)))["sqrt"]
    assert six["excess_kurtosis"] is not None and six["excess_kurtosis_se"] is None  # needs an 8th moment


@pytest.mark.parametrize("d_k", [1, 4, 64, 1024])
def test_correlated_pairs(d_k):
    rows = rows_for(d_k, samples=2**16, seed=d_k, source=Source(Entries(rho=0.5)), scalings=("none", "sqrt", "linear"))
    assert rows["none"]["theory_mean"] == pytest.approx(0.5 * d_k)
    assert rows["none"]["theory_variance"] == pytest.approx(1.25 * d_k)
    for row in rows.values():
        assert close(row, "mean") and close(row, "variance") and close(row, "excess_kurtosis")
    assert rows["linear"]["mean"] == pytest.approx(rows["none"]["mean"] / d_k, rel=1e-12)


@pytest.mark.parametrize("init", theory.INITS)
def test_projected_heads_match_theory(init):
    source = Source(Entries(), "projected", 128, 4, init, 0.05 if init == "normal" else None, init == "torch-mha")
    rows = rows_for(0, samples=2**18, seed=1, source=source)
    assert rows["sqrt"]["d_k"] == 32
    for row in rows.values():
        assert close(row, "variance") and abs(row["mean"]) < Z * row["mean_se"]


def test_a_sweeps_histograms_hold_one_column_per_d_k_at_the_first_setting_of_the_rest():
    """Seeds are parameters like any other: a sweep over two seeds draws each d_k once, at the first seed."""
    import sqrtdk

    result = sqrtdk.run("variance", dim=[4, 16], samples=4096, seed=[0, 1])
    assert result.like_first(("dim",)) == [i for i, t in enumerate(result.tasks) if t["seed"] == 0]
    titles = [ax.get_title() for ax in result.figures()["histograms"]().axes if ax.get_title()]
    assert titles == ["$d_k$ = 4", "$d_k$ = 16"]
