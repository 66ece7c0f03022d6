"""`sqrtdk toy`: Scalable-Softmax's toy, n logits all `low` but one `high`: the largest weight per rule.

Plain softmax spreads the weight over n keys as n grows; Scalable-Softmax multiplies the logits by s ln n
and keeps it on the one that stands out (Nakanishi 2025, "Scalable-Softmax Is Superior for Attention",
arXiv 2501.19399, whose toy values for high = 3, low = -2, s = 0.43 are core.theory.PUBLISHED_SSMAX). The
weight is computed by core/softmax.py and compared with its closed form 1 / (1 + (n - 1) e^(-c (high - low))).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SSMAX_S
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.result import Result

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk toy`: the schema of its options and config keys.",
    seq_len=schema.seq_len_field((10, 100, 1000, 10000), hi=10**7),
    high=schema.param(3.0, "the one logit that stands out", schema.Real("high", lo=-1e3, hi=1e3)),
    low=schema.param(-2.0, "every other logit", schema.Real("low", lo=-1e3, hi=1e3)),
    scaling=schema.param(
        ("none", "logn"),
        "none: plain softmax; logn: logits times s ln n",
        schema.Choice(("none", "logn"), "the scaling"),
        metavar="RULE",
        axis=False,
    ),
    ssmax_s=schema.param(SSMAX_S, "s of the logn rule", schema.Real("s", lo=0.0, lo_open=True, hi=1e3)),
)


def _c(task: Mapping[str, Any], rule: str) -> float:
    """The toy's logit factor: 1 for plain softmax, s ln n for Scalable-Softmax (no d_k to divide by)."""
    return task["ssmax_s"] * math.log(task["seq_len"]) if rule == "logn" else 1.0


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> dict[str, float]:
    """The largest weight of softmax over n logits (high, low, ..., low) times each rule's c, computed."""
    import numpy as np

    from sqrtdk.core.softmax import softmax

    n = task["seq_len"]
    logits = np.full(n, task["low"])
    logits[0] = task["high"]
    out = {}
    for rule in task["scaling"]:
        out[rule] = float(softmax(_c(task, rule) * logits[None])[0][0, 0])
    return out


def rows(task: Mapping[str, Any], weights: Mapping[str, float]) -> list[dict]:
    from sqrtdk.core import theory

    n, rows = task["seq_len"], []
    standard = task["high"] == 3.0 and task["low"] == -2.0 and task["ssmax_s"] == SSMAX_S
    for rule, weight in weights.items():
        c = _c(task, rule)
        published = theory.PUBLISHED_SSMAX[rule].get(n) if standard else None
        rows.append(
            {
                "seq_len": n,
                "scaling": rule,
                "max_weight": weight,
                "theory_max_weight": theory.toy_max_weight(n, task["high"], task["low"], c),
                "published_max_weight": published,
            }
        )
    return rows


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    """The figure of a sweep over n at one (high, low, s): its rows carry n and the rule only, so runs
    that also vary the logits or s are left to the table."""
    logits = {(t["high"], t["low"], t["ssmax_s"]) for t in result.tasks}
    if len(result.tasks) < 2 or len(logits) > 1:
        return {}
    ((high, low, s),) = logits
    return {"ssmax_toy": lambda: toy_figure(result.rows, high, low, s)}


def toy_figure(rows: Sequence[dict], high: float = 3.0, low: float = -2.0, s: float = SSMAX_S) -> Any:
    """Largest softmax weight against n for the Scalable-Softmax toy: computed, closed form, published.
    The computed points lie on the closed form (they agree to 1e-12), which the legend says."""
    from sqrtdk.plots import legend_below, new_figure

    fig = new_figure(1, 1, aspect=0.8)
    ax = fig.subplots()
    for scaling in ("none", "logn"):
        sel = sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r["seq_len"])
        if not sel:
            continue
        n = [r["seq_len"] for r in sel]
        colour = RULES[scaling].colour
        name = "softmax" if scaling == "none" else r"SSMax ($s\ln n$)"
        look = RULES[scaling]
        ax.plot(
            n, [r["theory_max_weight"] for r in sel], color=colour, ls=look.line, lw=1.0, label=f"{name}: closed form"
        )
        ax.plot(n, [r["max_weight"] for r in sel], look.marker, color=colour, ms=4, label=f"{name}: computed")
        published = [(r["seq_len"], r["published_max_weight"]) for r in sel if r["published_max_weight"] is not None]
        if published:
            ax.plot(
                *zip(*published),
                "x",
                color="black",
                ms=7,
                label="published [Nakanishi 2025]" if scaling == "none" else None,
            )
    ax.set_xscale("log")
    ax.set_xlabel(f"$n$ logits: one {high:g}, the rest {low:g}; $s$ = {s:g}".replace("-", "\u2212"))
    ax.set_ylabel("largest weight")
    ax.set_ylim(-0.02, 1.05)
    # SSMax's largest weight is 1 / (1 + (n - 1) n^(-s (high - low))): held as n grows when s (high - low) > 1
    held = "holds it" if s * (high - low) > 1 else "fades too"
    ax.set_title(f"softmax fades with $n$, SSMax {held}")
    legend_below(fig, [ax])
    return fig


def reading(result: Result) -> list[str]:
    out = []
    for rule, name in (("none", "Softmax"), ("logn", "Scalable-Softmax")):
        sel = sorted((r for r in result.rows if r["scaling"] == rule), key=lambda r: r["seq_len"])
        if len(sel) < 2:
            continue
        out.append(
            f"{name}: the largest weight {report.trend(sel[0]['max_weight'], sel[-1]['max_weight'], '.4f')} from "
            f"n = {sel[0]['seq_len']:,} to {sel[-1]['seq_len']:,}."
        )
    published = [r for r in result.rows if r["published_max_weight"] is not None]
    if published:
        worst = max(abs(r["max_weight"] - r["published_max_weight"]) for r in published)
        out.append(
            f"Against the {len(published)} published values (4 decimals) the computed weights differ by at "
            f"most {worst:.1g}; the closed form 1 / (1 + (n - 1) e^(-c (high - low))) agrees with the "
            f"computation to {max(abs(r['max_weight'] - r['theory_max_weight']) for r in result.rows):.0e}."
        )
    return out


def table(result: Result) -> Table:
    rows = result.rows
    return Table(
        "Largest softmax weight: one logit high, the rest low",
        (
            Column("n", tuple(str(r["seq_len"]) for r in rows), key=True),
            Column("scaling", tuple(r["scaling"] for r in rows), key=True),
            Column("largest weight", tuple(f"{r['max_weight']:.6g}" for r in rows)),
            Column("closed form", tuple(f"{r['theory_max_weight']:.6g}" for r in rows), joins=True),
            Column(
                "published",
                tuple("" if r["published_max_weight"] is None else f"{r['published_max_weight']:.4f}" for r in rows),
                joins=True,
            ),
        ),
        ["An empty published cell: the paper's table has no value there."]
        if any(r["published_max_weight"] is None for r in rows)
        else [],
    )


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """n logits per rule, a few float64 arrays of them (sqrtdk/resources.py)."""
    from sqrtdk.resources import TASK_SECONDS

    n = task["seq_len"]
    return 32.0 * n, n * len(task["scaling"]) * 20e-9 + TASK_SECONDS


EXPERIMENT = Experiment(
    "toy",
    "Scalable-Softmax's toy: n logits all low but one high, the largest weight per rule.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
)
