"""The figures of `sqrtdk precision`: float16 overflow against d_k with its remedy (the scale applied
before the product), and the rounding error by format and by where the scale goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk.experiments.precision.measure import (
    DTYPES,
    FLOOR,
    PLACEMENT_MATHS,
    PLACEMENTS,
    RATE,
    SHOWN,
    entry_stds,
    select,
)

if TYPE_CHECKING:
    from sqrtdk.result import Result


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    if len({r["d_k"] for r in result.rows}) < 2:
        return {}
    out = {}
    if any(_overflows(r) for r in result.rows if r["dtype"] == "float16"):
        out["precision_overflow"] = lambda: overflow_figure(result.rows)
    if any(r["weight_error_max"] is not None for r in result.rows):
        out["precision_error"] = lambda: error_figure(result.rows)
    return out


def _overflows(row: dict) -> bool:
    """Whether the overflow figure has something to draw for this row: an exact probability above its
    floor or a measured overflow (where nothing overflows anywhere, as at std 1, there is no figure: the
    table and the report say so)."""
    return row["theory_overflow_fraction"] >= FLOOR or bool(row["overflow_fraction"])


HEADROOM_MARK = 5.0  # float16's limit in standard deviations of the score, near which overflow becomes common


def overflow_figure(rows: Sequence[dict]) -> Any:
    """Two panels against d_k, one colour per entry std that overflows somewhere. (a) The share of float16
    scores that overflow when the product is formed first (unscaled, or scaled after): the exact tail
    probability as a line, measured shares as markers with their exact intervals. (b) The remedy: float16's
    largest value in standard deviations of the score it has to hold, sigma^2 sqrt(d_k) with the product
    first (falling as 1/sqrt(d_k)) and sigma^2 with q pre-scaled (flat), closed forms: lines only, each
    labelled with its sigma."""
    import math

    from matplotlib.lines import Line2D

    from sqrtdk.core.precision import FORMATS
    from sqrtdk.plots import SERIES_COLOURS, legend_below, log_axis, new_figure

    limit = FORMATS["float16"].overflow
    fig = new_figure(2, 1, aspect=0.85)
    ax, ax_room = fig.subplots(1, 2)
    d_ks = sorted({r["d_k"] for r in rows})
    stds = [std for std in entry_stds(rows) if any(_overflows(r) for r in select(rows, dtype="float16", entry_std=std))]
    quiet = [f"{std:g}" for std in entry_stds(rows) if std not in stds]
    handles = []
    for g, std in enumerate(stds):
        colour = SERIES_COLOURS[g % len(SERIES_COLOURS)]
        sel = select(rows, dtype="float16", placement="after", entry_std=std)
        shown = [r for r in sel if r["theory_overflow_fraction"] >= FLOOR]
        ax.plot([r["d_k"] for r in shown], [r["theory_overflow_fraction"] for r in shown], "-", color=colour, lw=0.9)
        hit = [r for r in sel if r["overflow_fraction"]]
        if hit:
            y = [r["overflow_fraction"] for r in hit]
            low = [r["overflow_fraction"] - r["overflow_fraction_ci_low"] for r in hit]
            high = [r["overflow_fraction_ci_high"] - r["overflow_fraction"] for r in hit]
            marker = FORMAT_LOOK[g % len(FORMAT_LOOK)][1]
        ax.errorbar([r["d_k"] for r in hit], y, yerr=[low, high], fmt=marker, color=colour, ls="none")
        # (b) is closed forms only: thin lines, no markers, each labelled at its start (markers mean measured)
        ax_room.plot(d_ks, [limit / (std * std * math.sqrt(d)) for d in d_ks], "-", color=colour, lw=1.0)
        ax_room.plot(d_ks, [limit / (std * std)] * len(d_ks), "--", color=colour, lw=1.0)
        ax_room.annotate(
            rf"$\sigma$ = {std:g}",
            (d_ks[0], limit / (std * std * math.sqrt(d_ks[0]))),
            xytext=(3, 3),
            textcoords="offset points",
            color=colour,
            fontsize="small",
        )
        handles.append(Line2D([], [], color=colour, marker=marker, label=rf"$\sigma$ = {std:g}"))
    handles += [
        Line2D([], [], color="0.3", ls="-", label="product first (unscaled, or scaled after)"),
        Line2D([], [], color="0.3", ls="--", label="$q$ pre-scaled by $1/\\sqrt{d_k}$"),
        Line2D([], [], color="0.3", ls="none", marker="o", label="markers in (a): measured"),
    ]
    ax.axhline(RATE, color="0.5", ls=":", lw=1)
    ax.text(d_ks[0], RATE * 2, "one in a million", color="0.35", fontsize="small", va="bottom")
    if quiet:
        ax.text(
            0.97,
            0.03,
            f"$\\sigma$ = {', '.join(quiet)}: below $10^{{-12}}$",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="small",
            color="0.35",
        )
    ax.set_ylim(FLOOR / 3, 2.0)
    ax.set_ylabel("share of scores that overflow")
    ax.set_title("(a) unscaled float16 scores overflow", loc="left")
    ax_room.axhline(HEADROOM_MARK, color="0.5", ls=":", lw=1)
    ax_room.text(d_ks[0], HEADROOM_MARK * 1.15, f"{HEADROOM_MARK:g} sd", color="0.35", fontsize="small", va="bottom")
    ax_room.set_ylabel("float16's limit / the score's sd")
    ax_room.set_title("(b) pre-scaling $q$ keeps them in range", loc="left")
    for a in (ax, ax_room):
        a.set_xscale("log", base=2)
        a.set_xlim(d_ks[0] / 1.3, d_ks[-1] * 1.3)
        log_axis(a, "x", base=2)
        log_axis(a)
        a.set_xlabel("$d_k$")
    legend_below(fig, handles=handles)
    return fig


FORMAT_LOOK = (("-", "o"), ("--", "s"), (":", "^"))  # line and marker of each format, as DTYPES
PLACEMENT_LOOK = {
    "none": (":", "x", "0.55"),
    "after": ("-", "o", "0.0"),
    "query": ("--", "s", "0.3"),
    "split": ("-.", "^", "0.45"),
}


def error_figure(rows: Sequence[dict]) -> Any:
    """Rounding errors against d_k at the smallest entry std (the textbook case; the table has the
    others), the mean over rows of max_j |p_j - p*_j| and of |H - H*|. Top row: by format, the scale after
    the product (a colour each); bottom row: by placement of the scale, in the coarsest format the run
    has (greys, a line style and marker each). Error bars at the figures' level (plots.LEVEL)."""
    from matplotlib.lines import Line2D

    from sqrtdk.plots import SERIES_COLOURS, legend_below, log_axis, new_figure, t_half

    std = entry_stds(rows)[0]
    placements = [p for p in PLACEMENTS if any(r["placement"] == p for r in rows)]
    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in rows)]
    base = "after" if "after" in placements else placements[0]
    coarsest = "bfloat16" if "bfloat16" in dtypes else dtypes[0]
    fig = new_figure(2, 2, aspect=0.62)
    grid = fig.subplots(2, 2, sharex=True, sharey="row")
    metrics = (
        ("weight_error_max", r"mean of $\mathrm{max}_j\,|p_j - p^*_j|$"),
        ("entropy_error", r"mean of $|H - H^*|$"),
    )

    def draw(ax: Any, sel: list[dict], metric: str, colour: str, line: str, marker: str) -> None:
        sel = [r for r in sel if r[metric]]
        if sel:
            ax.errorbar(
                [r["d_k"] for r in sel],
                [r[metric] for r in sel],
                yerr=[t_half(r[metric + "_se"], r["replicates"] - 1) for r in sel],
                ls=line,
                marker=marker,
                color=colour,
            )

    for column, (metric, label) in enumerate(metrics):
        for d, dtype in enumerate(dtypes):
            draw(
                grid[0, column],
                select(rows, dtype=dtype, placement=base, entry_std=std),
                metric,
                SERIES_COLOURS[d],
                *FORMAT_LOOK[d % len(FORMAT_LOOK)],
            )
        for placement in placements:
            line, marker, grey = PLACEMENT_LOOK[placement]
            draw(
                grid[1, column],
                select(rows, dtype=coarsest, placement=placement, entry_std=std),
                metric,
                grey,
                line,
                marker,
            )
        grid[1, column].set_xlabel("$d_k$")
        grid[0, column].set_title(label + (" (nats)" if metric == "entropy_error" else ""))
    for ax in grid.ravel():
        ax.set_xscale("log", base=2)
        log_axis(ax, "x", base=2)
        log_axis(ax)
    grid[0, 0].set_ylabel(f"by format, {SHOWN[base]}")
    grid[1, 0].set_ylabel(f"by placement, {coarsest}")
    handles = [
        Line2D([], [], color=SERIES_COLOURS[d], ls=FORMAT_LOOK[d][0], marker=FORMAT_LOOK[d][1], label=dtype)
        for d, dtype in enumerate(dtypes)
    ]
    handles += [
        Line2D(
            [],
            [],
            color=PLACEMENT_LOOK[p][2],
            ls=PLACEMENT_LOOK[p][0],
            marker=PLACEMENT_LOOK[p][1],
            label=PLACEMENT_MATHS[p],
        )
        for p in placements
    ]
    legend_below(fig, handles=handles)
    fig.suptitle(f"Rounding error in the softmax, entries N(0, {std:g}²)")
    return fig
