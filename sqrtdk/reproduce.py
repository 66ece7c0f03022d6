"""`sqrtdk reproduce`: every config in configs/ run into results/<config name>/, and the generated report.

The canonical folders are pure functions of the configs and the code: their manifests name the config
file instead of a git commit, figures carry no dates, and the tables are byte-identical from run to run.
`check` regenerates the tables into a temporary folder and compares them with the committed ones.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqrtdk import api, output, report
from sqrtdk.config import Config

TABLES = ("rows.csv", "rows.md", "rows.json", "config.toml")
MARKER = "config_file"  # a manifest key that only canonical folders have

# Two regenerations on the same machine are byte-identical. Across machines, the float32 products come
# from BLAS kernels chosen for the CPU (AVX2, AVX-512, ...), whose different summation orders move the
# pooled statistics by about 1e-6 relative (measured: at most 5.5e-6, on standard errors, between the
# SkylakeX, Haswell and Prescott kernels). A number therefore matches when it is within REL_TOL of the
# committed one, 20 times that spread and still 10 times below the smallest relative standard error any
# table reports (about 1.5e-3, the variance at 2^21 scores), or, for a number printed to a few digits,
# when it is one unit of its last digit away (a rounding that fell the other way). Whole numbers (counts,
# d_k, n) and all text must match exactly.
REL_TOL = 1e-4
NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def run(configs: Sequence[Config], workers: int | None = None, scheduler: str | None = None,
        progress: Callable[[int, int], None] | None = None, figures: bool = True,
        limits: tuple[float | None, float | None] = (None, None)) -> list[api.Result]:
    """Every config's result, its tasks all run as one pool (`figures=False`: tables only)."""
    return api.run_many([(c.experiment, c.params) for c in configs], workers, scheduler, progress, figures, limits)


def write(configs: Sequence[Config], results: Sequence[api.Result], out: Path, plot: bool = True,
          shown_at: Path | None = None, workers: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Write out/<config name>/ for each config and out/README.md; drop canonical folders of removed configs.

    `shown_at` is where the report will be read from (links to the configs are relative to it).
    """
    shown_at = shown_at or out
    jobs = []
    for config, result in zip(configs, results):
        where = Path(os.path.relpath(config.path.resolve(), shown_at.resolve())).as_posix()
        jobs.append((result, out / config.name, {MARKER: where, "title": config.title}))
    files = [f for folder in api.write_all(jobs, plot, workers, progress) for f in folder]
    names = {c.name for c in configs}
    for stale in canonical_folders(out):
        if stale.name not in names:
            output.remove_folder(stale)
    text = report.render(configs, results, shown_at)
    files.append(output.write_text_atomic(out / "README.md", text))
    return files


def canonical_folders(out: Path) -> list[Path]:
    """Folders in `out` that reproduce wrote (their manifest names a config file)."""
    found = []
    for manifest in sorted(out.glob("*/manifest.json")):
        try:
            if MARKER in json.loads(manifest.read_text(encoding="utf-8")):
                found.append(manifest.parent)
        except (OSError, ValueError):
            continue
    return found


def check(configs: Sequence[Config], results: Sequence[api.Result], committed: Path) -> list[str]:
    """Files of `committed` that differ from a fresh regeneration, each with its first difference."""
    with tempfile.TemporaryDirectory(prefix="sqrtdk-check-") as tmp:
        fresh = Path(tmp)
        write(configs, results, fresh, plot=False, shown_at=committed)
        problems = []
        for config in configs:
            for name in TABLES + ("manifest.json",):
                problem = compare(fresh / config.name / name, committed / config.name / name)
                if problem:
                    problems.append(f"{committed / config.name / name}: {problem}")
        names = {c.name for c in configs}
        problems += [f"{folder}: no config makes this folder any more" for folder in canonical_folders(committed)
                     if folder.name not in names]
        problem = compare(fresh / "README.md", committed / "README.md")
        if problem:
            problems.append(f"{committed / 'README.md'}: {problem}")
    return problems


def compare(fresh: Path, committed: Path) -> str | None:
    """None when `committed` matches `fresh` (see REL_TOL), else the first difference."""
    if not committed.exists():
        return "missing"
    new, old = fresh.read_text(encoding="utf-8"), committed.read_text(encoding="utf-8")
    if fresh.name == "manifest.json":  # versions describe the machine that ran it, not the result
        new, old = (json.dumps({k: v for k, v in json.loads(t).items() if k != "versions"}, indent=1)
                    for t in (new, old))
    if new == old:
        return None
    new_lines, old_lines = new.splitlines(), old.splitlines()
    rounded = fresh.suffix == ".md"  # Markdown prints numbers to a few digits; CSV and JSON print them whole
    for number, (a, b) in enumerate(zip(new_lines, old_lines), start=1):
        if not same_line(a, b, rounded):
            return f"line {number} differs: committed {_clip(b)!r}, now {_clip(a)!r}"
    if len(new_lines) != len(old_lines):
        return f"{len(old_lines)} lines committed, {len(new_lines)} now"
    return None


def same_line(a: str, b: str, rounded: bool = False) -> bool:
    """Equal text, and numbers equal within REL_TOL or, where `rounded`, one unit in their last digit."""
    if a == b:
        return True
    if NUMBER.split(a) != NUMBER.split(b):
        return False
    return all(_same_number(x, y, rounded) for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)))


def _same_number(a: str, b: str, rounded: bool) -> bool:
    if a == b:
        return True
    if not any(c in a + b for c in ".eE"):
        return False  # whole numbers must match exactly
    x, y = float(a), float(b)
    allowed = REL_TOL * max(abs(x), abs(y))
    if rounded:
        allowed = max(allowed, (1 + 1e-9) * max(_last_digit(a), _last_digit(b)))
    return abs(x - y) <= allowed


def _last_digit(text: str) -> float:
    """The value of one unit in the last printed digit of a number written with a decimal point."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals) if "." in mantissa else 0.0


def _clip(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[:width] + "..."

