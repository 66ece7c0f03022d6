"""Scalable-Softmax's toy: the computed weight against its closed form and the published values."""

import json
import math

import pytest

from sqrtdk.core import theory


def test_ssmax_toy_closed_form_reproduces_published():
    for rule, published in theory.PUBLISHED_SSMAX.items():
        for n, value in published.items():
            c = 0.43 * math.log(n) if rule == "logn" else 1.0
            assert theory.toy_max_weight(n, 3.0, -2.0, c) == pytest.approx(value, abs=5e-5)  # 4 decimals


def test_toy_with_any_logits(cli, tmp_path):
    code, stdout, stderr = cli(
        "toy", "--high", "-400", "--low", "400", "--seq-len", "10", "--json", "--no-plot", "--out", tmp_path
    )
    assert code == 0, stderr
    (row,) = [r for r in json.loads(stdout)["rows"] if r["scaling"] == "none"]
    assert row["theory_max_weight"] == pytest.approx(row["max_weight"], abs=1e-300)
