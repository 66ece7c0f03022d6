"""Scalable-Softmax's toy: the computed weight against its closed form and the published values."""

import json
import math

import pytest

import sqrtdk
from sqrtdk.core import theory


def test_ssmax_toy_closed_form_reproduces_published():
    for rule, published in theory.PUBLISHED_SSMAX.items():
        for n, value in published.items():
            c = 0.43 * math.log(n) if rule == "logn" else 1.0
            assert theory.toy_max_weight(n, 3.0, -2.0, c) == pytest.approx(value, abs=5e-5)  # 4 decimals


def test_the_toy_run_reproduces_the_published_weights():
    result = sqrtdk.run("toy")
    for row in result.rows:
        assert row["max_weight"] == pytest.approx(row["published_max_weight"], abs=5e-5)  # 4 decimals
        assert row["theory_max_weight"] == pytest.approx(row["max_weight"], rel=1e-12)


def test_a_gap_of_twenty_over_a_million_logits():
    (row,) = [r for r in sqrtdk.run("toy", high=10.0, low=-10.0, seq_len=10**6).rows if r["scaling"] == "none"]
    assert row["max_weight"] == pytest.approx(1 / (1 + (10**6 - 1) * math.exp(-20)), rel=1e-12)


def test_toy_with_any_logits(cli, tmp_path):
    code, stdout, stderr = cli(
        "toy", "--high", "-400", "--low", "400", "--seq-len", "10", "--json", "--no-plot", "--out", tmp_path
    )
    assert code == 0, stderr
    (row,) = [r for r in json.loads(stdout)["rows"] if r["scaling"] == "none"]
    assert row["max_weight"] == 0.0 and row["theory_max_weight"] == 0.0  # e^-800: the high logit loses
    code, stdout, stderr = cli(
        "toy", "--high", "400", "--low", "-400", "--seq-len", "10", "--json", "--no-plot", "--out", tmp_path
    )
    (row,) = [r for r in json.loads(stdout)["rows"] if r["scaling"] == "none"]
    assert row["max_weight"] == 1.0 and row["theory_max_weight"] == 1.0  # 1 - 9 e^-800
