"""What every figure shares: the house style, a canvas that is the same from run to run, how lines are
told apart, and saving without dates or other run-dependent metadata. Each experiment draws its own
figures (sqrtdk/experiments/) with these.

Two styles, each drawn at the width it is meant to be shown at, so that a point on the canvas is a point
on the page: `paper` with 9 pt text, a figure of several panels at 7.0 in (the text width of a
two-column paper) and a single panel at 3.4 in (one of its columns), and `slide` at 11 in (a 16:9 slide
is 13.3 in wide) with 15 pt text. No text is smaller than the style's size; maths is set as maths (matplotlib mathtext).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqrtdk.core.rules import RULES

# Okabe-Ito's colours (Okabe and Ito 2008), which stay at least 14 CAM02-UCS units apart under simulated
# deuteranopia and protanopia (tests/test_figure_design.py); yellow is left out, too light on white. Every
# series is also told apart by marker or line style, so that a figure reads in greyscale too.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")
SEQ_MARKERS = ("o", "s", "^", "D", "v", "P")
FORMATS = ("png", "svg", "pdf")


@dataclass(frozen=True)
class Look:
    """How figures are drawn and saved: a style (paper or slide) and the file formats."""

    style: str = "paper"
    formats: tuple[str, ...] = ("png", "svg")

    def width(self, columns: int = 2) -> float:  # inches, for a figure `columns` panels wide
        return 3.4 if self.style == "paper" and columns == 1 else STYLES[self.style][0]

    @property
    def font(self) -> float:  # points
        return STYLES[self.style][1]

    @property
    def columns(self) -> int:  # panels side by side in a grid of many
        return STYLES[self.style][2]


# The level of every figure's error bars: 95% intervals, Student's t on the replicates' (or seeds') degrees
# of freedom for means, exact for shares of rows, symmetric in 1 / variance for a variance; no bar where a
# row has no honest interval. The report states it once, above the figures.
LEVEL = 0.95


def t_half(se: float | None, df: int) -> float:
    """Half the LEVEL interval of a mean with standard error `se` on `df` degrees of freedom (0 where
    there is no standard error)."""
    from sqrtdk.core.moments import t_quantile

    return 0.0 if se is None or df < 1 else t_quantile(0.5 + LEVEL / 2, df) * se


def headline(fig: Any, claim: str) -> None:
    """Head a figure with the claim of the config that drew it, one line; the figure's own title, which
    names the setting it shows, goes under it. A one-column figure keeps its panel's own claim: there the
    config's would wrap."""
    if fig.get_figwidth() < _look.width():
        return
    own = fig.get_suptitle()
    fig.suptitle(wrap(as_maths(claim), fig.get_figwidth() * 0.95) + (f"\n{own}" if own else ""))


def as_maths(text: str) -> str:
    """A config's plain-text notation as the figures set it: 1/sqrt(d_k), sqrt(d_k), 1/d_k, q.k and d_k in
    maths."""
    import re

    for plain, maths in (
        (r"1/sqrt\(d_k\)", r"$1/\sqrt{d_k}$"),
        (r"(?<!\$1/)sqrt\(d_k\)", r"$\sqrt{d_k}$"),
        (r"1/d_k", r"$1/d_k$"),
        (r"q\.k", r"$q\cdot k$"),
        (r"(?<![{$/])d_k", r"$d_k$"),
    ):
        text = re.sub(plain, maths.replace("\\", "\\\\"), text)  # backslashes taken literally
    return text


def theory_key(words: str = "exact theory") -> Any:
    """The legend entry that says what the thin lines are: text without a swatch, since each theory line
    takes its series' colour and line style (a grey swatch would match none of them)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], linestyle="none", label=f"thin lines: {words}, in each series' colour")


STYLES = {"paper": (7.0, 9.0, 2), "slide": (11.0, 15.0, 3)}  # width (in), text (pt), grid columns
_look = Look()


def use(look: Look) -> None:
    """Draw the next figures in `look` (the writer sets it in each process that draws)."""
    global _look
    _look = look


def look() -> Look:
    return _look


def grid(panels: int) -> tuple[int, int]:
    """(rows, columns) of a grid of `panels` panels in the current style."""
    columns = 2 if panels == 4 else min(panels, _look.columns)
    return math.ceil(panels / columns), columns


def settle_config_dir() -> str | None:
    """Give matplotlib a writable folder before any process of this run imports it.

    Where its folder (MPLCONFIGDIR, else on Linux its XDG config and cache folders) cannot be made
    writable, matplotlib falls back to a temporary folder, with a warning on stderr, in every process that
    imports it. This makes that fallback once, up front and silently: a temporary folder named in
    MPLCONFIGDIR for this process and the workers it starts (they share one font cache), removed at exit.
    Returns the folder that was not writable, for the caller to mention, or None. Elsewhere (macOS,
    Windows) without MPLCONFIGDIR, matplotlib's own choice is left to it.
    """
    import atexit
    import os
    import shutil
    import sys
    import tempfile

    given = os.environ.get("MPLCONFIGDIR")
    if given:
        folders = [Path(given)]
    elif sys.platform.startswith(("linux", "freebsd")):
        try:
            home = Path.home()
        except RuntimeError:  # no home folder: matplotlib falls back too
            home = Path("~")
        folders = [
            Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config", "matplotlib"),
            Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache", "matplotlib"),
        ]
    else:
        return None
    for folder in folders:
        folder = folder.resolve()
        try:
            folder.mkdir(parents=True, exist_ok=True)  # as matplotlib does
        except OSError:
            pass
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            temporary = tempfile.mkdtemp(prefix="matplotlib-")
            os.environ["MPLCONFIGDIR"] = temporary
            atexit.register(shutil.rmtree, temporary, ignore_errors=True)
            return str(folder)
    return None


def new_figure(columns: int = 1, rows: int = 1, aspect: float = 0.72) -> Any:
    """An empty figure (no pyplot, no GUI) of `rows` x `columns` panels, each `aspect` as high as it is
    wide, at the style's width (legend_below adds the legend's height); SVG element ids are stable from run
    to run.

    Figures are only ever saved to files, so the user's MPLBACKEND (a notebook's, a GUI's, or a typo that
    matplotlib would refuse at import) does not apply: sqrtdk draws with Agg."""
    import os

    os.environ["MPLBACKEND"] = "agg"
    import matplotlib

    font = _look.font
    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "sqrtdk",
            "font.size": font,
            "axes.titlesize": font,
            "axes.labelsize": font,
            "xtick.labelsize": font,
            "ytick.labelsize": font,
            "legend.fontsize": font,
            "figure.titlesize": font + 1,
            "legend.title_fontsize": font,
            "lines.linewidth": 1.3 * font / 9,
            "lines.markersize": 4.0 * font / 9,
            "errorbar.capsize": 2.0 * font / 9,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "mathtext.fontset": "dejavusans",
            "svg.fonttype": "none",  # SVG text stays text: selectable and editable
            "pdf.fonttype": 42,  # TrueType in PDFs (submission systems refuse Type 3 fonts)
        }
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = _look.width(columns)
    height = rows * (width / columns) * aspect
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # a renderer to measure text with
    return fig


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_label(x: float, base: float) -> str:
    """A log axis's tick label in plain text: 10³, 2⁻⁴, 5 times 10² (as matplotlib's mathtext would set it,
    without a maths parse per label)."""
    if not (x > 0 and math.isfinite(x)):
        return ""
    k = math.floor(math.log(x, base) + 1e-9)
    mantissa = x / base**k
    if abs(mantissa - round(mantissa)) > 1e-6 * mantissa:
        return f"{x:g}"
    power = f"{base:g}" + str(k).translate(_SUPERSCRIPT)
    return power if round(mantissa) == 1 else f"{round(mantissa)}\u00d7{power}"


def plain_powers(fig: Any) -> None:
    """The tick labels of every log axis of `fig` in plain text: the ticks matplotlib's formatter labels,
    each as `power_label` writes it. The formatter still decides which ticks get a label: it is told the
    ticks (set_locs) as it would be, which is where it chooses the minor ticks to label for the axis's
    range (all of them on a narrow axis, none over several decades)."""
    from matplotlib.ticker import Formatter, LogFormatter

    class Plain(Formatter):
        def __init__(self, given: Any, base: float):
            self.given, self.base = given, base

        def set_locs(self, locs: Any) -> None:
            self.given.set_locs(locs)
            super().set_locs(locs)

        def __call__(self, x: float, pos: int | None = None) -> str:
            return power_label(x, self.base) if self.given(x, pos) else ""

    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            base = axis.get_transform().base
            for get, put in (
                (axis.get_major_formatter, axis.set_major_formatter),
                (axis.get_minor_formatter, axis.set_minor_formatter),
            ):
                given = get()
                if isinstance(given, LogFormatter):
                    put(Plain(given, base))


def save(fig: Any, path: Path) -> None:
    """Save to `path` (.png, .svg or .pdf) with no software, date or creator metadata. The layout is
    computed by the first save and kept for the others (constrained layout is most of a save's time)."""
    plain_powers(fig)
    if path.suffix == ".png":
        fig.savefig(path, dpi=200 if _look.style == "paper" else 150, metadata={"Software": None})
    elif path.suffix == ".pdf":
        fig.savefig(path, metadata={"Creator": None, "Producer": None, "CreationDate": None})
    else:
        fig.savefig(path, metadata={"Date": None, "Creator": None})
    fig.set_layout_engine("none")  # the positions the layout found stay as they are


def legend_below(fig: Any, axes: Sequence[Any] = (), handles: Sequence[Any] = (), spare: Any = None) -> None:
    """One legend for the panels (the labels of `axes`, each once, or the given `handles`): in the
    `spare` panel of a grid when there is one and it fits, else under the panels in as many columns as
    fit the width, the figure growing by the legend's height so that the panels keep theirs."""
    found: dict[str, Any] = {h.get_label(): h for h in handles}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                found.setdefault(label, handle)
    if not found:
        return

    from matplotlib.font_manager import FontProperties

    renderer, font = fig.canvas.get_renderer(), FontProperties(size=_look.font)

    def points(label: str) -> float:  # the label's width as set, in points
        return (
            max(renderer.get_text_width_height_descent(line, font, ismath="$" in line)[0] for line in label.split("\n"))
            * 72
            / fig.dpi
        )

    entry = max(points(label) for label in found) + 3.4 * _look.font  # and its handle
    lines_in = sum(label.count("\n") + 1 for label in found)
    if spare is not None:
        rows, columns = spare.get_subplotspec().get_gridspec().get_geometry()
        slot_width, slot_height = fig.get_figwidth() * 72 / columns, fig.get_figheight() * 72 / rows
        if entry <= slot_width and lines_in * 1.3 * _look.font <= slot_height:
            spare.legend(list(found.values()), list(found), loc="center", frameon=False)
            return
    columns = max(1, min(len(found), int(fig.get_figwidth() * 72 * 0.97 // entry)))
    fig.legend(list(found.values()), list(found), loc="outside lower center", ncols=columns)
    labels = list(found)
    lines = sum(max(label.count("\n") + 1 for label in labels[i : i + columns]) for i in range(0, len(labels), columns))
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + lines * _look.font * 1.45 / 72 + 0.12)


def coinciding(series: Sequence[tuple[tuple[str, str], dict]], log: bool = False, tolerance: float = 0.012) -> str:
    """Which of `series` ((rule, setting), {x: y}) a panel draws on top of each other, within `tolerance`
    of the panel's span at every x: 'on top of each other: the 4 settings, for each rule'."""

    def f(y: float) -> float:
        return (math.log10(y) if y > 0 else -99.0) if log else y

    values = [f(y) for _, points in series for y in points.values()]
    if len(series) < 2 or not values:
        return ""
    span = (max(values) - min(values)) or 1.0
    clusters: list[list[int]] = []
    for i, (_, points) in enumerate(series):
        for cluster in clusters:
            other = series[cluster[0]][1]
            if set(points) == set(other) and all(abs(f(points[x]) - f(other[x])) <= tolerance * span for x in points):
                cluster.append(i)
                break
        else:
            clusters.append([i])
    together: list[list[tuple[str, str]]] = [[series[i][0] for i in c] for c in clusters if len(c) > 1]
    if not together:
        return ""
    settings = {name[1] for name, _ in series}
    named: list[str] = []
    for members in together:
        rules, where = [r for r, _ in members], [w for _, w in members]
        if len(set(rules)) == 1 and len(settings) > 1 and len(members) == len(settings):
            named.append(f"{rules[0]} at all {len(settings)} settings")
        elif len(set(where)) == 1:
            named.append(" = ".join(rules) + (f" ({where[0]})" if where[0] else ""))
        else:
            named.append(" = ".join(f"{r} ({w})" if w else r for r, w in members))
    text = "; ".join(named)
    if len(together) > 2 or len(text) > 70:
        hidden = sum(len(members) - 1 for members in together)
        return f"({hidden} of the {len(series)} series lie on top of others)"
    return "(on top of each other: " + text + ")"


def log_axis(ax: Any, axis: str = "y", base: int = 10) -> None:
    """A log axis whose labelled ticks read at a glance: the powers of ten (and 2 and 5 times them on a
    narrow axis; minor ticks unlabelled), or for base 2 powers of two in steps that include 2^0. Call it
    after the data are drawn."""
    from matplotlib.ticker import FixedLocator, LogFormatterSciNotation, LogLocator, NullFormatter

    target = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log", base=base)
    if base == 10:
        low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
        narrow = low > 0 and high / low < 30  # within a decade or so: label 1, 2 and 5 times its powers
        target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        target.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
        target.set_minor_formatter(NullFormatter())
        return
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    lo, hi = math.floor(math.log2(low)), math.ceil(math.log2(high))
    step = max(1, math.ceil((hi - lo) / 7))
    target.set_major_locator(FixedLocator([2.0**k for k in range(lo - lo % step, hi + 1, step)]))
    target.set_minor_formatter(NullFormatter())


def wrap(text: str, inches: float) -> str:
    """`text` broken into lines that fit `inches` at the style's font size."""
    import re
    import textwrap

    glued = re.sub(r"\$[^$]*\$", lambda m: m.group(0).replace(" ", "\0"), text)  # never break inside maths
    # 0.58 em: the mean advance of DejaVu Sans over English text (0.52 let titles run past their panel)
    lines = textwrap.wrap(glued, max(12, int(inches * 72 / (_look.font * 0.58))), break_long_words=False)
    return "\n".join(lines).replace("\0", " ")


class Style:
    """How a (rule, series) line looks: colour by rule when the rules outnumber the series (a figure about
    rules), otherwise colour by series. A rule always keeps its line style, and its marker unless the
    markers tell the series apart, so that every line reads in greyscale too."""

    def __init__(self, rules: Sequence[str], groups: Sequence[tuple[str, Any]]):
        self.by_rule = len(rules) > len(groups) or len(groups) == 1
        self.groups = len(groups)
        self.one_rule = len(rules) == 1  # then a marker a series too, not only a colour

    def colour(self, rule: str, g: int) -> str:
        return RULES[rule].colour if self.by_rule else SERIES_COLOURS[g % len(SERIES_COLOURS)]

    def marker(self, rule: str, g: int) -> str:
        by_series = self.groups > 1 and (self.by_rule or self.one_rule)
        return SEQ_MARKERS[g % len(SEQ_MARKERS)] if by_series else RULES[rule].marker

    def line(self, rule: str) -> Any:
        return RULES[rule].line


def series_of(rows: Sequence[dict], columns: Sequence[str], maths: bool = False) -> list[tuple[str, list[dict]]]:
    """Rows grouped by their values in `columns` (in first-seen order), each group with its legend label."""
    names = MATHS if maths else SHOWN
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[c] for c in columns), []).append(row)
    return [
        (
            ", ".join(
                f"{names.get(c, c)} = {v:g}" if isinstance(v, float) else f"{names.get(c, c)} = {v}"
                for c, v in zip(columns, key)
            ),
            group,
        )
        for key, group in groups.items()
    ]


SHOWN = {"seq_len": "n"}  # row columns by the names the report gives them
MATHS = {  # and the figures
    "seq_len": "$n$",
    "d_k": "$d_k$",
    "rho": r"$\rho$",
    "entry_std": r"$\sigma$",
    "entry_mean": r"$\mu$",
    "dist": "entries",
}
RULE_NAMES = {
    "none": "unscaled",
    "sqrt": r"$1/\sqrt{d_k}$",
    "linear": r"$1/d_k$",
    "qknorm": "QK-norm",
    "logn": "SSMax",
}  # row columns by the names the figures and the report give them


def rules_in(rows: Sequence[dict]) -> list[str]:
    """The scaling rules the rows hold, in the order of core.rules.RULES."""
    return [s for s in RULES if any(r["scaling"] == s for r in rows)]
