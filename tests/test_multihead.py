"""Multi-head self-attention against a per-head reference that slices columns and never reshapes."""

import math

import numpy as np
import pytest

from sqrtdk.core.multihead import merge_heads, self_attention, split_heads


def weights(rng, d_model):
    return [rng.normal(scale=d_model**-0.5, size=(d_model, d_model)) for _ in range(4)]


def reference(x, w_q, w_k, w_v, w_o, heads):
    """Head h owns columns h*d_k:(h+1)*d_k of Q, K and V; loops over batch and heads, float64 throughout."""
    batch, n, d_model = x.shape
    d_k = d_model // heads
    out = np.zeros_like(x)
    for b in range(batch):
        q, k, v = x[b] @ w_q, x[b] @ w_k, x[b] @ w_v
        concat = []
        for h in range(heads):
            cols = slice(h * d_k, (h + 1) * d_k)
            scores = q[:, cols] @ k[:, cols].T / math.sqrt(d_k)  # (n, n): position against position
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            concat.append(p @ v[:, cols])
        out[b] = np.hstack(concat) @ w_o
    return out


def without_transpose(x, w_q, w_k, w_v, w_o, heads):
    """The pitfall: reshape to (batch, n, heads, d_k) and use an einsum written for (batch, heads, n, d_k)."""
    batch, n, d_model = x.shape
    d_k = d_model // heads
    q, k, v = ((x @ w).reshape(batch, n, heads, d_k) for w in (w_q, w_k, w_v))
    scores = np.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(d_k)  # silently (batch, n, heads, heads)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p, v).reshape(batch, n, d_model) @ w_o


def positions_interact(forward, x, params, heads) -> bool:
    """Self-attention must carry information between positions: changing token 0 changes output 1."""
    moved = x.copy()
    moved[:, 0] += 1.0
    return not np.allclose(forward(x, *params, heads)[:, 1], forward(moved, *params, heads)[:, 1])


@pytest.mark.parametrize("batch,n,d_model,heads", [(2, 5, 8, 2), (1, 3, 512, 8), (3, 8, 12, 3), (1, 1, 4, 4)])
def test_matches_per_head_reference(batch, n, d_model, heads):
    rng = np.random.default_rng(n * d_model)
    x = rng.normal(size=(batch, n, d_model))
    params = weights(rng, d_model)
    out, attn = self_attention(x, *params, heads)
    assert out.shape == (batch, n, d_model) and attn.shape == (batch, heads, n, n)
    np.testing.assert_allclose(out, reference(x, *params, heads), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(attn.sum(axis=-1), 1.0, rtol=1e-12)


def test_the_axis_order_pitfall_is_caught():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 6, 8))
    params = weights(rng, 8)
    assert positions_interact(lambda *a: self_attention(*a)[0], x, params, 2)
    assert not positions_interact(without_transpose, x, params, 2)  # each position only sees itself
    assert not np.allclose(without_transpose(x, *params, 2), reference(x, *params, 2))


def test_split_and_merge_are_inverse():
    x = np.arange(2 * 3 * 12, dtype=float).reshape(2, 3, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 3)
    assert np.array_equal(heads[1, 2, 0], x[1, 0, 6:9])  # head 2 of position 0 holds columns 6..8
    assert np.array_equal(merge_heads(heads), x)


def test_heads_must_divide_d_model():
    with pytest.raises(ValueError, match="heads: 5 is not allowed; the number of heads must divide d_model = 8"):
        split_heads(np.zeros((1, 2, 8)), 5)
