"""Figures every reader can read: the series of a figure keep their colours apart under simulated
deuteranopia and protanopia (Machado et al. 2009, severity 100, as colorspacious implements it), measured
as distances in CAM02-UCS, where about 10 units is the least a reader can rely on and 12 is asked for."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from colorspacious import cspace_convert, deltaE
from matplotlib.colors import to_rgb, to_rgba

from sqrtdk import api, config, plots, reproduce
from sqrtdk.core.rules import RULES
from sqrtdk.experiments.train.figures import OUTCOME_LOOK

LEAST = 12.0  # CAM02-UCS units
RESULTS = Path(__file__).parent.parent / "results"
DEFICIENCIES = ("deuteranomaly", "protanomaly")


def seen(colour, deficiency: str) -> np.ndarray:
    """`colour` as a reader with the full deficiency sees it (sRGB in [0, 1])."""
    space = {"name": "sRGB1+CVD", "cvd_type": deficiency, "severity": 100}
    return np.clip(cspace_convert(np.array(to_rgb(colour)), space, "sRGB1"), 0, 1)


def closest(colours) -> tuple[float, str, str, str]:
    """The smallest CAM02-UCS distance between two of `colours` under either deficiency, and which."""
    return min(
        (float(deltaE(seen(a, cvd), seen(b, cvd), input_space="sRGB1", uniform_space="CAM02-UCS")), a, b, cvd)
        for a, b in itertools.combinations(sorted(set(colours)), 2)
        for cvd in DEFICIENCIES
    )


def test_the_palette_keeps_apart_for_colour_blind_readers():
    palette = {*plots.SERIES_COLOURS, *(r.colour for r in RULES.values()), *(c for c, _ in OUTCOME_LOOK.values())}
    assert closest(palette)[0] >= LEAST, closest(palette)
    # the oracle: matplotlib's default cycle, which this palette replaced, is far below it
    assert closest(["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"])[0] < 5


def chromatic(colour) -> bool:
    """A colour that is a hue, not a grey or black (the theory lines and references are greys)."""
    r, g, b, a = to_rgba(colour)
    return a > 0 and max(r, g, b) - min(r, g, b) > 0.1


def series_colours(fig) -> set[str]:
    """The colours of the lines and markers drawn in `fig` (hex), without the greys."""
    from matplotlib.colors import to_hex

    found = set()
    for ax in fig.axes:
        for line in ax.get_lines():
            shown = [line.get_color()] if line.get_linestyle() not in ("None", "none", "") else []
            if line.get_marker() not in ("None", "none", "", None):  # the marker's own colours, as drawn
                shown += [line.get_markerfacecolor(), line.get_markeredgecolor()]
            found |= {to_hex(c) for c in shown if not (isinstance(c, str) and c == "none") and chromatic(c)}
        for collection in ax.collections:
            for colour in (*collection.get_facecolors(), *collection.get_edgecolors()):
                if chromatic(colour) and len(ax.images) == 0:  # a colour map's patches are not series
                    found.add(to_hex(colour))
    return found


# The figures drawn from a config's sample itself (histograms, the probe's logits) come from a small run of
# it; one figure of each such family is checked, since its colours do not depend on the setting it shows.
FROM_SAMPLES = ("histogram_", "histograms", "probe_logits")


def committed_configs() -> list:
    return [pytest.param(path, id=path.stem) for path in sorted(config.bundled_dir().glob("*.toml"))]


def committed_figures(path: Path, tmp_path: Path) -> dict:
    """Every figure the config at `path` draws, from the committed rows as `reproduce` draws them; of the
    figures drawn from a sample itself, one of each family, from a small run."""
    loaded = config.load(path, text=False)
    figures = reproduce.committed_result(loaded, RESULTS / path.stem).figures()
    drawn = {name: draw for name, draw in figures.items() if not name.startswith(FROM_SAMPLES)}
    if len(drawn) < len(figures):
        if loaded.experiment == "probe":  # a tiny model: MiniLM is an optional download
            from test_probe import tiny_checkpoint

            text = tmp_path / "t.txt"
            text.write_text(("the cat sat on the mat , and the dog ran far . " * 40 + "\n\n") * 3)
            model = str(tiny_checkpoint(tmp_path / "m"))
            sampled = api.run("probe", model=model, text=str(text), seq_len=16, sequences=4).figures()
        else:
            sampled = api.run_config(path, samples=4096).figures()
        for prefix in FROM_SAMPLES:
            drawn.update(itertools.islice(((n, d) for n, d in sampled.items() if n.startswith(prefix)), 1))
    assert drawn
    return drawn


@pytest.mark.parametrize("path", committed_configs())
def test_every_committed_figures_series_keep_apart(path: Path, tmp_path):
    """Every figure the committed configs draw, from the committed rows as `reproduce` draws them."""
    for name, draw in committed_figures(path, tmp_path).items():
        colours = series_colours(draw())
        if len(colours) > 1:
            distance, a, b, cvd = closest(colours)
            assert distance >= LEAST, f"{path.stem}/{name}: {a} and {b} are {distance:.1f} apart under {cvd}"


def drawn_texts(fig) -> list:
    """(text, its extent on the canvas) for every piece of text the figure draws: tick labels only of
    the ticks inside their axis's view (matplotlib keeps the others without drawing them)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()
    for ax in fig.axes:
        for along, axis in enumerate((ax.xaxis, ax.yaxis)):
            scale = axis.get_transform()  # compared on the axis's own scale (log10 of a log axis)
            low, high = sorted(scale.transform(axis.get_view_interval()))
            slack = (high - low) * 1e-9
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                for label in (tick.label1, tick.label2):  # where the label stands, in data coordinates
                    at = scale.transform([label.get_position()[along]])[0]
                    if not low - slack <= at <= high + slack:
                        hidden.add(label)
    found = []
    for text in fig.findobj(Text):
        if text in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        extent = text.get_window_extent(renderer)
        if extent.width > 0 and extent.height > 0:
            found.append((text, extent))
    return found


def layout_problems(fig) -> list[str]:
    """Text outside the canvas, text turned other than by a right angle (its box would not be its
    extent), and two pieces of text that overlap by more than a pixel each way."""
    texts = drawn_texts(fig)
    canvas = fig.bbox
    problems = []
    for text, box in texts:
        name = repr(text.get_text()[:40])
        if box.x0 < canvas.x0 - 1 or box.y0 < canvas.y0 - 1 or box.x1 > canvas.x1 + 1 or box.y1 > canvas.y1 + 1:
            problems.append(f"{name} leaves the canvas")
        if text.get_rotation() % 90:
            problems.append(f"{name} is turned by {text.get_rotation():g} degrees")
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        wide = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        high = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if wide > 1 and high > 1:
            problems.append(f"{a.get_text()[:30]!r} overlaps {b.get_text()[:30]!r}")
    return problems


def test_the_layout_check_finds_text_off_the_canvas_and_overlapping():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_title("a title")
    assert layout_problems(fig) == []
    fig.set_layout_engine("none")  # the panel stays where it is while text is added
    ax.text(0.5, 0.5, "here", transform=ax.transAxes)
    ax.text(0.5, 0.5, "there", transform=ax.transAxes)
    ax.text(1.2, 0.5, "far out to the right", transform=ax.transAxes)
    ax.set_xticks([0.5], ["turned"], rotation=30)
    problems = layout_problems(fig)
    plt.close(fig)
    assert "'here' overlaps 'there'" in problems and "'far out to the right' leaves the canvas" in problems
    assert "'turned' is turned by 30 degrees" in problems


@pytest.mark.parametrize("path", committed_configs())
def test_every_committed_figures_text_fits_and_keeps_apart(path: Path, tmp_path):
    """As saved: plots.save sets log ticks as plain text (2⁸, not mathtext) before the layout."""
    from sqrtdk import plots

    for name, draw in committed_figures(path, tmp_path).items():
        fig = draw()
        plots.plain_powers(fig)
        assert layout_problems(fig) == [], f"{path.stem}/{name}"


@pytest.mark.parametrize("style", ["paper", "slide"])
def test_the_story_figures_text_fits_and_keeps_apart(style):
    from sqrtdk import plots, story

    before = plots.look()
    try:
        plots.use(plots.Look(style))
        fig = story.figure(story.committed_rows(RESULTS), story.threshold(RESULTS))
        plots.plain_powers(fig)
        assert layout_problems(fig) == []
    finally:
        plots.use(before)


def test_every_error_bar_is_at_one_level():
    """plots.LEVEL is the level of every bar: the shares' exact intervals that saturation, gradient and
    precision draw from their rows are at it; a mean's bar is Student's t at it (scipy's quantile, not
    sqrtdk's); a variance's is the row's reciprocal-scale interval taken at it; none where there is no se."""
    from scipy import stats

    from sqrtdk.experiments._attention import measure as attention
    from sqrtdk.experiments.precision import measure as precision
    from sqrtdk.experiments.variance.figures import interval

    assert plots.LEVEL == 0.95 and attention.LEVEL == plots.LEVEL and precision.LEVEL == plots.LEVEL
    assert plots.t_half(0.1, 2) == pytest.approx(stats.t.ppf(0.975, 2) * 0.1, rel=1e-9)
    assert plots.t_half(None, 7) == 0.0 and plots.t_half(0.1, 0) == 0.0
    half = stats.t.ppf(0.975, 63) * 0.1 / 2.0  # 63: the variance's 64 replicates
    row = {"variance": 2.0, "variance_se": 0.1, "variance_ci_low": 1.0, "variance_ci_high": 3.0}
    assert interval(row) == pytest.approx((2.0 / (1 + half), 2.0 / (1 - half)), rel=1e-9)
    assert interval({**row, "variance_ci_low": None}) is None  # no honest interval in the row: no bar
    assert interval({**row, "variance_se": 1.5}) is None  # it would reach 0
