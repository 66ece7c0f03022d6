"""The scaling rules: each constant, and one table naming them."""

import math

import pytest

from sqrtdk.core import rules, theory


def test_scale_rules():
    assert rules.scale(64, "none") == 1.0
    assert rules.scale(64, "sqrt") == 0.125
    assert rules.scale(64, "linear") == 1 / 64
    assert rules.scale(64, "qknorm") == 8.0 and rules.scale(64, "qknorm", qk_gain=3.0) == 3.0
    assert rules.scale(64, "logn", 1000) == pytest.approx(0.43 * math.log(1000) / 8)
    assert theory.score_variance(64, c=rules.scale(64, "sqrt")) == pytest.approx(1.0)
