"""Softmax quantities against hand-made rows, explicit Jacobians and finite differences."""

import math

import numpy as np
import pytest

from sqrtdk.core import softmax as sm


def stats(s):
    p, shifted, log_total = sm.softmax(np.atleast_2d(np.asarray(s, dtype=np.float64)))
    return p, sm.entropy(p, shifted, log_total), sm.jacobian_fro(p)


@pytest.mark.parametrize("n", [1, 2, 8, 128, 4096])
def test_uniform_row(n):
    p, h, fro = stats(np.full(n, 3.7))
    assert np.allclose(p, 1 / n)
    assert h[0] == pytest.approx(math.log(n), abs=1e-12)
    assert fro[0] == pytest.approx(math.sqrt(n - 1) / n, abs=1e-12)


def test_one_hot_row():
    p, h, fro = stats([0.0, 2000.0, -5.0, 10.0])
    assert p[0, 1] == 1.0 and h[0] == 0.0 and fro[0] == 0.0
    assert sm.jacobian_diag_max(p)[0] == 0.0


def test_fro_formula_matches_explicit_jacobian():
    rng = np.random.default_rng(0)
    s = rng.normal(0, 2, size=(20, 9))
    p, _, fro = stats(s)
    for row, value in zip(p, fro):
        jacobian = np.diag(row) - np.outer(row, row)
        assert value == pytest.approx(np.linalg.norm(jacobian), rel=1e-10)
        assert np.max(np.diag(jacobian)) == pytest.approx(sm.jacobian_diag_max(row[None])[0])


def test_entropy_matches_direct_sum():
    rng = np.random.default_rng(1)
    s = rng.normal(0, 3, size=(10, 50))
    p, h, _ = stats(s)
    assert h == pytest.approx(-(p * np.log(p)).sum(axis=1), rel=1e-10)


def test_grad_logits_matches_central_differences():
    rng = np.random.default_rng(2)
    s, g = rng.normal(0, 1.5, size=(3, 7)), rng.normal(size=(3, 7))
    loss = lambda x: float((sm.softmax(x[None])[0][0] * g_row).sum())  # noqa: E731
    analytic = sm.grad_logits(sm.softmax(s)[0], g)
    h = 1e-6
    for i in range(3):
        g_row = g[i]
        numeric = [(loss(s[i] + h * e) - loss(s[i] - h * e)) / (2 * h) for e in np.eye(7)]
        assert analytic[i] == pytest.approx(numeric, abs=1e-8)


def test_huge_logits_are_stable():
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = np.array([[1e4, -1e4, 3e4, 0.0], [-1e300, 1e300, 0.0, 1.0]])
        p, h, fro = stats(s)
    assert np.isfinite(p).all() and np.isfinite(h).all() and np.isfinite(fro).all()
    assert p[:, [2, 1]].diagonal().tolist() == [1.0, 1.0]


def test_random_energy_model_reference_values():
    """iid N(0, 1) logits, n = 4096: an independent float64 simulation gives entropy 7.817, 1/sum p^2 ~ 1518."""
    rng = np.random.default_rng(3)
    h, participation = [], []
    for _ in range(8):  # 8 x 500 rows: a few hundred MiB at a time instead of a gigabyte
        p, part_h, _ = stats(rng.standard_normal((500, 4096)))
        h.append(part_h)
        participation.append(1 / (p * p).sum(axis=1))
    h, participation = np.concatenate(h), np.concatenate(participation)
    se_h, se_pr = h.std(ddof=1) / math.sqrt(len(h)), participation.std(ddof=1) / math.sqrt(len(h))
    assert abs(h.mean() - 7.817) < 5 * se_h + 0.0005  # + half the last quoted digit
    assert abs(participation.mean() - 1518) < 5 * se_pr + 10  # quoted as "about 1518"
