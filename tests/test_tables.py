"""Terminal tables (sqrtdk/tables.py) and the digits of a value with its standard error (output.with_se):
whatever the terminal's width, every line fits it and every cell is printed whole."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqrtdk import experiments, tables
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


def _headings(text: str) -> list[list[str]]:
    """Each block's column headings, read off the rendered text: the rule under a block's headings marks
    where each column is; a two-line heading comes back as 'upper\\nlower'."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("─"):
            continue
        top = i
        while top > 0 and lines[top - 1].strip():
            top -= 1
        spans = [m.span() for m in re.finditer("─+", line)]
        out.append(["\n".join(h[a:b].strip() for h in lines[top:i] if h[a:b].strip()) for a, b in spans])
    return out


def test_a_theory_stays_in_the_block_of_its_measurement():
    columns = [
        Column("d_k", ("16", "1024"), key=True),
        Column("scaling", ("none", "sqrt"), key=True),
        Column("variance", ("1018.0 ± 5.5", "0.9942 ± 0.0054")),
        Column("99.9% interval", ("[999.1, 1037.0]", "[0.9757, 1.0127]"), joins=True),
        Column("theory", ("1024", "1"), joins=True),
        Column("excess kurtosis", ("-0.014 ± 0.019", "-0.014 ± 0.019")),
        Column("theory", ("0.005859", "0.005859"), joins=True),
    ]
    text = render(Table("t", columns), limit=80)
    assert _headings(text) == [
        ["d_k", "scaling", "variance", "99.9% interval", "theory"],
        ["d_k", "scaling", "excess kurtosis", "theory"],
    ]
    # a theory whose measurement is hidden does not join the column before it
    hidden = [*columns[:5], replace(columns[5], wide=True), columns[6]]
    assert _headings(render(Table("t", hidden), limit=60))[1:] == [["d_k", "scaling", "theory"]]


def test_a_group_too_wide_for_a_block_names_the_measurement_over_the_rest():
    columns = [
        Column("d_k", ("16", "1024"), key=True),
        Column("variance", ("1018.0 ± 5.5", "0.9942 ± 0.0054")),
        Column("99.9% interval", ("[999.1, 1037.0]", "[0.9757, 1.0127]"), joins=True),
        Column("theory", ("1024", "1"), joins=True),
    ]
    text = render(Table("t", columns), limit=40)
    assert all(len(line) <= 40 for line in text.splitlines())
    assert _headings(text) == [["d_k", "variance", "99.9% interval"], ["d_k", "variance\ntheory"]]


# Cheap runs of every experiment, with parameters that vary so that the tables wrap at 80 and 60 columns
# (sqrtdk.run's keyword arguments; the probe measures saved activations, made by the fixture)
WRAPPED = {
    "variance": dict(dim=[16, 1024], std=[1.0, 2.0], mean=[0.0, 0.5], samples=4096),
    "saturation": dict(dim=[16, 1024], seq_len=8, seed=[0, 1], samples=64),
    "gradient": dict(dim=[16, 1024], seq_len=8, seed=[0, 1], samples=64),
    "precision": dict(dim=[16, 256], std=[1.0, 32.0], seq_len=[16, 32], samples=64),
    "check": dict(dim=[16, 64], tol=[0.05, 0.5], samples=4096),
    "toy": dict(seq_len=[2, 16, 1024], high=[1.0, 2.0], low=[0.0, -1.0]),
    "train": dict(steps=1, every=1, batch=1, d_model=[16, 32], scaling=["none", "sqrt"], lr=0.01, replicates=2),
    "probe": dict(threshold=[0.5, 0.99]),
}
# headings of the columns that belong to the measurement before them: its theory or its interval
BELONGS = {"theory", "exact", "closed form", "published", "iid", "s iid", "99.9% interval"}


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory):
    """name -> the experiment's terminal table (as the command line builds it) of its cheap run."""
    import numpy as np

    import sqrtdk

    rng = np.random.default_rng(0)
    acts = tmp_path_factory.mktemp("probe") / "acts.npz"
    q, k = (rng.standard_normal((2, 3, 4, 10, 4)).astype(np.float32) for _ in range(2))
    np.savez(acts, q=q, k=k, scale=np.full(10, 0.5), causal=np.array(True))
    made: dict[str, Table] = {}

    def table(name: str) -> Table:
        if name not in made:
            params = {**WRAPPED[name], **({"activations": str(acts)} if name == "probe" else {})}
            made[name] = tables.of(sqrtdk.run(name, **params))
        return made[name]

    return table


@pytest.mark.parametrize("limit", [80, 60])
@pytest.mark.parametrize("name", experiments.NAMES)
def test_every_experiments_wrapped_table_keeps_each_theory_beside_its_measurement(wrapped, name, limit):
    table = wrapped(name)
    text = render(table, limit=limit)
    assert all(len(line) <= limit for line in text.splitlines()), text
    blocks = _headings(text)
    keys = [c.heading for c in table.columns if c.key]
    shown = [c.heading for c in table.columns if not c.key and not c.wide]
    assert len(blocks) > 1 or (name in ("check", "toy") and limit == 80), text  # the runs do wrap
    leads = [[h for h in block if h in keys] for block in blocks]
    assert all(lead == leads[0] and block[: len(lead)] == lead for lead, block in zip(leads, blocks)), text
    rest = [h for lead, block in zip(leads, blocks) for h in block[len(lead) :]]
    assert [h.split("\n")[-1] for h in rest] == shown, text  # every column once, in the table's order
    owner = ""  # the measurement that the columns since it belong to
    for lead, block in zip(leads, blocks):
        for i, heading in enumerate(block[len(lead) :]):
            if heading in BELONGS:  # beside the column it belongs to
                assert i > 0, (heading, text)
            elif "\n" in heading:  # or, only where its group is too wide for a block, under that column's name
                assert heading.split("\n") == [owner, heading.split("\n")[1]], (heading, text)
                assert heading.split("\n")[1] in BELONGS and limit < 80, (heading, text)
            else:
                owner = heading
