"""Seed 002: q/k/v projections, the multi-head reshape, and the axis-order pitfall.

The article projects tokens x of shape (batch, seq, d_model) to Q, K and V, reshapes each to
(batch, seq, heads, head_dim), and then computes the scores with np.einsum('bhid,bhjd->bhij', q, k), an
expression written for (batch, heads, seq, head_dim). numpy cannot know: it reads the seq axis as 'h' and
the heads axis as 'i' and 'j', so every position attends over the heads of that same position, and no
information moves between positions at all. The shapes fit whatever seq and heads are, so nothing fails.

A test catches it in one line: self-attention must let token j change the output at position i. The fix
is the transpose to (batch, heads, seq, head_dim) before the einsum, which sqrtdk.core.multihead does.

Run: python experiments/seed002_multihead_reshape.py [--quick] [--out results/studies]
"""

from __future__ import annotations

import numpy as np
from common import heading, options, say

from sqrtdk.core import multihead


def article_attention(x, w_q, w_k, w_v, heads):
    """The article's code, as written: reshape without the transpose, einsum written for heads first."""
    batch, seq, d_model = x.shape
    head_dim = d_model // heads
    q = (x @ w_q).reshape(batch, seq, heads, head_dim)
    k = (x @ w_k).reshape(batch, seq, heads, head_dim)
    v = (x @ w_v).reshape(batch, seq, heads, head_dim)
    scores = np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(head_dim)
    probs = np.exp(scores) / np.sum(np.exp(scores), axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", probs, v), probs


def fixed_attention(x, w_q, w_k, w_v, heads):
    """The same with the heads moved in front of the positions (sqrtdk.core.multihead.split_heads)."""
    q, k, v = (multihead.split_heads(x @ w, heads) for w in (w_q, w_k, w_v))
    out, probs = multihead.attention(q, k, v)
    return out.transpose(0, 2, 1, 3), probs  # back to (batch, seq, heads, head_dim), like the article's


def influence(forward, x, weights, heads, source: int, target: int) -> float:
    """How much the output at position `target` moves when token `source` is nudged (finite difference)."""
    moved = x.copy()
    moved[:, source] += 1e-3
    return float(
        np.abs(forward(moved, *weights, heads)[0][:, target] - forward(x, *weights, heads)[0][:, target]).max()
    )


def main(argv: list[str] | None = None) -> None:
    options(__doc__, argv)  # nothing to sample: the same in --quick mode
    batch, seq, d_model, heads = 1, 3, 4, 2  # the article's sizes
    rng = np.random.default_rng(2)
    x = rng.normal(size=(batch, seq, d_model))
    weights = [rng.normal(scale=d_model**-0.5, size=(d_model, d_model)) for _ in range(3)]

    heading("1. Shapes")
    _, wrong = article_attention(x, *weights, heads)
    _, right = fixed_attention(x, *weights, heads)
    say(
        f"With seq = {seq} and heads = {heads}, the article's attention weights have shape {wrong.shape}: "
        f"(batch, seq, heads, heads), {heads} x {heads} weights among the heads of each position. The fixed "
        f"weights have shape {right.shape}: (batch, heads, seq, seq), each head's {seq} x {seq} weights among "
        "positions. Both pass through the second einsum and give an output of the article's shape."
    )

    heading("2. The test that catches it: does token 0 reach position 2?")
    for name, forward in (("article", article_attention), ("fixed", fixed_attention)):
        moved = influence(forward, x, weights, heads, source=0, target=2)
        verdict = "attends across positions" if moved > 1e-9 else "FAILS: position 2 never sees token 0"
        print(f"{name:>8}: output at position 2 moves by {moved:.3g} -> {verdict}")
    print()

    say(
        "tests/test_multihead.py runs the same check on sqrtdk.core.multihead.self_attention and on the article's "
        "version, and requires the first to pass and the second to fail; seed003_mhsa_forward.py checks the "
        "fixed forward pass against a per-head reference."
    )


if __name__ == "__main__":
    main()
