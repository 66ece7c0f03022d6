"""The structure: one registry of complete experiments, a core that imports nothing of the shell, no import
cycles, one table of rules and one of metrics that agree with the kernels."""

from __future__ import annotations

import ast
import dataclasses
import functools
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sqrtdk import experiments, schema
from sqrtdk.core import rows, rules
from sqrtdk.experiments._attention import measure as attention

PACKAGE = Path(experiments.__file__).parent.parent


@pytest.mark.parametrize("name", experiments.NAMES)
def test_every_experiment_is_complete(name):
    spec = experiments.get(name)
    assert spec.name == name and spec.summary and dataclasses.is_dataclass(spec.params)
    for f in schema.fields(spec.params):
        assert f.metadata["help"] and isinstance(f.default, tuple), f.name
    for part in ("run", "rows", "figures", "reading", "table", "cost"):
        assert callable(getattr(spec, part)), part
    for task in schema.grid(spec.params()):  # the defaults: a cost for each task, positive and finite
        held, seconds = spec.cost(task, 2)
        assert 0 < held < 2**40 and 0 < seconds < 1e6


def test_an_unknown_experiment_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="experiment: 'bogus' is not allowed; choose from variance, saturation"):
        experiments.get("bogus")


def imports(path: Path) -> set[str]:
    """The sqrtdk modules `path` imports anywhere (function level too), except for type checking only."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqrtdk"):
            base = node.module
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if module_path(candidate).exists() else base)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sqrtdk")}
    return found


def module_path(name: str) -> Path:
    parts = name.split(".")[1:]
    folder = PACKAGE.joinpath(*parts)
    return folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Each sqrtdk module and the sqrtdk modules it imports (parsed once, by the tests that use it)."""
    return {module_name(p): imports(p) - {module_name(p)} for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_core_imports_nothing_of_the_shell():
    for name, deps in import_graph().items():
        if name.startswith("sqrtdk.core"):
            assert all(d.startswith("sqrtdk.core") for d in deps), (name, deps)


def imported_names(path: Path) -> set[str]:
    """Every name a module imports from sqrtdk, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqrtdk")
        for a in node.names
    }


@pytest.mark.parametrize("name", [n for n in experiments.NAMES if (PACKAGE / "experiments" / n).is_dir()])
def test_an_experiment_package_keeps_measurement_figures_and_reading_apart(name):
    """measure.py draws nothing and reads nothing aloud; figures.py and reading.py start no sampling; the
    package's EXPERIMENT is made of exactly those parts."""
    package = f"sqrtdk.experiments.{name}"
    graph = import_graph()
    measure = graph[f"{package}.measure"]
    assert not any(d.endswith((".figures", ".reading")) or d in ("sqrtdk.report", "sqrtdk.story") for d in measure)
    assert "matplotlib" not in module_path(f"{package}.measure").read_text(encoding="utf-8")
    for part in ("figures", "reading"):
        assert "sqrtdk.executors" not in graph[f"{package}.{part}"], part
        samplers = {
            n
            for n in imported_names(module_path(f"{package}.{part}"))
            if n.startswith("sample_") or n in ("train", "attention_matrices")
        }
        assert not samplers, (part, samplers)
    spec = experiments.get(name)
    assert spec.figures.__module__ == f"{package}.figures"
    assert spec.reading.__module__ == spec.table.__module__ == f"{package}.reading"
    assert spec.run.__module__ == spec.rows.__module__ == spec.cost.__module__ == f"{package}.measure"


def test_no_import_cycles_even_inside_functions():
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(import_graph().get(name, ())):
            # importing sqrtdk.x.y runs sqrtdk/__init__ and sqrtdk/x/__init__ first, which import nothing heavy
            assert state.get(dep) != "open", " -> ".join([*path, name, dep])
            if dep not in state:
                visit(dep, [*path, name])
        state[name] = "done"

    for name in import_graph():
        if name not in state:
            visit(name, [])


def test_one_table_of_rules_and_one_of_metrics_agree_with_the_kernels():
    for name, rule in rules.RULES.items():  # the table's flags against the constants themselves
        if rule.needs_seq_len:
            with pytest.raises(ValueError, match="needs a sequence length"):
                rules.scale(64, name)
        assert rules.scale(64, name, seq_len=128) > 0
        assert rule.normalised == (name == "qknorm")
    assert attention.SATURATION == rows.SATURATION and attention.GRADIENT == rows.GRADIENT
    assert {m for m, metric in attention.METRICS.items() if metric.fraction} == {
        "saturated_fraction",
        "vanishing_fraction",
    }


def test_the_source_fields_are_written_once():
    names = list(schema.source_fields())
    for name in ("variance", "saturation", "gradient"):
        fields = [f.name for f in schema.fields(experiments.get(name).params)]
        start = fields.index("dist")
        assert fields[start : start + len(names)] == names


def test_every_package_goes_into_the_wheel():
    """pyproject lists the packages by name (configs/ is mapped in as sqrtdk.configs): a new subpackage
    that is not listed would be missing from an installed sqrtdk. A folder without code (sqrtdk/data)
    counts too, since Python can import any folder."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = [PACKAGE, *(p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__")]
    found = {module_name(p / "__init__.py") for p in folders}
    assert found | {"sqrtdk.configs"} == listed


def test_the_wheel_builds_without_a_warning_and_holds_the_text_and_the_configs(tmp_path):
    """The wheel as pip builds it from a copy of the sources, with the installed setuptools and no index:
    setuptools says nothing (it warned of sqrtdk/data while that was missing from the packages), and
    the probe's built-in text and every committed config are inside."""
    root = PACKAGE.parent
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    for name in ("sqrtdk", "configs"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, source / name)
    argv = ["wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path / "wheel")]
    built = subprocess.run([sys.executable, "-m", "pip", *argv, str(source)], capture_output=True, text=True)
    log = built.stdout + built.stderr
    assert built.returncode == 0, log
    assert re.findall(r"\w*Warning\b.*", log) == [], log
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "sqrtdk/data/prose.txt" in names
    configs = {f"sqrtdk/configs/{p.name}" for p in (root / "configs").glob("*.toml")}
    assert configs and configs <= names
