"""Streaming moments with honest intervals from independent replicates.

Scores of one Q.K^T block share rows and columns, so they are not independent: the iid standard error
would be too small. Each task is therefore split into R replicates drawn from disjoint parts of its
stream, and the intervals use Student-t quantiles on R - 1 degrees of freedom.

- A mean of per-row values (attention metrics) is linear in the data: its standard error is
  sd(replicate means) / sqrt(R) (batch means).
- A variance or a kurtosis is a ratio of power sums, so the estimate of a small replicate is biased and
  centred on that replicate's own mean, while the pooled estimate uses all data about the grand mean: the
  spread of replicate estimates understates the pooled estimate's. Their standard error is the
  delete-one-replicate jackknife of the pooled estimator (Efron and Stein 1981; Efron and Tibshirani
  1993, ch. 11): each replicate's power sums removed in turn from the pooled ones,
  se^2 = (R - 1)/R sum_r (theta_(-r) - mean theta_(-r))^2. For a mean it equals batch means exactly.
  A variance's interval is made symmetric in its reciprocal (`on_reciprocal_scale`), a skewed mean's is a
  studentized bootstrap over the replicate means (`mean_interval`).

Power sums are accumulated in float64 about a shift close to the mean (the theoretical mean), so that the
central moments do not suffer from cancellation when the mean is large against the spread. Sums are added
block by block in a fixed order, which makes them independent of the chunk size.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

REPLICATES = 64  # t quantile at 99.9% on 63 degrees of freedom is 3.39, close to the normal 3.29

# How a kernel runs its replicates: map_replicates(fn, count) returns [fn(r, stop) for r in range(count)] in
# replicate order, where `stop` is a threading.Event that fn checks between blocks (raising Stopped when it
# is set). The kernels take it as an argument; `serial` runs them here, the executors on threads.
MapReplicates = Callable[[Callable[[int, Any], Any], int], list[Any]]


class Stopped(Exception):
    """Raised inside a replicate when the run is being stopped (Ctrl-C, SIGTERM or an error elsewhere)."""


def serial(fn: Callable[[int, Any], Any], count: int) -> list[Any]:
    """Run the replicates one after another in this thread."""
    stop = threading.Event()
    return [fn(r, stop) for r in range(count)]


PIECE = 2**15  # values reduced at once: their float64 work arrays (256 KiB each) stay in the core's cache
# Blocks of at most this many values are reduced several at once: numpy sums a row of a 2-d array in the
# same order as the row alone up to its buffer size (8192 values), so the sums are the same to the bit.
ROW_AT_ONCE = 8192


def block_power_sums(x: np.ndarray, shift: float) -> np.ndarray:
    """Sums of y, y^2, y^3, y^4 with y = x - shift, one row per block.  x: (b, ...) -> (b, 4) float64.

    Each block is reduced PIECE values at a time, so that widening, squaring and the four sums run in
    cache (three times faster than whole chunks, which spill to memory at every pass); short blocks are
    reduced several at once, with the same sums as one at a time. numpy's own
    reductions (pairwise sums, einsum), never BLAS: their result does not depend on threads.
    """
    flat = x.reshape(len(x), -1)
    out = np.zeros((len(flat), 4))
    if flat.shape[1] <= ROW_AT_ONCE:  # short blocks: several at once, each still summed along its own row
        step = max(1, PIECE // max(1, flat.shape[1]))
        for start in range(0, len(flat), step):
            y = np.subtract(flat[start : start + step], shift, dtype=np.float64)
            y2 = np.multiply(y, y)
            part = out[start : start + step]
            part[:, 0], part[:, 1] = y.sum(1), y2.sum(1)
            part[:, 2], part[:, 3] = np.einsum("bi,bi->b", y2, y), np.einsum("bi,bi->b", y2, y2)
        return out
    for row, values in zip(out, flat):
        for start in range(0, values.size, PIECE):
            y = np.subtract(values[start : start + PIECE], shift, dtype=np.float64)  # one pass: widen and shift
            y2 = np.multiply(y, y)
            row += (y.sum(), y2.sum(), np.einsum("i,i->", y2, y), np.einsum("i,i->", y2, y2))
    return out


def add_in_order(total: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """total + rows[0] + rows[1] + ..., added one row after another (cumsum is sequential, and so is the
    loop that serves a few rows without building a stacked copy)."""
    if len(rows) > 8:
        return np.cumsum(np.vstack([total[None, :], rows]), axis=0)[-1]
    for row in rows:
        total = total + row
    return total


def central_moments(n: Any, sums: np.ndarray) -> tuple[Any, Any, Any, Any]:
    """(s1, m2, m3, m4) of samples of n values from their power sums about a shift, sums[..., 0:4]: the
    mean's offset from the shift and the central moments (divided by n), over any leading axes."""
    s1, s2, s3, s4 = (sums[..., i] / n for i in range(4))
    m2 = s2 - s1 * s1
    m3 = s3 - 3 * s1 * s2 + 2 * s1**3
    m4 = s4 - 4 * s1 * s3 + 6 * s1 * s1 * s2 - 3 * s1**4
    return s1, m2, m3, m4


@dataclass(frozen=True)
class Moments:
    """Central moments of a sample: count n, mean, and m2, m3, m4 (divided by n)."""

    n: float
    mean: float
    m2: float
    m3: float
    m4: float

    @staticmethod
    def from_power_sums(n: float, sums: np.ndarray, shift: float) -> Moments:
        s1, m2, m3, m4 = central_moments(n, sums)
        return Moments(n, shift + s1, m2, m3, m4)

    def scaled(self, c: float) -> Moments:
        """Moments of c * x."""
        return Moments(self.n, c * self.mean, c**2 * self.m2, c**3 * self.m3, c**4 * self.m4)

    def affine(self, c: float, b: float) -> Moments:
        """Moments of c * x + b."""
        return Moments(self.n, c * self.mean + b, c**2 * self.m2, c**3 * self.m3, c**4 * self.m4)

    @property
    def variance(self) -> float:
        """Unbiased sample variance."""
        return self.m2 * self.n / (self.n - 1)

    @property
    def excess_kurtosis(self) -> Any:
        """m4 / m2^2 - 3, nan where m2 is 0: a float, or an array where the moments are arrays."""
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(np.asarray(self.m2) > 0, self.m4 / (self.m2 * self.m2) - 3.0, math.nan)
        return float(value) if value.ndim == 0 else value


@dataclass(frozen=True)
class Estimate:
    """A pooled estimate, its batch-means standard error and a two-sided interval at `level`."""

    value: float
    se: float
    ci_low: float
    ci_high: float


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom.

    For a whole number of degrees of freedom up to SERIES_DF (every replicate count), Newton's method on
    the closed-form distribution function (`t_upper_tail`), started at the normal quantile: the upper tail
    is convex, so the steps rise monotonically to the root. This keeps scipy (a third of a second to
    import) out of a run whose only other need is numpy. Otherwise scipy's stdtrit.
    """
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    if df != int(df) or not 1 <= df <= SERIES_DF or not p < 1:
        from scipy import special

        return float(special.stdtrit(df, p))
    from statistics import NormalDist

    df, alpha = int(df), 1 - p
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    t = NormalDist().inv_cdf(p)
    for _ in range(200):
        density = math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))
        step = (t_upper_tail(t, df) - alpha) / density
        t += step
        if abs(step) <= 1e-15 * t:
            break
    return t


SERIES_DF = 2000  # the series below has df / 2 terms


def t_upper_tail(t: float, df: int) -> float:
    """P(T > t) for t >= 0 and a whole number of degrees of freedom, from the finite series of P(|T| < t)
    in theta = atan(t / sqrt(df)) (Abramowitz and Stegun 26.7.3 and 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    c2, total, term = math.cos(theta) ** 2, 1.0, 1.0
    if df % 2:
        for j in range(1, (df - 1) // 2):
            term *= 2 * j / (2 * j + 1) * c2
            total += term
        inside = 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))
    else:
        for j in range(1, df // 2):
            term *= (2 * j - 1) / (2 * j) * c2
            total += term
        inside = math.sin(theta) * total
    return (1 - inside) / 2


def _spread(values: np.ndarray) -> float:
    """The population standard deviation of `values`, computed in units of their largest magnitude, so
    that values near 1e-160 do not square to 0."""
    values = np.asarray(values, dtype=np.float64)
    unit = float(np.max(np.abs(values))) if len(values) else 0.0
    if unit == 0 or not math.isfinite(unit):
        return 0.0 if unit == 0 else math.nan
    scaled = values / unit
    return unit * float(np.sqrt(np.mean((scaled - scaled.mean()) ** 2)))


def jackknife(
    statistic: Callable[[Moments], float],
    total: np.ndarray,
    sums: np.ndarray,
    per_replicate: float,
    shift: float,
    level: float,
) -> Estimate:
    """`statistic` of the pooled power sums `total` about `shift`, with the delete-one-replicate jackknife
    standard error and a t_(R-1) interval; sums: (R, 4), the replicates' power sums, `per_replicate`
    values each, adding up to `total`."""
    r = len(sums)
    value = statistic(Moments.from_power_sums(per_replicate * r, total, shift))
    # every replicate left out at once: `statistic` of Moments whose fields are arrays over the replicates
    left_out = np.asarray(
        statistic(Moments.from_power_sums(per_replicate * (r - 1), total[None, :] - sums, shift)), dtype=np.float64
    )
    se = _spread(left_out) * math.sqrt(r - 1)
    half = t_quantile(0.5 + level / 2, r - 1) * se
    return Estimate(value, se, value - half, value + half)


def resamples_for(level: float) -> int:
    """Resamples of the replicates for a studentized interval at `level`: 999 up to 99% (at least 5 beyond
    each bound), 4999 above (at 99.9%, 2.5 beyond each bound)."""
    return 999 if level <= 0.99 else 4999


RESAMPLE_SEED = 0  # a fixed stream: the same sample always gets the same interval


def batch_means(value: float, replicate_values: np.ndarray, level: float) -> Estimate:
    """Interval for `value` (computed from all data) from the spread of independent replicate estimates."""
    r = len(replicate_values)
    se = _spread(replicate_values) * math.sqrt(r / (r - 1)) / math.sqrt(r)
    half = t_quantile(0.5 + level / 2, r - 1) * se
    return Estimate(value, se, value - half, value + half)


def on_reciprocal_scale(estimate: Estimate) -> tuple[float | None, float | None]:
    """The interval of a positive estimate made symmetric in its reciprocal: value / (1 +- h / value), h the
    half-width of its symmetric interval (the delta method: se(1/x) = se(x) / x^2). Longer above than below,
    more so than on the log scale, as a sample variance studentized by its own standard error needs: where
    the estimate is low, so is its standard error. No interval (None, None) where h >= value (the
    reciprocal's interval would reach 0: too few values for one); the estimate itself where it is 0 or not
    finite."""
    value = estimate.value
    if not (value > 0 and math.isfinite(value) and math.isfinite(estimate.se)):
        return value, value
    relative = (estimate.ci_high - estimate.ci_low) / 2 / value
    if relative >= 1:
        return None, None
    return value / (1 + relative), value / (1 - relative)


def reciprocal_interval(value: float, se: float, df: int, level: float) -> tuple[float | None, float | None]:
    """`on_reciprocal_scale` of an estimate given by its value and standard error, Student's t on `df`
    degrees of freedom at `level`: the same interval a row carries, at another level."""
    half = t_quantile(0.5 + level / 2, df) * se
    return on_reciprocal_scale(Estimate(value, se, value - half, value + half))


MEAN_BOOTSTRAP_MIN_REPLICATES = 32  # fewer replicates: too few distinct resamples; Student's t instead


def mean_interval(estimate: Estimate, replicate_values: np.ndarray, level: float) -> tuple[float, float]:
    """An interval for the mean of R independent replicate means, `estimate` their `batch_means`: the
    studentized bootstrap (bootstrap-t) over the replicates from MEAN_BOOTSTRAP_MIN_REPLICATES on, else
    the estimate's own mean +- t_(R-1) se.

    A row metric whose values are skewed (||J||_F^2 of two keys, unscaled: most rows near 0, a few near
    1/2) has skewed replicate means even at 256 rows each, and the symmetric t interval then misses on the
    long side more often: at d_k 64, n 2, 1024 rows in 64 replicates, 44 below and 71 above in 2000 seeds
    at 95%, against 53 and 46 for this one (experiments/coverage.py has the 99.9% level)."""
    v = np.asarray(replicate_values, dtype=np.float64)
    r, mean, se = len(v), estimate.value, estimate.se
    if r < MEAN_BOOTSTRAP_MIN_REPLICATES or not (se > 0 and math.isfinite(se)):
        return estimate.ci_low, estimate.ci_high
    alpha = 1 - level
    unit = float(np.max(np.abs(v)))  # values near 1e-160 must not square to 0
    scaled = v / unit
    counts = _resample_counts(r, resamples_for(level))  # (B, R)
    means = counts @ scaled / r
    variances = np.maximum(counts @ (scaled * scaled) - r * means * means, 0.0) / (r - 1)
    spreads = np.sqrt(variances / r)
    kept = spreads > 0
    t = (means[kept] - mean / unit) / spreads[kept]
    q_low, q_high = tail_quantiles(t, alpha)
    return mean - q_high * se, mean - q_low * se


def tail_quantiles(t: np.ndarray, alpha: float) -> tuple[float, float]:
    """np.quantile(t, [alpha / 2, 1 - alpha / 2]) to the bit (its default, linear interpolation between
    order statistics), from the four order statistics it needs: a bootstrap's interval in a tenth of
    np.quantile's time, most of which is its generality."""
    n = len(t)
    positions = (n - 1) * np.array([alpha / 2, 1 - alpha / 2])
    below = np.floor(positions).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    ordered = np.partition(t, np.unique(np.concatenate([below, above])))
    a, b, gamma = ordered[below], ordered[above], positions - below
    diff = b - a
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return float(out[0]), float(out[1])


@lru_cache(maxsize=16)
def _resample_counts(r: int, resamples: int) -> np.ndarray:
    """How often each of r replicates is drawn in each resample, from the fixed stream RESAMPLE_SEED: the
    same table for every interval over r replicates."""
    rng = np.random.default_rng(RESAMPLE_SEED)
    counts = rng.multinomial(r, np.full(r, 1 / r), size=resamples).astype(np.float64)
    counts.flags.writeable = False
    return counts


def fraction_interval(p: float, se: float, n_rows: int, n_trials: int, level: float) -> tuple[float, float]:
    """The exact (Clopper and Pearson 1934) interval for a share p of rows, on an effective sample size.

    Rows of one trial share their keys, so the share's information is that of n_eff = p (1 - p) / se^2
    independent rows (se from the replicates), between the number of independent trials and of rows; when
    no row or every row crosses, se is 0 and n_eff is taken as the trials (the smallest it can be). With
    x = p n_eff crossings the bounds are Beta quantiles, B(a/2; x, n - x + 1) and B(1 - a/2; x + 1, n - x):
    they never leave [0, 1], are not empty at p = 0, and unlike Wilson's interval keep their lower side
    at a few crossings (there Wilson's lower bound missed 5% of the time instead of 2.5%).
    """
    from scipy import special

    if 0 < p < 1 and se > 0:
        n = min(max(p * (1 - p) / (se * se), n_trials), n_rows)
    else:
        n = n_trials
    x, alpha = p * n, 1 - level
    low = 0.0 if p == 0 else float(special.betaincinv(x, n - x + 1, alpha / 2))
    high = 1.0 if p == 1 else float(special.betaincinv(x + 1, n - x, 1 - alpha / 2))
    return low, high
