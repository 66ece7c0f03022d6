"""What saturation and gradient share: one attention matrix per trial, statistics per query row.

Their kernel is core/rows.py, which returns each metric's replicate means; this module turns them into
estimates (batch means over independent replicates, exact intervals for the shares of rows), rows beside
the random-energy-model theory where it holds (core/theory.py), the figures against d_k and n, the
report's reading, the terminal table and the cost. METRICS names and describes every metric once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.core.theory import REM_ACCURACY
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.rows import RowSample
    from sqrtdk.result import Result

LEVEL = 0.95  # the level of the shares' intervals and of the figures' error bars


@dataclass(frozen=True)
class Metric:
    """How one metric of core/rows.py is shown: its row column is the key of METRICS."""

    label: str  # a figure panel's title
    short: str  # a terminal table's heading
    words: str = ""  # in the report's sentences
    spec: str = ".3g"  # its format there
    log_y: bool = False  # drawn on a log axis
    theory: str | None = None  # the row column of its theory (or reference value)
    fraction: bool = False  # a share of rows, with an exact interval inside [0, 1]
    kind: str = "saturation"  # the experiment that measures it (core.rows.SATURATION or GRADIENT)


METRICS = {
    "max_prob_mean": Metric("mean of max_j p_j", "max p", "the largest weight", ".3f"),
    "entropy_mean": Metric("entropy (nats)", "H", theory="theory_entropy"),
    "entropy_ratio_mean": Metric("entropy / ln n", "H / ln n", "entropy / ln n", ".3f"),
    "effective_tokens_mean": Metric("exp(entropy)", "e^H", log_y=True),
    "participation_mean": Metric("1 / sum p^2", "1/Σp²", log_y=True, theory="theory_participation"),
    "saturated_fraction": Metric("fraction with max p >= threshold", "saturated", fraction=True),
    "jacobian_fro_mean": Metric(
        "||diag(p) - p p^T||_F", "‖J‖_F", "||J||_F", log_y=True, theory="uniform_jacobian_fro", kind="gradient"
    ),
    "jacobian_diag_max_mean": Metric("max_j p_j (1 - p_j)", "max p(1-p)", log_y=True, kind="gradient"),
    "grad_logits_mean": Metric("||dL/ds_i||", "‖∂L/∂s‖", log_y=True, kind="gradient"),
    "grad_q_mean": Metric("||dL/dq_i||", "‖∂L/∂q‖", "||dL/dq||", kind="gradient"),
    "vanishing_fraction": Metric("fraction with ||J||_F < eps", "vanishing", fraction=True, kind="gradient"),
}


SATURATION = tuple(name for name, metric in METRICS.items() if metric.kind == "saturation")
GRADIENT = tuple(name for name, metric in METRICS.items() if metric.kind == "gradient")


def params(doc: str, **extra: Any) -> type:
    """The schema of an attention experiment: the shared fields, then the experiment's own `extra`."""
    return schema.params_class(
        extra.pop("module"),
        "Params",
        doc,
        dim=schema.dim_field((16, 64, 256, 1024)),
        seq_len=schema.seq_len_field(),
        samples=schema.rows_field(),
        seed=schema.seed_field(),
        **schema.source_fields(),
        scaling=schema.scaling_field(SCALINGS),
        qk_gain=schema.qk_gain_field(),
        ssmax_s=schema.ssmax_field(),
        **extra,
    )


# ---- the run and its rows ----


def run(
    kind: str, level_key: str, task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates
) -> RowSample:
    from sqrtdk.core.rows import sample_rows
    from sqrtdk.core.rules import SSMAX_S

    return sample_rows(
        kind,
        task["dim"],
        task["seq_len"],
        task["samples"],
        seed=task["seed"],
        level=task[level_key],
        scalings=task["scaling"],
        source=schema.source(task),
        qk_gain=schema.gain(task),
        ssmax_s=task.get("ssmax_s") or SSMAX_S,
        map_replicates=map_replicates,
    )


def attention_rows(sample: RowSample) -> list[dict]:
    """One row per scaling rule: each metric's mean with its standard error `<name>_se`, and the theory."""
    import numpy as np

    from sqrtdk.core import theory
    from sqrtdk.core.moments import batch_means, fraction_interval

    metrics = sample.metrics
    n, d_k, source = sample.seq_len, sample.d_k, sample.source
    rows = []
    for i, rule in enumerate(sample.rules):
        direct = source.inputs == "direct"
        if direct:
            spread = theory.logit_std(d_k, source.entries, rule.c, rule.normalised)
        elif rule.normalised or (
            source.layernorm and not theory.layernorm_theory_holds(source.entries, source.d_model)
        ):
            spread = None  # no closed form: QK-norm of projected q, k; LayerNorm's eps shrinking the tokens
        else:
            spread = math.sqrt(
                theory.projected_score_variance(
                    source.d_model,
                    source.heads,
                    n,
                    source.entries,
                    source.init,
                    source.init_std,
                    source.layernorm,
                    rule.c,
                )
            )
        row: dict = {
            "d_k": d_k,
            "seq_len": n,
            "scaling": rule.name,
            "n_rows": sample.n_rows,
            "replicates": len(sample.replicate_means),
            "logit_std": spread,
            "critical_logit_std": theory.critical_logit_std(n) if n > 1 else None,
        }
        for j, name in enumerate(metrics):
            values = sample.replicate_means[:, i, j]
            if np.isnan(values).any():
                row[name], row[name + "_se"] = None, None
                continue
            est = batch_means(float(values.mean()), values, LEVEL)
            row[name], row[name + "_se"] = est.value, est.se
            if METRICS[name].fraction:
                row[name + "_ci_low"], row[name + "_ci_high"] = fraction_interval(
                    est.value, est.se, sample.n_rows, sample.n_trials, LEVEL
                )
        if sample.kind == "saturation":
            args = (n, d_k, source.entries, rule.c, rule.normalised)
            row["theory_entropy"] = theory.rem_entropy(*args) if direct else None
            row["theory_participation"] = theory.rem_participation(*args) if direct else None
        else:
            row["uniform_jacobian_fro"] = theory.uniform_jacobian_fro(n)
        rows.append(row)
    return rows


def rows(task: Mapping[str, Any], sample: RowSample) -> list[dict]:
    return attention_rows(sample)


# ---- figures ----


def figures(kind: str, metrics: Sequence[str], title: str, result: Result) -> dict[str, Callable[[], Any]]:
    """`kind`_vs_dk and `kind`_vs_n, as the run sweeps d_k and n: each of `metrics` in a panel."""
    d_ks = {r["d_k"] for r in result.rows}
    out: dict[str, Callable[[], Any]] = {}
    if len(d_ks) > 1 or len(result.params.seq_len) == 1:
        out[f"{kind}_vs_dk"] = lambda: metric_grid(
            result.rows, metrics, title, "d_k", result.series_columns("dim"), result.setting()
        )
    if len(result.params.seq_len) > 1:
        out[f"{kind}_vs_n"] = lambda: metric_grid(
            result.rows, metrics, title, "seq_len", result.series_columns("seq_len"), result.setting()
        )
    return out


def error_bars(rows: Sequence[dict], metric: str) -> Any:
    """(2, len(rows)) distances below and above each value to the ends of its 95% interval: the shares'
    exact interval where the rows have one, otherwise Student's t on the replicates' degrees of freedom
    times the standard error (not 1.96: with 8 replicates that would cover about 90%)."""
    import numpy as np

    from sqrtdk.core.moments import t_quantile

    if metric + "_ci_low" in rows[0]:
        return np.array(
            [[r[metric] - r[metric + "_ci_low"] for r in rows], [r[metric + "_ci_high"] - r[metric] for r in rows]]
        )
    half = np.array([t_quantile(0.5 + LEVEL / 2, r["replicates"] - 1) * r[metric + "_se"] for r in rows])
    return np.array([half, half])


X_LABELS = {"d_k": "d_k", "seq_len": "sequence length n"}


def freezing_point(row: dict, x: str) -> float | None:
    """Where along `x` the row's series reaches s_c = sqrt(2 ln n), beyond which the softmax freezes.

    Against d_k the logit spread grows like sqrt(d_k) (s_c fixed by n); against n, s_c = sqrt(2 ln n)
    grows to meet a fixed spread s at n = exp(s^2 / 2).
    """
    s, s_c = row["logit_std"], row["critical_logit_std"]
    if s is None:
        return None
    if x == "d_k":
        return row["d_k"] * (s_c / s) ** 2 if s_c and s > 0 else None
    return math.exp(s * s / 2)


def metric_grid(
    rows: Sequence[dict],
    metrics: Sequence[str],
    title: str,
    x: str = "d_k",
    series: Sequence[str] = ("seq_len",),
    setting: str = "",
) -> Any:
    """Each metric against `x` ("d_k" or "seq_len", log2 axis), a line per scaling and per combination of
    the `series` columns, with 95% error bars.

    Dashed: the theory where it holds (random-energy-model forms for entropy and 1/sum p^2; the uniform
    row's ||J||_F as a reference). Dotted vertical: where the unscaled logit spread reaches
    s_c = sqrt(2 ln n), beyond which the softmax freezes onto a few keys.
    """
    import numpy as np

    from sqrtdk.plots import Style, new_figure, rules_in, series_of

    ncols = 3
    nrows = math.ceil(len(metrics) / ncols)
    fig = new_figure(13.0, 3.6 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    scalings = rules_in(rows)
    groups = series_of(rows, series)
    xs = [r[x] for r in rows]
    crossings = {}
    for name, group in groups:
        unscaled = [r for r in group if r["scaling"] == "none"]
        point = freezing_point(unscaled[0], x) if unscaled else None
        if point is not None and min(xs) <= point <= max(xs):
            crossings[name] = point
    style = Style(scalings, groups)
    for ax, metric in zip(axes, metrics):
        for scaling in scalings:
            for g, (name, group) in enumerate(groups):
                sel = sorted(
                    (r for r in group if r["scaling"] == scaling and r[metric] is not None), key=lambda r: r[x]
                )
                if not sel:
                    continue
                xv = np.array([r[x] for r in sel], dtype=float)
                y = np.array([r[metric] for r in sel])
                err = error_bars(sel, metric)
                label = RULES[scaling].label + (f", {name}" if name else "")
                colour = style.colour(scaling, g)
                ax.errorbar(
                    xv,
                    y,
                    yerr=err,
                    fmt=style.marker(scaling, g),
                    ls=style.line(scaling),
                    ms=4,
                    lw=1.2,
                    capsize=2,
                    color=colour,
                    label=label,
                )
                key = METRICS[metric].theory
                pts = [(r[x], r[key]) for r in sel if key and r.get(key) is not None]
                if pts and key == "uniform_jacobian_fro":
                    if scaling == scalings[0]:
                        ax.plot(
                            *zip(*pts),
                            ls="--",
                            lw=1.0,
                            color="0.45",
                            label="uniform row: sqrt(n-1)/n" if g == 0 else None,
                        )
                elif pts:
                    ax.plot(
                        *zip(*pts),
                        ls=(0, (2, 2)),
                        lw=1.0,
                        color=colour,
                        alpha=0.6,
                        label="thin dashes: random-energy model (asymptotic; drawn where within 2%)",
                    )
        for point in crossings.values():
            ax.axvline(point, color=RULES["none"].colour, ls=":", lw=0.9, alpha=0.7)
        ax.set_xscale("log", base=2)
        if METRICS[metric].log_y:
            ax.set_yscale("log")
        ax.set_xlabel(X_LABELS[x])
        ax.set_title(METRICS[metric].label, fontsize=10)
        ax.grid(True, alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes[: len(metrics)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=4 if len(handles) < 13 else 5,
        fontsize=8 if len(handles) < 13 else 7,
    )
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    axis = X_LABELS[x].split()[-1]
    where = ", ".join(f"{name}: {axis} = {v:.3g}" if name else f"{axis} = {v:.3g}" for name, v in crossings.items())
    note = f"\nDotted: the unscaled logit spread reaches s_c = sqrt(2 ln n) ({where})" if crossings else ""
    context = f", {setting}" if setting else ""
    fig.suptitle(f"{title}{context} (error bars: 95%){note}", fontsize=10)
    return fig


# ---- the reading in the report ----


def reading(
    headline: Sequence[str], level_name: str, unscaled: Callable[[Sequence[dict], float], list[str]], result: Result
) -> list[str]:
    """Readings of a saturation or gradient run, whichever of d_k and n it sweeps: the `headline` metrics
    along each axis, and `unscaled(rows, level)` along d_k."""
    out = []
    for prefix, rows in report.groups(result, "dim"):
        d_ks = sorted({r["d_k"] for r in rows})
        seq_lens = sorted({r["seq_len"] for r in rows})
        rules = [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]
        if len(d_ks) > 1:
            for n in seq_lens:
                at_n = [r for r in rows if r["seq_len"] == n]
                out += _along(prefix + f"n = {n}, from d_k = {d_ks[0]} to {d_ks[-1]}", at_n, rules, "d_k", headline)
                out += unscaled(at_n, result.level(at_n[-1], level_name))
            if len(seq_lens) > 1:
                at_d = [r for r in rows if r["d_k"] == d_ks[-1] and r["seq_len"] > 1]
                out += _along(
                    prefix + f"At d_k = {d_ks[-1]}, from n = {seq_lens[0]} to {seq_lens[-1]}",
                    at_d,
                    rules,
                    "seq_len",
                    headline,
                )
        elif len(seq_lens) > 1:
            out += _along(
                prefix + f"d_k = {d_ks[0]}, from n = {seq_lens[0]} to {seq_lens[-1]}", rows, rules, "seq_len", headline
            )
        else:
            parts = [
                f"{RULES[r['scaling']].words} "
                + ", ".join(f"{METRICS[m].words} {r[m]:{METRICS[m].spec}}" for m in headline if r[m] is not None)
                for r in rows
            ]
            out.append(f"{prefix}d_k = {d_ks[0]}, n = {seq_lens[0]}: " + "; ".join(parts) + ".")
    return out


def _along(where: str, rows: Sequence[dict], rules: Sequence[str], key: str, metrics: Sequence[str]) -> list[str]:
    """'n = 128, from d_k = 4 to 1024: unscaled, the largest weight rises from ... ; 1/sqrt(d_k), ... stays ...'."""
    parts = []
    for rule in rules:
        sel = [r for r in sorted(rows, key=lambda r: r[key]) if r["scaling"] == rule]
        words = []
        for metric in metrics:
            values = [r[metric] for r in sel if r[metric] is not None]
            if len(values) >= 2:
                words.append(f"{METRICS[metric].words} {report.trend(values[0], values[-1], METRICS[metric].spec)}")
        if words:
            parts.append(f"{RULES[rule].words}: " + " and ".join(words))
    return [f"{where}: " + "; ".join(parts) + "."] if parts else []


# ---- the terminal table and the cost ----


def table(kind: str, shown: Sequence[str], headline: str, result: Result) -> Table:
    """Each metric's mean ± standard error (the `shown` ones by default, the rest with --wide), the logit
    spread that drives them, and the theory columns that have a value somewhere."""
    from sqrtdk.output import pm

    rows, metrics = result.rows, SATURATION if kind == "saturation" else GRADIENT
    columns = [
        Column("d_k", tuple(str(r["d_k"]) for r in rows), key=True),
        Column("n", tuple(str(r["seq_len"]) for r in rows), key=True),
        Column("scaling", tuple(r["scaling"] for r in rows), key=True),
        Column("logit sd", tuple(f"{r['logit_std']:.3g}" for r in rows)),
    ]
    notes = [_headline(rows, headline)] if len(report.groups(result, "dim")) == 1 else []
    empty: list[str] = []
    for m in metrics:
        metric = METRICS[m]
        cells = tuple(_share(r, m) if metric.fraction else pm(r, m) for r in rows)
        columns.append(Column(metric.short, cells, wide=m not in shown))
        if m != "entropy_ratio_mean" and metric.theory in (None, "uniform_jacobian_fro"):
            continue
        told = tuple(_theory(r, m) for r in rows)
        columns.append(Column("theory", told, wide=m not in shown or not any(told), about=""))
        if m in shown and not all(told):
            empty.append(metric.short)
    if empty:
        notes.append(
            f"An empty theory cell ({', '.join(empty)}): the random-energy-model form is shown only where it is "
            f"within {REM_ACCURACY:.0%}, for Gaussian entries and a logit spread well below s_c = √(2 ln n)."
        )
    if kind == "gradient":
        uniform = sorted({(r["seq_len"], r["uniform_jacobian_fro"]) for r in rows})
        notes.append(
            "For comparison, the uniform row p = 1/n has ||J||_F = √(n-1)/n: "
            + ", ".join(f"{value:.4g} at n = {n}" for n, value in uniform)
            + "."
        )
    if any(r[m] is not None and r[m] == 0 for r in rows for m in metrics if METRICS[m].fraction):
        notes.append(f"A share of 0 is followed by the upper end of its exact {LEVEL:.0%} interval.")
    return Table(f"{kind.capitalize()}: mean over query rows ± standard error", columns, [n for n in notes if n])


def _theory(row: dict, metric: str) -> str:
    """The theory of `metric` in a row, as a table cell; the entropy ratio's is the entropy's over ln n."""
    if metric == "entropy_ratio_mean":
        value = row["theory_entropy"]
        return "" if value is None else f"{value / math.log(row['seq_len']):.4g}"
    value = row[METRICS[metric].theory or ""]
    return "" if value is None else f"{value:.4g}"


def _share(row: dict, metric: str) -> str:
    """A share of rows: its value ± standard error, or 0 with the upper end of its exact interval."""
    from sqrtdk.output import pm

    value = row[metric]
    if value == 0 and row.get(metric + "_ci_high") is not None:
        return f"0 (< {row[metric + '_ci_high']:.2g})"
    return pm(row, metric)


def _headline(rows: Sequence[dict], metric: str) -> str:
    """One line under the table of a sweep over d_k: the headline metric unscaled against scaled."""
    from sqrtdk.output import pm

    if len({r["seq_len"] for r in rows}) != 1:
        return ""
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if len(none) < 2 or len(scaled) < 2:
        return ""
    words = METRICS[metric].words or METRICS[metric].short
    a, b = none[0], none[-1]
    return (
        f"Unscaled, {words} goes from {pm(a, metric)} at d_k = {a['d_k']} to {pm(b, metric)} at "
        f"d_k = {b['d_k']} (n = {a['seq_len']}); with 1/√d_k it stays "
        f"{report.between([r[metric] for r in scaled], '.3g')}."
    )


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Bytes held at once by `threads` threads and seconds on one core (sqrtdk/resources.py)."""
    from sqrtdk.core.rows import CHUNK_SCORES, QUERIES, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, LOGIT_NS, TASK_SECONDS

    src = schema.source(task)
    projected = src.inputs == "projected"
    d_k = src.d_k(task["dim"])
    n = task["seq_len"]
    m, heads = min(n, QUERIES), src.heads if projected else 1
    replicates, per_replicate = geometry(task["samples"], m * heads)
    chunk = max(min(CHUNK_SCORES, per_replicate * m * n * heads), n * heads)  # logits at once: >= one row a head
    held = 4 * (m + n) * heads * d_k * min(per_replicate, max(1, CHUNK_SCORES // (m * n))) + 60 * chunk
    draws = (m + n) * heads * d_k
    if projected:
        held += 4 * (2 * src.d_model**2 + n * src.d_model)
        draws += 2 * src.d_model**2 + n * src.d_model
    rules = len(task["scaling"])
    per_rule = 6 if "threshold" in task else 14  # passes over the logits
    trials = replicates * per_replicate  # whole trials in every replicate
    logits = trials * m * heads * n
    seconds = (
        logits * (2 * d_k * FLOP_NS * (1 + ("eps" in task)) + rules * per_rule * LOGIT_NS) + trials * draws * DRAW_NS
    ) * 1e-9 + TASK_SECONDS
    return held * min(threads, replicates), seconds
