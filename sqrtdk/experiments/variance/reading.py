"""What `sqrtdk variance` says: its reading in the report, built from the rows, and its terminal table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.experiments.variance.measure import LEVEL
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.result import Result


def _covered(rows: Sequence[dict]) -> tuple[int, int, list[dict]]:
    """(intervals containing the theory, intervals with a theory, the rows that miss)."""
    judged = [r for r in rows if r["theory_variance"] is not None and r["variance_ci_low"] is not None]
    missed = [r for r in judged if not r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]]
    return len(judged) - len(missed), len(judged), missed


def _coverage_sentence(rows: Sequence[dict]) -> list[str]:
    hit, judged, missed = _covered(rows)
    if not judged:
        return []
    where = (
        "; not at " + ", ".join(f"d_k = {r['d_k']} ({RULES[r['scaling']].words})" for r in missed[:6]) if missed else ""
    )
    bare = sum(r["theory_variance"] is not None and r["variance_ci_low"] is None for r in rows)
    without = f" ({bare} more rows have no interval: entries too heavy-tailed for one to cover)" if bare else ""
    return [
        f"The 99.9% interval (jackknife over independent replicates) contains the theory in {hit} of {judged} "
        f"rows{where}{without}."
    ]


def reading(result: Result) -> list[str]:
    groups = report.groups(result, "dim")
    single_d = len({r["d_k"] for r in result.rows}) == 1
    if single_d and len(groups) == 1 and {r["scaling"] for r in groups[0][1]} <= {"none", "sqrt"}:
        prefix, rows = groups[0]
        asked = result.params.samples[0] if len(result.params.samples) == 1 else None
        return _read_one_variance(prefix, rows, asked) + _coverage_sentence(rows)
    if single_d:
        from sqrtdk.plots import series_of

        same = _same_settings(series_of(result.rows, result.series_columns("dim")))
        agree = [f"{same[0].upper()}{same[1:]}: their weights have the same variance."] if same else []
        return [_setting_table(groups)] + _coverage_sentence(result.rows) + agree
    if len(groups) > 1:
        return [_variance_table(groups)] + _coverage_sentence(result.rows)
    return _read_variance_vs_dk("", groups[0][1], detailed=True) + _coverage_sentence(result.rows)


def _read_variance_vs_dk(prefix: str, rows: Sequence[dict], detailed: bool) -> list[str]:
    out = []
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if none:
        a, b = none[0], none[-1]
        out.append(
            f"{prefix}Unscaled, the variance of q.k {report.trend(a['variance'], b['variance'], '.4g', (a['variance_se'], b['variance_se']))} from "
            f"d_k = {a['d_k']} to {b['d_k']} (theory {_num(a['theory_variance'])} and "
            f"{_num(b['theory_variance'])}): a factor {report.num(b['variance'] / a['variance'])} for a factor "
            f"{b['d_k'] / a['d_k']:g} in d_k."
        )
        if a["theory_mean"] and b["theory_mean"]:
            sd_factor = math.sqrt(b["variance"] / a["variance"])
            out.append(
                f"Its mean {report.trend(a['mean'], b['mean'], '.4g', (a['mean_se'], b['mean_se']))} (theory {report.num(a['theory_mean'])} and "
                f"{report.num(b['theory_mean'])}), a factor {report.num(b['mean'] / a['mean'])}, while its standard deviation "
                f"grows by a factor {report.num(sd_factor, 3)}: the mean outgrows the spread, "
                f"mean / sd {report.trend(a['mean'] / math.sqrt(a['variance']), b['mean'] / math.sqrt(b['variance']), '.3g')}."
            )
    for rule in ("sqrt", "linear", "qknorm"):
        sel = report.by_rule(rows, rule)
        if not sel:
            continue
        if rule == "linear":
            line = (
                f"{RULES[rule].words}: the variance {report.trend(sel[0]['variance'], sel[-1]['variance'], '.4g', (sel[0]['variance_se'], sel[-1]['variance_se']))} "
                f"from d_k = {sel[0]['d_k']} to {sel[-1]['d_k']} (theory {_num(sel[0]['theory_variance'])} and "
                f"{_num(sel[-1]['theory_variance'])})"
            )
        else:
            theories = {round(r["theory_variance"], 12) for r in sel if r["theory_variance"] is not None}
            told = f" (theory {_num(sel[0]['theory_variance'])})" if len(theories) == 1 else ""
            line = (
                f"{RULES[rule].words}: the variance stays {report.between([r['variance'] for r in sel], '.4g')} over "
                f"d_k = {sel[0]['d_k']} to {sel[-1]['d_k']}{told}"
            )
        if sel[0]["theory_mean"] and rule != "qknorm":
            line += f"; the mean {report.trend(sel[0]['mean'], sel[-1]['mean'], '.4g', (sel[0]['mean_se'], sel[-1]['mean_se']))}"
        out.append(line + ".")
    if detailed and scaled:
        ka, kb = scaled[0], scaled[-1]
        if (
            ka["excess_kurtosis"] is not None
            and kb["excess_kurtosis_se"] is not None
            and ka["excess_kurtosis_se"] is not None
        ):
            out.append(
                f"The excess kurtosis {report.trend(ka['excess_kurtosis'], kb['excess_kurtosis'], '.3g', (ka['excess_kurtosis_se'], kb['excess_kurtosis_se']))} "
                f"(± {ka['excess_kurtosis_se']:.2g} and ± {kb['excess_kurtosis_se']:.2g}; theory "
                f"{_num(ka['theory_excess_kurtosis'], '.3g')} and {_num(kb['theory_excess_kurtosis'], '.3g')}): "
                + _tails(ka)
                + " at d_k = "
                + str(ka["d_k"])
                + ", "
                + _tails(kb)
                + " at d_k = "
                + str(kb["d_k"])
                + "."
            )
    elif scaled:
        kurt = [r for r in scaled if r["excess_kurtosis_se"] is not None and r["theory_excess_kurtosis"] is not None]
        if kurt:
            near = [
                r
                for r in kurt
                if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]
            ]
            out.append(
                f"d_k times the excess kurtosis is {report.num(kurt[0]['d_k'] * kurt[0]['theory_excess_kurtosis'], 3)} in "
                f"theory at every d_k; the measurement is within 3 standard errors of it at {len(near)} of "
                f"{len(kurt)} values of d_k."
            )
        elif any(r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None for r in scaled):
            bare = [r for r in scaled if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            out.append(
                f"d_k times the excess kurtosis is {report.num(bare[0]['d_k'] * bare[0]['theory_excess_kurtosis'], 3)} in "
                f"theory at every d_k and measures {report.between([r['d_k'] * r['excess_kurtosis'] for r in bare], '.3g')}; "
                "no standard error is given for such heavy tails (its interval would cover too rarely)."
            )
        elif not any(r["excess_kurtosis"] is not None for r in scaled):
            out.append("The excess kurtosis does not exist for these entries (fourth moment infinite): left empty.")
    return out


def _num(value: float | None, spec: str = ".4g") -> str:
    return "none in closed form" if value is None else report.num(value, int(spec.strip(".g")))


def _tails(row: dict) -> str:
    """What the measured excess kurtosis says, at three standard errors."""
    k, se = row["excess_kurtosis"], row["excess_kurtosis_se"]
    if k - 3 * se > 0:
        return "heavier tails than a normal curve"
    if k + 3 * se < 0:
        return "lighter tails than a normal curve"
    return "within 3 standard errors of a normal curve's 0"


def _read_one_variance(prefix: str, rows: Sequence[dict], asked: int | None = None) -> list[str]:
    """One d_k, the unscaled and/or the scaled rule: each variance with its interval and theory (and the
    number of scores `asked` for, where the sampler rounded it up to whole blocks)."""
    none = next((r for r in rows if r["scaling"] == "none"), None)
    scaled = next((r for r in rows if r["scaling"] == "sqrt"), None)

    def told(row: dict, spec: str, interval: str) -> str:
        if row["variance_ci_low"] is None:
            where = "no interval: the entries' fourth moment is infinite"
        else:
            where = f"{interval} {row['variance_ci_low']:{spec}} to {row['variance_ci_high']:{spec}}"
        return f"{row['variance']:{spec}} ({where}; theory {_num(row['theory_variance'])})"

    first = none or scaled
    assert first is not None
    parts = []
    if none is not None:
        parts.append(f"the unscaled variance is {told(none, '.4g', '99.9% interval')}")
    if scaled is not None:
        parts.append(
            f"the scaled one {told(scaled, '.4f', 'interval')}"
            if none is not None
            else f"the scaled variance is {told(scaled, '.4f', '99.9% interval')}"
        )
    count = f"{first['n_scores']:,} scores"
    if asked is not None and asked != first["n_scores"]:
        count += f" ({asked:,} asked for, rounded up to whole sampling blocks)"
    out = [f"{prefix}At d_k = {first['d_k']}, {count}: " + ", ".join(parts) + "."]
    if scaled is not None and scaled["excess_kurtosis_se"] is not None:
        out.append(
            f"The excess kurtosis is {report.num(scaled['excess_kurtosis'], 3)} ± {scaled['excess_kurtosis_se']:.2g} "
            f"(theory {_num(scaled['theory_excess_kurtosis'], '.3g')}; a normal curve has 0): {_tails(scaled)}."
        )
    return out


def _variance_table(groups: Sequence[tuple[str, list[dict]]]) -> str:
    """Several settings swept over d_k: per setting and rule, the variance at the ends of the sweep
    against its theory, and d_k times the excess kurtosis against its constant theory."""
    all_rows = [r for _, rows in groups for r in rows]
    d_ks = sorted({r["d_k"] for r in all_rows})
    with_mean = any(r["theory_mean"] for r in all_rows)
    head = ["setting", "rule", f"variance, d_k = {d_ks[0]} → {d_ks[-1]}", "theory"]
    head += ["mean", "theory"] if with_mean else []
    head += ["d_k times excess kurtosis: theory", "within 3 SE"]
    cells = []
    for prefix, rows in groups:
        setting = prefix.removeprefix("With ").removesuffix(": ")
        for rule in [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]:
            sel = report.by_rule(rows, rule)
            a, b = sel[0], sel[-1]
            told = (
                f"{report.num(a['theory_variance'])} → {report.num(b['theory_variance'])}"
                if a["theory_variance"] is not None and b["theory_variance"] is not None
                else ""
            )
            row = [
                setting,
                RULES[rule].words,
                report.arrow(a["variance"], b["variance"], ".4g", (a["variance_se"], b["variance_se"])),
                told,
            ]
            if with_mean:
                row += [
                    report.arrow(a["mean"], b["mean"], ".4g", (a["mean_se"], b["mean_se"])),
                    f"{report.num(a['theory_mean'])} → {report.num(b['theory_mean'])}"
                    if a["theory_mean"] is not None and b["theory_mean"] is not None
                    else "",
                ]
            kurt = [r for r in sel if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            judged = [r for r in kurt if r["excess_kurtosis_se"] is not None]
            near = [
                r
                for r in judged
                if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]
            ]
            constant = {round(r["d_k"] * r["theory_excess_kurtosis"], 9) for r in kurt}
            row += [
                report.num(kurt[0]["d_k"] * kurt[0]["theory_excess_kurtosis"], 3) if len(constant) == 1 else "",
                f"{len(near)} of {len(judged)}" if judged else ("no SE: heavy tails" if kurt else ""),
            ]
            cells.append(row)
    return (
        "Per setting and rule, over the sweep (first → last value; flat: within two standard errors):\n\n"
        + report.markdown_table(head, cells)
    )


def _setting_table(groups: Sequence[tuple[str, list[dict]]]) -> str:
    """One d_k, several settings: each rule's variance with its 99.9% interval against its theory."""
    d_k = groups[0][1][0]["d_k"]
    cells = []
    for prefix, rows in groups:
        setting = prefix.removeprefix("With ").removesuffix(": ") or "default"
        for r in sorted(rows, key=lambda r: SCALINGS.index(r["scaling"])):
            interval = (
                ""
                if r["variance_ci_low"] is None
                else f"{report.num(r['variance_ci_low'])} to {report.num(r['variance_ci_high'])}"
            )
            told = "" if r["theory_variance"] is None else report.num(r["theory_variance"])
            cells.append([setting, RULES[r["scaling"]].words, report.num(r["variance"]), interval, told])
    return f"The score variance at d_k = {d_k}:\n\n" + report.markdown_table(
        ["setting", "rule", "variance", f"{LEVEL:.1%} interval", "theory"], cells
    )


# ---- the terminal table ----


def table(result: Result) -> Table:
    """Variance and excess kurtosis beside their theory; the mean where its theory is not 0, the number
    of scores with --wide."""
    from sqrtdk.output import at_se, pm

    rows = result.rows

    def interval(r: Mapping[str, Any]) -> str:
        low, high, se = r["variance_ci_low"], r["variance_ci_high"], r["variance_se"]
        return "" if low is None else f"[{at_se(low, se)}, {at_se(high, se)}]"

    def told(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    def column(
        heading: str,
        cells: Sequence[str],
        key: bool = False,
        wide: bool = False,
        about: str | None = None,
        joins: bool = False,
    ) -> Column:
        return Column(heading, tuple(cells), key, wide, about, joins)

    mean_matters = any(r["theory_mean"] != 0 for r in rows)
    notes = [_headline(rows)] if len(report.groups(result, "dim")) == 1 and _headline(rows) else []
    if any(r[t] is None for r in rows for t in ("theory_variance", "theory_excess_kurtosis")):
        notes.append("An empty theory cell: no closed form for that setting (sqrtdk's docs/numbers.md).")
    if any(r["variance_ci_low"] is None for r in rows):
        notes.append("An empty interval: the entries' fourth moment is infinite, so the variance has no error.")
    return Table(
        "Scores c·q.k: measured ± standard error, each beside its theory",
        (
            column("d_k", [str(r["d_k"]) for r in rows], key=True),
            column("scaling", [r["scaling"] for r in rows], key=True),
            column("scores", [f"{r['n_scores']:,}" for r in rows], wide=True),
            column("mean", [pm(r, "mean") for r in rows], wide=not mean_matters),
            column("theory", [told(r["theory_mean"]) for r in rows], wide=not mean_matters, about="", joins=True),
            column("variance", [pm(r, "variance") for r in rows]),
            column(f"{LEVEL:.1%} interval", [interval(r) for r in rows], joins=True),
            column("theory", [told(r["theory_variance"]) for r in rows], joins=True),
            column("excess kurtosis", [pm(r, "excess_kurtosis") for r in rows]),
            column("theory", [told(r["theory_excess_kurtosis"]) for r in rows], joins=True),
        ),
        notes,
    )


def _headline(rows: Sequence[dict]) -> str:
    """One line under the table of the textbook run: Var(q.k) ~ d_k unscaled and ~ 1 scaled, measured."""
    from sqrtdk.output import pm

    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if not none or not scaled or any(r["theory_variance"] is None for r in (*none, *scaled)):
        return ""
    if len(none) == 1:
        a, b = none[0], scaled[0]
        return (
            f"Var(q·k) ≈ d_k unscaled: {pm(a, 'variance')} at d_k = {a['d_k']} (theory {_num(a['theory_variance'])}); "
            f"≈ 1 with 1/√d_k: {pm(b, 'variance')} (theory {_num(b['theory_variance'])})."
        )
    low, high = min(r["variance"] for r in scaled), max(r["variance"] for r in scaled)
    return (
        f"Unscaled, Var(q·k) grows with d_k: {pm(none[0], 'variance')} at d_k = {none[0]['d_k']}, "
        f"{pm(none[-1], 'variance')} at d_k = {none[-1]['d_k']}; with 1/√d_k it stays between "
        f"{low:.4g} and {high:.4g}."
    )


def _same_settings(groups: Sequence[tuple[str, Sequence[dict]]]) -> str:
    """'init = lecun and init = xavier coincide': settings whose every rule's variance lies inside the
    other's interval."""

    def inside(a: dict, b: dict) -> bool:
        return (
            a["variance_ci_low"] is not None
            and b["variance_ci_low"] is not None
            and (
                b["variance_ci_low"] <= a["variance"] <= b["variance_ci_high"]
                and a["variance_ci_low"] <= b["variance"] <= a["variance_ci_high"]
            )
        )

    pairs = []
    for i, (name_a, rows_a) in enumerate(groups):
        for name_b, rows_b in groups[i + 1 :]:
            by_rule = {r["scaling"]: r for r in rows_b}
            if all(r["scaling"] in by_rule and inside(r, by_rule[r["scaling"]]) for r in rows_a):
                pairs.append(f"{name_a} and {name_b} agree within their intervals")
    return "; ".join(pairs)
