"""The command line: one command per experiment, generated from the registry, plus `run` and `reproduce`.

Each experiment's options are its schema's fields (sqrtdk/schema.py), the same ones its config keys are,
so the two cannot drift; the options every run shares are declared once below. Exit codes: 0 success, 1 a
check failed, 2 bad input, 69 the Dask scheduler went away, 74 stdout could not be written, 129/130/143
hung up, interrupted or terminated, 141 stdout's reader went away. stdout carries only results (the
table, or one JSON document with --json); everything else goes to stderr.
"""

from __future__ import annotations

import dataclasses
import inspect
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from sqrtdk import experiments, resources, schema
from sqrtdk.core.theory import INITS
from sqrtdk.errors import INTERRUPTED, InputError
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
    """An option that several commands take, declared once: a flag, or text that its schema parser turns
    into a value (or refuses, naming the option) when the command runs."""

    flag: str
    help: str
    default: Any = None
    metavar: str | None = None
    parser: Any = None  # a schema parser of the option's text; None for a flag

    @property
    def name(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def option(self) -> Any:
        """The option as Typer declares it: a flag, or text (parsed by `value` when the command runs)."""
        if self.parser is None:
            return typer.Option(self.flag, help=self.help)
        return typer.Option(
            self.flag, metavar=self.metavar, help=self.help, show_default=False, autocompletion=_completion(self.parser)
        )

    def parameter(self) -> inspect.Parameter:
        """The option as a parameter of a generated Typer command function."""
        if self.parser is None:
            return _keyword(self.name, Annotated[bool, self.option()], False)
        return _keyword(self.name, Annotated[str | None, self.option()], None)

    def value(self, text: str | None) -> Any:
        """The option's value from its text (its default when not given)."""
        text = self.default if text is None else text
        return None if text is None else _parsed(self.flag, self.parser, text)


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _parsed(flag: str, parser: Any, text: str) -> Any:
    """`parser.from_text(text)`, a refusal naming the option: "--workers: '0' is not allowed; ..."."""
    try:
        return parser.from_text(text)
    except InputError as error:
        raise InputError(f"{flag}: {error}") from None


def _completion(parser: Any) -> Callable[[str], list[str]] | None:
    """Shell completion of an option's value: the allowed values of a choice (the last item of a comma
    list), true/false for a flag, nothing for numbers and paths."""
    options = getattr(parser, "options", None) or (("true", "false") if isinstance(parser, schema.Flag) else None)
    if not options:
        return None

    def complete(incomplete: str) -> list[str]:
        head, comma, last = incomplete.rpartition(",")
        return [head + comma + option for option in options if option.startswith(last)]

    return complete


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

    @property
    def options(self) -> tuple[str, ...]:
        from sqrtdk.plots import FORMATS

        return FORMATS

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
    """A progress bar on stderr while the block runs (for a person at a terminal), else nothing. `label`
    may name the total as {count}: "drawing {count}" reads "drawing 6 figures" once the total is known."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    bar = Progress(console=_console(stderr=True), transient=True)
    task = bar.add_task(label.format(count="").strip(), total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, description=label.format(count=_count(total, "figure")))

    try:
        yield update
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


def _run(
    spec: Experiment, params: Any, stem: str | None, writes: bool, options: dict[str, Any], title: str = ""
) -> None:
    """The one run path: check the target, run, write (when `writes`), print, and give a check's verdict.
    `options` holds the shared options' values, by name."""
    from sqrtdk import api
    from sqrtdk.executors import keep_freed_memory
    from sqrtdk.output import check_replaceable, check_writable
    from sqrtdk.plots import Look

    out, quiet, json = options.get("out", RUNS), options["quiet"], options["json"]
    plot = writes and not options.get("no_plot", False)
    if writes:  # --out before any work: a writable folder, and no folder there that sqrtdk did not make
        check_writable(Path(out))
        check_replaceable(Path(out) / api.folder_name(spec.name, params, stem), "--out")
    chatty = _chatty(quiet)
    if plot:
        _settle_matplotlib(chatty)
    keep_freed_memory()  # once the input is good: --help and a refusal do not load ctypes
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
    if title:  # a config's claim heads its figures, as in reproduce
        result = dataclasses.replace(result, title=title)
    files: list[str] = []
    if writes:
        look = Look(options.get("style", "paper"), options.get("format", ("png", "svg")))
        with _progress(chatty and plot, "drawing {count}") as drawn, _writing(out):
            files = result.write(
                out,
                plot=plot,
                folder=result.folder_name(stem),
                workers=options["workers"],
                look=look,
                progress=drawn,
            )
        _written.extend(files)
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


def _settle_matplotlib(chatty: bool) -> None:
    """Before any process draws: matplotlib's folder, or a temporary one (plots.settle_config_dir), with a
    note instead of a warning from every process that draws."""
    from sqrtdk.plots import settle_config_dir

    unwritable = settle_config_dir()
    if unwritable and chatty:
        _console(stderr=True).print(
            f"matplotlib's folder {unwritable} is not writable; its cache is kept in a temporary folder for this run"
        )


def _shown(default: Any) -> str:
    """A field's default tuple as the user would type it: 16,64."""
    return ",".join(map(str, default))


def _shared_values(shared: tuple[Shared, ...], given: dict[str, Any]) -> dict[str, Any]:
    """The shared options' values by name, each parsed from its text (a flag as it is)."""
    return {s.name: given[s.name] if s.parser is None else s.value(given[s.name]) for s in shared}


def _function(name: str, parameters: list[inspect.Parameter], body: Callable[..., None]) -> Callable[..., None]:
    """A command function with the given parameters, as Typer reads them (its signature and annotations):
    how the commands generated from a schema are declared through Typer's own API."""

    def command(**given: Any) -> None:
        body(**given)

    command.__name__ = name
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    return command


def _experiment(app: typer.Typer, spec: Experiment) -> None:
    """`sqrtdk <experiment>`: an option per schema field (text, repeatable, comma lists, parsed by the
    schema so that a refusal names the option, the value and what is allowed), then the shared ones."""
    fields = schema.fields(spec.params)
    names = {f.name for f in fields}
    shared = (*(WRITING if spec.writes else (JSON, QUIET, WIDE)), *EXECUTION)
    parameters = [
        _keyword(
            f.name,
            Annotated[
                list[str] | None,
                typer.Option(
                    schema.option_name(f.name),
                    metavar=f.metadata["metavar"],
                    help=f"{f.metadata['help']}{_allowed(f.metadata['parser'])}; repeatable, and comma lists  "
                    f"[default: {_shown(f.default)}]",
                    show_default=False,
                    autocompletion=_completion(f.metadata["parser"]),
                ),
            ],
            None,
        )
        for f in fields
    ]

    def body(**given: Any) -> None:
        raw = {k: list(v) for k, v in given.items() if k in names and v}
        params = schema.build(spec.params, raw)  # every value is checked before any work or any write
        _run(spec, params, None, spec.writes, _shared_values(shared, given))

    function = _function(spec.name, [*parameters, *(s.parameter() for s in shared)], body)
    app.command(spec.name, help=spec.summary, context_settings=CONTEXT)(function)


def _config_run(app: typer.Typer) -> None:
    """`sqrtdk run CONFIG`: a config by path or name, with --set overrides."""
    shared = (*WRITING, *EXECUTION)
    parameters = [
        inspect.Parameter(
            "config",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            annotation=Annotated[str, typer.Argument(metavar="CONFIG", show_default=False)],
        ),
        _keyword(
            "set_",
            Annotated[
                list[str] | None,
                typer.Option("--set", metavar="KEY=VALUE", help="override a parameter of the config; repeatable"),
            ],
            None,
        ),
        *(s.parameter() for s in shared),
    ]

    def body(config: str, set_: list[str] | None, **given: Any) -> None:
        from sqrtdk import config as configs

        loaded = configs.load(config, configs.parse_sets(set_ or []))
        options = _shared_values(shared, given)
        claim = "" if set_ else loaded.title  # a config changed by --set may no longer show its claim
        _run(experiments.get(loaded.experiment), loaded.params, loaded.name, True, options, claim)

    help = (
        "Run one config (a TOML file, or the name of a config that ships with sqrtdk: `sqrtdk configs` lists "
        "them; a path wins where both exist), with --set overrides; results go to <out>/<config name>-<hash>/."
    )
    app.command("run", help=help, context_settings=CONTEXT)(_function("run", parameters, body))


REPRODUCE_OUT = Shared(
    "--out",
    "canonical results folder: <config name>/ per config, README.md and details.md  [default: results]",
    "results",
    "DIR",
    NonEmpty(),
)


def _reproduce(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[CONFIG_DIR | CONFIG...]",
            show_default=False,
            help="a folder of configs (default: ./configs, else the configs that ship with sqrtdk), or configs "
            "by name or path, all from one folder",
        ),
    ] = None,
    out: Annotated[str | None, REPRODUCE_OUT.option()] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="regenerate into memory and compare the tables with those in --out; exit 1 when they are stale",
        ),
    ] = False,
    quiet: Annotated[bool, QUIET.option()] = False,
    workers: Annotated[str | None, WORKERS.option()] = None,
    scheduler: Annotated[str | None, SCHEDULER.option()] = None,
    max_memory: Annotated[str | None, MAX_MEMORY.option()] = None,
    max_time: Annotated[str | None, MAX_TIME.option()] = None,
) -> None:
    """Regenerate the canonical results: every config of a folder, or the configs named, each into
    <out>/<config name>/, and the generated report, <out>/README.md and <out>/details.md (written from every
    config's rows: the ones not named keep their committed results)."""
    from sqrtdk import config as configs
    from sqrtdk import reproduce
    from sqrtdk.executors import keep_freed_memory
    from sqrtdk.output import check_writable

    folder, loaded, chosen = configs.selection(targets or [])
    reproduce.check_names(loaded)
    given = dict(out=out, workers=workers, scheduler=scheduler, max_memory=max_memory, max_time=max_time)
    values = _shared_values((REPRODUCE_OUT, *EXECUTION), given)
    target, limits = Path(values["out"]), (values["max_memory"], values["max_time"])
    if check and not target.is_dir():
        raise InputError(f"--out: {values['out']!r} is not allowed with --check; it is not a results folder")
    named = [c for c in loaded if chosen is None or c.name in chosen]
    if not check:
        check_writable(target)
        reproduce.check_targets(named, target)
        if chosen is not None:
            changed = reproduce.changed_since_written([c for c in loaded if c not in named], target)
            if changed:
                raise InputError(
                    f"CONFIG: {changed[0].path} is not allowed to stay out; it changed since "
                    f"{target / changed[0].name}/ was written, and the report would pair its new parameters with "
                    f"the old rows: name it too (sqrtdk reproduce {' '.join(chosen + [changed[0].name])}) or "
                    "reproduce every config"
                )
    unavailable = reproduce.skipped(named)
    for c in named:
        if c.name in unavailable and not quiet:
            print(f"skipped {c.path.name}: {unavailable[c.name]}", file=sys.stderr)
    skip = {**{c.name: "not named" for c in loaded if c not in named}, **unavailable}
    runnable = [c for c in loaded if c.name not in skip]
    chatty = _chatty(quiet)
    if not check:
        _settle_matplotlib(chatty)
    keep_freed_memory()
    with _progress(chatty) as progress:
        results = reproduce.run(
            runnable, values["workers"], values["scheduler"], progress, figures=not check, limits=limits
        )
    shown = f"{folder.as_posix().rstrip('/')}/"
    if check:
        problems = reproduce.check(loaded, results, target, skip)
        if problems:
            raise Failed(
                f"reproduce --check: {len(problems)} file(s) in {values['out']}/ differ from what "
                f"{shown} produces now; run sqrtdk reproduce:\n" + "\n".join(problems)
            )
        if not quiet:
            also = f", {len(unavailable)} skipped" if unavailable else ""
            print(f"{values['out']}/ is up to date with {shown} ({_count(len(runnable), 'config')}{also})")
        return
    with _progress(chatty, "drawing {count}") as progress, _writing(values["out"]):
        files = reproduce.write(loaded, results, target, workers=values["workers"], progress=progress, skip=skip)
    _written.extend(files)
    if not quiet:
        for c, result in zip(runnable, results):
            print(
                f"{target / c.name}/  {c.experiment}, {_count(len(result.tasks), 'task')}, "
                f"{_count(len(result.rows), 'row')}"
            )
        print(f"{target / 'README.md'}  ({len(files)} files written)")


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
    """The rows as a person reads them (tables.of), fitted to the terminal."""
    from sqrtdk.tables import of, render

    return render(of(result), wide=wide)


def _configs(
    copy: Annotated[
        str | None,
        typer.Option(
            "--copy", metavar="DIR", help="copy the configs into DIR (new or empty of them) instead of listing them"
        ),
    ] = None,
) -> None:
    """List the configs that ship with sqrtdk (each one's name runs it: `sqrtdk run NAME`, `sqrtdk
    reproduce NAME`), or copy them into a folder (--copy) for editing."""
    import textwrap

    from sqrtdk import config as configs
    from sqrtdk.tables import width

    if copy is not None:
        target = _parsed("--copy", NonEmpty(), copy)
        written = configs.copy_out(Path(target))
        _written.extend(map(str, written))
        print(f"{target}/  {_count(len(written), 'config')} copied; run them with: sqrtdk reproduce {target}")
        return
    folder = configs.bundled_dir()
    loaded = configs.load_dir(folder)
    name_width = max(len(c.name) for c in loaded)
    lead = name_width + 2 + 11
    columns = width()
    for c in loaded:
        head = f"{c.name:<{name_width}}  {c.experiment:<11}"
        title = textwrap.wrap(c.title, max(20, columns - lead - 1)) or [""]
        if lead + 1 + len(title[0]) > columns:  # too narrow for a title column: the title below its name
            print(head.rstrip())
            for line in textwrap.wrap(c.title, max(20, columns - 4)):
                print(f"    {line}")
            continue
        print(f"{head} {title[0]}")
        for line in title[1:]:
            print(f"{'':<{lead}} {line}")
    print(textwrap.fill(f"({folder})", columns, break_on_hyphens=False).replace("\n", "\n "))


def _inspect(
    d_model: Annotated[int, typer.Option("--d-model", metavar="INT", help="model width")] = 512,
    heads: Annotated[int, typer.Option("--heads", metavar="INT", help="heads; d_k = d_model / heads")] = 8,
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            metavar="RULE|NUMBER",
            help="the factor of q.k: a rule (none, sqrt, linear, qknorm, logn) or a number such as 0.125",
            autocompletion=_completion(schema.Choice(("none", "sqrt", "linear", "qknorm", "logn"), "the scale")),
        ),
    ] = "sqrt",
    qk_norm_gain: Annotated[
        float | None,
        typer.Option(
            "--qk-norm-gain", metavar="NUMBER", help="QK-norm's gain g (default sqrt(d_k))", show_default=False
        ),
    ] = None,
    init: Annotated[
        str, typer.Option("--init", click_type=click.Choice(INITS), help="how W_q and W_k are drawn")
    ] = "lecun",
    init_std: Annotated[
        float | None,
        typer.Option("--init-std", metavar="NUMBER", help="std of --init normal (0.02)", show_default=False),
    ] = None,
    seq_len: Annotated[int, typer.Option("--seq-len", metavar="INT", help="keys a query sees")] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="print the numbers as JSON")] = False,
) -> None:
    """What one attention configuration does at initialisation: the per-head d_k, the logit spread, where
    it sits against s_c for the sequence length, the predicted entropy and largest weight, and warnings
    for the usual mistakes."""
    import json
    import textwrap

    from sqrtdk import inspect as inspection
    from sqrtdk.tables import width

    found = inspection.inspect(d_model, heads, scale, qk_norm_gain, init, init_std, seq_len)
    if as_json:
        print(json.dumps({**vars(found), "entropy_ratio": found.entropy_ratio}, indent=2))
        return
    for line in inspection.lines(found, init):
        glued = line.replace("ln n", "ln\0n")  # never broken
        text = textwrap.fill(glued, width(), subsequent_indent="    ", break_on_hyphens=False)
        _print(text.replace("\0", " ") + "\n")


def _version(value: bool) -> None:
    if value:
        from sqrtdk.output import version

        typer.echo(f"sqrtdk {version()}")
        raise typer.Exit()


def _overview(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="print sqrtdk's version and exit"),
    ] = False,
) -> None:
    """Measure why attention divides its scores by sqrt(d_k)."""
    if ctx.invoked_subcommand is None:  # `sqrtdk` alone: the list of commands (a request for help, not an error)
        typer.echo(ctx.get_help())


def app() -> typer.Typer:
    """The whole command line as a Typer app: the experiments (in registry order), then `run`,
    `reproduce`, `configs` and `inspect`; completion from Typer (--install-completion)."""
    application = typer.Typer(
        name="sqrtdk",
        context_settings=CONTEXT,
        rich_markup_mode=None,  # plain help: fitted by click to the terminal, readable when piped
        pretty_exceptions_enable=False,
        invoke_without_command=True,
        callback=_overview,
    )
    for spec in experiments.every():
        _experiment(application, spec)
    _config_run(application)
    application.command("reproduce", context_settings=CONTEXT)(_reproduce)
    application.command("configs", context_settings=CONTEXT)(_configs)
    application.command("inspect", context_settings=CONTEXT)(_inspect)
    return application


def cli() -> click.Group:
    """The app as the click group Typer builds from it (what `main` runs, and what completion reads)."""
    group = typer.main.get_command(app())
    assert isinstance(group, click.Group)
    return group


SIGNAL_CODES: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
BROKEN_PIPE = 141  # stdout's reader went away: the code of a process that SIGPIPE ends, and no message
OUTPUT_FAILED = 74  # stdout could not be written (sysexits' EX_IOERR); files already written are kept
_written: list[str] = []  # the files this command wrote, which a failure to print its results keeps


class Terminated(BaseException):
    """SIGINT, SIGTERM or SIGHUP: unwinds the run, so unfinished run folders are removed, then 130, 143
    or 129."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.code = SIGNAL_CODES[signum]


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _signal_under(error: BaseException) -> Terminated | None:
    """The Terminated that `error` wraps, if any: a signal handled while Python creates a class (or runs
    other code that wraps exceptions) arrives as RuntimeError("Error calling __set_name__ ...") caused by it."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, Terminated):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and an exit code for every way a run can end."""
    import os

    from sqrtdk.executors import ServiceLost

    for signum in SIGNAL_CODES:  # Ctrl-C too: Typer would turn a KeyboardInterrupt into a silent exit 130
        signal.signal(signum, _terminate)
    if sys.stdout is None:  # started with stdout closed: the files are still written
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (it stays open for the whole process)
    sys.stdout = _Stdout(sys.stdout)
    code = 0
    _written.clear()
    try:
        returned = cli().main(args=argv, prog_name="sqrtdk", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0  # an exit code (--help, --version) or None
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
        kept = f"; the {len(_written)} files written are kept" if _written else ""
        print(f"sqrtdk: error: the results could not be printed ({failed}){kept}", file=sys.stderr)
        code = OUTPUT_FAILED
    except OSError as error:
        print(f"sqrtdk: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        code = 2
    except click.BadParameter as error:  # a value refused while the options are parsed
        option = error.param.opts[0] if error.param is not None and error.param.opts else "value"
        print(f"sqrtdk: error: {option}: {error.message}", file=sys.stderr)
        code = 2
    except Exception as error:
        signalled = _signal_under(error)
        if signalled is not None:  # a signal that arrived while Python wrapped exceptions (a class being made)
            print(INTERRUPTED, file=sys.stderr)
            code = signalled.code
        elif isinstance(error, click.UsageError):  # an unknown option, a missing value
            print(f"sqrtdk: error: {error.format_message()}", file=sys.stderr)
            code = 2
        else:
            raise
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
