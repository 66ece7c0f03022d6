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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqrtdk.errors import InputError


def config_hash(experiment: str, config: Mapping[str, Any]) -> str:
    """Short hash of the resolved config: runs with different parameters get different folders."""
    text = json.dumps({"experiment": experiment, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


NAME_MAX = 255  # bytes in one file name, on every common file system


def check_writable(out: Path, option: str = "--out") -> None:
    """Refuse, before any work, an output folder that is a file or cannot be created or written."""
    too_long = [part for part in out.parts if len(os.fsencode(part)) > NAME_MAX]
    if too_long:
        raise InputError(
            f"{option}: {str(out)[:60]!r}... is not allowed; the name {too_long[0][:40]!r}... is "
            f"longer than {NAME_MAX} bytes"
        )
    if out.is_symlink() and not out.exists():
        raise InputError(f"{option}: {str(out)!r} is not allowed; it is a link to nothing")
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
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    return buffer.getvalue()


def fmt(value: Any) -> str:
    """A number as a reader wants it in a table: 5 significant digits, empty when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return str(value)


def decimals(se: float) -> int:
    """Decimal places that show a standard error to two significant digits (negative: whole tens, ...)."""
    return 1 - math.floor(math.log10(float(f"{se:.2g}")))


def _fixed(value: float, places: int) -> str:
    if places <= 0:
        return f"{round(value, places):.0f}"
    return f"{value:.{places}f}"


def with_se(value: float | None, se: float | None) -> str:
    """'64.02 ± 0.13': a value to the digits its standard error supports, the error to two digits.

    Without a usable error (none, zero, not finite) the value gets four significant digits. Values far
    from 1 share a power of ten: '(3.10 ± 0.21)e-07'."""
    if value is None or not math.isfinite(value):
        return ""
    if se is None or not math.isfinite(se) or se <= 0:
        return f"{value:.4g}"
    places = decimals(se)
    if places > 6 or abs(value) >= 1e6:
        power = math.floor(math.log10(max(abs(value), se)))
        value, se = value / 10**power, se / 10**power
        places = decimals(se)
        return f"({_fixed(value, places)} ± {_fixed(se, places)})e{power:+03d}"
    return f"{_fixed(value, places)} ± {_fixed(se, places)}"


def at_se(value: float | None, se: float | None) -> str:
    """A value alone (an interval's end) to the digits of a standard error that goes with it."""
    if value is None or not math.isfinite(value):
        return ""
    if se is None or not math.isfinite(se) or se <= 0:
        return f"{value:.4g}"
    places = decimals(se)
    return f"{value:.4g}" if places > 6 or abs(value) >= 1e6 else _fixed(value, places)


def pm(row: Mapping[str, Any], key: str) -> str:
    """A row's value with its standard error (column `key + '_se'`), as with_se writes them."""
    return with_se(row[key], row.get(key + "_se"))


def pm_share(row: Mapping[str, Any], key: str) -> str:
    """A share with its standard error, or 0 with the upper end of its exact interval (`key + '_ci_high'`),
    since a share of 0 has a standard error of 0 and says nothing without it."""
    if row[key] == 0 and row.get(key + "_ci_high") is not None:
        return f"0 (< {row[key + '_ci_high']:.2g})"
    return pm(row, key)


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def version() -> str:
    """sqrtdk's version, from the installed package's metadata."""
    return package_version("sqrtdk")


def package_version(name: str) -> str:
    """An installed distribution's version, from the name of its `<name>-<version>.dist-info` folder on
    sys.path (the name the wheel format gives it), else from importlib.metadata, whose import and scan
    cost a run of a few seconds a tenth of its time."""
    import sys

    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem, _, suffix = folder.rpartition(".")
            dist, dash, found = stem.partition("-")
            if suffix == "dist-info" and dash and dist.lower().replace("-", "_") == name.replace("-", "_"):
                return found
    from importlib.metadata import version

    return version(name)


def versions() -> dict[str, str]:
    """Versions of the packages that made the numbers and figures (read from metadata, nothing imported)."""
    return {
        "sqrtdk": package_version("sqrtdk"),
        "python": platform.python_version(),
        **{name: package_version(name) for name in ("numpy", "scipy", "matplotlib")},
    }


def git_state() -> dict[str, Any] | None:
    """Commit and dirty flag of the checkout sqrtdk runs from, or None outside a checkout."""
    source = Path(__file__).resolve().parent.parent
    if not (source / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def manifest(experiment: str, config: Mapping[str, Any], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """What a run folder says about how it was made: config, seed, versions and where it came from."""
    return {
        "experiment": experiment,
        "config": dict(config),
        "seed": config.get("seed"),
        **provenance,
        "versions": versions(),
    }


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


# ---- ownership and atomic replacement ----
#
# sqrtdk replaces only what it can prove it made: a folder holding a manifest.json that names an
# experiment and sqrtdk's version (every run folder has one), or a report that starts with its header.
# A folder is committed by one atomic exchange of names where the OS has it (Linux renameat2), else by
# two renames whose intermediate state the next run repairs; writers to one place take turns (an
# exclusive lock on the parent folder), so concurrent identical runs both succeed.


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A folder's manifest.json when it is a regular file of sane size holding a JSON object, else None
    (a link to an endless device or a pipe is never read)."""
    path = folder / "manifest.json"
    try:
        if folder.is_symlink() or path.is_symlink() or not path.is_file() or path.stat().st_size > 2**20:
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


# What sqrtdk writes into a run folder; anything else in one is the user's and is carried over.
OUTPUT_NAMES = {"rows.csv", "rows.md", "rows.json", "config.toml", "manifest.json", "histograms.json", "curves.json"}
OUTPUT_SUFFIXES = (".png", ".svg", ".pdf", ".npz")


def is_output(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and (path.name in OUTPUT_NAMES or path.suffix in OUTPUT_SUFFIXES)


def made_by_sqrtdk(folder: Path) -> bool:
    """Whether `folder` is a run folder that sqrtdk wrote (its manifest names an experiment and sqrtdk)."""
    manifest = read_manifest(folder)
    return (
        manifest is not None
        and isinstance(manifest.get("experiment"), str)
        and isinstance(manifest.get("versions"), dict)
        and "sqrtdk" in manifest["versions"]
    )


def replaceable(target: Path) -> bool:
    """Whether sqrtdk may write `target`: nothing is there, or a real folder that sqrtdk made."""
    if not (target.exists() or target.is_symlink()):
        return True
    return target.is_dir() and not target.is_symlink() and made_by_sqrtdk(target)


def without_versions(manifest: str | bytes) -> str:
    """A manifest's text without the package versions, which describe the machine, not the result."""
    return json.dumps({k: v for k, v in json.loads(manifest).items() if k != "versions"}, indent=1)


def check_replaceable(folder: Path, option: str) -> None:
    """Refuse, before any work, a target that exists and that sqrtdk did not make."""
    if len(os.fsencode(folder.name)) > NAME_MAX:
        raise InputError(
            f"{option}: the folder name {folder.name[:40]!r}... would be longer than {NAME_MAX} bytes; "
            "give the config a shorter name"
        )
    if not replaceable(folder):
        raise InputError(
            f"{option}: {str(folder)!r} would be replaced, and sqrtdk did not make it "
            "(no sqrtdk manifest.json in it); move it away or choose another name"
        )


_held: dict[str, tuple[int, int]] = {}  # folders this process has locked: path -> (fd, depth)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (created if needed): other sqrtdk processes writing into it
    wait. Re-entrant within this process."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        fd = os.open(key, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _held[key]
        if depth == 1:
            del _held[key]
            os.close(fd)  # closing the descriptor releases the lock
        else:
            _held[key] = (fd, depth - 1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(parent: Path) -> None:
    """Remove what killed runs left in `parent`: staging (`.x.sqrtdk-partial-PID`), retired
    (`.x.sqrtdk-old-PID`) and removed (`.x.sqrtdk-gone-PID`) folders and files of processes that no longer
    run (names no one else uses). A retired folder whose target is missing (a kill
    between the two renames of a commit) is put back first, so no result is ever lost."""
    import re

    debris = re.compile(r"^\.(?P<name>.+)\.sqrtdk-(?P<kind>partial|old|gone)-(?P<pid>\d+)$")
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return
    for path in entries:
        found = debris.match(path.name)
        if not found or int(found["pid"]) == os.getpid() or _alive(int(found["pid"])):
            continue
        target = parent / found["name"]
        if found["kind"] == "old" and not target.exists():
            os.rename(path, target)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    """Copy a file, a folder or a link as it is (a link stays a link, dangling or not)."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names `a` and `b` in one atomic step (Linux renameat2 with RENAME_EXCHANGE); False where
    the OS or its file system has no such call."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def stage(folder: Path) -> Path:
    """An empty hidden folder beside `folder` to write into before `commit` puts it in place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.sqrtdk-partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def commit(staging: Path, folder: Path, keep_earlier: bool = False) -> list[str]:
    """Put a complete staging folder in place of `folder`; its paths. What the user put into an earlier
    folder (anything that is not a sqrtdk output) is carried over as it is; with `keep_earlier` so are the
    earlier outputs that this run did not write again (a rerun with --no-plot keeps the figures). Refuses
    to replace what sqrtdk did not make."""
    with locked(folder.parent):
        sweep(folder.parent)
        if folder.exists() or folder.is_symlink():
            check_replaceable(folder, "--out")
            for earlier in folder.iterdir():  # the user's files always, earlier outputs with keep_earlier
                if (staging / earlier.name).exists() or (staging / earlier.name).is_symlink():
                    continue
                if keep_earlier or not is_output(earlier):
                    _copy(earlier, staging / earlier.name)
            if _exchange(staging, folder):
                shutil.rmtree(staging, ignore_errors=True)  # it holds the earlier folder now
            else:  # a kill between the renames leaves .<name>.sqrtdk-old-PID, which sweep() puts back
                retired = folder.parent / f".{folder.name}.sqrtdk-old-{os.getpid()}"
                os.rename(folder, retired)
                os.rename(staging, folder)
                shutil.rmtree(retired, ignore_errors=True)
        else:
            os.rename(staging, folder)
    return sorted(str(p) for p in folder.iterdir())


def same_folder(staging: Path, folder: Path) -> bool:
    """Whether the outputs in `folder` are exactly the files of `staging`, byte for byte (manifests: apart
    from the versions); what the user keeps beside them does not count."""
    if not folder.is_dir():
        return False
    names = sorted(p.name for p in staging.iterdir())
    if names != sorted(p.name for p in folder.iterdir() if is_output(p)):
        return False
    for name in names:
        new, old = (staging / name).read_bytes(), (folder / name).read_bytes()
        if name == "manifest.json" and new != old:
            new, old = without_versions(new).encode(), without_versions(old).encode()
        if new != old:
            return False
    return True


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def write_arrays(path: Path, arrays: Mapping[str, Any]) -> None:
    """`arrays` as a NumPy .npz archive (numpy.load reads it) whose bytes depend on the arrays alone: no
    timestamps, so that two runs that compute the same arrays write the same file."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_text_atomic(path: Path, text: str) -> str:
    """Write a file through a temporary name and one rename: readers see the old or the new file, whole."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> str:
    """write_text_atomic for bytes."""
    staging = path.with_name(f".{path.name}.sqrtdk-partial-{os.getpid()}")
    try:
        staging.write_bytes(data)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    return str(path)


def remove_folder(folder: Path) -> None:
    """Remove a run folder that sqrtdk made, whole: renamed aside first (a name no sweep restores, since
    its target is meant to go), so it never stands half-deleted under its name."""
    if folder.is_symlink() or not made_by_sqrtdk(folder):
        raise InputError(f"{str(folder)!r} was not made by sqrtdk; it is left alone")
    retired = folder.parent / f".{folder.name}.sqrtdk-gone-{os.getpid()}"
    os.rename(folder, retired)
    shutil.rmtree(retired, ignore_errors=True)
