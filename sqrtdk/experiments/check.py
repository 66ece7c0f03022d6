"""`sqrtdk check`: the scaled variance's 99.9% interval must lie inside [1 - tol, 1 + tol] at every d_k.

A gate for CI: it samples like the variance experiment (core/scores.py) and passes when, for unit-variance
entries, each interval of Var(q.k / sqrt(d_k)) lies inside the band around its theoretical value 1
(Vaswani et al. 2017, sec. 3.2.1, footnote 4). It writes nothing; a failure is exit code 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqrtdk import schema
from sqrtdk.experiments import Experiment
from sqrtdk.experiments.variance.measure import LEVEL, cost, run, variance_rows
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.scores import ScoreSample
    from sqrtdk.result import Result

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk check`: the schema of its options and config keys.",
    dim=schema.dim_field(2**i for i in range(11)),
    samples=schema.scores_field(2**20),
    seed=schema.seed_field(),
    tol=schema.param(
        0.05,
        "allowed distance of the scaled variance from 1",
        schema.Real("the tolerance", lo=0.0, lo_open=True, hi=1.0, hi_open=True),
    ),
    mean=schema.mean_field(),
    std=schema.std_field(),
)


def rows(task: Mapping[str, Any], sample: ScoreSample) -> list[dict]:
    row = variance_rows(sample, ("sqrt",))[0]
    tol = task["tol"]
    passed = bool(1 - tol <= row["variance_ci_low"] and row["variance_ci_high"] <= 1 + tol)
    return [
        {
            "d_k": sample.d_k,
            "n_scores": sample.n_scores,
            "variance": row["variance"],
            "variance_se": row["variance_se"],
            "variance_ci_low": row["variance_ci_low"],
            "variance_ci_high": row["variance_ci_high"],
            "allowed_low": 1 - tol,
            "allowed_high": 1 + tol,
            "passed": passed,
        }
    ]


def figures(result: Result) -> dict:
    return {}


def reading(result: Result) -> list[str]:
    failed = [r["d_k"] for r in result.rows if not r["passed"]]
    lows = [r["variance_ci_low"] for r in result.rows]
    highs = [r["variance_ci_high"] for r in result.rows]
    verdict = (
        "every interval lies inside the band"
        if not failed
        else f"the interval leaves the band at d_k = {', '.join(map(str, failed))}"
    )
    return [
        f"The scaled variance's 99.9% intervals span {min(lows):.4f} to {max(highs):.4f} over "
        f"{len(result.rows)} values of d_k: {verdict}."
    ]


def table(result: Result) -> Table:
    from sqrtdk.output import at_se, pm

    rows = result.rows
    passed = sum(r["passed"] for r in rows)
    band = {(r["allowed_low"], r["allowed_high"]) for r in rows}
    return Table(
        f"Scaled variance: {LEVEL:.1%} interval against the allowed band",
        (
            Column("d_k", tuple(str(r["d_k"]) for r in rows), key=True),
            Column("scores", tuple(f"{r['n_scores']:,}" for r in rows), wide=True),
            Column("variance", tuple(pm(r, "variance") for r in rows)),
            Column(
                f"{LEVEL:.1%} interval",
                tuple(
                    f"[{at_se(r['variance_ci_low'], r['variance_se'])}, {at_se(r['variance_ci_high'], r['variance_se'])}]"
                    for r in rows
                ),
                joins=True,
            ),
            Column(
                "allowed",
                tuple(f"[{r['allowed_low']:g}, {r['allowed_high']:g}]" for r in rows),
                wide=len(band) == 1,
            ),
            Column("verdict", tuple("pass" if r["passed"] else "FAIL" for r in rows), joins=True),
        ),
        [
            f"{passed} of {len(rows)} values of d_k pass"
            + (f" (allowed band [{min(band)[0]:g}, {min(band)[1]:g}])." if len(band) == 1 else ".")
        ],
    )


def verdict(result: Result) -> str | None:
    """Each failing d_k with its band, or None when every interval lies inside its band."""
    bands: dict[str, list[str]] = {}
    for r in result.rows:
        if not r["passed"]:
            bands.setdefault(f"[{r['allowed_low']:g}, {r['allowed_high']:g}]", []).append(str(r["d_k"]))
    if not bands:
        return None

    def listed(d_ks: list[str]) -> str:
        return ", ".join(d_ks) if len(d_ks) <= 12 else ", ".join(d_ks[:12]) + f" and {len(d_ks) - 12} more"

    where = "; ".join(f"{band} at d_k = {listed(d_ks)}" for band, d_ks in bands.items())
    return f"check failed: the scaled variance's 99.9% interval leaves {where}"


EXPERIMENT = Experiment(
    "check",
    "The scaled variance's 99.9% interval must lie inside [1 - tol, 1 + tol].",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
    verdict=verdict,
    writes=False,
)
