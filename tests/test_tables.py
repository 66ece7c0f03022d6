"""Terminal tables (sqrtdk/tables.py) and the digits of a value with its standard error (output.with_se):
whatever the terminal's width, every line fits it and every cell is printed whole."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqrtdk.output import at_se, with_se
from sqrtdk.tables import Column, Table, render

cell = st.text("0123456789.,±[] ", min_size=1, max_size=18).map(str.strip).filter(lambda c: c and "  " not in c)


@given(
    st.integers(2, 6),  # one row would move its constant key into the title
    st.integers(1, 8),
    st.integers(40, 120),
    st.data(),
)
def test_every_line_fits_and_every_cell_is_whole(n_rows, n_columns, limit, data):
    columns = [Column("key", tuple(f"k{i}" for i in range(n_rows)), key=True)]
    for j in range(n_columns):
        cells = tuple(data.draw(st.lists(cell, min_size=n_rows, max_size=n_rows)))
        columns.append(Column(f"c{j}", cells, wide=data.draw(st.booleans())))
    table = Table("A title long enough to need wrapping at a narrow width, in words", columns, ["A note."])
    text = render(table, limit=limit)
    lines = text.splitlines()
    assert all(len(line) <= limit for line in lines)
    for column in columns[1:]:
        if not column.wide:  # each cell whole on the line of its row, after that row's key
            assert all(
                any(line.lstrip().startswith(f"k{i}") and c in line for line in lines)
                for i, c in enumerate(column.cells)
            )
    assert "…" not in text


def test_wide_shows_every_column_in_one_block():
    columns = [Column("d_k", ("4", "8"), key=True), *(Column(f"c{j}", ("x" * 30, "y"), wide=j > 0) for j in range(4))]
    narrow = render(Table("t", columns), limit=80)
    assert narrow.splitlines()[2].split() == ["d_k", "c0"] and "Not shown: c1, c2, c3" in narrow
    wide = render(Table("t", columns), wide=True)
    assert [line.split() for line in wide.splitlines()][2] == ["d_k", "c0", "c1", "c2", "c3"]


def test_blocks_repeat_the_key_columns_and_a_constant_key_goes_to_the_title():
    columns = [
        Column("d_k", ("64", "64"), key=True),
        Column("scaling", ("none", "sqrt"), key=True),
        *(Column(f"metric{j}", ("0.5315 ± 0.0019", "0.06890 ± 0.00038")) for j in range(6)),
    ]
    text = render(Table("Saturation", columns), limit=60)
    assert text.splitlines()[0] == "Saturation (d_k = 64)"
    heads = [line for line in text.splitlines() if "metric" in line]
    assert len(heads) > 1 and all(line.split()[0] == "scaling" for line in heads)


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


@given(
    st.floats(-1e5, 1e5, allow_nan=False),
    st.floats(1e-6, 1e4, allow_nan=False),
)
def test_a_value_has_the_digits_of_its_standard_error(value, se):
    text = with_se(value, se)
    shown, _, error = text.strip("()").partition(" ± ")
    power = 0
    if ")e" in text:
        error, power = error.split(")e")[0], int(text.split(")e")[1])
    digits = re.sub(r"^[0.]+", "", error.replace(".", "")) if "." in error else error.rstrip("0")
    assert len(digits) <= 2  # two significant digits (an integer's trailing zeros only place them)
    assert _decimals(shown) == _decimals(error)  # the value stops where its error's second digit does
    unit = 10.0 ** (power - _decimals(shown) if "." in error else power + len(error) - 2)
    assert abs(float(shown) * 10**power - value) <= unit / 2 * (1 + 1e-9) + 1e-12 * abs(value)
    assert math.isclose(float(error) * 10**power, se, rel_tol=0.05 + 1e-9)  # 2 digits: within 5%


@pytest.mark.parametrize(
    ("value", "se", "text"),
    [
        (64.0224, 0.1283, "64.02 ± 0.13"),
        (0.0012711, 0.0053, "0.0013 ± 0.0053"),
        (1.0004, 0.00067, "1.00040 ± 0.00067"),
        (123456.7, 12345.0, "123000 ± 12000"),
        (5.0, 9.9996, "5 ± 10"),
        (3.1e-7, 2.1e-8, "(3.10 ± 0.21)e-07"),
        (2097152.3, 1234.0, "(2.0972 ± 0.0012)e+06"),
        (0.0, 0.0, "0"),
        (0.5, None, "0.5"),
        (None, 0.1, ""),
    ],
)
def test_with_se_examples(value, se, text):
    assert with_se(value, se) == text


def test_an_interval_end_takes_the_digits_of_the_error():
    assert at_se(63.579514, 0.1283) == "63.58"
    assert at_se(0.99343, 0.00067) == "0.99343"


@pytest.mark.parametrize(
    "argv",
    [("variance", "--dim", "64"), ("saturation",), ("gradient",), ("check",), ("toy",)],
)
def test_the_first_commands_fit_80_columns(cli, tmp_path, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "80")
    extra = () if argv[0] == "check" else ("--no-plot", "--out", str(tmp_path))
    code, stdout, _ = cli(*argv, *extra)
    assert code == 0
    assert all(len(line) <= 80 for line in stdout.splitlines()), stdout
    assert "…" not in stdout and "..." not in stdout
    if argv[0] == "variance":
        assert "Var(q·k) ≈ d_k unscaled" in stdout


def test_wide_prints_every_column(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, stdout, _ = cli("saturation", "--dim", "16", "--samples", "512", "--no-plot", "--wide", "--out", tmp_path)
    assert code == 0 and "e^H" in stdout and "Not shown" not in stdout
