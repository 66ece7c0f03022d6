"""Saturation and gradient experiments: one attention matrix per trial, statistics per query row.

A trial draws Q and K of shape (n, d_k) with entries iid N(mean, std^2), forms S = c Q K^T and
P = softmax(S) row by row (softmax.py). The gradient experiment also draws a random upstream gradient
G (n x n, iid N(0, 1)) and differentiates L = sum_ij G_ij P_ij: dL/dS_i = J_i G_i with J_i = diag(p_i) -
p_i p_i^T, and dL/dq_i = c (dL/dS_i) K.

Rows of one trial share K (and are not independent), so trials are grouped into independent replicates and
standard errors come from the spread of replicate means (moments.py). All scalings are computed from the
same draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sqrtdk import softmax as sm
from sqrtdk import theory
from sqrtdk.moments import REPLICATES, add_in_order, batch_means
from sqrtdk.sampling import qk_blocks, task_seed

CHUNK_SCORES = 2**17  # logits per chunk of query rows
MIN_REPLICATES = 8

SATURATION = ("max_prob_mean", "entropy_mean", "entropy_ratio_mean", "effective_tokens_mean",
              "participation_mean", "saturated_fraction")
GRADIENT = ("jacobian_fro_mean", "jacobian_diag_max_mean", "grad_logits_mean", "grad_q_mean",
            "vanishing_fraction")


def row_metrics(kind: str, logits: np.ndarray, c: float, k: np.ndarray | None, g: np.ndarray | None,
                level: float) -> np.ndarray:
    """Per-row values of the experiment's metrics, in the order of SATURATION or GRADIENT.

    logits: (trials, rows, n) float64; k: (trials, n, d_k); g like logits. `level` is the threshold
    (saturation) or eps (gradient). Returns (trials * rows, metrics), trial-major.
    """
    p, shifted, log_total = sm.softmax(logits)
    n = logits.shape[-1]
    if kind == "saturation":
        max_prob = p.max(axis=-1)
        h = sm.entropy(p, shifted, log_total)
        ratio = h / math.log(n) if n > 1 else np.full_like(h, np.nan)  # undefined with one key
        participation = 1.0 / np.einsum("...j,...j->...", p, p)
        values = [max_prob, h, ratio, np.exp(h), participation, max_prob >= level]
    else:
        fro = sm.jacobian_fro(p)
        d_logits = sm.grad_logits(p, g)  # (trials, rows, n)
        d_q = c * np.matmul(d_logits, k)  # (trials, rows, d_k)
        values = [fro, sm.jacobian_diag_max(p), np.linalg.norm(d_logits, axis=-1),
                  np.linalg.norm(d_q, axis=-1), fro < level]
    return np.stack([v.reshape(-1) for v in values], axis=1)


@dataclass(frozen=True)
class RowSample:
    """Replicate means of every metric at one (d_k, seq_len), per scaling."""
    kind: str
    d_k: int
    seq_len: int
    scalings: tuple[str, ...]
    n_rows: int
    replicate_means: np.ndarray  # (replicates, scalings, metrics)


def geometry(samples: int, n: int) -> tuple[int, int]:
    """(replicates, trials per replicate): whole trials, at least MIN_REPLICATES independent replicates."""
    trials = max(1, math.ceil(samples / n))
    replicates = min(REPLICATES, max(MIN_REPLICATES, trials))
    return replicates, math.ceil(trials / replicates)


def sample_rows(kind: str, d_k: int, seq_len: int, samples: int, mean: float, std: float, seed: int,
                level: float, scalings: tuple[str, ...] = theory.SCALINGS,
                chunk_scores: int = CHUNK_SCORES) -> RowSample:
    """Measure the `kind` metrics ("saturation" or "gradient") over at least `samples` query rows."""
    n = seq_len
    replicates, trials_per_replicate = geometry(samples, n)
    chunk_trials = max(1, chunk_scores // (n * n))  # whole trials at once when they are small
    chunk_rows = n if chunk_trials > 1 else max(1, chunk_scores // n)  # else query rows of one trial
    metrics = SATURATION if kind == "saturation" else GRADIENT
    # two streams, so that the draws do not depend on how trials and rows are chunked
    qk_seed, g_seed = task_seed(seed, {"kind": kind, "d_k": d_k, "seq_len": n, "mean": mean,
                                       "std": std}).spawn(2)
    qk_rng, g_rng = np.random.default_rng(qk_seed), np.random.default_rng(g_seed)
    scales = [theory.scale(d_k, s) for s in scalings]
    means = np.zeros((replicates, len(scalings), len(metrics)))

    for r in range(replicates):
        sums = np.zeros(len(scalings) * len(metrics))
        for q, k in qk_blocks(qk_rng, trials_per_replicate, n, d_k, mean, std, chunk_trials):
            for start in range(0, n, chunk_rows):
                scores = np.matmul(q[:, start:start + chunk_rows], k.transpose(0, 2, 1))  # (t, rows, n)
                scores = scores.astype(np.float64)
                g = g_rng.standard_normal(scores.shape) if kind == "gradient" else None
                per_row = np.concatenate([row_metrics(kind, c * scores, c, k, g, level) for c in scales],
                                         axis=1)  # (t * rows, scalings * metrics)
                sums = add_in_order(sums, per_row)
        means[r] = (sums / (trials_per_replicate * n)).reshape(len(scalings), len(metrics))
    return RowSample(kind, d_k, n, tuple(scalings), replicates * trials_per_replicate * n, means)


def attention_rows(sample: RowSample, mean: float, std: float) -> list[dict]:
    """One row per scaling: each metric's mean with its standard error `<name>_se`, and the theory."""
    metrics = SATURATION if sample.kind == "saturation" else GRADIENT
    n, d_k = sample.seq_len, sample.d_k
    rows = []
    for i, scaling in enumerate(sample.scalings):
        c = theory.scale(d_k, scaling)
        row: dict = {"d_k": d_k, "seq_len": n, "scaling": scaling, "n_rows": sample.n_rows,
                     "logit_std": theory.logit_std(d_k, mean, std, c),
                     "critical_logit_std": theory.critical_logit_std(n) if n > 1 else None}
        for j, name in enumerate(metrics):
            values = sample.replicate_means[:, i, j]
            if np.isnan(values).any():
                row[name], row[name + "_se"] = None, None
                continue
            est = batch_means(float(values.mean()), values, 0.95)
            row[name], row[name + "_se"] = est.value, est.se
        if sample.kind == "saturation":
            row["theory_entropy"] = theory.rem_entropy(n, d_k, mean, std, c)
            row["theory_participation"] = theory.rem_participation(n, d_k, mean, std, c)
        else:
            row["uniform_jacobian_fro"] = theory.uniform_jacobian_fro(n)
        rows.append(row)
    return rows
