"""How the gradient to the query spreads over rows: the per-row ||dL/dq_i|| counts of the gradient kernel.

The mean of ||dL/dq_i|| grows under unscaled attention while the share of rows whose Jacobian vanishes
grows too; the counts reconcile the two. Frozen rows pile up far below the scaled rows, the rest sit far
above them. core/rows.py counts each rule's rows in bins of log10 ||dL/dq_i|| (GRAD_Q_BINS); this module
keeps those counts beside the tables (curves.json) and draws them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk.core.rules import RULES

if TYPE_CHECKING:
    from sqrtdk.core.rows import RowSample
    from sqrtdk.result import Result

FIGURE = "gradient_rows"
N = 128  # the sequence length drawn when the run sweeps d_k, as the story figure's


def curves(sample: RowSample) -> dict:
    """A task's per-row counts with what they were counted at (JSON-ready), for the figure."""
    counts = sample.grad_q_counts
    return {
        "d_k": sample.d_k,
        "seq_len": sample.seq_len,
        "scalings": list(sample.scalings),
        "grad_q_counts": [] if counts is None else counts.tolist(),
    }


def with_curves(sample: RowSample | None, kept: Mapping[str, Any]) -> Any:
    """The sample with its committed counts; for a committed result, which has no sample, the kept
    counts alone (a mapping like `curves` returns)."""
    import numpy as np

    counts = np.asarray(kept["grad_q_counts"], dtype=float) if kept.get("grad_q_counts") else None
    return dict(kept) if sample is None else dataclasses.replace(sample, grad_q_counts=counts)


def counted(output: Any) -> dict | None:
    """A task's output (a sample, or a committed result's kept counts) as `curves` returns it, or None
    where it has no counts."""
    if output is None:
        return None
    found = dict(output) if isinstance(output, Mapping) else curves(output)
    return found if len(found["grad_q_counts"]) else None


def chosen(result: Result) -> list[dict]:
    """The counts the figure draws: the two ends of the axis the run sweeps further (d_k, at the n
    nearest N; or n, at the largest d_k), the other parameters at their first task's values."""
    found = [counted(o) for o in result.outputs]
    if not found or any(f is None for f in found):
        return []
    keep = [f for i in result.like_first(("dim", "seq_len")) if (f := found[i]) is not None]
    d_ks, ns = sorted({f["d_k"] for f in keep}), sorted({f["seq_len"] for f in keep})
    if len(d_ks) >= len(ns) and len(d_ks) > 1:
        n = min(ns, key=lambda v: (abs(v - N), v))
        along = sorted((f for f in keep if f["seq_len"] == n), key=lambda f: f["d_k"])
    elif len(ns) > 1:
        along = sorted((f for f in keep if f["d_k"] == d_ks[-1]), key=lambda f: f["seq_len"])
    else:
        return keep[:1]
    return [along[0], along[-1]]


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    picked = chosen(result)
    return {FIGURE: lambda: figure(result.rows, picked)} if picked else {}


def figure(rows: Sequence[dict], picked: Sequence[dict]) -> Any:
    """A panel per chosen task: for each rule, the share of rows whose ||dL/dq_i|| is at most x, against x
    (log axis; read at the bins' upper edges, so the curve starts at the share below the lowest bin,
    exact zeros of one-hot rows among them), with the mean over rows (the rows' grad_q_mean) as a
    triangle on the top edge."""
    import numpy as np
    from matplotlib.lines import Line2D

    from sqrtdk.core.rows import GRAD_Q_BINS
    from sqrtdk.plots import legend_below, log_axis, new_figure

    low, high, width = GRAD_Q_BINS
    edges = 10.0 ** np.arange(low, high + width / 2, width)
    fig = new_figure(len(picked), 1, aspect=0.8)
    axes = np.atleast_1d(fig.subplots(1, len(picked), sharey=True))
    scalings = picked[0]["scalings"]
    for ax, task in zip(axes, picked):
        counts = np.asarray(task["grad_q_counts"], dtype=float)
        for r, rule in enumerate(scalings):
            look = RULES[rule]
            below = np.cumsum(counts[r]) / counts[r].sum()  # at 10^low, then at each bin's upper edge
            ax.step(edges, below[:-1], where="post", color=look.colour, ls=look.line, lw=1.4)
            mean = next(
                x["grad_q_mean"]
                for x in rows
                if x["scaling"] == rule and x["d_k"] == task["d_k"] and x["seq_len"] == task["seq_len"]
            )
            ax.plot([mean], [1.0], marker="v", color=look.colour, ms=7, clip_on=False, zorder=4)  # the mean
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(-0.02, 1.02)
        log_axis(ax, "x")
        ax.set_xlabel(r"$x$ = $\|\partial L/\partial q_i\|$ of one row")
        ax.set_title(f"$d_k$ = {task['d_k']}, $n$ = {task['seq_len']}")
    axes[0].set_ylabel(r"share of rows at most $x$")
    handles = [Line2D([], [], color=RULES[s].colour, ls=RULES[s].line, label=RULES[s].label) for s in scalings]
    handles.append(Line2D([], [], color="0.3", ls="none", marker="v", label="the mean over rows (in its colour)"))
    legend_below(fig, handles=handles)
    fig.suptitle("How the gradient to the query spreads over rows")
    return fig
