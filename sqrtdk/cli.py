"""The command line: parse options through the experiment's schema, call the API, render the rows.

Options are generated from the same frozen dataclasses that configs use (schema.py), so the two cannot
drift. Exit codes: 0 success, 1 a check failed, 2 bad input, 130/143 interrupted. stdout carries only
results (the table, or one JSON document with --json); everything else goes to stderr.
"""

from __future__ import annotations

import inspect
import signal
import sys
from collections.abc import Callable
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

    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160, soft_wrap=False)


def _progress(enabled: bool) -> tuple[Any, Callable[[int, int], None] | None]:
    if not enabled:
        return None, None
    from rich.progress import Progress

    bar = Progress(console=_console(stderr=True), transient=True)
    task = bar.add_task("tasks", total=None)
    bar.start()
    return bar, lambda done, total: bar.update(task, completed=done, total=total)


def _run(experiment: str, raw: dict[str, Any], chatty: bool):
    from sqrtdk import api

    params = api.parse(experiment, raw)
    bar, progress = _progress(chatty)
    try:
        return api.run_params(experiment, params, progress)
    finally:
        if bar is not None:
            bar.stop()


def _schema_parameters(schema_cls: type) -> list[inspect.Parameter]:
    parameters = []
    for f in schema.fields(schema_cls):
        sweep = f.metadata["sweep"]
        shown = ",".join(map(str, f.default)) if sweep else str(f.default)
        text = f.metadata["help"] + ("; repeatable, and comma lists" if sweep else "") + f"  [default: {shown}]"
        option = typer.Option(None, schema.option_name(f.name), help=text, metavar=f.metadata["metavar"],
                              show_default=False)
        annotation = Optional[list[str]] if sweep else Optional[str]
        parameters.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=annotation))
    return parameters


def _flag(name: str, text: str) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                             default=typer.Option(False, "--" + name.replace("_", "-"), help=text))


OUT = inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                        default=typer.Option("results", "--out", metavar="DIR",
                                             help="results folder; each run writes <experiment>-<hash>/ in it"))
JSON = _flag("json", "print one JSON document (config, rows, files) on stdout and nothing else")
QUIET = _flag("quiet", "no table, progress or notes; errors only")
NO_PLOT = _flag("no_plot", "write the tables and manifest but no figures")


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


def _experiment(name: str) -> Callable[..., None]:
    def body(raw: dict[str, Any], out: str, json: bool, quiet: bool, no_plot: bool) -> None:
        from sqrtdk import api
        from sqrtdk.output import check_writable

        api.parse(name, raw)  # every value is checked before any work or any write
        check_writable(Path(out))
        chatty = _chatty(quiet)
        result = _run(name, raw, chatty)
        files = result.write(out, plot=not no_plot)
        if json:
            sys.stdout.write(result.to_json(files))
            if chatty:
                _console(stderr=True).print(_table(name, result.rows))
        elif not quiet:
            _console().print(_table(name, result.rows))
        if chatty:
            _console(stderr=True).print(f"wrote {Path(files[0]).parent}/ ({len(files)} files)")
    return body


def _check(raw: dict[str, Any], json: bool, quiet: bool) -> None:
    chatty = _chatty(quiet)
    result = _run("check", raw, chatty)
    if json:
        sys.stdout.write(result.to_json())
    elif not quiet:
        _console().print(_table("check", result.rows))
    failing = [r["d_k"] for r in result.rows if not r["passed"]]
    if failing:
        tol = result.config["tol"]
        raise Failed(f"check failed: the scaled variance's 99.9% interval leaves [{1 - tol:g}, {1 + tol:g}] "
                     f"at d_k = {', '.join(map(str, failing))}")


_command("variance", schema.VarianceParams, [OUT, JSON, QUIET, NO_PLOT], _experiment("variance"))
_command("saturation", schema.SaturationParams, [OUT, JSON, QUIET, NO_PLOT], _experiment("saturation"))
_command("gradient", schema.GradientParams, [OUT, JSON, QUIET, NO_PLOT], _experiment("gradient"))
_command("check", schema.CheckParams, [JSON, QUIET], _check)


def _table(experiment: str, rows: list[dict]):
    from rich.table import Table

    from sqrtdk.output import fmt

    def pm(row: dict, key: str) -> str:
        value, se = row[key], row[key + "_se"]
        return "" if value is None else f"{value:.5g} ± {se:.2g}"

    if experiment == "check":
        table = Table(title="Scaled variance: 99.9% interval against the allowed band")
        for head in ("d_k", "scores", "variance", "99.9% interval", "allowed", "verdict"):
            table.add_column(head, justify="right")
        for r in rows:
            table.add_row(str(r["d_k"]), f"{r['n_scores']:,}", fmt(r["variance"]),
                          f"[{fmt(r['variance_ci_low'])}, {fmt(r['variance_ci_high'])}]",
                          f"[{fmt(r['allowed_low'])}, {fmt(r['allowed_high'])}]",
                          "pass" if r["passed"] else "FAIL")
        return table
    if experiment in ("saturation", "gradient"):
        from sqrtdk.attention import GRADIENT, SATURATION

        metrics = SATURATION if experiment == "saturation" else GRADIENT
        extra = ("theory_entropy", "theory_participation") if experiment == "saturation" else ()
        table = Table(title=f"{experiment.capitalize()}: mean over query rows ± standard error")
        short = {"entropy_ratio_mean": "H / ln n", "effective_tokens_mean": "exp(H)", "entropy_mean": "H",
                 "participation_mean": "1/sum p²", "saturated_fraction": "saturated",
                 "jacobian_diag_max_mean": "max p(1-p)", "vanishing_fraction": "vanishing"}
        for head in ("d_k", "n", "scaling", "logit sd") + tuple(short.get(m, m.removesuffix("_mean"))
                                                                for m in metrics) \
                + tuple(e.replace("theory_", "theory ") for e in extra):
            table.add_column(head, justify="right")
        for r in rows:
            table.add_row(str(r["d_k"]), str(r["seq_len"]), r["scaling"], fmt(r["logit_std"]),
                          *(pm(r, m) for m in metrics), *(fmt(r[e]) for e in extra))
        return table
    table = Table(title="Scores c·q.k: measured (± standard error) against theory")
    for head in ("d_k", "scaling", "scores", "mean", "theory", "variance", "99.9% interval", "theory",
                 "excess kurtosis", "theory"):
        table.add_column(head, justify="right")
    for r in rows:
        table.add_row(str(r["d_k"]), r["scaling"], f"{r['n_scores']:,}", pm(r, "mean"), fmt(r["theory_mean"]),
                      fmt(r["variance"]), f"[{fmt(r['variance_ci_low'])}, {fmt(r['variance_ci_high'])}]",
                      fmt(r["theory_variance"]), pm(r, "excess_kurtosis"), fmt(r["theory_excess_kurtosis"]))
    return table


INTERRUPTED = "sqrtdk: interrupted; nothing was written for the unfinished run"


class Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so unfinished run folders are removed, then exit 143."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and an exit code for every way a run can end."""
    signal.signal(signal.SIGTERM, _terminate)
    code = 0
    try:
        returned = app(args=argv, prog_name="sqrtdk", standalone_mode=False)
        if isinstance(returned, int) and returned:  # typer turns Ctrl-C into a returned 130
            code = returned
            if code == 130:
                print(INTERRUPTED, file=sys.stderr)
    except InputError as error:
        print(f"sqrtdk: error: {error}", file=sys.stderr)
        code = 2
    except Failed as failure:
        print(f"sqrtdk: {failure}", file=sys.stderr)
        code = 1
    except typer.Exit as done:
        code = done.exit_code
    except (KeyboardInterrupt, typer.Abort, Terminated) as stop:
        print(INTERRUPTED, file=sys.stderr)
        code = 143 if isinstance(stop, Terminated) else 130
    except OSError as error:
        print(f"sqrtdk: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "),
              file=sys.stderr)
        code = 2
    except Exception as error:
        # click's usage errors (unknown option, missing value); typer may vendor click, so match by shape
        if getattr(error, "exit_code", None) != 2 or not hasattr(error, "format_message"):
            raise
        print(f"sqrtdk: error: {error.format_message()}", file=sys.stderr)
        code = 2
    sys.stdout.flush()
    sys.exit(code)
