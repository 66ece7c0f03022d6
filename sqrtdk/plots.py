"""What every figure shares: a canvas that is the same from run to run, how lines are told apart, and
saving as PNG and SVG without dates or other run-dependent metadata. Each experiment draws its own
figures (sqrtdk/experiments/) with these."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqrtdk.core.rules import RULES

SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
SEQ_MARKERS = ("o", "s", "^", "D", "v", "P")


def new_figure(width: float, height: float) -> Any:
    """An empty figure (no pyplot, no GUI) whose SVG element ids are stable from run to run.

    Figures are only ever saved to files, so the user's MPLBACKEND (a notebook's, a GUI's, or a typo that
    matplotlib would refuse at import) does not apply: sqrtdk draws with Agg."""
    import os

    os.environ["MPLBACKEND"] = "agg"
    import matplotlib

    matplotlib.rcParams["svg.hashsalt"] = "sqrtdk"
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig: Any, path: Path) -> None:
    """Save to `path` (.png or .svg) with no software, date or creator metadata."""
    if path.suffix == ".png":
        fig.savefig(path, dpi=150, metadata={"Software": None})
    else:
        fig.savefig(path, metadata={"Date": None, "Creator": None})


class Style:
    """How a (rule, series) line looks: colour by rule when the rules outnumber the series (a figure about
    rules), otherwise colour by series and tell the rules apart by marker and line style."""

    def __init__(self, rules: Sequence[str], groups: Sequence[tuple[str, Any]]):
        self.by_rule = len(rules) > len(groups) or len(groups) == 1
        self.groups = len(groups)

    def colour(self, rule: str, g: int) -> str:
        return RULES[rule].colour if self.by_rule else SERIES_COLOURS[g % len(SERIES_COLOURS)]

    def marker(self, rule: str, g: int) -> str:
        return SEQ_MARKERS[g % len(SEQ_MARKERS)] if self.by_rule else RULES[rule].marker

    def line(self, rule: str) -> Any:
        return "-" if self.by_rule else RULES[rule].line


def series_of(rows: Sequence[dict], columns: Sequence[str]) -> list[tuple[str, list[dict]]]:
    """Rows grouped by their values in `columns` (in first-seen order), each group with its legend label."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in columns), []).append(row)
    return [
        (", ".join(f"{c} = {v:g}" if isinstance(v, float) else f"{c} = {v}" for c, v in zip(columns, key)), group)
        for key, group in groups.items()
    ]


def rules_in(rows: Sequence[dict]) -> list[str]:
    """The scaling rules the rows hold, in the order of core.rules.RULES."""
    return [s for s in RULES if any(r["scaling"] == s for r in rows)]
