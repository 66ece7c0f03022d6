"""Parameter parsing shared by the command line and the configs."""

import pytest

from sqrtdk.errors import InputError
from sqrtdk.schema import VarianceParams, build


def test_lists_and_defaults():
    p = build(VarianceParams, {"dim": ["16,64", "256", "16"], "std": "2"})
    assert p.dim == (16, 64, 256) and p.std == 2.0 and p.samples == 2**21


def test_typed_values_from_a_config():
    p = build(VarianceParams, {"dim": [4, 8], "samples": 1000, "mean": 1}, label=lambda k: f"key {k!r}")
    assert p.dim == (4, 8) and p.samples == 1000 and p.mean == 1.0


@pytest.mark.parametrize("raw,message", [
    ({"samples": True}, "key 'samples': True is not allowed"),
    ({"samples": [1, 2]}, "key 'samples': [1, 2] is not allowed; a single value is expected"),
    ({"dim": []}, "key 'dim': an empty list is not allowed"),
    ({"colour": 1}, "key 'colour': unknown key; allowed keys are dim, mean, samples, seed, std"),
    ({"std": "x"}, "key 'std': 'x' is not allowed"),
])
def test_errors_name_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(InputError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        build(VarianceParams, raw, label=lambda k: f"key {k!r}")
