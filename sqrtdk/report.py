"""The generated report, results/README.md: each config's figure, its config, and a reading of its numbers.

Every sentence of a reading is built from the rows it describes (which way a quantity moves, how many
intervals contain the theory), so the report cannot say what the tables do not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from sqrtdk.theory import REM_ACCURACY

HEADER = """# sqrtdk results

Attention divides its scores by sqrt(d_k) because, for query and key entries that are independent with
mean 0 and variance 1, q.k has variance d_k: unscaled, the softmax saturates as d_k grows and its
gradients vanish. Each section below measures one step of that argument: a figure, the config that made
it, and a reading of its numbers, generated from the tables beside it.

This file and every folder beside it are written by `sqrtdk reproduce` from the configs in `configs/`;
`sqrtdk reproduce --check` tells whether they are stale. Do not edit them by hand.
"""


def is_report(path: Path) -> bool:
    """Whether `path` holds a report that sqrtdk wrote (it starts with the report's heading)."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline() == HEADER.splitlines(keepends=True)[0]
    except (OSError, UnicodeDecodeError):
        return False


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


RULE_NAMES = {"none": "unscaled", "sqrt": "1/sqrt(d_k)", "linear": "1/d_k", "qknorm": "QK-norm",
              "logn": "Scalable-Softmax"}


def _covered(rows: Sequence[dict]) -> tuple[int, int, list[dict]]:
    """(intervals containing the theory, intervals with a theory, the rows that miss)."""
    judged = [r for r in rows if r["theory_variance"] is not None and r["variance_ci_low"] is not None]
    missed = [r for r in judged if not r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]]
    return len(judged) - len(missed), len(judged), missed


def _coverage_sentence(rows: Sequence[dict]) -> list[str]:
    hit, judged, missed = _covered(rows)
    if not judged:
        return []
    where = "; not at " + ", ".join(f"d_k = {r['d_k']} ({RULE_NAMES[r['scaling']]})" for r in missed[:6]) if missed else ""
    return [f"The 99.9% interval (jackknife over independent replicates) contains the theory in {hit} of {judged} "
            f"rows{where}."]


def read_variance(result) -> list[str]:
    groups = _groups(result, "dim")
    single_d = len({r["d_k"] for r in result.rows}) == 1
    if single_d and len(groups) == 1:
        prefix, rows = groups[0]
        return _read_one_variance(prefix, _by(rows, "none")[0], _by(rows, "sqrt")[0]) + _coverage_sentence(rows)
    if single_d:
        return [_read_setting(prefix, rows) for prefix, rows in groups] + _coverage_sentence(result.rows)
    out = []
    for prefix, rows in groups:
        out += _read_variance_vs_dk(prefix, rows, detailed=len(groups) == 1)
    return out + _coverage_sentence(result.rows)


def _read_setting(prefix: str, rows: Sequence[dict]) -> str:
    """'With init = lecun: unscaled 63.76 (99.9% interval ...; theory 64); 1/sqrt(d_k) 0.9962 (...).'"""
    parts = []
    for r in sorted(rows, key=lambda r: list(RULE_NAMES).index(r["scaling"])):
        ci = "" if r["variance_ci_low"] is None else f", interval {r['variance_ci_low']:.4g} to {r['variance_ci_high']:.4g}"
        told = "" if r["theory_variance"] is None else f"; theory {r['theory_variance']:.4g}"
        parts.append(f"{RULE_NAMES[r['scaling']]} {r['variance']:.4g}{ci}{told}")
    return f"{prefix or ''}the score variance at d_k = {rows[0]['d_k']} is " + "; ".join(parts) + "."


def _read_variance_vs_dk(prefix: str, rows: Sequence[dict], detailed: bool) -> list[str]:
    out = []
    none, scaled = _by(rows, "none"), _by(rows, "sqrt")
    if none:
        a, b = none[0], none[-1]
        out.append(f"{prefix}Unscaled, the variance of q.k {trend(a['variance'], b['variance'], '.4g')} from "
                   f"d_k = {a['d_k']} to {b['d_k']} (theory {_num(a['theory_variance'])} and "
                   f"{_num(b['theory_variance'])}): a factor {b['variance'] / a['variance']:.4g} for a factor "
                   f"{b['d_k'] / a['d_k']:g} in d_k.")
        if a["theory_mean"] and b["theory_mean"]:
            sd_factor = math.sqrt(b["variance"] / a["variance"])
            out.append(f"Its mean {trend(a['mean'], b['mean'], '.4g')} (theory {a['theory_mean']:.4g} and "
                       f"{b['theory_mean']:.4g}), a factor {b['mean'] / a['mean']:.4g}, while its standard deviation "
                       f"grows by a factor {sd_factor:.3g}: the mean outgrows the spread, "
                       f"mean / sd {trend(a['mean'] / math.sqrt(a['variance']), b['mean'] / math.sqrt(b['variance']), '.3g')}.")
    for rule in ("sqrt", "linear", "qknorm"):
        sel = _by(rows, rule)
        if not sel:
            continue
        if rule == "linear":
            line = (f"{RULE_NAMES[rule]}: the variance {trend(sel[0]['variance'], sel[-1]['variance'], '.4g')} "
                    f"from d_k = {sel[0]['d_k']} to {sel[-1]['d_k']} (theory {_num(sel[0]['theory_variance'])} and "
                    f"{_num(sel[-1]['theory_variance'])})")
        else:
            theories = {round(r["theory_variance"], 12) for r in sel if r["theory_variance"] is not None}
            told = f" (theory {_num(sel[0]['theory_variance'])})" if len(theories) == 1 else ""
            line = (f"{RULE_NAMES[rule]}: the variance stays {between([r['variance'] for r in sel], '.4g')} over "
                    f"d_k = {sel[0]['d_k']} to {sel[-1]['d_k']}{told}")
        if sel[0]["theory_mean"] and rule != "qknorm":
            line += f"; the mean {trend(sel[0]['mean'], sel[-1]['mean'], '.4g')}"
        out.append(line + ".")
    if detailed and scaled:
        ka, kb = scaled[0], scaled[-1]
        if ka["excess_kurtosis"] is not None and kb["excess_kurtosis_se"] is not None and ka["excess_kurtosis_se"] is not None:
            out.append(f"The excess kurtosis {trend(ka['excess_kurtosis'], kb['excess_kurtosis'], '.3g')} "
                       f"(± {ka['excess_kurtosis_se']:.2g} and ± {kb['excess_kurtosis_se']:.2g}; theory "
                       f"{_num(ka['theory_excess_kurtosis'], '.3g')} and {_num(kb['theory_excess_kurtosis'], '.3g')}): "
                       + _tails(ka) + " at d_k = " + str(ka["d_k"]) + ", " + _tails(kb) + " at d_k = "
                       + str(kb["d_k"]) + ".")
    elif scaled:
        kurt = [r for r in scaled if r["excess_kurtosis_se"] is not None and r["theory_excess_kurtosis"] is not None]
        if kurt:
            near = [r for r in kurt if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]]
            out.append(f"d_k times the excess kurtosis is {kurt[0]['d_k'] * kurt[0]['theory_excess_kurtosis']:.3g} in "
                       f"theory at every d_k; the measurement is within 3 standard errors of it at {len(near)} of "
                       f"{len(kurt)} values of d_k.")
        elif any(r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None for r in scaled):
            bare = [r for r in scaled if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            out.append(f"d_k times the excess kurtosis is {bare[0]['d_k'] * bare[0]['theory_excess_kurtosis']:.3g} in "
                       f"theory at every d_k and measures {between([r['d_k'] * r['excess_kurtosis'] for r in bare], '.3g')}; "
                       "no standard error is given for such heavy tails (its interval would cover too rarely).")
        elif not any(r["excess_kurtosis"] is not None for r in scaled):
            out.append("The excess kurtosis does not exist for these entries (fourth moment infinite): left empty.")
    return out


def _num(value: float | None, spec: str = ".4g") -> str:
    return "none in closed form" if value is None else format(value, spec)


def _tails(row: dict) -> str:
    """What the measured excess kurtosis says, at three standard errors."""
    k, se = row["excess_kurtosis"], row["excess_kurtosis_se"]
    if k - 3 * se > 0:
        return "heavier tails than a normal curve"
    if k + 3 * se < 0:
        return "lighter tails than a normal curve"
    return "within 3 standard errors of a normal curve's 0"


def _read_one_variance(prefix: str, none: dict, scaled: dict) -> list[str]:
    d = none["d_k"]
    out = [
        f"{prefix}At d_k = {d}, {none['n_scores']:,} scores: the unscaled variance is {none['variance']:.4g} "
        f"(99.9% interval {none['variance_ci_low']:.4g} to {none['variance_ci_high']:.4g}; theory "
        f"{_num(none['theory_variance'])}), the scaled one {scaled['variance']:.4f} (interval "
        f"{scaled['variance_ci_low']:.4f} to {scaled['variance_ci_high']:.4f}; theory "
        f"{_num(scaled['theory_variance'])})."]
    if scaled["excess_kurtosis_se"] is not None:
        out.append(f"The excess kurtosis is {scaled['excess_kurtosis']:.3g} ± {scaled['excess_kurtosis_se']:.2g} "
                   f"(theory {_num(scaled['theory_excess_kurtosis'], '.3g')}; a normal curve has 0): {_tails(scaled)}.")
    return out


METRIC_WORDS = {"max_prob_mean": ("the largest weight", ".3f"), "entropy_ratio_mean": ("entropy / ln n", ".3f"),
                "jacobian_fro_mean": ("||J||_F", ".3g"), "grad_q_mean": ("||dL/dq||", ".3g")}


def _read_attention(result, kind: str) -> list[str]:
    """Readings of a saturation or gradient run, whichever of d_k and n it sweeps."""
    out = []
    level_name = "threshold" if kind == "saturation" else "eps"
    headline = ("max_prob_mean", "entropy_ratio_mean") if kind == "saturation" else ("jacobian_fro_mean", "grad_q_mean")
    for prefix, rows in _groups(result, "dim"):
        d_ks = sorted({r["d_k"] for r in rows})
        seq_lens = sorted({r["seq_len"] for r in rows})
        rules = [s for s in RULE_NAMES if any(r["scaling"] == s for r in rows)]
        if len(d_ks) > 1:
            for n in seq_lens:
                at_n = [r for r in rows if r["seq_len"] == n]
                out += _along(prefix + f"n = {n}, from d_k = {d_ks[0]} to {d_ks[-1]}", at_n, rules, "d_k", headline)
                if kind == "saturation":
                    out += _unscaled_saturation(at_n, _level(result, at_n[-1], level_name))
                else:
                    out += _unscaled_gradient(at_n, _level(result, at_n[-1], level_name))
            if len(seq_lens) > 1:
                at_d = [r for r in rows if r["d_k"] == d_ks[-1] and r["seq_len"] > 1]
                out += _along(prefix + f"At d_k = {d_ks[-1]}, from n = {seq_lens[0]} to {seq_lens[-1]}", at_d,
                              rules, "seq_len", headline)
        elif len(seq_lens) > 1:
            out += _along(prefix + f"d_k = {d_ks[0]}, from n = {seq_lens[0]} to {seq_lens[-1]}", rows, rules,
                          "seq_len", headline)
        else:
            parts = [f"{RULE_NAMES[r['scaling']]} " + ", ".join(
                f"{METRIC_WORDS[m][0]} {r[m]:{METRIC_WORDS[m][1]}}" for m in headline if r[m] is not None)
                for r in rows]
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
                name, spec = METRIC_WORDS[metric]
                words.append(f"{name} {trend(values[0], values[-1], spec)}")
        if words:
            parts.append(f"{RULE_NAMES[rule]}: " + " and ".join(words))
    return [f"{where}: " + "; ".join(parts) + "."] if parts else []


def _unscaled_saturation(rows: Sequence[dict], threshold: float) -> list[str]:
    none = _by(rows, "none")
    if len(none) < 2:
        return []
    a, b = none[0], none[-1]
    line = (f"Unscaled at d_k = {b['d_k']}, n = {b['seq_len']}: the entropy is {b['entropy_mean']:.3g} nats and "
            f"{_format(b['saturated_fraction'], '%')} of rows put at least {threshold:g} on one key "
            f"({_format(a['saturated_fraction'], '%')} at d_k = {a['d_k']})")
    rem = [r for r in _by(rows, "sqrt") if r["theory_entropy"] is not None]
    if rem:
        r = rem[-1]
        line += (f"; scaled, the random-energy-model entropy ln n - E[s^2]/2 (asymptotic, shown where it holds "
                 f"to {REM_ACCURACY:.0%}) is {r['theory_entropy']:.3f}, measured {r['entropy_mean']:.3f} "
                 f"± {r['entropy_mean_se']:.2g}")
    return [line + "."]


def _unscaled_gradient(rows: Sequence[dict], eps: float) -> list[str]:
    none, scaled = _by(rows, "none"), _by(rows, "sqrt")
    if len(none) < 2 or not scaled:
        return []
    a, b, sb = none[0], none[-1], scaled[-1]
    return [f"Unscaled at n = {b['seq_len']}, the share of rows with ||J||_F < {eps:g} "
            f"{trend(a['vanishing_fraction'], b['vanishing_fraction'], '%')} from d_k = {a['d_k']} to {b['d_k']}, "
            f"yet at d_k = {b['d_k']} ||dL/dq|| averages {b['grad_q_mean']:.3g} against {sb['grad_q_mean']:.3g} "
            f"scaled (uniform row's ||J||_F: {b['uniform_jacobian_fro']:.3g})."]


def read_saturation(result) -> list[str]:
    return _read_attention(result, "saturation")


def read_gradient(result) -> list[str]:
    return _read_attention(result, "gradient")


def read_toy(result) -> list[str]:
    out = []
    for rule, name in (("none", "Softmax"), ("logn", "Scalable-Softmax")):
        sel = sorted((r for r in result.rows if r["scaling"] == rule), key=lambda r: r["seq_len"])
        if len(sel) < 2:
            continue
        out.append(f"{name}: the largest weight {trend(sel[0]['max_weight'], sel[-1]['max_weight'], '.4f')} from "
                   f"n = {sel[0]['seq_len']:,} to {sel[-1]['seq_len']:,}.")
    published = [r for r in result.rows if r["published_max_weight"] is not None]
    if published:
        worst = max(abs(r["max_weight"] - r["published_max_weight"]) for r in published)
        out.append(f"Against the {len(published)} published values (4 decimals) the computed weights differ by at "
                   f"most {worst:.1g}; the closed form 1 / (1 + (n - 1) e^(-c (high - low))) agrees with the "
                   f"computation to {max(abs(r['max_weight'] - r['theory_max_weight']) for r in result.rows):.0e}.")
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
           "check": read_check, "toy": read_toy}
