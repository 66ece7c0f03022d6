"""`Result`: the rows and figures of one run of an experiment over its grid of tasks, and its files."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqrtdk import executors, output, schema
from sqrtdk.plots import SHOWN, Look

if TYPE_CHECKING:
    import pandas

    from sqrtdk.experiments import Experiment


@dataclass
class Result:
    """Rows and figures of one run of an experiment over its grid of tasks."""

    spec: Experiment = field(repr=False)
    params: Any = field(repr=False)  # the validated schema instance
    tasks: list[dict] = field(repr=False)  # one dict of scalar parameters per task, in grid order
    outputs: list[Any] = field(repr=False)  # per-task measurements, in task order
    rows: list[dict] = field(default_factory=list)
    title: str = field(default="", repr=False)  # a config's claim: the headline of its figures

    def __post_init__(self) -> None:
        if not self.rows:
            coords = schema.varying(self.params)
            self.rows = [
                row
                for task, out in zip(self.tasks, self.outputs)
                for row in _with_coords(self.spec.rows(task, out), task, coords)
            ]

    @property
    def experiment(self) -> str:
        return self.spec.name

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
            if (
                f.name in varying
                or f.name in ("samples", "seed")
                or not f.metadata["axis"]
                or len(values) != 1
                or getattr(self.params, f.name) == f.default
            ):
                continue
            value, name = values.pop(), self._shown(f.name)
            parts.append(f"{name} = {value:g}" if isinstance(value, float) else f"{name} = {value}")
        return ", ".join(parts)

    def _shown(self, name: str) -> str:
        """A parameter by the name a reader knows: n for seq_len, d_k or d_model for dim."""
        if name == "dim":
            return "d_model" if any(t.get("inputs") == "projected" for t in self.tasks) else "d_k"
        return SHOWN.get(name, name)

    def label(self, task: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
        """'std = 2, seed = 1': the task's values of the varying axes, for titles and legends."""
        return ", ".join(
            f"{self._shown(f.name)} = {task[f.name]:g}"
            if isinstance(task[f.name], float)
            else f"{self._shown(f.name)} = {task[f.name]}"
            for f in schema.varying(self.params)
            if f.name not in skip
        )

    def suffix(self, task: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
        """'_std2_seed1': the same for file names."""
        return "".join(
            f"_{f.name}{task[f.name]:g}" if isinstance(task[f.name], float) else f"_{f.name}{task[f.name]}"
            for f in schema.varying(self.params)
            if f.name not in skip
        )

    def like_first(self, free: Sequence[str]) -> list[int]:
        """The tasks (indices) whose parameters other than `free` are the first task's: one setting of
        the others, for a figure that draws along `free`."""
        first = self.tasks[0] if self.tasks else {}
        return [i for i, t in enumerate(self.tasks) if all(t[k] == v for k, v in first.items() if k not in free)]

    def level(self, row: Mapping[str, Any], name: str) -> Any:
        """A parameter's value for `row`: its column when the parameter varies, else the one value it has."""
        return row[name] if name in row else self.tasks[0][name]

    def figures(self) -> dict[str, Callable[[], Any]]:
        """Figure name -> function that draws it (a matplotlib Figure), headed by the title where there
        is one (plots.headline)."""
        figures = self.spec.figures(self)
        if not self.title:
            return figures
        return {name: functools.partial(_headed, draw, self.title) for name, draw in figures.items()}

    def folder_name(self, stem: str | None = None) -> str:
        return folder_name(self.experiment, self.params, stem)

    def document(self, files: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "version": output.version(),
            "config": self.config,
            "rows": self.rows,
            **(self.spec.across(self) if self.spec.across else {}),
            "files": list(files),
        }

    def to_json(self, files: Sequence[str] = ()) -> str:
        return output.to_json(self.document(files))

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a tidy pandas DataFrame: one observation per row (a row of rows.csv) and one variable
        per column, the columns of rows.csv in their order, so that what tells the observations apart
        (the parameters that vary, d_k, the rule) comes first and the measurements follow, each with its
        standard error (`_se`), interval and theory. Whole numbers are int64 (Int64 where one is
        missing), real numbers float64 with NaN wherever rows.csv leaves a cell empty (a missing value,
        NaN or an infinity), flags bool, text pandas' own text type.

        Needs pandas, an optional extra: `pip install 'sqrtdk[pandas]'`."""
        try:
            import pandas
        except ImportError:
            raise ModuleNotFoundError(
                "Result.to_pandas() needs pandas, which is not installed; "
                "install the extra: pip install 'sqrtdk[pandas]'",
                name="pandas",
            ) from None
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        values = {c: [output.clean(row.get(c)) for row in self.rows] for c in columns}
        return pandas.DataFrame({c: pandas.Series(v, dtype=_dtype(v)) for c, v in values.items()}, columns=columns)

    def histograms(self) -> list[dict]:
        """The histogram counts behind the figures, one entry per task that has them (task index, the
        counts per bin and the scores outside the bins): the figures' data, kept beside the tables."""
        out = []
        for i, sample in enumerate(self.outputs):
            held = self.spec.histogram(sample) if self.spec.histogram else None
            if held is not None:
                out.append({"task": i, "counts": list(held[0]), "outside": int(held[1])})
        return out

    def curves(self) -> list[dict]:
        """The logged curves behind the figures, one entry per task that has them (task index, curves):
        the figures' data, kept beside the tables."""
        if self.spec.curves is None:
            return []
        return [{"task": i, "curves": self.spec.curves(out)} for i, out in enumerate(self.outputs)]

    def with_values(
        self,
        rows: list[dict],
        histograms: Sequence[Mapping[str, Any]] | None,
        curves: Sequence[Mapping[str, Any]] | None = None,
    ) -> Result:
        """The same result with other values of its rows, histogram counts and curves (reproduce keeps
        the committed ones where they agree with a fresh run)."""
        outputs = list(self.outputs)
        for h in histograms or ():
            if self.spec.with_histogram is not None:
                outputs[h["task"]] = self.spec.with_histogram(outputs[h["task"]], h["counts"], h["outside"])
        for c in curves or ():
            if self.spec.with_curves is not None:
                outputs[c["task"]] = self.spec.with_curves(outputs[c["task"]], c["curves"])
        return dataclasses.replace(self, outputs=outputs, rows=[dict(r) for r in rows])

    def write(
        self,
        out: str | Path,
        plot: bool = True,
        folder: str | None = None,
        manifest: Mapping[str, Any] | None = None,
        workers: int | None = 1,
        look: Look | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Write tables, config, manifest and (with `plot`) figures into out/<folder>, atomically; the
        figures in `look`'s style and formats (default: paper, PNG and SVG). `progress(done, total)` is
        told of each figure drawn (first with none drawn)."""
        target = Path(out) / (folder or self.folder_name())
        return write_all([(self, target, manifest)], plot, workers, progress, look=look)[0]

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


def folder_name(experiment: str, params: Any, stem: str | None = None) -> str:
    """'<stem or experiment>-<hash of the resolved parameters>': where an ad-hoc run of `params` goes."""
    return f"{stem or experiment}-{output.config_hash(experiment, schema.resolved(params))}"


def _dtype(values: Sequence[Any]) -> str | None:
    """The pandas dtype of a column's values; None leaves text (and anything else) to pandas."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    missing = len(present) < len(values)
    if kinds == {bool}:
        return "boolean" if missing else "bool"
    if kinds == {int}:
        return "Int64" if missing else "int64"
    if kinds <= {int, float}:  # an empty column is a number that has no value in any row (a theory)
        return "float64"
    return None


def _with_coords(rows: list[dict], task: Mapping[str, Any], coords: Sequence[Any]) -> list[dict]:
    """Rows led by the task's values of the varying axes that the rows do not carry already."""
    lead = {schema.column(f): task[f.name] for f in coords}
    return [{**{k: v for k, v in lead.items() if k not in row}, **row} for row in rows]


def write_all(
    jobs: Sequence[tuple[Result, Path, Mapping[str, Any] | None]],
    plot: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    unchanged: str = "replace",
    look: Look | None = None,
) -> list[list[str]]:
    """Write each (result, folder, manifest): tables first, then every figure of every result drawn by
    `workers` processes at once; each folder appears whole or not at all. Returns each folder's files
    (with `unchanged="keep"`, for folders that reproduce owns, a folder whose files would come out
    identical is left untouched and returns none, and any other is replaced whole; otherwise an earlier
    folder's files that this run does not write are kept)."""
    staged: list[Path] = []
    try:
        for result, folder, manifest in jobs:
            staged.append(output.stage(folder))
            for name, text in result.tables(manifest).items():
                (staged[-1] / name).write_text(text, encoding="utf-8")
            histograms = result.histograms() if plot else []
            if histograms:  # the data of the histogram figures, beside them
                (staged[-1] / "histograms.json").write_text(output.to_json(histograms), encoding="utf-8")
            for stem, arrays in (result.spec.arrays(result) if result.spec.arrays else {}).items():
                output.write_arrays(staged[-1] / f"{stem}.npz", arrays)
            curves = result.curves() if plot else []
            if curves:  # the data of the curve figures, beside them
                (staged[-1] / "curves.json").write_text(output.to_json(curves), encoding="utf-8")
        if plot:
            figures = [
                (result, name, staging, look or Look())
                for (result, _, _), staging in zip(jobs, staged)
                for name in result.figures()
            ]
            if progress and figures:
                progress(0, len(figures))
            executors.run_all(_render, figures, workers, progress=progress)
        if unchanged == "keep":  # canonical folders: untouched when identical, otherwise replaced whole
            return [
                [] if output.same_folder(staging, folder) else output.commit(staging, folder)
                for (_, folder, _), staging in zip(jobs, staged)
            ]
        return [output.commit(staging, folder, keep_earlier=True) for (_, folder, _), staging in zip(jobs, staged)]
    finally:
        for staging in staged:
            output.discard(staging)  # nothing is left of a folder that was not committed


def _headed(draw: Callable[[], Any], title: str) -> Any:
    from sqrtdk import plots

    fig = draw()
    plots.headline(fig, title)
    return fig


def _render(item: tuple[Result, str, Path, Look]) -> None:
    """Draw one figure of a result and save it in each format of its look (in a worker process or here)."""
    from sqrtdk import plots

    result, name, staging, look = item
    plots.use(look)
    figure = result.figures()[name]()
    for suffix in look.formats:
        plots.save(figure, staging / f"{name}.{suffix}")
