"""A sweep gives the same rows whichever executor runs it and in whatever order its tasks finish."""

import re

import pytest

import sqrtdk
from sqrtdk import executors

SWEEP = {"dim": [4, 64, 256], "seq_len": [8, 64], "samples": 2048, "std": [1.0, 1.5]}


@pytest.fixture(scope="module")
def serial():
    return {kind: sqrtdk.run(kind, workers=1, **SWEEP).rows for kind in ("saturation", "gradient")}


@pytest.mark.parametrize("kind", ["saturation", "gradient"])
def test_worker_processes_give_identical_rows(serial, kind):
    assert sqrtdk.run(kind, workers=2, **SWEEP).rows == serial[kind]


def test_variance_identical_across_workers():
    kw = {"dim": [1, 16, 100, 1024], "samples": 2**16, "mean": [0.0, 0.5]}
    assert sqrtdk.run("variance", workers=2, **kw).rows == sqrtdk.run("variance", workers=1, **kw).rows


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside distributed, not by sqrtdk
def test_dask_local_cluster_gives_identical_rows(serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for kind in ("saturation", "gradient"):
            assert sqrtdk.run(kind, scheduler=cluster.scheduler_address, **SWEEP).rows == serial[kind]


def test_completion_order_does_not_matter():
    items = list(range(7))
    slow_first = executors.run_all(_square_after_nap, items, workers=2, cost=lambda i: i)
    assert slow_first == [i * i for i in items]


def _square_after_nap(i):
    import time

    time.sleep(0.05 * (7 - i))  # later items finish first
    return i * i


def test_unreachable_scheduler_is_bad_input(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(sqrtdk.InputError, match=re.escape("--scheduler: 'tcp://127.0.0.1:1' is not allowed; no Dask")):
        executors.run_all(abs, [1, 2], scheduler="tcp://127.0.0.1:1")


CLUSTER = """
import time
from distributed import LocalCluster
if __name__ == "__main__":
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    print(cluster.scheduler_address, flush=True)
    while not any(task.state == "processing" for task in list(cluster.scheduler.tasks.values())):
        time.sleep(0.05)
    print("processing", flush=True)
    time.sleep(600)
"""


def test_a_scheduler_lost_mid_run_is_one_line_and_exit_69(tmp_path):
    import os
    import queue
    import signal
    import subprocess
    import sys
    import threading

    pytest.importorskip("distributed")
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER)
    cluster = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        address = cluster.stdout.readline().strip()
        assert address.startswith("tcp://")
        run = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqrtdk",
                "variance",
                "--dim",
                "64",
                "--samples",
                "1e10",
                "--scheduler",
                address,
                "--out",
                str(tmp_path / "out"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        said: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: said.put(cluster.stdout.readline()), daemon=True).start()
        assert said.get(timeout=120).strip() == "processing"  # the run's task is on the cluster's worker
    finally:
        os.killpg(cluster.pid, signal.SIGKILL)  # the scheduler and its workers
        cluster.wait()
        cluster.stdout.close()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 69, err
    assert (
        err.startswith(f"sqrtdk: error: --scheduler: the Dask scheduler at {address!r}") and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "out").exists()


def test_signals_are_held_while_workers_start_and_delivered_after():
    """A Ctrl-C, SIGTERM or SIGHUP that arrives while the pool starts its workers (inside `submit`) is
    handled once every worker is known to the pool, where `_stop` can end them."""
    import signal

    from sqrtdk.executors import _stopping_held

    seen = []
    saved = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with _stopping_held():
            signal.raise_signal(signal.SIGTERM)
            assert seen == []  # held
        assert seen == [signal.SIGTERM]  # delivered once, to the handler in place before
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, saved)


def test_a_killed_run_not_yet_reaped_counts_as_gone():
    """The workers' watchdog ends them when the run is gone: also when the run is a zombie whose parent
    reads its output before its exit status."""
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not executors._gone(child.pid)
        child.kill()
        deadline = time.monotonic() + 30
        while not executors._gone(child.pid) and time.monotonic() < deadline:  # not waited for: a zombie
            time.sleep(0.01)
        assert executors._gone(child.pid)
    finally:
        child.kill()
        child.wait()


def test_the_command_line_keeps_freed_memory_in_the_processes_it_starts(monkeypatch):
    """keep_freed_memory names the padding in the environment that workers start with (glibc reads it as
    a process starts), leaves a value the user set, and may be called again."""
    import os
    import subprocess
    import sys

    from sqrtdk.executors import FREED_MEMORY_KEPT, keep_freed_memory

    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    keep_freed_memory()
    keep_freed_memory()
    seen = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['MALLOC_TOP_PAD_'])"], capture_output=True, text=True
    )
    assert seen.stdout.strip() == str(FREED_MEMORY_KEPT) == str(64 * 2**20)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "1048576")
    keep_freed_memory()
    assert os.environ["MALLOC_TOP_PAD_"] == "1048576"
