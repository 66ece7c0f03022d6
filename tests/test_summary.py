"""The report's summary (sqrtdk/summary.py): each verdict follows from the rows by its stated rule, turns
when the rows turn, and the committed report opens with it within its line budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqrtdk import summary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def rows(name: str) -> list[dict]:
    return json.loads((RESULTS / name / "rows.json").read_text(encoding="utf-8"))


def test_the_committed_report_opens_with_the_summary_within_its_budget():
    text = (RESULTS / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 350
    first_section = min(i for i, line in enumerate(lines) if line.startswith("## "))
    assert lines[first_section] == "## Summary"
    assert text.index("## Summary") < text.index("story/story.png") < text.index("# The argument")
    for verdict in ("confirmed", "qualified", "refuted"):
        assert f"| {verdict} |" in text


def variance_row(d_k: int, scaling: str, variance: float, half: float = 0.01) -> dict:
    theory = float(d_k) if scaling == "none" else 1.0
    return {
        "d_k": d_k,
        "scaling": scaling,
        "variance": variance,
        "variance_ci_low": variance * (1 - half),
        "variance_ci_high": variance * (1 + half),
        "theory_variance": theory,
    }


def test_the_variance_step_is_confirmed_only_when_every_interval_holds_the_theory():
    held = [variance_row(d, s, d if s == "none" else 1.0) for d in (1, 64) for s in ("none", "sqrt")]
    assert summary.variance(held, {}).verdict == "confirmed"
    missed = held[:-1] + [variance_row(64, "sqrt", 1.05)]
    step = summary.variance(missed, {})
    assert step.verdict == "qualified" and "in 3 of 4 rows" in step.number


def gradient_row(scaling: str, grad_q: float, vanishing: float) -> dict:
    return {"d_k": 1024, "seq_len": 128, "scaling": scaling, "grad_q_mean": grad_q, "vanishing_fraction": vanishing}


@pytest.mark.parametrize(
    ("unscaled", "vanishing", "verdict"),
    [(0.05, 0.6, "confirmed"), (1.9, 0.53, "qualified"), (1.9, 0.0, "refuted")],
)
def test_the_gradient_step_weighs_the_mean_gradient_against_the_frozen_rows(unscaled, vanishing, verdict):
    rows_ = [gradient_row("none", unscaled, vanishing), gradient_row("sqrt", 0.133, 0.0)]
    assert summary.gradient(rows_, {"eps": 1e-3}).verdict == verdict


def train_row(scaling: str, d_k: int, lr: float, trained: float) -> dict:
    return {"scaling": scaling, "d_k": d_k, "lr": lr, "trained": trained, "final_accuracy": trained, "replicates": 3}


def train_rows(grid: dict) -> list[dict]:
    """`grid`: rule -> d_k -> the rates at which every seed trains (rates 0.003, 0.03, 0.3)."""
    return [
        train_row(rule, d_k, lr, 1.0 if lr in good else 0.0)
        for rule, by_d_k in grid.items()
        for d_k, good in by_d_k.items()
        for lr in (0.003, 0.03, 0.3)
    ]


def test_the_training_steps_follow_the_largest_rates_that_train():
    committed = train_rows(
        {"none": {64: (), 256: ()}, "sqrt": {64: (0.003, 0.03), 256: (0.003,)}, "linear": {64: (0.03,), 256: (0.03,)}}
    )
    assert summary.training(committed, {}).verdict == "confirmed"
    assert summary.transfer(committed, {}).verdict == "refuted"
    steady = train_rows({"none": {64: (0.003,), 256: ()}, "sqrt": {64: (0.03,), 256: (0.03,)}, "linear": {}})
    assert summary.training(steady, {}).verdict == "qualified"
    assert summary.transfer(steady, {}).verdict == "confirmed"
    assert summary.training(train_rows({"none": {64: (0.3,)}, "sqrt": {64: (0.03,)}}), {}).verdict == "refuted"


def test_the_committed_verdicts_are_those_of_the_committed_rows():
    """The summary's numbers are the rows' numbers: rebuilt here from rows.json by hand."""
    text = " ".join((RESULTS / "README.md").read_text(encoding="utf-8").split())
    frozen = next(r for r in rows("saturation_vs_dk") if (r["d_k"], r["seq_len"], r["scaling"]) == (1024, 128, "none"))
    assert f"{frozen['saturated_fraction']:.1%} of unscaled rows put 0.99 or more on one key" in text
    grads = {r["scaling"]: r for r in rows("gradient_vs_dk") if (r["d_k"], r["seq_len"]) == (1024, 128)}
    factor = grads["none"]["grad_q_mean"] / grads["sqrt"]["grad_q_mean"]
    assert f"{grads['none']['vanishing_fraction']:.1%} of unscaled rows have" in text and f"{factor:.0f} times" in text
    heads = rows("probe_minilm")
    frozen_heads = sum(r["logit_std"] > r["critical_logit_std"] for r in heads)
    assert f"{frozen_heads} of {len(heads)} heads frozen" in text


@pytest.mark.parametrize(("last", "verdict"), [(0.5, "confirmed"), (0.2, "qualified"), (0.002, "refuted")])
def test_the_length_step_follows_how_far_the_largest_weight_falls(last, verdict):
    rows = [
        {"scaling": "sqrt", "seq_len": n, "max_prob_mean": w, "entropy_ratio_mean": 0.9}
        for n, w in ((2, 0.725), (16384, last))
    ]
    assert summary.length(rows, {}).verdict == verdict
