"""What saturation and gradient say: their reading in the report, built from the rows, and the terminal
table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqrtdk import report
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.experiments._attention.measure import GRADIENT, LEVEL, METRICS, SATURATION
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.result import Result


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


# ---- the terminal table ----


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
