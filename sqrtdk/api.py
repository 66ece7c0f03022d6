"""The Python API: `run(experiment, **params)` returns a `Result` with rows, figures and writers.

    >>> import sqrtdk
    >>> result = sqrtdk.run("variance", dim=[16, 64], seed=0)
    >>> result.rows[1]["variance"]          # scaled variance at d_k = 16
    >>> result.write("results/runs")        # tables, manifest and figures in results/runs/variance-<hash>/

Any parameter may be a list: the grid of their values (the cartesian product) is expanded into
independent tasks, each a pure function of its parameters and its spawned seed. The command line, the
configs, `reproduce` and the study scripts all go through `run_params`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqrtdk import output, schema, theory
from sqrtdk.errors import InputError


@dataclass(frozen=True)
class Experiment:
    """How one experiment turns a task into measurements, rows and figures."""
    name: str
    schema: type
    run_task: Callable[[Mapping[str, Any], bool], Any]        # task, figures wanted -> output (pure, seeded)
    rows: Callable[[Mapping[str, Any], Any], list[dict]]     # task, output -> rows
    figures: Callable[["Result"], dict[str, Callable[[], Any]]]
    cost: Callable[[Mapping[str, Any]], float]               # estimated seconds of a task (resources.py)


def source(task: Mapping[str, Any]) -> Any:
    """The task's sampling.Source: its entries, and the projection layer for projected inputs."""
    from sqrtdk.sampling import Source
    from sqrtdk.theory import Entries

    entries = Entries(task.get("dist") or "gaussian", task["mean"], task["std"], task.get("df") or 10.0,
                      task.get("rho") or 0.0)
    if task.get("inputs") != "projected":
        return Source(entries)
    return Source(entries, "projected", task["d_model"], task["heads"], task["init"], task["init_std"],
                  bool(task["layernorm"]))


def _gain(task: Mapping[str, Any]) -> float | None:
    gain = task.get("qk_gain")
    return None if gain in (None, "auto") else gain


# ---- variance and check ----

def _variance_run(task: Mapping[str, Any], figures: bool = True) -> Any:
    from sqrtdk.variance import sample_scores

    return sample_scores(task["dim"], task["samples"], seed=task["seed"], source=source(task),
                         cosine="qknorm" in task.get("scaling", ()), histogram=figures)


def _variance_rows(task: Mapping[str, Any], sample: Any) -> list[dict]:
    from sqrtdk.variance import variance_rows

    return variance_rows(sample, task["scaling"], _gain(task))


HISTOGRAMS = 16  # a histogram per task for runs of at most this many tasks; larger sweeps get the summary


def _variance_figures(result: "Result") -> dict[str, Callable[[], Any]]:
    from sqrtdk import plots

    figures = {}
    for task, sample in zip(result.tasks if len(result.tasks) <= HISTOGRAMS else (), result.outputs):
        name = f"histogram_dk{sample.d_k}" + result.suffix(task, skip=("dim",))
        figures[name] = (lambda t=task, s=sample: plots.histogram_figure(s, result.label(t, skip=("dim",))))
    if len({r["d_k"] for r in result.rows}) > 1:
        figures["variance_vs_dk"] = lambda: plots.variance_figure(result.rows, result.series_columns("dim"),
                                                                  result.setting())
    elif len(result.tasks) > 1:
        figures["variance_by_setting"] = lambda: plots.variance_by_setting(result.rows, result.series_columns("dim"),
                                                                           result.setting())
    return figures


def _check_rows(task: Mapping[str, Any], sample: Any) -> list[dict]:
    from sqrtdk.variance import variance_rows

    row = variance_rows(sample, ("sqrt",))[0]
    tol = task["tol"]
    passed = bool(1 - tol <= row["variance_ci_low"] and row["variance_ci_high"] <= 1 + tol)
    return [{"d_k": sample.d_k, "n_scores": sample.n_scores, "variance": row["variance"],
             "variance_ci_low": row["variance_ci_low"], "variance_ci_high": row["variance_ci_high"],
             "allowed_low": 1 - tol, "allowed_high": 1 + tol, "passed": passed}]


# ---- saturation and gradient ----

def _attention_run(task: Mapping[str, Any], figures: bool = True) -> Any:
    from sqrtdk.attention import sample_rows

    kind = "saturation" if "threshold" in task else "gradient"
    return sample_rows(kind, task["dim"], task["seq_len"], task["samples"], seed=task["seed"],
                       level=task["threshold"] if kind == "saturation" else task["eps"],
                       scalings=task["scaling"], source=source(task), qk_gain=_gain(task),
                       ssmax_s=task.get("ssmax_s") or theory.SSMAX_S)


def _attention_rows(task: Mapping[str, Any], sample: Any) -> list[dict]:
    from sqrtdk.attention import attention_rows

    return attention_rows(sample)


def _attention_figures(kind: str) -> Callable[["Result"], dict[str, Callable[[], Any]]]:
    def figures(result: "Result") -> dict[str, Callable[[], Any]]:
        from sqrtdk import attention, plots

        metrics = attention.SATURATION if kind == "saturation" else attention.GRADIENT
        title = "Softmax saturation" if kind == "saturation" else "Softmax Jacobian and gradients"
        d_ks = {r["d_k"] for r in result.rows}
        out = {}
        if len(d_ks) > 1 or len(result.params.seq_len) == 1:
            out[f"{kind}_vs_dk"] = lambda: plots.metric_grid(result.rows, metrics, title, "d_k",
                                                             result.series_columns("dim"), result.setting())
        if len(result.params.seq_len) > 1:
            out[f"{kind}_vs_n"] = lambda: plots.metric_grid(result.rows, metrics, title, "seq_len",
                                                            result.series_columns("seq_len"), result.setting())
        return out
    return figures


# ---- the Scalable-Softmax toy ----

def _toy_c(task: Mapping[str, Any], rule: str) -> float:
    """The toy's logit factor: 1 for plain softmax, s ln n for Scalable-Softmax (no d_k to divide by)."""
    return task["ssmax_s"] * math.log(task["seq_len"]) if rule == "logn" else 1.0


def _toy_run(task: Mapping[str, Any], figures: bool = True) -> Any:
    """The largest weight of softmax over n logits (high, low, ..., low) times each rule's c, computed."""
    import numpy as np

    from sqrtdk.softmax import softmax

    n = task["seq_len"]
    logits = np.full(n, task["low"])
    logits[0] = task["high"]
    out = {}
    for rule in task["scaling"]:
        out[rule] = float(softmax(_toy_c(task, rule) * logits[None])[0][0, 0])
    return out


def _toy_rows(task: Mapping[str, Any], weights: Mapping[str, float]) -> list[dict]:
    n, rows = task["seq_len"], []
    standard = task["high"] == 3.0 and task["low"] == -2.0 and task["ssmax_s"] == theory.SSMAX_S
    for rule, weight in weights.items():
        c = _toy_c(task, rule)
        published = theory.PUBLISHED_SSMAX[rule].get(n) if standard else None
        rows.append({"seq_len": n, "scaling": rule, "max_weight": weight,
                     "theory_max_weight": theory.toy_max_weight(n, task["high"], task["low"], c),
                     "published_max_weight": published})
    return rows


def _toy_figures(result: "Result") -> dict[str, Callable[[], Any]]:
    from sqrtdk import plots

    return {"ssmax_toy": lambda: plots.toy_figure(result.rows)} if len(result.tasks) > 1 else {}


def _seconds(kind: str) -> Callable[[Mapping[str, Any]], float]:
    def cost(task: Mapping[str, Any]) -> float:
        from sqrtdk import resources

        return resources.ESTIMATES[kind](task, 1)[1]
    return cost


EXPERIMENTS = {
    "variance": Experiment("variance", schema.VarianceParams, _variance_run, _variance_rows,
                           _variance_figures, _seconds("variance")),
    "saturation": Experiment("saturation", schema.SaturationParams, _attention_run, _attention_rows,
                             _attention_figures("saturation"), _seconds("saturation")),
    "gradient": Experiment("gradient", schema.GradientParams, _attention_run, _attention_rows,
                           _attention_figures("gradient"), _seconds("gradient")),
    "check": Experiment("check", schema.CheckParams, _variance_run, _check_rows, lambda result: {},
                        _seconds("check")),
    "toy": Experiment("toy", schema.ToyParams, _toy_run, _toy_rows, _toy_figures, lambda task: task["seq_len"]),
}


def run_task(item: tuple[str, Mapping[str, Any], bool]) -> Any:
    """One task of one experiment: what the executors run, here or in a worker process."""
    experiment, task, figures = item
    return EXPERIMENTS[experiment].run_task(task, figures)


def _task_cost(item: tuple[str, Mapping[str, Any], bool]) -> float:
    return EXPERIMENTS[item[0]].cost(item[1])


@dataclass
class Result:
    """Rows and figures of one run of an experiment over its grid of tasks."""
    experiment: str
    params: Any = field(repr=False)         # the validated schema instance
    tasks: list[dict] = field(repr=False)   # one dict of scalar parameters per task, in grid order
    outputs: list[Any] = field(repr=False)  # per-task measurements, in task order
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.rows:
            spec = EXPERIMENTS[self.experiment]
            coords = schema.varying(self.params)
            self.rows = [row for task, out in zip(self.tasks, self.outputs)
                         for row in _with_coords(spec.rows(task, out), task, coords)]

    @property
    def config(self) -> dict[str, Any]:
        """The resolved parameters, TOML- and JSON-ready."""
        return schema.resolved(self.params)

    def series_columns(self, x: str) -> list[str]:
        """Row columns of the varying axes other than `x`: what tells apart the lines of a figure."""
        return [schema.column(f) for f in schema.varying(self.params) if f.name != x]

    def setting(self) -> str:
        """'rho = 0.5, d_model = 512': the single values that differ from the schema's defaults (not the
        sample count, seed or scaling rules), for figure titles."""
        varying = {f.name for f in schema.varying(self.params)}
        parts = []
        for f in schema.fields(type(self.params)):
            values = {t[f.name] for t in self.tasks if t[f.name] is not None}
            if (f.name in varying or f.name in ("samples", "seed") or not f.metadata["axis"] or len(values) != 1
                    or getattr(self.params, f.name) == f.default):
                continue
            value = values.pop()
            parts.append(f"{f.name} = {value:g}" if isinstance(value, float) else f"{f.name} = {value}")
        return ", ".join(parts)

    def label(self, task: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
        """'std = 2, seed = 1': the task's values of the varying axes, for titles and legends."""
        return ", ".join(f"{f.name} = {task[f.name]:g}" if isinstance(task[f.name], float)
                         else f"{f.name} = {task[f.name]}"
                         for f in schema.varying(self.params) if f.name not in skip)

    def suffix(self, task: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
        """'_std2_seed1': the same for file names."""
        return "".join(f"_{f.name}{task[f.name]:g}" if isinstance(task[f.name], float)
                       else f"_{f.name}{task[f.name]}"
                       for f in schema.varying(self.params) if f.name not in skip)

    def figures(self) -> dict[str, Callable[[], Any]]:
        """Figure name -> function that draws it (a matplotlib Figure)."""
        return EXPERIMENTS[self.experiment].figures(self)

    def folder_name(self, stem: str | None = None) -> str:
        return folder_name(self.experiment, self.params, stem)

    def document(self, files: Sequence[str] = ()) -> dict[str, Any]:
        from sqrtdk import __version__

        return {"experiment": self.experiment, "version": __version__, "config": self.config,
                "rows": self.rows, "files": list(files)}

    def to_json(self, files: Sequence[str] = ()) -> str:
        return output.to_json(self.document(files))

    def histograms(self) -> list[dict]:
        """The histogram counts behind the figures, one entry per task that has them (task index, the
        counts per bin and the scores outside the bins): the figures' data, kept beside the tables."""
        return [{"task": i, "counts": [int(c) for c in out.counts], "outside": int(out.outside)}
                for i, out in enumerate(self.outputs) if getattr(out, "counts", None) is not None]

    def with_values(self, rows: list[dict], histograms: Sequence[Mapping[str, Any]] | None) -> "Result":
        """The same result with other values of its rows and histogram counts (reproduce keeps the
        committed ones where they agree with a fresh run)."""
        outputs = list(self.outputs)
        for h in histograms or ():
            outputs[h["task"]] = _with_counts(outputs[h["task"]], h["counts"], h["outside"])
        return Result(self.experiment, self.params, self.tasks, outputs, [dict(r) for r in rows])

    def tables(self, manifest: Mapping[str, Any] | None = None) -> dict[str, str]:
        """File name -> text: the rows as CSV, Markdown and JSON, the resolved config and the manifest.

        `manifest` replaces the default provenance (the git commit) with the caller's."""
        provenance = {"git": output.git_state()} if manifest is None else dict(manifest)
        return {
            "rows.csv": output.to_csv(self.rows),
            "rows.md": output.to_markdown(self.rows),
            "rows.json": output.to_json(self.rows),
            "config.toml": output.to_toml({"experiment": self.experiment, **self.config}),
            "manifest.json": output.to_json(output.manifest(self.experiment, self.config, provenance)),
        }

    def write(self, out: str | Path, plot: bool = True, folder: str | None = None,
              manifest: Mapping[str, Any] | None = None, workers: int | None = 1) -> list[str]:
        """Write tables, config, manifest and (with `plot`) figures into out/<folder>, atomically."""
        target = Path(out) / (folder or self.folder_name())
        return write_all([(self, target, manifest)], plot, workers)[0]


def folder_name(experiment: str, params: Any, stem: str | None = None) -> str:
    """'<stem or experiment>-<hash of the resolved parameters>': where an ad-hoc run of `params` goes."""
    return f"{stem or experiment}-{output.config_hash(experiment, schema.resolved(params))}"


def _with_counts(sample: Any, counts: Sequence[int], outside: int) -> Any:
    """A variance sample whose score histogram holds `counts` (and `outside`) instead of its own."""
    import dataclasses

    import numpy as np

    dot = dataclasses.replace(sample.channels["dot"], counts=np.array(counts, dtype=np.int64), outside=outside)
    return dataclasses.replace(sample, channels={**sample.channels, "dot": dot})


def write_all(jobs: Sequence[tuple[Result, Path, Mapping[str, Any] | None]], plot: bool = True,
              workers: int | None = None, progress: Callable[[int, int], None] | None = None,
              unchanged: str = "replace") -> list[list[str]]:
    """Write each (result, folder, manifest): tables first, then every figure of every result drawn by
    `workers` processes at once; each folder appears whole or not at all. Returns each folder's files
    (with `unchanged="keep"`, for folders that reproduce owns, a folder whose files would come out
    identical is left untouched and returns none, and any other is replaced whole; otherwise an earlier
    folder's files that this run does not write are kept)."""
    from sqrtdk import executors

    staged: list[Path] = []
    try:
        for result, folder, manifest in jobs:
            staged.append(output.stage(folder))
            for name, text in result.tables(manifest).items():
                (staged[-1] / name).write_text(text, encoding="utf-8")
            histograms = result.histograms() if plot else []
            if histograms:  # the data of the histogram figures, beside them
                (staged[-1] / "histograms.json").write_text(output.to_json(histograms), encoding="utf-8")
        if plot:
            figures = [(result, name, staging) for (result, _, _), staging in zip(jobs, staged)
                       for name in result.figures()]
            executors.run_all(_render, figures, workers, progress=progress)
        if unchanged == "keep":  # canonical folders: untouched when identical, otherwise replaced whole
            return [[] if output.same_folder(staging, folder) else output.commit(staging, folder)
                    for (_, folder, _), staging in zip(jobs, staged)]
        return [output.commit(staging, folder, keep_earlier=True) for (_, folder, _), staging in zip(jobs, staged)]
    finally:
        for staging in staged:
            output.discard(staging)  # nothing is left of a folder that was not committed


def _render(item: tuple[Result, str, Path]) -> None:
    """Draw one figure of a result and save it as PNG and SVG (in a worker process or here)."""
    from sqrtdk import plots

    result, name, staging = item
    figure = result.figures()[name]()
    plots.save(figure, staging / f"{name}.png")
    plots.save(figure, staging / f"{name}.svg")


def _with_coords(rows: list[dict], task: Mapping[str, Any], coords: Sequence[Any]) -> list[dict]:
    """Rows led by the task's values of the varying axes that the rows do not carry already."""
    lead = {schema.column(f): task[f.name] for f in coords}
    return [{**{k: v for k, v in lead.items() if k not in row}, **row} for row in rows]


def experiment_spec(experiment: str, label: str = "experiment") -> Experiment:
    if experiment not in EXPERIMENTS:
        raise InputError(f"{label}: {schema.show(experiment)} is not allowed; choose from "
                         f"{', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[experiment]


def parse(experiment: str, raw: Mapping[str, Any], label: Callable[[str], str] = schema.option_name,
          text: bool = True, base: Any = None) -> Any:
    """Typed, validated parameters of `experiment` from raw values (command-line text, or typed values)."""
    return schema.build(experiment_spec(experiment).schema, raw, label, text=text, base=base)


def run_many(jobs: Sequence[tuple[str, Any]], workers: int | None = None, scheduler: str | None = None,
             progress: Callable[[int, int], None] | None = None, figures: bool = True,
             limits: tuple[float | None, float | None] = (None, None)) -> list[Result]:
    """Run several (experiment, params) jobs as one pool of tasks, so that workers stay busy across them.

    `figures=False` skips what only the figures need (the histograms): the rows are the same. A run whose
    estimated memory or time exceeds `limits` (GiB, minutes; resources.py) is refused before any work.
    """
    from sqrtdk import executors, resources

    grids = [schema.grid(params) for _, params in jobs]
    items = [(name, task, figures) for (name, _), tasks in zip(jobs, grids) for task in tasks]
    at_once = 1 if scheduler else max(1, min(executors.cores() if workers is None else workers, len(items)))
    resources.check([(name, tasks) for (name, _), tasks in zip(jobs, grids)], at_once,
                    max(1, executors.cores() // at_once), *limits)
    outputs = executors.run_all(run_task, items, workers, scheduler, progress, cost=_task_cost)
    results, start = [], 0
    for (name, params), tasks in zip(jobs, grids):
        results.append(Result(name, params, tasks, outputs[start:start + len(tasks)]))
        start += len(tasks)
    return results


def run_params(experiment: str, params: Any, progress: Callable[[int, int], None] | None = None,
               workers: int | None = None, scheduler: str | None = None, figures: bool = True,
               limits: tuple[float | None, float | None] = (None, None)) -> Result:
    """Run every task of `experiment` for validated `params`; rows come in grid order."""
    return run_many([(experiment, params)], workers, scheduler, progress, figures, limits)[0]


def run(experiment: str, workers: int | None = 1, scheduler: str | None = None, **params: Any) -> Result:
    """Run `experiment` ("variance", "saturation", "gradient", "check") with keyword parameters.

    Any parameter may be a list (a grid axis). `workers` local processes (None: all cores) or a Dask
    `scheduler` address run the tasks; the rows are the same whichever runs them.
    """
    experiment_spec(experiment)
    return run_params(experiment, parse(experiment, params, label=lambda k: k, text=False),
                      workers=workers, scheduler=scheduler)


def run_config(path: str | Path, workers: int | None = 1, scheduler: str | None = None,
               **overrides: Any) -> Result:
    """Run the config at `path` (see config.py), with keyword overrides of its parameters."""
    from sqrtdk import config

    loaded = config.load(path, overrides, text=False)
    return run_params(loaded.experiment, loaded.params, workers=workers, scheduler=scheduler)
