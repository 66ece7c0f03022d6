"""The command line: one command per experiment, generated from the registry, plus `run` and `reproduce`.

Each experiment's options are its schema's fields (sqrtdk/schema.py), the same ones its config keys are,
so the two cannot drift; the options every run shares are declared once below. Exit codes: 0 success, 1 a
check failed, 2 bad input, 69 the Dask scheduler went away, 74 stdout could not be written, 129/130/143
hung up, interrupted or terminated, 141 stdout's reader went away. stdout carries only results (the
table, or one JSON document with --json); everything else goes to stderr.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from sqrtdk import experiments, resources, schema
from sqrtdk.core.theory import INITS
from sqrtdk.errors import InputError
from sqrtdk.experiments import Experiment


class Failed(Exception):
    """A check that ran and did not pass: exit code 1."""


@dataclass(frozen=True)
class NonEmpty:
    what: str = "it"
    allowed: str = "it must not be empty"

    def from_text(self, text: str) -> str:
        if not text.strip():
            raise InputError(f"{text!r} is not allowed; {self.allowed}")
        return text


@dataclass(frozen=True)
class Shared:
    """An option that several commands take, declared once for both kinds of command."""

    flag: str
    help: str
    default: Any = None
    metavar: str | None = None
    parser: Any = None  # a schema parser of the option's text; None for a flag

    def click(self) -> click.Option:
        if self.parser is None:
            return click.Option([self.flag], is_flag=True, default=False, help=self.help)
        return click.Option(
            [self.flag],
            type=click.types.FuncParamType(self.parser.from_text),
            default=self.default,
            metavar=self.metavar,
            help=self.help,
            show_default=False,
        )


RUNS = "results/runs"
OUT = Shared(
    "--out", f"folder for ad-hoc runs; each writes <name>-<hash>/ in it  [default: {RUNS}]", RUNS, "DIR", (NonEmpty())
)
JSON = Shared("--json", "print one JSON document (config, rows, files) on stdout and nothing else")
QUIET = Shared("--quiet", "no table, progress or notes; errors only")
NO_PLOT = Shared("--no-plot", "write the tables and manifest but no figures")


@dataclass(frozen=True)
class Formats:
    """'png,pdf': figure formats, several allowed."""

    def from_text(self, text: str) -> tuple[str, ...]:
        from sqrtdk.plots import FORMATS

        chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",")))
        wrong = [c for c in chosen if c not in FORMATS]
        if wrong or not chosen:
            raise InputError(
                f"{text!r} is not allowed; choose from {', '.join(FORMATS)}, several with commas (png,pdf)"
            )
        return chosen


FORMAT = Shared(
    "--format",
    "figure formats: png, svg, pdf, several with commas  [default: png,svg]",
    "png,svg",
    "LIST",
    Formats(),
)
STYLE = Shared(
    "--style",
    "figures for a paper (7 in wide, 9 pt text; one panel 3.4 in) or a slide (11 in, 15 pt)  [default: paper]",
    "paper",
    "NAME",
    schema.Choice(("paper", "slide"), "the style"),
)
WIDE = Shared("--wide", "print every column of the table, in one block however wide")
WORKERS = Shared(
    "--workers",
    "local worker processes that run the tasks  [default: all cores]",
    None,
    "N",
    (schema.Integer(1, 1024, "the number of workers")),
)
SCHEDULER = Shared(
    "--scheduler",
    "run the tasks on this Dask distributed scheduler (needs sqrtdk[dask])",
    None,
    "ADDRESS",
    (NonEmpty()),
)
MAX_MEMORY = Shared(
    "--max-memory",
    f"refuse a run whose tasks would hold more than this many GiB at once  [default: {resources.MAX_MEMORY_GIB:g}]",
    None,
    "GIB",
    (schema.Real("the memory limit in GiB", lo=0.0, lo_open=True, hi=1e9)),
)
MAX_TIME = Shared(
    "--max-time",
    f"refuse a run estimated to take longer than this many minutes  [default: {resources.MAX_TIME_MINUTES:g}]",
    None,
    "MINUTES",
    (schema.Real("the time limit in minutes", lo=0.0, lo_open=True, hi=1e9)),
)
WRITING = (OUT, JSON, QUIET, WIDE, NO_PLOT, FORMAT, STYLE)
EXECUTION = (WORKERS, SCHEDULER, MAX_MEMORY, MAX_TIME)
CONTEXT = {"help_option_names": ["-h", "--help"]}


def _chatty(quiet: bool) -> bool:
    """Human output on stderr only for a person at a terminal."""
    return not quiet and sys.stderr.isatty()


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1, which means "a check failed"
            raise StdoutClosed

    stream = sys.stderr if stderr else sys.stdout
    return _Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=False)


def _print(text: str, stderr: bool = False) -> None:
    """Text as it is: no markup, no highlighting, no rewrapping (tables are already fitted)."""
    _console(stderr).print(text, markup=False, highlight=False, soft_wrap=True, end="")


@contextmanager
def _progress(enabled: bool, label: str = "tasks") -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr while the block runs (for a person at a terminal), else nothing."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    bar = Progress(console=_console(stderr=True), transient=True)
    task = bar.add_task(label, total=None)
    bar.start()
    try:
        yield lambda done, total: bar.update(task, completed=done, total=total)
    finally:
        bar.stop()


@contextmanager
def _writing(out: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a folder that vanished) into one line naming --out."""
    try:
        yield
    except OSError as error:
        raise InputError(
            f"--out: {out!r} is not allowed; writing the results there failed "
            f"({error.strerror or error}); nothing was written"
        ) from None


def _run(spec: Experiment, params: Any, stem: str | None, writes: bool, options: dict[str, Any]) -> None:
    """The one run path: check the target, run, write (when `writes`), print, and give a check's verdict."""
    from sqrtdk import api
    from sqrtdk.output import check_replaceable, check_writable
    from sqrtdk.plots import Look

    out, quiet, json = options.get("out", RUNS), options["quiet"], options["json"]
    plot = writes and not options.get("no_plot", False)
    if writes:  # --out before any work: a writable folder, and no folder there that sqrtdk did not make
        check_writable(Path(out))
        check_replaceable(Path(out) / api.folder_name(spec.name, params, stem), "--out")
    chatty = _chatty(quiet)
    with _progress(chatty) as progress:
        result = api.run_params(
            spec.name,
            params,
            progress,
            options["workers"],
            options["scheduler"],
            plot,
            (options["max_memory"], options["max_time"]),
        )
    files: list[str] = []
    if writes:
        with _writing(out):
            look = Look(options.get("style", "paper"), options.get("format", ("png", "svg")))
            files = result.write(out, plot=plot, folder=result.folder_name(stem), workers=options["workers"], look=look)
    if json:
        sys.stdout.write(result.to_json(files))
        if chatty:
            _print(_table(result, options.get("wide", False)), stderr=True)
    elif not quiet:
        _print(_table(result, options.get("wide", False)))
    if chatty and files:
        _console(stderr=True).print(f"wrote {Path(files[0]).parent}/ ({len(files)} files)")
    failure = spec.verdict(result) if spec.verdict else None
    if failure:
        raise Failed(failure)


def _shown(default: Any) -> str:
    """A field's default tuple as the user would type it: 16,64."""
    return ",".join(map(str, default))


def _command(spec: Experiment) -> click.Command:
    """`sqrtdk <experiment>`: an option per schema field (repeatable, comma lists), then the shared ones."""
    fields = schema.fields(spec.params)
    names = {f.name for f in fields}
    options = [
        click.Option(
            [schema.option_name(f.name)],
            multiple=True,
            metavar=f.metadata["metavar"],
            help=f"{f.metadata['help']}{_allowed(f.metadata['parser'])}; repeatable, and comma lists  "
            f"[default: {_shown(f.default)}]",
        )
        for f in fields
    ]
    shared = (*(WRITING if spec.writes else (JSON, QUIET, WIDE)), *EXECUTION)

    def callback(**given: Any) -> None:
        raw = {k: list(v) for k, v in given.items() if k in names and v}
        params = schema.build(spec.params, raw)  # every value is checked before any work or any write
        _run(spec, params, None, spec.writes, {k: v for k, v in given.items() if k not in names})

    return click.Command(
        spec.name,
        callback=callback,
        params=[*options, *(s.click() for s in shared)],
        help=spec.summary,
        context_settings=CONTEXT,
    )


def _run_config(config: str, set_: tuple[str, ...], **options: Any) -> None:
    """Run one config (with --set overrides); results go to <out>/<config name>-<hash>/."""
    from sqrtdk import config as configs

    loaded = configs.load(config, configs.parse_sets(set_))
    _run(experiments.get(loaded.experiment), loaded.params, loaded.name, True, options)


def _reproduce(
    config_dir: str | None,
    out: str,
    check: bool,
    quiet: bool,
    workers: int | None,
    scheduler: str | None,
    max_memory: float | None,
    max_time: float | None,
) -> None:
    """Run every config (in CONFIG_DIR: ./configs, else the configs that ship with sqrtdk) and rewrite the
    results folder and its generated report (README.md)."""
    from sqrtdk import config as configs
    from sqrtdk import reproduce
    from sqrtdk.output import check_writable

    if config_dir == "":
        raise InputError("CONFIG_DIR: '' is not allowed; name a folder of TOML configs")
    folder = configs.default_dir() if config_dir is None else Path(config_dir)
    config_dir = str(folder)
    loaded = configs.load_dir(folder)
    target = Path(out)
    if check and not target.is_dir():
        raise InputError(f"--out: {out!r} is not allowed with --check; it is not a results folder")
    if not check:
        check_writable(target)
        reproduce.check_targets(loaded, target)
    chatty = _chatty(quiet)
    skip = reproduce.skipped(loaded)
    for c in loaded:
        if c.name in skip and not quiet:
            print(f"skipped {c.path.name}: {skip[c.name]}", file=sys.stderr)
    runnable = [c for c in loaded if c.name not in skip]
    with _progress(chatty) as progress:
        results = reproduce.run(
            runnable, workers, scheduler, progress, figures=not check, limits=(max_memory, max_time)
        )
    if check:
        problems = reproduce.check(loaded, results, target, skip)
        if problems:
            raise Failed(
                f"reproduce --check: {len(problems)} file(s) in {out}/ differ from what "
                f"{config_dir}/ produces now; run sqrtdk reproduce:\n" + "\n".join(problems)
            )
        if not quiet:
            also = f", {len(skip)} skipped" if skip else ""
            print(f"{out}/ is up to date with {config_dir}/ ({len(runnable)} configs{also})")
        return
    with _progress(chatty, "figures") as progress, _writing(out):
        files = reproduce.write(loaded, results, target, workers=workers, progress=progress, skip=skip)
    if not quiet:
        for c, result in zip(runnable, results):
            print(
                f"{target / c.name}/  {c.experiment}, {_count(len(result.tasks), 'task')}, "
                f"{_count(len(result.rows), 'row')}"
            )
        print(f"{target / 'README.md'}  ({len(files)} files written)")


RUN = click.Command(
    "run",
    context_settings=CONTEXT,
    callback=_run_config,
    help=_run_config.__doc__,
    params=[
        click.Argument(["config"], metavar="CONFIG"),
        click.Option(
            ["--set", "set_"], multiple=True, metavar="KEY=VALUE", help="override a parameter of the config; repeatable"
        ),
        *(s.click() for s in (*WRITING, *EXECUTION)),
    ],
)
REPRODUCE = click.Command(
    "reproduce",
    context_settings=CONTEXT,
    callback=_reproduce,
    help=_reproduce.__doc__,
    params=[
        click.Argument(["config_dir"], default=None, required=False, metavar="[CONFIG_DIR]"),
        Shared(
            "--out",
            "canonical results folder: <config name>/ per config and README.md  [default: results]",
            "results",
            "DIR",
            NonEmpty(),
        ).click(),
        click.Option(
            ["--check"],
            is_flag=True,
            help="regenerate into a temporary folder and compare the tables "
            "with those in --out; exit 1 when they are stale",
        ),
        *(s.click() for s in (QUIET, *EXECUTION)),
    ],
)


def _count(n: int, noun: str) -> str:
    """'1 task', '3 tasks'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _allowed(parser: Any) -> str:
    """'; one of gaussian, uniform, ...' for a choice, as --help lists it; nothing for numbers."""
    options = getattr(parser, "options", None)
    return (
        f"; one of {', '.join(options)}" if options else ("; true or false" if isinstance(parser, schema.Flag) else "")
    )


def _table(result: Any, wide: bool = False) -> str:
    """The rows as a person reads them: the varying parameters first, then the experiment's own columns,
    fitted to the terminal (sqrtdk/tables.py)."""
    from dataclasses import replace

    from sqrtdk.output import fmt
    from sqrtdk.tables import Column, render

    lead = [schema.column(f) for f in schema.varying(result.params) if schema.column(f) not in ("d_k", "seq_len")]
    table = result.spec.table(result)
    columns = [Column(c, tuple(fmt(row[c]) for row in result.rows), key=True) for c in lead]
    return render(replace(table, columns=(*columns, *table.columns)), wide=wide)


def _version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from sqrtdk.output import version

        click.echo(f"sqrtdk {version()}")
        ctx.exit()


def _configs(copy: str | None) -> None:
    """List the configs that ship with sqrtdk, or copy them into a folder (--copy) for editing."""
    from sqrtdk import config as configs

    if copy is not None:
        written = configs.copy_out(Path(copy))
        print(f"{copy}/  {_count(len(written), 'config')} copied; run them with: sqrtdk reproduce {copy}")
        return
    folder = configs.bundled_dir()
    for c in configs.load_dir(folder):
        print(f"{c.name:<24} {c.experiment:<11} {c.title}")
    print(f"({folder})")


CONFIGS = click.Command(
    "configs",
    context_settings=CONTEXT,
    callback=_configs,
    help=_configs.__doc__,
    params=[
        click.Option(
            ["--copy"],
            metavar="DIR",
            type=click.types.FuncParamType(NonEmpty().from_text),
            help="copy the configs into DIR (new or empty of them) instead of listing them",
        )
    ],
)


def _inspect(
    d_model: int,
    heads: int,
    scale: str,
    qk_norm_gain: float | None,
    init: str,
    init_std: float | None,
    seq_len: int,
    as_json: bool,
) -> None:
    """What one attention configuration does at initialisation: the per-head d_k, the logit spread, where
    it sits against s_c for the sequence length, the predicted entropy and largest weight, and warnings
    for the usual mistakes."""
    import json
    import textwrap

    from sqrtdk import inspect
    from sqrtdk.tables import width

    found = inspect.inspect(d_model, heads, scale, qk_norm_gain, init, init_std, seq_len)
    if as_json:
        print(json.dumps({**vars(found), "entropy_ratio": found.entropy_ratio}, indent=2))
        return
    for line in inspect.lines(found, init):
        glued = line.replace("ln n", "ln\0n")  # never broken
        text = textwrap.fill(glued, width(), subsequent_indent="    ", break_on_hyphens=False)
        _print(text.replace("\0", " ") + "\n")


INSPECT = click.Command(
    "inspect",
    context_settings=CONTEXT,
    callback=_inspect,
    help=_inspect.__doc__,
    params=[
        click.Option(["--d-model"], type=int, default=512, show_default=True, metavar="INT", help="model width"),
        click.Option(
            ["--heads"], type=int, default=8, show_default=True, metavar="INT", help="heads; d_k = d_model / heads"
        ),
        click.Option(
            ["--scale"],
            default="sqrt",
            show_default=True,
            metavar="RULE|NUMBER",
            help="the factor of q.k: a rule (none, sqrt, linear, qknorm, logn) or a number such as 0.125",
        ),
        click.Option(
            ["--qk-norm-gain"], type=float, default=None, metavar="NUMBER", help="QK-norm's gain g (default sqrt(d_k))"
        ),
        click.Option(
            ["--init"],
            type=click.Choice(INITS),
            default="lecun",
            show_default=True,
            help="how W_q and W_k are drawn",
        ),
        click.Option(["--init-std"], type=float, default=None, metavar="NUMBER", help="std of --init normal (0.02)"),
        click.Option(["--seq-len"], type=int, default=512, show_default=True, metavar="INT", help="keys a query sees"),
        click.Option(["--json", "as_json"], is_flag=True, help="print the numbers as JSON"),
    ],
)


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # the registry's order, then run and reproduce


def cli() -> click.Group:
    """The whole command line: the experiments (in registry order), then `run` and `reproduce`."""
    commands = [*(_command(spec) for spec in experiments.every()), RUN, REPRODUCE, CONFIGS, INSPECT]
    version = click.Option(
        ["--version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_version,
        help="print sqrtdk's version and exit",
    )
    return _Group(
        "sqrtdk",
        commands={c.name: c for c in commands if c.name},
        params=[version],
        invoke_without_command=True,
        callback=_overview,
        context_settings=CONTEXT,
        help="Measure why attention divides its scores by sqrt(d_k).",
    )


def _overview() -> None:
    """`sqrtdk` alone: the list of commands, as --help gives it (a request for help, not an error)."""
    ctx = click.get_current_context()
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


INTERRUPTED = "sqrtdk: interrupted; nothing was written for the unfinished run"
SIGNAL_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
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
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (it stays open for the whole process)
    sys.stdout = _Stdout(sys.stdout)
    code = 0
    try:
        cli().main(args=argv, prog_name="sqrtdk", standalone_mode=False)
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
    except click.exceptions.Exit as done:
        code = done.exit_code
    except (KeyboardInterrupt, click.Abort):
        print(INTERRUPTED, file=sys.stderr)
        code = 130
    except Terminated as stop:
        print(INTERRUPTED, file=sys.stderr)
        code = stop.code
    except (BrokenPipeError, StdoutClosed):
        code = BROKEN_PIPE
    except StdoutFailed as failed:
        print(
            f"sqrtdk: error: the results could not be printed ({failed}); the files written are kept", file=sys.stderr
        )
        code = OUTPUT_FAILED
    except OSError as error:
        print(f"sqrtdk: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        code = 2
    except click.BadParameter as error:  # a value refused while the options are parsed
        option = error.param.opts[0] if error.param is not None and error.param.opts else "value"
        print(f"sqrtdk: error: {option}: {error.message}", file=sys.stderr)
        code = 2
    except Exception as error:
        if not isinstance(error, click.UsageError):  # an unknown option, a missing value
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
