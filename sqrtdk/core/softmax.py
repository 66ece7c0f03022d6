"""Row-wise softmax and the quantities that say how saturated it is, computed stably.

For logits s of one row (one query over n keys), p = softmax(s):
- entropy H = -sum_j p_j ln p_j = lse(s) - sum_j p_j s_j (log-sum-exp, so no log of an underflowed 0);
- participation 1 / sum_j p_j^2;
- Jacobian J = diag(p) - p p^T, never formed: ||J||_F^2 = sum p^2 - 2 sum p^3 + (sum p^2)^2, evaluated
  with the largest weight split off so that nearly one-hot rows keep their digits;
- for L = sum_j g_j p_j, dL/ds = J g = p * (g - p.g).
Every function works on a batch of rows: arrays (..., n), float64; the last axis runs over keys.
"""

from __future__ import annotations

import numpy as np


def softmax(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p = softmax(s) per row, the shifted logits s - max s, and ln sum_j exp(s_j - max s).

    Shifting the max to 0 keeps exp from overflowing; what underflows to 0 is a weight below 1e-308.
    """
    shifted = s - s.max(axis=-1, keepdims=True)  # (rows, n), every entry <= 0
    e = np.exp(shifted)
    total = e.sum(axis=-1, keepdims=True)  # >= 1
    return e / total, shifted, np.log(total[..., 0])


def entropy(p: np.ndarray, shifted: np.ndarray, log_total: np.ndarray) -> np.ndarray:
    """-sum p ln p from the shifted logits: ln p_j = shifted_j - log_total."""
    return log_total - np.einsum("...j,...j->...", p, shifted)


def fro_from_rest(delta: np.ndarray, s2: np.ndarray, s3: np.ndarray) -> np.ndarray:
    """||J||_F from the row's largest weight p_max = 1 - delta and the sums s2, s3 of the squares and cubes
    of the other weights.

    sum p^2 - 2 sum p^3 + (sum p^2)^2 with p_max = 1 - delta expanded is
    (1 - delta)^2 delta^2 + s2 (1 + 2 (1 - delta)^2) + s2^2 - 2 s3: every term is small when the row is
    nearly one-hot, so nothing cancels (the unexpanded form loses all digits there).
    """
    m = 1 - delta
    return np.sqrt(np.maximum(m * m * delta * delta + s2 * (1 + 2 * m * m) + s2 * s2 - 2 * s3, 0.0))


def jacobian_fro(p: np.ndarray) -> np.ndarray:
    """||diag(p) - p p^T||_F per row, never forming J (fro_from_rest)."""
    rest = p.copy()
    np.put_along_axis(rest, p.argmax(axis=-1)[..., None], 0.0, axis=-1)  # every weight but the largest
    r2 = rest * rest
    return fro_from_rest(rest.sum(axis=-1), r2.sum(axis=-1), np.einsum("...j,...j->...", r2, rest))


def jacobian_diag_max(p: np.ndarray) -> np.ndarray:
    """max_j p_j (1 - p_j) per row: the largest diagonal entry of J."""
    return (p * (1 - p)).max(axis=-1)


def grad_logits(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/ds = J g = p * (g - p.g) for L = sum_j g_j p_j."""
    return p * (g - np.einsum("...j,...j->...", p, g)[..., None])
