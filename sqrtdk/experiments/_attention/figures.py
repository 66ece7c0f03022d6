"""The figures of saturation and gradient: each metric against d_k or n, measured points with their
intervals, the exact theory as thin lines, small multiples where a panel would hold more than five series."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqrtdk.core.rules import RULES
from sqrtdk.experiments._attention.measure import METRICS

if TYPE_CHECKING:
    from sqrtdk.result import Result


def figures(kind: str, metrics: Sequence[str], title: str, result: Result) -> dict[str, Callable[[], Any]]:
    """One figure, `kind`_vs_dk or `kind`_vs_n: against whichever of d_k and n the run sweeps further
    (d_k where they tie), each of `metrics` in a row of panels."""
    d_ks, ns = {r["d_k"] for r in result.rows}, set(result.params.seq_len)
    levels = {}
    for key in ("threshold", "eps"):
        values: Sequence[float] = getattr(result.params, key, ())
        if len(values) == 1:
            levels[key] = values[0]
    if len(d_ks) >= len(ns) or len(ns) == 1:
        return {
            f"{kind}_vs_dk": lambda: metric_grid(
                result.rows, metrics, title, "d_k", result.series_columns("dim"), result.setting(), levels
            )
        }
    return {
        f"{kind}_vs_n": lambda: metric_grid(
            result.rows, metrics, title, "seq_len", result.series_columns("seq_len"), result.setting(), levels
        )
    }


def error_bars(rows: Sequence[dict], metric: str) -> Any:
    """(2, len(rows)) distances below and above each value to the ends of its interval at the figures'
    level (plots.LEVEL, which is the rows' own): the rows' own interval where they have one (the shares'
    exact one, the means' studentized bootstrap), otherwise Student's t on the replicates' degrees of
    freedom times the standard error (not 1.96: with 8 replicates that would cover about 90%)."""
    import numpy as np

    from sqrtdk.plots import t_half

    if metric + "_ci_low" in rows[0]:
        return np.array(
            [[r[metric] - r[metric + "_ci_low"] for r in rows], [r[metric + "_ci_high"] - r[metric] for r in rows]]
        )
    half = np.array([t_half(r[metric + "_se"], r["replicates"] - 1) for r in rows])
    return np.array([half, half])


X_LABELS = {"d_k": "$d_k$", "seq_len": "sequence length $n$"}


def freezing_point(row: dict, x: str) -> float | None:
    """Where along `x` the row's series reaches s_c = sqrt(2 ln n), beyond which the softmax freezes.

    Against d_k the logit spread grows like sqrt(d_k) (s_c fixed by n); against n, s_c = sqrt(2 ln n)
    grows to meet a fixed spread s at n = exp(s^2 / 2).
    """
    s, s_c = row["logit_std"], row["critical_logit_std"]
    if s is None:
        return None
    if x == "d_k":
        return row["d_k"] * (s_c / s) ** 2 if s_c and s > 0 else None
    return math.exp(s * s / 2)


MAX_SERIES = 5  # series in one panel; more become small multiples
MAX_COLUMNS = 4  # settings side by side as columns of panels


@dataclass(frozen=True)
class Series:
    """One measured series of a panel: its rows and how it is drawn."""

    label: str
    rows: list[dict]
    colour: str
    marker: str
    line: Any


def panels_and_series(rows: Sequence[dict], series: Sequence[str]) -> list[tuple[str, list[Series]]]:
    """The columns of panels (a heading each) and the series each draws: every rule and setting in one
    panel when they are at most MAX_SERIES; else a column per setting (at most MAX_COLUMNS) with a series
    per rule; else a column per rule with a series per setting."""
    from sqrtdk.plots import RULE_NAMES, SEQ_MARKERS, SERIES_COLOURS, Style, rules_in, series_of

    scalings = rules_in(rows)
    groups = series_of(rows, series, maths=True)

    def of(rule: str, group: Sequence[dict]) -> list[dict]:
        return [r for r in group if r["scaling"] == rule]

    if len(scalings) * len(groups) <= MAX_SERIES:
        style = Style(scalings, groups)
        return [
            (
                "",
                [
                    Series(
                        RULES[rule].label + (f", {name}" if name else ""),
                        of(rule, group),
                        style.colour(rule, g),
                        style.marker(rule, g),
                        style.line(rule),
                    )
                    for rule in scalings
                    for g, (name, group) in enumerate(groups)
                    if of(rule, group)
                ],
            )
        ]
    if len(groups) <= MAX_COLUMNS:
        return [
            (
                name,
                [
                    Series(RULES[rule].label, of(rule, group), RULES[rule].colour, RULES[rule].marker, RULES[rule].line)
                    for rule in scalings
                    if of(rule, group)
                ],
            )
            for name, group in groups
        ]
    return [
        (
            RULE_NAMES[rule],
            [
                Series(
                    name,
                    of(rule, group),
                    SERIES_COLOURS[g % len(SERIES_COLOURS)],
                    SEQ_MARKERS[g % len(SEQ_MARKERS)],
                    RULES[rule].line,
                )
                for g, (name, group) in enumerate(groups)
                if of(rule, group)
            ],
        )
        for rule in scalings
    ]


def metric_grid(
    rows: Sequence[dict],
    metrics: Sequence[str],
    title: str,
    x: str = "d_k",
    series: Sequence[str] = ("seq_len",),
    setting: str = "",
    levels: Mapping[str, float] | None = None,
) -> Any:
    """Each metric against `x` ("d_k" or "seq_len", log2 axis) with error bars at plots.LEVEL, at most MAX_SERIES
    series to a panel (panels_and_series): one row of panels, a panel per metric, when one panel holds
    them all; otherwise a row per metric and a column per setting (or rule), sharing their axes. A run with
    a single value of `x` is drawn as points per rule instead (rule_points).

    Measured: markers with error bars. Exact theory (core/exact.py), where it applies: a thin line in the
    series' colour and its rule's line style. Dash-dot grey: the uniform row's ||J||_F. Dashed grey
    vertical: where the unscaled logit spread reaches s_c = sqrt(2 ln n), beyond which the softmax freezes
    onto a few keys. `levels` gives the threshold and eps that the shares' labels state.
    """
    import numpy as np

    from sqrtdk.plots import legend_below, log_axis, new_figure, theory_key, wrap

    if len({r[x] for r in rows}) == 1:
        return rule_points(rows, metrics, title, series, setting, levels)
    empty = [m for m in metrics if METRICS[m].fraction and not any(r[m] for r in rows)]
    if len(empty) < len(metrics):  # a share that is 0 everywhere: said in the title, not drawn
        metrics = [m for m in metrics if m not in empty]
    else:
        empty = []
    columns = panels_and_series(rows, series)
    if len(columns) == 1:
        fig = new_figure(len(metrics), 1, aspect=0.85)
        grid = np.array(fig.subplots(1, len(metrics), squeeze=False)).T  # a metric per row of `grid`
    else:
        fig = new_figure(len(columns), len(metrics), aspect=0.72)
        grid = np.array(fig.subplots(len(metrics), len(columns), squeeze=False, sharex=True, sharey="row"))
    xs = [r[x] for r in rows]
    with_theory: set[str] = set()  # the series with an exact-theory line somewhere
    for c, (heading, drawn) in enumerate(columns):
        crossings: dict[float, str] = {}  # where each unscaled series reaches s_c, in its colour
        for one in drawn:
            unscaled = [r for r in one.rows if r["scaling"] == "none"]
            point = freezing_point(unscaled[0], x) if unscaled else None
            if point is not None and min(xs) <= point <= max(xs):
                crossings.setdefault(point, one.colour)
        if len(crossings) == 1:
            crossings = dict.fromkeys(crossings, "0.35")
        for m, metric in enumerate(metrics):
            ax = grid[m, c] if len(columns) > 1 else grid[m, 0]
            spec = METRICS[metric]
            for one in drawn:
                sel = sorted((r for r in one.rows if r[metric] is not None), key=lambda r: r[x])
                if not sel:
                    continue
                ax.errorbar(
                    [r[x] for r in sel],
                    [r[metric] for r in sel],
                    yerr=error_bars(sel, metric),
                    fmt=one.marker,
                    ls="none",
                    color=one.colour,
                    label=one.label,
                    zorder=3,
                    errorevery=[not (spec.fraction and r[metric] == 0) for r in sel],
                )
                zeros = [r for r in sel if spec.fraction and r[metric] == 0]
                if zeros:  # a share of 0: only its upper end (what the few independent trials allow), faint
                    ax.vlines(
                        [r[x] for r in zeros],
                        0,
                        [r[metric + "_ci_high"] for r in zeros],
                        color=one.colour,
                        lw=0.8,
                        alpha=0.4,
                        zorder=2,
                    )
                exact = [(r[x], r[spec.theory]) for r in sel if spec.theory and r[spec.theory] is not None]
                if len(exact) > 1:
                    ax.plot(*zip(*exact), ls=one.line, lw=0.9, color=one.colour, zorder=2)
                    with_theory.add(one.label)
            references: dict[tuple, str] = {}  # the uniform row's value along x, one per n, in its series' colour
            for one in drawn if spec.reference else ():
                curve = tuple(sorted((r[x], r[spec.reference]) for r in one.rows if r[spec.reference] is not None))
                if curve:
                    references.setdefault(curve, one.colour)
            for curve, colour in references.items():
                shade = colour if len(references) > 1 else "0.35"
                ax.plot(*zip(*curve), ls="-.", lw=0.9, color=shade, label=UNIFORM_LABEL)
            for point, colour in sorted(crossings.items()):
                ax.axvline(point, color=colour, ls=(0, (6, 2)), lw=0.9, label=SC_LABEL)
            log_axis(ax, "x", base=2)
            if spec.log_y:
                log_axis(ax)
            if m == len(metrics) - 1 or len(columns) == 1:
                ax.set_xlabel(X_LABELS[x])
            if c == 0 or len(columns) == 1:
                ax.set_ylabel(wrap(_panel_title(metric, levels), 0.9 * fig.get_figheight() / len(metrics)))
            if m == 0 and heading:
                ax.set_title(heading)
    from matplotlib.lines import Line2D

    keys: dict[str, Any] = {}
    for _, drawn in columns:  # each series once: its marker, and the line style of its exact theory
        for one in drawn:
            line = one.line if one.label in with_theory else "none"
            keys.setdefault(
                one.label, Line2D([], [], color=one.colour, marker=one.marker, ls=line, lw=0.9, label=one.label)
            )
    if with_theory:
        keys["theory"] = theory_key("exact theory (Gaussian entries)")
    legend_below(fig, list(grid.ravel()), handles=list(keys.values()))
    fixed = [p for p in setting.split(", ") if p]
    other = "seq_len" if x == "d_k" else "d_k"
    if len({r[other] for r in rows}) == 1 and other not in series:
        name = "n" if other == "seq_len" else "d_k"
        fixed = [f"${name}$ = {rows[0][other]}", *(p for p in fixed if not p.startswith(f"{name} ="))]
    fixed = [p.replace("rho =", r"$\rho$ =") for p in fixed]
    context = ", " + ", ".join(dict.fromkeys(fixed)) if fixed else ""
    none = "".join(f"; {_panel_title(m, levels).replace('share with', 'no row with')}" for m in empty)
    fig.suptitle(f"{title}{context}{none}")
    return fig


UNIFORM_LABEL = r"uniform row $p_j = 1/n$: $\sqrt{n-1}/n$"
SC_LABEL = r"unscaled logit sd reaches $s_c = \sqrt{2\ln n}$"


def _panel_title(metric: str, levels: Mapping[str, float] | None) -> str:
    """A panel's title: the metric, with the threshold or eps its share uses (how a share's bars are made,
    an exact interval over the independent trials, is README's: a title is not a caption)."""
    label = METRICS[metric].label
    if not METRICS[metric].fraction:
        return label
    for word, key in (("threshold", "threshold"), (r"\epsilon", "eps")):
        if levels and key in levels:
            label = label.replace(word, f"{levels[key]:g}")
    return label


def rule_points(
    rows: Sequence[dict],
    metrics: Sequence[str],
    title: str,
    series: Sequence[str] = (),
    setting: str = "",
    levels: Mapping[str, float] | None = None,
) -> Any:
    """A run at one d_k and one n: each metric as a point per rule (and per series), with error bars at plots.LEVEL."""
    import numpy as np

    from sqrtdk.plots import (
        RULE_NAMES,
        SERIES_COLOURS,
        grid,
        legend_below,
        log_axis,
        new_figure,
        rules_in,
        series_of,
        wrap,
    )

    nrows, ncols = grid(len(metrics))
    fig = new_figure(ncols, nrows, aspect=0.7)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    scalings = rules_in(rows)
    groups = series_of(rows, [c for c in series if c not in ("d_k", "seq_len")], maths=True)
    width = 0.6 / max(len(groups), 1)
    for ax, metric in zip(axes, metrics):
        for g, (name, group) in enumerate(groups):
            sel = [r for s in scalings for r in group if r["scaling"] == s and r[metric] is not None]
            if not sel:
                continue
            at = np.array([scalings.index(r["scaling"]) for r in sel]) + (g - (len(groups) - 1) / 2) * width
            colours = [RULES[r["scaling"]].colour for r in sel] if len(groups) == 1 else None
            err = error_bars(sel, metric)
            for i, r in enumerate(sel):
                ax.errorbar(
                    [at[i]],
                    [r[metric]],
                    yerr=err[:, i : i + 1],
                    fmt="o",
                    color=colours[i] if colours else SERIES_COLOURS[g % len(SERIES_COLOURS)],
                    label=name if name and i == 0 else None,
                )
        ax.set_xticks(range(len(scalings)), [RULE_NAMES[s] for s in scalings])
        ax.set_xlim(-0.6, len(scalings) - 0.4)
        if METRICS[metric].log_y:
            log_axis(ax)
        ax.set_title(wrap(_panel_title(metric, levels), fig.get_figwidth() / ncols))
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    legend_below(fig, axes[: len(metrics)])
    row = rows[0]
    setting = ", ".join(p for p in setting.split(", ") if p and not p.startswith(("d_k =", "n =")))
    context = f", {setting}" if setting else ""
    fig.suptitle(f"{title} at $d_k$ = {row['d_k']}, $n$ = {row['seq_len']}{context}")
    return fig
