"""`sqrtdk gradient`: the size of the softmax Jacobian and of the gradients through it, across d_k and n.

Per query row, for p = softmax(s) and a random upstream gradient g (iid N(0, 1) per weight): ||J||_F with
J = diag(p) - p p^T, its largest diagonal entry, ||dL/ds|| = ||J g|| and ||dL/dq||, and whether ||J||_F
falls below eps. Reference: a uniform row has ||J||_F = sqrt(n - 1) / n, a one-hot row 0. The kernel is
core/rows.py; the rest is shared in _attention/.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.experiments import Experiment, _gradient_rows
from sqrtdk.experiments._attention import figures as attention_figures
from sqrtdk.experiments._attention import measure as attention
from sqrtdk.experiments._attention import reading as attention_reading

if TYPE_CHECKING:
    from sqrtdk.result import Result

Params = attention.params(
    "`sqrtdk gradient`: the schema of its options and config keys.",
    module=__name__,
    eps=schema.param(
        1e-3, "a row's gradient vanishes when ||J||_F is below this", schema.Real("eps", lo=schema.EPS_MIN, hi=1.0)
    ),
)


def unscaled(rows: Sequence[dict], eps: float) -> list[str]:
    """The unscaled rule's share of vanishing rows along d_k, and its gradient against the scaled one."""
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if len(none) < 2 or not scaled:
        return []
    a, b, sb = none[0], none[-1], scaled[-1]
    return [
        f"Unscaled at n = {b['seq_len']}, the share of rows with ||J||_F < {eps:g} "
        f"{report.trend(a['vanishing_fraction'], b['vanishing_fraction'], '%', (a['vanishing_fraction_se'], b['vanishing_fraction_se']))} from d_k = {a['d_k']} to "
        f"{b['d_k']}, yet at d_k = {b['d_k']} ||dL/dq|| averages {report.num(b['grad_q_mean'], 3)} against "
        f"{report.num(sb['grad_q_mean'], 3)} scaled (uniform row's ||J||_F: {report.num(b['uniform_jacobian_fro'], 3)})."
    ]


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    """The metrics against d_k or n, and how the gradient to the query spreads over rows."""
    drawn = attention_figures.figures("gradient", attention.GRADIENT_DRAWN, "Softmax Jacobian and gradients", result)
    return {**drawn, **_gradient_rows.figures(result)}


EXPERIMENT = Experiment(
    "gradient",
    "Size of the softmax Jacobian and of the gradients through it, across d_k and n.",
    Params,
    run=partial(attention.run, "gradient", "eps"),
    rows=attention.rows,
    figures=figures,
    reading=partial(attention_reading.reading, ("jacobian_fro_mean", "grad_q_mean"), "eps", unscaled),
    table=partial(
        attention_reading.table,
        "gradient",
        ("jacobian_fro_mean", "grad_logits_mean", "grad_q_mean", "vanishing_fraction"),
        "jacobian_fro_mean",
    ),
    cost=attention.cost,
    theory=attention.exact_theory,
    curves=_gradient_rows.curves,
    with_curves=_gradient_rows.with_curves,
)
