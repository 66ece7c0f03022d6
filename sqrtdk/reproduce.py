"""`sqrtdk reproduce`: every config in configs/ run into results/<config name>/, and the generated report.

The canonical folders are pure functions of the configs and the code: their manifests name the config
file instead of a git commit, figures carry no dates, and two regenerations on one machine are
byte-identical. Across machines they are not: the float32 products come from BLAS kernels chosen for the
CPU (AVX2, AVX-512, ...), whose summation orders move the pooled statistics by about 1e-6 relative
(measured: at most 5.5e-6, on standard errors, between the SkylakeX, Haswell and Prescott kernels), and a
number printed to five digits can then round the other way.

So staleness is judged on values, not text. The committed rows (rows.json) are compared with fresh ones
number by number (`same_value`): a number with a standard error in its row may move by SE_FRACTION of
it, a standard error by SE_REL_FLOOR of its size, any other number by REL_FLOOR of its size (100 times the
cross-CPU spread, and still below a tenth of the smallest relative standard error a table reports, about
1.5e-3); whole numbers, flags and text must be equal. The Markdown and CSV tables, and the report, must then be exactly what the committed rows
render to. Writing follows the same rule: where the fresh values agree with the committed ones, the
folder is rendered from the committed values (rows and histogram counts), so a rerun on another CPU
rewrites nothing; where they do not, from the fresh ones.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqrtdk import api, output, report, story, summary
from sqrtdk.config import Config
from sqrtdk.errors import InputError
from sqrtdk.result import Result, write_all

TABLES = ("rows.csv", "rows.md", "rows.json", "config.toml")
MARKER = "config_file"  # a manifest key that only canonical folders have
REL_FLOOR = 1e-4
SE_FRACTION = 0.1  # a number with a standard error: a tenth of it (a real change moves it by several)
# A standard error is itself uncertain by 1/sqrt(2 (R - 1)) of its size (9% with 64 replicates), and where
# a metric hardly varies (the entropy of a nearly uniform row) its replicates differ by little more than
# float32 rounding, which the BLAS kernel moves (8.8e-6 relative measured between kernels): standard errors
# may move by 1e-3 of their size, a hundred times less than their own uncertainty.
SE_REL_FLOOR = 1e-3
COUNT_FLOOR = 2  # histogram counts: scores that a rounding moved across a bin edge (plus REL_FLOOR)


def skipped(configs: Sequence[Config]) -> dict[str, str]:
    """Config name -> why it cannot run on this machine (its experiment's `available`: a package it needs
    is not installed). Such a config is skipped: its committed folder is kept and read, not rewritten."""
    from sqrtdk import experiments, schema

    out = {}
    for config in configs:
        spec = experiments.get(config.experiment)
        if spec.available is None:
            continue
        for task in schema.grid(config.params):
            why = spec.available(task)
            if why:
                out[config.name] = why
                break
    return out


def changed_since_written(configs: Sequence[Config], out: Path) -> list[Config]:
    """The configs whose committed folder in `out` was made from other parameters than the config file
    holds now (its config.toml differs): a report that paired such a folder's rows with the file's
    parameters would describe neither."""
    from sqrtdk.schema import resolved

    changed = []
    for config in configs:
        written = out / config.name / "config.toml"
        now = output.to_toml({"experiment": config.experiment, **resolved(config.params)})
        if written.is_file() and written.read_text(encoding="utf-8") != now:
            changed.append(config)
    return changed


def committed_result(config: Config, folder: Path) -> Result | None:
    """A skipped config's result as its committed folder holds it (rows, and the curves of a training
    run: enough for the report and for every figure not drawn from the samples themselves), or None when
    there is none."""
    from sqrtdk import experiments, schema

    rows = _read_json(folder / "rows.json")
    if not isinstance(rows, list) or not rows:
        return None
    tasks = schema.grid(config.params)
    result = Result(experiments.get(config.experiment), config.params, tasks, [None] * len(tasks), rows, config.title)
    return result.with_values(rows, None, _committed_curves(result, folder))


def _committed_curves(result: Result, folder: Path) -> list | None:
    """The curves committed in `folder` for `result`'s tasks (curves.json), or None where its experiment
    keeps none or the file does not hold one entry per task."""
    curves = _read_json(folder / "curves.json") if result.spec.curves else None
    return curves if isinstance(curves, list) and len(curves) == len(result.outputs) else None


def run(
    configs: Sequence[Config],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    figures: bool = True,
    limits: tuple[float | None, float | None] = (None, None),
) -> list[Result]:
    """Every config's result, its tasks all run as one pool (`figures=False`: tables only)."""
    return api.run_many([(c.experiment, c.params) for c in configs], workers, scheduler, progress, figures, limits)


# ---- values ----


def standard_error(row: dict, column: str) -> float | None:
    """The standard error that belongs to `column` of `row`: its `_se` column, or for an interval's end
    (`x_ci_low`, `x_ci_high`) that of x."""
    for suffix in ("_ci_low", "_ci_high"):
        if column.endswith(suffix):
            column = column[: -len(suffix)]
    se = row.get(column + "_se")
    return se if isinstance(se, float) and math.isfinite(se) else None


def allowance(committed: float, fresh: float, se: float | None = None, relative: float = REL_FLOOR) -> float:
    """How far a fresh float may lie from the committed one (see the module docstring)."""
    allowed = relative * max(abs(committed), abs(fresh))
    return max(allowed, SE_FRACTION * se) if se is not None else allowed


def same_value(committed: Any, fresh: Any, se: float | None = None, relative: float = REL_FLOOR) -> bool:
    """Whether a fresh value agrees with the committed one: floats within `allowance`, every other value
    (int, bool, str, None) equal and of the same type."""
    if isinstance(committed, float) and isinstance(fresh, float):
        return abs(committed - fresh) <= allowance(committed, fresh, se, relative)
    return type(committed) is type(fresh) and committed == fresh


def _json(value: Any) -> Any:
    """A value as it reads back from JSON (NaN and infinities as None, tuples as lists)."""
    return json.loads(output.to_json(value))


Agree = Callable[[Mapping[str, Any], Mapping[str, Any], str], "bool | None"]


def compare_rows(committed: list[dict], fresh: list[dict], agree: Agree | None = None) -> str | None:
    """None when the rows agree value by value, else the first difference (row, column, values).
    `agree` is the experiment's own judgement of a column where it has one (Experiment.agree)."""
    fresh = _json(fresh)
    if len(committed) != len(fresh):
        return f"{len(committed)} rows committed, {len(fresh)} now"
    for number, (old, new) in enumerate(zip(committed, fresh), start=1):
        if list(old) != list(new):
            return f"row {number}: columns committed {list(old)}, now {list(new)}"
        for column, value in old.items():
            judged = agree(old, new, column) if agree is not None else None
            if judged is not None:
                if not judged:
                    return (
                        f"row {number}, column {column!r}: committed {value!r}, now {new[column]!r} "
                        "(beyond the spread over seeds)"
                    )
                continue
            se = standard_error(old, column)
            relative = SE_REL_FLOOR if column.endswith("_se") else REL_FLOOR
            if not same_value(value, new[column], se, relative):
                allowed = (
                    f" (allowed: ±{allowance(value, new[column], se, relative):.3g})"
                    if isinstance(value, float) and isinstance(new[column], float)
                    else ""
                )
                return f"row {number}, column {column!r}: committed {value!r}, now {new[column]!r}{allowed}"
    return None


def compare_histograms(committed: list[dict], fresh: list[dict]) -> str | None:
    """None when every histogram's counts agree within COUNT_FLOOR + REL_FLOOR of each count."""
    if [h["task"] for h in committed] != [h["task"] for h in fresh]:
        return "histograms of other tasks"
    for old, new in zip(committed, fresh):
        if len(old["counts"]) != len(new["counts"]):
            return f"task {old['task']}: {len(old['counts'])} bins committed, {len(new['counts'])} now"
        pairs = list(zip(old["counts"], new["counts"])) + [(old["outside"], new["outside"])]
        for a, b in pairs:
            if abs(a - b) > COUNT_FLOOR + REL_FLOOR * max(a, b):
                return f"task {old['task']}: a bin holds {a} scores committed, {b} now"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def settle(result: Result, committed: Path) -> Result:
    """`result` with the committed values in place of the fresh ones where the two agree (rows and, when
    both have them, histogram counts); the fresh result otherwise."""
    rows = _read_json(committed / "rows.json")
    if not isinstance(rows, list) or compare_rows(rows, result.rows, result.spec.agree) is not None:
        return result
    curves = _committed_curves(result, committed)
    fresh, histograms = result.histograms(), _read_json(committed / "histograms.json")
    if fresh and histograms is not None:
        if compare_histograms(histograms, fresh) is not None:
            return result
        return result.with_values(rows, histograms, curves)
    return result.with_values(rows, None, curves)


# ---- writing ----


def write(
    configs: Sequence[Config],
    results: Sequence[Result],
    out: Path,
    plot: bool = True,
    shown_at: Path | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    skip: Mapping[str, str] | None = None,
) -> list[str]:
    """Write out/<config name>/ for each config and the report (out/README.md, out/details.md); drop canonical folders of removed configs.

    Values that agree with those already in `out` are kept (see `settle`), and a folder or report whose
    files come out identical is left untouched. Returns the paths written. `shown_at` is where the report
    will be read from (links to the configs are relative to it). `results` holds one result per config
    not in `skip` (skipped configs keep their committed folders, which the report reads).
    """
    shown_at = shown_at or out
    with output.locked(out):  # a second reproduce into the same folder waits for this one
        output.sweep(out)
        return _write(configs, results, out, plot, shown_at, workers, progress, skip or {})


RESERVED = ("runs", "studies", story.FOLDER)  # ad-hoc runs and study scripts write there; the story figure


def check_names(configs: Sequence[Config]) -> None:
    """Refuse, before any work, a config whose name cannot be its results folder beside the others: the
    report's name, a hidden name (sqrtdk stages unfinished folders as .name.sqrtdk-partial-PID, and . and
    .. name folders that exist), the folders of ad-hoc runs and studies, or two names that one folder
    would serve on a file system that ignores case (macOS's and Windows' by default)."""
    seen: dict[str, Config] = {}
    for config in configs:
        name, why = config.name, None
        if name.casefold() in (page.casefold() for page in report.PAGES):
            why = f"its results folder would be the report's page <out>/{name}"
        elif name.startswith("."):
            why = "its results folder would be hidden, where sqrtdk keeps unfinished folders (or be . or ..)"
        elif name.casefold() in RESERVED:
            who = {"runs": "ad-hoc runs write", "studies": "study scripts write"}.get(
                name.casefold(), "reproduce draws"
            )
            why = f"{who} into results/{name.casefold()}/ by default, its folder under the default --out"
        elif name.casefold() in seen:
            other = seen[name.casefold()]
            why = f"it differs from {other.path} only in case, and both would have one results folder"
        if why:
            raise InputError(f"{config.path}: the config name {name!r} is not allowed; {why}: rename the config")
        seen[name.casefold()] = config


def check_targets(configs: Sequence[Config], out: Path) -> None:
    """Refuse, before any work, to write where something that sqrtdk did not make would be replaced: a
    config's results folder, or a README.md or details.md that is not a page of its report."""
    for config in configs:
        target = out / config.name
        if not output.replaceable(target):
            raise InputError(
                f"{config.path}: this config's results folder {str(target)!r} exists and sqrtdk "
                "did not make it; rename the config or move that folder away"
            )
    for page in report.PAGES:
        path = out / page
        if (path.exists() or path.is_symlink()) and not (path.is_file() and report.is_report(path)):
            raise InputError(
                f"--out: {str(out)!r} is not allowed; its {page} is not a report sqrtdk wrote, "
                "and reproduce would replace it"
            )


def _write(
    configs: Sequence[Config],
    results: Sequence[Result],
    out: Path,
    plot: bool,
    shown_at: Path,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    skip: Mapping[str, str],
) -> list[str]:
    check_targets(configs, out)  # again under the lock: something may have appeared meanwhile
    owned = {folder.name for folder in canonical_folders(out)}
    ran = [c for c in configs if c.name not in skip]
    settled = {
        config.name: dataclasses.replace(
            settle(result, out / config.name) if config.name in owned else result, title=config.title
        )
        for config, result in zip(ran, results)
    }
    jobs = []
    for config in ran:
        where = Path(os.path.relpath(config.path.resolve(), shown_at.resolve())).as_posix()
        jobs.append((settled[config.name], out / config.name, {MARKER: where, "title": config.title}))
    files = [f for folder in write_all(jobs, plot, workers, progress, unchanged="keep") for f in folder]
    for stale in orphans(out, {c.name for c in configs}):
        output.remove_folder(stale)
    shown = _with_committed(configs, settled, out)
    for page, text in _pages(shown, shown_at).items():
        path = out / page
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            files.append(output.write_text_atomic(path, text))
    # the story figure is drawn from the rows of four configs: again when one of them was written
    cited = [str(out / name) + os.sep for name in story.SOURCES.values()]
    if plot and (any(f.startswith(tuple(cited)) for f in files) or not (out / story.FOLDER / "story.png").exists()):
        files += story.write(out)
    return files


def _pages(shown: Sequence[tuple[Config, Result]], shown_at: Path) -> dict[str, str]:
    """The report's pages, README.md with its summary and details.md, for the configs and results `shown`."""
    configs, results = [c for c, _ in shown], [r for _, r in shown]
    return report.pages(configs, results, shown_at, summary.markdown(configs, results))


def _with_committed(configs: Sequence[Config], results: Mapping[str, Result], out: Path) -> list[tuple[Config, Result]]:
    """Each config with its result, a skipped one with its committed rows (left out when it has none)."""
    shown = []
    for config in configs:
        result = results.get(config.name) or committed_result(config, out / config.name)
        if result is not None:
            shown.append((config, result))
    return shown


def canonical_folders(out: Path) -> list[Path]:
    """Folders in `out` that reproduce wrote (their manifest names a config file)."""
    found = []
    for folder in sorted(out.iterdir()) if out.is_dir() else []:
        if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
            continue  # staging folders, links and files are not results
        manifest = output.read_manifest(folder)
        if manifest is not None and MARKER in manifest and output.made_by_sqrtdk(folder):
            found.append(folder)
    return found


def orphans(out: Path, names: set[str]) -> list[Path]:
    """Canonical folders in `out` whose config no longer exists: those reproduce removes. A copy of a
    canonical folder under another name (a backup) still names an existing config and is kept."""
    gone = []
    for folder in canonical_folders(out):
        if folder.name in names:
            continue
        manifest = output.read_manifest(folder) or {}
        where = (out / str(manifest.get(MARKER, ""))).resolve()
        if not where.is_file():
            gone.append(folder)
    return gone


# ---- the staleness check ----


def check(
    configs: Sequence[Config], results: Sequence[Result], committed: Path, skip: Mapping[str, str] | None = None
) -> list[str]:
    """Problems with `committed` against a fresh regeneration, one line each (file, then what differs).
    Configs in `skip` are not compared (the report is, with their committed rows)."""
    problems = []
    settled = {}
    ran = [c for c in configs if c.name not in (skip or {})]
    for config, result in zip(ran, results):
        folder = committed / config.name
        rows = _read_json(folder / "rows.json")
        if not isinstance(rows, list):
            problems.append(f"{folder / 'rows.json'}: missing or not a JSON list of rows")
            settled[config.name] = result
            continue
        problem = compare_rows(rows, result.rows, result.spec.agree)
        if problem:
            problems.append(f"{folder / 'rows.json'}: {problem}")
            settled[config.name] = result
            continue
        kept = result.with_values(rows, None)
        settled[config.name] = kept
        where = Path(os.path.relpath(config.path.resolve(), committed.resolve())).as_posix()
        tables = kept.tables({MARKER: where, "title": config.title})
        for name in TABLES + ("manifest.json",):
            problem = compare_text(tables[name], folder / name)
            if problem:
                what = "not what rows.json renders to" if name in ("rows.csv", "rows.md") else "differs"
                problems.append(f"{folder / name}: {what}: {problem}")
        for figure in kept.figures():
            for suffix in (".png", ".svg"):
                if not (folder / (figure + suffix)).is_file():
                    problems.append(f"{folder / (figure + suffix)}: missing")
    names = {c.name for c in configs}
    problems += [f"{folder}: no config makes this folder any more" for folder in orphans(committed, names)]
    shown = _with_committed(configs, settled, committed)
    for page, text in _pages(shown, committed).items():
        problem = compare_text(text, committed / page)
        if problem:
            problems.append(f"{committed / page}: differs: {problem}")
    return problems


def compare_text(fresh: str, committed: Path) -> str | None:
    """None when the file `committed` holds exactly `fresh` (manifests: apart from the versions), else
    the first line that differs."""
    if not committed.exists():
        return "missing"
    old = committed.read_text(encoding="utf-8")
    if committed.name == "manifest.json":
        fresh, old = output.without_versions(fresh), output.without_versions(old)
    if fresh == old:
        return None
    new_lines, old_lines = fresh.splitlines(), old.splitlines()
    for number, (a, b) in enumerate(zip(new_lines, old_lines), start=1):
        if a != b:
            return f"line {number}: committed {_clip(b)!r}, now {_clip(a)!r}"
    return f"{len(old_lines)} lines committed, {len(new_lines)} now"


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[:width] + "..."
