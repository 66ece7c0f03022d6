"""The figures of `sqrtdk train`: what each rule reaches against the learning rate, each seed's outcome
shown, and the logged curves (held-out loss, accuracy, entropy, largest logit) at each rule's best rate."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk.core.rules import RULES
from sqrtdk.experiments.train.measure import by_setting

if TYPE_CHECKING:
    from sqrtdk.core.train import Run
    from sqrtdk.result import Result


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


def kept(row: dict) -> int:
    """The seeds a row's means are over: those that did not diverge."""
    return round(row["replicates"] * (1 - row["diverged"]))


def _bars(rows: Sequence[dict], key: str) -> Any:
    """Error bars of the rows' means of `key` at the figures' level: none for the loss, whose seeds are
    drawn as dots on a log axis (a t interval on 2 degrees of freedom runs below 0 there), and the
    accuracy's cut at 0 and 1, which it cannot pass."""
    from sqrtdk.plots import t_half

    if key == "final_loss":
        return None
    half = [t_half(r[key + "_se"], kept(r) - 1) for r in rows]
    return [[min(h, r[key]) for h, r in zip(half, rows)], [min(h, 1.0 - r[key]) for h, r in zip(half, rows)]]


def lr_figure(result: Result) -> Any:
    """Per setting: the final held-out loss and accuracy against the learning rate, a line per rule
    through the means over the seeds that did not diverge (the accuracy's bars at the figures' level), a dot
    per such seed, a hollow marker where some seeds diverged and a cross at the loss at initialisation
    where all did; and each seed's outcome (core.train.outcome), a marker per seed."""
    from sqrtdk.plots import legend_below, new_figure, rules_in

    groups = by_setting(result)
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
                        yerr=_bars(ok, key),
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
                ax_loss.plot(*zip(*dots), ".", color=look.colour, ms=4, alpha=0.7, zorder=1)
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
        f"{row['task']}, {result.params.steps[0]} steps: mean over {row['replicates']} seeds; "
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

    groups, seeds = by_setting(result), _seeds(result)
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
