"""`sqrtdk variance`: moments of the scores c q.k under each scaling rule, against their closed forms.

For iid entries with mean mu and std sigma, Var(q.k) = d_k (sigma^4 + 2 sigma^2 mu^2) (core/theory.py;
Vaswani et al. 2017, sec. 3.2.1 and footnote 4, for mu = 0 and sigma = 1); dividing by sqrt(d_k) brings it
back to sigma^4 + 2 sigma^2 mu^2, independent of d_k, dividing by d_k takes it to 0, and QK-norm (cos(q, k)
times a gain) makes it independent of sigma as well. The scores are streamed by core/scores.py; this module
turns their power sums into estimates with jackknife intervals, rows, figures, a reading and a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.scores import ScoreSample
    from sqrtdk.result import Result

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
# The kurtosis's sampling law is skewed: its symmetric interval (estimate +- t se) missed 5 times below
# and 21 above at 95% in 400 seeds (d_k 4, Gaussian entries of mean 0.5 and std 2, 2^16 scores), the
# studentized bootstrap interval (core/moments.py) 12 and 12. The kurtosis of one product of two entries
# (d_k 1) is itself heavy-tailed (excess kurtosis 6 for Gaussian entries): there even that one missed 6
# times below and 20 above. Below d_k 4 the kurtosis keeps its standard error, without an interval.
KURTOSIS_INTERVAL_MIN_DK = 4
# The bootstrap also needs replicates large enough that their kurtosis estimates are not too skewed: at 95%
# (d_k 4, entries N(0.5, 2^2), 64 replicates) it missed 71 times below and 145 above in 3000 seeds with
# 256 scores a replicate (75 +- 8.5 expected each side), 66 and 120 with 1024, 50 and 75 in 2000 seeds
# with 2048 (50 +- 7), and 106 and 128 in 4000 seeds with 4096 (100 +- 9.9: still 2.8 sd above, where
# experiments/coverage.py counts it). Below 4096 scores a replicate (2^18 in all) the kurtosis keeps its
# standard error, without an interval.
KURTOSIS_INTERVAL_MIN_PER_REPLICATE = 4096
# Nor does it resolve the tails of 64 replicates: with 4096 scores a replicate it missed 16 times below and
# 21 above at 99% in 2000 seeds (10 +- 3.2 expected each side), 2 and 16 at 99.9% in 4000 seeds
# (2 +- 1.4). Above this level no interval is given.
KURTOSIS_INTERVAL_MAX_LEVEL = 0.95


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
    kurtosis's a studentized bootstrap one (core/moments.py), the mean's estimate +- t se.
    """
    import numpy as np

    from sqrtdk.core import rules, theory
    from sqrtdk.core.moments import excess_kurtosis_of_sums, jackknife, on_reciprocal_scale, studentized_interval
    from sqrtdk.core.scores import theory_dot

    finite = sample.source.entries.finite_moments()
    rows = []
    kurtosis_intervals: dict[str, tuple[float, float]] = {}  # per channel: the rules that rescale share it
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
        kurt_interval: tuple[float | None, float | None] = (None, None)
        kurtosis_se = normalised or finite >= KURTOSIS_SE_MIN_DF
        resolved = per_replicate >= KURTOSIS_INTERVAL_MIN_PER_REPLICATE and level <= KURTOSIS_INTERVAL_MAX_LEVEL
        if kurtosis_se and sample.d_k >= KURTOSIS_INTERVAL_MIN_DK and resolved:
            if name not in kurtosis_intervals:
                kurtosis_intervals[name] = studentized_interval(
                    excess_kurtosis_of_sums, channel.sums, per_replicate, kurt_est, level
                )
            kurt_interval = kurtosis_intervals[name]
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
                "excess_kurtosis_ci_low": kurt_interval[0],
                "excess_kurtosis_ci_high": kurt_interval[1],
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


# ---- figures ----

HISTOGRAMS = 16  # a histogram per task for runs of at most this many tasks; larger sweeps get the summary


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    figures: dict[str, Callable[[], Any]] = {}
    swept = len({t["dim"] for t in result.tasks}) > 1 and result.tasks[0].get("inputs") != "projected"
    swept = swept and len(result.tasks) <= HISTOGRAMS  # larger sweeps get the summary alone
    settings = not swept and 1 < len(result.tasks) <= HISTOGRAM_COLUMNS  # one d_k, a few settings
    if swept or settings:  # named whether or not the samples are here (a committed result has rows only)
        figures["histograms"] = partial(histograms_figure, result)
    for task, sample in zip(
        result.tasks if len(result.tasks) <= HISTOGRAMS and not (swept or settings) else (), result.outputs
    ):
        d_k = task["d_model"] // task["heads"] if task.get("inputs") == "projected" else task["dim"]
        name = f"histogram_dk{d_k}" + result.suffix(task, skip=("dim",))  # from the task: a committed
        # result (a config that reproduce did not run) has rows but no samples
        figures[name] = partial(histogram_figure, sample, result.label(task, skip=("dim",)))
    if len({r["d_k"] for r in result.rows}) > 1:
        figures["variance_vs_dk"] = lambda: variance_figure(result.rows, result.series_columns("dim"), result.setting())
        figures["variance_checks"] = lambda: variance_figure(
            result.rows, result.series_columns("dim"), result.setting(), checks=True
        )
    elif len(result.tasks) > 1:
        figures["variance_by_setting"] = lambda: variance_by_setting(
            result.rows, result.series_columns("dim"), result.setting()
        )
    return figures


HISTOGRAM_COLUMNS = 5  # d_k shown side by side in the histograms of a sweep
MAX_SERIES = 5  # series in one panel; more become small multiples, a column per setting
MAX_COLUMNS = 4  # settings side by side


def histograms_figure(result: Result) -> Any:
    """The scores of a d_k sweep as small multiples, a column per d_k (at most HISTOGRAM_COLUMNS, spread
    evenly over the sweep in log d_k; the other parameters at their first task's values). Top row: the
    scaled scores q.k / sqrt(d_k) on one shared axis, density on a log scale, against the exact density
    (where implemented) and the normal curve: the tails, heavy at small d_k, become normal. Bottom row:
    the unscaled scores on one shared axis: the sqrt(d_k) widening itself."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from sqrtdk.core import theory
    from sqrtdk.core.rules import scale
    from sqrtdk.core.scores import theory_dot
    from sqrtdk.plots import legend_below, new_figure, power_label

    by_d_k = len({t["dim"] for t in result.tasks}) > 1
    picked = result.like_first(("dim",)) if by_d_k else range(len(result.tasks))
    chosen = [(result.tasks[i], result.outputs[i]) for i in picked]
    if any(sample is None or sample.counts is None for _, sample in chosen):
        raise ValueError("these samples were drawn without a histogram (figures=False): run them again to draw it")
    if by_d_k:
        chosen.sort(key=lambda pair: pair[1].d_k)
    titles = {id(sample): f"$d_k$ = {sample.d_k}" if by_d_k else result.label(task) for task, sample in chosen}
    found = [sample for _, sample in chosen]
    if len(found) > HISTOGRAM_COLUMNS:  # evenly in log d_k, both ends kept
        found = [found[round(i * (len(found) - 1) / (HISTOGRAM_COLUMNS - 1))] for i in range(HISTOGRAM_COLUMNS)]
    fig = new_figure(len(found), 2, aspect=1.0)
    grid = fig.subplots(2, len(found), sharex="row", sharey="row", squeeze=False)
    widest = max(math.sqrt(theory_dot(x.d_k, x.source, x.block)[1]) for x in found)
    spreads = [math.sqrt(theory_dot(x.d_k, x.source, x.block, scale(x.d_k, "sqrt"))[1]) for x in found]
    exact_anywhere = False
    for column, sample in enumerate(found):
        counts, bin_edges = sample.counts, sample.edges
        if counts is None or bin_edges is None:
            raise ValueError("this sample was drawn without a histogram (figures=False): run it again to draw it")
        density = counts / (sample.n_scores * np.diff(bin_edges))
        exact = sample.source.inputs == "direct" and theory.has_density(sample.source.entries)
        exact_anywhere = exact_anywhere or exact
        for row, scaling in enumerate(("sqrt", "none")):
            ax, c = grid[row, column], scale(sample.d_k, scaling)
            edges = c * bin_edges
            ax.stairs(density / c, edges, fill=True, alpha=0.35, color=RULES[scaling].colour)
            mu, var = theory_dot(sample.d_k, sample.source, sample.block, c)
            x = np.linspace(float(edges[0]), float(edges[-1]), 600)
            ax.plot(x, np.exp(-0.5 * (x - mu) ** 2 / var) / math.sqrt(2 * math.pi * var), "--", color="0.15", lw=0.8)
            if exact:
                ax.plot(
                    x, theory.score_density(x, sample.d_k, sample.source.entries.std, c), color=RULES[scaling].colour
                )
        grid[0, column].set_title(titles[id(sample)])
        grid[1, column].set_xlabel("$q\\cdot k$")
        grid[0, column].set_xlabel(r"$q\cdot k/\sqrt{d_k}$")
    top = grid[0, 0]
    top.set_yscale("log")
    top.set_xlim(-5.5 * max(spreads), 5.5 * max(spreads))
    top.set_ylim(1e-4 / max(spreads), 1.0 / min(spreads))
    top.set_ylabel("density, scaled")
    bottom = grid[1, 0]
    bottom.set_xlim(-4 * widest, 4 * widest)
    bottom.set_yscale("log")
    bottom.set_ylim(1e-4 / widest, 1.0)
    bottom.set_ylabel("density, unscaled")
    for ax in grid.ravel():
        ax.xaxis.set_major_formatter(lambda value, _: power_label(value, 10) if abs(value) >= 1e4 else f"{value:g}")
    handles: list[Any] = [
        Patch(color=RULES["sqrt"].colour, alpha=0.35, label="measured, scaled"),
        Patch(color=RULES["none"].colour, alpha=0.35, label="measured, unscaled"),
    ]
    if exact_anywhere:
        handles.append(Line2D([], [], color="0.3", label="exact density (variance-gamma)"))
    handles.append(Line2D([], [], color="0.15", lw=0.8, ls="--", label="normal curve, same mean and variance"))
    legend_below(fig, handles=handles)
    fig.suptitle(
        "Scaled, the tails turn normal as $d_k$ grows; unscaled, the spread grows like $\\sqrt{d_k}$"
        if by_d_k
        else f"Scores at $d_k$ = {found[0].d_k}, scaled and unscaled, setting by setting"
    )
    return fig


def histogram_figure(sample: ScoreSample, label: str = "") -> Any:
    """Histograms of the unscaled and the scaled scores, each on its own axis (the unscaled spread is
    sqrt(d_k) times wider), against the exact density and the normal curve; then the scaled scores on a
    log density axis, where the exact density's exponential tails part from the normal curve.

    The exact density is drawn where it is implemented (independent mean-0 Gaussian entries); the normal
    curve has the theoretical mean and variance. Where the two lie within 1% of the peak of each other on
    a linear axis, the normal curve is not drawn there and the legend says so.
    """
    import numpy as np

    from sqrtdk.core import theory
    from sqrtdk.core.rules import scale
    from sqrtdk.core.scores import theory_dot
    from sqrtdk.plots import legend_below, new_figure, wrap

    d_k, source = sample.d_k, sample.source
    counts, bin_edges = sample.counts, sample.edges
    if counts is None or bin_edges is None:
        raise ValueError("this sample was drawn without a histogram (figures=False): run it again to draw it")
    density = counts / (sample.n_scores * np.diff(bin_edges))  # of the unscaled scores
    exact = source.inputs == "direct" and theory.has_density(source.entries)
    fig = new_figure(3, 1, aspect=0.95)
    ax_none, ax_sqrt, ax_log = fig.subplots(1, 3)
    parted = []

    def overlay(ax, scaling: str, log: bool = False, x_points: int = 600) -> None:
        c = scale(d_k, scaling)
        colour = RULES[scaling].colour
        edges = c * bin_edges
        mu, var = theory_dot(d_k, source, sample.block, c)
        sd = math.sqrt(var)
        x = np.linspace(float(edges[0]), float(edges[-1]), x_points)
        normal = np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
        ax.stairs(density / c, edges, fill=True, alpha=0.35, color=colour)
        apart = True
        if exact:
            curve = theory.score_density(x, d_k, source.entries.std, c)
            apart = log or float(np.max(np.abs(curve - normal))) > 0.01 * float(np.max(curve))
            ax.plot(x, curve, color=colour)
        if apart:
            ax.plot(x, normal, color="0.15", lw=0.9, ls="--")
        if not log:
            parted.append(apart)
        ax.set_xlim(float(edges[0]), float(edges[-1]))
        ax.set_xlabel("$q\\cdot k$" if scaling == "none" else r"$q\cdot k/\sqrt{d_k}$")

    overlay(ax_none, "none")
    ax_none.set_ylabel("density")
    for ax, scaling in ((ax_none, "none"), (ax_sqrt, "sqrt")):
        c = scale(d_k, scaling)
        peak = float(np.max(density)) / c
        ax.set_ylim(0, 1.2 * peak)  # the exact density of d_k = 1 is infinite at 0
    ax_none.set_title("unscaled")
    overlay(ax_sqrt, "sqrt")
    ax_sqrt.set_title(r"scaled by $1/\sqrt{d_k}$")
    overlay(ax_log, "sqrt", log=True)
    ax_log.set_yscale("log")
    c = scale(d_k, "sqrt")
    floor = 10 / (sample.n_scores * float(np.min(np.diff(bin_edges))) * c)  # about 10 scores in a bin
    ax_log.set_ylim(floor, 2 * float(np.max(density)) / c)
    ax_log.set_title("scaled, log axis")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color="0.6", alpha=0.6, label="measured (histogram, in the rule's colour)")]
    if exact:
        handles.append(Line2D([], [], color="0.3", label="exact density (variance-gamma)"))
    normal_words = "normal curve, same mean and variance"
    if exact and not any(parted):
        normal_words += "\n(log axis only: elsewhere within 1% of the exact density)"
    handles.append(Line2D([], [], color="0.15", lw=0.9, ls="--", label=normal_words))
    legend_below(fig, handles=handles)
    kurtosis = theory.score_excess_kurtosis(d_k, source.entries) if source.inputs == "direct" else None
    where = f" ({label})" if label else ""
    told = f"; excess kurtosis {kurtosis:.3g} in theory" if kurtosis is not None else ""
    if not exact:
        told += "; no closed-form density for these entries"
    if sample.outside:
        told += f"; {sample.outside:,} score{'s' * (sample.outside != 1)} beyond the bins"
    fig.suptitle(wrap(f"Scores at $d_k$ = {d_k}{where}: {sample.n_scores:,} of them, scaled or not{told}", 6.4))
    return fig


class _Unseen:
    """Stands for the panels of the other figure of the pair: whatever is drawn on it is dropped."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def variance_figure(rows: Sequence[dict], series: Sequence[str] = (), setting: str = "", checks: bool = False) -> Any:
    """Two panels against d_k (log2 axis), a series per scaling rule and per combination of the other
    varying parameters (`series`: row columns): the variance with its theory and measured / theory; or,
    with `checks`, the supplementary figure of quality checks: the mean in units of the spread, E / sd (0
    for independent mean-0 entries, growing like sqrt(d_k) when q and k are correlated), and d_k times
    the excess kurtosis, a constant in theory. Every error bar is a 99.9% interval. All but the variance
    are the same for every rule that only rescales q.k (the rules share their draws), so those rules are
    drawn there once; the kurtosis panel's range is set by the values and their theory, not by the widest
    interval.
    """
    import numpy as np
    from matplotlib.lines import Line2D

    from sqrtdk.core.moments import REPLICATES, t_quantile
    from sqrtdk.plots import (
        RULE_NAMES,
        Style,
        coinciding,
        legend_below,
        log_axis,
        new_figure,
        rules_in,
        series_of,
        wrap,
    )

    t_level = t_quantile(0.5 + LEVEL / 2, REPLICATES - 1)  # the variance experiment's replicates
    groups = series_of(rows, series, maths=True)
    rules = rules_in(rows)
    # more than MAX_SERIES series: a column of panels per setting (small multiples), a series per rule
    split = not checks and len(rules) * len(groups) > MAX_SERIES and 1 < len(groups) <= MAX_COLUMNS
    ax: Any
    ax_ratio: Any
    ax_mean: Any
    ax_kurt: Any
    if split:
        fig = new_figure(len(groups), 2, aspect=0.75)
        grid = fig.subplots(2, len(groups), sharex=True, sharey="row", squeeze=False)
        variance_axes, ratio_axes = list(grid[0]), list(grid[1])
        ax_mean, ax_kurt = _Unseen(), _Unseen()
    else:
        fig = new_figure(2, 1, aspect=0.8)
        if checks:
            ax, ax_ratio = _Unseen(), _Unseen()
            ax_mean, ax_kurt = fig.subplots(1, 2, sharex=True)
        else:
            ax, ax_ratio = fig.subplots(1, 2, sharex=True)
            ax_mean, ax_kurt = _Unseen(), _Unseen()
        variance_axes, ratio_axes = [ax] * len(groups), [ax_ratio] * len(groups)
    style = Style(rules, [groups[0]] if split else groups)
    rescaled = [s for s in rules if not RULES[s].normalised]  # the same draws times a constant
    shown = [s for s in rules if RULES[s].normalised or s == rescaled[0]]
    spots = len(shown) * (1 if split else len(groups))
    spread = np.linspace(0.93, 1.07, spots) if spots > 1 else [1.0]
    drawn, kurtosis_theory, kurtosis_points = [], [], []
    # where some scores have a mean, mean / sd grows like sqrt(d_k): a straight line of slope 1/2 on log
    # axes, where the series of mean 0 have no place (the title says they are left out)
    growing = any(r["theory_mean"] and r["scaling"] != "qknorm" for r in rows)
    zero_mean = False
    for g, (name, group) in enumerate(groups):
        ax, ax_ratio = variance_axes[g], ratio_axes[g]
        suffix = f" ({name})" if name and not split else ""
        if split:
            ax.set_title(name)
        for scaling in rules:
            sel = sorted((r for r in group if r["scaling"] == scaling), key=lambda r: r["d_k"])
            if not sel:
                continue
            colour, marker = style.colour(scaling, 0 if split else g), style.marker(scaling, 0 if split else g)
            d = np.array([r["d_k"] for r in sel], dtype=float)
            var = np.array([r["variance"] for r in sel])
            ax.plot(d, var, marker, color=colour, label=RULES[scaling].label + suffix)
            drawn.append(((RULE_NAMES[scaling], name), dict(zip(d, var))))
            with_theory = [r for r in sel if r["theory_variance"]]
            if with_theory:
                ax.plot(
                    [r["d_k"] for r in with_theory],
                    [r["theory_variance"] for r in with_theory],
                    color=colour,
                    lw=1.0,
                    alpha=0.7,
                    ls=style.line(scaling),
                )
            if scaling not in shown:
                continue
            offset = spread[(0 if split else g) * len(shown) + shown.index(scaling)]
            bounded = [r for r in with_theory if r["variance_ci_low"] is not None]
            if bounded:
                t = np.array([r["theory_variance"] for r in bounded])
                v = np.array([r["variance"] for r in bounded])
                err = (
                    np.array(
                        [[r["variance"] - r["variance_ci_low"], r["variance_ci_high"] - r["variance"]] for r in bounded]
                    ).T
                    / t
                )
                ax_ratio.errorbar(
                    np.array([r["d_k"] for r in bounded]) * offset, v / t, yerr=err, fmt=marker, color=colour
                )
            z = [
                (
                    r["d_k"] * offset,
                    r["mean"] / math.sqrt(r["variance"]),
                    t_level * r["mean_se"] / math.sqrt(r["variance"]),
                )
                for r in sel
                if r["variance"] > 0
            ]
            if growing and not any(r["theory_mean"] for r in sel):
                zero_mean, z = True, []
            if z:
                ax_mean.errorbar(
                    [x for x, _, _ in z],
                    [y for _, y, _ in z],
                    yerr=[e for _, _, e in z],
                    fmt=marker,
                    color=colour,
                    label=RULES[scaling].label + suffix,
                )
            zt = [
                (r["d_k"], r["theory_mean"] / math.sqrt(r["theory_variance"]))
                for r in sel
                if r["theory_mean"] is not None and r["theory_variance"] and (r["theory_mean"] or not growing)
            ]
            if zt:
                ax_mean.plot(*zip(*zt), color=colour, lw=1.0, alpha=0.7)
            k = [
                (
                    r["d_k"] * offset,
                    r["d_k"] * r["excess_kurtosis"],
                    r["d_k"] * (r["excess_kurtosis"] - r["excess_kurtosis_ci_low"]),
                    r["d_k"] * (r["excess_kurtosis_ci_high"] - r["excess_kurtosis"]),
                )
                for r in sel
                if r["excess_kurtosis"] is not None and r.get("excess_kurtosis_ci_low") is not None
            ]
            if k:
                ax_kurt.errorbar(
                    [x for x, _, _, _ in k],
                    [y for _, y, _, _ in k],
                    yerr=[[lo for _, _, lo, _ in k], [hi for _, _, _, hi in k]],
                    fmt=marker,
                    color=colour,
                    label=RULES[scaling].label + suffix,
                )
            bare = [
                (r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"])
                for r in sel
                if r["excess_kurtosis"] is not None and r.get("excess_kurtosis_ci_low") is None
            ]
            if bare:  # heavy tails or d_k < 4: the estimate without an interval (it would not cover)
                ax_kurt.plot(*zip(*bare), marker, color=colour, mfc="none", label=RULES[scaling].label + suffix)
            kt = [
                (r["d_k"], r["d_k"] * r["theory_excess_kurtosis"])
                for r in sel
                if r["theory_excess_kurtosis"] is not None
            ]
            if kt:
                ax_kurt.plot(*zip(*kt), color=colour, lw=1.0, alpha=0.7)
            kurtosis_theory += [y for _, y in kt]
            kurtosis_points += [(x, y, max(lo, hi), colour) for x, y, lo, hi in k]
            kurtosis_points += [(x, y, 0.0, colour) for x, y in bare]
    once = " and ".join(RULE_NAMES[s] for s in rescaled) if len(rescaled) > 1 else ""
    context = f"{setting}; " if setting else ""
    if not checks:
        for a in dict.fromkeys(variance_axes):
            log_axis(a, "x", base=2)
            log_axis(a, "y", base=2)
        variance_axes[0].set_ylabel("variance" if split else "variance of the score")
        together = "" if split else coinciding(drawn, log=True)
        if together:
            variance_axes[0].set_title(wrap(together, 3.3))
        for a in dict.fromkeys(ratio_axes):
            a.axhline(1.0, color="0.4", lw=0.8)
            a.set_xlabel("$d_k$")
            if not a.containers:  # no interval to draw: heavy tails, or no closed form
                a.text(0.5, 0.5, "no interval here", transform=a.transAxes, ha="center", va="center", color="0.35")
        ratio_axes[0].set_ylabel("measured / theory")
        if not split:
            ax.set_xlabel("$d_k$")
            ax_ratio.set_title("measured / theory" + (", one for all rules" if once else ""))
        legend_below(fig, variance_axes, handles=[Line2D([], [], color="0.3", lw=1.0, label="lines: theory")])
        fig.suptitle(f"{context}error bars: {LEVEL:.1%} intervals")
        return fig
    ax_mean.set_ylabel("mean / sd")
    if growing:
        log_axis(ax_mean, "y", base=2)
        left_out = " (mean 0: not drawn)" if zero_mean else ""
        ax_mean.set_title(wrap(r"mean / sd grows like $\sqrt{d_k}$" + left_out, 3.3))
    else:
        ax_mean.axhline(0.0, color="0.4", lw=0.8)
        ax_mean.set_title("the mean in units of the spread")
    ax_kurt.axhline(0.0, color="0.4", lw=0.8)
    ax_kurt.set_ylabel(r"$d_k \times$ excess kurtosis")
    hollow = any(r["excess_kurtosis"] is not None and r.get("excess_kurtosis_ci_low") is None for r in rows)
    notes = ["0: a normal curve"] + (["hollow: no interval"] if hollow else [])
    if kurtosis_points:  # around the theory and the sharper half of the estimates; wider bars run off
        half = sorted(e for _, _, e, _ in kurtosis_points)
        sharp = [y for _, y, e, _ in kurtosis_points if e <= half[len(half) // 2]]
        core = kurtosis_theory + sharp + [0.0]
        pad = max(0.3 * (max(core) - min(core)), 3 * half[len(half) // 2], 0.5)
        low, high = min(core) - pad, max(core) + pad
        ax_kurt.set_ylim(low, high)
        beyond = [(x, y, c) for x, y, _, c in kurtosis_points if not low <= y <= high]
        for x, y, c in beyond:  # a marker on the edge for each estimate beyond the panel
            ax_kurt.plot([x], [high if y > high else low], "^" if y > high else "v", color=c, clip_on=False)
        if beyond:
            notes.append("triangles: beyond it")
    ax_kurt.set_title(wrap("; ".join(notes), 3.3))
    for a in (ax_mean, ax_kurt):
        log_axis(a, "x", base=2)
        a.set_xlabel("$d_k$")
    legend_below(fig, [ax_mean, ax_kurt], handles=[Line2D([], [], color="0.3", lw=1.0, label="lines: theory")])
    shared = "; rules that rescale the same draws: drawn once" if once else ""
    fig.suptitle(f"Quality checks, {context}error bars: {LEVEL:.1%} intervals{shared}")
    return fig


def variance_by_setting(rows: Sequence[dict], series: Sequence[str], setting: str = "") -> Any:
    """One d_k, several settings (inits, distributions, ...): each rule's variance with its 99.9% interval
    against its theory, per setting, and measured / theory. Settings whose rows are the same within
    their intervals (lecun and xavier initialise W_q and W_k alike when d_model = d_k * heads) are said
    to coincide under the panel."""
    import numpy as np

    from sqrtdk.plots import legend_below, new_figure, rules_in, series_of

    fig = new_figure(2, 1, aspect=0.85)
    ax, ax_ratio = fig.subplots(1, 2)
    groups = series_of(rows, series)
    rules = rules_in(rows)
    rescaled = [s for s in rules if not RULES[s].normalised] or rules
    width = 0.8 / len(rules)
    ratios = [s for s in rules if RULES[s].normalised or s == rescaled[0]]  # drawn in the ratio panel
    ratio_width = 0.8 / len(ratios)
    for i, scaling in enumerate(rules):
        colour = RULES[scaling].colour
        for g, (_, group) in enumerate(groups):
            row = next((r for r in group if r["scaling"] == scaling), None)
            if row is None:
                continue
            x = g + (i - (len(rules) - 1) / 2) * width
            low, high = row["variance_ci_low"], row["variance_ci_high"]
            err = None if low is None else [[row["variance"] - low], [high - row["variance"]]]
            ax.errorbar(
                [x], [row["variance"]], yerr=err, fmt="o", color=colour, label=RULES[scaling].label if g == 0 else None
            )
            if row["theory_variance"]:
                ax.plot(
                    [x - width / 2, x + width / 2],
                    [row["theory_variance"]] * 2,
                    color="0.2",
                    lw=1.4,
                    label="theory" if i == 0 and g == 0 else None,
                )
                if err is not None and scaling in ratios:
                    t = row["theory_variance"]
                    at = g + (ratios.index(scaling) - (len(ratios) - 1) / 2) * ratio_width  # on the tick if alone
                    ax_ratio.errorbar([at], [row["variance"] / t], yerr=np.array(err) / t, fmt="o", color=colour)
    names = [name.split(" = ", 1)[-1] if len(series) == 1 else name for name, _ in groups]
    names = [name.replace("-", "-\n") if len(name) > 8 else name for name in names]  # level, on two lines
    for a in (ax, ax_ratio):
        a.set_xticks(range(len(groups)), names)
        a.grid(True, axis="x", alpha=0.0)
    if len(series) == 1:
        ax.set_xlabel(series[0])
        ax_ratio.set_xlabel(series[0])
    ax.set_yscale("log")
    ax.set_ylabel("variance of the score")
    d_k = rows[0]["d_k"]
    ax.set_title(f"variance at $d_k$ = {d_k} (bars: theory)")
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("measured / theory" + (", one for all rules" if len(rescaled) > 1 else ""))
    legend_below(fig, [ax])
    fig.suptitle((f"{setting}; " if setting else "") + f"error bars: {LEVEL:.1%} intervals")
    return fig


def _same_settings(groups: Sequence[tuple[str, Sequence[dict]]]) -> str:
    """'init = lecun and init = xavier coincide': settings whose every rule's variance lies inside the
    other's interval."""

    def inside(a: dict, b: dict) -> bool:
        return (
            a["variance_ci_low"] is not None
            and b["variance_ci_low"] is not None
            and (
                b["variance_ci_low"] <= a["variance"] <= b["variance_ci_high"]
                and a["variance_ci_low"] <= b["variance"] <= a["variance_ci_high"]
            )
        )

    pairs = []
    for i, (name_a, rows_a) in enumerate(groups):
        for name_b, rows_b in groups[i + 1 :]:
            by_rule = {r["scaling"]: r for r in rows_b}
            if all(r["scaling"] in by_rule and inside(r, by_rule[r["scaling"]]) for r in rows_a):
                pairs.append(f"{name_a} and {name_b} agree within their intervals")
    return "; ".join(pairs)


# ---- the reading in the report ----


def _covered(rows: Sequence[dict]) -> tuple[int, int, list[dict]]:
    """(intervals containing the theory, intervals with a theory, the rows that miss)."""
    judged = [r for r in rows if r["theory_variance"] is not None and r["variance_ci_low"] is not None]
    missed = [r for r in judged if not r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]]
    return len(judged) - len(missed), len(judged), missed


def _coverage_sentence(rows: Sequence[dict]) -> list[str]:
    hit, judged, missed = _covered(rows)
    if not judged:
        return []
    where = (
        "; not at " + ", ".join(f"d_k = {r['d_k']} ({RULES[r['scaling']].words})" for r in missed[:6]) if missed else ""
    )
    bare = sum(r["theory_variance"] is not None and r["variance_ci_low"] is None for r in rows)
    without = f" ({bare} more rows have no interval: entries too heavy-tailed for one to cover)" if bare else ""
    return [
        f"The 99.9% interval (jackknife over independent replicates) contains the theory in {hit} of {judged} "
        f"rows{where}{without}."
    ]


def reading(result: Result) -> list[str]:
    groups = report.groups(result, "dim")
    single_d = len({r["d_k"] for r in result.rows}) == 1
    if single_d and len(groups) == 1 and {r["scaling"] for r in groups[0][1]} <= {"none", "sqrt"}:
        prefix, rows = groups[0]
        asked = result.params.samples[0] if len(result.params.samples) == 1 else None
        return _read_one_variance(prefix, rows, asked) + _coverage_sentence(rows)
    if single_d:
        from sqrtdk.plots import series_of

        same = _same_settings(series_of(result.rows, result.series_columns("dim")))
        agree = [f"{same[0].upper()}{same[1:]}: their weights have the same variance."] if same else []
        return [_setting_table(groups)] + _coverage_sentence(result.rows) + agree
    if len(groups) > 1:
        return [_variance_table(groups)] + _coverage_sentence(result.rows)
    return _read_variance_vs_dk("", groups[0][1], detailed=True) + _coverage_sentence(result.rows)


def _read_variance_vs_dk(prefix: str, rows: Sequence[dict], detailed: bool) -> list[str]:
    out = []
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if none:
        a, b = none[0], none[-1]
        out.append(
            f"{prefix}Unscaled, the variance of q.k {report.trend(a['variance'], b['variance'], '.4g', (a['variance_se'], b['variance_se']))} from "
            f"d_k = {a['d_k']} to {b['d_k']} (theory {_num(a['theory_variance'])} and "
            f"{_num(b['theory_variance'])}): a factor {report.num(b['variance'] / a['variance'])} for a factor "
            f"{b['d_k'] / a['d_k']:g} in d_k."
        )
        if a["theory_mean"] and b["theory_mean"]:
            sd_factor = math.sqrt(b["variance"] / a["variance"])
            out.append(
                f"Its mean {report.trend(a['mean'], b['mean'], '.4g', (a['mean_se'], b['mean_se']))} (theory {report.num(a['theory_mean'])} and "
                f"{report.num(b['theory_mean'])}), a factor {report.num(b['mean'] / a['mean'])}, while its standard deviation "
                f"grows by a factor {report.num(sd_factor, 3)}: the mean outgrows the spread, "
                f"mean / sd {report.trend(a['mean'] / math.sqrt(a['variance']), b['mean'] / math.sqrt(b['variance']), '.3g')}."
            )
    for rule in ("sqrt", "linear", "qknorm"):
        sel = report.by_rule(rows, rule)
        if not sel:
            continue
        if rule == "linear":
            line = (
                f"{RULES[rule].words}: the variance {report.trend(sel[0]['variance'], sel[-1]['variance'], '.4g', (sel[0]['variance_se'], sel[-1]['variance_se']))} "
                f"from d_k = {sel[0]['d_k']} to {sel[-1]['d_k']} (theory {_num(sel[0]['theory_variance'])} and "
                f"{_num(sel[-1]['theory_variance'])})"
            )
        else:
            theories = {round(r["theory_variance"], 12) for r in sel if r["theory_variance"] is not None}
            told = f" (theory {_num(sel[0]['theory_variance'])})" if len(theories) == 1 else ""
            line = (
                f"{RULES[rule].words}: the variance stays {report.between([r['variance'] for r in sel], '.4g')} over "
                f"d_k = {sel[0]['d_k']} to {sel[-1]['d_k']}{told}"
            )
        if sel[0]["theory_mean"] and rule != "qknorm":
            line += f"; the mean {report.trend(sel[0]['mean'], sel[-1]['mean'], '.4g', (sel[0]['mean_se'], sel[-1]['mean_se']))}"
        out.append(line + ".")
    if detailed and scaled:
        ka, kb = scaled[0], scaled[-1]
        if (
            ka["excess_kurtosis"] is not None
            and kb["excess_kurtosis_se"] is not None
            and ka["excess_kurtosis_se"] is not None
        ):
            out.append(
                f"The excess kurtosis {report.trend(ka['excess_kurtosis'], kb['excess_kurtosis'], '.3g', (ka['excess_kurtosis_se'], kb['excess_kurtosis_se']))} "
                f"(± {ka['excess_kurtosis_se']:.2g} and ± {kb['excess_kurtosis_se']:.2g}; theory "
                f"{_num(ka['theory_excess_kurtosis'], '.3g')} and {_num(kb['theory_excess_kurtosis'], '.3g')}): "
                + _tails(ka)
                + " at d_k = "
                + str(ka["d_k"])
                + ", "
                + _tails(kb)
                + " at d_k = "
                + str(kb["d_k"])
                + "."
            )
    elif scaled:
        kurt = [r for r in scaled if r["excess_kurtosis_se"] is not None and r["theory_excess_kurtosis"] is not None]
        if kurt:
            near = [
                r
                for r in kurt
                if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]
            ]
            out.append(
                f"d_k times the excess kurtosis is {report.num(kurt[0]['d_k'] * kurt[0]['theory_excess_kurtosis'], 3)} in "
                f"theory at every d_k; the measurement is within 3 standard errors of it at {len(near)} of "
                f"{len(kurt)} values of d_k."
            )
        elif any(r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None for r in scaled):
            bare = [r for r in scaled if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            out.append(
                f"d_k times the excess kurtosis is {report.num(bare[0]['d_k'] * bare[0]['theory_excess_kurtosis'], 3)} in "
                f"theory at every d_k and measures {report.between([r['d_k'] * r['excess_kurtosis'] for r in bare], '.3g')}; "
                "no standard error is given for such heavy tails (its interval would cover too rarely)."
            )
        elif not any(r["excess_kurtosis"] is not None for r in scaled):
            out.append("The excess kurtosis does not exist for these entries (fourth moment infinite): left empty.")
    return out


def _num(value: float | None, spec: str = ".4g") -> str:
    return "none in closed form" if value is None else report.num(value, int(spec.strip(".g")))


def _tails(row: dict) -> str:
    """What the measured excess kurtosis says, at three standard errors."""
    k, se = row["excess_kurtosis"], row["excess_kurtosis_se"]
    if k - 3 * se > 0:
        return "heavier tails than a normal curve"
    if k + 3 * se < 0:
        return "lighter tails than a normal curve"
    return "within 3 standard errors of a normal curve's 0"


def _read_one_variance(prefix: str, rows: Sequence[dict], asked: int | None = None) -> list[str]:
    """One d_k, the unscaled and/or the scaled rule: each variance with its interval and theory (and the
    number of scores `asked` for, where the sampler rounded it up to whole blocks)."""
    none = next((r for r in rows if r["scaling"] == "none"), None)
    scaled = next((r for r in rows if r["scaling"] == "sqrt"), None)

    def told(row: dict, spec: str, interval: str) -> str:
        if row["variance_ci_low"] is None:
            where = "no interval: the entries' fourth moment is infinite"
        else:
            where = f"{interval} {row['variance_ci_low']:{spec}} to {row['variance_ci_high']:{spec}}"
        return f"{row['variance']:{spec}} ({where}; theory {_num(row['theory_variance'])})"

    first = none or scaled
    assert first is not None
    parts = []
    if none is not None:
        parts.append(f"the unscaled variance is {told(none, '.4g', '99.9% interval')}")
    if scaled is not None:
        parts.append(
            f"the scaled one {told(scaled, '.4f', 'interval')}"
            if none is not None
            else f"the scaled variance is {told(scaled, '.4f', '99.9% interval')}"
        )
    count = f"{first['n_scores']:,} scores"
    if asked is not None and asked != first["n_scores"]:
        count += f" ({asked:,} asked for, rounded up to whole sampling blocks)"
    out = [f"{prefix}At d_k = {first['d_k']}, {count}: " + ", ".join(parts) + "."]
    if scaled is not None and scaled["excess_kurtosis_se"] is not None:
        out.append(
            f"The excess kurtosis is {report.num(scaled['excess_kurtosis'], 3)} ± {scaled['excess_kurtosis_se']:.2g} "
            f"(theory {_num(scaled['theory_excess_kurtosis'], '.3g')}; a normal curve has 0): {_tails(scaled)}."
        )
    return out


def _variance_table(groups: Sequence[tuple[str, list[dict]]]) -> str:
    """Several settings swept over d_k: per setting and rule, the variance at the ends of the sweep
    against its theory, and d_k times the excess kurtosis against its constant theory."""
    all_rows = [r for _, rows in groups for r in rows]
    d_ks = sorted({r["d_k"] for r in all_rows})
    with_mean = any(r["theory_mean"] for r in all_rows)
    head = ["setting", "rule", f"variance, d_k = {d_ks[0]} → {d_ks[-1]}", "theory"]
    head += ["mean", "theory"] if with_mean else []
    head += ["d_k times excess kurtosis: theory", "within 3 SE"]
    cells = []
    for prefix, rows in groups:
        setting = prefix.removeprefix("With ").removesuffix(": ")
        for rule in [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]:
            sel = report.by_rule(rows, rule)
            a, b = sel[0], sel[-1]
            told = (
                f"{report.num(a['theory_variance'])} → {report.num(b['theory_variance'])}"
                if a["theory_variance"] is not None and b["theory_variance"] is not None
                else ""
            )
            row = [
                setting,
                RULES[rule].words,
                report.arrow(a["variance"], b["variance"], ".4g", (a["variance_se"], b["variance_se"])),
                told,
            ]
            if with_mean:
                row += [
                    report.arrow(a["mean"], b["mean"], ".4g", (a["mean_se"], b["mean_se"])),
                    f"{report.num(a['theory_mean'])} → {report.num(b['theory_mean'])}"
                    if a["theory_mean"] is not None and b["theory_mean"] is not None
                    else "",
                ]
            kurt = [r for r in sel if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            judged = [r for r in kurt if r["excess_kurtosis_se"] is not None]
            near = [
                r
                for r in judged
                if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]
            ]
            constant = {round(r["d_k"] * r["theory_excess_kurtosis"], 9) for r in kurt}
            row += [
                report.num(kurt[0]["d_k"] * kurt[0]["theory_excess_kurtosis"], 3) if len(constant) == 1 else "",
                f"{len(near)} of {len(judged)}" if judged else ("no SE: heavy tails" if kurt else ""),
            ]
            cells.append(row)
    return (
        "Per setting and rule, over the sweep (first → last value; flat: within two standard errors):\n\n"
        + report.markdown_table(head, cells)
    )


def _setting_table(groups: Sequence[tuple[str, list[dict]]]) -> str:
    """One d_k, several settings: each rule's variance with its 99.9% interval against its theory."""
    d_k = groups[0][1][0]["d_k"]
    cells = []
    for prefix, rows in groups:
        setting = prefix.removeprefix("With ").removesuffix(": ") or "default"
        for r in sorted(rows, key=lambda r: SCALINGS.index(r["scaling"])):
            interval = (
                ""
                if r["variance_ci_low"] is None
                else f"{report.num(r['variance_ci_low'])} to {report.num(r['variance_ci_high'])}"
            )
            told = "" if r["theory_variance"] is None else report.num(r["theory_variance"])
            cells.append([setting, RULES[r["scaling"]].words, report.num(r["variance"]), interval, told])
    return f"The score variance at d_k = {d_k}:\n\n" + report.markdown_table(
        ["setting", "rule", "variance", f"{LEVEL:.1%} interval", "theory"], cells
    )


# ---- the terminal table and the cost ----


def table(result: Result) -> Table:
    """Variance and excess kurtosis beside their theory; the mean where its theory is not 0, the number
    of scores with --wide."""
    from sqrtdk.output import at_se, pm

    rows = result.rows

    def interval(r: Mapping[str, Any]) -> str:
        low, high, se = r["variance_ci_low"], r["variance_ci_high"], r["variance_se"]
        return "" if low is None else f"[{at_se(low, se)}, {at_se(high, se)}]"

    def told(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    def column(
        heading: str,
        cells: Sequence[str],
        key: bool = False,
        wide: bool = False,
        about: str | None = None,
        joins: bool = False,
    ) -> Column:
        return Column(heading, tuple(cells), key, wide, about, joins)

    mean_matters = any(r["theory_mean"] != 0 for r in rows)
    notes = [_headline(rows)] if len(report.groups(result, "dim")) == 1 and _headline(rows) else []
    if any(r[t] is None for r in rows for t in ("theory_variance", "theory_excess_kurtosis")):
        notes.append("An empty theory cell: no closed form for that setting (sqrtdk's docs/numbers.md).")
    if any(r["variance_ci_low"] is None for r in rows):
        notes.append("An empty interval: the entries' fourth moment is infinite, so the variance has no error.")
    return Table(
        "Scores c·q.k: measured ± standard error, each beside its theory",
        (
            column("d_k", [str(r["d_k"]) for r in rows], key=True),
            column("scaling", [r["scaling"] for r in rows], key=True),
            column("scores", [f"{r['n_scores']:,}" for r in rows], wide=True),
            column("mean", [pm(r, "mean") for r in rows], wide=not mean_matters),
            column("theory", [told(r["theory_mean"]) for r in rows], wide=not mean_matters, about="", joins=True),
            column("variance", [pm(r, "variance") for r in rows]),
            column(f"{LEVEL:.1%} interval", [interval(r) for r in rows], joins=True),
            column("theory", [told(r["theory_variance"]) for r in rows], joins=True),
            column("excess kurtosis", [pm(r, "excess_kurtosis") for r in rows]),
            column("theory", [told(r["theory_excess_kurtosis"]) for r in rows], joins=True),
        ),
        notes,
    )


def _headline(rows: Sequence[dict]) -> str:
    """One line under the table of the textbook run: Var(q.k) ~ d_k unscaled and ~ 1 scaled, measured."""
    from sqrtdk.output import pm

    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if not none or not scaled or any(r["theory_variance"] is None for r in (*none, *scaled)):
        return ""
    if len(none) == 1:
        a, b = none[0], scaled[0]
        return (
            f"Var(q·k) ≈ d_k unscaled: {pm(a, 'variance')} at d_k = {a['d_k']} (theory {_num(a['theory_variance'])}); "
            f"≈ 1 with 1/√d_k: {pm(b, 'variance')} (theory {_num(b['theory_variance'])})."
        )
    low, high = min(r["variance"] for r in scaled), max(r["variance"] for r in scaled)
    return (
        f"Unscaled, Var(q·k) grows with d_k: {pm(none[0], 'variance')} at d_k = {none[0]['d_k']}, "
        f"{pm(none[-1], 'variance')} at d_k = {none[-1]['d_k']}; with 1/√d_k it stays between "
        f"{low:.4g} and {high:.4g}."
    )


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


EXPERIMENT = Experiment(
    "variance",
    "Moments of q.k under each scaling rule, against their closed forms.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
    histogram=histogram,
    with_histogram=with_histogram,
)
