"""The registry of experiments: each is one module of this package that defines `EXPERIMENT`.

An experiment owns everything about itself: its parameters (a schema), how one task runs, its rows, its
figures, its reading in the report, its terminal table and its cost. The command line, the configs, the
report, the resource guard and the executors find experiments here and nowhere else; adding one is a new
module (or a package: measure.py, figures.py and reading.py, joined in its __init__.py) and its name in
NAMES. The modules are light at import (numpy, scipy and matplotlib load where
they are used), so the command line can build its options from them at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqrtdk import schema
from sqrtdk.errors import InputError
from sqrtdk.tables import Table

if TYPE_CHECKING:
    from sqrtdk.core.moments import MapReplicates
    from sqrtdk.result import Result

NAMES = (
    "variance",
    "saturation",
    "gradient",
    "precision",
    "check",
    "toy",
    "train",
    "probe",
)  # the order of the command line's help

Task = Mapping[str, Any]  # one value of every parameter (schema.grid)


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str  # one line: the command's help and the report's wording
    params: type  # the schema (schema.params_class): every option and config key
    run: Callable[[Task, bool, MapReplicates], Any]  # task, histograms wanted, replicate map -> output
    rows: Callable[[Task, Any], list[dict]]  # task, output -> rows
    figures: Callable[[Result], dict[str, Callable[[], Any]]]  # figure name -> function that draws it
    reading: Callable[[Result], list[str]]  # sentences of the report, built from the rows
    table: Callable[[Result], Table]  # the rows for a terminal
    cost: Callable[[Task, int], tuple[float, float]]  # task, threads -> (bytes held, seconds)
    verdict: Callable[[Result], str | None] | None = None  # a check's failure: exit 1 with this message
    writes: bool = (
        True  # whether its command writes a results folder (check's only prints; `run` of a check config writes)
    )
    histogram: Callable[[Any], tuple[Sequence[int], int] | None] | None = None  # an output's counts, outside
    with_histogram: Callable[[Any, Sequence[int], int], Any] | None = None  # the output with those counts
    across: Callable[[Result], dict[str, Any]] | None = None  # numbers across rows, for the JSON document
    curves: Callable[[Any], Any] | None = None  # an output's logged curves (JSON-ready), kept in curves.json
    with_curves: Callable[[Any, Any], Any] | None = None  # the output with those curves
    arrays: Callable[[Result], dict[str, dict[str, Any]]] | None = None  # file stem -> arrays, as .npz
    # Whether a committed value of a column agrees with a fresh one, for an experiment whose numbers are
    # not reproducible across CPUs (training): True or False, or None to leave it to reproduce's rule.
    agree: Callable[[Mapping[str, Any], Mapping[str, Any], str], bool | None] | None = None
    # A task's inputs outside its parameters (files it reads) checked before any work: InputError if bad.
    prepare: Callable[[Task], None] | None = None
    # Why a task cannot run on this machine (a package it needs is missing), or None; reproduce skips it.
    available: Callable[[Task], str | None] | None = None
    # Computes (and caches) a task's exact theory from the task alone, so that it runs while tasks sample.
    theory: Callable[[Task], None] | None = None


def assembled(
    name: str, summary: str, measure: ModuleType, figures: ModuleType, reading: ModuleType, **extra: Any
) -> Experiment:
    """An experiment package's EXPERIMENT from its three parts: `measure`'s Params, run, rows and cost,
    `figures`' figures, `reading`'s reading and table; `extra` the optional fields, by name."""
    return Experiment(
        name,
        summary,
        measure.Params,
        measure.run,
        measure.rows,
        figures.figures,
        reading.reading,
        reading.table,
        measure.cost,
        **extra,
    )


def get(name: str, label: str = "experiment") -> Experiment:
    """The experiment called `name`; an InputError naming `label` when there is none."""
    if not isinstance(name, str) or name not in NAMES:
        raise InputError(f"{label}: {schema.show(name)} is not allowed; choose from {', '.join(NAMES)}")
    experiment: Experiment = importlib.import_module(f"{__name__}.{name}").EXPERIMENT
    return experiment


def every() -> list[Experiment]:
    return [get(name) for name in NAMES]
