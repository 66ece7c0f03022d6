"""Coverage: do sqrtdk's intervals cover their level on both sides? Misses counted over many seeds.

The test suite counts misses at 95% over 400-600 seeds (tests/test_coverage.py). The variance's default
level is 99.9%, where an interval misses once in 1000 seeds, half of that on each side: telling a side that
misses twice as often as it should needs about 10^4 seeds, more than the suite's time allows. This script
runs them, on the functions that make the rows of `sqrtdk variance` and `sqrtdk gradient`, against exact
truths (closed forms, and the exact softmax theory for ||J||_F^2 of two keys), and prints the misses below
and above with their binomial standard deviations.

Run: python experiments/coverage.py [--quick] [--out results/studies]   (about 35 minutes on one core)
"""

from __future__ import annotations

import math
import time

from common import heading, options, say

from sqrtdk.core import exact, theory
from sqrtdk.core.rows import sample_rows
from sqrtdk.core.sampling import Source
from sqrtdk.core.scores import sample_scores
from sqrtdk.core.theory import Entries
from sqrtdk.experiments._attention.measure import attention_rows
from sqrtdk.experiments.variance.measure import (
    variance_rows,
)

SAMPLES = 2**14  # scores per run of the variance cases (64 replicates of 256)

# (label, d_k, entries, column, level, seeds): the variance where its interval is given (Student-t from
# df 16 on), and a skewed mean of the attention rows at 95%
CASES = [
    ("variance, Gaussian, d_k 1", 1, Entries(), "variance", 0.999, 10_000),
    ("variance, Gaussian, d_k 4", 4, Entries(), "variance", 0.999, 10_000),
    ("variance, Student-t df 16, d_k 2", 2, Entries("student-t", df=16.0), "variance", 0.999, 10_000),
]
JACOBIAN = ("‖J‖_F², n 2, unscaled, d_k 1024", 1024, 512, 0.95, 4_000)  # (label, d_k, rows, level, seeds)


def binomial_line(label: str, below: int, above: int, seeds: int, level: float) -> str:
    half = (1 - level) / 2
    expected, sd = seeds * half, math.sqrt(seeds * half * (1 - half))
    return (
        f"| {label} | {level:.1%} | {seeds} | {below} | {above} | {expected:.1f} ± {sd:.1f} | "
        f"{1 - (below + above) / seeds:.2%} |"
    )


def variance_case(d_k: int, entries: Entries, column: str, level: float, seeds: int) -> tuple[int, int]:
    """Misses below and above of the column's interval, SAMPLES scores a seed."""
    truth = {"variance": theory.score_variance}[column](d_k, entries)
    below = above = 0
    for seed in range(seeds):
        sample = sample_scores(d_k, SAMPLES, seed=seed, source=Source(entries), histogram=False)
        row = variance_rows(sample, ("none",), level=level)[0]
        below += truth < row[column + "_ci_low"]
        above += truth > row[column + "_ci_high"]
    return below, above


def jacobian_case(d_k: int, rows: int, seeds: int, std: float = 1.0) -> tuple[int, int]:
    truth = exact.attention_row(2, d_k, 0.0, std, 1.0, False).jacobian_sq
    below = above = 0
    for seed in range(seeds):
        row = attention_rows(sample_rows("gradient", d_k, 2, rows, std=std, seed=seed, scalings=("none",)))[0]
        below += truth < row["jacobian_sq_mean_ci_low"]
        above += truth > row["jacobian_sq_mean_ci_high"]
    return below, above


def main(argv: list[str] | None = None) -> None:
    args = options(__doc__, argv)
    scale = 0.002 if args.quick else 1.0  # --quick: 20 seeds a variance case, 16 for the mean

    heading("1. Where no interval is honest, none is given")
    for df, d_k in ((5.0, 1), (5.0, 4), (5.0, 16), (16.0, 1)):
        sample = sample_scores(d_k, SAMPLES, seed=0, source=Source(Entries("student-t", df=df)), histogram=False)
        row = variance_rows(sample, ("none",), level=0.999)[0]
        given = row["variance_ci_low"] is not None
        say(
            f"Student-t df {df:g}, d_k {d_k}: variance {row['variance']:.3f}, interval {'given' if given else 'not given'}."
        )
    sample = sample_scores(4, 2**20, seed=0, source=Source(Entries(mean=0.5, std=2.0)), histogram=False)
    row = variance_rows(sample, ("none",), level=0.95)[0]
    given = any(column.startswith("excess_kurtosis_ci") for column in row)
    say(
        f"Excess kurtosis, N(0.5, 2^2), d_k 4, 2^20 scores: {row['excess_kurtosis']:.4f} ± "
        f"{row['excess_kurtosis_se']:.4f} (standard error), interval {'given' if given else 'not given'}."
    )

    heading("2. Misses below and above the intervals, against exact truths")
    lines = [
        "| case | level | seeds | below | above | expected each side ± sd | coverage |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, d_k, entries, column, level, seeds in CASES:
        seeds = max(20, round(seeds * scale))
        start = time.perf_counter()
        below, above = variance_case(d_k, entries, column, level, seeds)
        lines.append(binomial_line(label, below, above, seeds, level))
        print(lines[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    label, d_k, rows, level, seeds = JACOBIAN
    seeds = max(16, round(seeds * scale))
    below, above = jacobian_case(d_k, rows, seeds)
    lines.append(binomial_line(label, below, above, seeds, level))
    print(lines[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "coverage.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    say(
        f"Each side of an interval at level L should miss (1 - L) / 2 of the seeds; the sd is the binomial "
        f"one. Table written to {args.out / 'coverage.md'}."
    )


if __name__ == "__main__":
    main()
