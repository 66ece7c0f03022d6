"""`sqrtdk train`: does the scaling matter for learning? Small attention-only models trained under each rule.

Every task of the grid is one (task, size, rule, learning rate) trained from `replicates` seeds spawned
from the root seed; the same seeds serve every rule and rate, so rules are compared on the same initial
draws and batches. A run (core/train.py) trains the model of core/transformer.py with AdamW (0.9, 0.95;
weight decay 1e-4 independent of the rate; clipping at norm 1; linear warm-up, cosine decay) and logs its
held-out loss and accuracy, attention entropy, largest logit and gradients, and ends in one outcome
(core.train.outcome, the first that holds): diverged (its loss stopped being finite, or its final
held-out loss is above its loss at initialisation), trained (final held-out accuracy >= 99%), collapsed
(final held-out loss within 0.05 nats of ln V, V the vocabulary: the loss of the uniform output) or
plateaued (the rest). A row summarises the replicates: the share of seeds in each outcome; the final
held-out loss and accuracy, the largest logit and the final entropy / ln n, each the mean with its
standard error over the seeds that did not diverge; the step at which held-out accuracy first reached
99%; and each seed's outcome, final loss and loss at initialisation (the lists seed_outcome, seed_loss,
seed_loss_at_init), from which the comparisons across rows are made. Across the learning rates of a rule,
its LR sensitivity is Wortsman et al. 2023's (arXiv 2309.14322, section 2.2), taken per seed as the paper
takes it per run: the mean over the grid of min(loss(lr), loss at initialisation) minus the best such
loss of that seed, a seed whose loss stopped being finite counting as its loss at initialisation; then
its mean and standard error over the seeds. A rule that trains at no rate scores low by this definition
(every rate about as bad as its best), and the report marks it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.core.theory import INITS
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

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


def _groups(result: Result) -> list[tuple[str, list[dict]]]:
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


def across(result: Result) -> dict[str, Any]:
    """The per-rule LR sensitivity of each setting (mean and standard error over seeds), and whether the
    rule trains at some rate of the grid, for the JSON document."""
    out = []
    for name, rows in _groups(result):
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


# ---- figures ----


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    out: dict[str, Callable[[], Any]] = {}
    if len(result.params.lr) > 1:
        out["train_vs_lr"] = lambda: lr_figure(result)
    out["train_curves"] = lambda: curves_figure(result)
    return out


def _seeds(result: Result) -> dict[int, list[Run]]:
    """Each row's replicates (one row per task), by the row's identity."""
    return {id(row): runs for row, runs in zip(result.rows, result.outputs)}


def _dodge(rules: Sequence[str]) -> dict[str, float]:
    """A factor per rule that spreads the rules' markers around each learning rate on the log axis."""
    width = 0.06  # in decades, between neighbours
    return {rule: 10 ** (width * (i - (len(rules) - 1) / 2)) for i, rule in enumerate(rules)}


# How each outcome is drawn in the outcome panel: Okabe-Ito colours and a marker each, so that an
# outcome reads without its colour.
OUTCOME_LOOK = {  # greys told apart by shape: the rules' colours stay the rules'
    "trained": ("0.0", "o"),
    "plateaued": ("0.4", "s"),
    "collapsed": ("0.75", "v"),
    "diverged": ("0.0", "X"),
}


def outcome_panel(ax: Any, rows: Sequence[dict]) -> None:
    """A rule per line, a learning rate per column, each seed a marker coloured by how it ended."""
    from sqrtdk.plots import rules_in

    rules, rates = rules_in(rows), sorted({r["lr"] for r in rows})
    seeds = max(len(r["seed_outcome"]) for r in rows)
    width = 0.8 / max(seeds, 1)
    size = min(6.0, 30.0 / max(seeds, 1))
    for line, rule in enumerate(rules):
        for column, lr in enumerate(rates):
            row = next((r for r in rows if r["scaling"] == rule and r["lr"] == lr), None)
            for k, end in enumerate(row["seed_outcome"] if row else ()):
                colour, marker = OUTCOME_LOOK[end]
                ax.plot(column + width * (k - (seeds - 1) / 2), line, marker, color=colour, ms=size, mec="none")
    ax.set_xticks(range(len(rates)), [f"{lr:g}" for lr in rates])
    ax.set_yticks(range(len(rules)), [RULES[rule].tick for rule in rules])
    ax.set_xlim(-0.6, len(rates) - 0.4)
    ax.set_ylim(len(rules) - 0.5, -0.5)
    ax.set_xlabel("peak learning rate")
    ax.grid(False)


def _outcome_handles(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The outcome key, for the outcomes some seed of `rows` ended in."""
    from matplotlib.lines import Line2D

    ends = {end for r in rows for end in r["seed_outcome"]}
    return [
        Line2D([], [], ls="none", marker=marker, color=colour, mec="none", label=f"seed {end}")
        for end, (colour, marker) in OUTCOME_LOOK.items()
        if end in ends
    ]


def lr_figure(result: Result) -> Any:
    """Per setting: the final held-out loss and accuracy against the learning rate, a line per rule
    through the means over the seeds that did not diverge (error bars: one standard error), a small dot
    per such seed, a hollow marker where some seeds diverged and a cross at the loss at initialisation
    where all did; and each seed's outcome (core.train.outcome), a marker per seed."""
    from sqrtdk.plots import legend_below, new_figure, rules_in

    groups = _groups(result)
    fig = new_figure(3, len(groups), aspect=0.85)
    axes = fig.subplots(len(groups), 3, squeeze=False)
    for (name, rows), (ax_loss, ax_acc, ax_end) in zip(groups, axes):
        rules = rules_in(rows)
        shift = _dodge(rules)
        for rule in rules:
            sel = sorted((r for r in rows if r["scaling"] == rule), key=lambda r: r["lr"])
            look = RULES[rule]
            for ax, key in ((ax_loss, "final_loss"), (ax_acc, "final_accuracy")):
                ok = [r for r in sel if r[key] is not None]
                if ok:
                    ax.errorbar(
                        [r["lr"] * shift[rule] for r in ok],
                        [r[key] for r in ok],
                        yerr=[r[key + "_se"] or 0.0 for r in ok],
                        fmt=look.marker,
                        linestyle=look.line,  # each rule its own line style too: it reads in greyscale
                        color=look.colour,
                        ms=4,
                        capsize=2,
                        label=look.label,
                        zorder=2,
                    )
                    some = [r for r in ok if r["diverged"] > 0]
                    if some:
                        ax.plot(
                            [r["lr"] * shift[rule] for r in some],
                            [r[key] for r in some],
                            look.marker,
                            color="white",
                            ms=2,
                            zorder=3,
                        )
                gone = [r for r in sel if r[key] is None]
                if gone and key == "final_loss":
                    ax.plot(
                        [r["lr"] * shift[rule] for r in gone],
                        [r["loss_at_init"] for r in gone],
                        "x",
                        color=look.colour,
                        ms=7,
                    )
            dots = [
                (r["lr"] * shift[rule], loss)
                for r in sel
                for loss, end in zip(r["seed_loss"], r["seed_outcome"])
                if end != "diverged"
            ]
            if dots:
                ax_loss.plot(*zip(*dots), ".", color=look.colour, ms=2.5, alpha=0.45, zorder=1)
        ax_loss.axhline(rows[0]["loss_at_init"], color="0.5", lw=0.8, ls=":")
        rates = sorted({r["lr"] for r in rows})
        for ax in (ax_loss, ax_acc):
            ax.set_xscale("log")
            ax.set_xlabel("peak learning rate")
            ax.set_xticks(rates, [f"{lr:g}" for lr in rates])
            ax.minorticks_off()
        loss_axis(ax_loss)
        ax_acc.set_ylim(-0.03, 1.03)
        outcome_panel(ax_end, rows)
        setting = f", {_maths(name)}" if name else ""
        ax_loss.set_title(f"held-out loss{setting}")
        ax_acc.set_title("held-out accuracy")
        ax_end.set_title("each seed's outcome")
    legend_below(fig, [axes[0][0]], handles=_outcome_handles(result.rows))
    row = result.rows[0]
    fig.suptitle(
        f"{row['task']}, {result.params.steps[0]} steps: mean ± 1 s.e. over {row['replicates']} seeds; "
        "dotted: loss at the start" + ("; hollow: some diverged" if any(r["diverged"] > 0 for r in result.rows) else "")
    )
    return fig


def _maths(name: str) -> str:
    """A setting's name for a figure: d_k and d_model set as maths."""
    return name.replace("d_model", "$d_{model}$").replace("d_k", "$d_k$")


def loss_axis(ax: Any) -> None:
    """A log axis for losses that span a decade or more (plots.log_axis), else a linear one, whose
    ticks stay apart."""
    from sqrtdk.plots import log_axis

    drawn = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if drawn and max(drawn) >= 10 * min(drawn):
        log_axis(ax)


def best_lr(rows: Sequence[dict]) -> float:
    """The learning rate at which the 1/sqrt(d_k) rule (or the first rule there is) ends with the lowest
    held-out loss: where the curves of every rule are compared."""
    rule = "sqrt" if any(r["scaling"] == "sqrt" for r in rows) else rows[0]["scaling"]
    trained = [r for r in rows if r["scaling"] == rule and r["final_loss"] is not None]
    return min(trained, key=lambda r: r["final_loss"])["lr"] if trained else min(r["lr"] for r in rows)


def curves_figure(result: Result) -> Any:
    """Training curves, a row of panels per setting at the learning rate where 1/sqrt(d_k) ends best
    (best_lr): held-out loss, entropy / ln n and the largest |logit| against the step, from step 0 (as
    initialised), the mean over the seeds that did not diverge, a line per rule. The largest |logit| is on
    a symmetric-log axis, linear below 1: under 1/d_k W_q starts at zero, so at step 0 every logit is
    exactly 0 (q = 0), a value a log axis cannot show."""
    import numpy as np

    from sqrtdk.plots import legend_below, new_figure

    groups, seeds = _groups(result), _seeds(result)
    fig = new_figure(3, len(groups), aspect=0.9)
    axes = fig.subplots(len(groups), 3, squeeze=False)
    titles = ("held-out loss", r"entropy $/\ln n$, layer mean", r"largest $|$logit$|$, any layer")
    for (name, rows), row_axes in zip(groups, axes):
        chosen = best_lr(rows)
        for r in (r for r in rows if r["lr"] == chosen):
            runs = seeds.get(id(r)) or []
            kept = [run for run, end in zip(runs, r["seed_outcome"]) if end != "diverged" and run.log]
            if not kept:
                continue
            length = min(len(run.log) for run in kept)
            steps = [entry["step"] for entry in kept[0].log[:length]]
            look = RULES[r["scaling"]]
            for ax, key in zip(row_axes, ("loss", "entropy_ratio", "max_logit")):
                values = np.array(
                    [
                        [np.max(e[key]) if key == "max_logit" else np.mean(e[key]) for e in run.log[:length]]
                        for run in kept
                    ]
                )
                ax.plot(steps, values.mean(axis=0), color=look.colour, ls=look.line, label=look.label)
        for ax, title in zip(row_axes, titles):
            ax.set_xlabel("step")
            ax.set_title(title)
        row_axes[0].set_ylabel(", ".join(x for x in (_maths(name), f"lr {chosen:g}") if x))
        row_axes[1].set_ylim(-0.03, 1.03)
        loss_axis(row_axes[0])
        row_axes[2].set_yscale("symlog", linthresh=1.0, linscale=1.0)
        row_axes[2].set_ylim(bottom=0.0)
    legend_below(fig, list(axes[0]))
    row = result.rows[0]
    fig.suptitle(f"{row['task']}: mean of {row['replicates']} seeds at the rate where $1/\\sqrt{{d_k}}$ ends best")
    return fig


# ---- reading and table ----


def trains(row: Mapping[str, Any]) -> bool:
    """A rule trains at a rate when every seed trained (core.train.outcome)."""
    return row["trained"] == 1.0


LETTERS = {"trained": "T", "plateaued": "P", "collapsed": "C", "diverged": "D"}


def seed_counts(row: Mapping[str, Any]) -> str:
    """How a row's seeds ended, by count: '2 T, 1 P' (letters as LETTERS)."""
    ends = row["seed_outcome"]
    return ", ".join(f"{ends.count(end)} {letter}" for end, letter in LETTERS.items() if end in ends)


def _in_words(row: Mapping[str, Any]) -> str:
    """'2 of 3 seeds collapsed, 1 plateaued'."""
    ends = row["seed_outcome"]
    counts = [(ends.count(end), end) for end in LETTERS if end in ends]
    counts.sort(key=lambda c: -c[0])
    first, *rest = counts
    return f"{first[0]} of {len(ends)} seeds {first[1]}" + "".join(f", {n} {end}" for n, end in rest)


DEFINITION = (
    "Each seed ends in one outcome, the first that holds: **diverged** (its loss stopped being finite, or "
    "its final held-out loss is above its loss at initialisation), **trained** (final held-out accuracy of "
    "99% or more), **collapsed** (final held-out loss within {margin:g} nats of ln V = {uniform:.2f}, V = "
    "{vocab} the vocabulary: the loss of the uniform output), **plateaued** (the rest). A rule trains at a "
    "learning rate when every seed trained. Held-out loss and accuracy are means ± standard error over the "
    "seeds that did not diverge."
)


def _accuracy(row: Mapping[str, Any]) -> str:
    """'78.7% ± 4.1' (percentage points, two significant digits of the standard error)."""
    if row["final_accuracy"] is None:
        return "every seed diverged"
    se = row["final_accuracy_se"]
    return report.share(row["final_accuracy"]) + ("" if se is None else f" ± {100 * se:.2g}")


def _rates(rows: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{r['lr']:g}" for r in rows)


def _definition(rows: Sequence[Mapping[str, Any]]) -> str:
    from sqrtdk.core.tasks import Task
    from sqrtdk.core.train import MARGIN

    vocab = Task(rows[0]["task"]).vocab
    uniform = math.log(vocab)
    return DEFINITION.format(margin=MARGIN, vocab=vocab, uniform=uniform)


def reading(result: Result) -> list[str]:
    out = []
    groups = _groups(result)
    for number, (name, rows) in enumerate(groups):
        prefix = f"With {name}: " if name else ""
        rules = [s for s in SCALINGS if any(r["scaling"] == s for r in rows)]
        said = []
        for rule in rules:
            sel = sorted((r for r in rows if r["scaling"] == rule), key=lambda r: r["lr"])
            good, bad = [r for r in sel if trains(r)], [r for r in sel if not trains(r)]
            words = RULES[rule].words
            if not good:
                best = max(sel, key=lambda r: (r["trained"], r["final_accuracy"] or 0.0))
                said.append(f"{words} at none (at best {_accuracy(best)} at {best['lr']:g}, {_in_words(best)})")
            else:
                failed = ", ".join(f"{r['lr']:g} ({_in_words(r)})" for r in bad)
                said.append(f"{words} at {_rates(good)}" + (f", not at {failed}" if bad else ""))
        rates = _rates(sorted({r["lr"]: r for r in rows}.values(), key=lambda r: r["lr"]))
        lead = f"With {name}, of" if name else "Of"
        if number == 0:
            out.append(_definition(rows))
        out.append(f"{lead} the rates {rates}, each rule trains: " + "; ".join(said) + ".")
        out += _against_sqrt(prefix, rows)
        lrs = sorted({r["lr"] for r in rows})
        cells = []
        for rule in rules:
            at = {r["lr"]: r for r in rows if r["scaling"] == rule}
            done = [r for r in at.values() if r["final_loss"] is not None]
            lowest = min(done, key=lambda r: r["final_loss"]) if done else None
            sensitivity = lr_sensitivity(list(at.values())) if len(at) > 1 else None
            cells.append(
                [
                    RULES[rule].words,
                    *(seed_counts(at[lr]) if lr in at else "" for lr in lrs),
                    "" if lowest is None else f"{lowest['lr']:g}",
                    "" if lowest is None else _loss(lowest),
                    "" if lowest is None else _accuracy(lowest) + "%",
                    _sensitivity(sensitivity)
                    + ("" if sensitivity is None or any(trains(r) for r in at.values()) else " †"),
                ]
            )
        out.append(
            _lead(prefix, "per rule, over the learning rates")
            + " (the seeds' outcomes at each rate, T trained, P plateaued, C collapsed, D diverged; held-out "
            "loss and accuracy: mean ± standard error over the seeds that did not diverge):\n\n"
            + report.markdown_table(
                ["rule", *(f"lr {lr:g}" for lr in lrs), "best lr", "its loss", "its accuracy", "LR sensitivity"],
                cells,
            )
            + _table_notes(number == 0, any(c[-1].endswith("†") for c in cells))
        )
    if len(groups) > 1:
        out.append(_largest_rates(groups))
    return out


def _largest_rates(groups: Sequence[tuple[str, list[dict]]]) -> str:
    """The largest learning rate at which each rule trains (every seed), setting by setting."""
    parts = []
    for rule in [s for s in SCALINGS if any(r["scaling"] == s for _, rows in groups for r in rows)]:
        largest = []
        for _, rows in groups:
            good = [r["lr"] for r in rows if r["scaling"] == rule and trains(r)]
            largest.append(f"{max(good):g}" if good else "none")
        parts.append(f"{RULES[rule].words} {' → '.join(largest)}")
    names = " → ".join(name for name, _ in groups)
    return f"The largest learning rate at which each rule trains, {names}: " + "; ".join(parts) + "."


def paired(a: Mapping[str, Any], b: Mapping[str, Any], level: float = LEVEL) -> dict[str, Any]:
    """Rule a against rule b at one setting and rate, seed by seed: each seed's final held-out loss under
    a minus that under b (both capped, as `capped`), over the seeds the two rows share (the same initial
    draws and batches, so the pairs' differences are what varies); their mean, its standard error and the
    two-sided `level` interval from Student's t on seeds - 1 degrees of freedom. The verdict: 'not
    compared' when every seed of both rules collapsed or diverged (neither learned, and their losses do not
    rank them), 'worse' or 'better' when the interval lies above or below zero, 'no difference' when it
    holds zero, 'one seed' when there is no interval."""
    import statistics

    from sqrtdk.core.moments import t_quantile

    failed = {"collapsed", "diverged"}
    if set(a["seed_outcome"]) <= failed and set(b["seed_outcome"]) <= failed:
        return {"verdict": "not compared", "seeds": len(a["seed_outcome"])}
    diffs = [x - y for x, y in zip(capped(a), capped(b))]
    mean, seeds = sum(diffs) / len(diffs), len(diffs)
    if seeds < 2:
        return {"verdict": "one seed", "seeds": seeds, "mean": mean}
    se = statistics.stdev(diffs) / math.sqrt(seeds)
    half = t_quantile(0.5 + level / 2, seeds - 1) * se
    low, high = mean - half, mean + half
    verdict = "no difference" if low <= 0 <= high else ("worse" if low > 0 else "better")
    return {"verdict": verdict, "seeds": seeds, "mean": mean, "se": se, "low": low, "high": high}


def _signed(x: float) -> str:
    return ("+" if x > 0 else "") + report.num(x, 2)


def _against_sqrt(prefix: str, rows: Sequence[dict]) -> list[str]:
    """Unscaled attention against 1/sqrt(d_k) at each learning rate, the seed articles' claim, by the
    paired comparison of the two rules' seeds (`paired`)."""
    scaled = {r["lr"]: r for r in rows if r["scaling"] == "sqrt"}
    parts, seeds = [], 0
    for r in sorted((r for r in rows if r["scaling"] == "none"), key=lambda r: r["lr"]):
        base = scaled.get(r["lr"])
        if base is None:
            continue
        c = paired(r, base)
        seeds = c["seeds"]
        if c["verdict"] == "not compared":
            parts.append(
                f"not compared at lr {r['lr']:g}, where neither learned (unscaled: {_in_words(r)}; 1/sqrt(d_k): "
                f"{_in_words(base)})"
            )
        elif c["verdict"] == "one seed":
            parts.append(f"at lr {r['lr']:g} a difference of {_signed(c['mean'])} on one seed, no interval")
        else:
            parts.append(
                f"{c['verdict']} at lr {r['lr']:g} ({_signed(c['mean'])}, interval {_signed(c['low'])} to "
                f"{_signed(c['high'])})"
            )
    if not parts:
        return []
    return [
        _lead(prefix, "unscaled attention against 1/sqrt(d_k)")
        + f", seed by seed over the {seeds} seeds both share: the final held-out loss under unscaled minus that "
        f"under 1/sqrt(d_k) (each capped at its loss at initialisation, a diverged seed counting as that), its "
        f"mean and {LEVEL:.0%} interval from Student's t on {seeds - 1} degrees of freedom; no difference where "
        "the interval holds zero: " + "; ".join(parts) + "."
    ]


def _table_notes(first: bool, marked: bool) -> str:
    """What the per-rule table's last column means (under the first table), and its mark."""
    notes = []
    if first:
        notes.append(
            "LR sensitivity (Wortsman et al. 2023, section 2.2): per seed, the mean over the rates of min(final "
            "loss, loss at initialisation) minus that seed's lowest such loss; its mean ± standard error over "
            "the seeds."
        )
    if marked:
        notes.append(
            "† The rule trains at no rate of the grid: its sensitivity is measured from a best loss that is "
            "itself a failure, so it understates how much the rate matters (a rule that fails alike at every "
            "rate scores 0)."
        )
    return "".join("\n\n" + note for note in notes)


def _sensitivity(value: tuple[float, float | None] | None) -> str:
    """'0.0151 ± 0.002', or empty for a rule at one rate."""
    if value is None:
        return ""
    mean, se = value
    return report.num(mean, 3) + ("" if se is None else f" ± {report.num(se, 2)}")


def _lead(prefix: str, text: str) -> str:
    """'With d_k = 64: per rule ...', or 'Per rule ...' without a prefix."""
    return prefix + text if prefix else text[0].upper() + text[1:]


def _loss(row: Mapping[str, Any]) -> str:
    se = row["final_loss_se"]
    return report.num(row["final_loss"], 3) + ("" if se is None else f" ± {report.num(se, 2)}")


def table(result: Result) -> Table:
    from sqrtdk.output import pm

    rows = result.rows
    return Table(
        "Training: held-out loss and accuracy at the last step, mean ± standard error over the seeds that "
        "did not diverge; how each seed ended",
        (
            Column("d_k", tuple(str(r["d_k"]) for r in rows), key=True),  # the grid's axes lead (cli)
            Column("loss", tuple(pm(r, "final_loss") for r in rows)),
            Column("accuracy", tuple(pm(r, "final_accuracy") for r in rows)),
            Column("seeds", tuple(seed_counts(r) for r in rows)),
            Column("steps to 99%", tuple("" if r["steps_to_99"] is None else f"{r['steps_to_99']:.0f}" for r in rows)),
            Column("max |logit|", tuple("" if r["max_logit"] is None else f"{r['max_logit']:.3g}" for r in rows)),
            Column(
                "H / ln n",
                tuple("" if r["final_entropy_ratio"] is None else f"{r['final_entropy_ratio']:.3f}" for r in rows),
                wide=True,
            ),
        ),
        [
            "Seeds: T trained (final accuracy >= 99%), P plateaued, C collapsed (final loss within "
            f"{_margin():g} nats of ln V, the loss of the uniform output), D diverged (a non-finite loss, or a "
            "final loss above the loss at initialisation). An empty steps-to-99% cell: some seed never "
            "reached 99% held-out accuracy; an empty loss: every seed diverged."
        ],
    )


def _margin() -> float:
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


EXPERIMENT = Experiment(
    "train",
    "Small attention-only models trained under each scaling rule across learning rates: loss, accuracy, entropy.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
    across=across,
    curves=curves,
    with_curves=with_curves,
    arrays=arrays,
    agree=agree,
)
