"""The Python API: `run(experiment, **params)` returns a `Result` with rows, figures and writers.

    >>> import sqrtdk
    >>> result = sqrtdk.run("variance", dim=[16, 64], seed=0)
    >>> result.rows[1]["variance"]          # scaled variance at d_k = 16
    >>> result.write("results")             # tables, manifest and figures in results/variance-<hash>/

Every experiment is a list of independent tasks, each a pure function of its parameters and its spawned
seed; the command line, the configs and the study scripts all go through `run`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqrtdk import output, schema


@dataclass(frozen=True)
class Experiment:
    """How one experiment turns its parameters into tasks, rows and figures."""
    name: str
    schema: type
    tasks: Callable[[Any], list[dict]]                 # params -> task parameters
    run_task: Callable[..., Any]                       # task parameters -> task output
    rows: Callable[[Any, Sequence[Any]], list[dict]]   # params, task outputs -> rows
    figures: Callable[[Any, Sequence[Any], Sequence[dict]], dict[str, Callable[[], Any]]]


def _variance_tasks(p: Any) -> list[dict]:
    return [{"d_k": d, "samples": p.samples, "mean": p.mean, "std": p.std, "seed": p.seed} for d in p.dim]


def _variance_run(**task: Any) -> Any:
    from sqrtdk.variance import sample_scores

    return sample_scores(**task)


def _variance_rows(p: Any, samples: Sequence[Any]) -> list[dict]:
    from sqrtdk.variance import variance_rows

    return [row for s in samples for row in variance_rows(s, p.mean, p.std)]


def _variance_figures(p: Any, samples: Sequence[Any], rows: Sequence[dict]) -> dict[str, Callable[[], Any]]:
    from sqrtdk import plots

    figures = {f"histogram_dk{s.d_k}": (lambda s=s: plots.histogram_figure(s, p.mean, p.std)) for s in samples}
    if len(samples) > 1:
        figures["variance_vs_dk"] = lambda: plots.variance_figure(rows)
    return figures


def _check_rows(p: Any, samples: Sequence[Any]) -> list[dict]:
    from sqrtdk.variance import variance_rows

    rows = []
    for s in samples:
        row = next(r for r in variance_rows(s, p.mean, p.std) if r["scaling"] == "sqrt")
        passed = bool(1 - p.tol <= row["variance_ci_low"] and row["variance_ci_high"] <= 1 + p.tol)
        rows.append({"d_k": s.d_k, "n_scores": s.n_scores, "variance": row["variance"],
                     "variance_ci_low": row["variance_ci_low"], "variance_ci_high": row["variance_ci_high"],
                     "allowed_low": 1 - p.tol, "allowed_high": 1 + p.tol, "passed": passed})
    return rows


def _attention(kind: str, level_key: str) -> Experiment:
    def tasks(p: Any) -> list[dict]:
        return [{"kind": kind, "d_k": d, "seq_len": n, "samples": p.samples, "mean": p.mean, "std": p.std,
                 "seed": p.seed, "level": getattr(p, level_key)} for d in p.dim for n in p.seq_len]

    def run_task(**task: Any) -> Any:
        from sqrtdk.attention import sample_rows

        return sample_rows(**task)

    def rows(p: Any, samples: Sequence[Any]) -> list[dict]:
        from sqrtdk.attention import attention_rows

        return [row for s in samples for row in attention_rows(s, p.mean, p.std)]

    def figures(p: Any, samples: Sequence[Any], rows: Sequence[dict]) -> dict[str, Callable[[], Any]]:
        from sqrtdk import attention, plots

        metrics = attention.SATURATION if kind == "saturation" else attention.GRADIENT
        title = ("Softmax saturation" if kind == "saturation" else "Softmax Jacobian and gradients")
        return {f"{kind}_vs_dk": lambda: plots.metric_grid(rows, metrics, title, p.mean, p.std)}

    return Experiment(kind, schema.SaturationParams if kind == "saturation" else schema.GradientParams,
                      tasks, run_task, rows, figures)


EXPERIMENTS = {
    "variance": Experiment("variance", schema.VarianceParams, _variance_tasks, _variance_run,
                           _variance_rows, _variance_figures),
    "check": Experiment("check", schema.CheckParams, _variance_tasks, _variance_run, _check_rows,
                        lambda p, s, r: {}),
    "saturation": _attention("saturation", "threshold"),
    "gradient": _attention("gradient", "eps"),
}


@dataclass
class Result:
    """Rows and figures of one run of an experiment."""
    experiment: str
    config: dict[str, Any]                  # resolved parameters, JSON-ready
    rows: list[dict]
    outputs: list[Any] = field(repr=False)  # per-task measurements, in task order
    params: Any = field(repr=False)

    def figures(self) -> dict[str, Callable[[], Any]]:
        """Figure name -> function that draws it (a matplotlib Figure)."""
        spec = EXPERIMENTS[self.experiment]
        return spec.figures(self.params, self.outputs, self.rows)

    def folder_name(self) -> str:
        return f"{self.experiment}-{output.config_hash(self.experiment, self.config)}"

    def document(self, files: Sequence[str] = ()) -> dict[str, Any]:
        from sqrtdk import __version__

        return {"experiment": self.experiment, "version": __version__, "config": self.config,
                "rows": self.rows, "files": list(files)}

    def to_json(self, files: Sequence[str] = ()) -> str:
        return output.to_json(self.document(files))

    def write(self, out: str | Path, plot: bool = True, folder: str | None = None) -> list[str]:
        """Write tables, manifest and (with `plot`) figures into out/<folder>, atomically."""
        writers = {
            "rows.csv": output.text_writer(output.to_csv(self.rows)),
            "rows.md": output.text_writer(output.to_markdown(self.rows)),
            "rows.json": output.text_writer(output.to_json(self.rows)),
            "manifest.json": output.text_writer(output.to_json(output.manifest(self.experiment, self.config))),
        }
        if plot:
            for name, draw in self.figures().items():
                figure = _Lazy(draw)
                writers[name + ".png"] = figure.save
                writers[name + ".svg"] = figure.save
        return output.write_run(Path(out) / (folder or self.folder_name()), writers)


class _Lazy:
    """A figure drawn once, on first save, and saved in the format its path names."""

    def __init__(self, draw: Callable[[], Any]):
        self.draw, self.figure = draw, None

    def save(self, path: Path) -> None:
        from sqrtdk import plots

        if self.figure is None:
            self.figure = self.draw()
        plots.save(self.figure, path)


def parse(experiment: str, raw: Mapping[str, Any], label: Callable[[str], str] = schema.option_name) -> Any:
    """Typed, validated parameters of `experiment` from raw values (strings, numbers or lists)."""
    return schema.build(EXPERIMENTS[experiment].schema, raw, label)


def run_params(experiment: str, params: Any, progress: Callable[[int, int], None] | None = None) -> Result:
    """Run every task of `experiment` for validated `params`, in task order."""
    spec = EXPERIMENTS[experiment]
    tasks = spec.tasks(params)
    outputs = []
    for i, task in enumerate(tasks):
        outputs.append(spec.run_task(**task))
        if progress:
            progress(i + 1, len(tasks))
    return Result(experiment, schema.resolved(params), spec.rows(params, outputs), outputs, params)


def run(experiment: str, **params: Any) -> Result:
    """Run `experiment` ("variance", "check", "saturation", "gradient") with keyword parameters; lists where the schema sweeps."""
    if experiment not in EXPERIMENTS:
        from sqrtdk.errors import InputError

        raise InputError(f"experiment: {experiment!r} is not allowed; choose from {', '.join(EXPERIMENTS)}")
    return run_params(experiment, parse(experiment, params, label=lambda k: k))
