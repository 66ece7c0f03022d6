"""The resource guard: memory estimates within a factor of two of the peak that runs really hold, every
experiment covered, every process counted, oversized grids refused before they are built. Time estimates
against measured runs are a benchmark (benchmarks/guard.py): a duration depends on the machine and on
what else it runs, a test must not."""

import pytest
from guard import CASES, estimate, label, peak_bytes

import sqrtdk
from sqrtdk import api, executors, experiments, schema
from sqrtdk.errors import InputError


def held(experiment, raw):
    """The memory the guard estimates for a case on one thread, and the case's parsed parameters."""
    params = api.parse(experiment, raw, label=lambda k: k, text=False)
    return estimate(experiment, params, threads=1)[1], params


# The cases the guard's memory model is about: those estimated at 4 MiB or more. Smaller runs hold
# little beyond what any run allocates (modules, caches); they are in the table for their time, which
# the benchmark measures, beside their memory.
# precision's emulated products cost n^2 d a row: its cases are run here at d_k <= 2048 and 512 samples,
# sizes that hold every array its memory model counts (the benchmark measures the full ones).
def lighter(experiment, raw):
    if experiment != "precision":
        return raw
    dims = raw["dim"] if isinstance(raw["dim"], list) else [raw["dim"]]
    return {**raw, "dim": [min(d, 2048) for d in dims], "samples": min(raw["samples"], 512)}


MEMORY = [(i, e, lighter(e, raw)) for i, (e, raw) in enumerate(CASES) if held(e, raw)[0] >= 4 * 2**20]


@pytest.mark.parametrize("experiment,raw", [c[1:] for c in MEMORY], ids=[f"{e}-{i}" for i, e, _ in MEMORY])
def test_memory_estimates_are_within_a_factor_of_two(experiment, raw, monkeypatch):
    """On one thread a run allocates the same arrays in the same order every time, so its tracemalloc
    peak is a property of the code, not of the machine; the exact theory a run computes on a thread of
    its own is computed (and cached) first, so that it does not allocate beside the sampling."""
    estimated, params = held(experiment, raw)
    spec = experiments.get(experiment)
    for task in schema.grid(params) if spec.theory else ():
        spec.theory(task)
    monkeypatch.setattr(executors, "_task_threads", 1)
    peak = peak_bytes(experiment, params)
    assert 0.5 <= estimated / peak <= 2, (
        f"{label(experiment, raw)}: estimated {estimated / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB"
    )


def test_every_process_counts():
    with pytest.raises(InputError, match=r"--max-memory: 0.5 GiB is not enough; .* for 17 process"):
        api.run_params(
            "variance", api.parse("variance", {"dim": list(range(1, 17))}, text=False), workers=16, limits=(0.5, None)
        )


def test_every_experiment_is_guarded():
    with pytest.raises(InputError, match="--max-time"):
        api.run_params("toy", api.parse("toy", {"seq_len": 10**7}, text=False), limits=(None, 1e-6))


def test_an_oversized_grid_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setattr(schema, "_tasks", lambda params: pytest.fail("the grid was built"))
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
