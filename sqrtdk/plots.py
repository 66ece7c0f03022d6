"""Figures, written as PNG and SVG without dates or other run-dependent metadata."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCALING_COLOURS = {"none": "#d1495b", "sqrt": "#00798c"}
SCALING_LABELS = {"none": "unscaled  q.k", "sqrt": "scaled  q.k / sqrt(d_k)"}


def new_figure(width: float, height: float):
    """An empty figure (no pyplot, no GUI) whose SVG element ids are stable from run to run."""
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


def histogram_figure(sample: Any, mean: float, std: float, label: str = ""):
    """Histogram of scaled and unscaled scores against the exact density and the normal curve.

    Left: both on one axis, the unscaled spread sqrt(d_k) times wider. Right: the scaled scores on a log
    density axis, where the exact density's exponential tails part from the normal curve.
    """
    from sqrtdk import theory

    d_k = sample.d_k
    density = sample.counts / (sample.n_scores * np.diff(sample.edges))  # of the unscaled scores
    exact = mean == 0.0
    fig = new_figure(11.0, 4.2)
    ax_both, ax_log = fig.subplots(1, 2)

    def overlay(ax, scaling: str, x_points: int = 800) -> None:
        c = theory.scale(d_k, scaling)
        colour = SCALING_COLOURS[scaling]
        edges = c * sample.edges
        sd = math.sqrt(theory.score_variance(d_k, mean, std, c))
        mu = theory.score_mean(d_k, mean, std, c)
        x = np.linspace(edges[0], edges[-1], x_points)
        ax.stairs(density / c, edges, fill=True, alpha=0.35, color=colour,
                  label=f"{SCALING_LABELS[scaling]}: measured")
        if exact:
            ax.plot(x, theory.score_density(x, d_k, std, c), color=colour, lw=1.6,
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
    kurtosis = theory.score_excess_kurtosis(d_k, mean, std)
    ax_log.set_title(f"Scaled scores, log axis: the tails (excess kurtosis {kurtosis:.3g} in theory)",
                     fontsize=10)
    ax_log.set_xlabel("score")
    ax_log.legend(fontsize=7, loc="lower center")
    if not exact:
        fig.suptitle("mean != 0: no closed-form density is implemented; dashed: normal with the exact mean "
                     "and variance", fontsize=8)
    return fig


def shade(scaling: str, g: int, count: int) -> tuple[float, float, float]:
    """The scaling's colour, lightened for the earlier of `count` series so that each line can be told apart."""
    from matplotlib.colors import to_rgb

    base = np.array(to_rgb(SCALING_COLOURS[scaling]))
    t = 0.0 if count <= 1 else 0.6 * (1 - g / (count - 1))
    return tuple(base + (1 - base) * t)


def series_of(rows: Sequence[dict], columns: Sequence[str]) -> list[tuple[str, list[dict]]]:
    """Rows grouped by their values in `columns` (in first-seen order), each group with its legend label."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in columns), []).append(row)
    return [(", ".join(f"{c} = {v:g}" if isinstance(v, float) else f"{c} = {v}" for c, v in zip(columns, key)),
             group) for key, group in groups.items()]


def variance_figure(rows: Sequence[dict], series: Sequence[str] = ()):
    """Variance against d_k on log-log axes with theory, and below it measured / theory with 99.9% intervals.

    One line per scaling and per combination of the other varying parameters (`series`: row columns).
    """
    fig = new_figure(6.4, 5.6)
    ax, ax_ratio = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.4])
    groups = series_of(rows, series)
    styles = ("-", "--", ":", "-.")
    for g, (name, group) in enumerate(groups):
        suffix = f" ({name})" if name else ""
        for offset, scaling in zip((0.97, 1.03), ("none", "sqrt")):
            sel = sorted((r for r in group if r["scaling"] == scaling), key=lambda r: r["d_k"])
            d = np.array([r["d_k"] for r in sel], dtype=float)
            theory_var = np.array([r["theory_variance"] for r in sel])
            var = np.array([r["variance"] for r in sel])
            err = np.array([[r["variance"] - r["variance_ci_low"], r["variance_ci_high"] - r["variance"]]
                            for r in sel]).T
            colour = shade(scaling, g, len(groups))
            ax.plot(d, theory_var, color=colour, lw=1.2, alpha=0.7, ls=styles[g % len(styles)],
                    label=f"{SCALING_LABELS[scaling]}: theory{suffix}")
            ax.plot(d, var, "o", ms=4, color=colour, label=f"{SCALING_LABELS[scaling]}: measured{suffix}")
            ax_ratio.errorbar(d * offset, var / theory_var, yerr=err / theory_var, fmt="o", ms=3, color=colour,
                              capsize=2, label=SCALING_LABELS[scaling] + suffix)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_ylabel("variance of the score")
    ax.set_title("Var(q.k) grows like d_k; dividing by sqrt(d_k) keeps it flat", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8 if len(groups) == 1 else 6)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_xlabel("d_k")
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("99.9% intervals from independent replicates; scaled and unscaled share their draws, "
                       "so their ratios coincide", fontsize=8)
    ax_ratio.grid(True, which="major", alpha=0.3)
    return fig


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


X_LABELS = {"d_k": "d_k", "seq_len": "sequence length n"}


def freezing_point(row: dict, x: str) -> float | None:
    """Where along `x` the row's series reaches s_c = sqrt(2 ln n), beyond which the softmax freezes.

    Against d_k the logit spread grows like sqrt(d_k) (s_c fixed by n); against n, s_c = sqrt(2 ln n)
    grows to meet a fixed spread s at n = exp(s^2 / 2).
    """
    s, s_c = row["logit_std"], row["critical_logit_std"]
    if x == "d_k":
        return row["d_k"] * (s_c / s) ** 2 if s_c and s > 0 else None
    return math.exp(s * s / 2)


def metric_grid(rows: Sequence[dict], metrics: Sequence[str], title: str, x: str = "d_k",
                series: Sequence[str] = ("seq_len",)):
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
    scalings = [s for s in SCALING_COLOURS if any(r["scaling"] == s for r in rows)]
    groups = series_of(rows, series)
    xs = [r[x] for r in rows]
    crossings = {}
    for name, group in groups:
        unscaled = [r for r in group if r["scaling"] == "none"]
        point = freezing_point(unscaled[0], x) if unscaled else None
        if point is not None and min(xs) <= point <= max(xs):
            crossings[name] = point
    for ax, metric in zip(axes, metrics):
        for scaling in scalings:
            for g, (name, group) in enumerate(groups):
                marker = SEQ_MARKERS[g % len(SEQ_MARKERS)]
                sel = sorted((r for r in group if r["scaling"] == scaling and r[metric] is not None),
                             key=lambda r: r[x])
                if not sel:
                    continue
                xv = np.array([r[x] for r in sel], dtype=float)
                y = np.array([r[metric] for r in sel])
                err = 1.96 * np.array([r[metric + "_se"] for r in sel])
                label = SCALING_LABELS[scaling] + (f", {name}" if name else "")
                colour = shade(scaling, g, len(groups))
                ax.errorbar(xv, y, yerr=err, fmt=marker + "-", ms=4, lw=1.2, capsize=2, color=colour,
                            label=label)
                key = THEORY_KEYS.get(metric)
                pts = [(r[x], r[key]) for r in sel if key and r.get(key) is not None]
                if pts and key == "uniform_jacobian_fro":
                    if scaling == scalings[0]:
                        ax.plot(*zip(*pts), ls="--", lw=1.0, color="0.45",
                                label="uniform row: sqrt(n-1)/n" if g == 0 else None)
                elif pts:
                    ax.plot(*zip(*pts), ls="--", lw=1.0, color=colour, alpha=0.8,
                            label="theory (random-energy model)" if g == 0 else None)
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
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=4, fontsize=8)
    for ax in axes[len(metrics):]:
        ax.set_axis_off()
    where = ", ".join(f"{name}: {X_LABELS[x].split()[-1]} = {v:.3g}" if name else f"{v:.3g}"
                      for name, v in crossings.items())
    note = (f"\nDotted: the unscaled logit spread reaches s_c = sqrt(2 ln n) ({where})" if crossings else "")
    fig.suptitle(f"{title} (error bars: 95%){note}", fontsize=10)
    return fig
