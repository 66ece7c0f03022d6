"""The figures of `sqrtdk variance`: Var(c q.k) against d_k beside its closed form, the quality checks
(measured over theory, mean, kurtosis), the settings side by side, and the scores' histograms."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from sqrtdk.core.rules import RULES
from sqrtdk.plots import LEVEL

if TYPE_CHECKING:
    from sqrtdk.core.scores import ScoreSample
    from sqrtdk.result import Result


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
        figures["variance_checks"] = lambda: checks_figure(result.rows, result.series_columns("dim"), result.setting())
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
    if sample.outside:
        beyond = f"{sample.outside:,} score{'s' * (sample.outside != 1)} beyond the bins, not drawn"
        handles.append(Line2D([], [], ls="none", label=beyond))
    legend_below(fig, handles=handles)
    kurtosis = theory.score_excess_kurtosis(d_k, source.entries) if source.inputs == "direct" else None
    where = f" ({label})" if label else ""
    told = f"; excess kurtosis {kurtosis:.3g} in theory" if kurtosis is not None else ""
    if not exact:
        told += "; no closed-form density"
    fig.suptitle(wrap(f"{sample.n_scores:,} scores at $d_k$ = {d_k}{where}{told}", 6.4))
    return fig


def interval(row: dict) -> tuple[float, float] | None:
    """The row's variance interval at the figures' level (plots.LEVEL): symmetric in 1 / variance, as the
    row's own; None where the row has none (too heavy-tailed entries) or where it would reach 0."""
    from sqrtdk.core.moments import REPLICATES, reciprocal_interval

    if row["variance_ci_low"] is None or not row["variance_se"]:
        return None
    low, high = reciprocal_interval(row["variance"], row["variance_se"], REPLICATES - 1, LEVEL)
    return None if low is None or high is None else (low, high)


def _series(rows: Sequence[dict], series: Sequence[str]) -> tuple[list, list[str], list[str]]:
    """The series of a figure against d_k: (groups of rows by the other varying columns, the rules drawn,
    the rules drawn in panels that are the same for every rule that only rescales q.k: the rules share
    their draws, so those rules are drawn there once)."""
    from sqrtdk.plots import rules_in, series_of

    rules = rules_in(rows)
    rescaled = [s for s in rules if not RULES[s].normalised]  # the same draws times a constant
    return series_of(rows, series, maths=True), rules, [s for s in rules if RULES[s].normalised or s == rescaled[0]]


def _by_d_k(group: Sequence[dict], scaling: str) -> list[dict]:
    return sorted((r for r in group if r["scaling"] == scaling), key=lambda r: r["d_k"])


def _offsets(spots: int) -> Any:
    """Where each of `spots` series sits around its d_k (x times this), so that their bars do not overlap."""
    import numpy as np

    return np.linspace(0.93, 1.07, spots) if spots > 1 else [1.0]


def _theory_line(ax: Any, points: Sequence[tuple[float, float]], colour: str, line: str = "-") -> None:
    if points:
        ax.plot(*zip(*points), color=colour, lw=1.0, alpha=0.7, ls=line)


def variance_figure(rows: Sequence[dict], series: Sequence[str] = (), setting: str = "") -> Any:
    """Two panels against d_k (log2 axis), a series per scaling rule and per combination of the other
    varying parameters (`series`: row columns): the variance with its theory, and measured / theory with
    its interval (plots.LEVEL), drawn once for the rules that only rescale q.k. More than MAX_SERIES
    series become small multiples: a column of the two panels per setting (at most MAX_COLUMNS)."""
    import numpy as np

    from sqrtdk.plots import RULE_NAMES, Style, coinciding, legend_below, log_axis, new_figure, theory_key, wrap

    groups, rules, shown = _series(rows, series)
    split = len(rules) * len(groups) > MAX_SERIES and 1 < len(groups) <= MAX_COLUMNS
    if split:
        fig = new_figure(len(groups), 2, aspect=0.75)
        grid = fig.subplots(2, len(groups), sharex=True, sharey="row", squeeze=False)
        variance_axes, ratio_axes = list(grid[0]), list(grid[1])
    else:
        fig = new_figure(2, 1, aspect=0.8)
        ax, ax_ratio = fig.subplots(1, 2, sharex=True)
        variance_axes, ratio_axes = [ax] * len(groups), [ax_ratio] * len(groups)
    style = Style(rules, [groups[0]] if split else groups)
    offsets = _offsets(len(shown) * (1 if split else len(groups)))
    drawn = []
    for g, (name, group) in enumerate(groups):
        ax, ax_ratio = variance_axes[g], ratio_axes[g]
        suffix = f" ({name})" if name and not split else ""
        if split:
            ax.set_title(name)
        for scaling in rules:
            sel = _by_d_k(group, scaling)
            if not sel:
                continue
            colour, marker = style.colour(scaling, 0 if split else g), style.marker(scaling, 0 if split else g)
            d = np.array([r["d_k"] for r in sel], dtype=float)
            var = np.array([r["variance"] for r in sel])
            ax.plot(d, var, marker, color=colour, label=RULES[scaling].label + suffix)
            drawn.append(((RULE_NAMES[scaling], name), dict(zip(d, var))))
            with_theory = [r for r in sel if r["theory_variance"]]
            _theory_line(ax, [(r["d_k"], r["theory_variance"]) for r in with_theory], colour, style.line(scaling))
            bounded = [(r, bounds) for r in with_theory if (bounds := interval(r)) is not None]
            if scaling not in shown or not bounded:
                continue
            offset = offsets[(0 if split else g) * len(shown) + shown.index(scaling)]
            t = np.array([r["theory_variance"] for r, _ in bounded])
            v = np.array([r["variance"] for r, _ in bounded])
            err = np.array([[r["variance"] - low, high - r["variance"]] for r, (low, high) in bounded]).T / t
            ax_ratio.errorbar(
                np.array([r["d_k"] for r, _ in bounded]) * offset, v / t, yerr=err, fmt=marker, color=colour
            )
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
        variance_axes[0].set_xlabel("$d_k$")
        ratio_axes[0].set_title("measured / theory" + (", one for all rules" if len(shown) < len(rules) else ""))
    legend_below(fig, variance_axes, handles=[theory_key("theory")])
    if setting:
        fig.suptitle(setting)
    return fig


def checks_figure(rows: Sequence[dict], series: Sequence[str] = (), setting: str = "") -> Any:
    """The supplementary figure of quality checks against d_k, drawn once for the rules that only rescale
    q.k: the mean in units of the spread, E / sd (0 for independent mean-0 entries, growing like
    sqrt(d_k) when q and k are correlated) with its interval (plots.LEVEL), and d_k times the excess
    kurtosis, a constant in theory, hollow: the kurtosis has no interval (variance/measure.py)."""
    import math

    from sqrtdk.core.moments import REPLICATES
    from sqrtdk.plots import Style, legend_below, log_axis, new_figure, t_half, theory_key, wrap

    groups, rules, shown = _series(rows, series)
    fig = new_figure(2, 1, aspect=0.8)
    ax_mean, ax_kurt = fig.subplots(1, 2, sharex=True)
    style = Style(shown, groups)
    offsets = _offsets(len(shown) * len(groups))
    kurtosis_theory: list[float] = []
    kurtosis_points: list[tuple[float, float]] = []
    # where some scores have a mean, mean / sd grows like sqrt(d_k): a straight line of slope 1/2 on log
    # axes, where the series of mean 0 have no place (the title says they are left out)
    growing = any(r["theory_mean"] and r["scaling"] != "qknorm" for r in rows)
    zero_mean = False
    for g, (name, group) in enumerate(groups):
        suffix = f" ({name})" if name else ""
        for scaling in shown:
            sel = _by_d_k(group, scaling)
            if not sel:
                continue
            colour, marker = style.colour(scaling, g), style.marker(scaling, g)
            offset = offsets[g * len(shown) + shown.index(scaling)]
            label = RULES[scaling].label + suffix
            z = [
                (
                    r["d_k"] * offset,
                    r["mean"] / math.sqrt(r["variance"]),
                    t_half(r["mean_se"], REPLICATES - 1) / math.sqrt(r["variance"]),
                )
                for r in sel
                if r["variance"] > 0
            ]
            if growing and not any(r["theory_mean"] for r in sel):
                zero_mean, z = True, []
            if z:
                xs, ys, errs = zip(*z)
                ax_mean.errorbar(xs, ys, yerr=errs, fmt=marker, color=colour, label=label)
            _theory_line(
                ax_mean,
                [
                    (r["d_k"], r["theory_mean"] / math.sqrt(r["theory_variance"]))
                    for r in sel
                    if r["theory_mean"] is not None and r["theory_variance"] and (r["theory_mean"] or not growing)
                ],
                colour,
            )
            points = [
                (r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"]) for r in sel if r["excess_kurtosis"] is not None
            ]
            if points:
                ax_kurt.plot(*zip(*points), marker, color=colour, mfc="none", label=label)
            kt = [
                (r["d_k"], r["d_k"] * r["theory_excess_kurtosis"])
                for r in sel
                if r["theory_excess_kurtosis"] is not None
            ]
            _theory_line(ax_kurt, kt, colour)
            kurtosis_theory += [y for _, y in kt]
            kurtosis_points += points
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
    if kurtosis_points:  # around the theory and the estimates
        core = kurtosis_theory + [y for _, y in kurtosis_points] + [0.0]
        pad = max(0.3 * (max(core) - min(core)), 0.5)
        ax_kurt.set_ylim(min(core) - pad, max(core) + pad)
    ax_kurt.set_title("0: a normal curve; hollow: no interval")
    for a in (ax_mean, ax_kurt):
        log_axis(a, "x", base=2)
        a.set_xlabel("$d_k$")
    legend_below(fig, [ax_mean, ax_kurt], handles=[theory_key("theory")])
    once = "rules that rescale the same draws: drawn once" if len(shown) < len(rules) else ""
    fig.suptitle("; ".join(["Quality checks", *(part for part in (setting, once) if part)]))
    return fig


def variance_by_setting(rows: Sequence[dict], series: Sequence[str], setting: str = "") -> Any:
    """One d_k, several settings (inits, distributions, ...): each rule's variance with its interval (plots.LEVEL)
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
            bounds = interval(row)
            err = None if bounds is None else [[row["variance"] - bounds[0]], [bounds[1] - row["variance"]]]
            ax.errorbar(
                [x],
                [row["variance"]],
                yerr=err,
                fmt=RULES[scaling].marker,
                color=colour,
                label=RULES[scaling].label if g == 0 else None,
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
                    ax_ratio.errorbar(
                        [at], [row["variance"] / t], yerr=np.array(err) / t, fmt=RULES[scaling].marker, color=colour
                    )
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
    if setting:
        fig.suptitle(setting)
    return fig
