"""Run folders: tables (CSV, Markdown, JSON), a manifest and figures, written atomically.

A run writes into a hidden temporary folder beside its target and renames it into place only when every
file is complete, so a failed or interrupted run leaves no half-written folder and an earlier folder of the
same name is replaced whole or not at all.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqrtdk.errors import InputError


def config_hash(experiment: str, config: Mapping[str, Any]) -> str:
    """Short hash of the resolved config: runs with different parameters get different folders."""
    text = json.dumps({"experiment": experiment, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def check_writable(out: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that is a file or cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{option}: {str(out)!r} is not allowed; it is a file, and a folder is needed")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{option}: {str(out)!r} is not allowed; {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{option}: {str(out)!r} is not allowed; {str(probe)!r} is not writable")


def clean(value: Any) -> Any:
    """JSON-safe value: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_json(document: Any) -> str:
    return json.dumps(clean(document), indent=2, allow_nan=False) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in clean(list(rows)):  # NaN and infinities empty, as in JSON
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                         for k, v in row.items()})
    return buffer.getvalue()


def fmt(value: Any) -> str:
    """A number as a reader wants it in a table: 5 significant digits, empty when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str]:
    """Versions of the packages that made the numbers and figures (read from metadata, nothing imported)."""
    from importlib.metadata import version

    from sqrtdk import __version__

    return {"sqrtdk": __version__, "python": platform.python_version(),
            **{name: version(name) for name in ("numpy", "scipy", "matplotlib")}}


def git_state() -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout sqrtdk runs from, or None outside a checkout."""
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def manifest(experiment: str, config: Mapping[str, Any], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What a run folder says about how it was made: config, seed, versions and where it came from."""
    return {"experiment": experiment, "config": dict(config), "seed": config.get("seed"),
            **provenance, "versions": versions()}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # finite floats print as valid TOML (1e-06, 0.5, 1e+16)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(table: Mapping[str, Any]) -> str:
    """A flat table of strings, numbers, booleans and lists of them, as TOML."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in table.items() if value is not None)


def stage(folder: Path) -> Path:
    """An empty hidden folder beside `folder` to write into before `commit` puts it in place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def commit(staging: Path, folder: Path, keep_earlier: bool = False) -> list[str]:
    """Put a complete staging folder in place of `folder`; its paths. An earlier folder is replaced whole,
    or with `keep_earlier` its files that the new run did not write are carried over (a rerun with
    --no-plot keeps the earlier run's figures)."""
    if keep_earlier and folder.is_dir():
        for earlier in folder.iterdir():
            if earlier.is_file() and not (staging / earlier.name).exists():
                shutil.copy2(earlier, staging / earlier.name)
    if folder.exists():
        retired = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.rename(folder, retired)
        os.rename(staging, folder)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, folder)
    return sorted(str(p) for p in folder.iterdir())


def same_folder(staging: Path, folder: Path) -> bool:
    """Whether `folder` holds exactly the files of `staging`, byte for byte (manifests: apart from the
    versions of the packages, which describe the machine)."""
    if not folder.is_dir():
        return False
    names = sorted(p.name for p in staging.iterdir())
    if names != sorted(p.name for p in folder.iterdir()):
        return False
    for name in names:
        new, old = (staging / name).read_bytes(), (folder / name).read_bytes()
        if name == "manifest.json" and new != old:
            new, old = (json.dumps({k: v for k, v in json.loads(b).items() if k != "versions"}).encode()
                        for b in (new, old))
        if new != old:
            return False
    return True


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def write_run(folder: Path, files: Mapping[str, Callable[[Path], None]]) -> list[str]:
    """Create `folder` atomically: each writer writes its file into a temporary folder, then one rename.

    Returns the written paths, sorted.
    """
    staging = stage(folder)
    try:
        for name, write in files.items():
            write(staging / name)
        return commit(staging, folder)
    except BaseException:
        discard(staging)
        raise


def text_writer(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text, encoding="utf-8")


def write_text_atomic(path: Path, text: str) -> str:
    """Write a file through a temporary name and one rename: readers see the old or the new file, whole."""
    staging = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return str(path)


def remove_folder(folder: Path) -> None:
    """Remove a run folder whole: renamed aside first, so it never stands half-deleted under its name."""
    retired = folder.parent / f".{folder.name}.old-{os.getpid()}"
    os.rename(folder, retired)
    shutil.rmtree(retired, ignore_errors=True)
