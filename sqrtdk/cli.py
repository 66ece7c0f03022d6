"""The command line: parse options through the experiment's schema, call the API, render the rows.

Options are generated from the same frozen dataclasses that configs use (schema.py), so the two cannot
drift. Exit codes: 0 success, 1 a check failed, 2 bad input, 69 the Dask scheduler went away, 74 stdout
could not be written, 129/130/143 hung up, interrupted or terminated, 141 stdout's reader went away. stdout
carries only results (the table, or one JSON document with --json); everything else goes to stderr.
"""

from __future__ import annotations

import inspect
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from sqrtdk import schema
from sqrtdk.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Measure why attention divides its scores by sqrt(d_k).")


class Failed(Exception):
    """A check that ran and did not pass: exit code 1."""


def _chatty(quiet: bool) -> bool:
    """Human output on stderr only for a person at a terminal."""
    return not quiet and sys.stderr.isatty()


def _console(stderr: bool = False):
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1, which means "a check failed"
            raise StdoutClosed

    stream = sys.stderr if stderr else sys.stdout
    return _Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=False)


def _progress(enabled: bool, label: str = "tasks") -> tuple[Any, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    from rich.progress import Progress

    bar = Progress(console=_console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    bar.start()
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


def _workers(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return schema.Integer(1, 1024, "the number of workers").from_text(raw)
    except InputError as error:
        raise InputError(f"--workers: {error}") from None


def _nonempty(value: str, option: str) -> None:
    if not value.strip():
        raise InputError(f"{option}: {value!r} is not allowed; it must not be empty")


def _scheduler(address: str | None) -> None:
    if address is not None:
        _nonempty(address, "--scheduler")


def _target(out: str, folder: str) -> None:
    """Check --out before any work: a writable folder, and no folder there that sqrtdk did not make."""
    from sqrtdk.output import check_replaceable, check_writable

    _nonempty(out, "--out")
    check_writable(Path(out))
    check_replaceable(Path(out) / folder, "--out")


def _limits(max_memory: str | None, max_time: str | None) -> tuple[float | None, float | None]:
    """--max-memory GiB and --max-time minutes, checked like every other option."""
    out = []
    for raw, option, what in ((max_memory, "--max-memory", "the memory limit in GiB"),
                              (max_time, "--max-time", "the time limit in minutes")):
        if raw is None:
            out.append(None)
            continue
        try:
            out.append(schema.Real(what, lo=0.0, lo_open=True, hi=1e9).from_text(raw))
        except InputError as error:
            raise InputError(f"{option}: {error}") from None
    return out[0], out[1]


def _run(experiment: str, params: Any, chatty: bool, workers: str | None, scheduler: str | None,
         figures: bool = True, limits: tuple[float | None, float | None] = (None, None)):
    from sqrtdk import api

    bar, progress = _progress(chatty)
    try:
        return api.run_params(experiment, params, progress, _workers(workers), scheduler, figures, limits)
    finally:
        if bar is not None:
            bar.stop()


def _schema_parameters(schema_cls: type) -> list[inspect.Parameter]:
    parameters = []
    for f in schema.fields(schema_cls):
        shown = ",".join(map(str, f.default))
        text = f.metadata["help"] + f"; repeatable, and comma lists  [default: {shown}]"
        option = typer.Option(None, schema.option_name(f.name), help=text, metavar=f.metadata["metavar"],
                              show_default=False)
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=Optional[list[str]]))
    return parameters


def _option(name: str, annotation: Any, default: Any, flag: str, text: str, metavar: str | None = None):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, flag, help=text, metavar=metavar))


def _flag(name: str, text: str) -> inspect.Parameter:
    return _option(name, bool, False, "--" + name.replace("_", "-"), text)


RUNS = "results/runs"
OUT = _option("out", str, RUNS, "--out", "folder for ad-hoc runs; each writes <name>-<hash>/ in it", "DIR")
JSON = _flag("json", "print one JSON document (config, rows, files) on stdout and nothing else")
QUIET = _flag("quiet", "no table, progress or notes; errors only")
NO_PLOT = _flag("no_plot", "write the tables and manifest but no figures")
WORKERS = _option("workers", Optional[str], None, "--workers",
                  "local worker processes that run the tasks  [default: all cores]", "N")
SCHEDULER = _option("scheduler", Optional[str], None, "--scheduler",
                    "run the tasks on this Dask distributed scheduler (needs sqrtdk[dask])", "ADDRESS")
MAX_MEMORY = _option("max_memory", Optional[str], None, "--max-memory",
                     "refuse a run whose tasks would hold more than this many GiB at once  [default: 8]", "GIB")
MAX_TIME = _option("max_time", Optional[str], None, "--max-time",
                   "refuse a run estimated to take longer than this many minutes  [default: 120]", "MINUTES")
EXECUTION = [WORKERS, SCHEDULER, MAX_MEMORY, MAX_TIME]


def _command(name: str, schema_cls: type, extra: list[inspect.Parameter], body: Callable[..., None]) -> None:
    """Register `name` with one option per schema field plus `extra`; `body(raw, **extra)` runs it."""
    names = {f.name for f in schema.fields(schema_cls)}

    def command(**kwargs: Any) -> None:
        raw = {k: v for k, v in kwargs.items() if k in names and v is not None}
        body(raw, **{k: v for k, v in kwargs.items() if k not in names})

    signature = inspect.Signature(_schema_parameters(schema_cls) + extra)
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
    summary = schema_cls.__doc__.split(":", 1)[1].strip()
    command.__doc__ = summary[0].upper() + summary[1:]
    app.command(name)(command)


@contextmanager
def _writing(out: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a folder that vanished) into one line naming --out."""
    try:
        yield
    except OSError as error:
        raise InputError(f"--out: {out!r} is not allowed; writing the results there failed "
                         f"({error.strerror or error}); nothing was written") from None


def _finish(result: Any, out: str, stem: str | None, json: bool, quiet: bool, no_plot: bool,
            chatty: bool, workers: str | None) -> None:
    with _writing(out):
        files = result.write(out, plot=not no_plot, folder=result.folder_name(stem), workers=_workers(workers))
    if json:
        sys.stdout.write(result.to_json(files))
        if chatty:
            _console(stderr=True).print(_table(result))
    elif not quiet:
        _console().print(_table(result))
    if chatty:
        _console(stderr=True).print(f"wrote {Path(files[0]).parent}/ ({len(files)} files)")


def _experiment(name: str) -> Callable[..., None]:
    def body(raw: dict[str, Any], out: str, json: bool, quiet: bool, no_plot: bool, workers: str | None,
             scheduler: str | None, max_memory: str | None, max_time: str | None) -> None:
        from sqrtdk import api

        params = api.parse(name, raw)  # every value is checked before any work or any write
        _workers(workers)
        _scheduler(scheduler)
        limits = _limits(max_memory, max_time)
        _target(out, api.folder_name(name, params))
        chatty = _chatty(quiet)
        result = _run(name, params, chatty, workers, scheduler, figures=not no_plot, limits=limits)
        _finish(result, out, None, json, quiet, no_plot, chatty, workers)
    return body


def _check(raw: dict[str, Any], json: bool, quiet: bool, workers: str | None, scheduler: str | None,
           max_memory: str | None, max_time: str | None) -> None:
    from sqrtdk import api

    params = api.parse("check", raw)
    chatty = _chatty(quiet)
    result = _run("check", params, chatty, workers, scheduler, figures=False, limits=_limits(max_memory, max_time))
    if json:
        sys.stdout.write(result.to_json())
    elif not quiet:
        _console().print(_table(result))
    _verdict(result)


def _verdict(result: Any) -> None:
    """A check that did not pass ends in exit 1, naming each failing d_k with its band."""
    bands: dict[str, list[str]] = {}
    for r in result.rows:
        if not r["passed"]:
            bands.setdefault(f"[{r['allowed_low']:g}, {r['allowed_high']:g}]", []).append(str(r["d_k"]))
    if bands:
        def listed(d_ks: list[str]) -> str:
            return ", ".join(d_ks) if len(d_ks) <= 12 else ", ".join(d_ks[:12]) + f" and {len(d_ks) - 12} more"

        where = "; ".join(f"{band} at d_k = {listed(d_ks)}" for band, d_ks in bands.items())
        raise Failed(f"check failed: the scaled variance's 99.9% interval leaves {where}")


_command("variance", schema.VarianceParams, [OUT, JSON, QUIET, NO_PLOT, *EXECUTION], _experiment("variance"))
_command("saturation", schema.SaturationParams, [OUT, JSON, QUIET, NO_PLOT, *EXECUTION],
         _experiment("saturation"))
_command("gradient", schema.GradientParams, [OUT, JSON, QUIET, NO_PLOT, *EXECUTION], _experiment("gradient"))
_command("toy", schema.ToyParams, [OUT, JSON, QUIET, NO_PLOT, *EXECUTION], _experiment("toy"))
_command("check", schema.CheckParams, [JSON, QUIET, *EXECUTION], _check)


@app.command("run")
def run_config(
    config: str = typer.Argument(..., metavar="CONFIG", help="a TOML config, such as configs/variance_vs_dk.toml"),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="KEY=VALUE",
                                             help="override a parameter of the config; repeatable"),
    out: str = OUT.default, json: bool = JSON.default, quiet: bool = QUIET.default,
    no_plot: bool = NO_PLOT.default, workers: Optional[str] = WORKERS.default,
    scheduler: Optional[str] = SCHEDULER.default, max_memory: Optional[str] = MAX_MEMORY.default,
    max_time: Optional[str] = MAX_TIME.default,
) -> None:
    """Run one config (with --set overrides); results go to <out>/<config name>-<hash>/."""
    from sqrtdk import api
    from sqrtdk import config as configs

    loaded = configs.load(config, configs.parse_sets(set_ or []))
    _workers(workers)
    _scheduler(scheduler)
    limits = _limits(max_memory, max_time)
    _target(out, api.folder_name(loaded.experiment, loaded.params, loaded.name))
    chatty = _chatty(quiet)
    result = _run(loaded.experiment, loaded.params, chatty, workers, scheduler, figures=not no_plot, limits=limits)
    _finish(result, out, loaded.name, json, quiet, no_plot, chatty, workers)
    if loaded.experiment == "check":
        _verdict(result)


@app.command("reproduce")
def reproduce_command(
    config_dir: str = typer.Argument("configs", metavar="CONFIG_DIR", help="folder of TOML configs"),
    out: str = typer.Option("results", "--out", metavar="DIR",
                            help="canonical results folder: <config name>/ per config and README.md"),
    check: bool = typer.Option(False, "--check", help="regenerate into a temporary folder and compare the "
                               "tables with those in --out; exit 1 when they are stale"),
    quiet: bool = QUIET.default, workers: Optional[str] = WORKERS.default,
    scheduler: Optional[str] = SCHEDULER.default, max_memory: Optional[str] = MAX_MEMORY.default,
    max_time: Optional[str] = MAX_TIME.default,
) -> None:
    """Run every config and rewrite the results folder and its generated report (README.md)."""
    from sqrtdk import config as configs
    from sqrtdk import reproduce
    from sqrtdk.output import check_writable

    if not config_dir:
        raise InputError("CONFIG_DIR: '' is not allowed; name a folder of TOML configs")
    _nonempty(out, "--out")
    loaded = configs.load_dir(config_dir)
    target = Path(out)
    if check and not target.is_dir():
        raise InputError(f"--out: {out!r} is not allowed with --check; it is not a results folder")
    executors = _workers(workers)
    _scheduler(scheduler)
    limits = _limits(max_memory, max_time)
    if not check:
        check_writable(target)
        reproduce.check_targets(loaded, target)
    chatty = _chatty(quiet)
    bar, progress = _progress(chatty)
    try:
        results = reproduce.run(loaded, executors, scheduler, progress, figures=not check, limits=limits)
    finally:
        if bar is not None:
            bar.stop()
    if check:
        problems = reproduce.check(loaded, results, target)
        if problems:
            raise Failed(f"reproduce --check: {len(problems)} file(s) in {out}/ differ from what "
                         f"{config_dir}/ produces now; run sqrtdk reproduce:\n" + "\n".join(problems))
        if not quiet:
            print(f"{out}/ is up to date with {config_dir}/ ({len(loaded)} configs)")
        return
    bar, progress = _progress(chatty, "figures")
    try:
        with _writing(out):
            files = reproduce.write(loaded, results, target, workers=executors, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    if not quiet:
        for c, result in zip(loaded, results):
            print(f"{target / c.name}/  {c.experiment}, {len(result.tasks)} tasks, {len(result.rows)} rows")
        print(f"{target / 'README.md'}  ({len(files)} files written)")


def _table(result: Any):
    """The rows as a person reads them: the varying parameters first, then measured ± se against theory."""
    from rich.table import Table

    from sqrtdk.output import fmt

    experiment, rows = result.experiment, result.rows
    lead = [schema.column(f) for f in schema.varying(result.params)
            if schema.column(f) not in ("d_k", "seq_len")]

    def pm(row: dict, key: str) -> str:
        value, se = row[key], row[key + "_se"]
        return "" if value is None else f"{value:.5g}" + ("" if se is None else f" ± {se:.2g}")

    def interval(row: dict) -> str:
        low, high = row["variance_ci_low"], row["variance_ci_high"]
        return "" if low is None else f"[{fmt(low)}, {fmt(high)}]"

    def table(title: str, heads: tuple[str, ...]) -> Any:
        t = Table(title=title)
        for head in (*lead, *heads):
            t.add_column(head, justify="right")
        return t

    def add(t: Any, r: dict, *cells: str) -> None:
        t.add_row(*(fmt(r[c]) for c in lead), *cells)

    if experiment == "check":
        t = table("Scaled variance: 99.9% interval against the allowed band",
                  ("d_k", "scores", "variance", "99.9% interval", "allowed", "verdict"))
        for r in rows:
            add(t, r, str(r["d_k"]), f"{r['n_scores']:,}", fmt(r["variance"]),
                f"[{fmt(r['variance_ci_low'])}, {fmt(r['variance_ci_high'])}]",
                f"[{fmt(r['allowed_low'])}, {fmt(r['allowed_high'])}]", "pass" if r["passed"] else "FAIL")
        return t
    if experiment == "toy":
        t = table("Largest softmax weight: one logit high, the rest low",
                  ("n", "scaling", "largest weight", "closed form", "published"))
        for r in rows:
            add(t, r, str(r["seq_len"]), r["scaling"], f"{r['max_weight']:.6g}", f"{r['theory_max_weight']:.6g}",
                fmt(r["published_max_weight"]))
        return t
    if experiment in ("saturation", "gradient"):
        from sqrtdk.attention import GRADIENT, SATURATION

        metrics = SATURATION if experiment == "saturation" else GRADIENT
        extra = ("theory_entropy", "theory_participation") if experiment == "saturation" else ()
        short = {"entropy_ratio_mean": "H / ln n", "effective_tokens_mean": "exp(H)", "entropy_mean": "H",
                 "participation_mean": "1/sum p²", "saturated_fraction": "saturated",
                 "jacobian_diag_max_mean": "max p(1-p)", "vanishing_fraction": "vanishing"}
        t = table(f"{experiment.capitalize()}: mean over query rows ± standard error",
                  ("d_k", "n", "scaling", "logit sd", *(short.get(m, m.removesuffix("_mean")) for m in metrics),
                   *(e.replace("theory_", "theory ") for e in extra)))
        for r in rows:
            add(t, r, str(r["d_k"]), str(r["seq_len"]), r["scaling"], fmt(r["logit_std"]),
                *(pm(r, m) for m in metrics), *(fmt(r[e]) for e in extra))
        return t
    t = table("Scores c·q.k: measured (± standard error) against theory",
              ("d_k", "scaling", "scores", "mean", "theory", "variance", "99.9% interval", "theory",
               "excess kurtosis", "theory"))
    for r in rows:
        add(t, r, str(r["d_k"]), r["scaling"], f"{r['n_scores']:,}", pm(r, "mean"), fmt(r["theory_mean"]),
            fmt(r["variance"]), interval(r), fmt(r["theory_variance"]), pm(r, "excess_kurtosis"),
            fmt(r["theory_excess_kurtosis"]))
    return t


INTERRUPTED = "sqrtdk: interrupted; nothing was written for the unfinished run"
SIGNAL_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
BROKEN_PIPE = 141  # stdout's reader went away: the code of a process that SIGPIPE ends, and no message
OUTPUT_FAILED = 74  # stdout could not be written (sysexits' EX_IOERR); files already written are kept


class Terminated(BaseException):
    """SIGTERM or SIGHUP: unwinds like Ctrl-C, so unfinished run folders are removed, then 143 or 129."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.code = SIGNAL_CODES[signum]


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and an exit code for every way a run can end."""
    import os

    from sqrtdk.executors import ServiceLost

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    if sys.stdout is None:  # started with stdout closed: the files are still written
        sys.stdout = open(os.devnull, "w")
    sys.stdout = _Stdout(sys.stdout)
    code = 0
    try:
        returned = app(args=argv, prog_name="sqrtdk", standalone_mode=False)
        if isinstance(returned, int) and returned:  # typer turns Ctrl-C into a returned 130
            code = returned
            if code == 130:
                print(INTERRUPTED, file=sys.stderr)
        sys.stdout.flush()
    except InputError as error:
        print(f"sqrtdk: error: {error}", file=sys.stderr)
        code = 2
    except Failed as failure:
        print(f"sqrtdk: {failure}", file=sys.stderr)
        code = 1
    except ServiceLost as lost:
        print(f"sqrtdk: error: {lost}", file=sys.stderr)
        code = ServiceLost.code
    except typer.Exit as done:
        code = done.exit_code
    except (KeyboardInterrupt, typer.Abort) as stop:
        print(INTERRUPTED, file=sys.stderr)
        code = 130
    except Terminated as stop:
        print(INTERRUPTED, file=sys.stderr)
        code = stop.code
    except (BrokenPipeError, StdoutClosed):
        code = BROKEN_PIPE
    except StdoutFailed as failed:
        print(f"sqrtdk: error: the results could not be printed ({failed}); the files written are kept",
              file=sys.stderr)
        code = OUTPUT_FAILED
    except OSError as error:
        print(f"sqrtdk: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        code = 2
    except Exception as error:
        # click's usage errors (unknown option, missing value); typer may vendor click, so match by shape
        if getattr(error, "exit_code", None) != 2 or not hasattr(error, "format_message"):
            raise
        print(f"sqrtdk: error: {error.format_message()}", file=sys.stderr)
        code = 2
    if code in (BROKEN_PIPE, OUTPUT_FAILED):
        _silence_stdout()
    sys.stdout = sys.stdout._stream if isinstance(sys.stdout, _Stdout) else sys.stdout
    sys.exit(code)


class StdoutClosed(Exception):
    """stdout's reader went away: exit code 141, no message."""


class StdoutFailed(Exception):
    """stdout took no more output (a full disk, an I/O error): exit code 74."""


class _Stdout:
    """sys.stdout, whose failed writes say that they were stdout's (a closed pipe stays BrokenPipeError)."""

    def __init__(self, stream: Any):
        self._stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _guard(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:  # not an OSError on the way out: click would turn that into exit 1
            raise StdoutClosed from None
        except OSError as error:
            raise StdoutFailed(error.strerror or str(error)) from None

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os.close(devnull)
