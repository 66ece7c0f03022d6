"""The Python API that the command line, reproduce and the study scripts share."""

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import sqrtdk


def test_run_grid_rows_and_coordinates():
    result = sqrtdk.run("saturation", dim=[4, 16], seq_len=8, std=[1.0, 2.0], samples=64)
    assert len(result.tasks) == 4 and len(result.rows) == 8
    assert [(r["d_k"], r["entry_std"], r["scaling"]) for r in result.rows[:3]] == [
        (4, 1.0, "none"),
        (4, 1.0, "sqrt"),
        (4, 2.0, "none"),
    ]
    assert result.config["std"] == [1.0, 2.0] and result.config["seq_len"] == 8
    assert result.setting() == "n = 8"
    assert set(result.figures()) == {"saturation_vs_dk"}
    assert json.loads(result.to_json())["rows"] == json.loads(json.dumps(result.rows))


def test_setting_names_fixed_non_default_values():
    result = sqrtdk.run("variance", dim=[4, 8], rho=0.5, samples=1000, scaling=["sqrt", "linear"])
    assert result.setting() == "rho = 0.5"
    assert sqrtdk.run("variance", dim=4, samples=1000).setting() == "d_k = 4"  # dim by the name a reader knows


def test_run_config_with_overrides(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('experiment = "gradient"\ndim = [4, 16]\nseq_len = 8\nsamples = 64\n')
    result = sqrtdk.run_config(config, dim=[8], eps=1e-6)
    assert result.experiment == "gradient" and {r["d_k"] for r in result.rows} == {8}
    assert result.config["eps"] == 1e-6


def test_write_without_figures(tmp_path):
    result = sqrtdk.run("variance", dim=[4, 8], samples=1000)
    files = result.write(tmp_path, plot=False)
    assert {Path(f).name for f in files} == {"rows.csv", "rows.md", "rows.json", "config.toml", "manifest.json"}
    assert Path(files[0]).parent.name.startswith("variance-")


def test_bad_parameters_raise_the_one_error_type():
    with pytest.raises(sqrtdk.InputError, match="experiment: 'varience' is not allowed; choose from variance"):
        sqrtdk.run("varience")
    with pytest.raises(sqrtdk.InputError, match="dim: '64' \\(a string\\) is not allowed"):
        sqrtdk.run("variance", dim="64")


def test_the_package_lists_its_public_names_and_imports_no_numpy():
    code = """
import sys, sqrtdk
names = dir(sqrtdk)
assert "numpy" not in sys.modules, "import sqrtdk (or dir) imported numpy"
print(" ".join(n for n in names if not n.startswith("_")), "__version__" in names)
assert all(getattr(sqrtdk, n) is not None for n in names)
assert "pandas" not in sys.modules, "the API imported pandas before Result.to_pandas() was called"
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["InputError", "Result", "core", "experiments", "run", "run_config", "True"]
    assert set(sqrtdk.__all__) <= set(dir(sqrtdk)) and "Any" not in dir(sqrtdk)


def test_to_pandas_holds_the_rows_csv_with_their_dtypes():
    pandas = pytest.importorskip("pandas")
    result = sqrtdk.run("check", dim=[4, 8], tol=[0.05, 0.5], samples=1000)
    frame = result.to_pandas()
    assert list(frame.columns) == list(result.rows[0]) and len(frame) == len(result.rows) == 4
    assert list(frame.columns[:2]) == ["tol", "d_k"]  # what tells the rows apart comes first
    csv = pandas.read_csv(io.StringIO(result.tables()["rows.csv"]))  # the same values, read back by pandas
    pandas.testing.assert_frame_equal(frame, csv, check_dtype=False)
    kinds = {c: str(t) for c, t in frame.dtypes.items()}
    assert kinds["d_k"] == kinds["n_scores"] == "int64" and kinds["passed"] == "bool"
    assert kinds["tol"] == kinds["variance"] == "float64"


def test_to_pandas_marks_missing_values_in_each_dtype():
    pandas = pytest.importorskip("pandas")
    base = sqrtdk.run("toy", seq_len=[2, 16])
    rows = [
        {"rule": "none", "steps": 10, "reached": True, "loss": math.inf, "theory": None, "note": "a"},
        {"rule": "sqrt", "steps": None, "reached": None, "loss": 0.5, "theory": None, "note": None},
    ]
    frame = base.with_values(rows, None).to_pandas()
    kinds = {c: str(t) for c, t in frame.dtypes.items()}
    assert kinds == {
        "rule": kinds["rule"],  # text: pandas' own type (str from pandas 3, object before)
        "steps": "Int64",
        "reached": "boolean",
        "loss": "float64",
        "theory": "float64",  # no value in any row: a number that is missing
        "note": kinds["note"],
    }
    assert pandas.api.types.is_string_dtype(frame["rule"]) and frame["rule"].tolist() == ["none", "sqrt"]
    assert frame["steps"].isna().tolist() == [False, True] and frame["reached"].isna().tolist() == [False, True]
    assert frame["loss"].isna().tolist() == [True, False]  # an infinity is an empty cell, as in rows.csv
    assert frame["theory"].isna().all() and frame["note"].isna().tolist() == [False, True]


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    result = sqrtdk.run("toy", seq_len=[2, 16])
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an installation without pandas does on import
    with pytest.raises(ImportError, match=r"needs pandas, which is not installed; .* pip install 'sqrtdk\[pandas\]'"):
        result.to_pandas()
