"""`sqrtdk saturation`: how far softmax(c Q K^T) concentrates on one key, across d_k and n.

Per query row: the largest weight, the entropy H (and H / ln n, e^H), the participation 1 / sum p^2 and
whether the largest weight reaches the threshold. Theory: the exact E[max p], E[H], E[H] / ln n and
E[1 / sum p^2] at every n and spread, frozen phase included, by quadrature (core/exact.py), wherever a
row's logits are iid normal given its query; beside them the random-energy-model limits E[H] ~ ln n -
s^2/2 and 1/sum p^2 ~ n e^(-s^2) (Derrida 1981; for attention at initialisation, Giorlandino and Goldt
2025, arXiv 2505.24333), shown only where they are within core.theory.REM_ACCURACY of the exact values.
The kernel is core/rows.py; the rest is shared in _attention/.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from sqrtdk import report, schema
from sqrtdk.experiments import Experiment
from sqrtdk.experiments._attention import figures as attention_figures
from sqrtdk.experiments._attention import measure as attention
from sqrtdk.experiments._attention import reading as attention_reading
from sqrtdk.output import with_se

Params = attention.params(
    "`sqrtdk saturation`: the schema of its options and config keys.",
    module=__name__,
    threshold=schema.param(
        0.99,
        "a row is saturated when its largest weight is at least this",
        schema.Real("the threshold", lo=0.0, lo_open=True, hi=schema.THRESHOLD_MAX),
    ),
)


def unscaled(rows: Sequence[dict], threshold: float) -> list[str]:
    """The unscaled rule at the largest d_k: its entropy and share of saturated rows; the scaled entropy
    against the random-energy model where that holds."""
    none = report.by_rule(rows, "none")
    if len(none) < 2:
        return []
    a, b = none[0], none[-1]
    line = (
        f"Unscaled at d_k = {b['d_k']}, n = {b['seq_len']}: the entropy is {report.num(b['entropy_mean'], 3)} nats and "
        f"{report.share(b['saturated_fraction'])} of rows put at least {threshold:g} on one key "
        f"({report.share(a['saturated_fraction'])} at d_k = {a['d_k']})"
    )
    exact = [r for r in report.by_rule(rows, "sqrt") if r["theory_entropy"] is not None]
    if exact:
        r = exact[-1]
        line += (
            f"; scaled, the exact entropy for Gaussian entries is {report.num(r['theory_entropy'])} nats, "
            f"measured {with_se(r['entropy_mean'], r['entropy_mean_se'])}"
        )
    exact = [r for r in none if r["theory_entropy"] is not None]
    if exact:
        r = exact[-1]
        line += (
            f"; unscaled at d_k = {r['d_k']} (logit spread {report.num(r['logit_std'], 3)}, s_c = "
            f"{report.num(r['critical_logit_std'], 3)}), exact {report.num(r['theory_entropy'])}, measured "
            f"{with_se(r['entropy_mean'], r['entropy_mean_se'])}"
        )
    return [line + "."]


EXPERIMENT = Experiment(
    "saturation",
    "How far softmax(c Q K^T) concentrates on one key, across d_k and n.",
    Params,
    run=partial(attention.run, "saturation", "threshold"),
    rows=attention.rows,
    figures=partial(attention_figures.figures, "saturation", attention.SATURATION_DRAWN, "Softmax saturation"),
    reading=partial(attention_reading.reading, ("max_prob_mean", "entropy_ratio_mean"), "threshold", unscaled),
    table=partial(
        attention_reading.table,
        "saturation",
        ("max_prob_mean", "entropy_ratio_mean", "participation_mean", "saturated_fraction"),
        "max_prob_mean",
    ),
    cost=attention.cost,
    theory=attention.exact_theory,
)
