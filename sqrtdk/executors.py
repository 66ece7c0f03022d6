"""Where tasks run: in this process, in local worker processes, or on a Dask distributed cluster.

A task is a pure function of its parameters and its spawned seed, so the executor changes only the time
a sweep takes, never its rows: outputs are put back in task order whatever order they finish in.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqrtdk.errors import InputError

Progress = Callable[[int, int], None]
CONNECT_TIMEOUT = "10s"  # how long to wait for a Dask scheduler to answer
_task_threads: int | None = None  # threads one task may use; None: all cores (set in worker processes)


FREED_MEMORY_KEPT = 64 * 2**20  # bytes


def keep_freed_memory() -> None:
    """Let this process, and the processes it starts, keep up to FREED_MEMORY_KEPT of freed memory for its
    next arrays (glibc's M_TOP_PAD). By default glibc gives the top of its heap back to the system at
    every free, so each of numpy's temporaries of a megabyte or more is mapped and faulted in anew: the
    page faults then take several times the arithmetic (ten times, 2.4 ms against 0.25, for five products of
    arrays of 1 MiB on a virtual machine). No effect where the C library is not glibc."""
    import ctypes

    os.environ.setdefault("MALLOC_TOP_PAD_", str(FREED_MEMORY_KEPT))  # read by glibc as a process starts
    try:
        ctypes.CDLL(None).mallopt(-2, FREED_MEMORY_KEPT)  # -2: M_TOP_PAD
    except (AttributeError, OSError, TypeError):  # no mallopt (macOS), no C library by that name (Windows)
        pass


class ServiceLost(Exception):
    """A service the run depends on went away mid-run (the Dask scheduler): exit code 69."""

    code = 69  # sysexits' EX_UNAVAILABLE


def map_replicates(fn: Callable[[int, Any], Any], count: int) -> list[Any]:
    """[fn(r, stop) for r in range(count)], on this task's share of the cores, in replicate order.

    Replicates are independent (each has its own random stream), so they run on threads: numpy releases
    the GIL in its loops and in BLAS. BLAS is held to one thread meanwhile, so the two do not compete.
    `fn` should call `stop.is_set()` between blocks and raise core.moments.Stopped: an interrupted run then ends
    within one block instead of finishing every started replicate.
    """
    import threading

    stop = threading.Event()
    threads = min(_task_threads or cores(), count)
    if threads <= 1:
        return [fn(r, stop) for r in range(count)]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        pool = ThreadPoolExecutor(threads)
        try:
            return list(pool.map(lambda r: fn(r, stop), range(count)))
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def cores() -> int:
    """Processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_all(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    workers: int | None = None,
    scheduler: str | None = None,
    progress: Progress | None = None,
    cost: Callable[[Any], float] | None = None,
) -> list[Any]:
    """[fn(item) for item in items], run by the chosen executor, in item order.

    `fn` must be a module-level function (it is pickled by reference). `cost` estimates an item's run
    time, so that the longest items start first and the workers finish together.
    """
    order = sorted(range(len(items)), key=lambda i: -cost(items[i])) if cost else list(range(len(items)))
    if scheduler:
        return _dask(fn, items, order, scheduler, progress)
    workers = cores() if workers is None else workers
    if workers <= 1 or len(items) <= 1:
        return _serial(fn, items, progress)
    return _processes(fn, items, order, min(workers, len(items)), progress)


def _serial(fn: Callable[[Any], Any], items: Sequence[Any], progress: Progress | None) -> list[Any]:
    outputs = []
    for item in items:
        outputs.append(fn(item))
        if progress:
            progress(len(outputs), len(items))
    return outputs


WATCHDOG_SECONDS = 0.5


def _limit_threads(threads: int, parent: int) -> None:
    """Worker start-up: share the cores between workers instead of letting each task's threads and BLAS
    take them all, and leave Ctrl-C to the parent, which stops the workers itself."""
    import signal

    from threadpoolctl import threadpool_limits

    global _task_threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # discards a Ctrl-C held back since the fork (_stopping_held)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threadpool_limits(threads)
    _task_threads = threads
    _die_with(parent)


def _die_with(parent: int) -> None:
    """End this worker as soon as the process that started the run is gone, even when that process was
    killed outright (kill -9) and could not stop its workers: Linux's parent-death signal for the
    forkserver's end, and a watchdog thread for the run's own process."""
    import ctypes
    import signal
    import threading
    import time

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_SECONDS)
            if _gone(parent):
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="sqrtdk-watchdog").start()


def _start_tracker() -> None:
    """Start multiprocessing's resource tracker (the process that unlinks the pool's named semaphores if
    this one cannot) so that neither a closed terminal nor a kill -9 of the run makes it speak.

    It ignores SIGINT and SIGTERM itself; here it also inherits SIGHUP blocked, so a hang-up of the
    process group leaves it running while the run releases every semaphore on its way out (when the
    hang-up ended it, the run's shutdown relaunched it, and the new one printed a KeyError for each
    semaphore it had never seen). After a kill -9 the run cannot release them and the tracker unlinks
    them, as designed: its warning that there were some to clean up is filtered out through the warning
    options that multiprocessing passes to its helper processes.
    """
    import signal
    from multiprocessing import resource_tracker

    options = sys.warnoptions[:]
    sys.warnoptions.append("ignore:resource_tracker:UserWarning")
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP}) if hasattr(signal, "pthread_sigmask") else None
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions[:] = options
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended: no such process, or a zombie that its own parent has not reaped yet
    (a run killed by a program that waits for its output before its exit status)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):  # not Linux, or just reaped
        return False


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """While workers start, hide the caller's script from multiprocessing.

    Workers run sqrtdk's own functions and never need the script that called them; without this each
    worker would run that script again (an unguarded script would start itself over, and one read from
    stdin cannot be found at all).
    """
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__
    }
    for key in saved:  # empty when there is no __main__
        if key == "__spec__":
            main.__spec__ = None  # type: ignore[union-attr]
        else:
            del main.__dict__[key]
    try:
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


STOPPING = ("SIGINT", "SIGTERM", "SIGHUP")


@contextmanager
def _stopping_held() -> Iterator[None]:
    """While workers start, hold Ctrl-C, SIGTERM and SIGHUP back until every worker has started and the pool
    knows it, then act on them.

    A signal that stopped the run inside `submit` (between a worker's start and the pool's record of it,
    or while the pool holds its lock) would leave a worker unknown to `_stop`: it would go on starting,
    fail loudly to open the semaphores of a pool already gone, or leave the pool locked. So the handlers
    note a signal and it is raised again afterwards, to the handlers the run had. SIGINT is also blocked in
    this thread's mask: the forkserver imports numpy and sqrtdk before it ignores SIGINT, and a worker
    forked from it takes SIGINT as a KeyboardInterrupt until its initializer runs; both inherit the mask
    (the worker through the server), so a Ctrl-C to the process group cannot reach them as a traceback.
    (Python runs handlers in the main thread only: elsewhere there is nothing to hold.)
    """
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # not POSIX, or not the thread that takes signals
        return
    caught: list[int] = []
    saved = {}
    for name in STOPPING:
        signum = getattr(signal, name)
        saved[signum] = signal.signal(signum, lambda signum, frame: caught.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)  # now, to the handler the run had


def _processes(
    fn: Callable[[Any], Any], items: Sequence[Any], order: list[int], workers: int, progress: Progress | None
) -> list[Any]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # forkserver: workers start from a clean single-threaded process, never from a copy of this one's
    # BLAS threads; the modules a task needs are loaded once in the server
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "sqrtdk.api"])
    _start_tracker()  # before the pool's semaphores are registered with it
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_limit_threads, initargs=(max(1, cores() // workers), os.getpid())
    )
    outputs: list[Any] = [None] * len(items)
    try:
        with _stopping_held(), _main_module_hidden():  # workers start as tasks are submitted
            futures = {pool.submit(fn, items[i]): i for i in order}
        pending, done = set(futures), 0
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                outputs[futures[future]] = future.result()
                done += 1
                if progress:
                    progress(done, len(items))
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()
    return outputs


MANAGER_PATIENCE = 10.0  # seconds a stopped pool's manager thread gets to end (it takes milliseconds)


def _stop(pool: Any) -> None:
    """Stop the workers now (on Ctrl-C, SIGTERM or an error): queued tasks are dropped, running ones killed."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
    for process in processes:  # before shutdown releases the queues: a worker still starting would
        process.kill()  # otherwise find their semaphores gone and print a traceback as it dies
    pool.shutdown(wait=False, cancel_futures=True)
    # Before Python 3.12 the interpreter's exit hook wakes the pool's manager thread through a pipe that
    # the thread may be closing at that moment, and prints "Exception ignored ... Bad file descriptor"
    # under the run's one line. With its workers dead the thread ends within moments: wait for it.
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=MANAGER_PATIENCE)


def _dask(
    fn: Callable[[Any], Any], items: Sequence[Any], order: list[int], address: str, progress: Progress | None
) -> list[Any]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError(
            f"--scheduler: {address!r} needs Dask, which is not installed; "
            "install the extra: pip install 'sqrtdk[dask]'"
        ) from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(
            f"--scheduler: {address!r} is not allowed; no Dask scheduler answered there ({error})"
        ) from None
    import logging

    quiet = [logging.getLogger(name) for name in ("distributed", "distributed.client", "distributed.core")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:  # a lost scheduler is reported once, below, not as pages of log lines
        logger.setLevel(logging.CRITICAL)
    try:
        futures = client.map(fn, [items[i] for i in order], pure=False)
        index = {future.key: i for future, i in zip(futures, order)}
        outputs: list[Any] = [None] * len(items)
        for done, future in enumerate(as_completed(futures), start=1):
            outputs[index[future.key]] = future.result()
            if progress:
                progress(done, len(items))
        return outputs
    except (OSError, TimeoutError) as error:  # CommClosedError is an OSError; a lost scheduler times out
        raise ServiceLost(
            f"--scheduler: the Dask scheduler at {address!r} went away mid-run ({type(error).__name__}"
            f"{': ' + str(error) if str(error) else ''}); nothing was written"
        ) from None
    except Exception as error:
        if type(error).__name__ in ("CancelledError", "FutureCancelledError"):  # its futures were dropped
            raise ServiceLost(
                f"--scheduler: the Dask scheduler at {address!r} dropped the run's tasks mid-run; nothing was written"
            ) from None
        raise
    finally:
        try:
            client.close(timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            pass
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
