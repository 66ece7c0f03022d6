"""Closed forms against brute-force float64 simulation, numerical integration and published values."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from sqrtdk.core import theory
from sqrtdk.core.theory import Entries

Z = 5.0  # standard errors allowed: rare enough across the whole suite


def draw(rng, dist, size, df=10.0):
    """Standardised entries drawn by numpy and scipy directly, not by sqrtdk's sampling code."""
    if dist == "gaussian":
        return rng.normal(size=size)
    if dist == "uniform":
        return rng.uniform(-math.sqrt(3), math.sqrt(3), size=size)
    if dist == "rademacher":
        return rng.choice([-1.0, 1.0], size=size)
    return stats.t.rvs(df, size=size, random_state=rng) / math.sqrt(df / (df - 2))


def brute_force_scores(d_k, n, e: Entries, seed):
    """n independent dot products, each from its own q and k, in float64: no blocks, no shared rows (drawn
    2^20 entries at a time, so that memory stays small)."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, max(1, 2**20 // d_k)):
        rows = min(max(1, 2**20 // d_k), n - start)
        if e.rho:
            cov = [[1.0, e.rho], [e.rho, 1.0]]
            pairs = rng.multivariate_normal([0.0, 0.0], cov, size=(rows, d_k))
            a, b = pairs[..., 0], pairs[..., 1]
        else:
            a, b = draw(rng, e.dist, (rows, d_k), e.df), draw(rng, e.dist, (rows, d_k), e.df)
        out.append(np.einsum("ij,ij->i", e.mean + e.std * a, e.mean + e.std * b))
    return np.concatenate(out)


def kurtosis_and_se(x, batches=20):
    parts = np.array([stats.kurtosis(b) for b in np.split(x, batches)])
    return stats.kurtosis(x), parts.std(ddof=1) / math.sqrt(batches)


CASES = [
    (1, Entries()),
    (3, Entries(std=2.0)),
    (16, Entries(mean=0.5)),
    (64, Entries()),
    (8, Entries(mean=-1.0, std=0.5)),
    (256, Entries(mean=0.3, std=1.7)),
    (4, Entries("uniform")),
    (16, Entries("rademacher", mean=0.5)),
    (8, Entries("student-t", df=12.0)),
    (4, Entries(rho=0.5)),
    (32, Entries(rho=-0.8, mean=0.3, std=1.5)),
    (2, Entries("uniform", std=3.0)),
]


@pytest.mark.parametrize("d_k,e", CASES, ids=[f"{d}-{e}" for d, e in CASES])
def test_mean_variance_kurtosis_match_simulation(d_k, e):
    x = brute_force_scores(d_k, 400_000, e, seed=d_k)
    n = len(x)
    mu, var = theory.score_mean(d_k, e), theory.score_variance(d_k, e)
    assert abs(x.mean() - mu) < Z * math.sqrt(var / n)
    fourth = np.mean((x - x.mean()) ** 4)
    assert abs(x.var(ddof=1) - var) < Z * math.sqrt((fourth - var**2) / n)
    kurtosis, se = kurtosis_and_se(x)
    assert abs(kurtosis - theory.score_excess_kurtosis(d_k, e)) < Z * se


def test_reference_closed_forms():
    for d in (1, 16, 64, 1024):
        assert theory.score_excess_kurtosis(d) == pytest.approx(6 / d)
        assert theory.score_excess_kurtosis(d, Entries(std=3.0)) == pytest.approx(6 / d)  # scale-free
        assert theory.score_excess_kurtosis(d, Entries("rademacher")) == pytest.approx(-2 / d)
        assert theory.score_excess_kurtosis(d, Entries("uniform")) == pytest.approx(0.24 / d)
        assert theory.score_mean(d, Entries(rho=0.5)) == pytest.approx(d * 0.5)
        assert theory.score_variance(d, Entries(rho=0.5)) == pytest.approx(d * 1.25)
        mu, sigma = 0.7, 1.3
        assert theory.score_mean(d, Entries(mean=mu, std=sigma)) == pytest.approx(d * mu**2)
        assert theory.score_variance(d, Entries(mean=mu, std=sigma)) == pytest.approx(
            d * (sigma**4 + 2 * sigma**2 * mu**2)
        )


@pytest.mark.parametrize("df", [4.5, 6.0, 12.0, 30.0])
def test_student_t_fourth_moment(df):
    """m4 of the standardised t is 3 + 6 / (df - 4), scipy's kurtosis plus 3."""
    e = Entries("student-t", df=df)
    assert e.moment(2) == pytest.approx(1.0)
    assert e.moment(4) == pytest.approx(3 + 6 / (df - 4))
    assert e.moment(4) == pytest.approx(float(stats.t.stats(df, moments="k")) + 3)
    m4 = e.moment(4)
    assert theory.score_excess_kurtosis(10, e) == pytest.approx((m4 * m4 - 3) / 10)


def test_undefined_moments_are_none():
    assert Entries("student-t", df=4.0).moment(4) == math.inf
    assert theory.score_excess_kurtosis(16, Entries("student-t", df=3.0)) is None
    assert theory.score_variance(16, Entries("student-t", df=3.0)) == pytest.approx(16)  # finite for df > 2
    assert theory.cosine_variance(16, Entries(mean=0.5)) is None


@pytest.mark.parametrize("dist", ["gaussian", "uniform", "rademacher"])
@pytest.mark.parametrize("d_k", [2, 8, 64])
def test_cosine_variance_is_one_over_d(dist, d_k):
    rng = np.random.default_rng(d_k)
    q, k = draw(rng, dist, (200_000, d_k)), draw(rng, dist, (200_000, d_k))
    with np.errstate(invalid="ignore"):
        cos = np.einsum("ij,ij->i", q, k) / (np.linalg.norm(q, axis=1) * np.linalg.norm(k, axis=1))
    cos = cos[np.isfinite(cos)]
    sq = cos**2
    assert abs(sq.mean() - theory.cosine_variance(d_k)) < Z * sq.std() / math.sqrt(len(sq))


@pytest.mark.parametrize("d_k", [1, 3, 16])
def test_cosine_kurtosis_of_isotropic_vectors(d_k):
    rng = np.random.default_rng(30 + d_k)
    q, k = rng.normal(size=(400_000, d_k)), draw(rng, "rademacher", (400_000, d_k))
    cos = np.einsum("ij,ij->i", q, k) / (np.linalg.norm(q, axis=1) * np.linalg.norm(k, axis=1))
    kurtosis, se = kurtosis_and_se(cos)
    assert abs(kurtosis - theory.cosine_excess_kurtosis(d_k)) < Z * se
    assert theory.cosine_excess_kurtosis(d_k, Entries("uniform")) is None  # not isotropic


INITS = [
    ("normal", 0.05, False, Entries()),
    ("lecun", None, False, Entries()),
    ("lecun", None, True, Entries(std=3.0)),
    ("xavier", None, False, Entries(mean=0.5)),
    ("torch-linear", None, False, Entries()),
    ("torch-mha", None, True, Entries("uniform", mean=1.0)),
    ("torch-linear", None, False, Entries("rademacher")),
]


@pytest.mark.parametrize(
    "init,init_std,layernorm,e", INITS, ids=[f"{i}-{ln}-{e.dist}-{e.mean}" for i, _, ln, e in INITS]
)
def test_projected_variance_matches_simulation(init, init_std, layernorm, e):
    """A head's scores over all pairs of a sequence, one fresh layer per replicate, in float64."""
    d_model, heads, n, replicates = 64, 4, 16, 400
    d_k = d_model // heads
    rng = np.random.default_rng(11)
    bound = {
        "torch-linear": 1 / math.sqrt(d_model),
        "torch-mha": math.sqrt(6 / (4 * d_model)),
        "xavier": math.sqrt(6 / (2 * d_model)),
    }

    def layer():
        if init == "normal":
            return rng.normal(0, init_std, (d_model, d_model)), np.zeros(d_model)
        if init == "lecun":
            return rng.normal(0, 1 / math.sqrt(d_model), (d_model, d_model)), np.zeros(d_model)
        w = rng.uniform(-bound[init], bound[init], (d_model, d_model))
        b = rng.uniform(-bound[init], bound[init], d_model) if init == "torch-linear" else np.zeros(d_model)
        return w, b

    estimates = []
    for _ in range(replicates):
        x = e.mean + e.std * draw(rng, e.dist, (n, d_model))
        if layernorm:
            x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
        (w_q, b_q), (w_k, b_k) = layer(), layer()
        q, k = (x @ w_q + b_q)[:, :d_k], (x @ w_k + b_k)[:, :d_k]  # head 0
        estimates.append(np.mean((q @ k.T) ** 2))  # the mean is 0
    estimates = np.array(estimates)
    truth = theory.projected_score_variance(d_model, heads, n, e, init, init_std, layernorm)
    assert abs(estimates.mean() - truth) < Z * estimates.std(ddof=1) / math.sqrt(replicates)


def test_init_variances_are_the_documented_ones():
    d = 512
    assert theory.init_variances("lecun", d) == (1 / d, 0.0)
    assert theory.init_variances("xavier", d) == (2 / (d + d), 0.0)
    assert theory.init_variances("torch-linear", d) == pytest.approx(((1 / math.sqrt(d)) ** 2 / 3,) * 2)
    assert theory.init_variances("torch-mha", d) == pytest.approx((6 / (3 * d + d) / 3, 0.0))  # (3d, d) xavier
    assert theory.init_variances("normal", d, 0.02) == pytest.approx((0.0004, 0.0))


@pytest.mark.parametrize("d_k", [2, 3, 10, 64, 150])
def test_bessel_form_equals_normal_mixture(d_k):
    x = np.array([0.03, 0.5, 1.0, 3.0, 10.0]) * math.sqrt(d_k)
    assert theory.score_density(x, d_k) == pytest.approx(theory.density_mixture(x, d_k), rel=1e-8)


def test_density_d1_is_k0_over_pi():
    x = np.array([0.01, 0.5, 2.0, 7.0])
    assert theory.score_density(x, 1) == pytest.approx(special.k0(x) / math.pi, rel=1e-12)


@pytest.mark.parametrize(
    "d_k,std,c", [(1, 1.0, 1.0), (5, 2.0, 1.0), (64, 1.0, 0.125), (1024, 1.0, 1 / 32), (4096, 0.5, 1.0)]
)
def test_density_is_normalised_with_theory_variance(d_k, std, c):
    f = lambda z: theory.score_density(np.array([z]), d_k, std, c)[0]  # noqa: E731
    sd = math.sqrt(theory.score_variance(d_k, Entries(std=std), c))
    total = 2 * integrate.quad(f, 0, 40 * sd, limit=400)[0]
    second = 2 * integrate.quad(lambda z: z * z * f(z), 0, 40 * sd, limit=400)[0]
    assert total == pytest.approx(1.0, abs=1e-6)
    assert second == pytest.approx(sd**2, rel=1e-6)


def test_density_matches_simulated_histogram():
    d_k = 4
    x = brute_force_scores(d_k, 400_000, Entries(), seed=7)
    edges = np.linspace(-6, 6, 25)
    counts, _ = np.histogram(x, edges)
    expected = np.array(
        [
            integrate.quad(lambda z: theory.score_density(np.array([z]), d_k)[0], a, b)[0]
            for a, b in itertools.pairwise(edges)
        ]
    ) * len(x)
    keep = expected > 20
    chi2 = np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum()) > 1e-4


def _rem_simulated(n: int, s: float, rows: int, seed: int) -> tuple[float, float, float, float]:
    """Mean entropy and mean 1 / sum p^2 of iid N(0, s^2) logits, with standard errors: plain float64."""
    x = np.random.default_rng(seed).normal(0.0, s, (rows, n))
    x -= x.max(axis=1, keepdims=True)
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    h = -(p * np.log(p, where=p > 0, out=np.zeros_like(p))).sum(axis=1)
    part = 1 / (p * p).sum(axis=1)
    return h.mean(), h.std(ddof=1) / math.sqrt(rows), part.mean(), part.std(ddof=1) / math.sqrt(rows)


@pytest.mark.parametrize(
    "metric,n,fraction",
    [
        ("entropy", 8, 0.3),
        ("entropy", 63, 0.3),
        ("entropy", 64, 0.4),
        ("entropy", 1023, 0.4),
        ("entropy", 1024, 0.5),
        ("entropy", 4096, 0.5),
        ("participation", 8, 0.1),
        ("participation", 63, 0.1),
        ("participation", 64, 0.2),
        ("participation", 4096, 0.2),
    ],
)
def test_rem_forms_hold_to_their_accuracy_at_the_edges_of_their_domain(metric, n, fraction):
    """At the largest spread each step of REM_DOMAIN allows, the form is within REM_ACCURACY of brute force."""
    s = fraction * theory.critical_logit_std(n)
    d_k = 64  # a fixed spread s: QK-norm logits g cos(q, k) with g = s sqrt(d_k)
    form = {"entropy": theory.rem_entropy, "participation": theory.rem_participation}[metric]
    predicted = form(n, d_k, c=s * math.sqrt(d_k), normalised=True)
    assert predicted is not None
    h, h_se, part, part_se = _rem_simulated(n, s, max(2000, 2**22 // n), seed=n)
    measured, se = (h, h_se) if metric == "entropy" else (part, part_se)
    assert abs(predicted - measured) <= theory.REM_ACCURACY * measured + 3 * se
    # just past the edge, no theory
    assert form(n, d_k, c=1.02 * s * math.sqrt(d_k), normalised=True) is None


def test_rem_forms_are_empty_outside_their_domain():
    assert theory.rem_entropy(7, 64, c=0.01, normalised=True) is None  # too few keys
    unit = Entries()
    assert theory.rem_entropy(128, 64, unit, c=1 / 8) is not None
    for entries in (Entries("student-t", df=3.0), Entries("uniform"), Entries(rho=0.5)):
        assert theory.rem_entropy(128, 64, entries, c=1 / 8) is None  # logits not iid normal in a row
    assert theory.rem_entropy(128, 16, unit, c=4.0, normalised=True) is None  # QK-norm, d_k < 32
    assert theory.rem_entropy(128, 64, Entries(mean=1.0), c=8.0, normalised=True) is None
    assert theory.logit_std(64, Entries(mean=1.0), 8.0, normalised=True) is None
    assert theory.rem_participation(16, 64, unit, c=1 / 8) is None  # s = 1 at n = 16: 28% off
