"""The variance experiment: moments of the scores c * q.k, measured against their closed forms.

For iid entries with mean mu and std sigma, Var(q.k) = d_k (sigma^4 + 2 sigma^2 mu^2) (theory.py);
dividing by sqrt(d_k) brings it back to sigma^4 + 2 sigma^2 mu^2, independent of d_k.

Scores are drawn as blocks S = Q K^T of n queries by n keys (float32 products), reduced block by block
into float64 power sums, and never held beyond one chunk. The scaled and the unscaled rows come from the
same draws: one pass, scaled moments being c^k times the unscaled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sqrtdk import theory
from sqrtdk.moments import REPLICATES, Moments, add_in_order, batch_means, block_power_sums
from sqrtdk.sampling import qk_blocks, task_seed

CHUNK_SCORES = 2**18  # scores per chunk: 1 MiB of float32 scores, a few MiB of float64 work arrays
HIST_BINS = 120
HIST_HALF_WIDTH = 6.0  # histogram spans theory mean +- 6 theory std
LEVEL = 0.999


def block_size(d_k: int) -> int:
    """Queries (and keys) per block.

    Larger blocks draw fewer random numbers per score (2 d_k / n) but share each q and k among more scores,
    which correlates them; n ~ d_k / 2 balances the two. The intervals are valid for any n.
    """
    return int(min(256, max(8, d_k // 2)))


@dataclass(frozen=True)
class ScoreSample:
    """What one task measured about the unscaled scores q.k at one d_k."""
    d_k: int
    block: int                       # queries = keys per block
    pooled: Moments                  # all scores
    replicates: tuple[Moments, ...]  # independent replicates, in stream order
    edges: np.ndarray                # (bins + 1,) histogram edges of q.k
    counts: np.ndarray               # (bins,) scores per bin
    outside: int                     # scores outside the edges

    @property
    def n_scores(self) -> int:
        return int(self.pooled.n)


def sample_scores(d_k: int, samples: int, mean: float, std: float, seed: int,
                  chunk_scores: int = CHUNK_SCORES, replicates: int = REPLICATES) -> ScoreSample:
    """Draw at least `samples` scores q.k in `replicates` equal replicates and reduce them as they stream."""
    n = block_size(d_k)
    blocks_per_replicate = max(1, math.ceil(samples / (replicates * n * n)))
    chunk_blocks = max(1, chunk_scores // (n * n))
    rng = np.random.default_rng(task_seed(seed, {"d_k": d_k, "mean": mean, "std": std}))

    shift = theory.score_mean(d_k, mean, std)
    spread = math.sqrt(theory.score_variance(d_k, mean, std))
    edges = shift + np.linspace(-HIST_HALF_WIDTH, HIST_HALF_WIDTH, HIST_BINS + 1) * spread
    counts = np.zeros(HIST_BINS, dtype=np.int64)
    per_bin = HIST_BINS / (edges[-1] - edges[0])

    total = np.zeros(4)
    reps = []
    for _ in range(replicates):
        sums = np.zeros(4)
        for q, k in qk_blocks(rng, blocks_per_replicate, n, d_k, mean, std, chunk_blocks):
            scores = np.matmul(q, k.transpose(0, 2, 1))  # (b, n, n) float32
            sums = add_in_order(sums, block_power_sums(scores, shift))
            index = np.floor((scores.ravel() - edges[0]) * per_bin).astype(np.int64)
            counts += np.bincount(index[(index >= 0) & (index < HIST_BINS)], minlength=HIST_BINS)
        count = blocks_per_replicate * n * n
        reps.append(Moments.from_power_sums(count, sums, shift))
        total = add_in_order(total, sums[None, :])
    pooled = Moments.from_power_sums(replicates * blocks_per_replicate * n * n, total, shift)
    return ScoreSample(d_k, n, pooled, tuple(reps), edges, counts, pooled.n - int(counts.sum()))


def variance_rows(sample: ScoreSample, mean: float, std: float, level: float = LEVEL) -> list[dict]:
    """One row per scaling: measured mean, variance with its interval, kurtosis, and their theory."""
    rows = []
    for scaling in theory.SCALINGS:
        c = theory.scale(sample.d_k, scaling)
        pooled = sample.pooled.scaled(c)
        reps = [m.scaled(c) for m in sample.replicates]
        mean_est = batch_means(pooled.mean, np.array([m.mean for m in reps]), level)
        var_est = batch_means(pooled.variance, np.array([m.variance for m in reps]), level)
        kurt_est = batch_means(pooled.excess_kurtosis, np.array([m.excess_kurtosis for m in reps]), level)
        rows.append({
            "d_k": sample.d_k,
            "scaling": scaling,
            "n_scores": sample.n_scores,
            "mean": mean_est.value,
            "mean_se": mean_est.se,
            "variance": var_est.value,
            "variance_se": var_est.se,
            "variance_ci_low": var_est.ci_low,
            "variance_ci_high": var_est.ci_high,
            "theory_mean": theory.score_mean(sample.d_k, mean, std, c),
            "theory_variance": theory.score_variance(sample.d_k, mean, std, c),
            "excess_kurtosis": kurt_est.value,
            "excess_kurtosis_se": kurt_est.se,
            "theory_excess_kurtosis": theory.score_excess_kurtosis(sample.d_k, mean, std),
        })
    return [{k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()} for row in rows]
