"""Multi-head self-attention, forward pass (Vaswani et al. 2017, sec. 3.2.2).

For tokens x of shape (batch, n, d_model): Q = x W_q, K = x W_k, V = x W_v, each (batch, n, d_model), are
split into h heads of d_k = d_model / h:

    (batch, n, d_model) -> reshape (batch, n, h, d_k) -> transpose (batch, h, n, d_k)

and every head attends over positions: A = softmax(Q K^T / sqrt(d_k)) of shape (batch, h, n, n), O = A V.
The heads are put back side by side, (batch, n, h * d_k), and projected by W_o. The transpose matters:
without it, an einsum written for (batch, h, n, d_k) reads (batch, n, h, d_k) and attends across the heads
of one position instead of across positions, with no error when the shapes happen to fit.
"""

from __future__ import annotations

import math

import numpy as np

from sqrtdk.core.softmax import softmax


def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(batch, n, d_model) -> (batch, heads, n, d_k): one (n, d_k) block of positions per head."""
    batch, n, d_model = x.shape
    if d_model % heads:
        raise ValueError(f"heads: {heads} is not allowed; the number of heads must divide d_model = {d_model}")
    return x.reshape(batch, n, heads, d_model // heads).transpose(0, 2, 1, 3)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """(batch, heads, n, d_k) -> (batch, n, heads * d_k): the inverse of `split_heads`."""
    batch, heads, n, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, n, heads * d_k)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scaled dot-product attention over the second-to-last axis (positions).

    q, k, v: (..., n, d_k). Returns (output (..., n, d_k), weights (..., n, n)); `scale` defaults to
    1/sqrt(d_k), the last axis of q, as in torch.nn.functional.scaled_dot_product_attention.
    """
    c = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = c * np.einsum("...id,...jd->...ij", q, k)  # (..., n, n)
    weights = softmax(scores)[0]
    return np.einsum("...ij,...jd->...id", weights, v), weights


def self_attention(
    x: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    w_v: np.ndarray,
    w_o: np.ndarray,
    heads: int,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head self-attention of x (batch, n, d_model) with (d_model, d_model) weights, no biases.

    Returns (output (batch, n, d_model), weights (batch, heads, n, n)).
    """
    q, k, v = (split_heads(x @ w, heads) for w in (w_q, w_k, w_v))  # each (batch, heads, n, d_k)
    out, weights = attention(q, k, v, scale)
    return merge_heads(out) @ w_o, weights
