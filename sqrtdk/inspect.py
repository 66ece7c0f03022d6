"""`sqrtdk inspect`: what one attention configuration does at initialisation, in a few lines.

For a block of `d_model` with `heads` heads, layer-normalised tokens (|x|^2 = d_model) and W_q, W_k drawn
as `init` draws them, a head's logits c q.k have the variance core.theory.projected_score_variance gives
(c the scale), so the logits' spread s is its square root; under QK-norm the logits are g cos(q, k),
whose spread is g / sqrt(d_k). Where s sits against s_c = sqrt(2 ln n) decides whether the softmax
spreads or freezes. The entropy and the largest weight come from core.exact: a projected entry of a
layer-normalised token is normal with variance d_model v_w + v_b given the token, so a row's logits are
treated as core.exact.attention_row's (iid normal given the query, its norm chi-distributed); under
QK-norm as iid cosines. tests/test_inspect.py measures how close that is to sampled blocks. The warnings name the mistakes people make: a scale
of 1/sqrt(d_model) where the head dimension is d_model / heads, a QK-norm gain that leaves the softmax
flat, a spread that freezes it at this sequence length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqrtdk.core.rules import SCALINGS
from sqrtdk.core.theory import INITS
from sqrtdk.errors import InputError

FLAT = 0.98  # an entropy above this share of ln n: nearly uniform weights


@dataclass(frozen=True)
class Inspection:
    d_model: int
    heads: int
    d_k: int
    seq_len: int
    scale: float  # c: the factor of q.k, or the gain of cos(q, k) under QK-norm
    rule: str  # the named rule, or "custom" for a number
    qknorm: bool
    logit_std: float
    critical_logit_std: float
    entropy: float  # E[H], nats
    max_prob: float  # E[max p]
    participation: float  # E[1 / sum p^2]
    warnings: list[str] = field(default_factory=list)

    @property
    def entropy_ratio(self) -> float:
        return self.entropy / math.log(self.seq_len)


def inspect(
    d_model: int,
    heads: int,
    scale: str = "sqrt",
    qk_gain: float | None = None,
    init: str = "lecun",
    init_std: float | None = None,
    seq_len: int = 512,
) -> Inspection:
    """The configuration's per-head d_k, logit spread, its place against s_c, the predicted entropy and
    largest weight, and warnings; InputError (naming the option) for values that make no sense."""
    from sqrtdk.core import exact, rules, theory

    if d_model < 1 or heads < 1 or d_model % heads:
        raise InputError(
            f"--heads: {heads} is not allowed with --d-model {d_model}; the number of heads must divide d_model"
        )
    if seq_len < 2:
        raise InputError(f"--seq-len: {seq_len} is not allowed; a row needs at least 2 keys")
    if init not in INITS:
        raise InputError(f"--init: {init!r} is not allowed; choose from {', '.join(INITS)}")
    d_k = d_model // heads
    if scale in SCALINGS:
        rule, c = scale, rules.scale(d_k, scale, seq_len, qk_gain)
    else:
        try:
            c = float(scale)
        except ValueError:
            c = math.nan
        if not (math.isfinite(c) and c > 0):
            raise InputError(f"--scale: {scale!r} is not allowed; give a rule ({', '.join(SCALINGS)}) or a number > 0")
        rule = "custom"
    if qk_gain is not None and not (math.isfinite(qk_gain) and qk_gain > 0):
        raise InputError(f"--qk-norm-gain: {qk_gain} is not allowed; the gain must be a number > 0")
    if qk_gain is not None and rule != "qknorm":
        raise InputError(f"--qk-norm-gain: {qk_gain:g} is not allowed here; it is used only with --scale qknorm")
    if init_std is not None and init != "normal":
        raise InputError(f"--init-std: {init_std:g} is not allowed here; it is used only with --init normal")
    qknorm = rule == "qknorm"
    if qknorm and d_k < 3:
        raise InputError(f"--heads: {heads} leaves d_k = {d_k}; QK-norm's cosines need d_k >= 3 here")
    s_c = theory.critical_logit_std(seq_len)
    v_w, v_b = theory.init_variances(init, d_model, init_std)
    std = math.sqrt(d_model * v_w + v_b)  # a projected entry of a layer-normalised token
    if qknorm:
        s = c / math.sqrt(d_k)
    else:
        s = math.sqrt(theory.projected_score_variance(d_model, heads, seq_len, theory.DEFAULT, init, init_std, True, c))
    row = exact.attention_row(seq_len, d_k, 0.0, std, c, qknorm)
    if row is None:
        raise InputError(f"--scale: {scale!r} gives a logit spread of {s:.3g}, beyond {exact.S_MAX:g}")
    found = Inspection(
        d_model, heads, d_k, seq_len, c, rule, qknorm, s, s_c, row.entropy, row.max_prob, row.participation
    )
    found.warnings.extend(_warnings(found))
    return found


def _warnings(i: Inspection) -> list[str]:
    out = []
    if i.rule == "custom" and i.heads > 1 and math.isclose(i.scale, 1 / math.sqrt(i.d_model), rel_tol=1e-3):
        out.append(
            f"the scale 1/sqrt(d_model) = {i.scale:.4g} is not 1/sqrt(d_k) = {1 / math.sqrt(i.d_k):.4g}: with "
            f"{i.heads} heads each head's q.k sums d_k = {i.d_k} products, so its logits have a spread "
            f"sqrt(d_k / d_model) = {math.sqrt(i.d_k / i.d_model):.3g} of what 1/sqrt(d_k) gives"
        )
    if i.qknorm and i.entropy_ratio > FLAT:
        out.append(
            f"after QK-norm a gain of {i.scale:g} keeps the logits within [-{i.scale:g}, {i.scale:g}] with a spread "
            f"of {i.logit_std:.3g}: over {i.seq_len} keys the weights stay nearly uniform (entropy "
            f"{i.entropy_ratio:.3f} ln n); a gain of order sqrt(d_k) = {math.sqrt(i.d_k):.3g} (or a learnable one) "
            "gives the logits a unit spread"
        )
    elif i.entropy_ratio > FLAT:
        out.append(
            f"the logits' spread {i.logit_std:.3g} leaves the weights nearly uniform over {i.seq_len} keys "
            f"(entropy {i.entropy_ratio:.3f} ln n)"
        )
    if i.logit_std > i.critical_logit_std:
        out.append(
            f"the logits' spread {i.logit_std:.3g} is above s_c = sqrt(2 ln n) = {i.critical_logit_std:.3g} at n = "
            f"{i.seq_len}: the softmax starts frozen, its largest weight {i.max_prob:.3f} on average"
            + (" (unscaled: divide by sqrt(d_k))" if i.rule == "none" else "")
        )
    return out


def lines(i: Inspection, init: str) -> list[str]:
    """The few lines `sqrtdk inspect` prints."""
    if i.qknorm:
        how = f"QK-norm, logits g cos(q, k) with g = {i.scale:.4g}"
    elif i.rule == "custom":
        how = f"scale c = {i.scale:.4g}"
    else:
        how = f"rule {i.rule}, c = {i.scale:.4g}"
    where = "frozen onto a few keys" if i.logit_std > i.critical_logit_std else "spread over many keys"
    out = [
        f"d_model {i.d_model}, {i.heads} heads: d_k = {i.d_k} per head; {how}",
        f"logit spread at initialisation ({'any init' if i.qknorm else init}, layer-normalised tokens): "
        f"s = {i.logit_std:.4g}",
        f"at n = {i.seq_len}: s_c = sqrt(2 ln n) = {i.critical_logit_std:.4g}, s / s_c = "
        f"{i.logit_std / i.critical_logit_std:.3g}: {where}",
        f"predicted (exact for iid logits of that spread): entropy {i.entropy:.4g} nats = {i.entropy_ratio:.3f} "
        f"ln n, largest weight {i.max_prob:.4g}, participation 1/sum p^2 {i.participation:.4g} keys",
    ]
    return out + [f"warning: {w}" for w in i.warnings]
