"""The documentation's examples run: README's Python block and the API's docstring example."""

import doctest
import os
import re
from pathlib import Path

import sqrtdk.api

ROOT = Path(__file__).parent.parent


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """README's API block, verbatim, in a folder that has the configs beside it; it writes there."""
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    os.symlink(ROOT / "configs", tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["figure"].axes and namespace["scaled"] and namespace["result"].rows
    assert list((tmp_path / "results" / "runs").glob("saturation-*/saturation_vs_dk.png"))


def test_api_docstring_example_holds():
    failures, tried = doctest.testmod(sqrtdk.api, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation but hyphens and underscores
    dropped, each space a hyphen."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_of_the_documentation_reaches_its_file_and_heading():
    """README.md, docs/ and the report link to each other by relative paths and heading anchors: each
    target exists, and each anchor is a heading of its file."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "results" / "README.md"]
    pages.append(ROOT / "results" / "details.md")
    assert len(pages) >= 8
    checked = 0
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            where = (page.parent / path).resolve() if path else page
            assert where.exists(), f"{page.name}: {target}"
            if fragment and where.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", where.read_text(encoding="utf-8"), flags=re.M)
                assert fragment in {github_anchor(h) for h in headings}, f"{page.name}: {target}"
            checked += 1
    assert checked > 100


def test_readme_is_short_and_starts_where_a_newcomer_starts():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    headings = [line for line in lines if line.startswith("## ")]
    assert headings[:2] == ["## Quick start", "## A first run"]
    assert any("reproduce" in h for h in headings) and any("check" in h for h in headings)
    assert "## Python API" in headings
