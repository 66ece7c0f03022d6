"""The exact finite-n softmax expectations (sqrtdk/core/exact.py) against brute-force simulation written
here independently, against their own grid at half the spacing, and against the random-energy model's
limits at large n; the attention rows' average over |q| against simulated queries and keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sqrtdk.core import exact

Z = 4.5  # standard errors allowed between a simulated mean and the exact value (40 comparisons below)
# The simulations' sizes buy standard errors of 0.001-2% of each expectation: a wrong term in a formula
# (a missing factor n - 1, a kernel of the wrong power) moves it by far more than Z of them.


def simulate(n: int, logits, rows: int = 200_000, seed: int = 0, width: int = 1) -> dict[str, tuple[float, float]]:
    """Means and standard errors over `rows` rows of n logits drawn by logits(rng, size), float64, in
    chunks of at most 2^21 numbers (`width` numbers drawn per logit)."""
    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {f: [] for f in exact.FIELDS}
    chunk = max(1, min(rows, 2**21 // (n * width)))
    for start in range(0, rows, chunk):
        x = logits(rng, (min(chunk, rows - start), n))
        x = x - x.max(axis=1, keepdims=True)
        p = np.exp(x)
        total = p.sum(axis=1)
        p /= total[:, None]
        p2 = p * p
        s2, s3 = p2.sum(axis=1), np.einsum("ij,ij->i", p2, p)
        # -sum p ln p with ln p_j = x_j - ln(total): no logarithm of every weight (the slowest step)
        values["entropy"].append(np.log(total) - np.einsum("ij,ij->i", p, x))
        values["sum_p2"].append(s2)
        values["participation"].append(1 / s2)
        values["max_prob"].append(p.max(axis=1))
        values["jacobian_sq"].append(s2 - 2 * s3 + s2 * s2)  # ||diag(p) - p p^T||_F^2
    out = {}
    for name, parts in values.items():
        v = np.concatenate(parts)
        out[name] = (float(v.mean()), float(v.std() / math.sqrt(len(v))))
    return out


def normals(rng, shape) -> np.ndarray:
    """Standard normals drawn in float32 (twice as fast, the draws of the vector simulations being most of
    their time) and computed with in float64: a relative 3e-8 from float64 draws, far below any error."""
    return rng.standard_normal(shape, dtype=np.float32).astype(np.float64)


def agree(row: exact.Row, simulated: dict[str, tuple[float, float]]) -> None:
    for name, (mean, se) in simulated.items():
        value = getattr(row, name)
        assert abs(value - mean) <= Z * se + 1e-12, f"{name}: exact {value}, simulated {mean} ± {se}"


@pytest.mark.parametrize("n", [2, 8, 128, 4096])
@pytest.mark.parametrize("fraction", [0.05, 0.5, 1.0, 2.0, 4.0])
def test_normal_rows_match_simulation(n, fraction):
    """n iid N(0, s^2) logits, s from 0.05 s_c to 4 s_c (the frozen phase)."""
    s = fraction * math.sqrt(2 * math.log(n))
    rows = 200_000 if n <= 128 else 10_000
    agree(exact.normal_row(n, s), simulate(n, lambda rng, size: s * rng.standard_normal(size), rows, seed=n))


@pytest.mark.parametrize(("n", "s"), [(2, 0.3), (16, 0.1), (128, 1.0), (1024, 3.0), (4096, 16.0), (8, 32.0)])
def test_the_grid_has_converged(n, s, monkeypatch):
    """Every expectation within 1e-6 relative of the same computation on a grid twice as fine."""
    coarse = exact.normal_row.__wrapped__(n, s)
    monkeypatch.setattr(exact, "STEP", exact.STEP / 2)
    monkeypatch.setattr(exact, "TAU_STEP", exact.TAU_STEP / 2)
    spacings = exact._spacings
    monkeypatch.setattr(exact, "_spacings", lambda n, s: tuple(h / 2 for h in spacings(n, s)))
    fine = exact.normal_row.__wrapped__(n, s)
    for name in exact.FIELDS:
        assert getattr(coarse, name) == pytest.approx(getattr(fine, name), rel=1e-6), name


@pytest.mark.parametrize(
    ("n", "s", "rel"),
    [
        (2, 5.0, 1e-11),
        (16, 4.0, 1e-11),
        (128, 8.0, 1e-11),
        (1024, 32.0, 1e-11),
        (16384, 3.0, 1e-11),
        # the window wider than the grid: every node against every tau, the lowest nodes in D alone
        (2, 0.3, 1e-11),
        (128, 1.0, 1e-11),
        (1024, 0.01, 1e-10),
        (16384, 0.01, 1e-9),
    ],
)
def test_max_prob_on_nodes_is_the_windowed_sum(n, s, rel):
    """E[max p] with tau on the grid's nodes (fixed offsets, the range below e^-60 left out) equals the
    sum with tau on its own grid, for iid logits and with an own key apart (to 1e-11 where E[max p] is
    not tiny: the two tau grids; 1e-9 of 6e-5 at n = 16384)."""
    x0, h, a = exact._normal_grid(s, exact._spacings(n, s)[1])
    fast, slow = exact._max_prob(n, x0, h, a), exact._max_prob(n, x0, h, a, on_nodes=False)
    assert fast == pytest.approx(slow, rel=rel)
    x0, h, a, a0 = exact._normal_pair_grid(s, 0.4 * s, 0.8 * s, exact._spacings(n, s)[1])
    fast, slow = exact._max_prob(n, x0, h, a, a0), exact._max_prob(n, x0, h, a, a0, on_nodes=False)
    assert fast == pytest.approx(slow, rel=rel)


def test_the_uniform_row_and_the_one_hot_row_are_the_limits():
    tiny, huge = exact.normal_row(64, 1e-3), exact.normal_row(8, 200.0)
    assert tiny.entropy == pytest.approx(math.log(64), rel=1e-6)
    assert tiny.participation == pytest.approx(64, rel=1e-5) and tiny.max_prob == pytest.approx(1 / 64, rel=1e-2)
    assert tiny.jacobian_sq == pytest.approx(63 / 64**2, rel=1e-5)
    assert tiny.jacobian_rms == pytest.approx(math.sqrt(63) / 64, rel=1e-5)  # the uniform row's sqrt(n-1)/n
    assert huge.max_prob > 0.99 and huge.sum_p2 > 0.98 and huge.entropy < 0.05 and huge.jacobian_sq < 0.01


def test_the_random_energy_model_is_the_large_n_limit():
    """Below s_c, E[H] -> ln n - s^2/2 and E[1/sum p^2] -> n e^(-s^2) (relative gaps shrinking with n);
    above it, E[sum p^2] -> 1 - s_c/s (Derrida's frozen phase; the approach is slow, like 1/ln n)."""
    gaps, participation = [], []
    for n in (2**6, 2**10, 2**14):
        s = 0.3 * math.sqrt(2 * math.log(n))
        row = exact.normal_row(n, s)
        gaps.append(abs(row.entropy / (math.log(n) - s * s / 2) - 1))
        participation.append(abs(row.participation / (n * math.exp(-s * s)) - 1))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 2e-3
    assert participation[0] > participation[1] > participation[2] and participation[2] < 0.05
    frozen = []
    for n in (2**6, 2**10, 2**14):
        s_c = math.sqrt(2 * math.log(n))
        frozen.append(abs(exact.normal_row(n, 2 * s_c).sum_p2 - 0.5))
    assert frozen[0] > frozen[1] > frozen[2] and frozen[2] < 0.06


@pytest.mark.parametrize(("d", "g"), [(4, 2.0), (16, 4.0), (64, 30.0)])
def test_cosine_rows_match_simulation(d, g):
    """QK-norm: logits g cos(q, k_j) with k_j isotropic, simulated from Gaussian vectors."""

    def logits(rng, size):
        q, k = normals(rng, (size[0], 1, d)), normals(rng, (*size, d))
        dots = np.matmul(k, q.swapaxes(1, 2))[..., 0]  # float64 products, one row's keys against its query
        norms = np.sqrt(np.einsum("rjd,rjd->rj", k, k) * np.einsum("rid,rid->ri", q, q))
        return g * dots / norms

    agree(exact.cosine_row(32, d, g), simulate(32, logits, 100_000, seed=d, width=d))


@pytest.mark.parametrize(
    ("d_k", "mean", "std", "c"),
    [(4, 0.0, 1.0, 1.0), (16, 0.0, 1.0, 0.25), (64, 0.0, 1.0, 1.0), (64, 0.5, 1.0, 0.125), (256, 0.0, 2.0, 1 / 16)],
)
def test_attention_rows_average_over_the_query_norm(d_k, mean, std, c):
    """c q.k_j for Gaussian q and k with entries N(mean, std^2), simulated as such: the spread of a row
    varies with |q|, and the mean of the entries shifts a row's logits together."""
    n = 16

    def logits(rng, size):
        q = mean + std * normals(rng, (size[0], 1, d_k))
        k = mean + std * normals(rng, (*size, d_k))
        return c * np.matmul(k, q.swapaxes(1, 2))[..., 0]

    row = exact.attention_row(n, d_k, mean, std, c, False)
    assert row is not None
    agree(row, simulate(n, logits, 100_000 if d_k <= 16 else 50_000 if d_k <= 64 else 25_000, seed=d_k, width=d_k))


@pytest.mark.parametrize(
    ("n", "s", "m0", "s0"), [(2, 1.0, 1.5, 0.8), (8, 2.0, -2.0, 1.5), (128, 1.0, 4.0, 0.87), (1024, 3.0, 9.0, 2.6)]
)
def test_one_logit_apart_matches_simulation(n, s, m0, s0):
    """n - 1 logits N(0, s^2) and one N(m0, s0^2): a row whose own key is correlated with its query."""

    def logits(rng, size):
        x = s * rng.standard_normal(size)
        x[:, 0] = m0 + s0 * rng.standard_normal(size[0])
        return x

    agree(exact.own_key_row(n, s, m0, s0), simulate(n, logits, 200_000 if n <= 128 else 20_000, seed=n + 1))


def test_one_logit_of_the_same_law_is_the_iid_row():
    for n, s in ((2, 0.5), (8, 1.0), (128, 3.0)):
        iid, apart = exact.normal_row(n, s), exact.own_key_row(n, s, 0.0, s)
        for f in exact.FIELDS:
            assert getattr(apart, f) == pytest.approx(getattr(iid, f), rel=1e-12), f


@pytest.mark.parametrize(("d_k", "rho", "c"), [(4, 0.5, 0.5), (64, 0.5, 0.125), (64, -0.3, 1.0), (256, 0.9, 0.0625)])
def test_attention_rows_with_a_correlated_own_key(d_k, rho, c):
    """Each query's own key k_0 = rho q + sqrt(1 - rho^2) z, simulated as such; mean-0 entries of std 1.5."""
    n, std = 16, 1.5

    def logits(rng, size):
        a, b = normals(rng, (size[0], 1, d_k)), normals(rng, (*size, d_k))
        b[:, 0] = rho * a[:, 0] + math.sqrt(1 - rho * rho) * b[:, 0]
        return c * np.matmul(std * b, (std * a).swapaxes(1, 2))[..., 0]

    row = exact.attention_row(n, d_k, 0.0, std, c, False, rho)
    assert row is not None
    agree(row, simulate(n, logits, 100_000 if d_k <= 16 else 50_000 if d_k <= 64 else 25_000, seed=d_k, width=d_k))


def test_no_exact_form_where_a_rows_logits_are_not_iid_given_the_query():
    assert exact.attention_row(16, 64, 0.5, 1.0, 1.0, True) is None  # QK-norm of entries with a mean
    assert exact.attention_row(16, 64, 0.5, 1.0, 1.0, False, rho=0.5) is None  # own key with a mean
    assert exact.attention_row(16, 64, 0.0, 1.0, 8.0, True, rho=0.5) is None  # own key under QK-norm
    assert exact.attention_row(1, 64, 0.0, 1.0, 1.0, False) is None  # one key: nothing to spread over
    with pytest.raises(ValueError, match="n >= 2 and s > 0"):
        exact.normal_row(8, 0.0)


def test_committed_saturation_and_gradient_results_agree_with_the_exact_theory():
    """Every committed point with an exact value: the measurement within its 99.9% Student-t interval
    (on the replicates' degrees of freedom), and the share outside the 95% intervals within 3 binomial
    standard errors of 5%."""
    import json
    from pathlib import Path

    from scipy import stats

    pairs = {
        "max_prob_mean": "theory_max_prob",
        "entropy_mean": "theory_entropy",
        "entropy_ratio_mean": "theory_entropy_ratio",
        "participation_mean": "theory_participation",
        "jacobian_sq_mean": "theory_jacobian_sq",
    }
    points, outside = 0, 0
    for path in sorted((Path(__file__).resolve().parent.parent / "results").glob("*/rows.json")):
        for row in json.loads(path.read_text()):
            if "replicates" not in row:  # not an attention experiment's row (the probe's iid columns predict
                continue  # what iid entries would give, not what a trained model does)
            for measured, exact_value in pairs.items():
                if row.get(exact_value) is None or not row.get(measured + "_se"):
                    continue
                z = abs(row[measured] - row[exact_value]) / row[measured + "_se"]
                df = row["replicates"] - 1
                assert z <= stats.t.ppf(0.9995, df), (path.parent.name, row["seq_len"], row["d_k"], measured, z)
                points += 1
                outside += z > stats.t.ppf(0.975, df)
    assert points > 400
    assert abs(outside - 0.05 * points) <= 3 * math.sqrt(points * 0.05 * 0.95), (outside, points)


@pytest.mark.parametrize("k", [1, 2, 3, 7, 8, 63, 64, 65, 1000])
def test_integer_powers_by_squaring_are_powers(k):
    """D^(n-1) in E[max p]: repeated squaring up to k = 64, exp(k log x) beyond, against Python's own
    float power of each value, to a relative k * 1e-16."""
    x = np.linspace(1e-3, 1.0, 1001) ** 0.01  # near 1, where the power of a large k keeps a value
    expected = np.array([float(v) ** k for v in x])
    assert np.allclose(exact._power(x, k), expected, rtol=4 * k * 2.0**-52, atol=0)
    assert np.array_equal(x, np.linspace(1e-3, 1.0, 1001) ** 0.01)  # the input is left as it was
