"""The measurement of `sqrtdk variance`: its options, one task's run, its rows with their intervals (and
why each interval is given where it is), its histogram and its cost."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import schema
from sqrtdk.core.rules import RULES, SCALINGS

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.scores import ScoreSample

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk variance`: the schema of its options and config keys.",
    dim=schema.dim_field(),
    samples=schema.scores_field(2**21),
    seed=schema.seed_field(),
    **schema.source_fields(),
    scaling=schema.scaling_field(
        tuple(s for s in SCALINGS if not RULES[s].needs_seq_len),
        "logn needs a sequence length: use it in saturation or gradient",
    ),
    qk_gain=schema.qk_gain_field(),
)

LEVEL = 0.999
# The kurtosis standard error needs finite moments of order 8 of the entries in theory, and in practice
# many more: with Student-t entries its 95% interval covered 86.7% at df = 10, 92.4% at df = 17 and 94.1%
# at df = 30 (1000 seeds each, d_k = 1, 2^19 scores; binomial sd 0.7-1.1 points). Below df = 30 it is left
# empty.
KURTOSIS_SE_MIN_DF = 30
# The variance's interval needs more than the entries' 8th moment (the spread of its standard error is a
# moment of order 8) at the sample sizes people run. Its 95% interval, misses below and above in 400
# seeds at d_k 1 (10 and 10 expected): Student-t df 5, 2 and 18 (2^16 scores; 0 and 24 at d_k 4, 2 and
# 24 at d_k 16); df 9, 3 and 23 (2^14 scores); df 16, 3 and 12; df 30, 4 and 10. Below df 16 no interval
# is given.
VARIANCE_INTERVAL_MIN_DF = 16
# The sample variance is skewed to the right, and (estimate - truth) / se to the left (a low estimate comes
# with a low standard error): at the default 99.9% the symmetric estimate +- t se missed 0 times below and
# 26 above in 10^4 seeds (Gaussian entries, d_k 1, 2^14 scores; 5 and 5 expected), and symmetric on the
# log scale, estimate * exp(+-t se / estimate), 1 and 12 (at 95%: 191 and 365, 250 +- 16 expected). The
# interval is therefore symmetric in 1 / estimate, estimate / (1 +- t se / estimate): in the same 10^4
# seeds 5 and 2 at 99.9%, 270 and 280 at 95%; at d_k 4, 4 and 6 (240 and 261); Student-t df 16 at d_k 2,
# 7 and 8 (251 and 259); entries of mean 0.5 and std 2 at d_k 1, 2 and 1 in 4000 seeds (107 and 97);
# d_k 64, 4 and 0 (100 and 86). experiments/coverage.py counts them. One product of two Student-t
# entries (d_k 1) is heavier-tailed than that (df 16: 6 and 10 at 99.9%, 235 and 308 at 95%, in 10^4
# seeds): there no interval.
VARIANCE_INTERVAL_MIN_DK_HEAVY = 2
# The kurtosis has its standard error and no interval: none was found to cover its level on both sides.
# Its sampling law is skewed, so the symmetric estimate +- t se missed 5 times below and 21 above at 95% in
# 400 seeds (d_k 4, Gaussian entries of mean 0.5 and std 2, 2^16 scores). A studentized bootstrap over
# the 64 replicates does better but needs replicates large enough that their own kurtosis estimates are
# not skewed, and still leans above: at 95% it missed 71 times below and 145 above in 3000 seeds with 256
# scores a replicate (75 +- 8.5 expected each side), 66 and 120 with 1024, 50 and 75 in 2000 seeds with
# 2048 (50 +- 7), 106 and 128 in 4000 seeds with 4096 (100 +- 9.9), and 436 and 473 in 16000 seeds with
# 16384 (400 +- 19.7: too narrow on both sides); at 99.9% with 4096 it missed 2 and 16 in 4000 seeds
# (2 +- 1.4 expected): the tails of 64 replicates are more than a bootstrap of them resolves, and at d_k 1 (one
# product of two entries, itself heavy-tailed) it missed 6 and 20 at 95%. The default level is 99.9%.


# ---- the run and its rows ----


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> ScoreSample:
    from sqrtdk.core.scores import sample_scores

    return sample_scores(
        task["dim"],
        task["samples"],
        seed=task["seed"],
        source=schema.source(task),
        cosine="qknorm" in task.get("scaling", ()),
        histogram=histogram,
        map_replicates=map_replicates,
    )


def rows(task: Mapping[str, Any], sample: ScoreSample) -> list[dict]:
    return variance_rows(sample, task["scaling"], schema.gain(task))


def variance_rows(
    sample: ScoreSample,
    scalings: tuple[str, ...] = ("none", "sqrt"),
    qk_gain: float | None = None,
    level: float = LEVEL,
) -> list[dict]:
    """One row per scaling rule: measured mean, variance with its interval, kurtosis, and their theory.

    Where the entries' moments do not exist (Student-t with few degrees of freedom) the estimates whose
    sampling variance is infinite are left empty: the variance's standard error needs a finite 4th
    moment of the entries and its interval more (VARIANCE_INTERVAL_MIN_DF), the kurtosis a finite 4th,
    and its standard error (KURTOSIS_SE_MIN_DF) far more than the 8th. Standard errors are the jackknife
    of the pooled estimators over replicates; the variance's interval is symmetric in 1 / variance, the
    mean's estimate +- t se; the kurtosis has no interval (above).
    """
    import numpy as np

    from sqrtdk.core import rules, theory
    from sqrtdk.core.moments import jackknife, on_reciprocal_scale
    from sqrtdk.core.scores import theory_dot

    finite = sample.source.entries.finite_moments()
    rows = []
    for scaling in scalings:
        normalised = scaling in rules.NORMALISING
        c = rules.scale(sample.d_k, scaling, qk_gain=qk_gain)
        name = "cos" if normalised else "dot"
        channel = sample.channels[name]
        per_replicate = channel.pooled.n / len(channel.sums)

        def estimate(statistic):
            return jackknife(statistic, channel.total, channel.sums, per_replicate, channel.shift, level)

        scale, shift = c * channel.unit, c * channel.offset  # c q.k = scale u + shift
        mean_est = estimate(lambda m: m.affine(scale, shift).mean)
        var_est = estimate(lambda m: m.affine(scale, shift).variance)
        kurt_est = estimate(lambda m: m.excess_kurtosis)
        bounded = normalised or finite > 4
        honest = normalised or (
            finite >= VARIANCE_INTERVAL_MIN_DF and (finite == math.inf or sample.d_k >= VARIANCE_INTERVAL_MIN_DK_HEAVY)
        )
        var_interval = on_reciprocal_scale(var_est) if honest else (None, None)
        kurtosis_se = normalised or finite >= KURTOSIS_SE_MIN_DF
        if normalised:
            cos_var = theory.cosine_variance(sample.d_k, sample.source.entries)
            theory_mean = None if cos_var is None else 0.0
            theory_var = None if cos_var is None else c * c * cos_var
            theory_kurt = (
                theory.cosine_excess_kurtosis(sample.d_k, sample.source.entries)
                if sample.source.inputs == "direct"
                else None
            )
        else:
            theory_mean, theory_var = theory_dot(sample.d_k, sample.source, sample.block, c)
            if sample.source.layernorm and not theory.layernorm_theory_holds(
                sample.source.entries, sample.source.d_model
            ):
                theory_mean, theory_var = None, None  # LayerNorm's eps shrinks such tokens
            theory_kurt = (
                theory.score_excess_kurtosis(sample.d_k, sample.source.entries)
                if sample.source.inputs == "direct"
                else None
            )
        rows.append(
            {
                "d_k": sample.d_k,
                "scaling": scaling,
                "n_scores": sample.n_scores,
                "mean": mean_est.value,
                "mean_se": mean_est.se,
                "variance": var_est.value,
                "variance_se": var_est.se if bounded else None,
                "variance_ci_low": var_interval[0],
                "variance_ci_high": var_interval[1],
                "theory_mean": theory_mean,
                "theory_variance": theory_var,
                "excess_kurtosis": kurt_est.value if bounded else None,
                "excess_kurtosis_se": kurt_est.se if kurtosis_se else None,
                "theory_excess_kurtosis": theory_kurt,
            }
        )
    return [{k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()} for row in rows]


def histogram(sample: ScoreSample) -> tuple[Sequence[int], int] | None:
    """The counts of the scores' histogram and the scores outside it, where it was drawn."""
    return None if sample.counts is None else ([int(c) for c in sample.counts], sample.outside)


def with_histogram(sample: ScoreSample, counts: Sequence[int], outside: int) -> ScoreSample:
    """The same sample whose score histogram holds `counts` (and `outside`) instead of its own."""
    import dataclasses

    import numpy as np

    dot = dataclasses.replace(sample.channels["dot"], counts=np.array(counts, dtype=np.int64), outside=outside)
    return dataclasses.replace(sample, channels={**sample.channels, "dot": dot})


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Bytes held at once by `threads` threads and seconds on one core (sqrtdk/resources.py)."""
    from sqrtdk.core.moments import REPLICATES
    from sqrtdk.core.scores import chunk_size, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, SCORE_NS, TASK_SECONDS

    src = schema.source(task)
    d_k = src.d_k(task["dim"])
    layout, n, per_block = geometry(d_k, src, task["samples"])
    per_replicate = max(1, math.ceil(task["samples"] / (REPLICATES * per_block)))  # whole blocks
    blocks = min(chunk_size(d_k, layout, n, per_block), per_replicate)  # held at once by one thread
    scores = REPLICATES * per_replicate * per_block  # what is drawn: whole blocks in every replicate
    if layout == "sequence":
        held = 4 * (2 * src.d_model**2 + 3 * n * src.d_model) + 40 * per_block
        draws = (2 * src.d_model**2 + n * src.d_model) / per_block
        flops = 4 * n * src.d_model**2 / per_block + 2 * d_k
    else:  # n queries and n keys per block (all pairs, or n matched pairs, whose mixing copies them twice)
        held = blocks * (4 * 2 * n * d_k * (3 if layout == "pairs" else 1) + 40 * per_block)
        draws, flops = 2 * d_k * n / per_block, 2 * d_k
    rules = 1 + ("qknorm" in task.get("scaling", ()))
    seconds = scores * (draws * DRAW_NS + flops * FLOP_NS + rules * SCORE_NS) * 1e-9 + TASK_SECONDS
    return held * min(threads, REPLICATES), seconds
