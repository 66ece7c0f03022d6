"""Streamed moments and histogram of the scores q.k (and of cos(q, k)), the variance experiment's kernel.

Scores are drawn as blocks S = Q K^T of n queries by n keys (float32 products), reduced block by block
into float64 power sums, and never held beyond one chunk. Rules that multiply q.k by a constant share one
pass (their moments are c^k times the unscaled ones); QK-norm has its own sums of cos(q, k). With
correlated queries and keys (rho) only a query and its own key are correlated, so each score is one such
pair. With projected inputs a block is a sequence of tokens through a fresh layer, every head's scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sqrtdk.core import theory
from sqrtdk.core.moments import (
    PIECE,
    REPLICATES,
    MapReplicates,
    Moments,
    Stopped,
    add_in_order,
    block_power_sums,
    serial,
)
from sqrtdk.core.sampling import Source, projected_blocks, qk_blocks, task_seed
from sqrtdk.core.theory import Entries

CHUNK_SCORES = 2**18  # scores per chunk: 1 MiB of float32 scores, a few MiB of float64 work arrays
CHUNK_DRAWS = 2**22  # draws per chunk: 16 MiB of float32 entries
HIST_BINS = 120
HIST_HALF_WIDTH = 6.0  # histogram spans theory mean +- 6 theory std
PAIR_ENTRIES = 2**18  # entries of q per block of correlated pairs (a few MiB)
TOKENS = 128  # tokens per sequence (projected inputs)


def block_size(d_k: int, samples: int = 2**40, replicates: int = REPLICATES) -> int:
    """Queries (and keys) per block: n = 2 d_k, between 16 and 512, and no larger than one block per
    replicate needs (so that a small run is not rounded up to 64 large blocks).

    A block of n queries and n keys costs 2 d_k n normal draws for n^2 scores: larger blocks draw less per
    score, but their scores share each q and k and carry less information each (for mean-0 entries the
    variance of the estimated Var(q.k) is (2 d^2 + 6 d + 4 d n) / N over N scores). The time to a given
    precision, (2 d t_draw / n + 2 d t_flop + t_reduce) (2 d^2 + 4 d n), is least near n = d sqrt(t_draw /
    (2 d t_flop + t_reduce)), about 2 d_k on the machines sqrtdk is measured on. The intervals are valid
    for any n.
    """
    return int(max(16, min(512, 2 * d_k, math.isqrt(max(1, samples // replicates)))))


@dataclass(frozen=True)
class Channel:
    """Streaming moments and histogram of one kind of score: q.k ("dot") or cos(q, k) ("cos")."""

    pooled: Moments  # all scores, in the units u (below)
    shift: float  # the power sums are of u - shift
    total: np.ndarray  # (4,) power sums of all scores
    sums: np.ndarray  # (replicates, 4) power sums of each independent replicate, in stream order
    edges: np.ndarray | None  # (bins + 1,) histogram edges; None when no histogram was asked for
    counts: np.ndarray | None  # (bins,) scores per bin
    outside: int  # scores outside the edges
    unit: float = 1.0  # the power sums and `pooled` are of u, with score = unit * u + offset
    offset: float = 0.0


@dataclass(frozen=True)
class ScoreSample:
    """What one task measured about the scores at one d_k."""

    d_k: int
    block: int  # queries = keys per block; pairs per block; or tokens per sequence
    source: Source
    channels: dict[str, Channel]

    @property
    def n_scores(self) -> int:
        return int(self.channels["dot"].pooled.n)

    @property
    def edges(self) -> np.ndarray | None:
        return self.channels["dot"].edges

    @property
    def counts(self) -> np.ndarray | None:
        return self.channels["dot"].counts

    @property
    def outside(self) -> int:
        return self.channels["dot"].outside


def geometry(d_k: int, source: Source, samples: int = 2**40, replicates: int = REPLICATES) -> tuple[str, int, int]:
    """(layout, n, scores per block): all pairs of an n x n block, n matched pairs, or a sequence of n tokens."""
    if source.inputs == "projected":
        return "sequence", TOKENS, source.heads * TOKENS * TOKENS
    if source.entries.rho:
        pairs = int(min(4096, max(16, PAIR_ENTRIES // d_k)))  # each pair costs 2 d_k draws: small blocks at large d_k
        return "pairs", pairs, pairs
    n = block_size(d_k, samples, replicates)
    return "block", n, n * n


def chunk_size(d_k: int, layout: str, n: int, per_block: int, chunk_scores: int = CHUNK_SCORES) -> int:
    """Blocks drawn at once: at most `chunk_scores` scores and CHUNK_DRAWS draws (at large d_k a block of
    a few pairs holds millions of draws), at least one block. The rows do not depend on it."""
    draws = 2 * n * d_k if layout != "sequence" else 1
    return max(1, min(chunk_scores // per_block, CHUNK_DRAWS // draws))


def theory_dot(d_k: int, source: Source, n: int, c: float = 1.0) -> tuple[float, float]:
    """Theoretical mean and variance of c q.k for this source."""
    if source.inputs == "projected":
        return 0.0, theory.projected_score_variance(
            source.d_model, source.heads, n, source.entries, source.init, source.init_std, source.layernorm, c
        )
    return theory.score_mean(d_k, source.entries, c), theory.score_variance(d_k, source.entries, c)


class _Stream:
    """Power sums about `shift` and a histogram of one kind of score, for one replicate."""

    def __init__(self, shift: float, edges: np.ndarray | None):
        self.shift, self.sums = shift, np.zeros(4)
        self.edges = edges
        self.counts = None if edges is None else np.zeros(len(edges) + 1, dtype=np.int64)  # and both outsides

    def add(self, scores: np.ndarray) -> None:  # scores: (b, ...) one row per block
        self.sums = add_in_order(self.sums, block_power_sums(scores, self.shift))
        if self.counts is not None and self.edges is not None:
            bins = len(self.edges) - 1
            # bin + 1, clipped to [0, bins + 1]: 0 and bins + 1 collect what falls outside the edges
            t = scores.dtype.type
            low, per_unit = t(self.edges[0]), t(bins / (self.edges[-1] - self.edges[0]))
            flat = scores.ravel()
            for start in range(0, flat.size, PIECE):  # in cache, like the power sums
                where = flat[start : start + PIECE] - low
                where *= per_unit
                where += t(1)
                np.clip(where, 0, bins + 1, out=where)
                self.counts += np.bincount(where.astype(np.int32), minlength=bins + 2)


def _cosines(u: np.ndarray, a: np.ndarray, b: np.ndarray, lam: float, pairs: bool) -> np.ndarray:
    """cos(q, k) from the standardised draws: q.k / (|q| |k|) = (u + d lam^2) / (|a + lam| |b + lam|),
    in float64 when the mean is not 0 (the cosines then crowd near 1). A zero vector counts as 0."""
    if lam:
        d = a.shape[-1]
        norm_a = np.sqrt(
            np.einsum("...d,...d->...", a, a, dtype=np.float64) + 2 * lam * a.sum(-1, dtype=np.float64) + d * lam * lam
        )
        norm_b = np.sqrt(
            np.einsum("...d,...d->...", b, b, dtype=np.float64) + 2 * lam * b.sum(-1, dtype=np.float64) + d * lam * lam
        )
        u = u + d * lam * lam
    else:
        norm_a, norm_b = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = u / (norm_a * norm_b if pairs else norm_a[..., :, None] * norm_b[..., None, :])
    return np.nan_to_num(cosines, nan=0.0)


def _channel(
    streams: list[_Stream], per_replicate: int, edges: np.ndarray | None, unit: float = 1.0, offset: float = 0.0
) -> Channel:
    """Pool the replicates in order (fixed addition order: the same result for any thread count)."""
    total = np.zeros(4)
    for stream in streams:
        total = add_in_order(total, stream.sums[None, :])
    shift = streams[0].shift
    pooled = Moments.from_power_sums(per_replicate * len(streams), total, shift)
    sums = np.array([s.sums for s in streams])
    if edges is None:
        return Channel(pooled, shift, total, sums, None, None, 0, unit, offset)
    counts = np.sum([s.counts for s in streams if s.counts is not None], axis=0)
    return Channel(pooled, shift, total, sums, edges, counts[1:-1], int(counts[0] + counts[-1]), unit, offset)


def _edges(centre: float, spread: float) -> np.ndarray:
    return centre + np.linspace(-HIST_HALF_WIDTH, HIST_HALF_WIDTH, HIST_BINS + 1) * spread


def sample_scores(
    d_k: int,
    samples: int,
    mean: float = 0.0,
    std: float = 1.0,
    seed: int = 0,
    source: Source | None = None,
    cosine: bool = False,
    histogram: bool = True,
    chunk_scores: int = CHUNK_SCORES,
    replicates: int = REPLICATES,
    map_replicates: MapReplicates = serial,
) -> ScoreSample:
    """Draw at least `samples` scores in `replicates` equal replicates and reduce them as they stream.

    `source` defaults to iid Gaussian entries with `mean` and `std`; `cosine` also measures cos(q, k);
    `histogram` counts the scores into bins for the figures. Each replicate has its own random stream
    (spawned from the task's), so `map_replicates` may run them on threads and the numbers are the same
    on any number of them.
    """
    source = source or Source(Entries(mean=mean, std=std))
    d_k = source.d_k(d_k)
    layout, n, per_block = geometry(d_k, source, samples, replicates)
    blocks_per_replicate = max(1, math.ceil(samples / (replicates * per_block)))
    chunk_blocks = chunk_size(d_k, layout, n, per_block, chunk_scores)
    e = source.entries
    streams = task_seed(seed, {"d_k": d_k, "mean": e.mean, "std": e.std, **source.stream_key()}).spawn(replicates)

    # Direct entries are drawn standardised, q = mean + std a and k = mean + std b, and the scores are
    # reduced in the units u = (q.k - d mean^2) / std^2 = lam (sum a + sum b) + a.b with lam = mean / std:
    # the large common part d mean^2 is never formed (float32 could not keep the spread beside it), and
    # a tiny or huge std never underflows or overflows a float32 product; the moments of q.k follow
    # exactly from those of u (Moments.affine).
    direct = source.inputs == "direct"
    unit, offset = (e.std**2, d_k * e.mean**2) if direct else (1.0, 0.0)
    lam = e.mean / e.std if direct else 0.0
    centre, variance = theory_dot(d_k, source, n)
    dot_edges = _edges(centre, math.sqrt(variance)) if histogram else None
    centre_u = (centre - offset) / unit if direct else centre
    unit_edges = None if dot_edges is None else (dot_edges - offset) / unit
    cos_var = theory.cosine_variance(d_k, e) if direct else None
    cos_edges = (
        (_edges(0.0, math.sqrt(cos_var)) if cos_var else np.linspace(-1, 1, 2 * HIST_BINS + 1)) if histogram else None
    )

    def replicate(r: int, stop) -> tuple[_Stream, _Stream]:
        rng = np.random.default_rng(streams[r])
        dot, cos = _Stream(centre_u, unit_edges), _Stream(0.0, cos_edges)
        if layout == "sequence":
            blocks = projected_blocks(rng, blocks_per_replicate, n, n, source)
        else:
            blocks = qk_blocks(rng, blocks_per_replicate, n, n, d_k, e, chunk_blocks, standardised=True)
        for a, b in blocks:
            if stop.is_set():
                raise Stopped
            if layout == "pairs":
                scores = np.einsum("bnd,bnd->bn", a, b)  # (b, n): each query with its own key
            else:
                scores = np.matmul(a, b.swapaxes(-1, -2))  # (b, n, n) or (1, heads, n, n), float32
            if lam:
                sum_a, sum_b = a.sum(axis=-1, dtype=np.float64), b.sum(axis=-1, dtype=np.float64)
                sums = sum_a + sum_b if layout == "pairs" else sum_a[..., :, None] + sum_b[..., None, :]
                scores = scores.astype(np.float64) + lam * sums  # u, in float64
            dot.add(scores)
            if cosine:
                cos.add(_cosines(scores, a, b, lam, layout == "pairs"))
        return dot, cos

    parts = map_replicates(replicate, replicates)
    per_replicate = blocks_per_replicate * per_block
    channels = {"dot": _channel([dot for dot, _ in parts], per_replicate, dot_edges, unit, offset)}
    if cosine:
        channels["cos"] = _channel([cos for _, cos in parts], per_replicate, cos_edges)
    return ScoreSample(d_k, n, source, channels)
