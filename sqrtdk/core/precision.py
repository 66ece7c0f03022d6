"""Attention scores in low precision: rounding to float16, bfloat16 and float32, emulated in float64.

A binary format with p significand bits (the leading one included) and exponents from emin to emax holds
the numbers m 2^(e - p + 1) with integer |m| < 2^p; `round_to` rounds to the nearest of them (ties to even),
with the subnormal numbers below 2^emin and +-inf from (2 - 2^-p) 2^emax on, as IEEE 754 does. That is
exact for every format here whatever the hardware has, so bfloat16 needs no special type.

Where the scale 1/sqrt(d_k) goes (PLACEMENTS), with q, k stored in the format and each product
accumulated exactly and rounded once (what a kernel with a wide accumulator returns, the best case):
- `none`: fl(q.k), no scale at all (the unscaled softmax);
- `after`: fl(fl(q.k) c), the product formed first, then scaled: it overflows exactly when `none` does;
- `query`: fl(fl(q c) . k), the query pre-scaled (the usual fix for float16 overflow);
- `split`: fl(fl(q r) . fl(k r)), r = fl(sqrt(c)): the scale split between q and k.
When sqrt(d_k) is a power of two (d_k = 16, 64, 256, ...) c is too, multiplying by it is exact and
`after` and `query` give the same logits (short of overflow and underflow); `split` needs d_k^(1/4) to be
one as well (16, 256, 4096). Otherwise each rounding of c, q c or k r adds its own error, and a rounded
scale multiplies every logit by the same wrong factor (a change of temperature).

A trial draws m = min(n, QUERIES) queries and n keys with iid N(0, std^2) entries, computes the exact
logits c q.k (float64, from the unrounded entries) and, per format and placement, the rounded ones; the
softmax of both is taken in float64, so what differs is what the format did to the scores. Per trial:
the share of scores that overflowed, the share of rows with an overflowed score (whose softmax is
undefined), and over the other rows the mean of max_j |p_j - p*_j|, of mean_j |p_j - p*_j| and of
|H(p) - H(p*)|. Trials are grouped into independent replicates, as in rows.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sqrtdk.core.moments import MapReplicates, Stopped, add_in_order, serial
from sqrtdk.core.rows import QUERIES, geometry
from sqrtdk.core.sampling import task_seed


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: `p` significand bits (with the implicit one), exponents emin..emax."""

    p: int
    emin: int
    emax: int

    @property
    def largest(self) -> float:
        return (2 - 2.0 ** (1 - self.p)) * 2.0**self.emax

    @property
    def overflow(self) -> float:
        """The smallest magnitude that rounds to infinity: the largest number plus half its spacing."""
        return (2 - 2.0**-self.p) * 2.0**self.emax

    @property
    def unit(self) -> float:
        """The unit roundoff 2^-p: the largest relative error of rounding a normal number."""
        return 2.0**-self.p


FORMATS = {"float16": Format(11, -14, 15), "bfloat16": Format(8, -126, 127), "float32": Format(24, -126, 127)}
PLACEMENTS = ("none", "after", "query", "split")
METRICS = ("overflow_fraction", "overflow_rows", "weight_error_max", "weight_error_mean", "entropy_error")


def _round_small(x: np.ndarray, fmt: Format) -> np.ndarray:
    """round_to for any x by its binary exponent: the spacing is 2^(e - p) for |x| = m 2^e, 0.5 <= m < 1,
    and 2^(emin + 1 - p) below 2^emin, where the subnormal numbers are."""
    _, e = np.frexp(x)
    spacing = np.maximum(e, fmt.emin + 1) - fmt.p
    return np.ldexp(np.rint(np.ldexp(x, -spacing)), spacing)


def round_to(x: np.ndarray, fmt: Format) -> np.ndarray:
    """x (float64) rounded to the nearest number of `fmt`, ties to even; beyond the range, +-inf.

    Normal numbers: the float64 bit pattern with its last 53 - p significand bits rounded away (adding
    just under half of their unit, plus the kept last bit, carries into the exponent where it should);
    the format's subnormal range by exponent (_round_small)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    drop = 53 - fmt.p
    bits = x.view(np.uint64)
    rounded = bits + np.uint64((1 << (drop - 1)) - 1) + ((bits >> np.uint64(drop)) & np.uint64(1))
    y = (rounded & np.uint64(0xFFFFFFFFFFFFFFFF ^ ((1 << drop) - 1))).view(np.float64)
    small = np.abs(x) < 2.0**fmt.emin
    if small.any():
        y[small] = _round_small(x[small], fmt)
    large = np.abs(y) >= 2.0 ** (fmt.emax + 1)
    if large.any():
        y[large] = np.copysign(np.inf, x[large])
    return y


def logits(q: np.ndarray, k: np.ndarray, c: float, fmt: Format, placements: Sequence[str]) -> dict[str, np.ndarray]:
    """The logits (m, n) that `fmt` gives, per placement, for queries q (m, d) and keys k (n, d), float64."""
    q, k = round_to(q, fmt), round_to(k, fmt)
    c_hat, r_hat = (float(round_to(np.array([v]), fmt)[0]) for v in (c, math.sqrt(c)))
    out = {}
    product = round_to(q @ k.T, fmt)  # used by none and after; cheap beside the roundings of q and k
    for placement in placements:
        if placement == "none":
            out[placement] = product
        elif placement == "after":
            out[placement] = round_to(product * c_hat, fmt)
        elif placement == "query":
            out[placement] = round_to(round_to(q * c_hat, fmt) @ k.T, fmt)
        elif placement == "split":
            out[placement] = round_to(round_to(q * r_hat, fmt) @ round_to(k * r_hat, fmt).T, fmt)
        else:
            raise ValueError(f"unknown placement {placement!r}")
    return out


def softmax_rows(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights and entropy of each row of finite logits s, in float64."""
    shifted = s - s.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1)
    return e / total[:, None], np.log(total) - (e * shifted).sum(axis=-1) / total


def trial_metrics(exact: tuple[np.ndarray, np.ndarray], rounded: np.ndarray) -> np.ndarray:
    """METRICS of one trial as sums, given the exact rows' (weights, entropies): overflowed scores,
    overflowed rows, then over the other rows the sums of max |dp|, mean |dp| and |dH|, and their count."""
    bad = ~np.isfinite(rounded)
    ok = ~bad.any(axis=1)
    p, h = exact[0][ok], exact[1][ok]
    p_hat, h_hat = softmax_rows(rounded[ok])
    err = np.abs(p_hat - p)
    some = bool(ok.any())
    return np.array(
        [
            bad.sum(),
            (~ok).sum(),
            err.max(axis=1).sum() if some else 0.0,
            err.mean(axis=1).sum() if some else 0.0,
            np.abs(h_hat - h).sum(),
            ok.sum(),
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True)
class PrecisionSample:
    """Replicate values of every metric at one (d_k, std, seq_len), per format and placement."""

    d_k: int
    seq_len: int
    std: float
    formats: tuple[str, ...]
    placements: tuple[str, ...]
    n_rows: int
    n_trials: int
    replicate_means: np.ndarray  # (replicates, formats, placements, METRICS); NaN where no row was finite

    @property
    def n_scores(self) -> int:
        return self.n_rows * self.seq_len

    @property
    def queries(self) -> int:
        """Queries per trial."""
        return min(self.seq_len, QUERIES)


def sample_precision(
    d_k: int,
    seq_len: int,
    samples: int,
    std: float = 1.0,
    seed: int = 0,
    formats: Sequence[str] = tuple(FORMATS),
    placements: Sequence[str] = PLACEMENTS,
    map_replicates: MapReplicates = serial,
) -> PrecisionSample:
    """Measure METRICS over at least `samples` query rows of n = seq_len keys each, scale 1/sqrt(d_k)."""
    n, m = seq_len, min(seq_len, QUERIES)
    replicates, per_replicate = geometry(samples, m)
    c = 1 / math.sqrt(d_k)
    streams = task_seed(seed, {"kind": "precision", "d_k": d_k, "seq_len": n, "std": std}).spawn(replicates)

    def replicate(r: int, stop) -> np.ndarray:
        rng = np.random.default_rng(streams[r])
        sums = np.zeros(len(formats) * len(placements) * 6)
        for _ in range(per_replicate):
            if stop.is_set():
                raise Stopped
            q = rng.standard_normal((m, d_k)) * std
            k = rng.standard_normal((n, d_k)) * std
            product = q @ k.T
            exact = {"none": softmax_rows(product), "scaled": softmax_rows(c * product)}
            per = [
                trial_metrics(exact["none" if placement == "none" else "scaled"], s)
                for f in formats
                for placement, s in logits(q, k, c, FORMATS[f], placements).items()
            ]
            sums = add_in_order(sums, np.concatenate(per)[None, :])
        total = sums.reshape(len(formats), len(placements), 6)
        rows, scores = per_replicate * m, per_replicate * m * n
        with np.errstate(invalid="ignore", divide="ignore"):
            finite = total[..., 5:6]
            errors = np.where(finite > 0, total[..., 2:5] / finite, np.nan)
        return np.concatenate([total[..., 0:1] / scores, total[..., 1:2] / rows, errors], axis=-1)

    means = np.array(map_replicates(replicate, replicates))
    trials = replicates * per_replicate
    return PrecisionSample(d_k, n, std, tuple(formats), tuple(placements), trials * m, trials, means)


def overflow_probability(d_k: int, std: float, placement: str, fmt: Format) -> float:
    """P(a score overflows `fmt`) for iid N(0, std^2) entries: the variance-gamma tail at the format's
    overflow threshold, over the product q.k itself (none, after) or over c q.k (query, split). Exact for
    the unrounded entries; storing them in the format moves each score by a relative 2^-p or less."""
    from sqrtdk.core.theory import score_tail

    pre = 1.0 if placement in ("none", "after") else 1 / math.sqrt(d_k)
    return score_tail(fmt.overflow / (std * std * pre), d_k)
