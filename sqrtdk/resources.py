"""The resource guard: a run whose estimated memory or time exceeds the limits is refused before any work.

Memory is estimated per task from the arrays it holds at once (a chunk of draws, its scores and the
float32/float64 work arrays of the reduction, or a projection layer), times the threads that hold them
together, plus a baseline per process. Time is estimated from a cost model measured on the 2-core
machine the tests run on (tests/test_resources.py compares it with measured runs): 19 ns per Gaussian
draw, 13 ps per flop of the products, a few nanoseconds per score and rule for the reductions, and a
fixed cost per task, shared among the cores; every count is what is really drawn (whole blocks, whole
trials, every replicate), not the samples asked for. Both hold within a factor of two there (a faster
machine finishes sooner); the limits are there to stop a typo (a d_k of 65536 at n = 16384, 10^13
scores) from exhausting the machine, not to predict run times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqrtdk.errors import InputError

MAX_MEMORY_GIB = 8.0    # default --max-memory: a third of the machines sqrtdk is measured on
MAX_TIME_MINUTES = 120.0  # default --max-time
DRAW_NS, FLOP_NS, SCORE_NS, LOGIT_NS = 19.0, 0.013, 9.0, 1.1
TASK_SECONDS = 0.01   # a task's fixed cost: its streams, thread pool, theory and rows
PROCESS_BYTES = 100 * 2**20  # a worker process before any task: Python, numpy, sqrtdk


def _variance(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    from sqrtdk.api import source
    from sqrtdk.moments import REPLICATES
    from sqrtdk.variance import chunk_size, d_k_of, geometry

    src = source(task)
    d_k = d_k_of(task["dim"], src)
    layout, n, per_block = geometry(d_k, src, task["samples"])
    per_replicate = max(1, math.ceil(task["samples"] / (REPLICATES * per_block)))  # whole blocks
    blocks = min(chunk_size(d_k, layout, n, per_block), per_replicate)  # held at once by one thread
    scores = REPLICATES * per_replicate * per_block  # what is drawn: whole blocks in every replicate
    if layout == "sequence":
        held = 4 * (2 * src.d_model**2 + 3 * n * src.d_model) + 40 * per_block
        draws = (2 * src.d_model**2 + n * src.d_model) / per_block
        flops = 4 * n * src.d_model**2 / per_block + 2 * d_k
    else:  # n queries and n keys per block (all pairs, or n matched pairs, whose mixing copies them twice)
        held = blocks * (4 * 2 * n * d_k * (3 if layout == "pairs" else 1) + 40 * per_block)
        draws, flops = 2 * d_k * n / per_block, 2 * d_k
    rules = 1 + ("qknorm" in task.get("scaling", ()))
    seconds = scores * (draws * DRAW_NS + flops * FLOP_NS + rules * SCORE_NS) * 1e-9 + TASK_SECONDS
    return held * min(threads, REPLICATES), seconds


def _attention(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    from sqrtdk.api import source
    from sqrtdk.attention import CHUNK_SCORES, QUERIES, geometry

    src = source(task)
    projected = src.inputs == "projected"
    d_k = src.d_model // src.heads if projected else task["dim"]
    n = task["seq_len"]
    m, heads = min(n, QUERIES), src.heads if projected else 1
    replicates, per_replicate = geometry(task["samples"], m * heads)
    chunk = max(min(CHUNK_SCORES, per_replicate * m * n * heads), n * heads)  # logits at once: >= one row a head
    held = 4 * (m + n) * heads * d_k * min(per_replicate, max(1, CHUNK_SCORES // (m * n))) + 60 * chunk
    draws = (m + n) * heads * d_k
    if projected:
        held += 4 * (2 * src.d_model**2 + n * src.d_model)
        draws += 2 * src.d_model**2 + n * src.d_model
    rules = len(task["scaling"])
    per_rule = 6 if "threshold" in task else 14  # passes over the logits
    trials = replicates * per_replicate  # whole trials in every replicate
    logits = trials * m * heads * n
    seconds = (logits * (2 * d_k * FLOP_NS * (1 + ("eps" in task)) + rules * per_rule * LOGIT_NS)
               + trials * draws * DRAW_NS) * 1e-9 + TASK_SECONDS
    return held * min(threads, replicates), seconds


def _toy(task: Mapping[str, Any], threads: int) -> tuple[float, float]:
    """n logits per rule, a few float64 arrays of them."""
    n = task["seq_len"]
    return 32.0 * n, n * len(task["scaling"]) * 20e-9 + TASK_SECONDS


ESTIMATES = {"variance": _variance, "check": _variance, "saturation": _attention, "gradient": _attention,
             "toy": _toy}


def check(jobs: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], workers: int, threads: int,
          max_memory_gib: float | None = None, max_time_minutes: float | None = None) -> None:
    """Refuse (InputError) a run of `jobs` (experiment, tasks) that would exceed the limits.

    `workers` tasks run at once, each on `threads` threads.
    """
    max_memory = (MAX_MEMORY_GIB if max_memory_gib is None else max_memory_gib) * 2**30
    max_seconds = (MAX_TIME_MINUTES if max_time_minutes is None else max_time_minutes) * 60
    worst, total = (0.0, None), 0.0
    for experiment, tasks in jobs:
        estimate = ESTIMATES[experiment]  # every experiment has one
        for task in tasks:
            held, seconds = estimate(task, threads)
            total += seconds
            if held > worst[0]:
                worst = (held, (experiment, task))
    processes = workers + 1 if workers > 1 else 1  # the workers and this process
    if worst[0] * workers + PROCESS_BYTES * processes > max_memory and worst[1] is not None:
        experiment, task = worst[1]
        raise InputError(f"--max-memory: {max_memory / 2**30:g} GiB is not enough; {describe(experiment, task)} "
                         f"would hold about {worst[0] * workers / 2**30:.2g} GiB at once ({workers} at a time), "
                         f"besides {PROCESS_BYTES * processes / 2**30:.2g} GiB for {processes} process(es): lower "
                         "d_k, d_model or n, use fewer --workers, or raise --max-memory")
    cores = max(1, workers * threads)
    seconds = total / cores
    if seconds > max_seconds:
        raise InputError(f"--max-time: {max_seconds / 60:g} minutes is not enough; the run would take about "
                         f"{_duration(seconds)} on {cores} cores: lower --samples or the number of points, or "
                         "raise --max-time")


def describe(experiment: str, task: Mapping[str, Any]) -> str:
    parts = ([f"d_k = {task['dim']}"] if task.get("dim") else [f"d_model = {task['d_model']}"] if task.get("d_model")
             else [])
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
