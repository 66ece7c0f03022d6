"""Per-head statistics of real queries and keys: the probe's kernel.

For one sequence and one layer, q and k are (heads, tokens, d_k) as the model computes them before the
scale c (1/sqrt(d_k), or one value per query token), and the logits are c q.k over the keys a query
sees (all, or those at or before it when `causal`). Per head this returns, as numbers of that sequence:
the logits' mean, standard deviation and excess kurtosis; the variance of the raw scores q.k against
two predictions from the same sequence's entries (below); per query row the entropy over ln(keys it
sees), the largest weight and whether it reaches `threshold` (means over rows); and the share of the
attention each key position receives (the mean over rows of its weight), whose largest value and
position, and the shares of the first and last positions ([CLS] and [SEP] for a BERT sequence), are
kept. Sequences are independent draws of text, so the experiment averages these over sequences and
takes standard errors across them. A histogram of the logits (fixed edges) goes with them, for the
figures.

The two predictions of Var(q.k), each for a query and a key drawn independently:
- independent coordinates, each dimension i with its own mean and variance over the sequence's tokens
  (mu_i, a_i for q; nu_i, b_i for k). q.k = sum_i q_i k_i is then a sum of independent terms, and
  Var(q_i k_i) = E[q_i^2] E[k_i^2] - mu_i^2 nu_i^2 = (a_i + mu_i^2)(b_i + nu_i^2) - mu_i^2 nu_i^2, so
      Var(q.k) = sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2),
  of which the means' terms sum_i (a_i nu_i^2 + b_i mu_i^2) are `mean_share`. Over all n^2 pairs of a
  sequence the measured variance is exactly tr(C_q C_k) + nu^T C_q nu + mu^T C_k mu (C the entries'
  covariance matrices over tokens), whose diagonal terms are this prediction: the ratio of the two is
  1 plus what the covariances between dimensions add (which may be negative). With a causal mask the
  pairs are not all pairs, and dependence between a query and the keys it sees enters as well.
- iid entries: d_k Var(q_i) Var(k_i), one variance pooled over tokens and dimensions. It counts the
  spread of the per-dimension means as variance and leaves the means out, so its ratio mixes the means
  with correlation. It is kept because it is the textbook's variance (d_k sigma_q^2 sigma_k^2 behind
  1/sqrt(d_k)) and the one the iid spread and exact theory beside the measurements take
  (experiments/probe/measure.py): per sequence, under one scale, its ratio is (s / s_iid)^2.
"""

from __future__ import annotations

import numpy as np

EDGES = np.linspace(-50.0, 50.0, 501)  # the logits' histogram: 0.2 wide bins
STATS = (
    "logit_mean",
    "logit_std",
    "logit_kurtosis",
    "score_variance",
    "independent_score_variance",
    "independent_variance_ratio",
    "mean_share",
    "iid_score_variance",
    "iid_variance_ratio",
    "q_mean",
    "q_var",
    "k_mean",
    "k_var",
    "entropy_ratio",
    "max_prob",
    "saturated",
    "top_share",
    "top_position",
    "first_share",
    "last_share",
)


def independent_score_variance(
    q_mean: np.ndarray, q_var: np.ndarray, k_mean: np.ndarray, k_var: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Var(q.k) for independent q and k with independent coordinates of means mu_i, nu_i and variances
    a_i, b_i (the last axis is i): sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2), and the means' part of it,
    sum_i (a_i nu_i^2 + b_i mu_i^2)."""
    means = (q_var * k_mean**2 + k_var * q_mean**2).sum(axis=-1)
    return (q_var * k_var).sum(axis=-1) + means, means


def head_stats(
    q: np.ndarray, k: np.ndarray, scale: np.ndarray | float, causal: bool = False, threshold: float = 0.99
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """STATS per head (each (heads,), float64) and the logits' histogram counts (heads, len(EDGES) + 1):
    the last column counts logits outside the edges."""
    q64, k64 = q.astype(np.float64), k.astype(np.float64)
    _, tokens, d = q64.shape
    scores = q64 @ k64.transpose(0, 2, 1)  # (heads, queries, keys)
    c = np.broadcast_to(np.asarray(scale, dtype=np.float64), (tokens,))[None, :, None]
    logits = scores * c
    seen = np.tril(np.ones((tokens, tokens), bool)) if causal else np.ones((tokens, tokens), bool)
    pairs = logits[:, seen]  # (heads, pairs a query sees): every moment below is over these
    mean = pairs.mean(axis=1)
    centred = pairs - mean[:, None]
    m2 = (centred**2).mean(axis=1)
    # the fourth moment of the standardised logits: centred**4 would overflow or underflow at spreads far from 1
    z = np.divide(centred, np.sqrt(m2)[:, None], out=np.zeros_like(centred), where=m2[:, None] > 0)
    kurtosis = np.where(m2 > 0, (z**4).mean(axis=1) - 3.0, np.nan)  # none for logits that do not vary
    s_var = scores[:, seen].var(axis=1)
    independent, means = independent_score_variance(
        q64.mean(axis=1), q64.var(axis=1), k64.mean(axis=1), k64.var(axis=1)
    )
    q_var, k_var = q64.var(axis=(1, 2)), k64.var(axis=(1, 2))
    iid = d * q_var * k_var

    masked = np.where(seen, logits, -np.inf)
    shifted = masked - masked.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=-1)
    p = e / total[..., None]
    with np.errstate(invalid="ignore"):
        h = np.log(total) - np.where(seen, e * shifted, 0.0).sum(axis=-1) / total
    keys = seen.sum(axis=1)  # keys per query row
    rows = keys > 1  # a row with one key has no entropy ratio
    ratio = (h[:, rows] / np.log(keys[rows])).mean(axis=1)
    largest = p.max(axis=-1)
    share = p.mean(axis=1)  # (heads, keys): the attention each key position receives, averaged over rows
    outside = ((pairs < EDGES[0]) | (pairs > EDGES[-1])).sum(axis=1)
    counts = np.concatenate([np.stack([np.histogram(v, bins=EDGES)[0] for v in pairs]), outside[:, None]], axis=1)
    stats = {
        "logit_mean": mean,
        "logit_std": np.sqrt(m2),
        "logit_kurtosis": kurtosis,
        "score_variance": s_var,
        "independent_score_variance": independent,
        # none where no coordinate varies over the tokens (the prediction is 0)
        "independent_variance_ratio": np.divide(
            s_var, independent, out=np.full_like(s_var, np.nan), where=independent > 0
        ),
        "mean_share": np.divide(means, independent, out=np.full_like(means, np.nan), where=independent > 0),
        "iid_score_variance": iid,
        "iid_variance_ratio": s_var / iid,
        "q_mean": q64.mean(axis=(1, 2)),
        "q_var": q_var,
        "k_mean": k64.mean(axis=(1, 2)),
        "k_var": k_var,
        "entropy_ratio": ratio,
        "max_prob": largest.mean(axis=1),
        "saturated": (largest >= threshold).mean(axis=1),
        "top_share": share.max(axis=1),
        "top_position": share.argmax(axis=1).astype(np.float64),
        "first_share": share[:, 0],
        "last_share": share[:, -1],
    }
    return stats, counts
