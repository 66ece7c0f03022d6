"""The report's wording (sqrtdk/report.py): one number format, a trend only beyond its uncertainty, small
tables, each concept explained once, sources and references; and the committed report's order."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sqrtdk import report

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("x", "text"),
    [(65510.3, "65,510"), (4.3521, "4.352"), (0.00024461, "0.0002446"), (3.16e-5, "3.16 \u00d7 10⁻⁵"), (0.0, "0")],
)
def test_one_number_format(x, text):
    assert report.num(x) == text


def test_shares_always_have_one_decimal():
    assert [report.share(x) for x in (0.0, 0.001, 0.166, 1.0)] == ["0.0%", "0.1%", "16.6%", "100.0%"]


def test_a_change_within_two_standard_errors_is_not_a_trend():
    assert report.trend(0.903, 0.900, ".3g", (0.001, 0.001)) == "falls from 0.903 to 0.9"  # 3 > 2 * 1.41
    assert report.trend(0.903, 0.901, ".3g", (0.001, 0.001)).startswith("does not move beyond its uncertainty")
    assert report.arrow(0.903, 0.901, ".3g", (0.001, 0.001)) == "0.903 → 0.901 (flat within 2 SE)"
    assert report.trend(0.5, 0.9, ".3g") == "rises from 0.5 to 0.9"


def test_markdown_cells_with_bars_stay_in_their_column():
    table = report.markdown_table(["rule", "||J||_F"], [["unscaled", "0.2 → 0.07"]])
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 3 for line in table.splitlines())


def test_the_committed_report_reads_as_the_argument_goes():
    text = (ROOT / "results" / "README.md").read_text(encoding="utf-8")
    order = [text.index(f"## {title}") for title in ("The scores at d_k = 100", "Var(q.k) grows like d_k")]
    assert order == sorted(order)
    assert text.index("# The argument") < text.index("# The scaling rules") < text.index("# Beyond the textbook")
    assert "## References" in text and "Sources: [1](#references)" in text
    for name, concept in report.CONCEPTS.items():  # each that the page names explained once, at most
        body = text.split("## References")[0].replace(concept, "")
        named = any(t in body for t in report.TRIGGERS.get(name, (name,)))
        assert text.count(concept) == named, concept[:40]
    bullets = [line for line in text.splitlines() if line.startswith("- ") and not line.startswith("- [")]
    assert len(bullets) == len(set(bullets))  # no bullet said twice
    prose = re.sub(r"```toml.*?```", "", text, flags=re.S)
    assert not re.search(r"\d\.\d+e[+-]\d", prose)  # no 6.551e+04 outside the configs


def test_every_figure_in_the_report_has_alt_text_that_says_what_it_shows():
    """Each image of the committed report has an alt text: its section's title and what the figure shows,
    from report.ALT, never the bare file name."""
    text = (ROOT / "results" / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[([^\]]*)\]\(([^)]+\.png)\)", text)
    assert len(images) > 15
    for alt, path in images:
        name = Path(path).stem
        assert alt and alt != name, path
        if name not in ("story",):
            assert any(name.startswith(key) for key in report.ALT), name
            assert ": " in alt and len(alt) > 60, (name, alt)
