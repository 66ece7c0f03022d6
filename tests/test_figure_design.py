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
from sqrtdk.experiments.train import OUTCOME_LOOK

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
FROM_SAMPLES = ("histogram_", "probe_logits")


def committed_configs() -> list:
    return [pytest.param(path, id=path.stem) for path in sorted(config.bundled_dir().glob("*.toml"))]


@pytest.mark.parametrize("path", committed_configs())
def test_every_committed_figures_series_keep_apart(path: Path, tmp_path):
    """Every figure the committed configs draw, from the committed rows as `reproduce` draws them."""
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
    for name, draw in drawn.items():
        colours = series_colours(draw())
        if len(colours) > 1:
            distance, a, b, cvd = closest(colours)
            assert distance >= LEAST, f"{path.stem}/{name}: {a} and {b} are {distance:.1f} apart under {cvd}"
