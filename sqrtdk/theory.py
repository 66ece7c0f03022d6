"""Closed forms for the moments and the density of attention scores.

Sources (see also REFERENCE.md of the project):
- Vaswani et al. 2017, "Attention Is All You Need", sec. 3.2.1 and footnote 4: for independent entries with
  mean 0 and variance 1, q.k = sum_i q_i k_i has mean 0 and variance d_k.
- Entries with mean mu and std sigma: E[q.k] = d mu^2, Var(q.k) = d (sigma^4 + 2 sigma^2 mu^2).
- Excess kurtosis of a sum of d iid terms is the excess kurtosis of one term over d; one term is the product
  q_i k_i of independent entries, whose raw moments multiply: E[(q_i k_i)^n] = E[q_i^n] E[k_i^n].
  Mean-0, unit-variance Gaussian entries give (9 - 3)/d = 6/d.
- Gaussian entries with mean 0 and std sigma: q.k / sigma^2 has the symmetric variance-gamma density
  f(z) = |z|^((d-1)/2) K_((d-1)/2)(|z|) / (2^((d-1)/2) sqrt(pi) Gamma(d/2)),
  equivalently the normal mixture z | r ~ N(0, r) with r = |q|^2 ~ chi^2_d.

Functions take the scale c applied to the scores, so a scaled row is the same formula times c^k.
"""

from __future__ import annotations

import math

import numpy as np

SCALINGS = ("none", "sqrt")


def scale(d_k: int, scaling: str) -> float:
    """The factor c in c * q.k: 1 for `none`, 1/sqrt(d_k) for `sqrt` (Vaswani et al. 2017)."""
    if scaling == "none":
        return 1.0
    if scaling == "sqrt":
        return 1.0 / math.sqrt(d_k)
    raise ValueError(f"unknown scaling {scaling!r}")


def gaussian_raw_moments(mean: float, std: float) -> tuple[float, float, float, float]:
    """E[x], E[x^2], E[x^3], E[x^4] for x ~ N(mean, std^2)."""
    m, v = mean, std * std
    return m, m * m + v, m**3 + 3 * m * v, m**4 + 6 * m * m * v + 3 * v * v


def score_mean(d_k: int, mean: float, std: float, c: float = 1.0) -> float:
    """E[c q.k] = c d mu^2."""
    return c * d_k * mean * mean


def score_variance(d_k: int, mean: float, std: float, c: float = 1.0) -> float:
    """Var(c q.k) = c^2 d (sigma^4 + 2 sigma^2 mu^2)."""
    return c * c * d_k * (std**4 + 2 * std * std * mean * mean)


def score_excess_kurtosis(d_k: int, mean: float, std: float) -> float:
    """Excess kurtosis of q.k (any scale c): kappa_4 / kappa_2^2 of one product q_i k_i, over d_k."""
    p1, p2, p3, p4 = (m * m for m in gaussian_raw_moments(mean, std))  # moments of q_i k_i
    var = p2 - p1 * p1
    central4 = p4 - 4 * p3 * p1 + 6 * p2 * p1 * p1 - 3 * p1**4
    return (central4 / (var * var) - 3.0) / d_k


def score_density(z: np.ndarray, d_k: int, std: float = 1.0, c: float = 1.0) -> np.ndarray:
    """Density of c q.k for mean-0 Gaussian entries with std `std`: variance-gamma, scaled.

    The Bessel closed form is used where it is finite in float64; at large d_k, where K_nu overflows near
    the centre, the same density is computed as its chi-square normal mixture.
    """
    from scipy import special

    unit = c * std * std  # c q.k = unit * z with z of unit-variance entries
    x = np.abs(np.asarray(z, dtype=np.float64)) / unit
    nu = (d_k - 1) / 2
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if d_k == 1:
            log_f = np.log(special.k0e(x)) - x - math.log(math.pi)
        else:
            log_f = (nu * np.log(x) + np.log(special.kve(nu, x)) - x - nu * math.log(2)
                     - 0.5 * math.log(math.pi) - special.gammaln(d_k / 2))
    bad = ~np.isfinite(log_f)
    if bad.any():
        log_f[bad] = np.log(density_mixture(x[bad], d_k))
    return np.exp(log_f) / unit


def density_mixture(x: np.ndarray, d_k: int, points: int = 4001) -> np.ndarray:
    """Density of q.k (unit-variance Gaussian entries) as E_r[N(x; 0, r)], r ~ chi^2_d: quadrature in ln r."""
    from scipy import special, stats

    lo = math.log(stats.chi2.ppf(1e-16, d_k)) - 2.0
    hi = math.log(stats.chi2.ppf(1 - 1e-16, d_k)) + 2.0
    t = np.linspace(lo, hi, points)  # t = ln r
    r = np.exp(t)
    weights = np.full(points, t[1] - t[0])
    weights[[0, -1]] /= 2  # trapezoid rule, spectrally accurate for this smooth, decaying integrand
    log_prior = stats.chi2.logpdf(r, d_k) + t + np.log(weights)  # (points,)
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    log_normal = -0.5 * (x[:, None] ** 2) / r - 0.5 * np.log(2 * math.pi * r)  # (len(x), points)
    return np.exp(special.logsumexp(log_prior + log_normal, axis=1))


# ---- softmax of one row of scores: the random-energy-model regime ----
#
# Given its query q, a row's logits c q.k_j are iid with spread s^2 = c^2 sigma^2 |q|^2 (the shared part
# c mu sum_a q_a cancels in the softmax). For iid N(0, s^2) logits with s well below s_c = sqrt(2 ln n)
# (random-energy-model asymptotics; see REFERENCE.md): E[entropy] ~ ln n - s^2/2 and
# 1/sum p^2 ~ n exp(-s^2); above s_c the weights freeze onto a few keys. The forms below average these over
# the query: |q|^2 / sigma^2 is noncentral chi-square with d_k degrees of freedom and noncentrality
# d_k mu^2 / sigma^2.

def critical_logit_std(n: int) -> float:
    """s_c = sqrt(2 ln n): the logit spread where n iid normal logits freeze onto a few keys."""
    return math.sqrt(2 * math.log(n))


def logit_std(d_k: int, mean: float, std: float, c: float = 1.0) -> float:
    """Root-mean-square within-row spread of the logits: sqrt(E[c^2 sigma^2 |q|^2])."""
    return math.sqrt(c * c * std * std * d_k * (std * std + mean * mean))


def rem_entropy(n: int, d_k: int, mean: float, std: float, c: float = 1.0) -> float | None:
    """E[entropy] ~ ln n - E[s^2]/2, where the spread s is below s_c; None where it is not."""
    s = logit_std(d_k, mean, std, c)
    if n < 2 or s >= critical_logit_std(n):
        return None
    return math.log(n) - s * s / 2


def rem_participation(n: int, d_k: int, mean: float, std: float, c: float = 1.0) -> float | None:
    """E[1/sum p^2] ~ n E[exp(-s^2)], where 2 s is below s_c (the second moment must not freeze)."""
    s = logit_std(d_k, mean, std, c)
    if n < 2 or 2 * s >= critical_logit_std(n):
        return None
    t = -c * c * std**4  # exp(-s^2) = exp(t X), X = |q|^2 / sigma^2 ~ noncentral chi^2
    noncentrality = d_k * mean * mean / (std * std)
    return n * math.exp(noncentrality * t / (1 - 2 * t)) * (1 - 2 * t) ** (-d_k / 2)


def uniform_jacobian_fro(n: int) -> float:
    """||J||_F for the uniform row p = 1/n: sqrt(n - 1) / n."""
    return math.sqrt(n - 1) / n
