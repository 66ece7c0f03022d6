"""The documentation's numbers are the committed rows' numbers: each sentence of README.md or docs/ that
quotes a result is rebuilt here from results/*/rows.json (or from the exact theory) as the documentation
prints it, and must appear there word for word, so that a change of the rows that moves a printed digit
fails here until the prose follows."""

import json
import math
from pathlib import Path

import pytest

from sqrtdk.core import exact

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = " ".join(" ".join(path.read_text(encoding="utf-8").split()) for path in DOCS)


def rows(name: str) -> list[dict]:
    return json.loads((ROOT / "results" / name / "rows.json").read_text(encoding="utf-8"))


def one(name: str, **where: object) -> dict:
    (row,) = [r for r in rows(name) if all(r.get(k) == v for k, v in where.items())]
    return row


def inside(row: dict, value: float, column: str) -> bool:
    return row[column + "_ci_low"] <= value <= row[column + "_ci_high"]


def sci(x: float) -> str:
    """1 significant decimal in README's exponent style: 7.8e-5, 9.0e-101."""
    return f"{x:.1e}".replace("e-0", "e-")


def saturation_sentences() -> list[str]:
    frozen = one("saturation_vs_dk", seq_len=128, d_k=1024, scaling="none")
    scaled = [r for r in rows("saturation_vs_dk") if r["seq_len"] == 128 and r["scaling"] == "sqrt"]
    weights = sorted({f"{r['max_prob_mean']:.3f}" for r in scaled})
    assert {f"{r['entropy_ratio_mean']:.2f}" for r in scaled} == {"0.90"} and sorted(r["d_k"] for r in scaled)[0] == 4
    last = one("saturation_vs_dk", seq_len=128, d_k=1024, scaling="sqrt")
    rem, measured = last["rem_entropy"], last["entropy_mean"]
    assert inside(last, last["theory_entropy"], "entropy_mean")
    assert inside(last, last["theory_participation"], "participation_mean")
    published = [exact.attention_row(8, d, 0.0, 1.0, 1.0, False).max_prob for d in (16, 64, 256, 1024)]
    return [
        f"At d_k = 1024 and n = 128 the largest weight averages {frozen['max_prob_mean']:.3f}, the entropy "
        f"{frozen['entropy_mean']:.2f} nats ({frozen['entropy_ratio_mean']:.2f} ln n), and "
        f"{frozen['saturated_fraction']:.0%} of rows put at least 0.99 on one key.",
        "With 8 keys the exact theory gives {:.3f}, {:.3f}, {:.3f} and {:.3f} (d_k = 16 ... 1024)".format(*published),
        f"0.748, 0.875, 0.938 and 0.970 (rounded from {published[-1]:.4f})",
        f"the largest weight stays at {'-'.join(weights)} and the entropy at 0.90 ln n for n = 128 from d_k = 4 to 1024.",
        f"ln n - 1/2 = {rem:.3f} is {(measured - rem) / measured:.1%} below the measured {measured:.3f} but "
        f"{(measured - rem) / last['entropy_mean_se']:.0f} standard errors from it",
        f"n e^(-1) = {128 / math.e:.0f} is not shown: the mean of 1/sum p^2 is {last['participation_mean']:.1f}, "
        f"{last['participation_mean'] / (128 / math.e) - 1:.0%} above it at n = 128",
    ]


def gradient_sentences() -> list[str]:
    none = one("gradient_vs_dk", seq_len=128, d_k=1024, scaling="none")
    sqrt = one("gradient_vs_dk", seq_len=128, d_k=1024, scaling="sqrt")
    flat = one("saturation_vs_dk", seq_len=1024, d_k=1024, scaling="sqrt")
    long_scaled = one("gradient_vs_dk", seq_len=1024, d_k=1024, scaling="sqrt")
    long_none = one("gradient_vs_dk", seq_len=1024, d_k=1024, scaling="none")
    uniform = long_scaled["uniform_jacobian_fro"]
    return [
        f"{none['vanishing_fraction']:.0%} of rows (n = 128) have ||J||_F < 1e-3, yet the mean ||J||_F "
        f"({none['jacobian_fro_mean']:.3f}) is of the same order as the scaled one ({sqrt['jacobian_fro_mean']:.3f})",
        f"(||dL/dq|| {none['grad_q_mean']:.2f} against {sqrt['grad_q_mean']:.3f} scaled at d_k = 1024)",
        f"{none['vanishing_fraction']:.0%} of rows below 1e-3, the rest large.",
        f"(entropy {flat['entropy_ratio_mean']:.2f} ln n) and its Jacobian ({long_scaled['jacobian_fro_mean']:.3f}, "
        f"{long_scaled['jacobian_fro_mean'] / uniform:.1f} times the uniform row's sqrt(n-1)/n = {uniform:.3f}) is "
        f"below the unscaled mean at the same n ({long_none['jacobian_fro_mean']:.3f})",
    ]


def per_row_sentences() -> list[str]:
    """From the per-row counts kept beside gradient_vs_dk's rows (curves.json)."""
    import numpy as np

    (kept,) = [
        c["curves"]
        for c in json.loads((ROOT / "results" / "gradient_vs_dk" / "curves.json").read_text(encoding="utf-8"))
        if (c["curves"]["d_k"], c["curves"]["seq_len"]) == (1024, 128)
    ]
    counts = np.array(kept["grad_q_counts"])
    none, sqrt = (counts[kept["scalings"].index(s)] for s in ("none", "sqrt"))
    share = none / none.sum()
    one = 1 + round((0.0 - -8.0) / 0.25)  # the bin that starts at 10^0 (bins from 1e-8, a quarter decade)
    return [
        f"unscaled at d_k = 1024 and n = 128, {share[0]:.0%} of the rows pass less than 1e-8 and "
        f"{share[: np.flatnonzero(sqrt)[0]].sum():.0%} less than the bin of the smallest scaled row, while "
        f"{share[one:].sum():.0%} pass more than 1",
    ]


def long_sequence_sentences() -> list[str]:
    short, far = (one("saturation_vs_n", seq_len=n, scaling="sqrt") for n in (2, 16384))
    scaled, logn = (one("gradient_vs_n", seq_len=16384, scaling=s) for s in ("sqrt", "logn"))
    held = one("saturation_vs_n", seq_len=16384, scaling="logn")
    uniform = scaled["uniform_jacobian_fro"]
    return [
        f"the entropy climbs from {short['entropy_ratio_mean']:.2f} to {far['entropy_ratio_mean']:.2f} of ln n from "
        f"n = 2 to 16384 and the largest weight falls to {far['max_prob_mean']:.3f}; ||J||_F "
        f"({scaled['jacobian_fro_mean']:.3f}) is {scaled['jacobian_fro_mean'] / uniform:.2f} times the uniform "
        f"row's sqrt(n - 1)/n ({uniform:.3f}).",
        f"holds the largest weight near {held['max_prob_mean']:.1f} and ||J||_F at {logn['jacobian_fro_mean']:.2f} "
        "to n = 16384.",
    ]


def precision_sentences() -> list[str]:
    table = rows("precision")
    pre = [r for r in table if r["dtype"] == "float16" and r["placement"] in ("query", "split")]
    worst = max(pre, key=lambda r: r["theory_overflow_fraction"])
    assert all(r["overflow_fraction"] == 0 for r in pre)

    def unscaled(std: float, d_k: int) -> dict:
        return one("precision", dtype="float16", placement="none", entry_std=std, d_k=d_k, seq_len=128)

    s32, s24 = unscaled(32.0, 256), unscaled(24.0, 1024)
    return [
        f"an exact rate of at most {sci(worst['theory_overflow_fraction'])} (d_k = {worst['d_k']}, "
        f"std {worst['entry_std']:g}), none measured.",
        f"from d_k = 256 (exact {sci(s32['theory_overflow_fraction'])}, measured {sci(s32['overflow_fraction'])} +- "
        f"{sci(s32['overflow_fraction_se'])})",
        f"1024 ({sci(s24['theory_overflow_fraction'])}, measured {sci(s24['overflow_fraction'])}",
        f"at d_k = 2048, {unscaled(32.0, 2048)['theory_overflow_fraction']:.0%} and "
        f"{unscaled(24.0, 2048)['theory_overflow_fraction']:.1%} of all scores.",
    ]


def beyond_the_textbook_sentences() -> list[str]:
    kurtosis = {
        r["dist"]: r["d_k"] * r["theory_excess_kurtosis"]
        for r in rows("variance_distributions")
        if r["scaling"] == "sqrt" and r["d_k"] == 1024
    }
    assert all(
        abs(r["d_k"] * r["theory_excess_kurtosis"] - kurtosis[r["dist"]]) < 1e-9
        for r in rows("variance_distributions")
        if r["scaling"] == "sqrt"
    )  # the same at every d_k

    def correlated(scaling: str, d_k: int) -> dict:
        return one("variance_correlated", rho=0.5, scaling=scaling, d_k=d_k)

    def weight(scaling: str, d_k: int) -> float:
        return one("saturation_correlated", scaling=scaling, d_k=d_k, seq_len=128)["max_prob_mean"]

    rules = {r["scaling"]: r["max_prob_mean"] for r in rows("saturation_rules") if r["d_k"] == 4}
    return [
        "sits at m4^2 - 3 for every d_k: {:.2g} (Gaussian), {:.2g} (uniform), {:.2g} (Rademacher), {:.2g} "
        "(Student-t, df 10).".format(*(kurtosis[d] for d in ("gaussian", "uniform", "rademacher", "student-t"))),
        f"with rho = 0.5 the mean of q.k grows from {correlated('none', 1)['theory_mean']:g} to "
        f"{correlated('none', 1024)['theory_mean']:g} over d_k = 1 ... 1024",
        f"1/sqrt(d_k) leaves a mean of {correlated('sqrt', 1024)['theory_mean']:g}",
        f"(largest weight {weight('sqrt', 4):.3f} at d_k = 4, {weight('sqrt', 1024):.3f} at 1024). 1/d_k holds the "
        f"mean at rho and the largest weight at {weight('linear', 1024):.3f}.",
        f"(largest weight {rules['qknorm']:.3f} at d_k = 4 against {rules['sqrt']:.3f} for 1/sqrt(d_k), n = 128)",
    ]


@pytest.mark.parametrize(
    "sentences",
    [
        saturation_sentences,
        gradient_sentences,
        per_row_sentences,
        long_sequence_sentences,
        precision_sentences,
        beyond_the_textbook_sentences,
    ],
)
def test_readme_quotes_the_committed_rows(sentences):
    for sentence in sentences():
        assert sentence in README, sentence


def test_the_report_says_when_the_scores_were_rounded_up_to_whole_blocks():
    """histogram_dk100 asks for 2^23 scores; the sampler draws whole blocks, and the report says both."""
    import tomllib

    asked = tomllib.loads((ROOT / "configs" / "histogram_dk100.toml").read_text())["samples"]
    drawn = rows("histogram_dk100")[0]["n_scores"]
    assert drawn > asked
    report = " ".join((ROOT / "results" / "README.md").read_text(encoding="utf-8").split())
    assert f"At d_k = 100, {drawn:,} scores ({asked:,} asked for, rounded up to whole sampling blocks):" in report
