"""The resource guard against measured runs: estimates within a factor of two of the time and the peak
memory that runs really take (on the 2-core machine the model was measured on), every experiment
covered, every process counted, oversized grids refused before they are built."""

import time
import tracemalloc

import pytest

import sqrtdk
from sqrtdk import api, executors, experiments, schema
from sqrtdk.errors import InputError

CASES = [  # (experiment, parameters): the cases the guard once misjudged, and others
    ("variance", dict(dim=1024, samples=2**20)),
    ("variance", dict(dim=list(range(1, 3001, 100)), samples=1)),  # rounded up to whole blocks
    ("variance", dict(inputs="projected", d_model=1024, heads=8, samples=1)),  # one fresh layer per replicate
    ("variance", dict(dim=65536, rho=0.5, samples=1)),  # was refused as 256 GiB
    ("variance", dict(dim=4096, rho=0.5, samples=2**14)),
    ("saturation", dict(dim=[16, 1024], seq_len=1024, samples=2**12)),
    ("gradient", dict(dim=256, seq_len=1024, samples=2**12)),
    ("gradient", dict(inputs="projected", d_model=512, heads=8, seq_len=256, samples=2**12)),
    ("toy", dict(seq_len=[10, 10**6])),
    ("precision", dict(dim=[64, 2048], std=[1.0, 32.0], samples=2**11)),
    ("precision", dict(dim=8192, seq_len=1024, samples=256, dtype="bfloat16")),
]


def estimate(experiment, params):
    threads = executors.cores()
    tasks = schema.grid(params)
    costs = [experiments.get(experiment).cost(task, threads) for task in tasks]
    return sum(seconds for _, seconds in costs) / threads, max(held for held, _ in costs)


@pytest.mark.parametrize("experiment,raw", CASES, ids=[f"{e}-{i}" for i, (e, _) in enumerate(CASES)])
def test_estimates_are_within_a_factor_of_two(experiment, raw):
    params = api.parse(experiment, raw, label=lambda k: k, text=False)
    seconds, held = estimate(experiment, params)
    api.run_params(experiment, params, workers=1, figures=False)  # imports and caches out of the timing
    start = time.perf_counter()
    api.run_params(experiment, params, workers=1, figures=False)
    wall = time.perf_counter() - start
    tracemalloc.start()  # numpy reports its arrays to tracemalloc
    api.run_params(experiment, params, workers=1, figures=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if wall > 0.1:  # shorter runs are all start-up noise
        assert 0.5 <= seconds / wall <= 2, f"estimated {seconds:.3g} s, took {wall:.3g} s"
    if peak > 8 * 2**20:
        assert 0.5 <= held / peak <= 2, f"estimated {held / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"


def test_every_process_counts():
    with pytest.raises(InputError, match=r"--max-memory: 0.5 GiB is not enough; .* for 17 process"):
        api.run_params(
            "variance", api.parse("variance", {"dim": list(range(1, 17))}, text=False), workers=16, limits=(0.5, None)
        )


def test_every_experiment_is_guarded():
    with pytest.raises(InputError, match="--max-time"):
        api.run_params("toy", api.parse("toy", {"seq_len": 10**7}, text=False), limits=(None, 1e-6))


def test_an_oversized_grid_is_refused_before_it_is_built():
    start = time.perf_counter()
    with pytest.raises(
        InputError,
        match=r"a grid of 1000 \(dim\) x 1000 \(mean\) x 1000 \(std\) = 1,000,000,000 "
        r"tasks is not allowed",
    ):
        sqrtdk.run(
            "variance",
            dim=list(range(1, 1001)),
            std=[1 + i / 1000 for i in range(1000)],
            mean=[i / 1000 for i in range(1000)],
        )
    assert time.perf_counter() - start < 5
