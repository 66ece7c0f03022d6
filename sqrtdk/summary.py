"""The report's summary: each step of the argument, its verdict on the committed rows, and the number behind it.

A step reads the rows of one config and says whether they confirm the claim (it holds at every setting
shown), qualify it (it holds only in part, and the number says where it does not) or refute it (the rows
contradict it). Every verdict is decided here from the rows by the rule in the step's docstring, never
written by hand, so a change of the rows that turns a verdict changes the summary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqrtdk.experiments.train.measure import trains
from sqrtdk.experiments.variance.measure import LEVEL
from sqrtdk.report import anchor, between, by_rule, markdown_table, num, share

Rows = Sequence[dict]
N = 128  # the sequence length the softmax steps quote, as the story figure does

VERDICTS = (
    "**confirmed**: the rows agree with the claim at every setting shown; **qualified**: it holds only in "
    "part, and the number says where not; **refuted**: the rows contradict it."
)


@dataclass(frozen=True)
class Step:
    claim: str
    verdict: str  # confirmed, qualified or refuted
    number: str  # the measurement behind the verdict, in words


def _at_n(rows: Rows, n: int = N) -> Rows:
    """The rows at sequence length `n`, or at the longest one the config has when it lacks `n`."""
    lengths = {r["seq_len"] for r in rows}
    keep = n if n in lengths else max(lengths)
    return [r for r in rows if r["seq_len"] == keep]


def variance(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when every row's interval holds Var(q.k) = d_k (unscaled) and 1 (scaled), else qualified."""
    held = sum(r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"] for r in rows)
    top = by_rule(rows, "none")[-1]
    scaled = [r["variance"] for r in by_rule(rows, "sqrt")]
    return Step(
        "Var(q.k) = d_k for independent unit-variance entries; divided by sqrt(d_k) it is 1",
        "confirmed" if held == len(rows) else "qualified",
        f"unscaled {num(top['variance'])} at d_k = {top['d_k']:,} (theory {num(top['theory_variance'])}); "
        f"scaled {between(scaled, '.4g')}; the theory inside the {LEVEL:.1%} interval in {held} of {len(rows)} "
        "rows",
    )


def saturation(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when most unscaled rows saturate at the largest d_k and under 1% of scaled rows do."""
    rows = _at_n(rows)
    none, sqrt = by_rule(rows, "none")[-1], by_rule(rows, "sqrt")[-1]
    confirmed = none["saturated_fraction"] > 0.5 and sqrt["saturated_fraction"] < 0.01
    return Step(
        "Unscaled, the softmax saturates as d_k grows; scaled, it does not",
        "confirmed" if confirmed else "qualified",
        f"at d_k = {none['d_k']:,}, n = {none['seq_len']}: {share(none['saturated_fraction'])} of unscaled rows "
        f"put {settings['threshold']:g} or more on one key, {share(sqrt['saturated_fraction'])} of scaled ones",
    )


def gradient(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when the mean gradient to the query is smaller unscaled than scaled at the largest d_k;
    qualified when it is larger although many rows pass none; refuted when it is larger and none vanish."""
    rows = _at_n(rows)
    none, sqrt = by_rule(rows, "none")[-1], by_rule(rows, "sqrt")[-1]
    larger = none["grad_q_mean"] > sqrt["grad_q_mean"]
    verdict = "confirmed" if not larger else "qualified" if none["vanishing_fraction"] > 0.1 else "refuted"
    return Step(
        "Saturated rows pass no gradient, so unscaled gradients vanish",
        verdict,
        f"at d_k = {none['d_k']:,}, n = {none['seq_len']}: {share(none['vanishing_fraction'])} of unscaled rows "
        f"have ||J||_F < {settings['eps']:g}, yet the mean ||dL/dq|| is {num(none['grad_q_mean'], 3)}, "
        f"{none['grad_q_mean'] / sqrt['grad_q_mean']:.0f} times the scaled {num(sqrt['grad_q_mean'], 3)}",
    )


def initialisation(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when every initialisation's scaled interval holds 1; qualified when some do; else refuted."""
    scaled = by_rule(rows, "sqrt", "init")
    held = [r for r in scaled if r["variance_ci_low"] <= 1 <= r["variance_ci_high"]]
    verdict = "confirmed" if len(held) == len(scaled) else "qualified" if held else "refuted"
    off = sorted((r for r in scaled if r not in held), key=lambda r: r["variance"])
    return Step(
        "In a real layer at initialisation, scaled scores have variance 1",
        verdict,
        f"d_k = {scaled[0]['d_k']}: 1 inside the interval for {len(held)} of {len(scaled)} initialisations"
        + (f" ({', '.join(str(r['init']) for r in held)})" if held else "")
        + (f"; {', '.join(str(r['init']) + ' ' + num(r['variance'], 3) for r in off)}" if off else ""),
    )


def length(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when the scaled largest weight changes by less than a factor 2 over n, refuted when it
    falls by more than a factor 10 (the rows fade towards uniform), else qualified."""
    sqrt = by_rule(rows, "sqrt", "seq_len")
    first, last = sqrt[0], sqrt[-1]
    steady = last["max_prob_mean"] > first["max_prob_mean"] / 2
    faded = last["max_prob_mean"] < first["max_prob_mean"] / 10
    return Step(
        "Scaled, the softmax keeps its shape as the sequence grows",
        "confirmed" if steady else "refuted" if faded else "qualified",
        f"from n = {first['seq_len']:,} to {last['seq_len']:,}, the largest weight falls from "
        f"{first['max_prob_mean']:.3f} to {last['max_prob_mean']:.3f} and the entropy rises from "
        f"{first['entropy_ratio_mean']:.3f} to {last['entropy_ratio_mean']:.3f} of ln n"
        + ("" if steady else ": attention fades towards uniform"),
    )


def _largest(rows: Rows, rule: str, d_k: int) -> float | None:
    rates = [r["lr"] for r in rows if r["scaling"] == rule and r["d_k"] == d_k and trains(r)]
    return max(rates) if rates else None


def training(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when unscaled attention trains (every seed) at no rate while 1/sqrt(d_k) does at some,
    at every d_k; refuted when unscaled trains at a rate as large as 1/sqrt(d_k)'s; else qualified."""
    dims = sorted({r["d_k"] for r in rows})
    none = [_largest(rows, "none", d) for d in dims]
    sqrt = [_largest(rows, "sqrt", d) for d in dims]
    if all(a is None for a in none) and all(b is not None for b in sqrt):
        verdict = "confirmed"
    elif any(a is not None and (b is None or a >= b) for a, b in zip(none, sqrt)):
        verdict = "refuted"
    else:
        verdict = "qualified"
    best = max((r for r in rows if r["scaling"] == "none"), key=lambda r: r["final_accuracy"] or 0.0)
    rates = ", ".join(f"{lr:g}" for lr in sorted({r["lr"] for r in rows}))
    return Step(
        "Unscaled attention trains badly",
        verdict,
        f"the largest of the rates {rates} at which every seed trains, {_dims(dims)}: unscaled {_rates(none)}, "
        f"1/sqrt(d_k) {_rates(sqrt)}; unscaled at best {share(best['final_accuracy'])} held-out accuracy",
    )


def transfer(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when the largest rate at which 1/sqrt(d_k) trains is the same at every d_k; refuted when
    it moves while 1/d_k's stays; else qualified."""
    dims = sorted({r["d_k"] for r in rows})
    sqrt = [_largest(rows, "sqrt", d) for d in dims]
    linear = [_largest(rows, "linear", d) for d in dims]
    if len(set(sqrt)) == 1:
        verdict = "confirmed"
    elif len(set(linear)) == 1 and linear[0] is not None:
        verdict = "refuted"
    else:
        verdict = "qualified"
    return Step(
        "With 1/sqrt(d_k) the usable learning rate does not depend on d_k",
        verdict,
        f"the largest rate at which every seed trains, {_dims(dims)}: 1/sqrt(d_k) {_rates(sqrt)}, "
        f"1/d_k {_rates(linear)} ({len({r['lr'] for r in rows})} rates, {rows[0]['replicates']} seeds)",
    )


def _rates(rates: Sequence[float | None]) -> str:
    """'0.03 → 0.003' over the head dimensions, 'none' where no rate trains."""
    return " → ".join("none" if r is None else f"{r:g}" for r in rates)


def _dims(dims: Sequence[int]) -> str:
    return "d_k = " + " → ".join(str(d) for d in dims)


def probe(rows: Rows, settings: Mapping[str, Any]) -> Step:
    """Confirmed when no head's variance exceeds its independent-coordinates value by over 10% and no head
    is frozen; refuted when most heads' does; else qualified."""
    ratios = [r["independent_variance_ratio"] for r in rows]
    above = sum(x > 1.1 for x in ratios)
    frozen = sum(r["logit_std"] > r["critical_logit_std"] for r in rows)
    verdict = "refuted" if above > len(rows) / 2 else "confirmed" if not (above or frozen) else "qualified"
    return Step(
        "A trained model's heads behave like independent coordinates",
        verdict,
        f"Var(q.k) is {min(ratios):.3g} to {max(ratios):.3g} times its value for independent coordinates, "
        f"over 1.1 times in {above} of {len(rows)} heads; {frozen} of {len(rows)} heads frozen (logit spread above s_c)",
    )


STEPS: tuple[tuple[str, Callable[[Rows, Mapping[str, Any]], Step]], ...] = (
    ("variance_vs_dk", variance),
    ("saturation_vs_dk", saturation),
    ("gradient_vs_dk", gradient),
    ("variance_projected", initialisation),
    ("saturation_vs_n", length),
    ("train_copy", training),
    ("train_copy", transfer),
    ("probe_minilm", probe),
)


def steps(results: Mapping[str, Any]) -> list[tuple[str, Step]]:
    """The steps whose config is among `results` (config name -> Result), with that name."""
    return [(name, step(results[name].rows, results[name].config)) for name, step in STEPS if name in results]


def markdown(configs: Sequence[Any], results: Sequence[Any]) -> str:
    """The report's summary section: a table of the steps the configs' results hold, each claim linked
    to its config's section, and what the verdicts mean; empty when no step's config is among them."""
    titles = {c.name: c.title or c.name for c in configs}
    found = steps({c.name: r for c, r in zip(configs, results)})
    if not found:
        return ""
    table = markdown_table(
        ["step of the argument", "verdict", "the number behind it"],
        [[f"[{s.claim}](#{anchor(titles[name])})", s.verdict, s.number] for name, s in found],
    )
    return "\n".join(["## Summary", "", table, "", VERDICTS, ""])
