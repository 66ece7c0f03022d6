"""What `sqrtdk train` says: its reading in the report (which rules train at which rates, the paired
comparisons with 1/sqrt(d_k), LR sensitivity), built from the rows, and its terminal table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk import report
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.experiments.train.measure import LEVEL, by_setting, capped, lr_sensitivity, margin, trains
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.result import Result


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
    groups = by_setting(result)
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
            f"{margin():g} nats of ln V, the loss of the uniform output), D diverged (a non-finite loss, or a "
            "final loss above the loss at initialisation). An empty steps-to-99% cell: some seed never "
            "reached 99% held-out accuracy; an empty loss: every seed diverged."
        ],
    )
