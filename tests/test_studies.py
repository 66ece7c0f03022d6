"""The study scripts run end to end in quick mode; the seed articles' use only sqrtdk's public API (the
coverage study calls the functions that make the rows, as the suite's coverage tests do)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).parent.parent / "experiments"
SCRIPTS = sorted(p for p in EXPERIMENTS.glob("seed*.py"))
STUDIES = [*SCRIPTS, EXPERIMENTS / "coverage.py"]
PUBLIC = {
    "sqrtdk",
    "sqrtdk.core",
    "sqrtdk.core.theory",
    "sqrtdk.core.rules",
    "sqrtdk.core.multihead",
    "sqrtdk.core.softmax",
}

EXPECT = {
    "seed000_sampling.py": ["times too small", "The exact variance-gamma density predicts"],
    "seed001_head_dim.py": ["1/sqrt(d_model) = 1/22.63", "Only the head dimension keeps the logits at unit variance"],
    "seed002_multihead_reshape.py": [
        "article: output at position 2 moves by 0 -> FAILS",
        "fixed: output at position 2 moves by",
    ],
    "seed003_mhsa_forward.py": [
        "rounding only",
        "theory (1/3 + 1/(3 d_model))^2 = 0.1115",
        "does it keep its scores at variance 1?",
    ],
    "seed004_saturation_gradients.py": [
        "against the published figures",
        "of its rows are frozen",
        "Training: is it bad",
        "A rule trains at a learning rate when",
    ],
    "coverage.py": [
        "Student-t df 5, d_k 16: variance",
        "interval not given",
        "(standard error), interval not given.",
        "| ‖J‖_F², n 2, unscaled, d_k 1024 | 95.0% |",
    ],
}


def test_one_script_per_seed_article():
    assert [p.name[:7] for p in SCRIPTS] == ["seed000", "seed001", "seed002", "seed003", "seed004"]


@pytest.mark.parametrize("script", STUDIES, ids=[p.stem for p in STUDIES])
def test_quick_mode_runs(script, tmp_path):
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = " ".join(done.stdout.split())  # narration is wrapped for a terminal
    for phrase in EXPECT[script.name]:
        assert phrase in text
    if script.name == "coverage.py":
        assert (tmp_path / "coverage.md").read_text().count("\n") == 6  # a header, a rule and 4 cases


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_only_public_api(script):
    text = script.read_text()
    modules = set(re.findall(r"^(?:from|import) (sqrtdk[\w.]*)", text, re.M))
    assert modules <= PUBLIC, modules - PUBLIC
    assert not re.search(r"sqrtdk\.\w*\._|\b(?:api|executors|schema|cli)\.", text)
