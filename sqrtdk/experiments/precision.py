"""`sqrtdk precision`: attention scores in float16, bfloat16 and float32, and where the scale goes.

Per d_k and entry std: the share of scores that overflow the format, against the exact variance-gamma tail
probability at its threshold (65520 for float16); the share of rows that an overflow leaves without a
softmax; and over the other rows what rounding put into the weights (max_j and mean_j |p_j - p*_j|) and
into the entropy, p* being the float64 softmax of the unrounded entries. The scale 1/sqrt(d_k) goes after
the product, on the query, or split between q and k (or nowhere: the unscaled softmax). Rounding is
emulated exactly in float64 (core/precision.py), so bfloat16 needs no hardware type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.precision import PrecisionSample
    from sqrtdk.result import Result

DTYPES = ("float16", "bfloat16", "float32")  # core.precision.FORMATS, in its order
PLACEMENTS = ("none", "after", "query", "split")  # core.precision.PLACEMENTS
LEVEL = 0.95  # of the shares' intervals and the figures' error bars
RATE, RATE_TEXT = 1e-6, "1e-6"  # the overflow rate the reading asks about: one score in a million
FLOOR = 1e-12  # the overflow figure's lowest value
ERRORS = ("weight_error_max", "weight_error_mean", "entropy_error")
SHOWN = {
    "none": "unscaled",
    "after": "after q.k",
    "query": "on q",
    "split": "split",
}
PLACEMENT_MATHS = {
    "none": r"unscaled: $q\cdot k$",
    "after": r"after: $(q\cdot k)/\sqrt{d_k}$",
    "query": r"on $q$: $(q/\sqrt{d_k})\cdot k$",
    "split": r"split: $(q/d_k^{1/4})\cdot(k/d_k^{1/4})$",
}

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk precision`: the schema of its options and config keys.",
    dim=schema.dim_field((16, 32, 64, 128, 256, 512, 1024, 2048)),
    std=schema.param(
        1.0,
        "standard deviation of every entry of q and k (mean 0, Gaussian)",
        schema.Real("the std", lo=1e-3, hi=1e3),
        column="entry_std",
    ),
    seq_len=schema.seq_len_field(128, hi=4096),
    samples=schema.param(
        4096,
        "query rows per point, in whole trials of min(n, 256) queries; overflow is counted over their n scores",
        schema.Integer(1, 10**9, "the number of query rows"),
        metavar="INT",
    ),
    seed=schema.seed_field(),
    dtype=schema.param(
        DTYPES,
        "number formats compared on the same draws (rounding emulated exactly)",
        schema.Choice(DTYPES, "the dtype"),
        metavar="NAME",
        axis=False,
    ),
    placement=schema.param(
        PLACEMENTS,
        "where 1/sqrt(d_k) goes: none (unscaled), after q.k, query (q pre-scaled), split (d_k^-1/4 on q and k)",
        schema.Choice(PLACEMENTS, "the placement"),
        metavar="NAME",
        axis=False,
    ),
)


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> PrecisionSample:
    from sqrtdk.core.precision import sample_precision

    return sample_precision(
        task["dim"],
        task["seq_len"],
        task["samples"],
        task["std"],
        task["seed"],
        task["dtype"],
        task["placement"],
        map_replicates,
    )


def rows(task: Mapping[str, Any], sample: PrecisionSample) -> list[dict]:
    """One row per dtype and placement: each share with its standard error and exact interval, the
    exact overflow probability, and the rounding errors' means with their standard errors."""
    import numpy as np

    from sqrtdk.core.moments import batch_means, fraction_interval
    from sqrtdk.core.precision import FORMATS, METRICS, overflow_probability

    out = []
    for i, dtype in enumerate(sample.formats):
        for j, placement in enumerate(sample.placements):
            row: dict = {
                "d_k": sample.d_k,
                "seq_len": sample.seq_len,
                "entry_std": sample.std,
                "dtype": dtype,
                "placement": placement,
                "n_rows": sample.n_rows,
                "replicates": len(sample.replicate_means),
            }
            for m, name in enumerate(METRICS):
                values = sample.replicate_means[:, i, j, m]
                if np.isnan(values).any():
                    row[name], row[name + "_se"] = None, None
                    continue
                est = batch_means(float(values.mean()), values, LEVEL)
                row[name], row[name + "_se"] = est.value, est.se
                if name == "overflow_fraction":
                    # Two scores are dependent only when they share a query or a key, and then their
                    # covariance is at most p: Var(count) <= N p (n + m - 1), so at least N / (n + m - 1)
                    # independent scores' worth, which is what an interval with no overflow rests on.
                    count, least = sample.n_scores, sample.n_scores // (sample.seq_len + sample.queries - 1)
                elif name == "overflow_rows":
                    count, least = sample.n_rows, sample.n_trials  # rows share every key of their trial
                else:
                    continue
                row[name + "_ci_low"], row[name + "_ci_high"] = fraction_interval(
                    est.value, est.se, count, least, LEVEL
                )
                if name == "overflow_fraction":
                    row["theory_overflow_fraction"] = overflow_probability(
                        sample.d_k, sample.std, placement, FORMATS[dtype]
                    )
            out.append(row)
    return out


# ---- figures ----


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


def _stds(rows: Sequence[dict]) -> list[float]:
    return sorted({r["entry_std"] for r in rows})


def _sel(rows: Sequence[dict], **match: Any) -> list[dict]:
    return sorted((r for r in rows if all(r[k] == v for k, v in match.items())), key=lambda r: r["d_k"])


HEADROOM_MARK = 5.0  # float16's limit in standard deviations of the score, near which overflow becomes common


def overflow_figure(rows: Sequence[dict]) -> Any:
    """Two panels against d_k, one colour per entry std that overflows somewhere. (a) The share of float16
    scores that overflow when the product is formed first (unscaled, or scaled after): the exact tail
    probability as a line, measured shares as markers with their exact intervals. (b) The remedy: float16's
    largest value in standard deviations of the score it has to hold, sigma^2 sqrt(d_k) with the product
    first (falling as 1/sqrt(d_k)) and sigma^2 with q pre-scaled (flat), closed forms."""
    import math

    from matplotlib.lines import Line2D

    from sqrtdk.core.precision import FORMATS
    from sqrtdk.plots import SERIES_COLOURS, legend_below, log_axis, new_figure

    limit = FORMATS["float16"].overflow
    fig = new_figure(2, 1, aspect=0.85)
    ax, ax_room = fig.subplots(1, 2)
    d_ks = sorted({r["d_k"] for r in rows})
    stds = [std for std in _stds(rows) if any(_overflows(r) for r in _sel(rows, dtype="float16", entry_std=std))]
    quiet = [f"{std:g}" for std in _stds(rows) if std not in stds]
    handles = []
    for g, std in enumerate(stds):
        colour = SERIES_COLOURS[g % len(SERIES_COLOURS)]
        sel = _sel(rows, dtype="float16", placement="after", entry_std=std)
        shown = [r for r in sel if r["theory_overflow_fraction"] >= FLOOR]
        ax.plot([r["d_k"] for r in shown], [r["theory_overflow_fraction"] for r in shown], "-", color=colour, lw=0.9)
        hit = [r for r in sel if r["overflow_fraction"]]
        if hit:
            y = [r["overflow_fraction"] for r in hit]
            low = [r["overflow_fraction"] - r["overflow_fraction_ci_low"] for r in hit]
            high = [r["overflow_fraction_ci_high"] - r["overflow_fraction"] for r in hit]
            marker = FORMAT_LOOK[g % len(FORMAT_LOOK)][1]
        ax.errorbar([r["d_k"] for r in hit], y, yerr=[low, high], fmt=marker, color=colour, ls="none")
        ax_room.plot(d_ks, [limit / (std * std * math.sqrt(d)) for d in d_ks], "-", color=colour, marker=marker, ms=3)
        ax_room.plot(d_ks, [limit / (std * std)] * len(d_ks), "--", color=colour)
        handles.append(Line2D([], [], color=colour, marker=marker, label=rf"$\sigma$ = {std:g}"))
    handles += [
        Line2D([], [], color="0.3", ls="-", label="product first (unscaled, or scaled after)"),
        Line2D([], [], color="0.3", ls="--", label="$q$ pre-scaled by $1/\\sqrt{d_k}$"),
        Line2D([], [], color="0.3", ls="none", marker="o", label=f"markers in (a): measured, {LEVEL:.0%} interval"),
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
    has (greys, a line style and marker each). Error bars: one standard error."""
    from matplotlib.lines import Line2D

    from sqrtdk.plots import SERIES_COLOURS, legend_below, log_axis, new_figure

    std = _stds(rows)[0]
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
                yerr=[r[metric + "_se"] for r in sel],
                ls=line,
                marker=marker,
                color=colour,
                mfc="none",
            )

    for column, (metric, label) in enumerate(metrics):
        for d, dtype in enumerate(dtypes):
            draw(
                grid[0, column],
                _sel(rows, dtype=dtype, placement=base, entry_std=std),
                metric,
                SERIES_COLOURS[d],
                *FORMAT_LOOK[d % len(FORMAT_LOOK)],
            )
        for placement in placements:
            line, marker, grey = PLACEMENT_LOOK[placement]
            draw(
                grid[1, column],
                _sel(rows, dtype=coarsest, placement=placement, entry_std=std),
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
        Line2D([], [], color=SERIES_COLOURS[d], ls=FORMAT_LOOK[d][0], marker=FORMAT_LOOK[d][1], mfc="none", label=dtype)
        for d, dtype in enumerate(dtypes)
    ]
    handles += [
        Line2D(
            [],
            [],
            color=PLACEMENT_LOOK[p][2],
            ls=PLACEMENT_LOOK[p][0],
            marker=PLACEMENT_LOOK[p][1],
            mfc="none",
            label=PLACEMENT_MATHS[p],
        )
        for p in placements
    ]
    legend_below(fig, handles=handles)
    fig.suptitle(f"Rounding error in the softmax, entries N(0, {std:g}²); bars: one standard error")
    return fig


# ---- reading and table ----


def _first_at(sel: Sequence[dict], rate: float) -> dict | None:
    return next((r for r in sel if r["theory_overflow_fraction"] >= rate), None)


def _p(value: float) -> str:
    """An exact probability as the reading gives it: two digits, or "below 1e-300" where float64 has 0."""
    return "below 1e-300" if value < 1e-300 else report.num(value, 2)


def _measured(row: Mapping[str, Any]) -> str:
    from sqrtdk.output import with_se

    if not row["overflow_fraction"]:
        return f"none measured in {row['n_rows'] * row['seq_len']:,} scores"
    return f"measured {with_se(row['overflow_fraction'], row['overflow_fraction_se'])}"


def reading(result: Result) -> list[str]:
    rows = result.rows
    out = []
    for std in _stds(rows):
        after = _sel(rows, dtype="float16", placement="after", entry_std=std)
        query = _sel(rows, dtype="float16", placement="query", entry_std=std)
        if len(after) < 2:
            continue
        first = _first_at(after, RATE)
        if first is None:
            worst = max(after, key=lambda r: r["theory_overflow_fraction"])
            out.append(
                f"Entries of std {std:g}: unscaled float16 scores (or scaled after the product) never overflow "
                f"at a rate of {RATE_TEXT} up to d_k = {after[-1]['d_k']} (exact "
                + (
                    "below 1e-300 at every d_k)."
                    if worst["theory_overflow_fraction"] < 1e-300
                    else f"at most {_p(worst['theory_overflow_fraction'])}, at d_k = {worst['d_k']})."
                )
            )
            continue
        line = (
            f"Entries of std {std:g}: unscaled float16 scores (or scaled after the product) overflow at "
            f"{RATE_TEXT} or more from d_k = {first['d_k']} (exact {_p(first['theory_overflow_fraction'])}, "
            f"{_measured(first)}); at d_k = {after[-1]['d_k']}, {_p(after[-1]['theory_overflow_fraction'])}"
        )
        pre = next((r for r in query if r["d_k"] == after[-1]["d_k"]), None)
        if pre is not None:
            line += (
                f", and with q pre-scaled {_p(pre['theory_overflow_fraction'])} "
                f"({_measured(pre)}): the threshold moves sqrt(d_k) times further out"
            )
        out.append(line + ".")
    measured = [
        r
        for r in rows
        if r["overflow_fraction"] and r["overflow_fraction"] > 0 and r["overflow_fraction_ci_low"] is not None
    ]
    if measured:
        inside = sum(
            r["overflow_fraction_ci_low"] <= r["theory_overflow_fraction"] <= r["overflow_fraction_ci_high"]
            for r in measured
        )
        out.append(
            f"Where scores overflowed, {inside} of {len(measured)} measured shares hold the exact tail probability "
            f"within their {LEVEL:.0%} intervals."
        )
    others = [r["theory_overflow_fraction"] for r in rows if r["dtype"] != "float16"]
    if others and max(others) < 1e-300 and not any(r["overflow_fraction"] for r in rows if r["dtype"] != "float16"):
        out.append("bfloat16 and float32 never overflow here (exact probability below 1e-300), whatever the placement.")
    out += _errors(rows)
    return out


def _errors(rows: Sequence[dict]) -> list[str]:
    """The rounding error of the scaled weights per dtype at the smallest std, and what the placement does."""
    std = _stds(rows)[0]
    out = []
    per = {}
    for dtype in DTYPES:
        sel = [
            r for r in _sel(rows, dtype=dtype, placement="after", entry_std=std) if r["weight_error_max"] is not None
        ]
        if sel:
            per[dtype] = sel
    if per:
        parts = [f"{dtype} {report.between([r['weight_error_max'] for r in sel], '.2g')}" for dtype, sel in per.items()]
        line = (
            f"Entries of std {std:g}, scaled after the product: the largest weight error per row averages "
            + ", ".join(parts)
        )
        if "float16" in per and "bfloat16" in per:
            ratio = [
                b["weight_error_max"] / a["weight_error_max"]
                for a, b in zip(per["float16"], per["bfloat16"])
                if a["d_k"] == b["d_k"] and a["weight_error_max"] > 0
            ]
            if ratio:
                line += (
                    f"; bfloat16's is {report.between(ratio, '.2g')} times float16's (unit roundoff 2^-8 "
                    "against 2^-11: bfloat16 buys its range with 3 fewer bits)"
                )
        out.append(line + ".")
    none = [
        r for r in _sel(rows, dtype="float16", placement="none", entry_std=std) if r["weight_error_max"] is not None
    ]
    scaled = {r["d_k"]: r["weight_error_max"] for r in per.get("float16", [])}
    ratio = [r["weight_error_max"] / scaled[r["d_k"]] for r in none if scaled.get(r["d_k"])]
    if len(none) >= 2 and ratio:
        out.append(
            f"Unscaled, float16 weights carry {report.between(ratio, '.2g')} times the scaled error, "
            f"{report.num(none[0]['weight_error_max'], 2)} at d_k = {none[0]['d_k']} and "
            f"{report.num(none[-1]['weight_error_max'], 2)} at {none[-1]['d_k']}: logits of spread sqrt(d_k) carry "
            "larger rounding errors, though a saturated row has less weight to move."
        )
    by = {(r["dtype"], r["placement"], r["d_k"]): r for r in rows if r["entry_std"] == std}
    ratios = {
        d: by[("bfloat16", "split", d)]["entropy_error"] / by[("bfloat16", "after", d)]["entropy_error"]
        for d in sorted({d for (_, _, d) in by})
        if all(by.get(("bfloat16", p, d), {}).get("entropy_error") for p in ("after", "query", "split"))
    }
    if ratios:
        d = max(ratios, key=lambda d: ratios[d])
        values = {p: by[("bfloat16", p, d)]["entropy_error"] for p in ("after", "query", "split")}
        out.append(
            "Where sqrt(d_k) is a power of two (d_k = 16, 64, 256, ...) the scale is exact, and scaling after "
            "the product or on q gives the same logits; a split scale is exact where d_k^(1/4) is one too (16, "
            "256, 4096). Elsewhere the rounded scale multiplies every logit of a row by the same wrong factor, a "
            f"change of temperature, and a split rounds it twice: at d_k = {d}, bfloat16's entropy error is "
            f"{values['after']:.2g} nats scaled after the product, {values['query']:.2g} on q and "
            f"{values['split']:.2g} split."
        )
    return out


def _exact(value: float) -> str:
    return "<1e-300" if value < 1e-300 else f"{value:.2g}"


def table(result: Result) -> Table:
    from sqrtdk.output import pm_share

    rows = result.rows

    def error(r: dict, key: str) -> str:
        return "" if r[key] is None else f"{r[key]:.3g}"

    return Table(
        "Scores in low precision: overflow and rounding error",
        (
            Column("d_k", tuple(str(r["d_k"]) for r in rows), key=True),
            Column("dtype", tuple(r["dtype"] for r in rows), key=True),
            Column("scale", tuple(SHOWN[r["placement"]] for r in rows), key=True),
            Column("overflow", tuple(pm_share(r, "overflow_fraction") for r in rows)),
            Column("exact", tuple(_exact(r["theory_overflow_fraction"]) for r in rows), joins=True),
            Column("max|Δp|", tuple(error(r, "weight_error_max") for r in rows)),
            Column("mean|Δp|", tuple(error(r, "weight_error_mean") for r in rows), wide=True),
            Column("|ΔH|", tuple(error(r, "entropy_error") for r in rows)),
        ),
        [
            "overflow: share of scores that are ±inf in the format (0: followed by the upper end of its exact "
            f"{LEVEL:.0%} interval); exact: the variance-gamma tail probability there. max|Δp|, |ΔH|: means over "
            "the rows without an overflow (empty: every row had one)."
        ],
    )


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Float64 queries, keys and their rounded copies per trial, and the products (sqrtdk/resources.py)."""
    from sqrtdk.core.rows import QUERIES, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, LOGIT_NS, TASK_SECONDS

    d, n = task["dim"], task["seq_len"]
    m = min(n, QUERIES)
    replicates, per_replicate = geometry(task["samples"], m)
    formats, placements = len(task["dtype"]), len(task["placement"])
    held = 8 * ((m + n) * d * 6 + m * n * (8 + 2 * placements))
    per_trial = (
        (m + n) * d * DRAW_NS
        + formats * (3 * m + 2 * n) * d * 12 * LOGIT_NS
        + (1 + 3 * formats) * 2 * m * n * d * 2 * FLOP_NS
        + (2 + formats * placements) * m * n * 30 * LOGIT_NS
    )
    return held * min(threads, replicates), replicates * per_replicate * per_trial * 1e-9 + TASK_SECONDS


EXPERIMENT = Experiment(
    "precision",
    "Attention scores in float16, bfloat16 and float32: overflow and rounding error, per scale placement.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
)
