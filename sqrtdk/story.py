"""The argument in one figure: four panels in a row, drawn from the committed rows of four configs.

(a) Var(q.k) against d_k, unscaled and scaled (variance_vs_dk); (b) the softmax's entropy / ln n at n = 128
against d_k, with the d_k beyond which unscaled rows freeze (saturation_vs_dk); (c) the share of rows that
pass no gradient and the Jacobian's mean norm at n = 128 (gradient_vs_dk); (d) the held-out loss that
training reaches against the learning rate at d_k = 64 (train_copy). Measured points carry their rows'
intervals, exact theory is a thin line. The figure samples nothing: `reproduce` draws it again from the
rows in its output folder, into <out>/story/, whenever they change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SOURCES = {
    "variance": "variance_vs_dk",
    "saturation": "saturation_vs_dk",
    "gradient": "gradient_vs_dk",
    "training": "train_copy",
}
FOLDER = "story"
N = 128  # the sequence length of panels (b) and (c)
TRAIN_D_K = 64  # the head dimension of panel (d)
RULES_SHOWN = ("none", "sqrt")
ALT = "The argument in one figure"
CAPTION = (
    "(a) Var(q.k) against d_k, unscaled and divided by sqrt(d_k); (b) the entropy of softmax rows over "
    f"n = {N} keys, as a share of its largest value ln n: unscaled, rows freeze onto one key once the logits' "
    "spread sqrt(d_k) passes the critical spread s_c of the random-energy model; (c) the share of those rows "
    "whose softmax Jacobian has a Frobenius norm below 0.001, that is, that pass essentially no gradient; "
    f"(d) the held-out loss two attention layers reach on the copy task at d_k = {TRAIN_D_K} after 200 steps, "
    "against the learning rate (each seed a dot, their mean a marker; at 0.3 both collapse to the uniform "
    "output). Markers are measured, with 95% intervals as bars (most are smaller than the markers); lines "
    "are exact theory. Drawn from the rows of "
    "variance_vs_dk, saturation_vs_dk, gradient_vs_dk and train_copy."
)


def committed_rows(out: Path) -> dict[str, list[dict]] | None:
    """The rows of the four configs the figure cites, as `reproduce` wrote them into `out`; None when one
    of them is not there (a results folder made from other configs)."""
    rows = {}
    for part, name in SOURCES.items():
        path = out / name / "rows.json"
        if not path.is_file():
            return None
        rows[part] = json.loads(path.read_text(encoding="utf-8"))
    return rows


def _pick(rows: list[dict], **match: Any) -> list[dict]:
    return sorted((r for r in rows if all(r.get(k) == v for k, v in match.items())), key=lambda r: r["d_k"])


def freezing_d_k(rows: Mapping[str, list[dict]]) -> float:
    """The d_k beyond which unscaled rows of n = 128 unit-variance logits... freeze: where the logits'
    spread sqrt(d_k) passes the critical spread s_c of the random-energy model, d_k = s_c^2."""
    return float(_pick(rows["saturation"], seq_len=N, scaling="none")[0]["critical_logit_std"]) ** 2


def threshold(out: Path) -> float:
    """The eps under which gradient_vs_dk counts a row's Jacobian as vanishing, from its folder's config."""
    import tomllib

    return float(tomllib.loads((out / SOURCES["gradient"] / "config.toml").read_text(encoding="utf-8"))["eps"])


def figure(rows: Mapping[str, list[dict]], eps: float) -> Any:
    """The four panels, each titled with its claim, one legend of the rules below them; `eps` the
    threshold of panel (c)'s share."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator

    from sqrtdk import plots
    from sqrtdk.core.rules import RULES
    from sqrtdk.experiments.variance.figures import interval as variance_interval

    fig = plots.new_figure(columns=4, rows=1, aspect=1.35)
    axes = fig.subplots(1, 4)

    def along_d_k(ax: Any, part: str, column: str, theory: str | None = None, **match: Any) -> None:
        """Each rule's `column` against d_k, markers with their interval at the figures' level (the rows'
        own for the shares, the variance's at plots.LEVEL), and its `theory` as a line where the rows give
        one."""
        for rule in RULES_SHOWN:
            style, at = RULES[rule], _pick(rows[part], scaling=rule, **match)
            x, y = [r["d_k"] for r in at], [r[column] for r in at]
            bounds = [
                variance_interval(r) if column == "variance" else (r[column + "_ci_low"], r[column + "_ci_high"])
                for r in at
            ]
            err = [
                [v - b[0] if b else 0.0 for v, b in zip(y, bounds)],
                [b[1] - v if b else 0.0 for v, b in zip(y, bounds)],
            ]
            ax.errorbar(x, y, yerr=err, fmt=style.marker, color=style.colour, linestyle="none", zorder=3)
            pairs = [(d, r[theory]) for d, r in zip(x, at) if theory and r[theory] is not None]
            if pairs:
                ax.plot(*zip(*pairs), color=style.colour, linestyle=style.line, linewidth=0.9, zorder=2)
        ax.set_xscale("log", base=2)
        plots.log_axis(ax, "x", base=2)
        ax.set_xlabel(r"$d_k$")

    ax = axes[0]  # (a) the variance
    along_d_k(ax, "variance", "variance", "theory_variance")
    ax.set_yscale("log", base=2)
    plots.log_axis(ax, "y", base=2)
    ax.xaxis.set_major_locator(FixedLocator([2.0**k for k in range(0, 13, 4)]))  # a narrow panel: every 4th
    ax.set_ylabel(r"Var$(c\,q\cdot k)$")
    ax.set_title("(a) Var grows as $d_k$", loc="left")

    ax = axes[1]  # (b) the entropy
    along_d_k(ax, "saturation", "entropy_ratio_mean", "theory_entropy_ratio", seq_len=N)
    frozen = freezing_d_k(rows)
    ax.axvline(frozen, color="0.35", linestyle=":", linewidth=0.9)
    ax.text(
        frozen * 1.2,
        0.45,
        f"freezes beyond\n$d_k = s_c^2 \\approx {frozen:.0f}$",
        fontsize=plots.look().font * 0.9,
        va="bottom",
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"entropy / ln $n$, $n$ = {N}")
    ax.set_title("(b) rows freeze", loc="left")

    ax = axes[2]  # (c) the gradient
    along_d_k(ax, "gradient", "vanishing_fraction", seq_len=N)
    ax.set_ylim(-0.03, 1.0)
    ax.set_ylabel(f"share, $\\|J\\|_F < {eps:g}$")
    ax.set_title("(c) half pass none", loc="left")

    ax = axes[3]  # (d) training: each seed a dot, their mean a marker
    start, lowest, rates = [], [], []
    for rule in RULES_SHOWN:
        at = sorted(
            (
                r
                for r in rows["training"]
                if r["d_k"] == TRAIN_D_K and r["scaling"] == rule and r["final_loss"] is not None
            ),
            key=lambda r: r["lr"],
        )
        style = RULES[rule]
        shift = 0.75 if rule == RULES_SHOWN[0] else 1 / 0.75  # side by side at each rate: neither hides the other
        ax.plot(
            [r["lr"] * shift for r in at],
            [r["final_loss"] for r in at],
            marker=style.marker,
            color=style.colour,
            linestyle="none",
            zorder=3,
        )
        for r in at:
            seeds = [v for v in r["seed_loss"] if v is not None]
            lowest += seeds
            ax.plot(
                [r["lr"] * shift] * len(seeds),
                seeds,
                linestyle="none",
                marker=".",
                color=style.colour,
                alpha=0.6,
                zorder=2,
            )
        start += [r["loss_at_init"] for r in at]
        rates += [r["lr"] for r in at]
    ax.axhline(max(start), color="0.35", linestyle=":", linewidth=0.9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(min(lowest) / 2, max(start) * 8)
    ax.set_xlim(min(rates) / 2, max(rates) * 2)  # the outer rates' markers whole, off the frame
    ax.text(0.02, 0.97, "at the start", transform=ax.transAxes, va="top", fontsize=plots.look().font * 0.9)
    ax.text(0.98, 0.03, f"$d_k$ = {TRAIN_D_K}", transform=ax.transAxes, ha="right", fontsize=plots.look().font * 0.9)
    plots.log_axis(ax, "x")
    plots.log_axis(ax, "y")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("held-out loss")
    ax.set_title("(d) scaled learns", loc="left")

    handles = [
        Line2D(
            [],
            [],
            color=RULES[rule].colour,
            marker=RULES[rule].marker,
            linestyle=RULES[rule].line,
            label=plots.RULE_NAMES[rule],
        )
        for rule in RULES_SHOWN
    ]
    handles += [
        plots.theory_key(),
        Line2D([], [], color="0.3", marker=".", linestyle="none", label="(d) one seed"),
    ]
    plots.legend_below(fig, handles=handles)
    return fig


def write(out: Path) -> list[str]:
    """Draw the figure from the rows in `out` into out/story/ (paper PNG and PDF, slide PNG), replacing a
    file only where its bytes change; nothing when the rows are not all there. Returns the paths written."""
    import tempfile

    from sqrtdk import output, plots

    rows = committed_rows(out)
    if rows is None:
        return []
    folder = out / FOLDER
    folder.mkdir(exist_ok=True)
    written = []
    before = plots.look()
    try:
        for style, names in (("paper", ("story.png", "story.pdf")), ("slide", ("story_slide.png",))):
            plots.use(plots.Look(style))
            fig = figure(rows, threshold(out))
            for name in names:
                with tempfile.TemporaryDirectory() as scratch:
                    fresh = Path(scratch) / name
                    plots.save(fig, fresh)
                    data = fresh.read_bytes()
                target = folder / name
                if not target.is_file() or target.read_bytes() != data:
                    written.append(output.write_bytes_atomic(target, data))
    finally:
        plots.use(before)
    return written


def claims_hold(rows: Mapping[str, list[dict]]) -> dict[str, bool]:
    """Whether the rows bear out each panel's title (tests/test_story.py asserts them on the committed rows)."""
    variance = {(r["scaling"], r["d_k"]): r for r in rows["variance"]}
    largest = max(d for _, d in variance)
    entropy = {
        r["scaling"]: r for r in _pick(rows["saturation"], seq_len=N, d_k=max(r["d_k"] for r in rows["saturation"]))
    }
    gradient = _pick(rows["gradient"], seq_len=N)
    training = [r for r in rows["training"] if r["d_k"] == TRAIN_D_K and r["final_loss"] is not None]
    best = {rule: min(r["final_loss"] for r in training if r["scaling"] == rule) for rule in RULES_SHOWN}
    return {
        "(a)": all(
            r["variance_ci_low"] <= r["theory_variance"] <= r["variance_ci_high"]
            for r in rows["variance"]
            if r["scaling"] in RULES_SHOWN and r["variance_ci_low"] is not None
        )
        and math.isclose(variance[("sqrt", largest)]["theory_variance"], 1.0),
        "(b)": entropy["none"]["entropy_ratio_mean"] < 0.1 < 0.8 < entropy["sqrt"]["entropy_ratio_mean"],
        "(c)": [r["vanishing_fraction"] for r in gradient if r["scaling"] == "none"]
        == sorted(r["vanishing_fraction"] for r in gradient if r["scaling"] == "none")
        and max(r["vanishing_fraction"] for r in gradient if r["scaling"] == "none") > 0.5
        and all(r["vanishing_fraction"] == 0 for r in gradient if r["scaling"] == "sqrt"),
        "(d)": best["sqrt"] < 0.1 < 1.0 < best["none"]
        and all("trained" not in r["seed_outcome"] for r in training if r["scaling"] == "none")
        and any(set(r["seed_outcome"]) == {"trained"} for r in training if r["scaling"] == "sqrt"),
    }
