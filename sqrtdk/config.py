"""Configs: one TOML file per figure or table, naming the experiment and its parameters.

    experiment = "variance"                 # one of sqrtdk.experiments.NAMES
    title = "Var(q.k) against d_k"          # optional: the heading in the generated report
    description = "..."                     # optional: what the figure asks
    order = 1                               # optional: the section's place in the report (lower first)
    dim = [1, 2, 4, 8, 16]                  # any parameter of the experiment; a list is a grid axis
    samples = 2097152

Parameters go through the experiment's schema (schema.py), the same one its command-line options use, so
the two cannot drift. Errors name the file and the key; `--set key=value` overrides are parsed as
command-line text by that schema and named `--set key`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqrtdk import experiments, schema
from sqrtdk.errors import InputError

META = ("experiment", "title", "description", "order")


@dataclass(frozen=True)
class Config:
    """A loaded, validated config."""

    path: Path
    experiment: str
    params: Any  # the experiment's schema instance
    title: str
    description: str
    order: int  # place in the report, lower first; ties by name
    text: str  # the file as written, comments included

    @property
    def name(self) -> str:
        """The config's name, its file name without .toml: the name of its results folder."""
        return self.path.stem


MAX_BYTES = 1024 * 1024


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    where = str(path)
    if not path.exists():
        bundled = path.stem if path.suffix == ".toml" and path.stem in names(bundled_dir()) else None
        hint = (
            f"; {bundled!r} alone names the config of that name that ships with sqrtdk"
            if bundled
            else " or the name of one that ships with sqrtdk (`sqrtdk configs` lists them"
            " and `sqrtdk configs --copy DIR` copies them out for editing)"
        )
        raise InputError(f"{where}: no such config file; give the path of a TOML config{hint}")
    if path.is_dir():
        raise InputError(f"{where}: is a folder; give the path of one TOML config file")
    if not path.is_file():
        raise InputError(f"{where}: not a regular file; give the path of one TOML config file")
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)  # a bounded read: a config never ends only by mistake
    except OSError as error:
        raise InputError(f"{where}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"{where}: larger than {MAX_BYTES // 1024} KiB; a config is a short TOML file")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some editors write, is not TOML
    except UnicodeDecodeError:
        raise InputError(f"{where}: not a text file; a config is TOML in UTF-8") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{where}: not valid TOML: {error}") from None
    except RecursionError:
        raise InputError(f"{where}: not a flat TOML config; its values nest too deeply") from None


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """{'dim': '16,64'} from ['dim=16,64']; a key given twice keeps its last value."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set: {item!r} is not allowed; write key=value, for example --set dim=16,64")
        out[key.strip()] = value
    return out


def load(path: str | Path, overrides: Mapping[str, Any] | None = None, text: bool = True) -> Config:
    """Read and validate a config (a path, or the name of a bundled config: see `resolve`), then apply
    overrides: `--set` text, or typed values with `text=False`."""
    path = resolve(path)
    written, table = _read(path)

    def key(name: str) -> str:
        return f"{path}: key {name!r}"

    if "experiment" not in table:
        raise InputError(f"{path}: key 'experiment' is missing; choose from {', '.join(experiments.NAMES)}")
    experiment = table["experiment"]
    spec = experiments.get(experiment, key("experiment"))
    names = [f.name for f in schema.fields(spec.params)]
    for name in table:
        if name not in META and name not in names:
            raise InputError(f"{key(name)}: unknown key; allowed keys are {', '.join(META + tuple(names))}")
    meta = {}
    for name in ("title", "description"):
        value = table.get(name, "")
        if not isinstance(value, str):
            raise InputError(f"{key(name)}: {schema.show(value)} is not allowed; the {name} must be a string")
        meta[name] = " ".join(value.split())
    order = table.get("order", 1000)
    if not isinstance(order, int) or isinstance(order, bool) or not 0 <= order <= 1000:
        raise InputError(
            f"{key('order')}: {schema.show(order)} is not allowed; the order must be an integer from 0 to 1000"
        )
    raw = {name: value for name, value in table.items() if name not in META}
    params = schema.build(spec.params, raw, label=key, text=False)
    if overrides:
        label = (lambda name: f"--set {name}") if text else (lambda name: name)
        params = schema.build(spec.params, overrides, label=label, text=text, base=params)
    return Config(path, experiment, params, meta["title"], meta["description"], order, written)


def bundled_dir() -> Path:
    """The configs that ship with sqrtdk: the package's sqrtdk/configs once installed, configs/ beside the
    package in a checkout (an editable install)."""
    import importlib.util

    spec = importlib.util.find_spec("sqrtdk.configs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "configs"


def names(folder: Path) -> list[str]:
    """The names of the configs in `folder` (their file names without .toml), sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.toml"))


def resolve(given: str | Path) -> Path:
    """The config file that `given` names: a path where one exists (a path wins), else a config's name
    (`variance_vs_dk`, or with `.toml`) looked up in ./configs, then among the bundled configs. A name
    that is neither is returned as a path, for `load` to refuse with its message."""
    path = Path(given)
    if path.exists() or path.is_symlink() or len(path.parts) != 1 or str(given).strip() in ("", ".", ".."):
        return path
    stem = path.name[: -len(".toml")] if path.name.endswith(".toml") else path.name
    for folder in (Path("configs"), bundled_dir()):
        found = folder / f"{stem}.toml"
        if found.is_file():
            return found
    return path


def default_dir() -> Path:
    """Where `sqrtdk reproduce` finds configs when none is named: ./configs if there is one, else the
    bundled ones."""
    here = Path("configs")
    return here if here.is_dir() else bundled_dir()


def copy_out(target: Path) -> list[Path]:
    """Copy the bundled configs into `target` for editing; refuse (before copying any) a file that is there."""
    target = Path(target)
    sources = sorted(bundled_dir().glob("*.toml"))
    if target.exists() and not target.is_dir():
        raise InputError(f"--copy: {str(target)!r} is not allowed; it is a file, and a folder is needed")
    taken = [s.name for s in sources if (target / s.name).exists()]
    if taken:
        raise InputError(
            f"--copy: {str(target)!r} is not allowed; it already holds {taken[0]}, which sqrtdk "
            "does not overwrite: copy into an empty or new folder"
        )
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (target / source.name).write_bytes(source.read_bytes())
    return [target / s.name for s in sources]


def load_dir(folder: str | Path) -> list[Config]:
    """Every *.toml config in `folder`, in report order, all validated before any is run."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise InputError(
            f"CONFIG_DIR: {str(folder)!r} is not allowed; it {what}, and a folder of TOML configs (or the "
            "names of configs: `sqrtdk configs` lists them) is needed"
        )
    paths = sorted(folder.glob("*.toml"))
    if not paths:
        raise InputError(f"CONFIG_DIR: {str(folder)!r} is not allowed; it holds no *.toml config")
    return sorted((load(p) for p in paths), key=lambda c: (c.order, c.name))


def selection(targets: Sequence[str]) -> tuple[Path, list[Config], list[str] | None]:
    """What `sqrtdk reproduce [TARGET...]` regenerates: (the config folder, every config in it, the names of
    the configs to run, or None for all of them).

    No target: ./configs, else the bundled configs. One folder: the configs in it. Otherwise each target
    is a config, by path or by name (`resolve`), all from one folder, whose other configs keep their
    committed results (the report is written from all of them).
    """
    if "" in targets:
        raise InputError("CONFIG_DIR: '' is not allowed; name a folder of TOML configs")
    if not targets:
        folder = default_dir()
        return folder, load_dir(folder), None
    paths = [resolve(t) for t in targets]
    if len(paths) == 1 and paths[0].suffix != ".toml":
        return paths[0], load_dir(paths[0]), None  # a folder (load_dir refuses a file, or nothing there)
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise InputError(
            f"CONFIG: {str(folders[0])!r} is not allowed beside other configs; give one folder alone, "
            "or configs by name or path"
        )
    chosen = [load(p) for p in paths]  # each refused with its own message (missing, not TOML, bad keys)
    parents = sorted({str(p.resolve().parent) for p in paths})
    if len(parents) > 1:
        raise InputError(
            f"CONFIG: {', '.join(map(repr, targets))} are not allowed together; they come from "
            f"{len(parents)} folders ({', '.join(parents)}), and one report is written from one folder's configs"
        )
    folder = paths[0].parent
    return folder, load_dir(folder), list(dict.fromkeys(c.name for c in chosen))
