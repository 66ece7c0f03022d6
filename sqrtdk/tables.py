"""Terminal tables that fit the terminal and never cut a number.

A table is a title, columns of formatted cells and notes. By default it shows the columns an experiment
marks as the ones that matter; `--wide` shows them all. A key column (d_k, the rule) whose cells are all
equal moves into the title. When the columns are wider than the terminal they are wrapped into blocks,
each repeating the key columns, as a data frame prints: every cell is printed whole, and no line is
longer than the terminal (the `COLUMNS` variable or the terminal's width; 80 when neither is known).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

GAP = "  "  # between columns


@dataclass(frozen=True)
class Column:
    heading: str  # a line break makes a two-line heading
    cells: Sequence[str]
    key: bool = False  # says which row this is: repeated in every block, moved to the title when constant
    wide: bool = False  # shown only on request (--wide); always in --json, CSV and Markdown
    about: str | None = None  # its name in the note of columns not shown (heading when None; "" not named)


@dataclass(frozen=True)
class Table:
    title: str
    columns: Sequence[Column]
    notes: Sequence[str] = field(default_factory=tuple)  # under the table: a reading, why cells are empty


def width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def _lines(column: Column) -> list[str]:
    return column.heading.split("\n")


def _width(column: Column) -> int:
    return max(len(text) for text in (*_lines(column), *column.cells))


def _blocks(keys: list[Column], rest: list[Column], limit: int | None) -> list[list[Column]]:
    """The columns in blocks no wider than `limit`, each led by the key columns (one block when None)."""
    if limit is None or not rest:
        return [keys + rest]
    blocks: list[list[Column]] = []
    block: list[Column] = []
    used = sum(_width(c) + len(GAP) for c in keys)
    start = used
    for column in rest:
        if block and used + _width(column) > limit:
            blocks.append(keys + block)
            block, used = [], start
        block.append(column)
        used += _width(column) + len(GAP)
    return [*blocks, keys + block]


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
    for block in _blocks(keys, [c for c in columns if not c.key], limit):
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
