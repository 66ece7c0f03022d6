"""The generated report, results/README.md: each config's figure, its config, and a reading of its numbers.

Every sentence of a reading is built from the rows it describes (which way a quantity moves, how many
intervals contain the theory), so the report cannot say what the tables do not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

HEADER = """# sqrtdk results

Attention divides its scores by sqrt(d_k) because, for query and key entries that are independent with
mean 0 and variance 1, q.k has variance d_k: unscaled, the softmax saturates as d_k grows and its
gradients vanish. Each section below measures one step of that argument: a figure, the config that made
it, and a reading of its numbers, generated from the tables beside it.

This file and every folder beside it are written by `sqrtdk reproduce` from the configs in `configs/`;
`sqrtdk reproduce --check` tells whether they are stale. Do not edit them by hand.
"""


def render(configs: Sequence, results: Sequence, shown_at: Path) -> str:
    """The report for `configs` and their `results`, with links relative to the folder `shown_at`."""
    parts = [HEADER, "## Contents\n"]
    parts += [f"- [{c.title or c.name}](#{anchor(c.title or c.name)})" for c in configs]
    parts.append("")
    for config, result in zip(configs, results):
        parts.append(section(config, result, shown_at))
    return "\n".join(parts).rstrip() + "\n"


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def section(config, result, shown_at: Path) -> str:
    name = config.name
    lines = [f"## {config.title or name}", ""]
    if config.description:
        lines += [config.description, ""]
    figures = list(result.figures())
    shown = [f for f in figures if not f.startswith("histogram_")] or figures
    for figure in shown:
        lines += [f"![{figure}]({name}/{figure}.png)", ""]
    others = [f for f in figures if f not in shown]
    if others:
        lines += ["More figures: " + ", ".join(f"[{f}]({name}/{f}.png)" for f in others) + ".", ""]
    lines += [f"- {sentence}" for sentence in READERS[result.experiment](result)]
    config_link = Path(os.path.relpath(config.path.resolve(), shown_at.resolve())).as_posix()
    lines += ["", f"Tables: [rows.md]({name}/rows.md), [rows.csv]({name}/rows.csv), "
              f"[rows.json]({name}/rows.json). Config: [`{config.path.name}`]({config_link}):", "",
              "```toml", config.text.rstrip(), "```", ""]
    return "\n".join(lines)


# ---- wording built from numbers ----

def trend(a: float, b: float, spec: str) -> str:
    """'rises from 0.75 to 0.97', 'falls from ...' or 'stays at ...', as the printed numbers say."""
    sa, sb = _format(a, spec), _format(b, spec)
    if sa == sb:
        return f"stays at {sa}"
    return f"{'rises' if b > a else 'falls'} from {sa} to {sb}"


def _format(x: float, spec: str) -> str:
    if spec == "%":
        return f"{x:.1%}" if 0 < abs(x) < 0.1 else f"{x:.0%}"
    return format(x, spec)


def between(values: Sequence[float], spec: str) -> str:
    lo, hi = _format(min(values), spec), _format(max(values), spec)
    return f"at {lo}" if lo == hi else f"between {lo} and {hi}"


def _groups(result, x: str) -> list[tuple[str, list[dict]]]:
    """Rows grouped by the varying parameters other than d_k and n, with a prefix naming the group."""
    from sqrtdk.plots import series_of

    others = [c for c in result.series_columns(x) if c not in ("d_k", "seq_len")]
    return [(f"With {name}: " if name else "", rows) for name, rows in series_of(result.rows, others)]


def _level(result, row: dict, name: str) -> float:
    """A parameter's value for `row`: its column when the parameter varies, else the one value it has."""
    return row[name] if name in row else result.tasks[0][name]


def _by(rows: Sequence[dict], scaling: str, key: str = "d_k") -> list[dict]:
    return sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r[key])


def read_variance(result) -> list[str]:
    out = []
    for prefix, rows in _groups(result, "dim"):
        none, scaled = _by(rows, "none"), _by(rows, "sqrt")
        if len(none) == 1:
            out += _read_one_variance(prefix, none[0], scaled[0])
            continue
        a, b = none[0], none[-1]
        out.append(f"{prefix}Unscaled, the variance of q.k {trend(a['variance'], b['variance'], '.4g')} from "
                   f"d_k = {a['d_k']} to {b['d_k']} (theory {a['theory_variance']:.4g} and "
                   f"{b['theory_variance']:.4g}): a factor {b['variance'] / a['variance']:.4g} for a factor "
                   f"{b['d_k'] / a['d_k']:g} in d_k.")
        theory = scaled[0]["theory_variance"]
        out.append(f"Divided by sqrt(d_k), it stays {between([r['variance'] for r in scaled], '.4f')} over all "
                   f"{len(scaled)} values of d_k (theory {theory:.4g}).")
        missed = [r["d_k"] for r in scaled if not r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]]
        out.append(f"The 99.9% interval, from independent replicates, contains the theory at "
                   f"{len(scaled) - len(missed)} of {len(scaled)} values of d_k"
                   + (f"; not at d_k = {', '.join(map(str, missed))}." if missed else "."))
        ka, kb = scaled[0], scaled[-1]
        out.append(f"The excess kurtosis {trend(ka['excess_kurtosis'], kb['excess_kurtosis'], '.3g')} "
                   f"(± {ka['excess_kurtosis_se']:.2g} and ± {kb['excess_kurtosis_se']:.2g}; theory "
                   f"{ka['theory_excess_kurtosis']:.3g} and {kb['theory_excess_kurtosis']:.3g}): "
                   + _tails(ka) + " at d_k = " + str(ka["d_k"]) + ", " + _tails(kb) + " at d_k = "
                   + str(kb["d_k"]) + ".")
    return out


def _tails(row: dict) -> str:
    """What the measured excess kurtosis says, at three standard errors."""
    k, se = row["excess_kurtosis"], row["excess_kurtosis_se"]
    if k - 3 * se > 0:
        return "heavier tails than a normal curve"
    if k + 3 * se < 0:
        return "lighter tails than a normal curve"
    return "no measurable departure from a normal curve"


def _read_one_variance(prefix: str, none: dict, scaled: dict) -> list[str]:
    d = none["d_k"]
    return [
        f"{prefix}At d_k = {d}, {none['n_scores']:,} scores: the unscaled variance is {none['variance']:.4g} "
        f"(99.9% interval {none['variance_ci_low']:.4g} to {none['variance_ci_high']:.4g}; theory "
        f"{none['theory_variance']:.4g}), the scaled one {scaled['variance']:.4f} (interval "
        f"{scaled['variance_ci_low']:.4f} to {scaled['variance_ci_high']:.4f}; theory "
        f"{scaled['theory_variance']:.4g}).",
        f"The excess kurtosis is {scaled['excess_kurtosis']:.3g} ± {scaled['excess_kurtosis_se']:.2g} (theory "
        f"{scaled['theory_excess_kurtosis']:.3g}; a normal curve has 0): {_tails(scaled)}.",
    ]


def read_saturation(result) -> list[str]:
    out = []
    for prefix, rows in _groups(result, "dim"):
        seq_lens = sorted({r["seq_len"] for r in rows})
        for n in seq_lens:
            at_n = [r for r in rows if r["seq_len"] == n]
            none, scaled = _by(at_n, "none"), _by(at_n, "sqrt")
            if len(none) < 2:
                continue
            a, b = none[0], none[-1]
            threshold = _level(result, b, "threshold")
            ratio = "" if b["entropy_ratio_mean"] is None else f" ({_format(b['entropy_ratio_mean'], '%')} of ln n)"
            out.append(f"{prefix}n = {n}, unscaled: from d_k = {a['d_k']} to {b['d_k']} the largest weight "
                       f"{trend(a['max_prob_mean'], b['max_prob_mean'], '.3f')}, the entropy "
                       f"{trend(a['entropy_mean'], b['entropy_mean'], '.3g')} nats{ratio}, and the share of "
                       f"rows with max p >= {threshold:g} "
                       f"{trend(a['saturated_fraction'], b['saturated_fraction'], '%')}.")
            line = (f"n = {n}, scaled: over the same d_k the largest weight stays "
                    f"{between([r['max_prob_mean'] for r in scaled], '.3f')} and the entropy "
                    f"{between([r['entropy_mean'] for r in scaled], '.3g')} nats")
            rem = [r for r in scaled if r["theory_entropy"] is not None]
            if rem:
                r = rem[-1]
                line += (f"; the random-energy-model entropy ln n - E[s^2]/2 is {r['theory_entropy']:.3f}, "
                         f"measured {r['entropy_mean']:.3f} ± {r['entropy_mean_se']:.2g} at d_k = {r['d_k']}")
            out.append(line + ".")
        out += _across_n(prefix, rows, seq_lens, "entropy_ratio_mean", "entropy / ln n", ".2f")
    return out


def _across_n(prefix: str, rows: Sequence[dict], seq_lens: Sequence[int], metric: str, what: str,
              spec: str) -> list[str]:
    """How `metric` moves with n at the largest d_k, for each scaling."""
    ends = [n for n in seq_lens if n > 1]
    if len(ends) < 2:
        return []
    d = max(r["d_k"] for r in rows)
    parts = []
    for scaling, word in (("sqrt", "scaled"), ("none", "unscaled")):
        sel = [r for r in _by(rows, scaling, "seq_len") if r["d_k"] == d and r["seq_len"] in ends]
        if len(sel) >= 2 and sel[0][metric] is not None and sel[-1][metric] is not None:
            parts.append(f"{word}, {what} {trend(sel[0][metric], sel[-1][metric], spec)}")
    if not parts:
        return []
    return [f"{prefix}At d_k = {d}, from n = {ends[0]} to {ends[-1]}: " + "; ".join(parts) + "."]


def read_gradient(result) -> list[str]:
    out = []
    for prefix, rows in _groups(result, "dim"):
        seq_lens = sorted({r["seq_len"] for r in rows})
        for n in seq_lens:
            at_n = [r for r in rows if r["seq_len"] == n]
            none, scaled = _by(at_n, "none"), _by(at_n, "sqrt")
            if len(none) < 2:
                continue
            a, b, sb = none[0], none[-1], scaled[-1]
            eps = _level(result, b, "eps")
            out.append(f"{prefix}n = {n}, unscaled: from d_k = {a['d_k']} to {b['d_k']} the mean ||J||_F "
                       f"{trend(a['jacobian_fro_mean'], b['jacobian_fro_mean'], '.3g')} and the share of rows "
                       f"with ||J||_F < {eps:g} {trend(a['vanishing_fraction'], b['vanishing_fraction'], '%')}; "
                       f"scaled, ||J||_F stays {between([r['jacobian_fro_mean'] for r in scaled], '.3g')} "
                       f"(uniform row: {b['uniform_jacobian_fro']:.3g}).")
            out.append(f"n = {n}, d_k = {b['d_k']}: ||dL/dq|| averages {b['grad_q_mean']:.3g} unscaled against "
                       f"{sb['grad_q_mean']:.3g} scaled, and ||dL/ds|| {b['grad_logits_mean']:.3g} against "
                       f"{sb['grad_logits_mean']:.3g}.")
        out += _across_n(prefix, rows, seq_lens, "jacobian_fro_mean", "the mean ||J||_F", ".3g")
    return out


def read_check(result) -> list[str]:
    failed = [r["d_k"] for r in result.rows if not r["passed"]]
    lows = [r["variance_ci_low"] for r in result.rows]
    highs = [r["variance_ci_high"] for r in result.rows]
    verdict = "every interval lies inside the band" if not failed else \
        f"the interval leaves the band at d_k = {', '.join(map(str, failed))}"
    return [f"The scaled variance's 99.9% intervals span {min(lows):.4f} to {max(highs):.4f} over "
            f"{len(result.rows)} values of d_k: {verdict}."]


READERS = {"variance": read_variance, "saturation": read_saturation, "gradient": read_gradient,
           "check": read_check}
