"""The resource guard: a run whose estimated memory or time exceeds the limits is refused before any work.

Memory is estimated per task from the arrays it holds at once (a chunk of draws, its scores and the
float32/float64 work arrays of the reduction, or a projection layer), times the threads that hold them
together. Time is estimated from a cost model measured on the benchmark machine (benchmarks/run.py):
8.5 ns per Gaussian draw, 6 ps per flop of the products, and a few nanoseconds per score and rule for
the reductions, shared among the cores. Both are rough, within about a factor of two; the limits are
there to stop a typo (a d_k of 65536 at n = 16384, 10^13 scores) from exhausting the machine, not to
predict run times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqrtdk.errors import InputError

MAX_MEMORY_GIB = 8.0    # default --max-memory: a third of the machines sqrtdk is measured on
MAX_TIME_MINUTES = 120.0  # default --max-time
DRAW_NS, FLOP_NS, SCORE_NS = 8.5, 0.006, 4.0


def _variance(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    from sqrtdk.api import source
    from sqrtdk.variance import CHUNK_SCORES, d_k_of, geometry

    src = source(task)
    d_k = d_k_of(task["dim"], src)
    layout, n, per_block = geometry(d_k, src, task["samples"])
    blocks = max(1, CHUNK_SCORES // per_block)
    if layout == "sequence":
        held = 4 * (2 * src.d_model**2 + 3 * n * src.d_model) + 40 * per_block
        draws = (2 * src.d_model**2 + n * src.d_model) / per_block
        flops = 4 * n * src.d_model**2 / per_block + 2 * d_k
    else:  # n queries and n keys per block (all pairs, or n matched pairs)
        held = blocks * (4 * 2 * n * d_k + 40 * per_block)
        draws, flops = 2 * d_k * n / per_block, 2 * d_k
    rules = 1 + ("qknorm" in task.get("scaling", ()))
    seconds = task["samples"] * (draws * DRAW_NS + flops * FLOP_NS + rules * SCORE_NS) * 1e-9
    return held * threads, seconds


def _attention(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    from sqrtdk.api import source
    from sqrtdk.attention import CHUNK_SCORES, QUERIES

    src = source(task)
    projected = src.inputs == "projected"
    d_k = src.d_model // src.heads if projected else task["dim"]
    n = task["seq_len"]
    m, heads = min(n, QUERIES), src.heads if projected else 1
    chunk = max(CHUNK_SCORES, n * heads)  # logits per chunk: at least one row of every head
    held = 4 * (m + n) * heads * d_k + 60 * chunk
    draws = (m + n) * heads * d_k
    if projected:
        held += 4 * (2 * src.d_model**2 + n * src.d_model)
        draws += 2 * src.d_model**2 + n * src.d_model
    rules = len(task["scaling"])
    per_rule = 6 if "threshold" in task else 14  # passes over the logits
    logits = task["samples"] * n
    seconds = (logits * (2 * d_k * FLOP_NS * (1 + ("eps" in task)) + rules * per_rule * 0.5)
               + task["samples"] / (m * heads) * draws * DRAW_NS) * 1e-9
    return held * threads, seconds


ESTIMATES = {"variance": _variance, "check": _variance, "saturation": _attention, "gradient": _attention}


def check(jobs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], workers: int, threads: int,
          max_memory_gib: float | None = None, max_time_minutes: float | None = None) -> None:
    """Refuse (InputError) a run of `jobs` (experiment, tasks) that would exceed the limits.

    `workers` tasks run at once, each on `threads` threads.
    """
    max_memory = (MAX_MEMORY_GIB if max_memory_gib is None else max_memory_gib) * 2**30
    max_seconds = (MAX_TIME_MINUTES if max_time_minutes is None else max_time_minutes) * 60
    worst, total = (0.0, None), 0.0
    for experiment, tasks in jobs:
        estimate = ESTIMATES.get(experiment)
        if estimate is None:
            continue
        for task in tasks:
            held, seconds = estimate(task, threads)
            total += seconds
            if held > worst[0]:
                worst = (held, (experiment, task))
    if worst[0] * workers > max_memory and worst[1] is not None:
        experiment, task = worst[1]
        raise InputError(f"--max-memory: {max_memory / 2**30:g} GiB is not enough; {describe(experiment, task)} "
                         f"would hold about {worst[0] * workers / 2**30:.1f} GiB at once ({workers} at a time): "
                         "lower d_k, d_model or n, use fewer --workers, or raise --max-memory")
    cores = max(1, workers * threads)
    seconds = total / cores
    if seconds > max_seconds:
        raise InputError(f"--max-time: {max_seconds / 60:g} minutes is not enough; the run would take about "
                         f"{_duration(seconds)} on {cores} cores: lower --samples or the number of points, or "
                         "raise --max-time")


def describe(experiment: str, task: Mapping[str, Any]) -> str:
    parts = [f"d_k = {task['dim']}"] if task.get("dim") else [f"d_model = {task['d_model']}"]
    if "seq_len" in task:
        parts.append(f"n = {task['seq_len']}")
    return f"one {experiment} task ({', '.join(parts)})"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    if seconds < 86400 * 3:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"
