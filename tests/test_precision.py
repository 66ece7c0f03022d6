"""Scores in low precision: the emulated rounding against numpy's own float16 and float32 and an
independent bfloat16 rounding of float32 bits, the placements against float16 arithmetic, the per-trial
metrics against scipy's softmax, the exact overflow probability against a chi-square oracle, and the
overflow shares' intervals over many seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, special, stats

from sqrtdk.core import precision, theory
from sqrtdk.core.precision import FORMATS, round_to
from sqrtdk.core.sampling import task_seed
from sqrtdk.experiments.precision import figures as precision_figures
from sqrtdk.experiments.precision import measure as experiment

ROOT = Path(__file__).resolve().parent.parent
F16, BF16, F32 = FORMATS["float16"], FORMATS["bfloat16"], FORMATS["float32"]


def spread_values(rng: np.random.Generator, size: int) -> np.ndarray:
    """Values across every exponent the formats have, of both signs, with exact halfway cases."""
    x = rng.standard_normal(size) * np.exp(rng.uniform(-110, 100, size))
    halves = (2 * rng.integers(0, 2**10, size // 4) + 1) * np.ldexp(1.0, rng.integers(-40, 16, size // 4) - 11)
    return np.concatenate([x, halves, -halves, [0.0, -0.0, 65504.0, 65519.99, 65520.0, 2.0**-24, 2.0**-25]])


def test_the_emulated_formats_agree_with_numpy_float16_and_float32():
    x = spread_values(np.random.default_rng(1), 200_000)
    with np.errstate(over="ignore"):
        assert np.array_equal(round_to(x, F16), x.astype(np.float16).astype(np.float64))
        assert np.array_equal(round_to(x, F32), x.astype(np.float32).astype(np.float64))


def bfloat16_of_float32(x: np.ndarray) -> np.ndarray:
    """bfloat16 as the hardware makes it from float32: the upper 16 bits, rounded to nearest even."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def test_bfloat16_agrees_with_rounding_float32_bits():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(200_000) * np.exp(rng.uniform(-80, 80, 200_000))).astype(np.float32)
    ties = ((2 * rng.integers(0, 2**7, 1000) + 1) * np.ldexp(1.0, rng.integers(-60, 60, 1000) - 8)).astype(np.float32)
    x = np.concatenate([x, ties, -ties]).astype(np.float64)  # every value exact in float32
    assert np.array_equal(round_to(x, BF16), bfloat16_of_float32(x))


def test_the_formats_thresholds():
    assert F16.largest == float(np.finfo(np.float16).max) == 65504.0
    assert F32.largest == float(np.finfo(np.float32).max)
    assert BF16.largest == float(np.uint32(0x7F7F0000).view(np.float32))
    for fmt in FORMATS.values():
        below = np.nextafter(fmt.overflow, 0.0)
        assert np.isinf(round_to(np.array([fmt.overflow]), fmt)[0])
        assert round_to(np.array([below]), fmt)[0] == fmt.largest


@pytest.mark.parametrize("d_k", [16, 32, 64, 128])
def test_placements_match_float16_arithmetic(d_k):
    rng = np.random.default_rng(d_k)
    q, k = rng.standard_normal((20, d_k)) * 3, rng.standard_normal((30, d_k)) * 3
    c = 1 / math.sqrt(d_k)
    got = precision.logits(q, k, c, F16, precision.PLACEMENTS)
    q16, k16, f16, f64 = q.astype(np.float16), k.astype(np.float16), np.float16, np.float64

    def dot16(a, b):  # a correctly rounded dot product of float16 vectors
        return (a.astype(f64) @ b.astype(f64).T).astype(f16)

    product = dot16(q16, k16)
    want = {
        "none": product,
        "after": product * f16(c),  # float16 * float16 in numpy: exact in float32, rounded once
        "query": dot16(q16 * f16(c), k16),
        "split": dot16(q16 * f16(math.sqrt(c)), k16 * f16(math.sqrt(c))),
    }
    for placement in precision.PLACEMENTS:
        assert np.array_equal(got[placement], want[placement].astype(f64)), placement
    if d_k in (16, 64):  # sqrt(d_k) a power of two: the scale is exact
        assert np.array_equal(got["after"], got["query"])
    if d_k == 16:  # d_k^(1/4) too
        assert np.array_equal(got["after"], got["split"])


def test_trial_metrics_against_scipy():
    rng = np.random.default_rng(3)
    exact = rng.standard_normal((40, 50)) * 2
    rounded = round_to(exact, BF16)
    rounded[[3, 7], [1, 9]] = np.inf  # two rows overflow
    got = precision.trial_metrics(precision.softmax_rows(exact), rounded)
    ok = np.ones(40, bool)
    ok[[3, 7]] = False
    p, p_hat = special.softmax(exact[ok], axis=1), special.softmax(rounded[ok], axis=1)
    h, h_hat = special.entr(p).sum(axis=1), special.entr(p_hat).sum(axis=1)
    err = np.abs(p_hat - p)
    want = [2, 2, err.max(axis=1).sum(), err.mean(axis=1).sum(), np.abs(h_hat - h).sum(), 38]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_the_sample_is_the_mean_of_its_trials():
    """Replicate values rebuilt from the same streams, with the per-trial code written here."""
    d_k, n, std = 32, 16, 20.0
    sample = precision.sample_precision(
        d_k, n, 8 * 16 * 2, std=std, seed=5, formats=("float16",), placements=("after",)
    )
    replicates = len(sample.replicate_means)
    streams = task_seed(5, {"kind": "precision", "d_k": d_k, "seq_len": n, "std": std}).spawn(replicates)
    per = sample.n_trials // replicates
    for r in (0, replicates - 1):
        rng = np.random.default_rng(streams[r])
        counts, broken, errs = 0, 0, []
        for _ in range(per):
            q = rng.standard_normal((n, d_k)) * std
            k = rng.standard_normal((n, d_k)) * std
            s = (q.astype(np.float16).astype(np.float64) @ k.astype(np.float16).astype(np.float64).T).astype(
                np.float16
            ) * np.float16(1 / math.sqrt(d_k))
            s = s.astype(np.float64)
            counts += np.isinf(s).sum()
            bad = np.isinf(s).any(axis=1)
            broken += bad.sum()
            p = special.softmax(q @ k.T / math.sqrt(d_k), axis=1)[~bad]
            errs += list(np.abs(special.softmax(s[~bad], axis=1) - p).max(axis=1))
        got = sample.replicate_means[r, 0, 0]
        assert got[0] == counts / (per * n * n) and got[1] == broken / (per * n)
        assert got[2] == pytest.approx(np.mean(errs), rel=1e-9)


def chi2_tail(t: float, d: int) -> float:
    """P(|q.k| >= t) from q.k = (A - B) / 2, A and B independent chi-square(d): E_B[P(A >= 2t + B)]."""
    w = math.sqrt(2 * d)
    lo, hi = max(0.0, d - 40 * w), d + 40 * w + 40
    value, _ = integrate.quad(
        lambda b: stats.chi2.pdf(b, d) * stats.chi2.sf(2 * t + b, d),
        lo,
        hi,
        points=[max(lo, d - 2), d + 2] if d > 4 else None,
        epsabs=0,
        epsrel=1e-12,
        limit=800,
    )
    return 2 * value


@pytest.mark.parametrize("d_k", [1, 2, 16, 256, 4096])
@pytest.mark.parametrize("spreads", [0.1, 1.0, 3.0, 10.0, 30.0])
def test_the_exact_tail_against_a_chi_square_oracle(d_k, spreads):
    t = spreads * math.sqrt(d_k)
    assert theory.score_tail(t, d_k) == pytest.approx(chi2_tail(t, d_k), rel=1e-8)


@pytest.mark.parametrize("d_k", [1, 16, 4096, 65536])
def test_the_tail_is_negligible_where_the_density_underflows(d_k):
    lo, hi = 1.0, 1e7
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if theory.score_density(np.array([mid]), d_k)[0] > 0 else (lo, mid)
    f = lambda z: float(theory.score_density(np.array([z]), d_k)[0])  # noqa: E731
    assert 2 * integrate.quad(f, lo, math.inf, epsabs=0, epsrel=1e-10, limit=400)[0] < 1e-300
    assert theory.score_tail(hi, d_k) == 0.0


def test_overflow_intervals_cover_the_exact_probability():
    """95% intervals of the share of float16 scores that overflow (std 32, d_k = 512: p = 0.0048), over
    200 seeds: the hits must lie within 3 binomial standard errors of 190."""
    p = precision.overflow_probability(512, 32.0, "after", F16)
    seeds, hits = 200, 0
    for seed in range(seeds):
        sample = precision.sample_precision(
            512, 32, 8 * 32, std=32.0, seed=seed, formats=("float16",), placements=("after",)
        )
        row = experiment.rows({}, sample)[0]
        hits += row["overflow_fraction_ci_low"] <= p <= row["overflow_fraction_ci_high"]
    assert abs(hits - 0.95 * seeds) <= 3 * math.sqrt(seeds * 0.95 * 0.05), hits


def test_committed_overflow_shares_agree_with_the_exact_tail():
    rows = json.loads((ROOT / "results" / "precision" / "rows.json").read_text())
    measured = [r for r in rows if r["overflow_fraction_se"]]
    assert measured, "the committed sweep has overflowing points"
    for r in measured:
        assert abs(r["overflow_fraction"] - r["theory_overflow_fraction"]) <= 4.5 * r["overflow_fraction_se"], r
    for r in rows:  # where the exact probability leaves fewer than 0.01 expected overflows, none was seen
        if r["theory_overflow_fraction"] * r["n_rows"] * r["seq_len"] < 0.01:
            assert r["overflow_fraction"] == 0, r


def test_the_experiment_names_match_the_core():
    assert tuple(FORMATS) == experiment.DTYPES and experiment.PLACEMENTS == precision.PLACEMENTS


def test_the_overflow_figure_draws_only_what_overflows_and_its_remedy():
    """Where nothing overflows (std 1: every exact probability below the figure's floor, no score measured
    over 65520) there is no overflow figure, not an empty panel. Where something does, panel (a) draws the
    product-first shares and panel (b) the remedy: float16's largest finite value, 65504 (overflow from
    65520), in standard deviations of the stored score, sigma^2 sqrt(d_k) with the product first and
    sigma^2 with q pre-scaled."""
    import sqrtdk

    calm = sqrtdk.run("precision", dim=[64, 128], samples=256)
    assert "precision_overflow" not in precision_figures.figures(
        calm
    ) and "precision_error" in precision_figures.figures(calm)
    hot = sqrtdk.run("precision", dim=[512, 1024], std=32.0, samples=256)
    assert any(r["overflow_fraction"] for r in hot.rows)
    fig = precision_figures.figures(hot)["precision_overflow"]()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "product first (unscaled, or scaled after)" in labels and any("pre-scaled" in x for x in labels)
    room = fig.axes[1]
    curves = {line.get_linestyle(): line.get_ydata() for line in room.get_lines() if len(line.get_ydata()) == 2}
    limit = 65520.0  # float16's overflow threshold: 65504 plus half its last spacing, 32 / 2
    assert list(curves["-"]) == pytest.approx([limit / (32.0**2 * math.sqrt(d)) for d in (512, 1024)])
    assert list(curves["--"]) == pytest.approx([limit / 32.0**2] * 2)
