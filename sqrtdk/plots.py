"""Figures, written as PNG and SVG without dates or other run-dependent metadata."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCALING_COLOURS = {"none": "#d1495b", "sqrt": "#00798c"}
SCALING_LABELS = {"none": "unscaled  q.k", "sqrt": "scaled  q.k / sqrt(d_k)"}


def new_figure(width: float = 6.4, height: float = 4.2, ncols: int = 1):
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "sqrtdk"  # stable SVG element ids
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def save(fig, path: Path) -> None:
    """Save to `path` (.png or .svg) with no software, date or creator metadata."""
    if path.suffix == ".png":
        fig.savefig(path, dpi=150, metadata={"Software": None})
    else:
        fig.savefig(path, metadata={"Date": None, "Creator": None})


def histogram_figure(sample: Any, mean: float, std: float):
    """Histogram of scaled and unscaled scores against the exact density and the normal curve.

    Left: both on one axis, the unscaled spread sqrt(d_k) times wider. Right: the scaled scores on a log
    density axis, where the exact density's exponential tails part from the normal curve.
    """
    from sqrtdk import theory

    d_k = sample.d_k
    density = sample.counts / (sample.n_scores * np.diff(sample.edges))  # of the unscaled scores
    exact = mean == 0.0
    fig, (ax_both, ax_log) = new_figure(11.0, 4.2, ncols=2)

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
    ax_both.set_title(f"Scores at d_k = {d_k}: {sample.n_scores:,} draws", fontsize=10)
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


def variance_figure(rows: Sequence[dict]):
    """Variance against d_k on log-log axes with theory, and below it measured / theory with 99.9% intervals."""
    from matplotlib.figure import Figure

    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "sqrtdk"
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax, ax_ratio = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.4])
    for offset, scaling in zip((0.97, 1.03), ("none", "sqrt")):
        sel = sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r["d_k"])
        d = np.array([r["d_k"] for r in sel], dtype=float)
        theory_var = np.array([r["theory_variance"] for r in sel])
        var = np.array([r["variance"] for r in sel])
        err = np.array([[r["variance"] - r["variance_ci_low"], r["variance_ci_high"] - r["variance"]]
                        for r in sel]).T
        colour = SCALING_COLOURS[scaling]
        ax.plot(d, theory_var, color=colour, lw=1.2, alpha=0.7, label=f"{SCALING_LABELS[scaling]}: theory")
        ax.plot(d, var, "o", ms=4, color=colour, label=f"{SCALING_LABELS[scaling]}: measured")
        ax_ratio.errorbar(d * offset, var / theory_var, yerr=err / theory_var, fmt="o", ms=3, color=colour,
                          capsize=2, label=SCALING_LABELS[scaling])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_ylabel("variance of the score")
    ax.set_title("Var(q.k) grows like d_k; dividing by sqrt(d_k) keeps it flat", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_xlabel("d_k")
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("99.9% intervals from independent replicates; scaled and unscaled share their draws, "
                       "so their ratios coincide", fontsize=8)
    ax_ratio.grid(True, which="major", alpha=0.3)
    return fig
