"""The resource guard: a run whose estimated memory or time exceeds the limits is refused before any work.

Each experiment estimates its own tasks (its `cost`, in its module) with the constants below. Memory is
estimated per task from the arrays it holds at once (a chunk of draws, its scores and the
float32/float64 work arrays of the reduction, or a projection layer), times the threads that hold them
together, plus a baseline per process. Time is estimated from a cost model measured on a 2-core machine
(benchmarks/guard.py compares it with measured runs; tests/test_resources.py the memory): 19 ns per Gaussian
draw, 13 ps per flop of the products, a few nanoseconds per score and rule for the reductions, and a
fixed cost per task, shared among the cores; every count is what is really drawn (whole blocks, whole
trials, every replicate), not the samples asked for. Both hold within a factor of two there (a faster
machine finishes sooner); the limits are there to stop a typo (a d_k of 65536 at n = 16384, 10^13
scores) from exhausting the machine, not to predict run times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqrtdk.errors import InputError

if TYPE_CHECKING:
    from sqrtdk.experiments import Experiment

MAX_MEMORY_GIB = 8.0  # default --max-memory: a third of the machines sqrtdk is measured on
MAX_TIME_MINUTES = 120.0  # default --max-time
DRAW_NS, FLOP_NS, SCORE_NS, LOGIT_NS = 19.0, 0.013, 9.0, 1.1
TASK_SECONDS = 0.01  # a task's fixed cost: its streams, thread pool, theory and rows
PROCESS_BYTES = 100 * 2**20  # a worker process before any task: Python, numpy, sqrtdk


def check(
    jobs: Sequence[tuple[Experiment, Sequence[Mapping[str, Any]]]],
    workers: int,
    threads: int,
    max_memory_gib: float | None = None,
    max_time_minutes: float | None = None,
) -> None:
    """Refuse (InputError) a run of `jobs` (experiment, tasks) that would exceed the limits.

    `workers` tasks run at once, each on `threads` threads; each experiment estimates its tasks (`cost`).
    """
    max_memory = (MAX_MEMORY_GIB if max_memory_gib is None else max_memory_gib) * 2**30
    max_seconds = (MAX_TIME_MINUTES if max_time_minutes is None else max_time_minutes) * 60
    worst: tuple[float, tuple[str, Mapping[str, Any]] | None] = (0.0, None)
    total = 0.0
    for experiment, tasks in jobs:
        for task in tasks:
            held, seconds = experiment.cost(task, threads)
            total += seconds
            if held > worst[0]:
                worst = (held, (experiment.name, task))
    processes = workers + 1 if workers > 1 else 1  # the workers and this process
    if worst[0] * workers + PROCESS_BYTES * processes > max_memory and worst[1] is not None:
        name, task = worst[1]
        raise InputError(
            f"--max-memory: {max_memory / 2**30:g} GiB is not enough; {describe(name, task)} "
            f"would hold about {worst[0] * workers / 2**30:.2g} GiB at once ({workers} at a time), "
            f"besides {PROCESS_BYTES * processes / 2**30:.2g} GiB for {processes} process(es): lower "
            "d_k, d_model or n, use fewer --workers, or raise --max-memory"
        )
    cores = max(1, workers * threads)
    seconds = total / cores
    if seconds > max_seconds:
        raise InputError(
            f"--max-time: {max_seconds / 60:g} minutes is not enough; the run would take about "
            f"{_duration(seconds)} on {cores} cores: lower --samples or the number of points, or "
            "raise --max-time"
        )


def describe(experiment: str, task: Mapping[str, Any]) -> str:
    parts = (
        [f"d_k = {task['dim']}"] if task.get("dim") else [f"d_model = {task['d_model']}"] if task.get("d_model") else []
    )
    if "seq_len" in task:
        parts.append(f"n = {task['seq_len']}")
    return f"one {experiment} task ({', '.join(parts)})"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2g} seconds"
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    if seconds < 86400 * 3:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"
