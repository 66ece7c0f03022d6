"""Parameter parsing shared by the command line, the configs and the API; the grid of tasks."""

import pytest

from sqrtdk.errors import InputError
from sqrtdk.experiments.saturation import Params as SaturationParams
from sqrtdk.experiments.variance.measure import Params as VarianceParams
from sqrtdk.schema import build, grid, resolved, varying


def test_text_lists_and_defaults():
    p = build(VarianceParams, {"dim": ["16,64", "256", "16"], "std": "2"})
    assert p.dim == (16, 64, 256) and p.std == (2.0,) and p.samples == (2**21,)
    assert build(VarianceParams, {"samples": ["1e6"]}).samples == (10**6,)


def test_typed_values_from_a_config():
    p = build(VarianceParams, {"dim": [4, 8], "samples": 1e6, "mean": 1}, label=lambda k: f"key {k!r}", text=False)
    assert p.dim == (4, 8) and p.samples == (10**6,) and p.mean == (1.0,)


TYPED_ERRORS = [
    ({"samples": True}, "key 'samples': true (a boolean) is not allowed; the number of scores must be an integer"),
    ({"dim": "64"}, "key 'dim': '64' (a string) is not allowed; d_k must be an integer from 1 to 65536"),
    ({"dim": 2.5}, "key 'dim': 2.5 is not allowed; d_k must be an integer"),
    ({"dim": [[1, 2]]}, "key 'dim': [1, 2] (a list) is not allowed; give a value or a flat list of values"),
    ({"dim": []}, "key 'dim': an empty list is not allowed"),
    ({"std": {"a": 1}}, "key 'std': {'a': 1} (a table) is not allowed"),
    ({"colour": 1}, "key 'colour': unknown key; allowed keys are dim, samples, seed, dist, mean, std"),
    ({"std": "x"}, "key 'std': 'x' (a string) is not allowed; the std must be a finite number > 0"),
    ({"std": float("nan")}, "key 'std': nan is not allowed"),
]


@pytest.mark.parametrize("raw,message", TYPED_ERRORS, ids=[str(r) for r, _ in TYPED_ERRORS])
def test_typed_errors_name_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(InputError) as error:
        build(VarianceParams, raw, label=lambda k: f"key {k!r}", text=False)
    assert str(error.value).startswith(message)


def test_grid_is_the_cartesian_product_in_field_order():
    p = build(SaturationParams, {"dim": "4,16", "seq_len": "8,32,64", "std": "1,2"})
    tasks = grid(p)
    assert len(tasks) == 2 * 3 * 2
    assert [(t["dim"], t["seq_len"], t["std"]) for t in tasks[:4]] == [
        (4, 8, 1.0),
        (4, 8, 2.0),
        (4, 32, 1.0),
        (4, 32, 2.0),
    ]
    assert all(isinstance(t["samples"], int) for t in tasks)
    assert [f.name for f in varying(p)] == ["dim", "seq_len", "std"]


def test_resolved_writes_a_scalar_for_one_value():
    p = build(VarianceParams, {"dim": "64", "std": "1,2"})
    assert resolved(p) == {
        "dim": 64,
        "samples": 2**21,
        "seed": 0,
        "dist": "gaussian",
        "mean": 0.0,
        "std": [1.0, 2.0],
        "rho": 0.0,
        "inputs": "direct",
        "scaling": ["none", "sqrt"],
    }
    projected = resolved(build(VarianceParams, {"inputs": "projected", "init": "normal"}))
    assert "dim" not in projected and projected["init_std"] == 0.02 and projected["d_model"] == 512
