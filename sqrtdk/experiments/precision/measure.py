"""The measurement of `sqrtdk precision`: its options, one task's run, its rows (overflow against the
exact tail probability, rounding error in the weights and the entropy) and its cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import schema

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.precision import PrecisionSample


DTYPES = ("float16", "bfloat16", "float32")  # core.precision.FORMATS, in its order
PLACEMENTS = ("none", "after", "query", "split")  # core.precision.PLACEMENTS
LEVEL = 0.95  # of the shares' intervals and the figures' error bars
RATE, RATE_TEXT = 1e-6, "1e-6"  # the overflow rate the reading asks about: one score in a million
FLOOR = 1e-12  # the overflow figure's lowest value
ERRORS = ("weight_error_max", "weight_error_mean", "entropy_error")
SHOWN = {
    "none": "unscaled",
    "after": "after q.k",
    "query": "on q",
    "split": "split",
}
PLACEMENT_MATHS = {
    "none": r"unscaled: $q\cdot k$",
    "after": r"after: $(q\cdot k)/\sqrt{d_k}$",
    "query": r"on $q$: $(q/\sqrt{d_k})\cdot k$",
    "split": r"split: $(q/d_k^{1/4})\cdot(k/d_k^{1/4})$",
}

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk precision`: the schema of its options and config keys.",
    dim=schema.dim_field((16, 32, 64, 128, 256, 512, 1024, 2048)),
    std=schema.param(
        1.0,
        "standard deviation of every entry of q and k (mean 0, Gaussian)",
        schema.Real("the std", lo=1e-3, hi=1e3),
        column="entry_std",
    ),
    seq_len=schema.seq_len_field(128, hi=4096),
    samples=schema.param(
        4096,
        "query rows per point, in whole trials of min(n, 256) queries; overflow is counted over their n scores",
        schema.Integer(1, 10**9, "the number of query rows"),
        metavar="INT",
    ),
    seed=schema.seed_field(),
    dtype=schema.param(
        DTYPES,
        "number formats compared on the same draws (rounding emulated exactly)",
        schema.Choice(DTYPES, "the dtype"),
        metavar="NAME",
        axis=False,
    ),
    placement=schema.param(
        PLACEMENTS,
        "where 1/sqrt(d_k) goes: none (unscaled), after q.k, query (q pre-scaled), split (d_k^-1/4 on q and k)",
        schema.Choice(PLACEMENTS, "the placement"),
        metavar="NAME",
        axis=False,
    ),
)


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> PrecisionSample:
    from sqrtdk.core.precision import sample_precision

    return sample_precision(
        task["dim"],
        task["seq_len"],
        task["samples"],
        task["std"],
        task["seed"],
        task["dtype"],
        task["placement"],
        map_replicates,
    )


def rows(task: Mapping[str, Any], sample: PrecisionSample) -> list[dict]:
    """One row per dtype and placement: each share with its standard error and exact interval, the
    exact overflow probability, and the rounding errors' means with their standard errors."""
    import numpy as np

    from sqrtdk.core.moments import batch_means, fraction_interval
    from sqrtdk.core.precision import FORMATS, METRICS, overflow_probability

    out = []
    for i, dtype in enumerate(sample.formats):
        for j, placement in enumerate(sample.placements):
            row: dict = {
                "d_k": sample.d_k,
                "seq_len": sample.seq_len,
                "entry_std": sample.std,
                "dtype": dtype,
                "placement": placement,
                "n_rows": sample.n_rows,
                "replicates": len(sample.replicate_means),
            }
            for m, name in enumerate(METRICS):
                values = sample.replicate_means[:, i, j, m]
                if np.isnan(values).any():
                    row[name], row[name + "_se"] = None, None
                    continue
                est = batch_means(float(values.mean()), values, LEVEL)
                row[name], row[name + "_se"] = est.value, est.se
                if name == "overflow_fraction":
                    # Two scores are dependent only when they share a query or a key, and then their
                    # covariance is at most p: Var(count) <= N p (n + m - 1), so at least N / (n + m - 1)
                    # independent scores' worth, which is what an interval with no overflow rests on.
                    count, least = sample.n_scores, sample.n_scores // (sample.seq_len + sample.queries - 1)
                elif name == "overflow_rows":
                    count, least = sample.n_rows, sample.n_trials  # rows share every key of their trial
                else:
                    continue
                row[name + "_ci_low"], row[name + "_ci_high"] = fraction_interval(
                    est.value, est.se, count, least, LEVEL
                )
                if name == "overflow_fraction":
                    row["theory_overflow_fraction"] = overflow_probability(
                        sample.d_k, sample.std, placement, FORMATS[dtype]
                    )
            out.append(row)
    return out


def entry_stds(rows: Sequence[dict]) -> list[float]:
    """The entries' standard deviations in the rows, smallest first."""
    return sorted({r["entry_std"] for r in rows})


def select(rows: Sequence[dict], **match: Any) -> list[dict]:
    """The rows whose columns equal `match`, by d_k."""
    return sorted((r for r in rows if all(r[k] == v for k, v in match.items())), key=lambda r: r["d_k"])


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Float64 queries, keys and their rounded copies per trial, and the products (sqrtdk/resources.py)."""
    from sqrtdk.core.rows import QUERIES, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, LOGIT_NS, TASK_SECONDS

    d, n = task["dim"], task["seq_len"]
    m = min(n, QUERIES)
    replicates, per_replicate = geometry(task["samples"], m)
    formats, placements = len(task["dtype"]), len(task["placement"])
    held = 8 * ((m + n) * d * 6 + m * n * (8 + 2 * placements))
    per_trial = (
        (m + n) * d * DRAW_NS
        + formats * (3 * m + 2 * n) * d * 12 * LOGIT_NS
        + (1 + 3 * formats) * 2 * m * n * d * 2 * FLOP_NS
        + (2 + formats * placements) * m * n * 30 * LOGIT_NS
    )
    return held * min(threads, replicates), replicates * per_replicate * per_trial * 1e-9 + TASK_SECONDS
