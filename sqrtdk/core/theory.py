"""Closed forms for the moments and the density of attention scores, under every setting sqrtdk samples.

Sources:
- Vaswani et al. 2017, "Attention Is All You Need", sec. 3.2.1 and footnote 4: for independent entries with
  mean 0 and variance 1, q.k = sum_i q_i k_i has mean 0 and variance d_k.
- A score is a sum of d_k iid products q_i k_i, so its mean and variance are d_k times those of one
  product and its excess kurtosis is that of one product over d_k. The product's raw moments follow from
  the entries': E[q_i^a k_i^b] = E[q^a] E[k^b] for independent entries, and for Gaussian entries with
  corr(q_i, k_i) = rho from k = rho q + sqrt(1 - rho^2) z (z independent of q). This gives the closed
  forms: E[q.k] = d mu^2 and Var(q.k) = d (sigma^4 + 2 sigma^2 mu^2); excess kurtosis
  (m4_q m4_k - 3) / d for unit-variance mean-0 entries (Gaussian 6/d, Rademacher -2/d, uniform 0.24/d);
  E[q.k] = d rho and Var(q.k) = d (1 + rho^2) for correlated unit Gaussians (the mean grows like d: the
  reason muP, Yang et al. 2022, Tensor Programs V, scales by 1/d).
- Gaussian entries with mean 0 and std sigma: q.k / sigma^2 has the symmetric variance-gamma density
  f(z) = |z|^((d-1)/2) K_((d-1)/2)(|z|) / (2^((d-1)/2) sqrt(pi) Gamma(d/2)),
  equivalently the normal mixture z | r ~ N(0, r) with r = |q|^2 ~ chi^2_d.
- q and k normalised to unit length (QK-norm): for independent q and k whose entries are iid, symmetric
  and mean 0, E[cos(q, k)] = 0 and E[cos^2] = sum_i E[q_i^2 / |q|^2] E[k_i^2 / |k|^2] = 1/d exactly.
- Projections (sec. "projected" below): q = x W_q + b_q per head; the moments follow from the weights'
  and the tokens' second and fourth moments.
- Scalable-Softmax (Nakanishi 2025, "Scalable-Softmax Is Superior for Attention"): logits times s ln n.

Functions take the constant c applied to the scores, so a scaled row is the same formula times c^k.
The module needs numpy only for the density, so the command line can read its names at start-up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DISTRIBUTIONS = ("gaussian", "uniform", "rademacher", "student-t")
INITS = ("normal", "lecun", "xavier", "torch-linear", "torch-mha")


@dataclass(frozen=True)
class Entries:
    """How every entry of q and k (or of the tokens x, for projected inputs) is distributed.

    `mean` + `std` * z, with z standardised (mean 0, variance 1) from `dist`; Student-t has `df` degrees of
    freedom; `rho` is corr(q_i, k_i) between a query and its own key, for Gaussian entries.
    """

    dist: str = "gaussian"
    mean: float = 0.0
    std: float = 1.0
    df: float = 10.0
    rho: float = 0.0

    def moment(self, m: int) -> float:
        """E[z^m] of the standardised entry; inf where it does not exist (Student-t, m >= df)."""
        if m % 2:
            return 0.0 if self.dist != "student-t" or m < self.df else math.inf
        if self.dist == "gaussian":
            return float(math.prod(range(m - 1, 0, -2)))  # (m - 1)!!
        if self.dist == "uniform":  # on [-sqrt 3, sqrt 3]
            return 3 ** (m / 2) / (m + 1)
        if self.dist == "rademacher":
            return 1.0
        if m >= self.df:
            return math.inf
        nu = self.df  # t_nu scaled by sqrt((nu - 2) / nu) to unit variance
        log_t = (
            m / 2 * math.log(nu)
            + math.lgamma((m + 1) / 2)
            + math.lgamma((nu - m) / 2)
            - 0.5 * math.log(math.pi)
            - math.lgamma(nu / 2)
        )
        return math.exp(log_t + m / 2 * math.log((nu - 2) / nu))

    def finite_moments(self) -> float:
        """Orders of moment that exist: all for bounded and Gaussian entries, below df for Student-t."""
        return self.df if self.dist == "student-t" else math.inf

    def joint_moment(self, i: int, j: int) -> float:
        """E[a^i b^j] for standardised (a, b) = (q_i, k_i) - mean, over std: b = rho a + sqrt(1 - rho^2) z."""
        s = math.sqrt(1 - self.rho * self.rho)
        total = 0.0
        for m in range(j + 1):
            weight = math.comb(j, m) * self.rho**m * s ** (j - m)
            if weight:
                total += weight * _mul(self.moment(i + m), self.moment(j - m))
        return total

    def product_central_moments(self) -> tuple[float, float, float, float]:
        """Mean and 2nd to 4th central moments of one product q_i k_i (inf where they do not exist).

        With q_i = mu + sigma a and k_i = mu + sigma b, q_i k_i - E = sigma^2 u with
        u = lam (a + b) + (a b - rho), lam = mu / sigma: the central moments are sigma^(2m) E[u^m], expanded
        in the joint moments of (a, b). No large raw moments are subtracted from each other, so they hold
        for any mean (E[x^2] - E[x]^2 would lose every digit once mu^2 >> sigma^2).
        """
        lam, rho = self.mean / self.std, self.rho if self.dist == "gaussian" else 0.0
        out = [self.mean**2 + rho * self.std**2]
        for m in range(2, 5):
            total = 0.0
            for k in range(m + 1):  # lam^k (a + b)^k (a b - rho)^(m - k)
                for i in range(k + 1):
                    for l in range(m - k + 1):
                        coef = math.comb(m, k) * lam**k * math.comb(k, i) * math.comb(m - k, l) * (-rho) ** (m - k - l)
                        if coef:
                            total += _mul(coef, self.joint_moment(i + l, k - i + l))
            out.append(self.std ** (2 * m) * total)
        return out[0], out[1], out[2], out[3]

    def norm_moments(self, d: int) -> tuple[float, float]:
        """E|x|^2 and E|x|^4 for a vector of d iid entries."""
        m2 = self.mean**2 + self.std**2
        m4 = self.mean**4 + 6 * self.mean**2 * self.std**2 + self.std**4 * self.moment(4)
        return d * m2, d * m4 + d * (d - 1) * m2 * m2


def _mul(a: float, b: float) -> float:
    """a * b where 0 * inf is 0: a term whose coefficient vanishes does not count."""
    return 0.0 if a == 0 or b == 0 else a * b


def _product_cumulants(entries: Entries) -> tuple[float, float, float]:
    """Mean, variance and fourth cumulant of one product q_i k_i."""
    mean, m2, _, m4 = entries.product_central_moments()
    return mean, m2, m4 - 3 * m2 * m2 if math.isfinite(m4) else math.inf


DEFAULT = Entries()


def score_mean(d_k: int, entries: Entries = DEFAULT, c: float = 1.0) -> float:
    """E[c q.k] = c d E[q_i k_i] (= c d mu^2, or c d rho for unit Gaussians)."""
    return c * d_k * _product_cumulants(entries)[0]


def score_variance(d_k: int, entries: Entries = DEFAULT, c: float = 1.0) -> float:
    """Var(c q.k) = c^2 d Var(q_i k_i) (= c^2 d (sigma^4 + 2 sigma^2 mu^2) for independent entries)."""
    return c * c * d_k * _product_cumulants(entries)[1]


def score_excess_kurtosis(d_k: int, entries: Entries = DEFAULT) -> float | None:
    """Excess kurtosis of q.k (any scale c): kappa_4 / kappa_2^2 of one product, over d_k; None where the
    fourth moment does not exist (Student-t with df <= 4)."""
    _, var, kappa4 = _product_cumulants(entries)
    return kappa4 / (var * var) / d_k if math.isfinite(kappa4) else None


def cosine_variance(d_k: int, entries: Entries = DEFAULT) -> float | None:
    """Var(cos(q, k)) = 1/d for independent, symmetric, mean-0 iid entries; None otherwise (no closed form)."""
    return 1.0 / d_k if entries.mean == 0 and entries.rho == 0 else None


def cosine_excess_kurtosis(d_k: int, entries: Entries = DEFAULT) -> float | None:
    """Excess kurtosis of cos(q, k) for isotropic q (mean-0 Gaussian) and an independent k: -6 / (d + 2).

    cos(q, k) is then distributed as one coordinate u_1 of a uniform unit vector, u_1^2 ~ Beta(1/2, (d-1)/2):
    E[u_1^2] = 1/d, E[u_1^4] = 3 / (d (d + 2)). Bounded by 1, it has lighter tails than a normal curve.
    """
    return -6.0 / (d_k + 2) if entries.dist == "gaussian" and entries.mean == 0 and entries.rho == 0 else None


def score_density(z: np.ndarray, d_k: int, std: float = 1.0, c: float = 1.0) -> np.ndarray:
    """Density of c q.k for mean-0 independent Gaussian entries with std `std`: variance-gamma, scaled.

    The Bessel closed form is used where it is finite in float64; at large d_k, where K_nu overflows near
    the centre, the same density is computed as its chi-square normal mixture.
    """
    import numpy as np
    from scipy import special

    unit = c * std * std  # c q.k = unit * z with z of unit-variance entries
    x = np.abs(np.asarray(z, dtype=np.float64)) / unit
    nu = (d_k - 1) / 2
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if d_k == 1:
            log_f = np.log(special.k0e(x)) - x - math.log(math.pi)
        else:
            log_f = (
                nu * np.log(x)
                + np.log(special.kve(nu, x))
                - x
                - nu * math.log(2)
                - 0.5 * math.log(math.pi)
                - special.gammaln(d_k / 2)
            )
    bad = ~np.isfinite(log_f)
    if bad.any():
        with np.errstate(divide="ignore"):  # 0 beyond float64's range: log 0 = -inf, exp(-inf) = 0
            log_f[bad] = np.log(density_mixture(x[bad], d_k))
    return np.exp(log_f) / unit


def has_density(entries: Entries) -> bool:
    """The exact density is implemented for independent mean-0 Gaussian entries only."""
    return entries.dist == "gaussian" and entries.mean == 0 and entries.rho == 0


def density_mixture(x: np.ndarray, d_k: int, points: int = 4001) -> np.ndarray:
    """Density of q.k (unit-variance Gaussian entries) as E_r[N(x; 0, r)], r ~ chi^2_d: quadrature in ln r."""
    import numpy as np
    from scipy import special

    half = d_k / 2  # the chi-square law of r from scipy.special (scipy.stats takes a second or more to import)
    lo = math.log(2 * special.gammaincinv(half, 1e-16)) - 2.0
    hi = math.log(2 * special.gammaincinv(half, 1 - 1e-16)) + 2.0
    t = np.linspace(lo, hi, points)  # t = ln r
    r = np.exp(t)
    weights = np.full(points, t[1] - t[0])
    weights[[0, -1]] /= 2  # trapezoid rule, spectrally accurate for this smooth, decaying integrand
    log_chi2 = special.xlogy(half - 1, r) - r / 2 - special.gammaln(half) - half * math.log(2)
    log_prior = log_chi2 + t + np.log(weights)  # (points,)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    log_normal = -0.5 * (x[:, None] ** 2) / r - 0.5 * np.log(2 * math.pi * r)  # (len(x), points)
    return np.exp(special.logsumexp(log_prior + log_normal, axis=1))


@functools.lru_cache(maxsize=4096)
def score_tail(t: float, d_k: int) -> float:
    """P(|q.k| >= t) for independent N(0, 1) entries: twice the variance-gamma density integrated from t
    (adaptive quadrature, relative accuracy 1e-10). 0 where the density at t underflows float64: the
    tail there is below 1e-300 (tests/test_precision.py integrates it at that point for d_k = 1 to 65536)."""
    import numpy as np
    from scipy import integrate

    if t <= 0:
        return 1.0

    def f(z: float) -> float:
        return float(score_density(np.array([z]), d_k)[0])

    if f(t) == 0.0:
        return 0.0
    value, _ = integrate.quad(f, t, math.inf, epsabs=0.0, epsrel=1e-10, limit=400)
    return min(1.0, 2 * value)


# ---- projected inputs: q = x W_q + b_q, k = x W_k + b_k, one head of d_k = d_model / h columns ----
#
# With W and b of zero mean, independent entries of variance v_w and v_b, and q, k made from tokens x:
# E[q_a q_b | x] = delta_ab (|x|^2 v_w + v_b), and W_q, W_k independent, so for two different tokens
# E[(q.k)^2] = d_k (E|x|^2 v_w + v_b)^2, and for a token with itself d_k E[(|x|^2 v_w + v_b)^2]. The mean
# is 0. A self-attention block of n tokens has n^2 scores, n of them a token with itself.


def init_variances(init: str, d_model: int, init_std: float | None = None) -> tuple[float, float]:
    """Variances (v_w, v_b) of a (d_model, d_model) projection's weights and biases at initialisation.

    normal: N(0, init_std^2); lecun: N(0, 1/fan_in) (LeCun et al. 1998); xavier: U with variance
    2/(fan_in + fan_out) = 1/d_model (Glorot and Bengio 2010); torch-linear: nn.Linear's
    kaiming_uniform(a=sqrt 5) weights and its bias, both U(+-1/sqrt(fan_in)), variance 1/(3 fan_in);
    torch-mha: nn.MultiheadAttention's packed (3 d_model, d_model) in_proj_weight, xavier_uniform, variance
    2/(4 d_model), and zero biases.
    """
    if init == "normal":
        return (0.02 if init_std is None else init_std) ** 2, 0.0
    if init in ("lecun", "xavier"):
        return 1.0 / d_model, 0.0
    if init == "torch-linear":
        return 1.0 / (3 * d_model), 1.0 / (3 * d_model)
    if init == "torch-mha":
        return 2.0 / (4 * d_model), 0.0
    raise ValueError(f"unknown init {init!r}")


LAYERNORM_EPS = 1e-5  # as in PyTorch's LayerNorm; the sampler uses the same


def layernorm_theory_holds(entries: Entries, d_model: int) -> bool:
    """Whether |x|^2 = d_model holds for layer-normalised tokens to 0.1%: eps must be small beside their
    variance (a token of variance v comes out with |x|^2 = d v / (v + eps)), and a token must almost never
    be constant, which LayerNorm sends to 0 (one entry always is; d Rademacher entries are all equal with
    probability 2^(1 - d))."""
    if d_model < 2 or (entries.dist == "rademacher" and 2.0 ** (1 - d_model) > 1e-3):
        return False
    return entries.std**2 >= 1000 * LAYERNORM_EPS


def projected_score_variance(
    d_model: int,
    heads: int,
    n: int,
    entries: Entries,
    init: str,
    init_std: float | None,
    layernorm: bool,
    c: float = 1.0,
) -> float:
    """Var(c q.k) over all n^2 query-key pairs of one head in a self-attention block of n tokens.

    Layer-normalised tokens have |x|^2 = d_model exactly, which LayerNorm's eps (LAYERNORM_EPS) makes
    true to 0.1% only when std^2 >= 1000 eps (`layernorm_theory_holds`).
    """
    d_k = d_model // heads
    v_w, v_b = init_variances(init, d_model, init_std)
    x2, x4 = (d_model, d_model**2) if layernorm else entries.norm_moments(d_model)
    other = d_k * (x2 * v_w + v_b) ** 2
    itself = d_k * (v_w * v_w * x4 + 2 * v_w * v_b * x2 + v_b * v_b)
    return c * c * ((n - 1) * other + itself) / n


# ---- softmax of one row of scores: the random-energy-model regime ----
#
# Given its query q, a row's logits c q.k_j are iid with spread s^2 = c^2 sigma^2 |q|^2 (the shared part
# c mu sum_a q_a cancels in the softmax). For iid N(0, s^2) logits with s well below s_c = sqrt(2 ln n)
# (random-energy-model asymptotics: Derrida 1981, "Random-energy model: an exactly solvable model of
# disordered systems", Phys. Rev. B 24, 2613; for attention at initialisation, Giorlandino and Goldt 2025,
# arXiv 2505.24333): E[entropy] ~ ln n - s^2/2 and
# 1/sum p^2 ~ n exp(-s^2); above s_c the weights freeze onto a few keys. The forms below average these over
# the query: |q|^2 / sigma^2 is noncentral chi-square with d_k degrees of freedom and noncentrality
# d_k mu^2 / sigma^2. Under QK-norm the spread is exactly g^2 / d_k whatever the query.


def critical_logit_std(n: int) -> float:
    """s_c = sqrt(2 ln n): the logit spread where n iid normal logits freeze onto a few keys."""
    return math.sqrt(2 * math.log(n))


def logit_std(d_k: int, entries: Entries = DEFAULT, c: float = 1.0, normalised: bool = False) -> float | None:
    """Root-mean-square within-row spread of the logits: sqrt(E[c^2 sigma^2 |q|^2]), or c / sqrt(d_k) for
    unit q and k whose entries are mean 0 and independent (with a mean or a correlated own key the cosines
    of one row have no closed-form spread: None)."""
    if normalised:
        return c / math.sqrt(d_k) if entries.mean == 0 and entries.rho == 0 else None
    return math.sqrt(c * c * entries.std**2 * d_k * (entries.std**2 + entries.mean**2))


# Where the random-energy-model forms hold to REM_ACCURACY (relative), as a largest spread s / s_c by
# sequence length: (smallest n, largest s / s_c) steps, measured against brute-force float64 simulation of
# iid N(0, s^2) logits (tests/test_theory.py checks every step's edge). Below n = 8 the finite-n
# corrections exceed it at any useful spread. The participation's domain is narrower: the mean of
# 1 / sum p^2 parts from n exp(-s^2) (Jensen's gap) long before the second moment freezes at s_c / 2.
REM_ACCURACY = 0.02
REM_DOMAIN = {"entropy": ((8, 0.3), (64, 0.4), (1024, 0.5)), "participation": ((8, 0.1), (64, 0.2))}
REM_QKNORM_MIN_D_K = 32  # below it, cosines are too far from normal (bounded by 1) for the forms
REM_SPREAD_QUANTILE = 0.9  # rows whose query norm is at this quantile must still lie in the domain


def rem_domain(n: int, metric: str) -> float | None:
    """The largest s / s_c at which the `metric` form holds to REM_ACCURACY for n keys; None if nowhere."""
    limit = None
    for smallest, fraction in REM_DOMAIN[metric]:
        if n >= smallest:
            limit = fraction
    return limit


def _upper_spread(d_k: int, entries: Entries, c: float, normalised: bool) -> float | None:
    """The within-row logit spread of a query whose norm is at the REM_SPREAD_QUANTILE: the rows that
    decide whether the forms hold when |q| varies (|q|^2 / sigma^2 is noncentral chi-square)."""
    if normalised:
        return logit_std(d_k, entries, c, normalised)
    noncentrality = d_k * entries.mean**2 / entries.std**2
    if noncentrality:
        from scipy import stats  # a second or more to import: only for entries with a mean

        x = stats.ncx2.ppf(REM_SPREAD_QUANTILE, d_k, noncentrality)
    else:
        from scipy import special

        x = 2 * special.gammaincinv(d_k / 2, REM_SPREAD_QUANTILE)  # the chi-square quantile
    return c * entries.std**2 * math.sqrt(x)


def rem_applies(
    metric: str, n: int, d_k: int, entries: Entries = DEFAULT, c: float = 1.0, normalised: bool = False
) -> bool:
    """Whether the random-energy-model form of `metric` holds to REM_ACCURACY here: Gaussian entries with
    no correlated own key (the forms need iid normal logits within a row), mean-0 entries and
    d_k >= REM_QKNORM_MIN_D_K under QK-norm, and the spread inside rem_domain(n, metric)."""
    limit = rem_domain(n, metric) if n >= 2 else None
    if limit is None or entries.dist != "gaussian" or entries.rho != 0:
        return False
    if normalised and (entries.mean != 0 or d_k < REM_QKNORM_MIN_D_K):
        return False
    spread = _upper_spread(d_k, entries, c, normalised)
    return spread is not None and spread <= limit * critical_logit_std(n)


def rem_entropy(n: int, d_k: int, entries: Entries = DEFAULT, c: float = 1.0, normalised: bool = False) -> float | None:
    """E[entropy] ~ ln n - E[s^2]/2 where it holds (rem_applies); None elsewhere."""
    if not rem_applies("entropy", n, d_k, entries, c, normalised):
        return None
    s = logit_std(d_k, entries, c, normalised)
    assert s is not None
    return math.log(n) - s * s / 2


def rem_participation(
    n: int, d_k: int, entries: Entries = DEFAULT, c: float = 1.0, normalised: bool = False
) -> float | None:
    """E[1/sum p^2] ~ n E[exp(-s^2)] where it holds (rem_applies); None elsewhere."""
    if not rem_applies("participation", n, d_k, entries, c, normalised):
        return None
    if normalised:
        return n * math.exp(-c * c / d_k)
    t = -c * c * entries.std**4  # exp(-s^2) = exp(t X), X = |q|^2 / sigma^2 ~ noncentral chi^2
    noncentrality = d_k * entries.mean**2 / entries.std**2
    return n * math.exp(noncentrality * t / (1 - 2 * t)) * (1 - 2 * t) ** (-d_k / 2)


def uniform_jacobian_fro(n: int) -> float:
    """||J||_F for the uniform row p = 1/n: sqrt(n - 1) / n."""
    return math.sqrt(n - 1) / n


# ---- the Scalable-Softmax toy: n logits, all `low` but one `high` ----

PUBLISHED_SSMAX = {  # Nakanishi 2025 (arXiv 2501.19399), its toy example: largest weight for high = 3, low = -2, s = 0.43
    "none": {10: 0.9428, 100: 0.5999, 1000: 0.1293, 10000: 0.0146},
    "logn": {10: 0.9401, 100: 0.9951, 1000: 0.9996, 10000: 1.0000},
}


def toy_max_weight(n: int, high: float, low: float, c: float) -> float:
    """Largest softmax weight of n logits c * (high, low, ..., low): 1 / (1 + (n - 1) exp(-c (high - low))),
    evaluated as 1 / (1 + e^x) with x = ln(n - 1) - c (high - low), which overflows for no logits."""
    if n == 1:
        return 1.0
    x = math.log(n - 1) - c * (high - low)
    return 1.0 / (1.0 + math.exp(x)) if x < 700 else 0.0
