"""What saturation and gradient measure: METRICS, their options, one task's run, its rows with batch-
mean and exact intervals beside the exact theory, and the cost."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqrtdk import schema
from sqrtdk.core.rules import SCALINGS

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.rows import RowSample


LEVEL = 0.95  # the level of the shares' intervals and of the figures' error bars


@dataclass(frozen=True)
class Metric:
    """How one metric of core/rows.py is shown: its row column is the key of METRICS."""

    label: str  # a figure panel's title
    short: str  # a terminal table's heading
    words: str = ""  # in the report's sentences
    spec: str = ".3g"  # its format there
    log_y: bool = False  # drawn on a log axis
    theory: str | None = None  # the row column of its exact theory (core/exact.py), None where it has none
    asymptotic: str | None = None  # the row column of its random-energy-model limit (where within 2%)
    reference: str | None = None  # the row column of a reference value (the uniform row's)
    fraction: bool = False  # a share of rows, with an exact interval inside [0, 1]
    kind: str = "saturation"  # the experiment that measures it (core.rows.SATURATION or GRADIENT)


METRICS = {
    "max_prob_mean": Metric(
        r"mean largest weight $\mathrm{max}_j\,p_j$", "max p", "the largest weight", ".3f", theory="theory_max_prob"
    ),
    "entropy_mean": Metric(r"entropy $H$ (nats)", "H", theory="theory_entropy", asymptotic="rem_entropy"),
    "entropy_ratio_mean": Metric(r"$H\,/\ln n$", "H / ln n", "entropy / ln n", ".3f", theory="theory_entropy_ratio"),
    "effective_tokens_mean": Metric(r"effective keys $e^H$", "e^H", log_y=True),
    "participation_mean": Metric(
        r"participation $1/\Sigma_j\,p_j^2$",
        "1/Σp²",
        log_y=True,
        theory="theory_participation",
        asymptotic="rem_participation",
    ),
    "saturated_fraction": Metric(r"share with $\mathrm{max}_j\,p_j \geq$ threshold", "saturated", fraction=True),
    "jacobian_fro_mean": Metric(
        r"$\|J\|_F$",
        "‖J‖_F",
        "||J||_F",
        log_y=True,
        reference="uniform_jacobian_fro",
        kind="gradient",
    ),
    "jacobian_sq_mean": Metric(
        r"$\|J\|_F^2$", "‖J‖²", "||J||_F^2", log_y=True, theory="theory_jacobian_sq", kind="gradient"
    ),
    "jacobian_diag_max_mean": Metric(r"$\mathrm{max}_j\,p_j(1-p_j)$", "max p(1-p)", log_y=True, kind="gradient"),
    "grad_logits_mean": Metric(r"$\|\partial L/\partial s_i\|$", "‖∂L/∂s‖", log_y=True, kind="gradient"),
    "grad_q_mean": Metric(r"$\|\partial L/\partial q_i\|$", "‖∂L/∂q‖", "||dL/dq||", kind="gradient"),
    "vanishing_fraction": Metric(r"share with $\|J\|_F < \epsilon$", "vanishing", fraction=True, kind="gradient"),
}


SATURATION = tuple(name for name, metric in METRICS.items() if metric.kind == "saturation")
GRADIENT = tuple(name for name, metric in METRICS.items() if metric.kind == "gradient")
# what the figures draw: the metrics that carry distinct information (the others are transforms of
# these, or their squares; the tables keep them all)
SATURATION_DRAWN = ("max_prob_mean", "entropy_ratio_mean", "saturated_fraction")
GRADIENT_DRAWN = ("jacobian_fro_mean", "grad_q_mean", "vanishing_fraction")


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


def exact_theory(task: Mapping[str, Any]) -> None:
    """Compute (into exact's caches) the exact theory that `attention_rows` will ask for this task, from
    the task alone: `api.run_many` calls it on a thread while the tasks are sampled."""
    from sqrtdk.core import exact
    from sqrtdk.core.rows import rules_for
    from sqrtdk.core.rules import SSMAX_S

    source = schema.source(task)
    entries, d_k, n = source.entries, source.d_k(task["dim"]), task["seq_len"]
    if source.inputs != "direct" or entries.dist != "gaussian":
        return
    for rule in rules_for(task["scaling"], d_k, n, schema.gain(task), task.get("ssmax_s") or SSMAX_S):
        exact.attention_row(n, d_k, entries.mean, entries.std, rule.c, rule.normalised, entries.rho)


def attention_rows(sample: RowSample) -> list[dict]:
    """One row per scaling rule: each metric's mean with its standard error `<name>_se`, and the theory."""
    import numpy as np

    from sqrtdk.core import exact, theory
    from sqrtdk.core.moments import batch_means, fraction_interval, mean_interval

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
            else:
                row[name + "_ci_low"], row[name + "_ci_high"] = mean_interval(est, values, LEVEL)
        entries = source.entries
        independent = direct and entries.dist == "gaussian"  # a row's logits independent normals given q
        known = (
            exact.attention_row(n, d_k, entries.mean, entries.std, rule.c, rule.normalised, entries.rho)
            if independent
            else None
        )
        if sample.kind == "saturation":
            args = (n, d_k, entries, rule.c, rule.normalised)
            row["theory_max_prob"] = known.max_prob if known else None
            row["theory_entropy"] = known.entropy if known else None
            row["theory_entropy_ratio"] = known.entropy / math.log(n) if known else None
            row["theory_participation"] = known.participation if known else None
            row["theory_sum_p2"] = known.sum_p2 if known else None
            row["rem_entropy"] = theory.rem_entropy(*args) if direct else None
            row["rem_participation"] = theory.rem_participation(*args) if direct else None
        else:
            row["theory_jacobian_sq"] = known.jacobian_sq if known else None
            row["uniform_jacobian_fro"] = theory.uniform_jacobian_fro(n)
        rows.append(row)
    return rows


def rows(task: Mapping[str, Any], sample: RowSample) -> list[dict]:
    return attention_rows(sample)


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
    # q and k in float32, and again whole in float64 for QK-norm of entries with a mean (rows.direct_trials)
    whole = int("qknorm" in task["scaling"] and bool(src.entries.mean) and not projected)
    held = (4 + 8 * whole) * (m + n) * heads * d_k * min(per_replicate, max(1, CHUNK_SCORES // (m * n))) + 60 * chunk
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
