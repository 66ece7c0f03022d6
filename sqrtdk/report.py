"""The generated report, results/README.md: each config's figure, its config, and a reading of its numbers.

Every sentence of a reading is built from the rows it describes (which way a quantity moves, how many
intervals contain the theory), so the report cannot say what the tables do not.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEADER = """# sqrtdk results

Attention divides its scores by sqrt(d_k) because, for query and key entries that are independent with
mean 0 and variance 1, q.k has variance d_k: unscaled, the softmax saturates as d_k grows and its
gradients vanish. Each section below measures one step of that argument: a figure, the config that made
it, and a reading of its numbers, generated from the tables beside it.

This file and every folder beside it are written by `sqrtdk reproduce` from the configs in `configs/`;
`sqrtdk reproduce --check` tells whether they are stale. Do not edit them by hand.
"""


def is_report(path: Path) -> bool:
    """Whether `path` holds a report that sqrtdk wrote (it starts with the report's heading)."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline() == HEADER.splitlines(keepends=True)[0]
    except (OSError, UnicodeDecodeError):
        return False


def render(configs: Sequence, results: Sequence, shown_at: Path) -> str:
    """The report for `configs` and their `results`, with links relative to the folder `shown_at`."""
    parts = [HEADER, "## Contents\n"]
    parts += [f"- [{c.title or c.name}](#{anchor(c.title or c.name)})" for c in configs]
    parts.append("")
    for config, result in zip(configs, results):
        parts.append(section(config, result, shown_at))
    return "\n".join(parts).rstrip() + "\n"


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def section(config, result, shown_at: Path) -> str:
    name = config.name
    lines = [f"## {config.title or name}", ""]
    if config.description:
        lines += [config.description, ""]
    figures = list(result.figures())
    shown = [f for f in figures if not f.startswith("histogram_")] or figures
    for figure in shown:
        lines += [f"![{figure}]({name}/{figure}.png)", ""]
    others = [f for f in figures if f not in shown]
    if others:
        lines += ["More figures: " + ", ".join(f"[{f}]({name}/{f}.png)" for f in others) + ".", ""]
    lines += [f"- {sentence}" for sentence in result.spec.reading(result)]
    config_link = Path(os.path.relpath(config.path.resolve(), shown_at.resolve())).as_posix()
    lines += [
        "",
        f"Tables: [rows.md]({name}/rows.md), [rows.csv]({name}/rows.csv), "
        f"[rows.json]({name}/rows.json). Config: [`{config.path.name}`]({config_link}):",
        "",
        "```toml",
        config.text.rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


# ---- wording built from numbers ----


def trend(a: float, b: float, spec: str) -> str:
    """'rises from 0.75 to 0.97', 'falls from ...' or 'stays at ...', as the printed numbers say."""
    sa, sb = _format(a, spec), _format(b, spec)
    if sa == sb:
        return f"stays at {sa}"
    return f"{'rises' if b > a else 'falls'} from {sa} to {sb}"


def _format(x: float, spec: str) -> str:
    if spec == "%":
        return f"{x:.1%}" if 0 < abs(x) < 0.1 else f"{x:.0%}"
    return format(x, spec)


def between(values: Sequence[float], spec: str) -> str:
    lo, hi = _format(min(values), spec), _format(max(values), spec)
    return f"at {lo}" if lo == hi else f"between {lo} and {hi}"


def share(x: float) -> str:
    """A share of rows as a percentage: one decimal below 10%, none above."""
    return _format(x, "%")


def groups(result: Any, x: str) -> list[tuple[str, list[dict]]]:
    """Rows grouped by the varying parameters other than d_k and n, with a prefix naming the group."""
    from sqrtdk.plots import series_of

    others = [c for c in result.series_columns(x) if c not in ("d_k", "seq_len")]
    return [(f"With {name}: " if name else "", rows) for name, rows in series_of(result.rows, others)]


def by_rule(rows: Sequence[dict], scaling: str, key: str = "d_k") -> list[dict]:
    """The rows of one scaling rule, in order of `key`."""
    return sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r[key])
