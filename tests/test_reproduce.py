"""reproduce: canonical folders and report from configs, byte-identical reruns, and the staleness check."""

import json

import pytest

from sqrtdk.cli import main
from sqrtdk.reproduce import same_line

CONFIGS = {
    "a_variance.toml": 'experiment = "variance"\ntitle = "Variance"\norder = 1\ndim = [4, 16]\nsamples = 20000\n',
    "b_saturation.toml": 'experiment = "saturation"\ntitle = "Saturation"\norder = 2\ndim = [4, 64]\n'
                         'seq_len = [8, 32]\nsamples = 256\n',
}


def cli(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def project(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    for name, text in CONFIGS.items():
        (configs / name).write_text(text)
    return configs, tmp_path / "results"


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_twice_in_a_row_is_byte_identical(capsys, project):
    configs, results = project
    assert cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")[0] == 0
    first = snapshot(results)
    assert cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet", "--workers", "1")[0] == 0
    assert snapshot(results) == first
    assert {"README.md", "a_variance/rows.csv", "a_variance/config.toml", "a_variance/variance_vs_dk.png",
            "b_saturation/saturation_vs_dk.svg", "b_saturation/saturation_vs_n.png"} <= set(first)
    manifest = json.loads(first["a_variance/manifest.json"])
    assert manifest["config_file"] == "../configs/a_variance.toml" and "git" not in manifest


def test_check_passes_then_catches_stale_results(capsys, project):
    configs, results = project
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    code, out, err = cli(capsys, "reproduce", str(configs), "--out", str(results), "--check")
    assert code == 0 and "is up to date" in out and err == ""

    # a config edited without regenerating
    (configs / "a_variance.toml").write_text(CONFIGS["a_variance.toml"].replace("samples = 20000", "samples = 200000"))
    code, out, err = cli(capsys, "reproduce", str(configs), "--out", str(results), "--check", "--quiet")
    assert code == 1 and out == ""
    assert "a_variance/rows.csv: line 2 differs" in err and "a_variance/config.toml" in err
    assert "b_saturation" not in err


def test_check_tolerates_last_digit_noise_but_not_real_change(capsys, project):
    configs, results = project
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    csv = results / "a_variance" / "rows.csv"
    original = csv.read_text()
    header, first, *rest = original.splitlines()
    cells = first.split(",")
    column = header.split(",").index("variance")
    value = float(cells[column])

    cells[column] = repr(value * (1 + 1e-7))  # what another CPU's BLAS kernel may give
    csv.write_text("\n".join([header, ",".join(cells), *rest]) + "\n")
    assert cli(capsys, "reproduce", str(configs), "--out", str(results), "--check", "--quiet")[0] == 0

    cells[column] = repr(value * 1.001)  # a change in the numbers
    csv.write_text("\n".join([header, ",".join(cells), *rest]) + "\n")
    code, _, err = cli(capsys, "reproduce", str(configs), "--out", str(results), "--check", "--quiet")
    assert code == 1 and "a_variance/rows.csv: line 2 differs" in err


def test_removed_config_removes_its_folder(capsys, project):
    configs, results = project
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    (results / "mine").mkdir()  # not reproduce's: left alone
    (configs / "b_saturation.toml").unlink()
    code, _, err = cli(capsys, "reproduce", str(configs), "--out", str(results), "--check", "--quiet")
    assert code == 1 and "b_saturation: no config makes this folder any more" in err
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    assert sorted(p.name for p in results.iterdir()) == ["README.md", "a_variance", "mine"]


def test_bad_config_stops_everything_before_work(capsys, project):
    configs, results = project
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    before = snapshot(results)
    (configs / "c_bad.toml").write_text('experiment = "gradient"\neps = 2.0\n')
    code, out, err = cli(capsys, "reproduce", str(configs), "--out", str(results))
    assert code == 2 and out == ""
    assert err.strip() == (f"sqrtdk: error: {configs / 'c_bad.toml'}: key 'eps': 2.0 is not allowed; "
                           "eps must be a finite number > 0 and <= 1")
    assert snapshot(results) == before


def test_report_reads_the_numbers(capsys, project):
    configs, results = project
    cli(capsys, "reproduce", str(configs), "--out", str(results), "--quiet")
    report = (results / "README.md").read_text()
    rows = json.loads((results / "b_saturation" / "rows.json").read_text())
    none = {r["d_k"]: r for r in rows if r["scaling"] == "none" and r["seq_len"] == 32}
    assert (f"n = 32, from d_k = 4 to 64: unscaled: the largest weight rises from {none[4]['max_prob_mean']:.3f} "
            f"to {none[64]['max_prob_mean']:.3f}") in report
    assert "![variance_vs_dk](a_variance/variance_vs_dk.png)" in report
    assert "## Variance" in report and report.index("## Variance") < report.index("## Saturation")
    assert "[`a_variance.toml`](../configs/a_variance.toml)" in report


@pytest.mark.parametrize("a,b,rounded,same", [
    ("x,1.0000001,3", "x,1.0000002,3", False, True),  # relative 1e-7
    ("x,1.0,3", "x,1.001,3", False, False),           # relative 1e-3
    ("0.944 of ln n", "0.945 of ln n", True, True),   # a rounding that fell the other way
    ("0.944 of ln n", "0.945 of ln n", False, False),
    ("0.944 of ln n", "0.946 of ln n", True, False),
    ("n = 128", "n = 129", True, False),              # whole numbers match exactly
    ("d_k = 64", "d_k = 64 ", False, False),
    ("1e-06", "1.00000001e-06", False, True),
])
def test_same_line(a, b, rounded, same):
    assert same_line(a, b, rounded) is same


def test_committed_results_are_reproduce_output():
    """Each committed canonical folder has the files reproduce writes (the numbers are checked in CI)."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    for config in sorted((root / "configs").glob("*.toml")):
        folder = root / "results" / config.stem
        assert {"rows.csv", "rows.md", "rows.json", "config.toml", "manifest.json"} <= {p.name for p in folder.iterdir()}
    assert (root / "results" / "README.md").exists()  # the numbers: `sqrtdk reproduce --check`, run by .ci/run
