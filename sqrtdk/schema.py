"""Parameter schemas: one frozen dataclass per experiment, shared by the command line and the configs.

Each field carries its help text and a parser that turns a raw value (a string from the command line,
or a TOML value) into the typed value, or raises `InputError` saying what is allowed. Fields marked
`sweep` take a list (repeated options, comma lists, TOML arrays); the grid of their values is expanded
into independent tasks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqrtdk.errors import InputError

MAX_DIM = 65536  # largest d_k: a 512 x 65536 float32 block is 128 MiB
MAX_SAMPLES = 10**12  # scores per point; streaming keeps memory flat, time is the user's


# ---- parsers: raw value -> typed value, or InputError("<value> is not allowed; <what is allowed>") ----

def _show(raw: Any) -> str:
    return repr(raw) if isinstance(raw, str) else str(raw)


def integer(lo: int, hi: int, what: str) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str):
            text = raw.strip().replace("_", "")
            try:
                value = int(text)
            except ValueError:
                try:  # accept 1e6 and 2**20 spelt as 1048576.0, but only when it is a whole number
                    as_float = float(text)
                    if math.isfinite(as_float) and as_float == int(as_float):
                        value = int(as_float)
                except ValueError:
                    pass
        if value is None or not lo <= value <= hi:
            raise InputError(f"{_show(raw)} is not allowed; {what} must be an integer from {lo} to {hi}")
        return value
    return parse


def real(what: str, lo: float = -math.inf, hi: float = math.inf,
         lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], float]:
    def allowed() -> str:
        parts = []
        if lo > -math.inf:
            parts.append(f"{'>' if lo_open else '>='} {lo:g}")
        if hi < math.inf:
            parts.append(f"{'<' if hi_open else '<='} {hi:g}")
        return f"{what} must be a finite number" + (" " + " and ".join(parts) if parts else "")

    def parse(raw: Any) -> float:
        value = None
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            value = float(raw)
        elif isinstance(raw, str):
            try:
                value = float(raw.strip())
            except ValueError:
                value = None
        ok = value is not None and math.isfinite(value)
        if ok:
            ok = (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
        if not ok:
            raise InputError(f"{_show(raw)} is not allowed; {allowed()}")
        return value
    return parse


# ---- fields ----

def param(default: Any, help: str, parse: Callable[[Any], Any], sweep: bool = False,
          metavar: str = "NUMBER") -> Any:
    """A schema field: `help` is the one-line meaning and unit, `sweep` allows a list of values."""
    meta = {"help": help, "parse": parse, "sweep": sweep, "metavar": metavar}
    if sweep:
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


def dim_field(default: Iterable[int] = (64,)) -> Any:
    return param(tuple(default), "head dimension d_k (entries per query and key vector)",
                 integer(1, MAX_DIM, "d_k"), sweep=True, metavar="INT")


def seed_field() -> Any:
    return param(0, "root seed; every task draws from its own stream spawned from it",
                 integer(0, 2**63 - 1, "the seed"), metavar="INT")


def mean_field() -> Any:
    return param(0.0, "mean of every entry of q and k", real("the mean"))


def std_field() -> Any:
    return param(1.0, "standard deviation of every entry of q and k (> 0)",
                 real("the std", lo=0.0, lo_open=True, hi=1e6))


@dataclass(frozen=True)
class VarianceParams:
    """`sqrtdk variance`: moments of q.k for iid N(mean, std^2) entries, scaled and unscaled."""
    dim: tuple[int, ...] = dim_field()
    samples: int = param(2**21, "scores per d_k (rounded up to whole sampling blocks)",
                         integer(1, MAX_SAMPLES, "the number of scores"), metavar="INT")
    seed: int = seed_field()
    mean: float = mean_field()
    std: float = std_field()


@dataclass(frozen=True)
class CheckParams:
    """`sqrtdk check`: the scaled variance's 99.9% interval must lie inside [1 - tol, 1 + tol]."""
    dim: tuple[int, ...] = dim_field(2**i for i in range(11))
    samples: int = param(2**20, "scores per d_k (rounded up to whole sampling blocks)",
                         integer(1, MAX_SAMPLES, "the number of scores"), metavar="INT")
    seed: int = seed_field()
    tol: float = param(0.05, "allowed distance of the scaled variance from 1",
                       real("the tolerance", lo=0.0, lo_open=True, hi=1.0, hi_open=True))
    mean: float = mean_field()
    std: float = std_field()


def seq_len_field() -> Any:
    return param((128,), "sequence length n: keys each query attends over (and queries per trial)",
                 integer(1, 16384, "the sequence length"), sweep=True, metavar="INT")


def rows_field() -> Any:
    return param(2**14, "query rows per point, in whole trials of n rows",
                 integer(1, MAX_SAMPLES, "the number of query rows"), metavar="INT")


@dataclass(frozen=True)
class AttentionParams:
    """Shared by saturation and gradient: one attention matrix per trial, statistics per query row."""
    dim: tuple[int, ...] = dim_field((16, 64, 256, 1024))
    seq_len: tuple[int, ...] = seq_len_field()
    samples: int = rows_field()
    seed: int = seed_field()
    mean: float = mean_field()
    std: float = std_field()


@dataclass(frozen=True)
class SaturationParams(AttentionParams):
    """`sqrtdk saturation`: how far softmax(c Q K^T) concentrates on one key, across d_k and n."""
    threshold: float = param(0.99, "a row is saturated when its largest weight is at least this",
                             real("the threshold", lo=0.0, lo_open=True, hi=1.0))


@dataclass(frozen=True)
class GradientParams(AttentionParams):
    """`sqrtdk gradient`: size of the softmax Jacobian and of the gradients through it, across d_k and n."""
    eps: float = param(1e-3, "a row's gradient vanishes when ||J||_F is below this",
                       real("eps", lo=0.0, lo_open=True, hi=1.0))


def fields(schema: type) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(schema)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_value(f: dataclasses.Field, raw: Any) -> Any:
    """Typed value of field `f` from a raw value; sweep fields take lists and comma lists."""
    parse = f.metadata["parse"]
    if not f.metadata["sweep"]:
        if isinstance(raw, (list, tuple)):
            raise InputError(f"{_show(list(raw))} is not allowed; a single value is expected here, not a list")
        return parse(raw)
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    values: list[Any] = []
    for item in items:
        if isinstance(item, str):
            for part in item.split(","):
                if not part.strip():
                    raise InputError(f"{item!r} is not allowed; give a value or a comma list of values")
                values.append(parse(part))
        else:
            values.append(parse(item))
    if not values:
        raise InputError("an empty list is not allowed; give at least one value")
    return tuple(dict.fromkeys(values))  # keep first occurrence, drop repeats


def build(schema: type, raw: Mapping[str, Any], label: Callable[[str], str] = option_name) -> Any:
    """An instance of `schema` from raw values; a missing key takes the default.

    `label` names a key in error messages: `--dim` on the command line, `file.toml: key 'dim'` in a config.
    """
    known = {f.name: f for f in fields(schema)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"{label(unknown[0])}: unknown key; allowed keys are {', '.join(sorted(known))}")
    values = {}
    for name, raw_value in raw.items():
        if raw_value is None:
            continue
        try:
            values[name] = parse_value(known[name], raw_value)
        except InputError as error:
            raise InputError(f"{label(name)}: {error}") from None
    return schema(**values)


def resolved(params: Any) -> dict[str, Any]:
    """The parameters as plain JSON-ready values (tuples become lists)."""
    return {name: list(v) if isinstance(v, tuple) else v for name, v in dataclasses.asdict(params).items()}
