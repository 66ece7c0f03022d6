"""The house style (sqrtdk/plots.py): text no smaller than the style's size at the width each figure is
drawn for, series that lie on top of each other said to, and the formats and styles a run can ask for."""

from __future__ import annotations

import pytest

import sqrtdk
from sqrtdk import plots
from sqrtdk.experiments import toy
from sqrtdk.experiments._attention import figures as attention_figures
from sqrtdk.experiments._attention import measure as attention
from sqrtdk.experiments.variance import figures as variance_figures


def _texts(fig):
    from matplotlib.text import Text

    fig.canvas.draw()  # the layout places every text, legends included
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def _figures():
    """(figure name, run) of every kind of figure, each run drawn in each style."""
    return [
        ("variance_vs_dk", sqrtdk.run("variance", dim=[4, 16], samples=4096, scaling=["none", "sqrt", "qknorm"])),
        ("histogram_dk16", sqrtdk.run("variance", dim=16, samples=4096)),
        ("saturation_vs_dk", sqrtdk.run("saturation", dim=[4, 16], seq_len=[8, 32], samples=256)),
        ("gradient_vs_n", sqrtdk.run("gradient", dim=16, seq_len=[8, 32], samples=256)),
        ("saturation_vs_dk", sqrtdk.run("saturation", dim=16, seq_len=8, samples=256)),  # one point: per rule
        ("ssmax_toy", sqrtdk.run("toy", seq_len=[10, 100])),
        ("variance_by_setting", sqrtdk.run("variance", inputs="projected", init=["lecun", "xavier"], samples=4096)),
    ]


def test_no_text_is_smaller_than_the_style_and_the_width_is_the_styles():
    """Every kind of figure drawn in both styles from the same runs."""
    figures = _figures()
    for style in ("paper", "slide"):
        look = plots.Look(style)
        plots.use(look)
        try:
            for name, result in figures:
                fig = result.figures()[name]()
                sizes = {round(t.get_fontsize(), 2) for t in _texts(fig)}
                assert min(sizes) >= look.font, (style, name, sizes)
                panels = len([a for a in fig.axes if a.get_visible() and a.axison])
                assert fig.get_figwidth() == pytest.approx(look.width(1 if panels == 1 else 2)), (style, name)
        finally:
            plots.use(plots.Look())


def test_paper_and_slide_are_stated_widths():
    assert plots.Look("paper").width(1) == 3.4 and plots.Look("paper").width(3) == 7.0
    assert plots.Look("slide").width(3) == 11.0 and plots.Look("slide").font == 15.0


def test_coinciding_series_are_named_and_distinct_ones_are_not():
    together = plots.coinciding(
        [(("a", ""), {1: 1.0, 2: 2.0}), (("b", ""), {1: 1.001, 2: 2.001}), (("c", ""), {1: 5.0, 2: 9.0})]
    )
    assert together == "(on top of each other: a = b)"
    assert plots.coinciding([(("a", ""), {1: 1.0}), (("c", ""), {1: 5.0})]) == ""
    log = plots.coinciding([(("a", ""), {1: 1e-3, 2: 1.0}), (("b", ""), {1: 2e-3, 2: 1.0})], log=True)
    assert log == ""  # a factor 2 apart on a log axis spanning a factor 1000 is visible


def test_a_single_point_run_is_drawn_per_rule_not_as_a_sweep():
    result = sqrtdk.run("saturation", dim=16, seq_len=8, samples=256)
    fig = result.figures()["saturation_vs_dk"]()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [plots.RULE_NAMES["none"], plots.RULE_NAMES["sqrt"]]


def test_each_reference_line_is_drawn_at_its_value_in_the_colour_of_its_series():
    """Two n in one panel: a uniform row's ||J||_F = sqrt(n - 1)/n for each, and the d_k where the unscaled
    logit spread sqrt(d_k) reaches s_c = sqrt(2 ln n), each in the colour of its unscaled series."""
    import math

    result = sqrtdk.run("gradient", dim=[2, 64], seq_len=[8, 64], samples=256)
    fig = attention_figures.metric_grid(result.rows, attention.GRADIENT_DRAWN, "t", "d_k", ["seq_len"])
    ax = fig.axes[0]
    series = {c.get_label(): c.lines[0].get_color() for c in ax.containers}
    uniform = [(line.get_ydata()[0], line.get_color()) for line in ax.get_lines() if line.get_linestyle() == "-."]
    vertical = [(line.get_xdata()[0], line.get_color()) for line in ax.get_lines() if list(line.get_ydata()) == [0, 1]]
    for n in (8, 64):
        colour = series[f"unscaled $q\\cdot k$, $n$ = {n}"]
        assert [y for y, c in uniform if c == colour] == [pytest.approx(math.sqrt(n - 1) / n)]
        assert [x for x, c in vertical if c == colour] == [pytest.approx(2 * math.log(n), rel=1e-6)]


def test_the_normal_curve_is_said_to_lie_under_the_exact_density_at_large_d_k():
    result = sqrtdk.run("variance", dim=1024, samples=2**16)
    fig = variance_figures.histogram_figure(result.outputs[0])
    words = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("within 1% of the exact density" in w for w in words)


def test_wrap_never_breaks_inside_maths():
    text = plots.wrap(r"coincide: $q\cdot k\,/\sqrt{d_k}$ and $g \cos(q, k)$ at all settings", 1.0)
    assert all(line.count("$") % 2 == 0 for line in text.split("\n"))


def test_formats_and_style_from_the_command_line(cli, tmp_path):
    code, _, _ = cli("toy", "--seq-len", "10,100", "--format", "pdf,png", "--style", "slide", "--out", tmp_path)
    assert code == 0
    (folder,) = tmp_path.iterdir()
    assert {p.suffix for p in folder.iterdir() if p.stem == "ssmax_toy"} == {".pdf", ".png"}
    pdf = (folder / "ssmax_toy.pdf").read_bytes()
    assert b"/CreationDate" not in pdf
    assert b"/Type3" not in pdf and b"/FontFile2" in pdf  # TrueType fonts embedded, which journals accept
    code, _, _ = cli("toy", "--seq-len", "10,100", "--format", "svg", "--out", tmp_path / "svg")
    svg = next((tmp_path / "svg").glob("*/ssmax_toy.svg")).read_text()
    assert code == 0 and "<text" in svg  # text stays text: selectable, editable, searchable
    code, _, err = cli("toy", "--format", "jpg", "--out", tmp_path)
    assert code == 2 and "--format: 'jpg' is not allowed; choose from png, svg, pdf" in err


def test_the_toy_figure_names_the_logits_it_was_run_with():
    """The x-label gives the run's logits and s, and the title says whether SSMax holds the largest weight,
    as its closed form 1 / (1 + (n - 1) n^(-s (high - low))) decides: s (high - low) above 1 or not."""
    for high, low, held in ((3.0, -2.0, "holds it"), (1.0, -1.0, "fades too")):
        result = sqrtdk.run("toy", seq_len=[10, 100], high=high, low=low)
        (ax,) = toy.figures(result)["ssmax_toy"]().axes
        assert f"one {high:g}, the rest {low:g}".replace("-", "\u2212") in ax.get_xlabel()
        assert ax.get_title().endswith(held)
    assert toy.figures(sqrtdk.run("toy", seq_len=[10, 100], high=[2.0, 3.0])) == {}  # mixed logits: the table


def test_toy_figure_is_one_column_wide():
    plots.use(plots.Look())
    fig = toy.toy_figure(sqrtdk.run("toy", seq_len=[10, 100]).rows)
    assert fig.get_figwidth() == 3.4


def test_log_tick_labels_are_plain_text_powers():
    digits = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
    for base, mantissa, k in [(10, 1, 3), (10, 1, -3), (10, 5, 2), (10, 2, -1), (2, 1, 10), (2, 1, -4), (2, 1, 0)]:
        label = plots.power_label(mantissa * float(base) ** k, base)
        lead, _, power = label.rpartition("\u00d7")
        assert (
            int(lead) if lead else 1
        ) == mantissa and power == f"{base}{str(k).translate(str.maketrans('-0123456789', '⁻⁰¹²³⁴⁵⁶⁷⁸⁹'))}"
        assert float(power[len(str(base)) :].translate(digits)) == k
    assert plots.power_label(0.0, 10) == "" and plots.power_label(3.7, 10) == "3.7"
    result = sqrtdk.run("saturation", dim=[4, 64], seq_len=8, samples=256)
    fig = result.figures()["saturation_vs_dk"]()
    plots.plain_powers(fig)
    fig.canvas.draw()
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert shown and all("$" not in text for text in shown), shown


def test_mean_over_spread_is_drawn_on_log_axes_where_it_grows():
    """With a correlated own key, mean / sd grows like sqrt(d_k): on log axes a line of slope 1/2, so its
    y axis is logarithmic, and the series of mean 0 (rho = 0), which have no place there, are left out and
    the title says so. Without a mean anywhere the panel keeps its linear axis and its line at 0."""
    import math

    correlated = sqrtdk.run("variance", dim=[4, 16, 64], rho=[0.0, 0.5], samples=4096)
    ax_mean = variance_figures.figures(correlated)["variance_checks"]().axes[0]
    assert ax_mean.get_yscale() == "log" and "mean 0: not drawn" in " ".join(ax_mean.get_title().split())
    (line,) = [ln for ln in ax_mean.get_lines() if len(ln.get_xdata()) == 3 and ln.get_linestyle() == "-"]
    x, y = line.get_xdata(), line.get_ydata()
    assert math.log(y[-1] / y[0]) / math.log(x[-1] / x[0]) == pytest.approx(0.5, abs=0.05)  # sqrt(d_k)
    plain = sqrtdk.run("variance", dim=[4, 16], samples=4096)
    ax_mean = variance_figures.figures(plain)["variance_checks"]().axes[0]
    assert ax_mean.get_yscale() == "linear" and "not drawn" not in ax_mean.get_title()


@pytest.mark.parametrize("low,high", [(3e-2, 9e1), (0.4, 3.0), (2e-3, 2e2)])
def test_plain_tick_labels_keep_matplotlibs_choice_of_ticks(low, high):
    """The plain labels go on exactly the ticks matplotlib's own log formatter labels for the range: no
    minor tick labelled over several decades (where they once all were, piled on each other), some on an
    axis narrower than a decade."""
    import matplotlib.pyplot as plt

    def labelled(convert: bool) -> list[bool]:
        fig, ax = plt.subplots()
        ax.plot([1, 2], [low, high])
        ax.set_yscale("log")
        if convert:
            plots.plain_powers(fig)
        fig.canvas.draw()
        texts = [t.get_text() for t in (*ax.get_yticklabels(), *ax.get_yticklabels(minor=True))]
        plt.close(fig)
        return [bool(text) for text in texts]

    assert labelled(True) == labelled(False)


def test_a_configs_claim_heads_its_figures():
    """A result with a title (a config's claim) heads each figure with it, in the figures' notation, above
    the figure's own title; a one-column figure keeps its panel's own claim."""
    from dataclasses import replace

    from sqrtdk.plots import as_maths

    assert as_maths("1/sqrt(d_k) and 1/d_k; Var(q.k) = d_k") == r"$1/\sqrt{d_k}$ and $1/d_k$; Var($q\cdot k$) = $d_k$"
    result = replace(sqrtdk.run("saturation", dim=[4, 16], seq_len=8, samples=256), title="Rows freeze as d_k grows")
    fig = result.figures()["saturation_vs_dk"]()
    first, *rest = fig.get_suptitle().split("\n")
    assert first == "Rows freeze as $d_k$ grows" and rest  # the figure's own title under the claim
    toy_result = replace(sqrtdk.run("toy", seq_len=[10, 100]), title="A claim")
    toy_fig = toy_result.figures()["ssmax_toy"]()
    assert "A claim" not in toy_fig.get_suptitle()


def test_a_config_run_carries_its_claim():
    """`run_config` (and `sqrtdk run CONFIG`, through the same title) heads the figures with the config's
    title, as reproduce does; not once overrides may have changed what the figures show."""
    import dataclasses
    import tomllib

    from sqrtdk import config
    from sqrtdk.plots import as_maths

    title = tomllib.loads((config.bundled_dir() / "variance_vs_dk.toml").read_text(encoding="utf-8"))["title"]
    assert not sqrtdk.run_config("variance_vs_dk", dim=[4, 16], samples=4096).title
    result = sqrtdk.run_config(config.bundled_dir() / "ssmax_toy.toml")  # as written: a few ms
    assert result.title == tomllib.loads((config.bundled_dir() / "ssmax_toy.toml").read_text(encoding="utf-8"))["title"]
    wide = dataclasses.replace(sqrtdk.run("variance", dim=[4, 16], samples=4096), title=title)
    fig = wide.figures()["variance_vs_dk"]()
    assert fig.get_suptitle().split("\n")[0] == as_maths(title)
