"""The Python API: `run(experiment, **params)` returns a `Result` with rows, figures and writers.

    >>> import sqrtdk
    >>> result = sqrtdk.run("variance", dim=[16, 64], samples=2**16, seed=0)
    >>> [row["scaling"] for row in result.rows]
    ['none', 'sqrt', 'none', 'sqrt']
    >>> round(result.rows[3]["variance"], 1)  # scaled variance at d_k = 64
    1.0

`result.write("results/runs")` writes the tables, manifest and figures into results/runs/variance-<hash>/.
Any parameter may be a list: the grid of their values (the cartesian product) is expanded into
independent tasks, each a pure function of its parameters and its spawned seed. The command line, the
configs, `reproduce` and the study scripts all go through `run_many`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqrtdk import config, executors, experiments, resources, schema
from sqrtdk.errors import InputError
from sqrtdk.result import Result, folder_name, write_all

__all__ = ["Result", "folder_name", "parse", "run", "run_config", "run_many", "run_params", "write_all"]

Limits = tuple[float | None, float | None]  # --max-memory in GiB, --max-time in minutes (None: the default)


def parse(
    experiment: str,
    raw: Mapping[str, Any],
    label: Callable[[str], str] = schema.option_name,
    text: bool = True,
    base: Any = None,
) -> Any:
    """Typed, validated parameters of `experiment` from raw values (command-line text, or typed values)."""
    return schema.build(experiments.get(experiment).params, raw, label, text=text, base=base)


def run_task(item: tuple[str, Mapping[str, Any], bool]) -> Any:
    """One task of one experiment: what the executors run, here or in a worker process."""
    name, task, histogram = item
    return experiments.get(name).run(task, histogram, executors.map_replicates)


def _task_seconds(item: tuple[str, Mapping[str, Any], bool]) -> float:
    return experiments.get(item[0]).cost(item[1], 1)[1]


def _compute_theory(jobs: list[tuple[Callable[[Any], None], Any]]) -> None:
    """Each experiment's `theory` for each task; an error is left for the rows to raise where it belongs."""
    for compute, task in jobs:
        try:
            compute(task)
        except Exception:
            return


def run_many(
    jobs: Sequence[tuple[str, Any]],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    figures: bool = True,
    limits: Limits = (None, None),
) -> list[Result]:
    """Run several (experiment, params) jobs as one pool of tasks, so that workers stay busy across them.

    `figures=False` skips what only the figures need (the histograms): the rows are the same. A run whose
    estimated memory or time exceeds `limits` (GiB, minutes; resources.py) is refused before any work.
    """
    specs = [experiments.get(name) for name, _ in jobs]
    grids = [schema.grid(params) for _, params in jobs]
    for spec, tasks in zip(specs, grids):
        for task in tasks:
            missing = spec.available(task) if spec.available else None
            if missing:
                raise InputError(f"{spec.name}: {missing}")
            if spec.prepare:
                spec.prepare(task)
    items = [(spec.name, task, figures) for spec, tasks in zip(specs, grids) for task in tasks]
    at_once = 1 if scheduler else max(1, min(executors.cores() if workers is None else workers, len(items)))
    resources.check(list(zip(specs, grids)), at_once, max(1, executors.cores() // at_once), *limits)
    theory = [(spec.theory, task) for spec, tasks in zip(specs, grids) if spec.theory for task in tasks]
    # the exact theory the rows will need, computed here while the workers sample (it depends on the
    # tasks' parameters only, and would otherwise run after them, one row at a time)
    ahead = threading.Thread(target=_compute_theory, args=(theory,), daemon=True) if theory else None
    if ahead:
        ahead.start()
    outputs = executors.run_all(run_task, items, workers, scheduler, progress, cost=_task_seconds)
    if ahead:
        ahead.join()
    results, start = [], 0
    for spec, (_, params), tasks in zip(specs, jobs, grids):
        results.append(Result(spec, params, tasks, outputs[start : start + len(tasks)]))
        start += len(tasks)
    return results


def run_params(
    experiment: str,
    params: Any,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    figures: bool = True,
    limits: Limits = (None, None),
) -> Result:
    """Run every task of `experiment` for validated `params`; rows come in grid order."""
    return run_many([(experiment, params)], workers, scheduler, progress, figures, limits)[0]


def run(experiment: str, workers: int | None = 1, scheduler: str | None = None, **params: Any) -> Result:
    """Run `experiment` (one of sqrtdk.experiments.NAMES) with keyword parameters.

    Any parameter may be a list (a grid axis). `workers` local processes (None: all cores) or a Dask
    `scheduler` address run the tasks; the rows are the same whichever runs them.
    """
    return run_params(
        experiment, parse(experiment, params, label=lambda k: k, text=False), workers=workers, scheduler=scheduler
    )


def run_config(path: str | Path, workers: int | None = 1, scheduler: str | None = None, **overrides: Any) -> Result:
    """Run the config at `path`, or the config of that name (`"variance_vs_dk"`: see config.resolve), with
    keyword overrides of its parameters (typed values, checked as those of `run` are)."""
    loaded = config.load(path, overrides, text=False)
    result = run_params(loaded.experiment, loaded.params, workers=workers, scheduler=scheduler)
    # the config's claim heads its figures, unless overrides changed what they show
    return result if overrides else dataclasses.replace(result, title=loaded.title)
