"""Terminal tables that fit the terminal and never cut a number.

A table is a title, columns of formatted cells and notes. By default it shows the columns an experiment
marks as the ones that matter; `--wide` shows them all. A key column (d_k, the rule) whose cells are all
equal moves into the title. When the columns are wider than the terminal they are wrapped into blocks,
each repeating the key columns, as a data frame prints: every cell is printed whole, and no line is
longer than the terminal (the `COLUMNS` variable or the terminal's width; 80 when neither is known).

A column that `joins` the one before it (a theory, an interval beside its measurement) is never wrapped
away from it: a measurement and the columns that join it form one group, and a block holds whole groups.
Only a group too wide for a block of its own beside the key columns is split: as many of its columns as
fit stay beside the measurement, and each of the others is headed by the measurement's name over its
own ("variance" over "theory"), so that no theory is ever left without the name of what it predicts. A
single column too wide for a block of its own is printed whole, its lines longer than the terminal,
because a number is never cut.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqrtdk.result import Result

GAP = "  "  # between columns


@dataclass(frozen=True)
class Column:
    heading: str  # a line break makes a two-line heading
    cells: Sequence[str]
    key: bool = False  # says which row this is: repeated in every block, moved to the title when constant
    wide: bool = False  # shown only on request (--wide); always in --json, CSV and Markdown
    about: str | None = None  # its name in the note of columns not shown (heading when None; "" not named)
    joins: bool = False  # stays in the block of the column before it: a theory or interval beside its value


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[Column]
    notes: Sequence[str] = field(default_factory=tuple)  # under the table: a reading, why cells are empty


def of(result: Result) -> Table:
    """A result's table as a person reads it: the parameters that vary lead as key columns, then the
    experiment's own columns (which carry d_k and n themselves)."""
    from sqrtdk import schema
    from sqrtdk.output import fmt

    table = result.spec.table(result)
    lead = [schema.column(f) for f in schema.varying(result.params) if schema.column(f) not in ("d_k", "seq_len")]
    columns = [Column(c, tuple(fmt(row[c]) for row in result.rows), key=True) for c in lead]
    return replace(table, columns=(*columns, *table.columns))


def width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _lines(column: Column) -> list[str]:
    return column.heading.split("\n")


def _width(column: Column) -> int:
    return max(len(text) for text in (*_lines(column), *column.cells))


def _span(columns: Sequence[Column]) -> int:
    """Characters the columns take side by side, with the gap after each."""
    return sum(_width(c) + len(GAP) for c in columns)


def _groups(columns: Sequence[Column], shown: Sequence[Column]) -> list[list[Column]]:
    """The `shown` columns other than keys, each group a column and the columns that join it (grouped
    over all `columns`, so that a theory whose measurement is hidden does not join the column before)."""
    visible = {id(c) for c in shown}  # by identity: two columns may hold equal cells
    groups: list[list[Column]] = []
    for column in columns:
        if column.key:  # nothing joins a key
            groups.append([])
            continue
        if not (column.joins and groups):
            groups.append([])
        if id(column) in visible:
            groups[-1].append(column)
    return [g for g in groups if g]


def _blocks(keys: list[Column], groups: list[list[Column]], limit: int | None) -> list[list[Column]]:
    """The groups in blocks no wider than `limit`, each led by the key columns (one block when None); a
    group too wide for a block of its own comes in pieces."""
    rest = [c for g in groups for c in g]
    if limit is None or not rest:
        return [keys + rest]
    blocks: list[list[Column]] = []
    block: list[Column] = []
    start = used = _span(keys)
    for part in (part for g in groups for part in _pieces(g, limit - start)):
        if block and used + _span(part) - len(GAP) > limit:
            blocks.append(keys + block)
            block, used = [], start
        block += part
        used += _span(part)
    return [*blocks, keys + block]


def _pieces(group: list[Column], room: int) -> list[list[Column]]:
    """The group whole when it fits in `room` characters; else as many of its columns as fit beside its
    first, then the others, each headed by the name of the column they join ("variance" over "theory"),
    in pieces that fit."""
    if _span(group) - len(GAP) <= room:
        return [group]
    pieces = [group[:1]]
    for i, column in enumerate(group[1:], 1):
        if len(pieces) == 1 and _span(group[: i + 1]) - len(GAP) <= room:
            pieces[0].append(column)
            continue
        named = replace(column, heading=group[0].heading.replace("\n", " ") + "\n" + column.heading)
        if len(pieces) == 1 or _span([*pieces[-1], named]) - len(GAP) > room:
            pieces.append([])
        pieces[-1].append(named)
    return pieces


def _block(columns: list[Column]) -> list[str]:
    widths = [_width(c) for c in columns]
    height = max(len(_lines(c)) for c in columns)
    heads = [[""] * (height - len(_lines(c))) + _lines(c) for c in columns]
    out = [GAP.join(h[i].rjust(w) for h, w in zip(heads, widths)).rstrip() for i in range(height)]
    out.append(GAP.join("─" * w for w in widths))
    rows = len(columns[0].cells)
    out += [GAP.join(c.cells[i].rjust(w) for c, w in zip(columns, widths)).rstrip() for i in range(rows)]
    return out


def render(table: Table, wide: bool = False, limit: int | None = None) -> str:
    """The table as text: every column with `wide`, and in one block; else the default columns in
    blocks that fit `limit` characters (the terminal's width when None)."""
    limit = None if wide else (limit or width())
    columns = [c for c in table.columns if wide or not c.wide]
    rows = len(columns[0].cells) if columns else 0
    constant = [c for c in columns if c.key and rows > 0 and len(set(c.cells)) == 1 and "\n" not in c.heading]
    title = table.title
    if constant and len(constant) < len(columns):
        title += " (" + ", ".join(f"{c.heading} = {c.cells[0]}" for c in constant) + ")"
        columns = [c for c in columns if c not in constant]
    keys = [c for c in columns if c.key]
    lines = _fill(title, limit)
    for block in _blocks(keys, _groups(table.columns, columns), limit):
        lines += ["", *_block(block)]
    hidden = [
        c.heading.replace("\n", " ") if c.about is None else c.about
        for c in table.columns
        if c.wide and not wide and c.about != ""
    ]
    notes = list(table.notes)
    if hidden:
        notes.append("Not shown: " + ", ".join(hidden) + " (--wide shows every column; so do --json and rows.csv).")
    if notes:
        lines.append("")
    for note in notes:
        lines += _fill(note, limit)
    return "\n".join(lines) + "\n"


def _fill(text: str, limit: int | None) -> list[str]:
    return [text] if limit is None else textwrap.wrap(text, limit, break_long_words=False, break_on_hyphens=False)
