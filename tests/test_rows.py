"""Saturation and gradient experiments against finite differences, published figures and theory."""

import math

import numpy as np
import pytest
from measure import attention_rows_for as rows_of

from sqrtdk.core.rows import GRADIENT, SATURATION, Rule, row_metrics
from sqrtdk.core.sampling import Source
from sqrtdk.core.softmax import softmax
from sqrtdk.core.theory import Entries

Z = 5.0
ALL = ("none", "sqrt", "linear", "qknorm", "logn")


@pytest.mark.parametrize(
    "rule",
    [Rule("sqrt", 1 / math.sqrt(5), False), Rule("qknorm", 2.3, True), Rule("none", 1.0, False)],
    ids=lambda r: r.name,
)
def test_gradient_norms_match_finite_differences(rule):
    """||dL/ds_i|| and ||dL/dq_i|| of L = sum_j G_ij softmax(logits(q_i, K))_j, by central differences."""
    rng = np.random.default_rng(4)
    n, d_k = 6, 5
    q, k, g = rng.normal(size=(n, d_k)), rng.normal(size=(n, d_k)), rng.normal(size=(n, n))
    values = row_metrics("gradient", (q @ k.T)[None], rule, q[None], k[None], g[None], 1e-3)

    def logits(x):  # one query's logits, written out per rule
        if rule.normalised:
            return rule.c * (k @ x) / (np.linalg.norm(k, axis=1) * np.linalg.norm(x))
        return rule.c * (k @ x)

    h = 1e-6
    for i in range(n):
        loss_q = lambda x: float(softmax(logits(x)[None])[0][0] @ g[i])  # noqa: E731
        loss_s = lambda x: float(softmax(x[None])[0][0] @ g[i])  # noqa: E731
        s_i = logits(q[i])
        d_q = [(loss_q(q[i] + h * e) - loss_q(q[i] - h * e)) / (2 * h) for e in np.eye(d_k)]
        d_s = [(loss_s(s_i + h * e) - loss_s(s_i - h * e)) / (2 * h) for e in np.eye(n)]
        assert values["grad_q_mean"][i] == pytest.approx(np.linalg.norm(d_q), rel=1e-6)
        assert values["grad_logits_mean"][i] == pytest.approx(np.linalg.norm(d_s), rel=1e-6)


def test_projected_inputs_run_every_head():
    source = Source(Entries(), "projected", 64, 4, "torch-linear")
    rows = rows_of("gradient", 0, 32, samples=512, source=source)
    assert rows["sqrt"]["d_k"] == 16 and rows["sqrt"]["n_rows"] >= 512
    # torch-linear logits have spread (1/3 + 1/(3 d_model)) after scaling: flatter than the unit case
    assert rows["sqrt"]["logit_std"] == pytest.approx(1 / 3 + 1 / (3 * 64), rel=0.02)
    assert all(math.isfinite(rows[r][m]) for r in rows for m in GRADIENT)


def test_long_sequences_are_sampled_with_bounded_queries():
    rows = rows_of("saturation", 64, 16384, samples=64, scalings=("sqrt", "logn"))
    assert rows["sqrt"]["n_rows"] == 8 * 256  # 8 replicates of one trial of 256 queries
    assert rows["logn"]["entropy_ratio_mean"] < rows["sqrt"]["entropy_ratio_mean"]


def test_huge_unscaled_logits_run_clean():
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        for kind in ("saturation", "gradient"):
            rows = rows_of(kind, 65536, 8, samples=64, scalings=ALL)
            for row in rows.values():
                assert all(v is None or math.isfinite(v) for v in row.values() if isinstance(v, float))
    assert rows["none"]["jacobian_fro_mean"] < 0.05


@pytest.mark.parametrize("kind", ["saturation", "gradient"])
@pytest.mark.parametrize(
    "source",
    [None, Source(Entries("uniform", rho=0.0)), Source(Entries(rho=0.3)), Source(Entries(mean=1.0, std=2.0))],
    ids=["gaussian", "uniform", "rho", "mean"],
)
def test_deterministic_and_chunk_independent(kind, source):
    """The same numbers however the trials are chunked: by default the 64 replicates of one trial each are
    measured in one pass, with chunk_scores=100 one at a time (QK-norm of entries with a mean keeps its
    float64 vectors apart)."""
    a = rows_of(kind, 16, 32, samples=2048, seed=1, scalings=ALL, source=source)
    assert a == rows_of(kind, 16, 32, samples=2048, seed=1, scalings=ALL, source=source)
    assert a == rows_of(kind, 16, 32, samples=2048, seed=1, scalings=ALL, source=source, chunk_scores=100)
    assert a != rows_of(kind, 16, 32, samples=2048, seed=2, scalings=ALL, source=source)


def test_rules_share_draws_and_others_leave_a_rule_alone():
    alone = rows_of("gradient", 16, 32, samples=512, scalings=("sqrt",))
    together = rows_of("gradient", 16, 32, samples=512, scalings=ALL)
    assert alone["sqrt"] == together["sqrt"]


def test_one_key_is_documented_not_a_crash():
    row = rows_of("saturation", 4, 1, samples=64)["sqrt"]
    assert row["max_prob_mean"] == 1.0 and row["entropy_mean"] == 0.0
    assert row["entropy_ratio_mean"] is None and row["critical_logit_std"] is None
    assert set(SATURATION) <= set(row)
