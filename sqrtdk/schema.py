"""Parameter schemas: one frozen dataclass per experiment, shared by the command line, the configs and the API.

Every field holds a tuple of values. A field is a grid axis unless it is marked as a set: the runner expands
the cartesian product of the axes into independent tasks (one value of each axis per task), while a set
(for instance the scaling rules compared side by side) goes whole into every task. Each field has a parser
that turns a raw value into the typed value, or raises `InputError` saying what is allowed; command-line
text and typed values (TOML, Python) are parsed separately, so a config cannot pass "64" for 64.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqrtdk.core.rules import SSMAX_S
from sqrtdk.core.theory import DISTRIBUTIONS, INITS
from sqrtdk.errors import InputError

# Weights below e^-30 of a row's largest are set to 0 (attention.CUT) and float32 carries 7 digits: a
# largest weight is resolved to about 1e-7, a Jacobian norm down to about 1e-12.
THRESHOLD_MAX = 1 - 1e-6
EPS_MIN = 1e-10

MAX_DIM = 65536  # largest d_k: a 512 x 65536 float32 block is 128 MiB
MAX_SAMPLES = 10**12  # scores per point; streaming keeps memory flat, time is the user's


def show(raw: Any) -> str:
    """A raw value as the user wrote it, with its type where that is what is wrong."""
    if isinstance(raw, str):
        return repr(raw)
    if isinstance(raw, bool):
        return str(raw).lower()
    return str(raw)


def _refuse(raw: Any, allowed: str, typed: bool) -> InputError:
    kind = ""
    if typed and isinstance(raw, str):
        kind = " (a string)"
    elif typed and isinstance(raw, bool):
        kind = " (a boolean)"
    elif isinstance(raw, (list, tuple, dict)):
        kind = " (a list)" if not isinstance(raw, dict) else " (a table)"
    return InputError(f"{show(raw)}{kind} is not allowed; {allowed}")


# ---- parsers: raw value -> typed value ----


@dataclass(frozen=True)
class Integer:
    lo: int
    hi: int
    what: str

    @property
    def allowed(self) -> str:
        return f"{self.what} must be an integer from {self.lo} to {self.hi}"

    def _check(self, raw: Any, value: int | None, typed: bool) -> int:
        if value is None or not self.lo <= value <= self.hi:
            raise _refuse(raw, self.allowed, typed)
        return value

    def from_text(self, text: str) -> int:
        value = None
        cleaned = text.strip().replace("_", "")
        try:
            value = int(cleaned)
        except ValueError:
            try:  # accept 1e6 and 1048576.0, but only when it is a whole number
                as_float = float(cleaned)
                if math.isfinite(as_float) and as_float == int(as_float):
                    value = int(as_float)
            except ValueError:
                pass
        return self._check(text, value, typed=False)

    def from_value(self, raw: Any) -> int:
        value = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            value = raw
        elif isinstance(raw, float) and math.isfinite(raw) and raw == int(raw):
            value = int(raw)  # TOML's 1e6 is a float
        return self._check(raw, value, typed=True)


@dataclass(frozen=True)
class Real:
    what: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False

    @property
    def allowed(self) -> str:
        parts = []
        if self.lo > -math.inf:
            parts.append(f"{'>' if self.lo_open else '>='} {self.lo:g}")
        if self.hi < math.inf:
            parts.append(f"{'<' if self.hi_open else '<='} {self.hi:g}")
        return f"{self.what} must be a finite number" + (" " + " and ".join(parts) if parts else "")

    def _check(self, raw: Any, value: float | None, typed: bool) -> float:
        if (
            value is None
            or not math.isfinite(value)
            or not (
                (value > self.lo if self.lo_open else value >= self.lo)
                and (value < self.hi if self.hi_open else value <= self.hi)
            )
        ):
            raise _refuse(raw, self.allowed, typed)
        return value

    def from_text(self, text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = None
        return self._check(text, value, typed=False)

    def from_value(self, raw: Any) -> float:
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        return self._check(raw, float(raw) if ok else None, typed=True)


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    what: str
    note: str = ""

    @property
    def allowed(self) -> str:
        return f"{self.what} must be one of {', '.join(self.options)}" + (f" ({self.note})" if self.note else "")

    def from_text(self, text: str) -> str:
        value = text.strip()
        if value not in self.options:
            raise _refuse(text, self.allowed, typed=False)
        return value

    def from_value(self, raw: Any) -> str:
        if not isinstance(raw, str) or raw not in self.options:
            raise _refuse(raw, self.allowed, typed=not isinstance(raw, str))
        return raw


@dataclass(frozen=True)
class Flag:
    what: str
    TRUE = ("true", "yes", "on", "1")
    FALSE = ("false", "no", "off", "0")

    @property
    def allowed(self) -> str:
        return f"{self.what} must be true or false"

    def from_text(self, text: str) -> bool:
        value = text.strip().lower()
        if value in self.TRUE or value in self.FALSE:
            return value in self.TRUE
        raise _refuse(text, self.allowed, typed=False)

    def from_value(self, raw: Any) -> bool:
        if not isinstance(raw, bool):
            raise _refuse(raw, self.allowed, typed=True)
        return raw


@dataclass(frozen=True)
class Text:
    """A non-empty string: a path or a name, checked where it is used (the experiment's `prepare`)."""

    what: str

    @property
    def allowed(self) -> str:
        return f"{self.what} must be a non-empty string"

    def from_text(self, text: str) -> str:
        if not text.strip():
            raise _refuse(text, self.allowed, typed=False)
        return text.strip()

    def from_value(self, raw: Any) -> str:
        if not isinstance(raw, str) or not raw.strip():
            raise _refuse(raw, self.allowed, typed=True)
        return raw.strip()


@dataclass(frozen=True)
class RealOrAuto(Real):
    """A number, or "auto" for a default that depends on the task."""

    @property
    def allowed(self) -> str:
        return super().allowed + ', or "auto"'

    def from_text(self, text: str) -> float | str:  # type: ignore[override]
        return "auto" if text.strip() == "auto" else super().from_text(text)

    def from_value(self, raw: Any) -> float | str:  # type: ignore[override]
        return "auto" if raw == "auto" else super().from_value(raw)


# ---- fields ----


def param(
    default: Any,
    help: str,
    parser: Any,
    metavar: str = "NUMBER",
    column: str | None = None,
    axis: bool = True,
    applies: tuple[Callable[[Mapping[str, Any]], bool], str] | None = None,
) -> Any:
    """A schema field: `help` is the one-line meaning and unit; `column` names it in rows (default: the
    field's name); `axis=False` makes it a set that goes whole into every task instead of a grid axis;
    `applies` = (test on a task, when it applies): elsewhere the field is left out of the task."""
    values = tuple(default) if isinstance(default, (list, tuple)) else (default,)
    meta = {"help": help, "parser": parser, "metavar": metavar, "column": column, "axis": axis, "applies": applies}
    return field(default=values, metadata=meta)


def _projected(task: Mapping[str, Any]) -> bool:
    return task.get("inputs") == "projected"


DIRECT = (lambda task: not _projected(task), "with direct inputs (with projected ones d_k = d_model / heads)")
PROJECTED = (_projected, "with inputs projected")


def dim_field(default: Iterable[int] = (64,)) -> Any:
    return param(
        tuple(default),
        "head dimension d_k (entries per query and key vector)",
        Integer(1, MAX_DIM, "d_k"),
        metavar="INT",
        column="d_k",
        applies=DIRECT,
    )


def seed_field() -> Any:
    return param(
        0,
        "root seed; every task draws from its own stream spawned from it",
        Integer(0, 2**63 - 1, "the seed"),
        metavar="INT",
    )


def mean_field() -> Any:
    return param(0.0, "mean of every entry of q and k", Real("the mean"), column="entry_mean")


def std_field() -> Any:
    return param(
        1.0,
        "standard deviation of every entry of q and k (> 0)",
        Real("the std", lo=0.0, lo_open=True, hi=1e6),
        column="entry_std",
    )


def dist_field() -> Any:
    return param(
        "gaussian",
        "distribution of the entries, standardised to --mean and --std",
        Choice(DISTRIBUTIONS, "the distribution"),
        metavar="NAME",
    )


def source_fields() -> dict[str, Any]:
    """Where q and k come from (sampling.Source): the entries' distribution, mean and std, and either the
    entries directly or tokens through a projection layer."""
    return {
        "dist": dist_field(),
        "mean": mean_field(),
        "std": std_field(),
        "df": param(
            10.0,
            "degrees of freedom of Student-t entries (> 2 for a finite variance)",
            Real("df", lo=2.0, lo_open=True, hi=1e6),
            applies=(lambda t: t.get("dist") == "student-t", "with dist student-t"),
        ),
        "rho": param(
            0.0,
            "correlation of q_i with k_i, a query with its own key (Gaussian, direct inputs)",
            Real("rho", lo=-1.0, hi=1.0, lo_open=True, hi_open=True),
        ),
        "inputs": param(
            "direct",
            "direct: iid entries of q and k; projected: tokens x through W_q, W_k",
            Choice(("direct", "projected"), "inputs"),
            metavar="NAME",
        ),
        "d_model": param(
            512, "token width; d_k = d_model / heads", Integer(1, MAX_DIM, "d_model"), metavar="INT", applies=PROJECTED
        ),
        "heads": param(
            8,
            "attention heads; each has d_k = d_model / heads",
            Integer(1, MAX_DIM, "heads"),
            metavar="INT",
            applies=PROJECTED,
        ),
        "init": param(
            "lecun",
            "initialisation of W_q and W_k (and their biases)",
            Choice(INITS, "the init"),
            metavar="NAME",
            applies=PROJECTED,
        ),
        "init_std": param(
            0.02,
            "std of the normal init",
            Real("the init std", lo=0.0, lo_open=True, hi=1e3),
            applies=(lambda t: _projected(t) and t.get("init") == "normal", "with inputs projected and init normal"),
        ),
        "layernorm": param(
            False,
            "layer-normalise each token before the projections",
            Flag("layernorm"),
            metavar="BOOL",
            applies=PROJECTED,
        ),
    }


def source(task: Mapping[str, Any]) -> Any:
    """The task's core.sampling.Source: its entries, and the projection layer for projected inputs."""
    from sqrtdk.core.sampling import Source
    from sqrtdk.core.theory import Entries

    entries = Entries(
        task.get("dist") or "gaussian", task["mean"], task["std"], task.get("df") or 10.0, task.get("rho") or 0.0
    )
    if task.get("inputs") != "projected":
        return Source(entries)
    return Source(
        entries, "projected", task["d_model"], task["heads"], task["init"], task["init_std"], bool(task["layernorm"])
    )


def gain(task: Mapping[str, Any]) -> float | None:
    """The task's qknorm gain; None for the default, sqrt(d_k)."""
    value = task.get("qk_gain")
    return None if value in (None, "auto") else value


def params_class(module: str, name: str, doc: str, **fields: Any) -> type:
    """An experiment's schema: a frozen dataclass whose fields (each a tuple of values) come in the order
    given, which is the order of the grid (first outermost), of the options and of a resolved config."""
    cls = dataclasses.make_dataclass(name, [(key, tuple, value) for key, value in fields.items()], frozen=True)
    cls.__module__, cls.__doc__ = module, doc
    return cls


def scaling_field(options: tuple[str, ...], note: str = "") -> Any:
    return param(
        ("none", "sqrt"),
        "scaling rules compared side by side on the same draws",
        Choice(options, "the scaling", note),
        metavar="RULE",
        axis=False,
    )


def qk_gain_field() -> Any:
    return param(
        "auto",
        "gain g of the qknorm rule, logits g cos(q, k); auto: sqrt(d_k), variance 1",
        RealOrAuto("the gain", lo=1e-6, hi=1e6),
        applies=(lambda t: "qknorm" in t.get("scaling", ()), "with scaling qknorm"),
    )


def ssmax_field() -> Any:
    return param(
        SSMAX_S,
        "s of the logn rule (Scalable-Softmax): logits q.k / sqrt(d_k) times s ln n",
        Real("s", lo=1e-6, hi=1e3),
        applies=(lambda t: "logn" in t.get("scaling", ()), "with scaling logn"),
    )


def seq_len_field(default: Any = 128, hi: int = 16384) -> Any:
    return param(
        default, "sequence length n: keys each query attends over", Integer(1, hi, "the sequence length"), metavar="INT"
    )


def rows_field() -> Any:
    return param(
        2**14,
        "query rows per point, in whole trials (at most 256 queries per trial); in the "
        "variance experiment --samples counts scores instead",
        Integer(1, MAX_SAMPLES, "the number of query rows"),
        metavar="INT",
    )


def scores_field(default: int) -> Any:
    return param(
        default,
        "scores q.k per d_k, rounded up to whole sampling blocks; in the attention "
        "experiments --samples counts query rows instead",
        Integer(1, MAX_SAMPLES, "the number of scores"),
        metavar="INT",
    )


def fields(schema: type) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(schema)


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def column(f: dataclasses.Field) -> str:
    """The name of field `f` as a column of the rows."""
    return f.metadata["column"] or f.name


def parse_value(f: dataclasses.Field, raw: Any, text: bool) -> tuple:
    """The tuple of typed values of field `f` from one raw value or a list of them.

    Command-line `text` may be repeated and comma-separated; typed values may be a scalar or a flat list.
    """
    parser = f.metadata["parser"]
    items = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    values: list[Any] = []
    for item in items:
        if text:
            for part in str(item).split(","):
                if not part.strip():
                    raise InputError(f"{show(item)} is not allowed; give a value or a comma list of values")
                values.append(parser.from_text(part))
        elif isinstance(item, (list, tuple, dict)):
            raise _refuse(item, "give a value or a flat list of values", typed=True)
        else:
            values.append(parser.from_value(item))
    if not values:
        raise InputError(f"an empty list is not allowed; {parser.allowed}: give at least one value")
    return tuple(dict.fromkeys(values))  # keep first occurrences, drop repeats


def build(
    schema: type,
    raw: Mapping[str, Any],
    label: Callable[[str], str] = option_name,
    text: bool = True,
    base: Any = None,
    given: Iterable[str] | None = None,
) -> Any:
    """An instance of `schema` from raw values; a missing key keeps `base`'s value (default: the default).

    `label` names a key in error messages: `--dim` on the command line, `file.toml: key 'dim'` in a config.
    `given` are all the keys the user set (default: those of `raw`), checked for conflicts.
    """
    known = {f.name: f for f in fields(schema)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"{label(unknown[0])}: unknown key; allowed keys are {', '.join(known)}")
    values = {}
    for name, raw_value in raw.items():
        if raw_value is None:
            continue
        try:
            values[name] = parse_value(known[name], raw_value, text)
        except InputError as error:
            raise InputError(f"{label(name)}: {error}") from None
    params = dataclasses.replace(base, **values) if base is not None else schema(**values)
    check(params, set(raw) if given is None else set(given), label)
    return params


def _tasks(params: Any) -> list[dict[str, Any]]:
    axes = [f for f in fields(type(params)) if f.metadata["axis"]]
    sets = {f.name: getattr(params, f.name) for f in fields(type(params)) if not f.metadata["axis"]}
    return [
        {**dict(zip((f.name for f in axes), combo)), **sets}
        for combo in itertools.product(*(getattr(params, f.name) for f in axes))
    ]


def _applies(f: dataclasses.Field, task: Mapping[str, Any]) -> bool:
    rule = f.metadata["applies"]
    return rule is None or rule[0](task)


def grid(params: Any) -> list[dict[str, Any]]:
    """Tasks: the cartesian product of the axes (first field outermost); sets go whole into each task.

    A field that does not apply to a task (df without Student-t entries, d_model without projected inputs)
    is None there, and the tasks that become the same are run once.
    """
    out, seen = [], set()
    for task in _tasks(params):
        for f in fields(type(params)):
            if not _applies(f, task):
                task[f.name] = None
        key = repr(sorted(task.items()))
        if key not in seen:
            seen.add(key)
            out.append(task)
    return out


def check(params: Any, given: set[str], label: Callable[[str], str]) -> None:
    """Refuse settings that cannot go together, naming the key, the value and what is allowed."""
    axes = [f for f in fields(type(params)) if f.metadata["axis"] and len(getattr(params, f.name)) > 1]
    size = math.prod(len(getattr(params, f.name)) for f in axes)
    if size > MAX_TASKS:  # refused before the product is built
        lists = " x ".join(f"{len(getattr(params, f.name))} ({label(f.name)})" for f in axes)
        raise InputError(
            f"{label(axes[0].name)}: a grid of {lists} = {size:,} tasks is not allowed; at most "
            f"{MAX_TASKS:,} tasks in one run"
        )
    tasks = _tasks(params)
    for f in fields(type(params)):
        rule = f.metadata["applies"]
        if f.name in given and rule and not any(rule[0](t) for t in tasks):
            value = ",".join(map(str, getattr(params, f.name)))
            raise InputError(f"{label(f.name)}: {value} is not allowed here; it is used only {rule[1]}")
    for task in tasks:
        if task.get("rho"):
            if task.get("inputs") == "projected":
                raise InputError(
                    f"{label('rho')}: {task['rho']:g} is not allowed with projected inputs; there "
                    "queries and keys come from the layer (rho applies to direct inputs)"
                )
            if task.get("dist") != "gaussian":
                raise InputError(
                    f"{label('rho')}: {task['rho']:g} is not allowed with dist {task['dist']}; "
                    "correlated entries are drawn for Gaussian entries only"
                )
        if task.get("std") is not None and task.get("mean") is not None and ("dim" in task or _projected(task)):
            _check_domain(task, label)
        if task.get("d_model") and task.get("heads") and task["d_model"] % task["heads"]:
            raise InputError(
                f"{label('heads')}: {task['heads']} is not allowed with d_model = "
                f"{task['d_model']}; the number of heads must divide d_model"
            )


# The domain in which every result is computed in a precision that holds (tests/test_domain.py sweeps it).
# Direct entries are reduced in units of std^2 about d mean^2 (core/scores.py), so any mean and std work
# until float64 cannot keep the spread of q.k beside its mean (|mean| / std = MAX_MEAN_RATIO: the
# kurtosis theory then keeps 4 digits) or until the fourth moment of q.k leaves float64 (its variance
# between 1e-150 and 1e150). The attention experiments form the logits in float32, as a model does: there
# the variance of q.k must lie between 1e-60 and 1e60 (the products stay normal float32). Projected tokens go
# through a float32 layer as they would in a model: their spread must survive float32 (|mean| / std up to
# 1e3, 4 digits) and their scale, and that of the queries and keys they give, must stay far from its range.
MAX_TASKS = 100_000
MAX_MEAN_RATIO = 1e6
MAX_MEAN_RATIO_PROJECTED = 1e3
SCORE_VARIANCE_RANGE = (1e-150, 1e150)
LOGIT_VARIANCE_RANGE = (1e-60, 1e60)
TOKEN_SQUARE_RANGE = (1e-8, 1e8)
QUERY_VARIANCE_RANGE = (1e-15, 1e15)


def _check_domain(task: Mapping[str, Any], label: Callable[[str], str]) -> None:
    mean, std = task["mean"], task["std"]
    projected = _projected(task)
    ratio = abs(mean) / std
    limit = MAX_MEAN_RATIO_PROJECTED if projected else MAX_MEAN_RATIO
    if ratio > limit:
        raise InputError(
            f"{label('mean')}: {mean:g} is not allowed with std = {std:g}; |mean| / std must be at "
            f"most {limit:g}, beyond which the entries' spread is lost beside their mean "
            f"({'float32, as in the layer' if projected else 'float64'})"
        )
    if projected:
        square = mean * mean + std * std
        lo, hi = TOKEN_SQUARE_RANGE
        if not lo <= square <= hi:
            raise InputError(
                f"{label('std')}: {std:g} is not allowed with mean = {mean:g} and projected inputs; "
                f"the tokens' mean square mean^2 + std^2 = {square:.3g} must lie between {lo:g} and "
                f"{hi:g} (float32 layers)"
            )
        from sqrtdk.core.theory import init_variances

        v_w, v_b = init_variances(task["init"], task["d_model"], task.get("init_std"))
        v_q = (task["d_model"] if task.get("layernorm") else task["d_model"] * square) * v_w + v_b
        lo, hi = QUERY_VARIANCE_RANGE
        if not lo <= v_q <= hi:
            name = "init_std" if task["init"] == "normal" else "std"
            raise InputError(
                f"{label(name)}: {task[name]:g} is not allowed with init {task['init']} and d_model = "
                f"{task['d_model']}; the variance of a query entry, |x|^2 v_w + v_b = {v_q:.3g}, must lie "
                f"between {lo:g} and {hi:g} (their float32 products must stay normal numbers)"
            )
        return
    variance = task["dim"] * std * std * (std * std + 2 * mean * mean)
    lo, hi = LOGIT_VARIANCE_RANGE if "seq_len" in task else SCORE_VARIANCE_RANGE
    if not lo <= variance <= hi:
        name, value = ("mean", mean) if variance > hi and abs(mean) > std else ("std", std)
        raise InputError(
            f"{label(name)}: {value:g} is not allowed with "
            f"{'std' if name == 'mean' else 'mean'} = {std if name == 'mean' else mean:g} at "
            f"d_k = {task['dim']}; the variance of q.k, d_k (std^4 + 2 std^2 mean^2) = {variance:.3g}, "
            f"must lie between {lo:g} and {hi:g} ({'float32 logits' if 'seq_len' in task else 'its fourth moment must be a float64'})"
        )


def varying(params: Any) -> list[dataclasses.Field]:
    """The axes that take more than one value across the tasks: the coordinates that tell tasks apart.

    A field that is only absent from some tasks (init_std beside inits other than normal) does not count.
    """
    tasks = grid(params)
    return [
        f
        for f in fields(type(params))
        if f.metadata["axis"] and len({repr(t[f.name]) for t in tasks if t[f.name] is not None}) > 1
    ]


def resolved(params: Any) -> dict[str, Any]:
    """The parameters as plain TOML- and JSON-ready values: a scalar for one value, else a list. Fields
    that apply to no task (df without Student-t entries) are left out, so the result loads back as a config."""
    tasks = _tasks(params)
    out = {}
    for f in fields(type(params)):
        if not any(_applies(f, t) for t in tasks):
            continue
        values = getattr(params, f.name)
        out[f.name] = values[0] if len(values) == 1 and f.metadata["axis"] else list(values)
    return out
