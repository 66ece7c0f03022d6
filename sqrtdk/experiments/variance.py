"""`sqrtdk variance`: moments of the scores c q.k under each scaling rule, against their closed forms.

For iid entries with mean mu and std sigma, Var(q.k) = d_k (sigma^4 + 2 sigma^2 mu^2) (core/theory.py;
Vaswani et al. 2017, sec. 3.2.1 and footnote 4, for mu = 0 and sigma = 1); dividing by sqrt(d_k) brings it
back to sigma^4 + 2 sigma^2 mu^2, independent of d_k, dividing by d_k takes it to 0, and QK-norm (cos(q, k)
times a gain) makes it independent of sigma as well. The scores are streamed by core/scores.py; this module
turns their power sums into estimates with jackknife intervals, rows, figures, a reading and a table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from sqrtdk import report, schema
from sqrtdk.core.rules import RULES, SCALINGS
from sqrtdk.experiments import Experiment
from sqrtdk.tables import Column, Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.core.scores import ScoreSample
    from sqrtdk.result import Result

Params = schema.params_class(
    __name__,
    "Params",
    "`sqrtdk variance`: the schema of its options and config keys.",
    dim=schema.dim_field(),
    samples=schema.scores_field(2**21),
    seed=schema.seed_field(),
    **schema.source_fields(),
    scaling=schema.scaling_field(
        tuple(s for s in SCALINGS if not RULES[s].needs_seq_len),
        "logn needs a sequence length: use it in saturation or gradient",
    ),
    qk_gain=schema.qk_gain_field(),
)

LEVEL = 0.999
# The kurtosis standard error needs finite moments of order 8 of the entries in theory, and in practice
# many more: with Student-t entries its 95% interval covered 86.7% at df = 10, 92.4% at df = 17 and 94.1%
# at df = 30 (1000 seeds each, d_k = 1, 2^19 scores; binomial sd 0.7-1.1 points). Below df = 30 it is left
# empty.
KURTOSIS_SE_MIN_DF = 30


# ---- the run and its rows ----


def run(task: Mapping[str, Any], histogram: bool, map_replicates: MapReplicates) -> ScoreSample:
    from sqrtdk.core.scores import sample_scores

    return sample_scores(
        task["dim"],
        task["samples"],
        seed=task["seed"],
        source=schema.source(task),
        cosine="qknorm" in task.get("scaling", ()),
        histogram=histogram,
        map_replicates=map_replicates,
    )


def rows(task: Mapping[str, Any], sample: ScoreSample) -> list[dict]:
    return variance_rows(sample, task["scaling"], schema.gain(task))


def variance_rows(
    sample: ScoreSample,
    scalings: tuple[str, ...] = ("none", "sqrt"),
    qk_gain: float | None = None,
    level: float = LEVEL,
) -> list[dict]:
    """One row per scaling rule: measured mean, variance with its interval, kurtosis, and their theory.

    Where the entries' moments do not exist (Student-t with few degrees of freedom) the estimates whose
    sampling variance is infinite are left empty: the variance interval needs a finite 4th moment of
    the entries, the kurtosis a finite 4th, and its interval (KURTOSIS_SE_MIN_DF) far more than the 8th.
    Standard errors are the jackknife of the pooled estimators over replicates (core/moments.py).
    """
    import numpy as np

    from sqrtdk.core import rules, theory
    from sqrtdk.core.moments import jackknife
    from sqrtdk.core.scores import theory_dot

    finite = sample.source.entries.finite_moments()
    rows = []
    for scaling in scalings:
        normalised = scaling in rules.NORMALISING
        c = rules.scale(sample.d_k, scaling, qk_gain=qk_gain)
        channel = sample.channels["cos" if normalised else "dot"]
        per_replicate = channel.pooled.n / len(channel.sums)

        def estimate(statistic):
            return jackknife(statistic, channel.total, channel.sums, per_replicate, channel.shift, level)

        scale, shift = c * channel.unit, c * channel.offset  # c q.k = scale u + shift
        mean_est = estimate(lambda m: m.affine(scale, shift).mean)
        var_est = estimate(lambda m: m.affine(scale, shift).variance)
        kurt_est = estimate(lambda m: m.excess_kurtosis)
        bounded = normalised or finite > 4
        if normalised:
            cos_var = theory.cosine_variance(sample.d_k, sample.source.entries)
            theory_mean = None if cos_var is None else 0.0
            theory_var = None if cos_var is None else c * c * cos_var
            theory_kurt = (
                theory.cosine_excess_kurtosis(sample.d_k, sample.source.entries)
                if sample.source.inputs == "direct"
                else None
            )
        else:
            theory_mean, theory_var = theory_dot(sample.d_k, sample.source, sample.block, c)
            if sample.source.layernorm and not theory.layernorm_theory_holds(
                sample.source.entries, sample.source.d_model
            ):
                theory_mean, theory_var = None, None  # LayerNorm's eps shrinks such tokens
            theory_kurt = (
                theory.score_excess_kurtosis(sample.d_k, sample.source.entries)
                if sample.source.inputs == "direct"
                else None
            )
        rows.append(
            {
                "d_k": sample.d_k,
                "scaling": scaling,
                "n_scores": sample.n_scores,
                "mean": mean_est.value,
                "mean_se": mean_est.se,
                "variance": var_est.value,
                "variance_se": var_est.se if bounded else None,
                "variance_ci_low": var_est.ci_low if bounded else None,
                "variance_ci_high": var_est.ci_high if bounded else None,
                "theory_mean": theory_mean,
                "theory_variance": theory_var,
                "excess_kurtosis": kurt_est.value if bounded else None,
                "excess_kurtosis_se": kurt_est.se if normalised or finite >= KURTOSIS_SE_MIN_DF else None,
                "theory_excess_kurtosis": theory_kurt,
            }
        )
    return [{k: float(v) if isinstance(v, np.floating) else v for k, v in row.items()} for row in rows]


def histogram(sample: ScoreSample) -> tuple[Sequence[int], int] | None:
    """The counts of the scores' histogram and the scores outside it, where it was drawn."""
    return None if sample.counts is None else ([int(c) for c in sample.counts], sample.outside)


def with_histogram(sample: ScoreSample, counts: Sequence[int], outside: int) -> ScoreSample:
    """The same sample whose score histogram holds `counts` (and `outside`) instead of its own."""
    import dataclasses

    import numpy as np

    dot = dataclasses.replace(sample.channels["dot"], counts=np.array(counts, dtype=np.int64), outside=outside)
    return dataclasses.replace(sample, channels={**sample.channels, "dot": dot})


# ---- figures ----

HISTOGRAMS = 16  # a histogram per task for runs of at most this many tasks; larger sweeps get the summary


def figures(result: Result) -> dict[str, Callable[[], Any]]:
    figures: dict[str, Callable[[], Any]] = {}
    for task, sample in zip(result.tasks if len(result.tasks) <= HISTOGRAMS else (), result.outputs):
        name = f"histogram_dk{sample.d_k}" + result.suffix(task, skip=("dim",))
        figures[name] = partial(histogram_figure, sample, result.label(task, skip=("dim",)))
    if len({r["d_k"] for r in result.rows}) > 1:
        figures["variance_vs_dk"] = lambda: variance_figure(result.rows, result.series_columns("dim"), result.setting())
    elif len(result.tasks) > 1:
        figures["variance_by_setting"] = lambda: variance_by_setting(
            result.rows, result.series_columns("dim"), result.setting()
        )
    return figures


def histogram_figure(sample: ScoreSample, label: str = "") -> Any:
    """Histogram of scaled and unscaled scores against the exact density and the normal curve.

    Left: both on one axis, the unscaled spread sqrt(d_k) times wider. Right: the scaled scores on a log
    density axis, where the exact density's exponential tails part from the normal curve. The exact
    density is drawn where it is implemented (independent mean-0 Gaussian entries); the normal curve has
    the theoretical mean and variance.
    """
    import numpy as np

    from sqrtdk.core import theory
    from sqrtdk.core.rules import scale
    from sqrtdk.core.scores import theory_dot
    from sqrtdk.plots import new_figure

    d_k, source = sample.d_k, sample.source
    counts, bin_edges = sample.counts, sample.edges
    if counts is None or bin_edges is None:
        raise ValueError("this sample was drawn without a histogram (figures=False): run it again to draw it")
    density = counts / (sample.n_scores * np.diff(bin_edges))  # of the unscaled scores
    exact = source.inputs == "direct" and theory.has_density(source.entries)
    fig = new_figure(11.0, 4.2)
    ax_both, ax_log = fig.subplots(1, 2)

    def overlay(ax, scaling: str, x_points: int = 800) -> None:
        c = scale(d_k, scaling)
        colour = RULES[scaling].colour
        edges = c * bin_edges
        mu, var = theory_dot(d_k, source, sample.block, c)
        sd = math.sqrt(var)
        x = np.linspace(float(edges[0]), float(edges[-1]), x_points)
        ax.stairs(density / c, edges, fill=True, alpha=0.35, color=colour, label=f"{RULES[scaling].label}: measured")
        if exact:
            ax.plot(
                x,
                theory.score_density(x, d_k, source.entries.std, c),
                color=colour,
                lw=1.6,
                label=f"exact density (variance-gamma), sd {sd:.3g}",
            )
        ax.plot(
            x,
            np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi)),
            color=colour,
            lw=1.0,
            ls="--",
            label=f"normal, mean {mu:.3g}, sd {sd:.3g}",
        )

    overlay(ax_both, "none")
    overlay(ax_both, "sqrt")
    ax_both.set_xlim(bin_edges[0], bin_edges[-1])
    where = f" ({label})" if label else ""
    ax_both.set_title(f"Scores at d_k = {d_k}{where}: {sample.n_scores:,} draws", fontsize=10)
    ax_both.set_xlabel("score")
    ax_both.set_ylabel("density")
    ax_both.legend(fontsize=7, loc="upper left")

    overlay(ax_log, "sqrt")
    c = scale(d_k, "sqrt")
    ax_log.set_yscale("log")
    ax_log.set_xlim(c * bin_edges[0], c * bin_edges[-1])
    positive = density[density > 0] / c
    ax_log.set_ylim(0.3 * positive.min() if positive.size else 1e-6, 2 * positive.max())
    kurtosis = theory.score_excess_kurtosis(d_k, source.entries) if source.inputs == "direct" else None
    told = f"excess kurtosis {kurtosis:.3g} in theory" if kurtosis is not None else "no closed-form kurtosis"
    ax_log.set_title(f"Scaled scores, log axis: the tails ({told})", fontsize=10)
    ax_log.set_xlabel("score")
    ax_log.legend(fontsize=7, loc="lower center")
    if not exact:
        fig.suptitle(
            "No closed-form density is implemented for these entries; dashed: the normal curve "
            "with the exact mean and variance",
            fontsize=8,
        )
    return fig


def variance_figure(rows: Sequence[dict], series: Sequence[str] = (), setting: str = "") -> Any:
    """Four panels against d_k (log2 axis), a line per scaling rule and per combination of the other varying
    parameters (`series`: row columns): the variance with its theory; measured / theory with 99.9%
    intervals; the mean in units of the spread, E / sd (0 for independent mean-0 entries, growing like
    sqrt(d_k) when q and k are correlated); and d_k times the excess kurtosis, a constant in theory.
    """
    import numpy as np

    from sqrtdk.core.moments import REPLICATES, t_quantile
    from sqrtdk.plots import Style, new_figure, rules_in, series_of

    t95 = t_quantile(0.975, REPLICATES - 1)  # the variance experiment's replicates
    fig = new_figure(12.0, 8.0)
    (ax, ax_ratio), (ax_mean, ax_kurt) = fig.subplots(2, 2, sharex=True)
    groups = series_of(rows, series)
    rules = rules_in(rows)
    style = Style(rules, groups)
    spots = len(rules) * len(groups)
    spread = np.linspace(0.92, 1.08, spots) if spots > 1 else [1.0]
    for g, (name, group) in enumerate(groups):
        suffix = f" ({name})" if name else ""
        for i, scaling in enumerate(rules):
            offset = spread[g * len(rules) + i]
            sel = sorted((r for r in group if r["scaling"] == scaling), key=lambda r: r["d_k"])
            if not sel:
                continue
            colour, marker = style.colour(scaling, g), style.marker(scaling, g)
            label = RULES[scaling].label + suffix
            d = np.array([r["d_k"] for r in sel], dtype=float)
            var = np.array([r["variance"] for r in sel])
            ax.plot(d, var, marker, ms=4, color=colour, label=label)
            with_theory = [r for r in sel if r["theory_variance"]]
            if with_theory:
                ax.plot(
                    [r["d_k"] for r in with_theory],
                    [r["theory_variance"] for r in with_theory],
                    color=colour,
                    lw=1.0,
                    alpha=0.7,
                    ls=style.line(scaling),
                )
            bounded = [r for r in with_theory if r["variance_ci_low"] is not None]
            if bounded:
                t = np.array([r["theory_variance"] for r in bounded])
                v = np.array([r["variance"] for r in bounded])
                err = (
                    np.array(
                        [[r["variance"] - r["variance_ci_low"], r["variance_ci_high"] - r["variance"]] for r in bounded]
                    ).T
                    / t
                )
                ax_ratio.errorbar(
                    np.array([r["d_k"] for r in bounded]) * offset,
                    v / t,
                    yerr=err,
                    fmt=marker,
                    ms=3,
                    color=colour,
                    capsize=2,
                )
            z = [
                (r["d_k"] * offset, r["mean"] / math.sqrt(r["variance"]), t95 * r["mean_se"] / math.sqrt(r["variance"]))
                for r in sel
                if r["variance"] > 0
            ]
            ax_mean.errorbar(
                [x for x, _, _ in z],
                [y for _, y, _ in z],
                yerr=[e for _, _, e in z],
                fmt=marker,
                ms=3,
                color=colour,
                capsize=2,
            )
            zt = [
                (r["d_k"], r["theory_mean"] / math.sqrt(r["theory_variance"]))
                for r in sel
                if r["theory_mean"] is not None and r["theory_variance"]
            ]
            if zt:
                ax_mean.plot(*zip(*zt), color=colour, lw=1.0, alpha=0.7)
            k = [
                (r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"], t95 * r["d_k"] * r["excess_kurtosis_se"])
                for r in sel
                if r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is not None
            ]
            if k:
                ax_kurt.errorbar(
                    [x for x, _, _ in k],
                    [y for _, y, _ in k],
                    yerr=[e for _, _, e in k],
                    fmt=marker,
                    ms=3,
                    color=colour,
                    capsize=2,
                )
            bare = [
                (r["d_k"] * offset, r["d_k"] * r["excess_kurtosis"])
                for r in sel
                if r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is None
            ]
            if bare:  # heavy tails: the estimate without an interval (it would not cover)
                ax_kurt.plot(*zip(*bare), marker, ms=3, color=colour, mfc="none")
            kt = [
                (r["d_k"], r["d_k"] * r["theory_excess_kurtosis"])
                for r in sel
                if r["theory_excess_kurtosis"] is not None
            ]
            if kt:
                ax_kurt.plot(*zip(*kt), color=colour, lw=1.0, alpha=0.7)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_ylabel("variance of the score")
    ax.set_title("Variance of the score: markers measured, lines theory", fontsize=10)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("Measured / theory, 99.9% intervals (rules that only rescale q.k coincide)", fontsize=10)
    ax_mean.axhline(0.0, color="0.4", lw=0.8)
    ax_mean.set_ylabel("mean / sd")
    growing = any(r["theory_mean"] and r["scaling"] != "qknorm" for r in rows)
    ax_mean.set_title(
        "Mean / sd grows like sqrt(d_k): the mean like d_k, the spread like sqrt(d_k)"
        if growing
        else "The mean in units of the spread, 95% error bars (lines: theory)",
        fontsize=10,
    )
    ax_kurt.axhline(0.0, color="0.4", lw=0.8)
    ax_kurt.set_ylabel("d_k x excess kurtosis")
    hollow = any(r["excess_kurtosis"] is not None and r["excess_kurtosis_se"] is None for r in rows)
    ax_kurt.set_title(
        "d_k times the excess kurtosis: constant in theory"
        + (" (95% bars; hollow: no interval)" if hollow else " (95% error bars)"),
        fontsize=10,
    )
    for a in (ax, ax_ratio, ax_mean, ax_kurt):
        a.grid(True, which="major", alpha=0.3)
    for a in (ax_mean, ax_kurt):
        a.set_xlabel("d_k")
    handles: dict[str, Any] = {}
    for handle, label in zip(*ax.get_legend_handles_labels()):
        handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=3, fontsize=7)
    if setting:
        fig.suptitle(setting, fontsize=10)
    return fig


def variance_by_setting(rows: Sequence[dict], series: Sequence[str], setting: str = "") -> Any:
    """One d_k, several settings (inits, distributions, ...): each rule's variance with its 99.9% interval
    against its theory, per setting, and measured / theory."""
    import numpy as np

    from sqrtdk.plots import new_figure, rules_in, series_of

    fig = new_figure(12.0, 4.8)
    ax, ax_ratio = fig.subplots(1, 2)
    groups = series_of(rows, series)
    rules = rules_in(rows)
    width = 0.8 / len(rules)
    for i, scaling in enumerate(rules):
        colour = RULES[scaling].colour
        for g, (_, group) in enumerate(groups):
            row = next((r for r in group if r["scaling"] == scaling), None)
            if row is None:
                continue
            x = g + (i - (len(rules) - 1) / 2) * width
            low, high = row["variance_ci_low"], row["variance_ci_high"]
            err = None if low is None else [[row["variance"] - low], [high - row["variance"]]]
            ax.errorbar(
                [x],
                [row["variance"]],
                yerr=err,
                fmt="o",
                ms=4,
                color=colour,
                capsize=2,
                label=RULES[scaling].label if g == 0 else None,
            )
            if row["theory_variance"]:
                ax.plot(
                    [x - width / 2, x + width / 2],
                    [row["theory_variance"]] * 2,
                    color="0.2",
                    lw=1.4,
                    label="theory" if i == 0 and g == 0 else None,
                )
                if err is not None:
                    t = row["theory_variance"]
                    ax_ratio.errorbar(
                        [x], [row["variance"] / t], yerr=np.array(err) / t, fmt="o", ms=4, color=colour, capsize=2
                    )
    names = [name for name, _ in groups]
    for a in (ax, ax_ratio):
        a.set_xticks(range(len(groups)), names, rotation=20, ha="right", fontsize=8)
        a.grid(True, axis="y", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("variance of the score")
    d_k = rows[0]["d_k"]
    ax.set_title(f"Score variance at d_k = {d_k} per setting (bars: theory)", fontsize=10)
    if setting:
        fig.suptitle(setting, fontsize=10)
    ax.legend(fontsize=7)
    ax_ratio.axhline(1.0, color="0.4", lw=0.8)
    ax_ratio.set_ylabel("measured / theory")
    ax_ratio.set_title("99.9% intervals from independent replicates", fontsize=10)
    return fig


# ---- the reading in the report ----


def _covered(rows: Sequence[dict]) -> tuple[int, int, list[dict]]:
    """(intervals containing the theory, intervals with a theory, the rows that miss)."""
    judged = [r for r in rows if r["theory_variance"] is not None and r["variance_ci_low"] is not None]
    missed = [r for r in judged if not r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]]
    return len(judged) - len(missed), len(judged), missed


def _coverage_sentence(rows: Sequence[dict]) -> list[str]:
    hit, judged, missed = _covered(rows)
    if not judged:
        return []
    where = (
        "; not at " + ", ".join(f"d_k = {r['d_k']} ({RULES[r['scaling']].words})" for r in missed[:6]) if missed else ""
    )
    return [
        f"The 99.9% interval (jackknife over independent replicates) contains the theory in {hit} of {judged} "
        f"rows{where}."
    ]


def reading(result: Result) -> list[str]:
    groups = report.groups(result, "dim")
    single_d = len({r["d_k"] for r in result.rows}) == 1
    if single_d and len(groups) == 1 and {r["scaling"] for r in groups[0][1]} <= {"none", "sqrt"}:
        prefix, rows = groups[0]
        return _read_one_variance(prefix, rows) + _coverage_sentence(rows)
    if single_d:
        return [_read_setting(prefix, rows) for prefix, rows in groups] + _coverage_sentence(result.rows)
    out = []
    for prefix, rows in groups:
        out += _read_variance_vs_dk(prefix, rows, detailed=len(groups) == 1)
    return out + _coverage_sentence(result.rows)


def _read_setting(prefix: str, rows: Sequence[dict]) -> str:
    """'With init = lecun: unscaled 63.76 (99.9% interval ...; theory 64); 1/sqrt(d_k) 0.9962 (...).'"""
    parts = []
    for r in sorted(rows, key=lambda r: SCALINGS.index(r["scaling"])):
        ci = (
            ""
            if r["variance_ci_low"] is None
            else f", interval {r['variance_ci_low']:.4g} to {r['variance_ci_high']:.4g}"
        )
        told = "" if r["theory_variance"] is None else f"; theory {r['theory_variance']:.4g}"
        parts.append(f"{RULES[r['scaling']].words} {r['variance']:.4g}{ci}{told}")
    return f"{prefix or ''}the score variance at d_k = {rows[0]['d_k']} is " + "; ".join(parts) + "."


def _read_variance_vs_dk(prefix: str, rows: Sequence[dict], detailed: bool) -> list[str]:
    out = []
    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if none:
        a, b = none[0], none[-1]
        out.append(
            f"{prefix}Unscaled, the variance of q.k {report.trend(a['variance'], b['variance'], '.4g')} from "
            f"d_k = {a['d_k']} to {b['d_k']} (theory {_num(a['theory_variance'])} and "
            f"{_num(b['theory_variance'])}): a factor {b['variance'] / a['variance']:.4g} for a factor "
            f"{b['d_k'] / a['d_k']:g} in d_k."
        )
        if a["theory_mean"] and b["theory_mean"]:
            sd_factor = math.sqrt(b["variance"] / a["variance"])
            out.append(
                f"Its mean {report.trend(a['mean'], b['mean'], '.4g')} (theory {a['theory_mean']:.4g} and "
                f"{b['theory_mean']:.4g}), a factor {b['mean'] / a['mean']:.4g}, while its standard deviation "
                f"grows by a factor {sd_factor:.3g}: the mean outgrows the spread, "
                f"mean / sd {report.trend(a['mean'] / math.sqrt(a['variance']), b['mean'] / math.sqrt(b['variance']), '.3g')}."
            )
    for rule in ("sqrt", "linear", "qknorm"):
        sel = report.by_rule(rows, rule)
        if not sel:
            continue
        if rule == "linear":
            line = (
                f"{RULES[rule].words}: the variance {report.trend(sel[0]['variance'], sel[-1]['variance'], '.4g')} "
                f"from d_k = {sel[0]['d_k']} to {sel[-1]['d_k']} (theory {_num(sel[0]['theory_variance'])} and "
                f"{_num(sel[-1]['theory_variance'])})"
            )
        else:
            theories = {round(r["theory_variance"], 12) for r in sel if r["theory_variance"] is not None}
            told = f" (theory {_num(sel[0]['theory_variance'])})" if len(theories) == 1 else ""
            line = (
                f"{RULES[rule].words}: the variance stays {report.between([r['variance'] for r in sel], '.4g')} over "
                f"d_k = {sel[0]['d_k']} to {sel[-1]['d_k']}{told}"
            )
        if sel[0]["theory_mean"] and rule != "qknorm":
            line += f"; the mean {report.trend(sel[0]['mean'], sel[-1]['mean'], '.4g')}"
        out.append(line + ".")
    if detailed and scaled:
        ka, kb = scaled[0], scaled[-1]
        if (
            ka["excess_kurtosis"] is not None
            and kb["excess_kurtosis_se"] is not None
            and ka["excess_kurtosis_se"] is not None
        ):
            out.append(
                f"The excess kurtosis {report.trend(ka['excess_kurtosis'], kb['excess_kurtosis'], '.3g')} "
                f"(± {ka['excess_kurtosis_se']:.2g} and ± {kb['excess_kurtosis_se']:.2g}; theory "
                f"{_num(ka['theory_excess_kurtosis'], '.3g')} and {_num(kb['theory_excess_kurtosis'], '.3g')}): "
                + _tails(ka)
                + " at d_k = "
                + str(ka["d_k"])
                + ", "
                + _tails(kb)
                + " at d_k = "
                + str(kb["d_k"])
                + "."
            )
    elif scaled:
        kurt = [r for r in scaled if r["excess_kurtosis_se"] is not None and r["theory_excess_kurtosis"] is not None]
        if kurt:
            near = [
                r
                for r in kurt
                if abs(r["excess_kurtosis"] - r["theory_excess_kurtosis"]) <= 3 * r["excess_kurtosis_se"]
            ]
            out.append(
                f"d_k times the excess kurtosis is {kurt[0]['d_k'] * kurt[0]['theory_excess_kurtosis']:.3g} in "
                f"theory at every d_k; the measurement is within 3 standard errors of it at {len(near)} of "
                f"{len(kurt)} values of d_k."
            )
        elif any(r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None for r in scaled):
            bare = [r for r in scaled if r["excess_kurtosis"] is not None and r["theory_excess_kurtosis"] is not None]
            out.append(
                f"d_k times the excess kurtosis is {bare[0]['d_k'] * bare[0]['theory_excess_kurtosis']:.3g} in "
                f"theory at every d_k and measures {report.between([r['d_k'] * r['excess_kurtosis'] for r in bare], '.3g')}; "
                "no standard error is given for such heavy tails (its interval would cover too rarely)."
            )
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


def _read_one_variance(prefix: str, rows: Sequence[dict]) -> list[str]:
    """One d_k, the unscaled and/or the scaled rule: each variance with its interval and theory."""
    none = next((r for r in rows if r["scaling"] == "none"), None)
    scaled = next((r for r in rows if r["scaling"] == "sqrt"), None)

    def told(row: dict, spec: str, interval: str) -> str:
        if row["variance_ci_low"] is None:
            where = "no interval: the entries' fourth moment is infinite"
        else:
            where = f"{interval} {row['variance_ci_low']:{spec}} to {row['variance_ci_high']:{spec}}"
        return f"{row['variance']:{spec}} ({where}; theory {_num(row['theory_variance'])})"

    first = none or scaled
    assert first is not None
    parts = []
    if none is not None:
        parts.append(f"the unscaled variance is {told(none, '.4g', '99.9% interval')}")
    if scaled is not None:
        parts.append(
            f"the scaled one {told(scaled, '.4f', 'interval')}"
            if none is not None
            else f"the scaled variance is {told(scaled, '.4f', '99.9% interval')}"
        )
    out = [f"{prefix}At d_k = {first['d_k']}, {first['n_scores']:,} scores: " + ", ".join(parts) + "."]
    if scaled is not None and scaled["excess_kurtosis_se"] is not None:
        out.append(
            f"The excess kurtosis is {scaled['excess_kurtosis']:.3g} ± {scaled['excess_kurtosis_se']:.2g} "
            f"(theory {_num(scaled['theory_excess_kurtosis'], '.3g')}; a normal curve has 0): {_tails(scaled)}."
        )
    return out


# ---- the terminal table and the cost ----


def table(result: Result) -> Table:
    """Variance and excess kurtosis beside their theory; the mean where its theory is not 0, the number
    of scores with --wide."""
    from sqrtdk.output import at_se, pm

    rows = result.rows

    def interval(r: Mapping[str, Any]) -> str:
        low, high, se = r["variance_ci_low"], r["variance_ci_high"], r["variance_se"]
        return "" if low is None else f"[{at_se(low, se)}, {at_se(high, se)}]"

    def told(value: float | None) -> str:
        return "" if value is None else f"{value:.4g}"

    def column(heading: str, cells: Sequence[str], key: bool = False, wide: bool = False, about: str | None = None):
        return Column(heading, tuple(cells), key, wide, about)

    mean_matters = any(r["theory_mean"] != 0 for r in rows)
    notes = [_headline(rows)] if len(report.groups(result, "dim")) == 1 and _headline(rows) else []
    if any(r[t] is None for r in rows for t in ("theory_variance", "theory_excess_kurtosis")):
        notes.append("An empty theory cell: no closed form for that setting (README: How the numbers are made).")
    if any(r["variance_ci_low"] is None for r in rows):
        notes.append("An empty interval: the entries' fourth moment is infinite, so the variance has no error.")
    return Table(
        "Scores c·q.k: measured ± standard error, each beside its theory",
        (
            column("d_k", [str(r["d_k"]) for r in rows], key=True),
            column("scaling", [r["scaling"] for r in rows], key=True),
            column("scores", [f"{r['n_scores']:,}" for r in rows], wide=True),
            column("mean", [pm(r, "mean") for r in rows], wide=not mean_matters),
            column("theory", [told(r["theory_mean"]) for r in rows], wide=not mean_matters, about=""),
            column("variance", [pm(r, "variance") for r in rows]),
            column(f"{LEVEL:.1%} interval", [interval(r) for r in rows]),
            column("theory", [told(r["theory_variance"]) for r in rows]),
            column("excess kurtosis", [pm(r, "excess_kurtosis") for r in rows]),
            column("theory", [told(r["theory_excess_kurtosis"]) for r in rows]),
        ),
        notes,
    )


def _headline(rows: Sequence[dict]) -> str:
    """One line under the table of the textbook run: Var(q.k) ~ d_k unscaled and ~ 1 scaled, measured."""
    from sqrtdk.output import pm

    none, scaled = report.by_rule(rows, "none"), report.by_rule(rows, "sqrt")
    if not none or not scaled or any(r["theory_variance"] is None for r in (*none, *scaled)):
        return ""
    if len(none) == 1:
        a, b = none[0], scaled[0]
        return (
            f"Var(q·k) ≈ d_k unscaled: {pm(a, 'variance')} at d_k = {a['d_k']} (theory {_num(a['theory_variance'])}); "
            f"≈ 1 with 1/√d_k: {pm(b, 'variance')} (theory {_num(b['theory_variance'])})."
        )
    low, high = min(r["variance"] for r in scaled), max(r["variance"] for r in scaled)
    return (
        f"Unscaled, Var(q·k) grows with d_k: {pm(none[0], 'variance')} at d_k = {none[0]['d_k']}, "
        f"{pm(none[-1], 'variance')} at d_k = {none[-1]['d_k']}; with 1/√d_k it stays between "
        f"{low:.4g} and {high:.4g}."
    )


def cost(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """Bytes held at once by `threads` threads and seconds on one core (sqrtdk/resources.py)."""
    from sqrtdk.core.moments import REPLICATES
    from sqrtdk.core.scores import chunk_size, geometry
    from sqrtdk.resources import DRAW_NS, FLOP_NS, SCORE_NS, TASK_SECONDS

    src = schema.source(task)
    d_k = src.d_k(task["dim"])
    layout, n, per_block = geometry(d_k, src, task["samples"])
    per_replicate = max(1, math.ceil(task["samples"] / (REPLICATES * per_block)))  # whole blocks
    blocks = min(chunk_size(d_k, layout, n, per_block), per_replicate)  # held at once by one thread
    scores = REPLICATES * per_replicate * per_block  # what is drawn: whole blocks in every replicate
    if layout == "sequence":
        held = 4 * (2 * src.d_model**2 + 3 * n * src.d_model) + 40 * per_block
        draws = (2 * src.d_model**2 + n * src.d_model) / per_block
        flops = 4 * n * src.d_model**2 / per_block + 2 * d_k
    else:  # n queries and n keys per block (all pairs, or n matched pairs, whose mixing copies them twice)
        held = blocks * (4 * 2 * n * d_k * (3 if layout == "pairs" else 1) + 40 * per_block)
        draws, flops = 2 * d_k * n / per_block, 2 * d_k
    rules = 1 + ("qknorm" in task.get("scaling", ()))
    seconds = scores * (draws * DRAW_NS + flops * FLOP_NS + rules * SCORE_NS) * 1e-9 + TASK_SECONDS
    return held * min(threads, REPLICATES), seconds


EXPERIMENT = Experiment(
    "variance",
    "Moments of q.k under each scaling rule, against their closed forms.",
    Params,
    run,
    rows,
    figures,
    reading,
    table,
    cost,
    histogram=histogram,
    with_histogram=with_histogram,
)
