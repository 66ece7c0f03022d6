"""What `sqrtdk precision` says: its reading in the report, built from the rows, and its terminal
table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report
from sqrtdk.experiments.precision.measure import DTYPES, LEVEL, RATE, RATE_TEXT, SHOWN, entry_stds, select
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.result import Result


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
    for std in entry_stds(rows):
        after = select(rows, dtype="float16", placement="after", entry_std=std)
        query = select(rows, dtype="float16", placement="query", entry_std=std)
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
    std = entry_stds(rows)[0]
    out = []
    per = {}
    for dtype in DTYPES:
        sel = [
            r for r in select(rows, dtype=dtype, placement="after", entry_std=std) if r["weight_error_max"] is not None
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
        r for r in select(rows, dtype="float16", placement="none", entry_std=std) if r["weight_error_max"] is not None
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
