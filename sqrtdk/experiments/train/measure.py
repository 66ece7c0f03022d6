"""The measurement of `sqrtdk train`: its options, the runs of one task, their rows and outcomes, the
comparisons across rows (LR sensitivity, the settings), the cost, and what is kept of a run (its logged
curves) with how a rerun on another CPU is judged against the committed numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import schema
from sqrtdk.core.rules import SCALINGS
from sqrtdk.core.theory import INITS

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.train import Run
    from sqrtdk.result import Result


HELD_OUT = 512  # held-out sequences of every run (core.train)

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk train`: the schema of its options and config keys.",
    task=schema.param(
        "recall",
        "recall: 8 key-value pairs, then 8 queried keys; copy: a string, a separator, the string again",
        schema.Choice(("recall", "copy"), "the task"),
        metavar="NAME",
    ),
    layers=schema.param(2, "attention layers", schema.Integer(1, 8, "the number of layers"), metavar="INT"),
    heads=schema.param(1, "heads per layer; d_k = d_model / heads", schema.Integer(1, 64, "the heads"), metavar="INT"),
    d_model=schema.param(64, "model width", schema.Integer(2, 1024, "d_model"), metavar="INT"),
    scaling=schema.param(
        SCALINGS,
        "scaling rule of the attention logits, each trained on its own",
        schema.Choice(SCALINGS, "the scaling"),
        metavar="RULE",
    ),
    lr=schema.param(
        (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
        "peak learning rate of AdamW",
        schema.Real("the learning rate", lo=0.0, lo_open=True, hi=10.0),
    ),
    steps=schema.param(1500, "training steps", schema.Integer(1, 10**6, "the steps"), metavar="INT"),
    warmup=schema.param(100, "steps of linear warm-up", schema.Integer(0, 10**6, "the warm-up"), metavar="INT"),
    batch=schema.param(64, "sequences per step", schema.Integer(1, 4096, "the batch"), metavar="INT"),
    replicates=schema.param(
        3, "independent seeds per grid point", schema.Integer(1, 64, "the replicates"), metavar="INT"
    ),
    seed=schema.seed_field(),
    init=schema.param(
        "lecun",
        "initialisation of W_q, W_k, W_v, W_o",
        schema.Choice(INITS, "the init"),
        metavar="NAME",
    ),
    every=schema.param(
        50, "log every this many steps", schema.Integer(1, 10**6, "the logging interval"), metavar="INT"
    ),
    activations=schema.param(
        0,
        "held-out sequences on which each trained run saves its queries and keys (activations_*.npz; 0: none)",
        schema.Integer(0, HELD_OUT, "the sequences saved"),
        metavar="INT",
    ),
)

LEVEL = 0.95  # of the replicates' intervals (core.moments.batch_means) and of the paired comparisons


def _shape(task: Mapping[str, Any]) -> Any:
    from sqrtdk.core import transformer as tf
    from sqrtdk.core.tasks import Task

    problem = Task(task["task"])
    return tf.Shape(
        problem.vocab, problem.length, task["d_model"], task["heads"], task["layers"], task["scaling"]
    ), problem


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> list[Run]:
    """Every replicate of one grid point, each from its own seed spawned from the root seed."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from sqrtdk.core import transformer as tf
    from sqrtdk.core.train import train

    shape, problem = _shape(task)
    optimiser = tf.AdamW(task["lr"], task["steps"], min(task["warmup"], task["steps"]))
    seeds = np.random.SeedSequence(task["seed"]).spawn(task["replicates"])
    with threadpool_limits(1):  # a step's products are small: one BLAS thread per run, runs side by side
        return [
            train(
                shape,
                problem,
                optimiser,
                seed,
                task["batch"],
                min(task["every"], task["steps"]),
                HELD_OUT,
                task["init"],
                task["activations"],
            )
            for seed in seeds
        ]


def _mean_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean over replicates and its standard error (core.moments.batch_means), None where undefined."""
    import numpy as np

    from sqrtdk.core.moments import batch_means

    if not values:
        return None, None
    mean = sum(values) / len(values)
    return mean, (batch_means(mean, np.array(values), LEVEL).se if len(values) > 1 else None)


def _rounded(value: float | None) -> float | None:
    """A seed's value to six significant digits (the rows' per-seed lists stay readable)."""
    return None if value is None else float(f"{value:.6g}")


def rows(task: Mapping[str, Any], runs: Sequence[Run]) -> list[dict]:
    from sqrtdk.core.train import ACCURATE, OUTCOMES, outcome

    _, problem = _shape(task)
    ends = [outcome(r, problem.vocab) for r in runs]
    kept = [r for r, end in zip(runs, ends) if end != "diverged"]  # the seeds the means are over
    loss, loss_se = _mean_se([r.final["loss"] for r in kept])
    accuracy, accuracy_se = _mean_se([r.final["accuracy"] for r in kept])
    reached = [r.steps_to(ACCURATE) for r in runs]
    hit = [s for s in reached if s is not None]
    steps, steps_se = _mean_se(hit) if len(hit) == len(runs) else (None, None)
    logit, logit_se = _mean_se([r.max_logit for r in kept])
    ratio = [sum(r.final["entropy_ratio"]) / len(r.final["entropy_ratio"]) for r in kept]
    entropy, entropy_se = _mean_se(ratio)
    return [
        {
            "task": task["task"],
            "d_model": task["d_model"],
            "heads": task["heads"],
            "d_k": task["d_model"] // task["heads"],
            "layers": task["layers"],
            "scaling": task["scaling"],
            "lr": task["lr"],
            "replicates": len(runs),
            "loss_at_init": sum(r.loss_at_init for r in runs) / len(runs),
            **{end: ends.count(end) / len(runs) for end in OUTCOMES},
            "final_loss": loss,
            "final_loss_se": loss_se,
            "final_accuracy": accuracy,
            "final_accuracy_se": accuracy_se,
            "steps_to_99": steps,
            "steps_to_99_se": steps_se,
            "reached_99": len(hit) / len(runs),
            "max_logit": logit,
            "max_logit_se": logit_se,
            "final_entropy_ratio": entropy,
            "final_entropy_ratio_se": entropy_se,
            "seed_outcome": ends,
            "seed_loss": [_rounded(r.final_loss) for r in runs],
            "seed_loss_at_init": [_rounded(r.loss_at_init) for r in runs],
        }
    ]


def capped(row: Mapping[str, Any]) -> list[float]:
    """Each seed's final held-out loss capped at its loss at initialisation, min(loss, loss at init), a
    seed whose loss stopped being finite counting as its loss at initialisation: Wortsman et al.'s
    min(l(A(eta)), l_0), which keeps a diverged run from weighing more than a run that learned nothing."""
    return [
        init if loss is None or not math.isfinite(loss) else min(loss, init)
        for loss, init in zip(row["seed_loss"], row["seed_loss_at_init"])
    ]


def lr_sensitivity(rows: Sequence[Mapping[str, Any]]) -> tuple[float, float | None] | None:
    """Wortsman et al. 2023's LR sensitivity of one rule across the learning rates of `rows` (arXiv
    2309.14322, section 2.2), per seed as the paper defines it per run: the mean over the rates of
    min(loss, loss at initialisation) minus the best such loss of that seed's own sweep; then the mean
    over seeds and its standard error (None with one seed). The seeds are the rows' replicates, shared
    by every rate. A seed that trains at no rate scores low too: its best loss is itself a failure."""
    by_seed = list(zip(*(capped(r) for r in rows)))  # (seeds, rates)
    each = [sum(points) / len(points) - min(points) for points in by_seed]
    mean, se = _mean_se(each)
    return None if mean is None else (mean, se)


def by_setting(result: Result) -> list[tuple[str, list[dict]]]:
    """Rows by everything but the rule and the learning rate, each group named by its setting, the head
    dimension first ("d_k = 256", "d_k = 32 (d_model = 256, 8 heads), layers = 4")."""
    from sqrtdk.plots import series_of

    others = [c for c in result.series_columns("lr") if c not in ("scaling", "lr")]
    out = []
    for _, rows in series_of(result.rows, others):
        r, parts = rows[0], []
        if "d_model" in others or "heads" in others:
            wide = f" (d_model = {r['d_model']}, {r['heads']} heads)" if r["heads"] > 1 else ""
            parts.append(f"d_k = {r['d_k']}{wide}")
        parts += [
            f"{c} = {r[c]:g}" if isinstance(r[c], float) else f"{c} = {r[c]}"
            for c in others
            if c not in ("d_model", "heads")
        ]
        out.append((", ".join(parts), rows))
    return out


def trains(row: Mapping[str, Any]) -> bool:
    """A rule trains at a rate when every seed trained (core.train.outcome)."""
    return row["trained"] == 1.0


def across(result: Result) -> dict[str, Any]:
    """The per-rule LR sensitivity of each setting (mean and standard error over seeds), and whether the
    rule trains at some rate of the grid, for the JSON document."""
    out = []
    for name, rows in by_setting(result):
        for rule in [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]:
            sel = [r for r in rows if r["scaling"] == rule]
            sensitivity = lr_sensitivity(sel) if len(sel) > 1 else None
            if sensitivity is not None:
                out.append(
                    {
                        "setting": name,
                        "scaling": rule,
                        "lr_sensitivity": sensitivity[0],
                        "lr_sensitivity_se": sensitivity[1],
                        "trains_at_some_rate": any(trains(r) for r in sel),
                    }
                )
    return {"lr_sensitivity": out}


def margin() -> float:
    from sqrtdk.core.train import MARGIN

    return MARGIN


def step_flops(batch: int, length: int, d_model: int, vocab: int, layers: int) -> float:
    """Floating-point operations of one training step's matrix products, forward and backward (3x)."""
    b, t, d, v = batch, length, d_model, vocab
    return 3.0 * (layers * (8 * b * t * d * d + 4 * b * t * t * d) + 2 * b * t * d * v)


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Bytes and seconds of one grid point: the activations of a batch, and steps x replicates x the
    matrix products of a step plus numpy's per-step overhead (sqrtdk/resources.py)."""
    from sqrtdk.resources import FLOP_NS, TASK_SECONDS

    shape, _ = _shape(task)
    b, t, d, v, layers = task["batch"], shape.length, task["d_model"], shape.vocab, task["layers"]
    flops = step_flops(b, t, d, v, layers)
    per_step = flops * FLOP_NS * 1e-9 * 4 + 4e-3  # small products run far below the GEMM ceiling
    held = 8.0 * b * t * (layers * (10 * d + 4 * t) + 2 * v) * 4
    return held, task["steps"] * task["replicates"] * per_step + TASK_SECONDS


# ---- what is kept, and how a rerun on another CPU is judged ----

CURVED = ("step", "loss", "accuracy", "entropy_ratio", "max_logit")  # what the curve figure draws


def curves(runs: Sequence[Run]) -> list[dict]:
    """Each replicate's logged curves (the curve figure's data), JSON-ready."""
    return [
        {
            "non_finite": r.non_finite,
            "steps_done": r.steps_done,
            "loss_at_init": r.loss_at_init,
            "log": [{k: row[k] for k in CURVED} for row in r.log],
        }
        for r in runs
    ]


def with_curves(runs: Sequence[Run] | None, data: Sequence[Mapping[str, Any]]) -> list[Run]:
    """The replicates with their curves from `data` (what the figures draw; the rows come from
    rows.json), each keeping its own activations; without `runs` (a committed result), none."""
    from sqrtdk.core.train import Run

    return [
        Run(bool(d["non_finite"]), int(d["steps_done"]), float(d["loss_at_init"]), list(d["log"]), activations)
        for activations, d in zip([r.activations for r in runs] if runs else [None] * len(data), data)
    ]


def arrays(result: Result) -> dict[str, dict[str, Any]]:
    """activations<task suffix>_seed<i>: each trained run's queries and keys (core.train.activations),
    in the layout `sqrtdk probe --activations` reads: q, k (layers, heads, sequences, tokens, d_k), scale
    (tokens,) and causal."""
    import numpy as np

    out = {}
    for task, runs in zip(result.tasks, result.outputs):
        for i, run in enumerate(runs, start=1):
            if run.activations is not None:
                out[f"activations{result.suffix(task)}_seed{i}"] = {**run.activations, "causal": np.array(True)}
    return out


# Training amplifies the last-bit differences between BLAS kernels: measured between OpenBLAS's
# SkylakeX and Haswell kernels on one machine, runs that contract (scaled rules at a small rate) agree to
# 1e-7, but wherever a run is unstable (unscaled, or at the larger rates) the two trajectories part
# within tens of steps and end as far apart as two seeds would. So another CPU's rows are judged as a
# second draw of the same seeds: an outcome agrees when the two means lie within Z combined standard
# errors over seeds (plus a floor for rows whose seeds agree with each other), a share of seeds (each
# outcome, reached 99%) may differ by one seed, and each seed's own values (the seed_ lists) are such
# draws, judged through those means and shares. The setting and the loss at initialisation (before any
# step: BLAS moves it by 1e-6) are held to reproduce's ordinary rule, so a change of model, task,
# initialisation or seeds is always caught.
Z = 4.0


def floor(column: str, row: Mapping[str, Any], a: float, b: float) -> float:
    """What a measure may move beyond Z standard errors: what last-bit differences can do to a mean
    whose seeds happen to agree (a loss on a plateau, an accuracy of 1 on every seed)."""
    if column == "final_loss":
        return 0.01 * row["loss_at_init"]
    if column == "max_logit":
        return 0.2 * max(abs(a), abs(b))  # the largest logit over training: a maximum, and heavy-tailed
    if column == "steps_to_99":
        return 0.5 * min(a, b)  # one logging interval (<= the value) on half the seeds
    return 0.01 if column == "final_accuracy" else 0.02  # final_entropy_ratio


MEASURED = ("final_loss", "final_accuracy", "max_logit", "final_entropy_ratio", "steps_to_99")
SHARES = {  # a share of seeds, and the measures that are empty when that share is 1 (or below 1)
    "diverged": ("final_loss", "final_accuracy", "max_logit", "final_entropy_ratio"),
    "reached_99": ("steps_to_99",),
    "trained": (),
    "plateaued": (),
    "collapsed": (),
}


SHARE_LEVEL = 0.001  # two draws' shares of seeds disagree when Fisher's exact test rejects at this level


def shares_agree(a: float, b: float, seeds: int) -> bool:
    """Whether two shares of `seeds` seeds (a committed and a fresh draw of the same seeds' outcome) could
    come from one outcome distribution: Fisher's exact test on the 2 x 2 table of counts does not reject
    at SHARE_LEVEL. With 3 seeds no difference can be told from chance (3 of 3 against 0 of 3 has p =
    0.1): outcomes on a boundary between plateau and collapse flip seed by seed between CPUs, and even
    between runs whose arrays land at other memory alignments."""
    from scipy.stats import fisher_exact

    k, m = round(a * seeds), round(b * seeds)
    return bool(fisher_exact([[k, seeds - k], [m, seeds - m]]).pvalue >= SHARE_LEVEL)


def agree(committed: Mapping[str, Any], fresh: Mapping[str, Any], column: str) -> bool | None:
    """Whether a committed measure agrees with a fresh one (see above); None for the setting columns."""
    if column.startswith("seed_"):
        return True
    if column in SHARES:
        a, b = committed[column], fresh[column]
        return isinstance(b, float) and shares_agree(a, b, committed["replicates"])
    if column.endswith("_se") and column[: -len("_se")] in MEASURED:
        return True  # the spread over seeds: the scale of the comparison, itself as uncertain as the mean
    if column not in MEASURED:
        return None
    a, b = committed[column], fresh[column]
    if a is None or b is None:  # empty on one side only: the share that empties it may move by one seed
        share = next(s for s, measures in SHARES.items() if column in measures)
        moved = abs(committed[share] - fresh[share]) * committed["replicates"]
        return (a is None and b is None) or moved <= 1 + 1e-9
    se = math.hypot(committed.get(column + "_se") or 0.0, fresh.get(column + "_se") or 0.0)
    return abs(a - b) <= Z * se + floor(column, committed, a, b)
