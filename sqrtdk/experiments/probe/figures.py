"""The figures of `sqrtdk probe`: per-head maps of the measured statistics against the iid prediction,
and the logit histograms of the two most different heads."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk.experiments.probe.measure import SINK

if TYPE_CHECKING:
    from sqrtdk.experiments.probe.measure import ProbeSample
    from sqrtdk.result import Result


def contrasting(rows: Sequence[dict]) -> list[dict]:
    """The two heads the logits figure shows: the widest logits and the narrowest."""
    by_spread = sorted(rows, key=lambda r: r["logit_std"])
    return [by_spread[-1], by_spread[0]] if len(rows) > 1 else list(rows)


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {"probe_maps": lambda: maps_figure(result.rows)}
    if len(result.tasks) == 1:  # a skipped config's committed result has no outputs, only rows
        out["probe_logits"] = lambda: logits_figure(result.rows, result.outputs[0])
    return out


def _grid(rows: Sequence[dict], column: str) -> Any:
    import numpy as np

    layers, heads = max(r["layer"] for r in rows), max(r["head"] for r in rows)
    grid = np.full((layers, heads), np.nan)
    for r in rows:
        if r[column] is not None:
            grid[r["layer"] - 1, r["head"] - 1] = r[column]
    return grid


def maps_figure(rows: Sequence[dict]) -> Any:
    """Layer x head maps: the logit spread (frozen heads, s > s_c, ringed), entropy / ln n, Var(q.k) over
    its value for independent coordinates with the entries' per-dimension means and variances (log scale,
    1 included), and the share of that value the means make. Every map is sequential, dark to light, so
    that it reads in greyscale."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter

    from sqrtdk.plots import legend_below, new_figure

    layers, heads = max(r["layer"] for r in rows), max(r["head"] for r in rows)
    fig = new_figure(2, 2, aspect=min(0.6, 0.2 + layers / heads * 0.6))
    axes = fig.subplots(2, 2).ravel()
    s_c = rows[0]["critical_logit_std"]
    # log scales over the positive values: a head whose logits do not vary (spread and ratio 0) is left blank
    ratio = _grid(rows, "independent_variance_ratio")
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    low, high = (min(1.0, float(finite.min())), max(1.0, float(finite.max()))) if finite.size else (0.5, 2.0)
    spread = _grid(rows, "logit_std")
    spread = spread[np.isfinite(spread) & (spread > 0)]
    panels = (
        (
            "logit_std",
            "logit spread $s$, log scale",
            "viridis",
            LogNorm(float(spread.min()), float(spread.max())) if spread.size else None,
        ),
        ("entropy_ratio_mean", r"entropy / $\ln n$", "viridis", None),
        (
            "independent_variance_ratio",
            r"Var$(q\cdot k)$ / its value for independent coordinates",
            "magma",
            LogNorm(low, high),
        ),
        (
            "mean_share",
            "the coordinates' means' share of that value",
            "viridis",
            None,
        ),
    )
    for ax, (column, label, cmap, norm) in zip(axes, panels):
        image = ax.imshow(_grid(rows, column), cmap=cmap, norm=norm, aspect="auto", origin="upper")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
        ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)])
        ax.set_yticks(range(layers), [str(l + 1) for l in range(layers)])
        ax.grid(False)
        ax.set_title(label)
        if isinstance(norm, LogNorm):
            bar = image.colorbar
            lo, hi = float(norm.vmin or 0.0), float(norm.vmax or 0.0)
            steps = (
                (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
                if hi < 6 * lo
                else (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
            )
            ticks = [t for t in steps if lo <= t <= hi]
            bar.ax.yaxis.set_major_locator(FixedLocator(ticks))
            bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            bar.ax.yaxis.set_minor_locator(FixedLocator([]))
        for r in rows:
            if r["logit_std"] > s_c:  # a white ring with a black rim: seen on dark and light cells
                ax.plot(r["head"] - 1, r["layer"] - 1, "o", mfc="none", mec="white", ms=8, mew=2.2)
                ax.plot(r["head"] - 1, r["layer"] - 1, "o", mfc="none", mec="black", ms=8, mew=0.8)
            if max(r["cls_share"] or 0.0, r["sep_share"] or 0.0) >= SINK:
                ax.plot(r["head"] - 1, r["layer"] - 1, "x", color="white", ms=5, mew=2.6)
                ax.plot(r["head"] - 1, r["layer"] - 1, "x", color="black", ms=5, mew=1.0)
    for ax in axes[::2]:
        ax.set_ylabel("layer")
    for ax in axes[2:]:
        ax.set_xlabel("head")
    n = rows[0]["seq_len"]
    handles = [
        Line2D(
            [], [], ls="none", marker="o", mfc="none", mec="0.4", label=f"frozen: $s > s_c$ = {s_c:.2f} ($n$ = {n})"
        ),
        Line2D([], [], ls="none", marker="x", color="black", label=f"sink: [CLS] or [SEP] gets ≥ {SINK:g}"),
    ]
    fig.suptitle(f"{len(rows)} heads, $d_k$ = {rows[0]['d_k']}, $n$ = {n}: means over {rows[0]['sequences']} sequences")
    legend_below(fig, handles=handles)
    return fig


def _number(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"


def logits_figure(rows: Sequence[dict], sample: ProbeSample) -> Any:
    """The scaled logits of two contrasting heads (their histogram as a density, log scale) beside the
    variance-gamma density that iid Gaussian entries with the head's own variances would give. An empty
    bin is left blank (a log axis has no 0), so an isolated bin stands alone instead of joining a tail."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from sqrtdk.core import theory
    from sqrtdk.core.probe import EDGES
    from sqrtdk.core.rules import RULES
    from sqrtdk.plots import legend_below, new_figure

    chosen = contrasting(rows)
    colour = RULES["sqrt"].colour  # the measured logits are q.k / sqrt(d_k)
    fig = new_figure(2, 1, aspect=0.75)
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    width = EDGES[1] - EDGES[0]
    for ax, r in zip(axes, chosen):
        counts = np.asarray(sample.counts[r["layer"] - 1][r["head"] - 1], dtype=np.float64)
        density = counts[:-1] / (counts.sum() * width)
        shown = density > 0
        floor = max(density[shown].min() / 3, 1e-7) if shown.any() else 1e-7
        ax.stairs(
            np.where(shown, density, np.nan),
            EDGES,
            baseline=floor,
            fill=True,
            facecolor=colour,
            edgecolor=colour,
            alpha=0.45,
            linewidth=0.6,
            label="measured logits",
        )
        spread = r["iid_logit_std"]
        z = np.linspace(-max(6 * spread, 8), max(6 * spread, 8), 801)
        unit = math.sqrt(spread)  # entries' std whose q.k / sqrt(d_k) has this spread
        ax.plot(z, theory.score_density(z, r["d_k"], std=unit, c=1 / math.sqrt(r["d_k"])), color="black", lw=0.9)
        ax.set_yscale("log")
        if shown.any():
            ax.set_ylim(floor, density.max() * 30)  # room above the peak for the kurtosis
        lo = min(centres[shown].min(initial=0.0), -4 * spread)
        hi = max(centres[shown].max(initial=0.0), 4 * spread)
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.set_xlabel(r"logit $q\cdot k/\sqrt{d_k}$")
        ax.set_ylabel("density")
        ax.set_title(f"layer {r['layer']}, head {r['head']}: sd {_number(r['logit_std'])}, iid {_number(spread)}")
        kurtosis = r["excess_kurtosis"]  # None where the logits do not vary
        shape = f"excess kurtosis {kurtosis:.1f}" if kurtosis is not None else "logits all equal"
        if not shown.any():
            shape += f"; all beyond ±{EDGES[-1]:g}, not shown"
        ax.text(0.03, 0.96, shape, transform=ax.transAxes, va="top")
    handles = [
        Patch(
            facecolor=colour,
            edgecolor=colour,
            alpha=0.45,
            label=f"measured logits, bins of {width:g} (empty bins blank)",
        ),
        Line2D(
            [],
            [],
            color="black",
            lw=0.9,
            label="iid prediction: mean-0 Gaussian entries with the head's variances (variance-gamma)",
        ),
    ]
    legend_below(fig, handles=handles)
    return fig
