"""What the tests share: the command line run in-process (`cli`), one `sqrtdk reproduce` of a set of
configs made once for every test that starts from it (`reproduced`), a wait for a process to reach a
state (`ready`) instead of a sleep, and property tests that draw the same examples on every machine."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

# Under `pytest -n N` every worker is a process of its own: one BLAS thread each keeps N workers on N
# cores instead of N x cores threads contending for them (the numbers do not depend on the threads). Set
# before numpy is first imported, and inherited by the commands the tests start.
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each worker also runs on a core of its own, which sqrtdk reads as the cores it may use: a run with
    # the default workers is then computed in this process instead of starting a pool of processes that
    # would compete with the other worker for the same cores (the tests of pools ask for --workers).
    if hasattr(os, "sched_setaffinity"):
        _cores = sorted(os.sched_getaffinity(0))
        _index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw") or 0)
        os.sched_setaffinity(0, {_cores[_index % len(_cores)]})
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    if "numpy" in sys.modules:  # too late for the environment: limit the libraries already loaded
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)

from standin import stand_in

from sqrtdk.cli import main
from sqrtdk.executors import keep_freed_memory

keep_freed_memory()  # as the command line does: in this process, and in every process a test starts

# The same examples on every run and machine (a failure seen once is seen again), and no deadline: an
# example that a busy machine runs slowly has not failed. Nothing is stored in the checkout.
settings.register_profile("sqrtdk", derandomize=True, deadline=None, database=None)
settings.load_profile("sqrtdk")

PATIENCE = 120.0  # seconds: a safety net for waits that take a second on an idle machine, never a measurement

# A script's background job starts with SIGINT ignored, and so would every process a test starts; the
# tests of Ctrl-C need the default that a terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_main(*argv: object) -> int:
    """The exit code of `sqrtdk *argv` run in this process, its signal handlers put back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        main([str(a) for a in argv])
    except SystemExit as done:
        return int(done.code or 0)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return 0


# The tests of a second or more on the 2-core machine (measured with --durations): `make test-fast`
# (-m "not slow") leaves them out, `make test` runs them. A module's name marks all its tests, a
# "module::test" prefix those of one test function (every parameter).
SLOW = (
    "test_benchmarks",
    "test_studies",
    "test_reproduce",
    "test_train_reproduce",
    "test_coverage",
    "test_failures",
    "test_edge_cases",
    "test_domain",
    "test_exact",
    "test_docs",
    "test_resources",
    "test_executors",
    "test_precision::test_overflow_intervals_cover",
    "test_precision::test_the_overflow_figure",
    "test_saturation::test_rem",
    "test_saturation::test_unscaled_saturates",
    "test_saturation::test_correlated",
    "test_scores::test_memory",
    "test_theory::test_mean_variance_kurtosis_match_simulation",
    "test_variance::test_scaling_law",
    "test_variance::test_correlated_pairs",
    "test_variance::test_projected_heads",
    "test_transformer::test_every_gradient",
    "test_probe::test_reproduce",
    "test_cli::test_interrupt",
    "test_cli::test_attention_commands",
    "test_cli::test_drawing_figures",
    "test_cli::test_configs_by_name",
    "test_cli::test_ctrl_c",
    "test_train_experiment",
    "test_tables::test_the_first_commands",
    "test_plots",
    "test_probe::test_activations_far",
    "test_rows::test_huge",
    "test_rows::test_long",
    "test_output::test_two_identical",
    "test_output::test_failed_write",
    "test_output::test_rerun",
    "test_cli::test_variance_figures",
    "test_cli::test_run_config_with",
    "test_cli::test_json_stays",
    "test_cli::test_colour",
    "test_saturation::test_qknorm_approaches",
    "test_saturation::test_std_moves",
    "test_saturation::test_exact_columns",
    "test_gradient::test_the_mean_squared",
    "test_registry::test_the_wheel",
    "test_train::test_the_same_seed",
    "test_train::test_two_layers",
    "test_tables::test_every_experiments_wrapped",
    "test_api::test_run_grid",
    "test_figure_design::test_every_committed",
    "test_story::test_drawn_from",
)


# The tests about figures (what they show, their text, their bytes, how matplotlib is set up to draw
# them): they draw every figure for real. Everywhere else a figure file is a stand-in (standin.py), since
# drawing was a third of the suite's time and those tests are about rows, folders and processes: in this
# process by `_figures_only_where_tested`, in a process a test starts by running it through standin.py.
FIGURES = (
    "test_plots",
    "test_reproduce::test_twice_in_a_row",
    "test_failures::test_any_mplbackend",
    "test_failures::test_an_unwritable_mplconfigdir",
    "test_cli::test_variance_figures",
    "test_story::test_drawn_from",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        name = f"{module}::{item.name}"
        if any(module == slow or name.startswith(slow) for slow in SLOW):
            item.add_marker(pytest.mark.slow)
        if any(module == drawn or name.startswith(drawn) for drawn in FIGURES):
            item.add_marker(pytest.mark.figures)
    # the slow tests first, in their order: spread over the workers while there is work for all of them,
    # instead of one worker finishing a long test alone at the end
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


STANDIN = [sys.executable, str(Path(__file__).with_name("standin.py"))]  # `python -m sqrtdk`, stand-in figures


@pytest.fixture(autouse=True)
def _figures_only_where_tested(request, monkeypatch):
    """Commands run in this process write stand-in figures unless the test is about figures (FIGURES).
    Worker processes that a run starts (--workers 2) draw for real, as does `python -m sqrtdk`; a test
    not about figures starts sqrtdk as `STANDIN` instead."""
    if request.node.get_closest_marker("figures") is None:
        import sqrtdk.result

        monkeypatch.setattr(sqrtdk.result, "_render", stand_in)


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory):
    """reproduced(configs, into) copies into the folder `into` a folder configs/ holding `configs` (file
    name -> text) and results/, what `sqrtdk reproduce` made of them, and returns (configs, results).
    The reproduce runs once for each set of configs; every test that starts from it gets its own copy."""
    made: dict[tuple, Path] = {}

    def copy(configs: dict[str, str], into: Path) -> tuple[Path, Path]:
        import sqrtdk.result

        key = (*sorted(configs.items()), sqrtdk.result._render is stand_in)  # drawn or stand-in figures
        if key not in made:
            root = tmp_path_factory.mktemp("reproduced")
            (root / "configs").mkdir()
            for name, text in configs.items():
                (root / "configs" / name).write_text(text)
            assert run_main("reproduce", root / "configs", "--out", root / "results", "--quiet") == 0
            made[key] = root
        shutil.copytree(made[key], into, symlinks=True, dirs_exist_ok=True)
        return into / "configs", into / "results"

    return copy


@pytest.fixture
def cli(capsys):
    """cli(*argv) -> (exit code, stdout, stderr) of `sqrtdk *argv`, run in this process; the signal
    handlers that `main` installs are put back afterwards, so they never reach other tests."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    yield run
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _children_of() -> dict[int, list[int]]:
    """Each process's children, from one read of /proc."""
    below: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # not a process, or one that just ended
                continue
            below.setdefault(int(fields[1]), []).append(int(entry.name))
    return below


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (a pool's resource tracker, its forkserver, the workers), from one read
    of /proc."""
    below = _children_of()
    found, todo = [], [pid]
    while todo:
        under = below.get(todo.pop(), [])
        found += under
        todo += under
    return found


def worker_pids(pid: int) -> list[int]:
    """The started worker processes of a sqrtdk run: children of its forkserver (a child of the run) whose
    watchdog thread runs, the last step of a worker's start. A worker interrupted while it is still being
    started prints multiprocessing's traceback (the semaphore it was to rebuild is gone)."""
    below = _children_of()
    return [worker for child in below.get(pid, []) for worker in below.get(child, []) if _threads(worker) >= 2]


def _threads(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))


def catches(pid: int, signum: int) -> bool:
    """Whether `pid` has installed a handler for `signum` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask >> (signum - 1) & 1)


@pytest.fixture
def ready():
    """ready(proc, workers=0): wait until the sqrtdk process `proc` handles SIGTERM and SIGHUP (its `main`
    is running, so a signal now ends it as a signal should) and has started `workers` worker processes.
    A signal sent after a fixed sleep could arrive before either on a busy machine."""

    def wait(proc, workers: int = 0) -> None:
        deadline = time.monotonic() + PATIENCE
        while not (
            catches(proc.pid, signal.SIGTERM)
            and catches(proc.pid, signal.SIGHUP)
            and len(worker_pids(proc.pid)) >= workers
        ):
            assert proc.poll() is None, f"the process ended first ({proc.returncode})"
            assert time.monotonic() < deadline, f"not ready after {PATIENCE:.0f} s"
            time.sleep(0.05)

    return wait
