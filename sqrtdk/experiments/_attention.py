"""What saturation and gradient share: one attention matrix per trial, statistics per query row.

Their kernel is core/rows.py, which returns each metric's replicate means; this module turns them into
estimates (batch means over independent replicates, exact intervals for the shares of rows), rows beside
the exact theory where a row's logits are iid normal given its query (core/exact.py) and the
random-energy model's large-n limits where they hold (core/theory.py), the figures against d_k and n, the
report's reading, the terminal table and the cost. METRICS names and describes every metric once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.rows import RowSample
    from sqrtdk.result import Result

LEVEL = 0.95  # the level of the shares' intervals and of the figures' error bars


@dataclass(frozen=True)
class Metric:
    """How one metric of core/rows.py is shown: its row column is the key of METRICS."""

    label: str  # a figure panel's title
    short: str  # a terminal table's heading
    words: str = ""  # in the report's sentences
    spec: str = ".3g"  # its format there
    log_y: bool = False  # drawn on a log axis
    theory: str | None = None  # the row column of its exact theory (core/exact.py), None where it has none
    asymptotic: str | None = None  # the row column of its random-energy-model limit (where within 2%)
    reference: str | None = None  # the row column of a reference value (the uniform row's)
    fraction: bool = False  # a share of rows, with an exact interval inside [0, 1]
    kind: str = "saturation"  # the experiment that measures it (core.rows.SATURATION or GRADIENT)


METRICS = {
    "max_prob_mean": Metric(
        r"mean largest weight $\mathrm{max}_j\,p_j$", "max p", "the largest weight", ".3f", theory="theory_max_prob"
    ),
    "entropy_mean": Metric(r"entropy $H$ (nats)", "H", theory="theory_entropy", asymptotic="rem_entropy"),
    "entropy_ratio_mean": Metric(r"$H\,/\ln n$", "H / ln n", "entropy / ln n", ".3f", theory="theory_entropy_ratio"),
    "effective_tokens_mean": Metric(r"effective keys $e^H$", "e^H", log_y=True),
    "participation_mean": Metric(
        r"participation $1/\Sigma_j\,p_j^2$",
        "1/Σp²",
        log_y=True,
        theory="theory_participation",
        asymptotic="rem_participation",
    ),
    "saturated_fraction": Metric(r"share with $\mathrm{max}_j\,p_j \geq$ threshold", "saturated", fraction=True),
    "jacobian_fro_mean": Metric(
        r"$\|J\|_F$",
        "‖J‖_F",
        "||J||_F",
        log_y=True,
        reference="uniform_jacobian_fro",
        kind="gradient",
    ),
    "jacobian_sq_mean": Metric(
        r"$\|J\|_F^2$", "‖J‖²", "||J||_F^2", log_y=True, theory="theory_jacobian_sq", kind="gradient"
    ),
    "jacobian_diag_max_mean": Metric(r"$\mathrm{max}_j\,p_j(1-p_j)$", "max p(1-p)", log_y=True, kind="gradient"),
    "grad_logits_mean": Metric(r"$\|\partial L/\partial s_i\|$", "‖∂L/∂s‖", log_y=True, kind="gradient"),
    "grad_q_mean": Metric(r"$\|\partial L/\partial q_i\|$", "‖∂L/∂q‖", "||dL/dq||", kind="gradient"),
    "vanishing_fraction": Metric(r"share with $\|J\|_F < \epsilon$", "vanishing", fraction=True, kind="gradient"),
}


SATURATION = tuple(name for name, metric in METRICS.items() if metric.kind == "saturation")
GRADIENT = tuple(name for name, metric in METRICS.items() if metric.kind == "gradient")
# what the figures draw: the metrics that carry distinct information (the others are transforms of
# these, or their squares; the tables keep them all)
SATURATION_DRAWN = ("max_prob_mean", "entropy_ratio_mean", "saturated_fraction")
GRADIENT_DRAWN = ("jacobian_fro_mean", "grad_q_mean", "vanishing_fraction")


def params(doc: str, **extra: Any) -> type:
    """The schema of an attention experiment: the shared fields, then the experiment's own `extra`."""
    return schema.params_class(
        extra.pop("module"),
        "Params",
        doc,
        dim=schema.dim_field((16, 64, 256, 1024)),
        seq_len=schema.seq_len_field(),
        samples=schema.rows_field(),
        seed=schema.seed_field(),
        **schema.source_fields(),
        scaling=schema.scaling_field(SCALINGS),
        qk_gain=schema.qk_gain_field(),
        ssmax_s=schema.ssmax_field(),
        **extra,
    )


# ---- the run and its rows ----


def run(
    kind: str, level_key: str, task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates
) -> RowSample:
    from sqrtdk.core.rows import sample_rows
    from sqrtdk.core.rules import SSMAX_S

    return sample_rows(
        kind,
        task["dim"],
        task["seq_len"],
        task["samples"],
        seed=task["seed"],
        level=task[level_key],
        scalings=task["scaling"],
        source=schema.source(task),
        qk_gain=schema.gain(task),
        ssmax_s=task.get("ssmax_s") or SSMAX_S,
        map_replicates=map_replicates,
    )


def exact_theory(task: Mapping[str, Any]) -> None:
    """Compute (into exact's caches) the exact theory that `attention_rows` will ask for this task, from
    the task alone: `api.run_many` calls it on a thread while the tasks are sampled."""
    from sqrtdk.core import exact
    from sqrtdk.core.rows import rules_for
    from sqrtdk.core.rules import SSMAX_S

    source = schema.source(task)
    entries, d_k, n = source.entries, source.d_k(task["dim"]), task["seq_len"]
    if source.inputs != "direct" or entries.dist != "gaussian":
        return
    for rule in rules_for(task["scaling"], d_k, n, schema.gain(task), task.get("ssmax_s") or SSMAX_S):
        exact.attention_row(n, d_k, entries.mean, entries.std, rule.c, rule.normalised, entries.rho)


def attention_rows(sample: RowSample) -> list[dict]:
    """One row per scaling rule: each metric's mean with its standard error `<name>_se`, and the theory."""
    import numpy as np

    from sqrtdk.core import exact, theory
    from sqrtdk.core.moments import batch_means, fraction_interval, mean_interval

    metrics = sample.metrics
    n, d_k, source = sample.seq_len, sample.d_k, sample.source
    rows = []
    for i, rule in enumerate(sample.rules):
        direct = source.inputs == "direct"
        if direct:
            spread = theory.logit_std(d_k, source.entries, rule.c, rule.normalised)
        elif rule.normalised or (
            source.layernorm and not theory.layernorm_theory_holds(source.entries, source.d_model)
        ):
            spread = None  # no closed form: QK-norm of projected q, k; LayerNorm's eps shrinking the tokens
        else:
            spread = math.sqrt(
                theory.projected_score_variance(
                    source.d_model,
                    source.heads,
                    n,
                    source.entries,
                    source.init,
                    source.init_std,
                    source.layernorm,
                    rule.c,
                )
            )
        row: dict = {
            "d_k": d_k,
            "seq_len": n,
            "scaling": rule.name,
            "n_rows": sample.n_rows,
            "replicates": len(sample.replicate_means),
            "logit_std": spread,
            "critical_logit_std": theory.critical_logit_std(n) if n > 1 else None,
        }
        for j, name in enumerate(metrics):
            values = sample.replicate_means[:, i, j]
            if np.isnan(values).any():
                row[name], row[name + "_se"] = None, None
                continue
            est = batch_means(float(values.mean()), values, LEVEL)
            row[name], row[name + "_se"] = est.value, est.se
            if METRICS[name].fraction:
                row[name + "_ci_low"], row[name + "_ci_high"] = fraction_interval(
                    est.value, est.se, sample.n_rows, sample.n_trials, LEVEL
                )
            else:
                row[name + "_ci_low"], row[name + "_ci_high"] = mean_interval(est, values, LEVEL)
        entries = source.entries
        independent = direct and entries.dist == "gaussian"  # a row's logits independent normals given q
        known = (
            exact.attention_row(n, d_k, entries.mean, entries.std, rule.c, rule.normalised, entries.rho)
            if independent
            else None
        )
        if sample.kind == "saturation":
            args = (n, d_k, entries, rule.c, rule.normalised)
            row["theory_max_prob"] = known.max_prob if known else None
            row["theory_entropy"] = known.entropy if known else None
            row["theory_entropy_ratio"] = known.entropy / math.log(n) if known else None
            row["theory_participation"] = known.participation if known else None
            row["theory_sum_p2"] = known.sum_p2 if known else None
            row["rem_entropy"] = theory.rem_entropy(*args) if direct else None
            row["rem_participation"] = theory.rem_participation(*args) if direct else None
        else:
            row["theory_jacobian_sq"] = known.jacobian_sq if known else None
            row["uniform_jacobian_fro"] = theory.uniform_jacobian_fro(n)
        rows.append(row)
    return rows


def rows(task: Mapping[str, Any], sample: RowSample) -> list[dict]:
    return attention_rows(sample)


# ---- figures ----


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
    """(2, len(rows)) distances below and above each value to the ends of its 95% interval: the rows' own
    interval where they have one (the shares' exact one, the means' studentized bootstrap), otherwise
    Student's t on the replicates' degrees of freedom times the standard error (not 1.96: with 8
    replicates that would cover about 90%)."""
    import numpy as np

    from sqrtdk.core.moments import t_quantile

    if metric + "_ci_low" in rows[0]:
        return np.array(
            [[r[metric] - r[metric + "_ci_low"] for r in rows], [r[metric + "_ci_high"] - r[metric] for r in rows]]
        )
    half = np.array([t_quantile(0.5 + LEVEL / 2, r["replicates"] - 1) * r[metric + "_se"] for r in rows])
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
    """Each metric against `x` ("d_k" or "seq_len", log2 axis) with 95% error bars, at most MAX_SERIES
    series to a panel (panels_and_series): one row of panels, a panel per metric, when one panel holds
    them all; otherwise a row per metric and a column per setting (or rule), sharing their axes. A run with
    a single value of `x` is drawn as points per rule instead (rule_points).

    Measured: markers with error bars. Exact theory (core/exact.py), where it applies: a thin line in the
    series' colour and its rule's line style. Dash-dot grey: the uniform row's ||J||_F. Dashed grey
    vertical: where the unscaled logit spread reaches s_c = sqrt(2 ln n), beyond which the softmax freezes
    onto a few keys. `levels` gives the threshold and eps that the shares' labels state.
    """
    import numpy as np

    from sqrtdk.plots import legend_below, log_axis, new_figure, wrap

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
        keys["theory"] = Line2D([], [], color="0.2", lw=0.9, label="lines: exact theory (Gaussian entries)")
    legend_below(fig, list(grid.ravel()), handles=list(keys.values()))
    fixed = [p for p in setting.split(", ") if p]
    other = "seq_len" if x == "d_k" else "d_k"
    if len({r[other] for r in rows}) == 1 and other not in series:
        name = "n" if other == "seq_len" else "d_k"
        fixed = [f"${name}$ = {rows[0][other]}", *(p for p in fixed if not p.startswith(f"{name} ="))]
    fixed = [p.replace("rho =", r"$\rho$ =") for p in fixed]
    context = ", " + ", ".join(dict.fromkeys(fixed)) if fixed else ""
    none = "".join(f"; {_panel_title(m, levels).replace('share with', 'no row with')}" for m in empty)
    fig.suptitle(f"{title}{context}; error bars: 95% intervals{none}")
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
    """A run at one d_k and one n: each metric as a point per rule (and per series), with 95% error bars."""
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
    fig.suptitle(f"{title} at $d_k$ = {row['d_k']}, $n$ = {row['seq_len']}{context}; error bars: 95% intervals")
    return fig


# ---- the reading in the report ----


def reading(
    headline: Sequence[str], level_name: str, unscaled: Callable[[Sequence[dict], float], list[str]], result: Result
) -> list[str]:
    """Readings of a saturation or gradient run, whichever of d_k and n it sweeps: the `headline` metrics
    along each axis as small tables (first value -> last, 'flat' when the change is within two standard
    errors), and `unscaled(rows, level)` along d_k."""
    out: list[str] = []
    tables: dict[tuple[str, str], list[list[str]]] = {}
    named = len(report.groups(result, "dim")) > 1
    for prefix, rows in report.groups(result, "dim"):
        setting = [prefix.removeprefix("With ").removesuffix(": ")] if named else []
        d_ks = sorted({r["d_k"] for r in rows})
        seq_lens = sorted({r["seq_len"] for r in rows})
        rules = [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]
        if len(d_ks) > 1:
            for n in seq_lens:
                at_n = [r for r in rows if r["seq_len"] == n]
                along = f"from d_k = {d_ks[0]} to {d_ks[-1]}"
                tables.setdefault((along, "n"), []).extend(_along([*setting, str(n)], at_n, rules, "d_k", headline))
                out += [prefix + line for line in unscaled(at_n, result.level(at_n[-1], level_name))]
            if len(seq_lens) > 1:
                at_d = [r for r in rows if r["d_k"] == d_ks[-1] and r["seq_len"] > 1]
                along = f"at d_k = {d_ks[-1]}, from n = {seq_lens[0]} to {seq_lens[-1]}"
                tables.setdefault((along, ""), []).extend(_along(setting, at_d, rules, "seq_len", headline))
        elif len(seq_lens) > 1:
            along = f"at d_k = {d_ks[0]}, from n = {seq_lens[0]} to {seq_lens[-1]}"
            tables.setdefault((along, ""), []).extend(_along(setting, rows, rules, "seq_len", headline))
        else:
            parts = [
                f"{RULES[r['scaling']].words} "
                + ", ".join(f"{METRICS[m].words} {report.num(r[m], 3)}" for m in headline if r[m] is not None)
                for r in rows
            ]
            out.append(f"{prefix}d_k = {d_ks[0]}, n = {seq_lens[0]}: " + "; ".join(parts) + ".")
    head_metrics = [METRICS[m].words or METRICS[m].short for m in headline]
    shown = []
    for (along, lead), cells in tables.items():
        head = [*(["setting"] if named else []), *([lead] if lead else []), "rule", *head_metrics]
        shown.append(
            f"Mean over query rows, {along} (first → last value; flat: the change is within two standard errors):"
            f"\n\n{report.markdown_table(head, cells)}"
        )
    return shown + out


def _along(lead: Sequence[str], rows: Sequence[dict], rules: Sequence[str], key: str, metrics: Sequence[str]):
    """Table rows: `lead` cells, the rule, then each metric's first -> last value along `key`."""
    out = []
    for rule in rules:
        sel = [r for r in sorted(rows, key=lambda r: r[key]) if r["scaling"] == rule]
        cells = []
        for metric in metrics:
            ends = [r for r in sel if r[metric] is not None]
            if len(ends) < 2:
                cells.append("")
                continue
            a, b = ends[0], ends[-1]
            spec = METRICS[metric].spec
            cells.append(report.arrow(a[metric], b[metric], spec, (a.get(metric + "_se"), b.get(metric + "_se"))))
        if any(cells):
            out.append([*lead, RULES[rule].words, *cells])
    return out


# ---- the terminal table and the cost ----


def table(kind: str, shown: Sequence[str], headline: str, result: Result) -> Table:
    """Each metric's mean ± standard error (the `shown` ones by default, the rest with --wide), the logit
    spread that drives them, and the theory columns that have a value somewhere."""
    from sqrtdk.output import pm, pm_share

    rows, metrics = result.rows, SATURATION if kind == "saturation" else GRADIENT
    columns = [
        Column("d_k", tuple(str(r["d_k"]) for r in rows), key=True),
        Column("n", tuple(str(r["seq_len"]) for r in rows), key=True),
        Column("scaling", tuple(r["scaling"] for r in rows), key=True),
        Column("logit sd", tuple(f"{r['logit_std']:.3g}" for r in rows)),
    ]
    notes = [_headline(rows, headline)] if len(report.groups(result, "dim")) == 1 else []
    empty: list[str] = []
    for m in metrics:
        metric = METRICS[m]
        cells = tuple(pm_share(r, m) if metric.fraction else pm(r, m) for r in rows)
        columns.append(Column(metric.short, cells, wide=m not in shown))
        if metric.theory is None:
            continue
        told = tuple(_theory(r, m) for r in rows)
        columns.append(Column("theory", told, wide=m not in shown or not any(told), about="", joins=True))
        if m in shown and not all(told):
            empty.append(metric.short)
    if empty:
        notes.append(
            f"An empty theory cell ({', '.join(empty)}): the exact theory needs a row's logits independent "
            "normals given its query (Gaussian entries, direct inputs; with a correlated own key, mean 0; "
            "under QK-norm, mean 0 and no correlated own key)."
        )
    if kind == "gradient":
        uniform = sorted({(r["seq_len"], r["uniform_jacobian_fro"]) for r in rows})
        notes.append(
            "For comparison, the uniform row p = 1/n has ||J||_F = √(n-1)/n: "
            + ", ".join(f"{value:.4g} at n = {n}" for n, value in uniform)
            + "."
        )
    if any(r[m] is not None and r[m] == 0 for r in rows for m in metrics if METRICS[m].fraction):
        notes.append(f"A share of 0 is followed by the upper end of its exact {LEVEL:.0%} interval.")
    return Table(f"{kind.capitalize()}: mean over query rows ± standard error", columns, [n for n in notes if n])


def _theory(row: dict, metric: str) -> str:
    """The exact theory of `metric` in a row, as a table cell."""
    value = row[METRICS[metric].theory or ""]
    return "" if value is None else f"{value:.4g}"


def _headline(rows: Sequence[dict], metric: str) -> str:
    """One line under the table of a sweep over d_k: the headline metric unscaled against scaled."""
    from sqrtdk.output import pm

    if len({r["seq_len"] for r in rows}) != 1:
        return ""
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if len(none) < 2 or len(scaled) < 2:
        return ""
    words = METRICS[metric].words or METRICS[metric].short
    a, b = none[0], none[-1]
    return (
        f"Unscaled, {words} goes from {pm(a, metric)} at d_k = {a['d_k']} to {pm(b, metric)} at "
        f"d_k = {b['d_k']} (n = {a['seq_len']}); with 1/√d_k it stays "
        f"{report.between([r[metric] for r in scaled], '.3g')}."
    )


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Bytes held at once by `threads` threads and seconds on one core (sqrtdk/resources.py)."""
    from sqrtdk.core.rows import CHUNK_SCORES, QUERIES, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, LOGIT_NS, TASK_SECONDS

    src = schema.source(task)
    projected = src.inputs == "projected"
    d_k = src.d_k(task["dim"])
    n = task["seq_len"]
    m, heads = min(n, QUERIES), src.heads if projected else 1
    replicates, per_replicate = geometry(task["samples"], m * heads)
    chunk = max(min(CHUNK_SCORES, per_replicate * m * n * heads), n * heads)  # logits at once: >= one row a head
    # q and k in float32, and again whole in float64 for QK-norm of entries with a mean (rows.direct_trials)
    whole = int("qknorm" in task["scaling"] and bool(src.entries.mean) and not projected)
    held = (4 + 8 * whole) * (m + n) * heads * d_k * min(per_replicate, max(1, CHUNK_SCORES // (m * n))) + 60 * chunk
    draws = (m + n) * heads * d_k
    if projected:
        held += 4 * (2 * src.d_model**2 + n * src.d_model)
        draws += 2 * src.d_model**2 + n * src.d_model
    rules = len(task["scaling"])
    per_rule = 6 if "threshold" in task else 14  # passes over the logits
    trials = replicates * per_replicate  # whole trials in every replicate
    logits = trials * m * heads * n
    seconds = (
        logits * (2 * d_k * FLOP_NS * (1 + ("eps" in task)) + rules * per_rule * LOGIT_NS) + trials * draws * DRAW_NS
    ) * 1e-9 + TASK_SECONDS
    return held * min(threads, replicates), seconds
