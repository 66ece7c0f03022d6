"""`sqrtdk inspect`: its numbers against sampled attention blocks of the same configuration, its
warnings for the usual mistakes, and bad input refused in one line."""

from __future__ import annotations

import json
import math

import pytest

import sqrtdk
from sqrtdk.inspect import inspect


@pytest.mark.parametrize(
    ("scale", "gain", "n"),
    [("sqrt", None, 16), ("sqrt", None, 128), ("none", None, 128), ("qknorm", 1.0, 128), ("qknorm", None, 16)],
)
def test_the_prediction_matches_sampled_blocks(scale, gain, n):
    """Projected layer-normalised tokens through freshly drawn W_q, W_k (the saturation experiment):
    entropy and largest weight within 4 standard errors plus 1% (what treating a row's logits as iid
    normal given the query leaves out)."""
    found = inspect(256, 4, scale, gain, "lecun", None, n)
    extra = {"qk_gain": gain} if gain else {}
    row = sqrtdk.run(
        "saturation", inputs="projected", d_model=256, heads=4, seq_len=n, scaling=scale, samples=4096, **extra
    ).rows[0]
    for mine, theirs in ((found.entropy, "entropy_mean"), (found.max_prob, "max_prob_mean")):
        assert abs(mine - row[theirs]) <= 4 * row[theirs + "_se"] + 0.01 * row[theirs], (theirs, mine, row[theirs])
    if row["logit_std"] is not None:
        assert found.logit_std == pytest.approx(row["logit_std"], rel=1e-3)


def test_the_usual_mistakes_are_named():
    assert inspect(512, 8).warnings == []  # 1/sqrt(d_k): nothing to say
    (head_dim, flat) = inspect(512, 8, str(1 / math.sqrt(512))).warnings
    assert "1/sqrt(d_model) = 0.04419 is not 1/sqrt(d_k) = 0.125" in head_dim and "nearly uniform" in flat
    (gain,) = inspect(512, 8, "qknorm", 1.0).warnings
    assert "after QK-norm a gain of 1" in gain and "sqrt(d_k) = 8" in gain
    (frozen,) = inspect(64, 1, "none", seq_len=128).warnings
    assert "above s_c" in frozen and "divide by sqrt(d_k)" in frozen
    assert inspect(64, 1, "none", seq_len=128).logit_std == pytest.approx(8.0)


def test_the_command_prints_a_few_lines_and_json(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli("inspect", "--d-model", "512", "--heads", "8", "--scale", "0.0441941738")
    assert code == 0 and err == ""
    assert out.startswith("d_model 512, 8 heads: d_k = 64 per head")
    assert all(len(line) <= 80 for line in out.splitlines()) and "warning: the scale 1/sqrt(d_model)" in out
    code, out, _ = cli("inspect", "--scale", "none", "--d-model", "64", "--heads", "1", "--seq-len", "128", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["d_k"] == 64 and doc["logit_std"] == pytest.approx(8.0) and len(doc["warnings"]) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--heads", "7"), "--heads: 7 is not allowed with --d-model 512; the number of heads must divide d_model"),
        (("--scale", "big"), "--scale: 'big' is not allowed; give a rule (none, sqrt, linear, qknorm, logn)"),
        (("--scale", "-1"), "--scale: '-1' is not allowed"),
        (("--seq-len", "1"), "--seq-len: 1 is not allowed; a row needs at least 2 keys"),
        (("--scale", "qknorm", "--qk-norm-gain", "0"), "--qk-norm-gain: 0.0 is not allowed"),
        (("--qk-norm-gain", "2"), "--qk-norm-gain: 2 is not allowed here; it is used only with --scale qknorm"),
        (("--scale", "0.125", "--qk-norm-gain", "2"), "--qk-norm-gain: 2 is not allowed here"),
        (("--init-std", "0.1"), "--init-std: 0.1 is not allowed here; it is used only with --init normal"),
        (("--init", "xavier", "--init-std", "0.1"), "--init-std: 0.1 is not allowed here"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, argv, message):
    code, out, err = cli("inspect", *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"sqrtdk: error: {message}"), err
