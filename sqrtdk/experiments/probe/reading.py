"""What `sqrtdk probe` says: its reading in the report, built from the rows, and its terminal table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqrtdk import report
from sqrtdk.experiments.probe.measure import SINK
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.result import Result


def _name(r: Mapping[str, Any]) -> str:
    return f"L{r['layer']}H{r['head']}"


def reading(result: Result) -> list[str]:
    import statistics

    rows = result.rows
    if not rows:
        return []
    n, s_c = rows[0]["seq_len"], rows[0]["critical_logit_std"]
    frozen = [r for r in rows if r["logit_std"] > s_c]
    iid_frozen = [r for r in rows if r["iid_logit_std"] > s_c]
    spreads = [r["logit_std"] for r in rows]
    out = [
        f"{len(frozen)} of {len(rows)} heads sit in the frozen phase, their logit spread above s_c = "
        f"{s_c:.2f} for n = {n} (the iid prediction from each head's own entries puts {len(iid_frozen)} there); "
        f"the spreads run from {min(spreads):.2f} to {max(spreads):.2f}, median {statistics.median(spreads):.2f}, "
        f"where 1/sqrt(d_k) with unit-variance entries would give 1."
    ]
    ratios = sorted(r["independent_variance_ratio"] for r in rows)
    above = sum(v > 1 for v in ratios)
    shares = [r["mean_share"] for r in rows]
    iid = [r["iid_variance_ratio"] for r in rows]
    out.append(
        "Var(q.k) against sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2), its value for independent coordinates with "
        "the entries' own per-dimension means mu_i, nu_i and variances a_i, b_i: ratios from "
        f"{report.num(ratios[0], 3)} to {report.num(ratios[-1], 3)} (median {report.num(statistics.median(ratios), 3)}), "
        f"above 1 in {above} of {len(rows)} heads. Over all pairs of a sequence (no causal mask) what the ratio adds "
        "to 1 is exactly what the covariances between dimensions add. The means' terms sum_i (a_i nu_i^2 + b_i "
        f"mu_i^2) make {report.share(min(shares))} to {report.share(max(shares))} of the value (median "
        f"{report.share(statistics.median(shares))}). Against d_k Var(q_i) Var(k_i), one variance pooled over tokens "
        "and dimensions (the means' spread counted as variance, the means left out: the iid value that the spread "
        f"and entropy predictions here take), the ratios run from {report.num(min(iid), 3)} to {report.num(max(iid), 3)}."
    )
    if rows[0]["sep_share"] is not None:
        sinks = [r for r in rows if max(r["cls_share"], r["sep_share"]) >= SINK]
        sinks.sort(key=lambda r: -max(r["cls_share"], r["sep_share"]))
        named = ", ".join(
            f"{_name(r)} ({'[SEP]' if r['sep_share'] >= r['cls_share'] else '[CLS]'} "
            f"{max(r['cls_share'], r['sep_share']):.2f})"
            for r in sinks[:8]
        )
        out.append(
            f"{len(sinks)} of {len(rows)} heads are sink heads, giving [CLS] or [SEP] at least {SINK:g} of their "
            "attention" + (f": {named}" + (" ..." if len(sinks) > 8 else "") if sinks else "") + "."
        )
    if rows[0]["sigma"] is not None:
        widest = max(rows, key=lambda r: r["logit_std"])
        sigmas = sorted(r["sigma"] for r in rows)
        rank = sigmas.index(widest["sigma"]) + 1
        out.append(
            f"From the weights, sigma = ||W_Q W_K^T||_2 / sqrt(d_head) runs from {sigmas[0]:.2f} to {sigmas[-1]:.2f}; "
            f"the widest head, {_name(widest)} (s = {widest['logit_std']:.2f}), has sigma {widest['sigma']:.2f}, "
            + ("the largest of all." if rank == len(rows) else f"{rank} of {len(rows)} from the smallest.")
        )
    with_theory = [r for r in rows if r["theory_entropy_ratio"] is not None]
    if with_theory:
        below = sum(r["entropy_ratio_mean"] < r["theory_entropy_ratio"] for r in with_theory)
        out.append(
            f"Entropy / ln n: measured {report.between([r['entropy_ratio_mean'] for r in with_theory], '.2f')}, the iid "
            f"prediction {report.between([r['theory_entropy_ratio'] for r in with_theory], '.2f')}; {below} of "
            f"{len(with_theory)} heads attend more sharply than iid entries of their variance would."
        )
    return out


def table(result: Result) -> Table:
    from sqrtdk.output import pm

    rows = result.rows

    def cell(r: dict, key: str, spec: str = ".3g") -> str:
        return "" if r[key] is None else format(r[key], spec)

    return Table(
        "Heads of a trained model: mean over sequences ± standard error",
        (
            Column("layer", tuple(str(r["layer"]) for r in rows), key=True),
            Column("head", tuple(str(r["head"]) for r in rows), key=True),
            Column("s", tuple(pm(r, "logit_std") for r in rows)),
            Column("s iid", tuple(cell(r, "iid_logit_std") for r in rows), joins=True),
            Column("Var/ind.", tuple(cell(r, "independent_variance_ratio") for r in rows)),
            Column("means", tuple(cell(r, "mean_share", ".2f") for r in rows), joins=True),
            Column("Var/iid", tuple(cell(r, "iid_variance_ratio") for r in rows), wide=True),
            Column("kurt.", tuple(cell(r, "excess_kurtosis", ".2g") for r in rows), wide=True),
            Column("H/ln n", tuple(cell(r, "entropy_ratio_mean") for r in rows)),
            Column("iid", tuple(cell(r, "theory_entropy_ratio") for r in rows), joins=True),
            Column("max p", tuple(cell(r, "max_prob_mean") for r in rows), wide=True),
            Column("[CLS]", tuple(cell(r, "cls_share", ".2f") for r in rows)),
            Column("[SEP]", tuple(cell(r, "sep_share", ".2f") for r in rows)),
            Column("sigma", tuple(cell(r, "sigma") for r in rows), wide=True),
        ),
        [
            "s: the scaled logits' standard deviation; s iid and iid: what iid mean-0 Gaussian entries with "
            "the head's own variances give (exact theory); Var/ind.: Var(q.k) / sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2), "
            "its value for independent coordinates with the entries' per-dimension means mu_i, nu_i and variances "
            "a_i, b_i; means: the share of that value the means make; Var/iid: Var(q.k) / (d_k Var(q_i) Var(k_i)); "
            "[CLS], [SEP]: the share of the attention those positions receive; sigma: ||W_Q W_K^T||_2 / sqrt(d_head)."
        ],
    )
