"""The scaling rules: the constant c that multiplies the logits under each, and how sqrtdk names each one.

    none    c = 1                                  the unscaled q.k
    sqrt    c = 1 / sqrt(d_k)                      Vaswani et al. 2017, "Attention Is All You Need", sec. 3.2.1
    linear  c = 1 / d_k                            Yang et al. 2022, "Tensor Programs V" (muP, arXiv
                                                   2203.03466): once q and k are correlated, as training makes
                                                   them, q.k grows like d_k, so muP divides by d_k
    qknorm  logits g cos(q, k), g = sqrt(d_k)      Dehghani et al. 2023, "Scaling Vision Transformers to 22
            by default                             Billion Parameters" (arXiv 2302.05442): LayerNorm on q and k
    logn    c = s ln(n) / sqrt(d_k)                Nakanishi 2025, "Scalable-Softmax Is Superior for
                                                   Attention" (arXiv 2501.19399)

Everything that tells rules apart in a table, a figure or a sentence is in RULES, in this order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SSMAX_S = 0.43  # Nakanishi 2025's s in its toy example


@dataclass(frozen=True)
class ScalingRule:
    name: str  # as the user gives it: --scaling sqrt
    words: str  # in sentences of the report: "1/sqrt(d_k)"
    label: str  # in figure legends (matplotlib mathtext)
    colour: str
    marker: str
    line: Any  # matplotlib line style of its curves
    normalised: bool  # logits g cos(q, k): independent of the lengths of q and k
    needs_seq_len: bool  # c depends on the sequence length n
    short: str = ""  # a figure's tick label where the legend's is too long (mathtext); `words` if empty

    @property
    def tick(self) -> str:
        return self.short or self.words


RULES = {
    rule.name: rule
    for rule in (
        ScalingRule("none", "unscaled", r"unscaled $q\cdot k$", "#D55E00", "o", ":", False, False),
        ScalingRule(
            "sqrt", "1/sqrt(d_k)", r"$q\cdot k\,/\sqrt{d_k}$", "#0072B2", "s", "-", False, False, r"$1/\sqrt{d_k}$"
        ),
        ScalingRule("linear", "1/d_k", r"$q\cdot k\,/\,d_k$", "#E69F00", "^", "-.", False, False, r"$1/d_k$"),
        ScalingRule("qknorm", "QK-norm", r"QK-norm $g\cos(q,k)$", "#009E73", "D", "--", True, False),
        ScalingRule(
            "logn",
            "Scalable-Softmax",
            r"SSMax $s\ln n\;q\cdot k/\sqrt{d_k}$",
            "#CC79A7",
            "v",
            (0, (5, 1, 1, 1, 1, 1)),  # dash-dot-dot: apart from 1/d_k's dash-dot in greyscale
            False,
            True,
            "SSMax",
        ),
    )
}
SCALINGS = tuple(RULES)
NORMALISING = tuple(name for name, rule in RULES.items() if rule.normalised)


def scale(
    d_k: int, scaling: str, seq_len: int | None = None, qk_gain: float | None = None, ssmax_s: float = SSMAX_S
) -> float:
    """The constant c that multiplies the logits under a scaling rule (see the module docstring).

    For qknorm it is the gain g applied to cos(q, k), by default sqrt(d_k): what LayerNorm-ed q and k with
    the usual 1/sqrt(d_k) give, and it keeps the logits at variance 1 as `sqrt` does for unit entries.
    """
    if scaling == "none":
        return 1.0
    if scaling == "sqrt":
        return 1.0 / math.sqrt(d_k)
    if scaling == "linear":
        return 1.0 / d_k
    if scaling == "qknorm":
        return math.sqrt(d_k) if qk_gain is None else qk_gain
    if scaling == "logn":
        if seq_len is None:
            raise ValueError("the logn rule needs a sequence length")
        return ssmax_s * math.log(seq_len) / math.sqrt(d_k)
    raise ValueError(f"unknown scaling {scaling!r}")
