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
