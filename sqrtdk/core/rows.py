"""Per-query-row softmax statistics of sampled attention matrices: the saturation and gradient kernels.

A trial draws n keys and m = min(n, 256) queries of dimension d_k (sampling.py), forms the logits of each
scaling rule (c Q K^T, or g cos(q_i, k_j) for QK-norm) and P = softmax row by row (softmax.py). The
gradient experiment also draws a random upstream gradient G (iid N(0, 1), one per logit) and
differentiates L = sum_ij G_ij P_ij: dL/dS_i = J_i G_i with J_i = diag(p_i) - p_i p_i^T, and
dL/dq_i = c (dL/dS_i) K, or for QK-norm (g / |q_i|) (I - q^ q^T) sum_j (dL/dS_ij) k^_j.

Rows of one trial share their keys (and are not independent), so trials are grouped into independent
replicates, whose means this module returns (the experiments turn them into estimates). All rules are
computed from the same draws. With projected inputs a trial is a sequence of n tokens through a fresh
layer, and every head's rows count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sqrtdk.core.moments import REPLICATES, MapReplicates, Stopped, add_in_order, serial
from sqrtdk.core.rules import NORMALISING, SSMAX_S, scale
from sqrtdk.core.sampling import Source, affine, projected_blocks, qk_blocks, task_seed
from sqrtdk.core.softmax import fro_from_rest
from sqrtdk.core.theory import Entries

CHUNK_SCORES = 2**17  # logits per chunk of query rows
MIN_REPLICATES = 8
QUERIES = 256  # queries per trial: longer sequences add keys, not rows
CUT = 30.0  # logits this far below a row's largest get weight 0 (see row_metrics)

# The metrics each kernel returns, as named columns in this order: means over rows, or shares of rows.
SATURATION = (
    "max_prob_mean",
    "entropy_mean",
    "entropy_ratio_mean",
    "effective_tokens_mean",
    "participation_mean",
    "saturated_fraction",
)
GRADIENT = (
    "jacobian_fro_mean",
    "jacobian_sq_mean",
    "jacobian_diag_max_mean",
    "grad_logits_mean",
    "grad_q_mean",
    "vanishing_fraction",
)


# Per-row ||dL/dq_i|| of the gradient kernel, counted in bins of log10 (the mean hides how it spreads:
# frozen rows pass almost nothing, the others more than scaled rows do): LOW to HIGH in steps of WIDTH,
# plus a bin below LOW (exact zeros of one-hot rows included) and one from HIGH up.
GRAD_Q_BINS = (-8.0, 2.0, 0.25)  # (LOW, HIGH, WIDTH) of log10 ||dL/dq_i||


def grad_q_bins() -> int:
    """Bins of the per-row ||dL/dq_i|| counts, the two outer ones included."""
    low, high, width = GRAD_Q_BINS
    return round((high - low) / width) + 2


def grad_q_counts(values: np.ndarray) -> np.ndarray:
    """How many of `values` (per-row norms, >= 0) fall in each bin of GRAD_Q_BINS (grad_q_bins() of them:
    below LOW, the bins, from HIGH up), as float64 (whole numbers, exact)."""
    low, _, width = GRAD_Q_BINS
    with np.errstate(divide="ignore"):
        where = np.floor((np.log10(values) - low) / width)  # -inf for 0: below
    index = np.clip(where, -1, grad_q_bins() - 2).astype(np.int64) + 1
    return np.bincount(index, minlength=grad_q_bins()).astype(np.float64)


@dataclass(frozen=True)
class Rule:
    """A scaling rule as applied to one trial: logits = c * scores, or c * cos(q, k) when normalised."""

    name: str
    c: float
    normalised: bool


def rules_for(scalings: tuple[str, ...], d_k: int, n: int, qk_gain: float | None, ssmax_s: float) -> list[Rule]:
    return [Rule(s, scale(d_k, s, n, qk_gain, ssmax_s), s in NORMALISING) for s in scalings]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise sum of a * b over the last axis, accumulated in float64 (rows of up to 16384 float32 terms)."""
    return np.einsum("...j,...j->...", a, b, dtype=np.float64)


def row_metrics(
    kind: str, scores: np.ndarray, rule: Rule, q: np.ndarray, k: np.ndarray, g: np.ndarray | None, level: float
) -> dict[str, np.ndarray]:
    """Per-row values of the kind's metrics: SATURATION or GRADIENT name -> (t * rows,) float64.

    scores: (t, rows, n) q.k, float32 from the sampler (float64 works too); q: (t, rows, d_k) and
    k: (t, n, d_k); g like scores. `level` is the threshold (saturation) or eps (gradient). Rows are
    trial-major.

    The softmax is never normalised where it need not be: with s = c (scores - max) <= 0 and
    e = exp(s), Z = sum e, the largest weight is 1/Z, the entropy ln Z - sum(e s)/Z and sum p^2 is
    sum(e^2)/Z^2 (c > 0 for every rule, so the max of the logits is c times the max of the scores).
    """
    if rule.normalised:
        q_norm = np.linalg.norm(q, axis=-1)  # (t, rows)
        k_norm = np.linalg.norm(k, axis=-1)  # (t, n)
        shifted = scores * (rule.c / (q_norm[..., :, None] * k_norm[..., None, :]))
        shifted -= shifted.max(axis=-1, keepdims=True)
    else:
        shifted = scores - scores.max(axis=-1, keepdims=True)
        shifted *= shifted.dtype.type(rule.c)
    # Weights below e^-CUT times the largest are set to 0 instead of computed: n e^-30 < 2e-9 for n <= 16384,
    # far below float32 rounding, and float32 arithmetic on the subnormal numbers they would otherwise
    # produce runs a hundred times slower.
    e = np.zeros_like(shifted)
    np.exp(shifted, out=e, where=shifted >= -CUT)  # (t, rows, n), in [0, 1], the largest 1
    total = e.sum(axis=-1, dtype=np.float64)
    n = scores.shape[-1]
    if kind == "saturation":
        h = np.log(total) - _dot(e, shifted) / total
        ratio = h / math.log(n) if n > 1 else np.full_like(h, np.nan)  # undefined with one key
        max_prob = 1.0 / total
        values = [max_prob, h, ratio, np.exp(h), total * total / _dot(e, e), max_prob >= level]
        names: tuple[str, ...] = SATURATION
    else:
        assert g is not None, "the gradient metrics need an upstream gradient g"
        e2 = e * e  # >= e^-60 where e > 0: no subnormals
        # the largest e is exactly 1, so the other weights' sums are (sum - 1) / Z^k in float64, and
        # softmax.fro_from_rest keeps nearly one-hot rows exact
        rest2, rest3 = (e2.sum(axis=-1, dtype=np.float64) - 1) / total**2, (_dot(e2, e) - 1) / total**3
        fro = fro_from_rest((total - 1) / total, rest2, rest3)
        p = e
        p /= total[..., None].astype(p.dtype)
        np.multiply(p, p, out=e2)
        np.subtract(p, e2, out=e2)  # p (1 - p)
        diag_max = e2.max(axis=-1)
        d_logits = g - _dot(p, g)[..., None].astype(g.dtype)  # J g = p * (g - p.g)
        d_logits *= p
        if rule.normalised:
            v = np.matmul(d_logits, k / k_norm[..., None])  # sum_j dL/dS_ij k^_j: (t, rows, d_k)
            q_hat = q / q_norm[..., None]
            d_q = rule.c / q_norm[..., None] * (v - np.einsum("...d,...d->...", q_hat, v)[..., None] * q_hat)
        else:
            d_q = rule.c * np.matmul(d_logits, k)  # (t, rows, d_k)
        values = [fro, fro * fro, diag_max, np.sqrt(_dot(d_logits, d_logits)), np.sqrt(_dot(d_q, d_q)), fro < level]
        names = GRADIENT
    return {name: np.asarray(v, dtype=np.float64).reshape(-1) for name, v in zip(names, values)}


Trial = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def direct_trials(
    rng: np.random.Generator, n_trials: int, m: int, n: int, d_k: int, entries: Entries, chunk: int, whole: bool
) -> Iterator[Trial]:
    """Yield (q, k - mean, q, k) per chunk of trials of direct entries: q: (t, m, d_k), k: (t, n, d_k).

    The logits of one row share c mean sum(q), which the softmax drops and which would drown their spread
    in float32, so the rules that scale q.k use q.(k - mean) instead (the same softmax, and the same dL/dq,
    since each row of dL/dS sums to 0). The centred keys are std b from the standardised draws b: rounding
    mean + std b to float32 first would leave k - mean only the resolution of float32 at the mean, and the
    logits of whole rows would tie once |mean| / std nears 1e6. QK-norm needs q and k whole: with a mean
    (and `whole`) they come in float64, whose cosines resolve their spread of order (std / mean)^2 where
    float32's do not; otherwise they are the first two, float32.
    """
    mean, std = entries.mean, entries.std
    for a, b in qk_blocks(rng, n_trials, m, n, d_k, entries, chunk, standardised=True):
        if whole and mean:
            q_whole, k_whole = mean + std * a.astype(np.float64), mean + std * b.astype(np.float64)
            yield affine(a, mean, std), affine(b, 0.0, std), q_whole, k_whole
        else:
            q, centred = affine(a, mean, std), affine(b, 0.0, std)
            yield q, centred, q, centred


@dataclass(frozen=True)
class RowSample:
    """Replicate means of every metric at one (d_k, seq_len), per scaling rule."""

    kind: str
    d_k: int
    seq_len: int
    source: Source
    rules: tuple[Rule, ...]
    metrics: tuple[str, ...]  # SATURATION or GRADIENT: the last axis of replicate_means
    n_rows: int
    n_trials: int  # independent trials (sets of keys) behind the rows
    replicate_means: np.ndarray  # (replicates, rules, metrics)
    grad_q_counts: np.ndarray | None = None  # gradient: (rules, grad_q_bins()) rows per bin, all replicates

    @property
    def scalings(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)


def geometry(samples: int, rows_per_trial: int) -> tuple[int, int]:
    """(replicates, trials per replicate): whole trials, at least MIN_REPLICATES independent replicates."""
    trials = max(1, math.ceil(samples / rows_per_trial))
    replicates = min(REPLICATES, max(MIN_REPLICATES, trials))
    return replicates, math.ceil(trials / replicates)


def sample_rows(
    kind: str,
    d_k: int,
    seq_len: int,
    samples: int,
    mean: float = 0.0,
    std: float = 1.0,
    seed: int = 0,
    level: float = 0.99,
    scalings: tuple[str, ...] = ("none", "sqrt"),
    source: Source | None = None,
    qk_gain: float | None = None,
    ssmax_s: float = SSMAX_S,
    chunk_scores: int = CHUNK_SCORES,
    map_replicates: MapReplicates = serial,
) -> RowSample:
    """Measure the `kind` metrics ("saturation" or "gradient") over at least `samples` query rows.

    Each replicate has its own two random streams (queries and keys; the upstream gradient), spawned from
    the task's, so the draws depend neither on how trials and rows are chunked nor on how many threads
    run the replicates (`map_replicates`).
    """
    source = source or Source(Entries(mean=mean, std=std))
    projected = source.inputs == "projected"
    d_k = source.d_k(d_k)
    n, m = seq_len, min(seq_len, QUERIES)
    heads = source.heads if projected else 1
    replicates, trials_per_replicate = geometry(samples, m * heads)
    # Rows per chunk follow from the geometry alone, so the float32 products (whose rounding may depend on
    # how many rows one BLAS call gets) are the same whatever `chunk_scores` is; it only batches trials.
    chunk_rows = m if m * n * heads <= CHUNK_SCORES else max(1, CHUNK_SCORES // (n * heads))
    chunk_trials = max(1, chunk_scores // (m * n)) if chunk_rows == m and not projected else 1
    metrics = SATURATION if kind == "saturation" else GRADIENT
    rules = rules_for(scalings, d_k, n, qk_gain, ssmax_s)
    normalised = any(r.normalised for r in rules)
    e = source.entries
    key = {"kind": kind, "d_k": d_k, "seq_len": n, "mean": e.mean, "std": e.std, **source.stream_key()}
    streams = task_seed(seed, key).spawn(replicates)

    def measure(q, centred, q_whole, k_whole, rows: slice, g: np.ndarray | None) -> np.ndarray:
        """The per-row values of every rule's metrics for the query rows `rows` of a block of trials."""
        scores = np.matmul(q[:, rows], centred.swapaxes(-1, -2))  # (t, rows, n) float32
        whole = scores if k_whole is centred else np.matmul(q_whole[:, rows], k_whole.swapaxes(-1, -2))
        columns = [
            column
            for rule in rules
            for column in (
                row_metrics(kind, whole, rule, q_whole[:, rows], k_whole, g, level)
                if rule.normalised
                else row_metrics(kind, scores, rule, q[:, rows], centred, g, level)
            ).values()
        ]
        return np.stack(columns, axis=1)  # (t * rows, rules * metrics)

    per_replicate = trials_per_replicate * m * heads  # rows

    def generators(r: int) -> tuple[np.random.Generator, np.random.Generator | None]:
        """Replicate r's two streams: queries and keys; the upstream gradient, made only where it is drawn
        (a child's stream depends only on its index: spawn(1)[0] is spawn(2)[0])."""
        if kind != "gradient":
            return np.random.default_rng(streams[r].spawn(1)[0]), None
        qk, g = streams[r].spawn(2)
        return np.random.default_rng(qk), np.random.default_rng(g)

    binned = kind == "gradient"
    extra = grad_q_bins() if binned else 0  # each rule's per-row counts ride after its metrics' means
    at = metrics.index("grad_q_mean") if binned else 0

    def counted(per_row: np.ndarray) -> np.ndarray:
        """Each rule's counts of per-row ||dL/dq_i||: (rules, extra)."""
        return np.array([grad_q_counts(per_row[:, i * len(metrics) + at]) for i in range(len(rules))])

    def replicate(r: int, stop) -> np.ndarray:
        qk_rng, g_rng = generators(r)
        sums = np.zeros(len(rules) * len(metrics))
        counts = np.zeros((len(rules), extra))
        trials: Iterator[Trial]
        if projected:
            trials = (
                (q, k, q, k)
                for q_seq, k_seq in projected_blocks(qk_rng, trials_per_replicate, m, n, source)
                for q, k in [(q_seq[0], k_seq[0])]
            )  # heads stand where trials do: (heads, m, d_k)
        else:
            trials = direct_trials(qk_rng, trials_per_replicate, m, n, d_k, e, chunk_trials, normalised)
        for q, centred, q_whole, k_whole in trials:
            for start in range(0, m, chunk_rows):
                if stop.is_set():
                    raise Stopped
                rows = slice(start, start + chunk_rows)
                shape = (len(q), min(chunk_rows, m - start), n)  # the block's logits: (t, rows, n)
                g = None if g_rng is None else g_rng.standard_normal(shape, dtype=np.float32)
                per_row = measure(q, centred, q_whole, k_whole, rows, g)
                sums = add_in_order(sums, per_row)
                if binned:
                    counts += counted(per_row)
        means = (sums / per_replicate).reshape(1, len(rules), len(metrics))
        return np.concatenate([means, counts[None]], axis=-1)

    # Where one replicate is one block of trials (small runs), several replicates' blocks are measured in
    # one pass, up to chunk_scores logits: each still draws from its own streams and adds its own rows in
    # the same order, so the numbers are those of one replicate at a time, without a pass's fixed cost
    # (a few dozen numpy calls) paid for every replicate.
    together = 1
    if not projected and chunk_rows == m and trials_per_replicate <= chunk_trials:
        together = max(1, min(replicates, chunk_trials // trials_per_replicate))

    def replicates_at_once(unit: int, stop) -> np.ndarray:
        if together == 1:
            return replicate(unit, stop)
        if stop.is_set():
            raise Stopped
        blocks, draws = [], []
        for r in range(unit * together, min((unit + 1) * together, replicates)):
            qk_rng, g_rng = generators(r)
            (block,) = direct_trials(qk_rng, trials_per_replicate, m, n, d_k, e, chunk_trials, normalised)
            blocks.append(block)
            if g_rng is not None:
                draws.append(g_rng.standard_normal((trials_per_replicate, m, n), dtype=np.float32))
        q, centred = np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])
        separate = blocks[0][3] is not blocks[0][1]  # QK-norm of entries with a mean: float64 vectors apart
        q_whole = np.concatenate([b[2] for b in blocks]) if separate else q
        k_whole = np.concatenate([b[3] for b in blocks]) if separate else centred
        per_row = measure(q, centred, q_whole, k_whole, slice(0, m), np.concatenate(draws) if draws else None)
        zero = np.zeros(len(rules) * len(metrics))
        parts = [per_row[i * per_replicate : (i + 1) * per_replicate] for i in range(len(blocks))]
        means = np.array([add_in_order(zero, part) / per_replicate for part in parts])
        counts = [counted(part) if binned else np.zeros((len(rules), 0)) for part in parts]
        return np.concatenate([means.reshape(len(blocks), len(rules), len(metrics)), np.array(counts)], axis=-1)

    units = math.ceil(replicates / together)
    found = np.concatenate(map_replicates(replicates_at_once, units))  # (replicates, rules, metrics + extra)
    means, counts = found[..., : len(metrics)], found[..., len(metrics) :].sum(axis=0)
    trials = replicates * trials_per_replicate  # the heads of one sequence share its tokens: one trial
    return RowSample(
        kind, d_k, n, source, tuple(rules), metrics, trials * m * heads, trials, means, counts if binned else None
    )
