"""Figures, written as PNG and SVG without dates or other run-dependent metadata."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCALING_COLOURS = {"none": "#d1495b", "sqrt": "#00798c", "linear": "#e09f3e", "qknorm": "#55a630",
                   "logn": "#4b3f72"}
SCALING_LABELS = {"none": "unscaled  q.k", "sqrt": "scaled  q.k / sqrt(d_k)", "linear": "q.k / d_k",
                  "qknorm": "QK-norm  g cos(q, k)", "logn": "Scalable-Softmax  s ln n q.k / sqrt(d_k)"}


def new_figure(width: float, height: float):
    """An empty figure (no pyplot, no GUI) whose SVG element ids are stable from run to run.

    Figures are only ever saved to files, so the user's MPLBACKEND (a notebook's, a GUI's, or a typo that
    matplotlib would refuse at import) does not apply: sqrtdk draws with Agg."""
    import os

    os.environ["MPLBACKEND"] = "agg"
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "sqrtdk"
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig, path: Path) -> None:
    """Save to `path` (.png or .svg) with no software, date or creator metadata."""
    if path.suffix == ".png":
        fig.savefig(path, dpi=150, metadata={"Software": None})
    else:
        fig.savefig(path, metadata={"Date": None, "Creator": None})


def histogram_figure(sample: Any, label: str = ""):
    """Histogram of scaled and unscaled scores against the exact density and the normal curve.

    Left: both on one axis, the unscaled spread sqrt(d_k) times wider. Right: the scaled scores on a log
    density axis, where the exact density's exponential tails part from the normal curve. The exact
    density is drawn where it is implemented (independent mean-0 Gaussian entries); the normal curve has
    the theoretical mean and variance.
    """
    from sqrtdk import theory
    from sqrtdk.variance import theory_dot

    d_k, source = sample.d_k, sample.source
    if sample.counts is None:
        raise ValueError("this sample was drawn without a histogram (figures=False): run it again to draw it")
    density = sample.counts / (sample.n_scores * np.diff(sample.edges))  # of the unscaled scores
    exact = source.inputs == "direct" and theory.has_density(source.entries)
    fig = new_figure(11.0, 4.2)
    ax_both, ax_log = fig.subplots(1, 2)

    def overlay(ax, scaling: str, x_points: int = 800) -> None:
        c = theory.scale(d_k, scaling)
        colour = SCALING_COLOURS[scaling]
        edges = c * sample.edges
        mu, var = theory_dot(d_k, source, sample.block, c)
        sd = math.sqrt(var)
        x = np.linspace(edges[0], edges[-1], x_points)
        ax.stairs(density / c, edges, fill=True, alpha=0.35, color=colour,
                  label=f"{SCALING_LABELS[scaling]}: measured")
        if exact:
            ax.plot(x, theory.score_density(x, d_k, source.entries.std, c), color=colour, lw=1.6,
                    label=f"exact density (variance-gamma), sd {sd:.3g}")
        ax.plot(x, np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), color=colour,
                lw=1.0, ls="--", label=f"normal, mean {mu:.3g}, sd {sd:.3g}")

    overlay(ax_both, "none")
    overlay(ax_both, "sqrt")
    ax_both.set_xlim(sample.edges[0], sample.edges[-1])
    where = f" ({label})" if label else ""
    ax_both.set_title(f"Scores at d_k = {d_k}{where}: {sample.n_scores:,} draws", fontsize=10)
    ax_both.set_xlabel("score")
    ax_both.set_ylabel("density")
    ax_both.legend(fontsize=7, loc="upper left")

    overlay(ax_log, "sqrt")
    c = theory.scale(d_k, "sqrt")
    ax_log.set_yscale("log")
    ax_log.set_xlim(c * sample.edges[0], c * sample.edges[-1])
    positive = density[density > 0] / c
    ax_log.set_ylim(0.3 * positive.min() if positive.size else 1e-6, 2 * positive.max())
    kurtosis = theory.score_excess_kurtosis(d_k, source.entries) if source.inputs == "direct" else None
    told = f"excess kurtosis {kurtosis:.3g} in theory" if kurtosis is not None else "no closed-form kurtosis"
    ax_log.set_title(f"Scaled scores, log axis: the tails ({told})", fontsize=10)
    ax_log.set_xlabel("score")
    ax_log.legend(fontsize=7, loc="lower center")
    if not exact:
        fig.suptitle("No closed-form density is implemented for these entries; dashed: the normal curve "
                     "with the exact mean and variance", fontsize=8)
    return fig


SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
RULE_MARKERS = {"none": "o", "sqrt": "s", "linear": "^", "qknorm": "D", "logn": "v"}
RULE_LINES = {"none": ":", "sqrt": "-", "linear": "-.", "qknorm": "--", "logn": (0, (5, 1, 1, 1))}


class Style:
    """How a (rule, series) line looks: colour by rule when the rules outnumber the series (a figure about
    rules), otherwise colour by series and tell the rules apart by marker and line style."""

    def __init__(self, rules: Sequence[str], groups: Sequence[tuple[str, Any]]):
        self.by_rule = len(rules) > len(groups) or len(groups) == 1
        self.groups = len(groups)

    def colour(self, rule: str, g: int) -> str:
        return SCALING_COLOURS[rule] if self.by_rule else SERIES_COLOURS[g % len(SERIES_COLOURS)]

    def marker(self, rule: str, g: int) -> str:
        return SEQ_MARKERS[g % len(SEQ_MARKERS)] if self.by_rule else RULE_MARKERS[rule]

    def line(self, rule: str) -> Any:
        return "-" if self.by_rule else RULE_LINES[rule]


def series_of(rows: Sequence[dict], columns: Sequence[str]) -> list[tuple[str, list[dict]]]:
    """Rows grouped by their values in `columns` (in first-seen order), each group with its legend label."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in columns), []).append(row)
    return [(", ".join(f"{c} = {v:g}" if isinstance(v, float) else f"{c} = {v}" for c, v in zip(columns, key)),
             group) for key, group in groups.items()]


METRIC_LABELS = {
    "max_prob_mean": "mean of max_j p_j", "entropy_mean": "entropy (nats)",
    "entropy_ratio_mean": "entropy / ln n", "effective_tokens_mean": "exp(entropy)",
    "participation_mean": "1 / sum p^2", "saturated_fraction": "fraction with max p >= threshold",
    "jacobian_fro_mean": "||diag(p) - p p^T||_F", "jacobian_diag_max_mean": "max_j p_j (1 - p_j)",
    "grad_logits_mean": "||dL/ds_i||", "grad_q_mean": "||dL/dq_i||",
    "vanishing_fraction": "fraction with ||J||_F < eps",
}
THEORY_KEYS = {"entropy_mean": "theory_entropy", "participation_mean": "theory_participation",
               "jacobian_fro_mean": "uniform_jacobian_fro"}
LOG_Y = {"effective_tokens_mean", "participation_mean", "jacobian_fro_mean", "jacobian_diag_max_mean",
         "grad_logits_mean"}
SEQ_MARKERS = ("o", "s", "^", "D", "v", "P")


def error_bars(rows: Sequence[dict], metric: str) -> np.ndarray:
    """(2, len(rows)) distances below and above each value to the ends of its 95% interval: the fractions'
    Wilson interval where the rows have one, otherwise Student's t on the replicates' degrees of freedom
    times the standard error (not 1.96: with 8 replicates that would cover about 90%)."""
    from sqrtdk.attention import LEVEL
    from sqrtdk.moments import t_quantile

    if metric + "_ci_low" in rows[0]:
        return np.array([[r[metric] - r[metric + "_ci_low"] for r in rows],
                         [r[metric + "_ci_high"] - r[metric] for r in rows]])
    half = np.array([t_quantile(0.5 + LEVEL / 2, r["replicates"] - 1) * r[metric + "_se"] for r in rows])
    return np.array([half, half])


def rules_in(rows: Sequence[dict]) -> list[str]:
    """The scaling rules the rows hold, in the order of SCALING_COLOURS."""
    return [s for s in SCALING_COLOURS if any(r["scaling"] == s for r in rows)]


def variance_figure(rows: Sequence[dict], series: Sequence[str] = (), setting: str = ""):
    """Four panels against d_k (log2 axis), a line per scaling rule and per combination of the other varying
    parameters (`series`: row columns): the variance with its theory; measured / theory with 99.9%
    intervals; the mean in units of the spread, E / sd (0 for independent mean-0 entries, growing like
    sqrt(d_k) when q and k are correlated); and d_k times the excess kurtosis, a constant in theory.
    """
    from sqrtdk.moments import REPLICATES, t_quantile

    t95 = t_quantile(0.975, REPLICATES - 1)  # the variance experiment's replicates
    fig = new_figure(12.0, 8.0)
    (ax, ax_ratio), (ax_mean, ax_kurt) = fig.subplots(2, 2, sharex=True)
    groups = series_of(rows, series)
    rules = rules_in(rows)
    style = Style(rules, groups)
    spots = len(rules) * len(groups)
    spread = np.linspace(0.92, 1.08, spots) if spots > 1 else [1.0]
    for g, (name, group) in enumerate(groups):
        suffix = f" ({name})" if name else ""
        for i, scaling in enumerate(rules):
            offset = spread[g * len(rules) + i]
            sel = sorted((r for r in group if r["scaling"] == scaling), key=lambda r: r["d_k"])
            if not sel:
                continue
            colour, marker = style.colour(scaling, g), style.marker(scaling, g)
            label = SCALING_LABELS[scaling] + suffix
            d = np.array([r["d_k"] for r in sel], dtype=float)
            var = np.array([r["variance"] for r in sel])
            ax.plot(d, var, marker, ms=4, color=colour, label=label)
            with_theory = [r for r in sel if r["theory_variance"]]
            if with_theory:
                ax.plot([r["d_k"] for r in with_theory], [r["theory_variance"] for r in with_theory], color=colour,
                        lw=1.0, alpha=0.7, ls=style.line(scaling))
            bounded = [r for r in with_theory if r["variance_ci_low"] is not None]
            if bounded:
                t = np.array([r["theory_variance"] for r in bounded])
                v = np.array([r["variance"] for r in bounded])
                err = np.array([[r["variance"] - r["variance_ci_low"], r["variance_ci_high"] - r["variance"]]
                                for r in bounded]).T / t
                ax_ratio.errorbar(np.array([r["d_k"] for r in bounded]) * offset, v / t, yerr=err, fmt=marker,
                                  ms=3, color=colour, capsize=2)
            z = [(r["d_k"] * offset, r["mean"] / math.sqrt(r["variance"]), t95 * r["mean_se"] / math.sqrt(r["variance"]))
                 for r in sel if r["variance"] > 0]
            ax_mean.errorbar([x for x, _, _ in z], [y for _, y, _ in z], yerr=[e for _, _, e in z], fmt=marker, ms=3,
                             color=colour, capsize=2)
            zt = [(r["d_k"], r["theory_mean"] / math.sqrt(r["theory_variance"])) for r in sel
                  if r["theory_mean"] is not None and r["theory_variance"]]
            if zt:
                ax_mean.plot(*zip(*zt), color=colour, lw=1.0, alpha=0.7)
            k = [(r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"], t95 * r["d_k"] * r["excess_kurtosis_se"])
                 for r in sel if r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is not None]
            if k:
                ax_kurt.errorbar([x for x, _, _ in k], [y for _, y, _ in k], yerr=[e for _, _, e in k], fmt=marker,
                                 ms=3, color=colour, capsize=2)
            bare = [(r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"]) for r in sel
                    if r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is None]
            if bare:  # heavy tails: the estimate without an interval (it would not cover)
                ax_kurt.plot(*zip(*bare), marker, ms=3, color=colour, mfc="none")
            kt = [(r["d_k"], r["d_k"] * r["theory_excess_kurtosis"]) for r in sel
                  if r["theory_excess_kurtosis"] is not None]
            if kt:
                ax_kurt.plot(*zip(*kt), color=colour, lw=1.0, alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_ylabel("variance of the score")
    ax.set_title("Variance of the score: markers measured, lines theory", fontsize=10)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("Measured / theory, 99.9% intervals (rules that only rescale q.k coincide)", fontsize=10)
    ax_mean.axhline(0.0, color="0.4", lw=0.8)
    ax_mean.set_ylabel("mean / sd")
    growing = any(r["theory_mean"] and r["scaling"] != "qknorm" for r in rows)
    ax_mean.set_title("Mean / sd grows like sqrt(d_k): the mean like d_k, the spread like sqrt(d_k)" if growing
                      else "The mean in units of the spread, 95% error bars (lines: theory)", fontsize=10)
    ax_kurt.axhline(0.0, color="0.4", lw=0.8)
    ax_kurt.set_ylabel("d_k x excess kurtosis")
    hollow = any(r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is None for r in rows)
    ax_kurt.set_title("d_k times the excess kurtosis: constant in theory"
                      + (" (95% bars; hollow: no interval)" if hollow else " (95% error bars)"), fontsize=10)
    for a in (ax, ax_ratio, ax_mean, ax_kurt):
        a.grid(True, which="major", alpha=0.3)
    for a in (ax_mean, ax_kurt):
        a.set_xlabel("d_k")
    handles = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=3, fontsize=7)
    if setting:
        fig.suptitle(setting, fontsize=10)
    return fig


def variance_by_setting(rows: Sequence[dict], series: Sequence[str], setting: str = ""):
    """One d_k, several settings (inits, distributions, ...): each rule's variance with its 99.9% interval
    against its theory, per setting, and measured / theory."""
    fig = new_figure(12.0, 4.8)
    ax, ax_ratio = fig.subplots(1, 2)
    groups = series_of(rows, series)
    rules = rules_in(rows)
    width = 0.8 / len(rules)
    for i, scaling in enumerate(rules):
        colour = SCALING_COLOURS[scaling]
        for g, (_, group) in enumerate(groups):
            row = next((r for r in group if r["scaling"] == scaling), None)
            if row is None:
                continue
            x = g + (i - (len(rules) - 1) / 2) * width
            low, high = row["variance_ci_low"], row["variance_ci_high"]
            err = None if low is None else [[row["variance"] - low], [high - row["variance"]]]
            ax.errorbar([x], [row["variance"]], yerr=err, fmt="o", ms=4, color=colour, capsize=2,
                        label=SCALING_LABELS[scaling] if g == 0 else None)
            if row["theory_variance"]:
                ax.plot([x - width / 2, x + width / 2], [row["theory_variance"]] * 2, color="0.2", lw=1.4,
                        label="theory" if i == 0 and g == 0 else None)
                if err is not None:
                    t = row["theory_variance"]
                    ax_ratio.errorbar([x], [row["variance"] / t], yerr=np.array(err) / t, fmt="o", ms=4,
                                      color=colour, capsize=2)
    names = [name for name, _ in groups]
    for a in (ax, ax_ratio):
        a.set_xticks(range(len(groups)), names, rotation=20, ha="right", fontsize=8)
        a.grid(True, axis="y", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("variance of the score")
    d_k = rows[0]["d_k"]
    ax.set_title(f"Score variance at d_k = {d_k} per setting (bars: theory)", fontsize=10)
    if setting:
        fig.suptitle(setting, fontsize=10)
    ax.legend(fontsize=7)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("99.9% intervals from independent replicates", fontsize=10)
    return fig


def toy_figure(rows: Sequence[dict]):
    """Largest softmax weight against n for the Scalable-Softmax toy: computed, closed form, published."""
    fig = new_figure(6.4, 4.4)
    ax = fig.subplots()
    for scaling in ("none", "logn"):
        sel = sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r["seq_len"])
        if not sel:
            continue
        n = [r["seq_len"] for r in sel]
        colour = SCALING_COLOURS[scaling]
        name = "softmax" if scaling == "none" else "Scalable-Softmax (s ln n)"
        ax.plot(n, [r["theory_max_weight"] for r in sel], color=colour, lw=1.2, label=f"{name}: closed form")
        ax.plot(n, [r["max_weight"] for r in sel], "o", color=colour, ms=5, label=f"{name}: computed")
        published = [(r["seq_len"], r["published_max_weight"]) for r in sel if r["published_max_weight"] is not None]
        if published:
            ax.plot(*zip(*published), "x", color="black", ms=7, label="published" if scaling == "none" else None)
    ax.set_xscale("log")
    ax.set_xlabel("n (logits: one high, the rest low)")
    ax.set_ylabel("largest weight")
    ax.set_ylim(-0.02, 1.05)
    ax.set_title("One key that stands out: softmax fades with n, Scalable-Softmax holds it", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


X_LABELS = {"d_k": "d_k", "seq_len": "sequence length n"}


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


def metric_grid(rows: Sequence[dict], metrics: Sequence[str], title: str, x: str = "d_k",
                series: Sequence[str] = ("seq_len",), setting: str = ""):
    """Each metric against `x` ("d_k" or "seq_len", log2 axis), a line per scaling and per combination of
    the `series` columns, with 95% error bars.

    Dashed: the theory where it holds (random-energy-model forms for entropy and 1/sum p^2; the uniform
    row's ||J||_F as a reference). Dotted vertical: where the unscaled logit spread reaches
    s_c = sqrt(2 ln n), beyond which the softmax freezes onto a few keys.
    """
    ncols = 3
    nrows = math.ceil(len(metrics) / ncols)
    fig = new_figure(13.0, 3.6 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    scalings = rules_in(rows)
    groups = series_of(rows, series)
    xs = [r[x] for r in rows]
    crossings = {}
    for name, group in groups:
        unscaled = [r for r in group if r["scaling"] == "none"]
        point = freezing_point(unscaled[0], x) if unscaled else None
        if point is not None and min(xs) <= point <= max(xs):
            crossings[name] = point
    style = Style(scalings, groups)
    for ax, metric in zip(axes, metrics):
        for scaling in scalings:
            for g, (name, group) in enumerate(groups):
                sel = sorted((r for r in group if r["scaling"] == scaling and r[metric] is not None),
                             key=lambda r: r[x])
                if not sel:
                    continue
                xv = np.array([r[x] for r in sel], dtype=float)
                y = np.array([r[metric] for r in sel])
                err = error_bars(sel, metric)
                label = SCALING_LABELS[scaling] + (f", {name}" if name else "")
                colour = style.colour(scaling, g)
                ax.errorbar(xv, y, yerr=err, fmt=style.marker(scaling, g), ls=style.line(scaling), ms=4, lw=1.2,
                            capsize=2, color=colour, label=label)
                key = THEORY_KEYS.get(metric)
                pts = [(r[x], r[key]) for r in sel if key and r.get(key) is not None]
                if pts and key == "uniform_jacobian_fro":
                    if scaling == scalings[0]:
                        ax.plot(*zip(*pts), ls="--", lw=1.0, color="0.45",
                                label="uniform row: sqrt(n-1)/n" if g == 0 else None)
                elif pts:
                    ax.plot(*zip(*pts), ls=(0, (2, 2)), lw=1.0, color=colour, alpha=0.6,
                            label="thin dashes: random-energy model (asymptotic; drawn where within 2%)")
        for point in crossings.values():
            ax.axvline(point, color=SCALING_COLOURS["none"], ls=":", lw=0.9, alpha=0.7)
        ax.set_xscale("log", base=2)
        if metric in LOG_Y:
            ax.set_yscale("log")
        ax.set_xlabel(X_LABELS[x])
        ax.set_title(METRIC_LABELS[metric], fontsize=10)
        ax.grid(True, alpha=0.3)
    handles = {}
    for ax in axes[:len(metrics)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=4 if len(handles) < 13 else 5,
               fontsize=8 if len(handles) < 13 else 7)
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    axis = X_LABELS[x].split()[-1]
    where = ", ".join(f"{name}: {axis} = {v:.3g}" if name else f"{axis} = {v:.3g}" for name, v in crossings.items())
    note = (f"\nDotted: the unscaled logit spread reaches s_c = sqrt(2 ln n) ({where})" if crossings else "")
    context = f", {setting}" if setting else ""
    fig.suptitle(f"{title}{context} (error bars: 95%){note}", fontsize=10)
    return fig
