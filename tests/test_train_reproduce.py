"""Training results across CPUs: another BLAS's last bits change where unstable runs end, so `reproduce`
judges a training row as a second draw of the same seeds (Experiment.agree); a real change is still
caught."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sqrtdk.experiments.train.measure import Z, agree, floor
from sqrtdk.reproduce import compare_rows

CONFIG = (
    'experiment = "train"\ntitle = "Training"\norder = 1\ntask = "copy"\nd_model = 16\nscaling = ["none", "sqrt"]\n'
    "lr = [0.01, 0.3]\nsteps = 40\nwarmup = 5\nbatch = 8\nreplicates = 2\nevery = 40\n"
)


@pytest.fixture
def project(tmp_path, reproduced):
    """The training config and its reproduced results (made once, copied here)."""
    return reproduced({"train.toml": CONFIG}, tmp_path)


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def another_blas(monkeypatch):
    """Every matrix product of the model moved by a few float32 units in the last place, as another
    CPU's kernel moves them."""
    from sqrtdk.core import transformer

    dot = transformer._dot
    # relative moves of N(0, 3e-7), drawn once (a prime count of them, repeated over each product's values)
    factors = (1 + 3e-7 * np.random.default_rng(0).standard_normal(65521)).astype(np.float32)

    def moved(a, w):
        out = dot(a, w)
        return out * np.resize(factors, out.shape)

    monkeypatch.setattr(transformer, "_dot", moved)


def test_another_cpu_finds_the_results_current_and_rewrites_nothing(cli, project, monkeypatch):
    configs, results = project
    committed = json.loads((results / "train" / "rows.json").read_text())
    assert (results / "train" / "curves.json").is_file()
    before = snapshot(results)

    another_blas(monkeypatch)
    import sqrtdk

    fresh = sqrtdk.run_config(configs / "train.toml").rows
    assert compare_rows(committed, fresh) is not None  # the numbers did move beyond reproduce's usual rule
    code, out, err = cli("reproduce", str(configs), "--out", str(results), "--check", "--workers", "1")
    assert code == 0 and err == "", err
    assert cli("reproduce", str(configs), "--out", str(results), "--quiet", "--workers", "1")[0] == 0
    assert snapshot(results) == before  # figures redrawn from the kept curves: a clean `git status`


def test_a_real_change_is_still_caught(cli, project, monkeypatch):
    configs, results = project
    rows = json.loads((results / "train" / "rows.json").read_text())
    row = next(r for r in rows if r["final_loss_se"] is not None)
    beyond = Z * 2 * row["final_loss_se"] + floor("final_loss", row, 0.0, 0.0) + 0.05
    moved = dict(row, final_loss=row["final_loss"] + beyond)
    assert agree(row, moved, "final_loss") is False
    assert "column 'final_loss'" in compare_rows([moved], [row], agree)

    # a change of the model (here its initialisation) moves the loss at initialisation, held to 1e-4
    from sqrtdk.core import transformer

    init = transformer.init

    def wider(rng, shape, kind="lecun", dtype=np.float32):
        p = init(rng, shape, kind, dtype)
        return {k: v * np.float32(1.05) if k == "unembed" else v for k, v in p.items()}

    monkeypatch.setattr(transformer, "init", wider)
    code, _, err = cli("reproduce", str(configs), "--out", str(results), "--check", "--quiet", "--workers", "1")
    assert code == 1 and "column 'loss_at_init'" in err


ROW = {
    "replicates": 3,
    "loss_at_init": 5.0,
    "final_loss": 0.5,
    "final_loss_se": 0.1,
    "final_accuracy": 0.9,
    "final_accuracy_se": 0.02,
    "steps_to_99": None,
    "steps_to_99_se": None,
    "reached_99": 2 / 3,
    "max_logit": 10.0,
    "max_logit_se": 1.0,
    "final_entropy_ratio": 0.3,
    "final_entropy_ratio_se": 0.01,
    "diverged": 0.0,
    "trained": 0.0,
    "plateaued": 1.0,
    "collapsed": 0.0,
    "seed_outcome": ["plateaued"] * 3,
    "seed_loss": [0.4, 0.5, 0.6],
}


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ({"final_loss": 0.5 + Z * 0.1}, True),  # within Z combined standard errors (one side's alone)
        ({"final_loss": 0.5 + Z * 0.1 * 2**0.5 + 0.05 + 1e-3, "final_loss_se": 0.1}, False),  # floor 1% of 5
        ({"final_loss": 0.54, "final_loss_se": 0.0}, True),  # the floor
        ({"final_accuracy": 0.9 + Z * 0.02 + 0.01 + 1e-3, "final_accuracy_se": 0.0}, False),
        ({"reached_99": 1.0, "steps_to_99": 40.0, "steps_to_99_se": 5.0}, True),  # one seed got there
        ({"reached_99": 0.0}, True),  # 2 of 3 seeds against 0 of 3: three seeds cannot tell them apart
        ({"diverged": 1 / 3}, True),
        ({"collapsed": 1 / 3, "plateaued": 2 / 3, "seed_outcome": ["collapsed"] + ["plateaued"] * 2}, True),
        ({"collapsed": 2 / 3, "plateaued": 1 / 3}, True),  # nor 2 of 3 collapsed against none
        ({"seed_loss": [0.9, 0.1, 0.5]}, True),  # each seed a draw: judged through the mean
        ({"diverged": 2 / 3, "final_loss": 0.5 + Z * 0.1 * 2**0.5 + 0.06}, False),  # judged by the mean
        ({"max_logit": 10.0 + Z * 2**0.5 + 3.0, "max_logit_se": 1.0}, True),  # floor: 20% of 18.7
        ({"max_logit": 30.0, "max_logit_se": 1.0}, False),
        ({"reached_99": 1.0, "steps_to_99": 40.0, "steps_to_99_se": 0.0}, True),
    ],
)
def test_the_rule(change, verdict):
    fresh = {**ROW, **change}
    assert all(agree(ROW, fresh, c) is not False for c in ROW) is verdict, change


@pytest.mark.parametrize("seeds", [3, 5, 10, 20])
def test_shares_agree_as_fishers_exact_test_says(seeds):
    """The oracle: Fisher's two-sided exact p-value summed by hand over the hypergeometric tables with
    the same margins no likelier than the one seen."""
    from math import comb

    from sqrtdk.experiments.train.measure import SHARE_LEVEL, shares_agree

    def p_value(k: int, m: int) -> float:
        total = k + m

        def chance(x: int) -> float:
            return comb(seeds, x) * comb(seeds, total - x) / comb(2 * seeds, total)

        seen = chance(k)
        low, high = max(0, total - seeds), min(seeds, total)
        return sum(chance(x) for x in range(low, high + 1) if chance(x) <= seen * (1 + 1e-7))

    verdicts = set()
    for k in range(seeds + 1):
        for m in range(seeds + 1):
            verdict = shares_agree(k / seeds, m / seeds, seeds)
            assert verdict == (p_value(k, m) >= SHARE_LEVEL), (k, m)
            verdicts.add(verdict)
    assert verdicts == ({True} if seeds <= 5 else {True, False})  # 5 of 5 against 0 of 5: p = 0.008


def test_an_empty_outcome_needs_its_share_to_explain_it():
    all_gone = {**ROW, "final_loss": None, "final_loss_se": None, "diverged": 1.0}
    two_gone = {**ROW, "diverged": 2 / 3}
    assert agree(two_gone, all_gone, "final_loss") is True  # one more seed diverged
    assert agree(ROW, all_gone, "final_loss") is False  # three more
    assert agree(ROW, ROW, "lr") is None and agree(ROW, ROW, "loss_at_init") is None  # reproduce's own rule
