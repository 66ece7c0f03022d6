"""reproduce: canonical folders and report from configs, byte-identical reruns, and the staleness check.

Every test starts from one reproduce of its configs, made once (conftest's `reproduced`) and copied; the
reruns a test makes of its own are in this process and serial (`--workers 1`), except where the number
of workers is what is compared."""

import json
import math

import pytest

from sqrtdk.reproduce import same_value, standard_error

CONFIGS = {
    "a_variance.toml": 'experiment = "variance"\ntitle = "Variance"\norder = 1\ndim = [4, 16]\nsamples = 20000\n',
    "b_saturation.toml": 'experiment = "saturation"\ntitle = "Saturation"\norder = 2\ndim = [4, 64]\n'
    "seq_len = [8, 32]\nsamples = 256\n",
}


@pytest.fixture
def project(tmp_path, reproduced):
    """Both configs, reproduced (with the default workers)."""
    return reproduced(CONFIGS, tmp_path)


@pytest.fixture
def variance_project(tmp_path, reproduced):
    """The variance config alone, reproduced: for the tests that need histograms and rows, not two experiments."""
    return reproduced({"a_variance.toml": CONFIGS["a_variance.toml"]}, tmp_path)


def reproduce(cli, configs, results, *argv):
    """`sqrtdk reproduce` in this process, serial: (exit code, stdout, stderr)."""
    return cli("reproduce", str(configs), "--out", str(results), "--workers", "1", *argv)


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_twice_in_a_row_is_byte_identical(cli, project):
    """The second run in one process, the first with worker processes."""
    configs, results = project
    first = snapshot(results)
    assert reproduce(cli, configs, results, "--quiet")[0] == 0
    assert snapshot(results) == first
    assert {
        "README.md",
        "details.md",
        "a_variance/rows.csv",
        "a_variance/config.toml",
        "a_variance/variance_vs_dk.png",
        "b_saturation/saturation_vs_dk.svg",
    } <= set(first)
    assert "b_saturation/saturation_vs_n.png" not in first  # one figure a run: d_k swept as far as n
    manifest = json.loads(first["a_variance/manifest.json"])
    assert manifest["config_file"] == "../configs/a_variance.toml" and "git" not in manifest


def test_the_report_is_the_same_whichever_configs_ran(cli, project):
    """A config left out of a run is shown from its committed rows: its section names the same figures
    (the sweep's histograms among them, though its samples are not there to draw them)."""
    configs, results = project
    before = {name: (results / name).read_text() for name in ("README.md", "details.md")}
    assert "](a_variance/histograms.png)" in before["README.md"]
    assert reproduce(cli, configs / "b_saturation.toml", results, "--quiet")[0] == 0
    assert {name: (results / name).read_text() for name in before} == before


def test_check_passes_then_catches_stale_results(cli, project):
    configs, results = project
    code, out, err = reproduce(cli, configs, results, "--check")
    assert code == 0 and "is up to date" in out and err == ""

    # a config edited without regenerating
    (configs / "a_variance.toml").write_text(CONFIGS["a_variance.toml"].replace("samples = 20000", "samples = 200000"))
    code, out, err = reproduce(cli, configs, results, "--check", "--quiet")
    assert code == 1 and out == ""
    assert "a_variance/rows.json: row 1, column 'n_scores': committed 32768, now 212992" in err
    assert "b_saturation" not in err


def rewrite_rows(folder, change):
    """Rewrite folder/rows.json with change(row index, column, value) applied to every float, and the
    Markdown and CSV rendered from the new rows, as a machine that computed those values would."""
    from sqrtdk import output

    rows = json.loads((folder / "rows.json").read_text())
    rows = [{k: change(i, k, v) if isinstance(v, float) else v for k, v in row.items()} for i, row in enumerate(rows)]
    (folder / "rows.json").write_text(output.to_json(rows))
    (folder / "rows.md").write_text(output.to_markdown(rows))
    (folder / "rows.csv").write_text(output.to_csv(rows))
    return rows


def boundary_neighbour(x, digits=5):
    """A value just across the nearest rounding boundary of x at `digits` significant digits: it prints
    differently from x, and lies within 5e-5 of it, relative."""
    exponent = math.floor(math.log10(abs(x))) - digits + 1
    unit = 10.0**exponent
    boundary = (math.floor(x / unit) + 0.5) * unit
    return boundary + math.copysign(1e-3 * unit, boundary - x)


def test_other_cpus_numbers_are_current_and_left_untouched(cli, project):
    """Every float moved by 1e-6 relative (another CPU's BLAS), or a value put across a rounding boundary
    of its printed digits: check passes, and reproduce rewrites nothing."""
    configs, results = project
    sign = {}
    rewrite_rows(results / "a_variance", lambda i, k, v: v * (1 + 1e-6 * sign.setdefault((i, k), (-1) ** len(sign))))
    moved = rewrite_rows(
        results / "b_saturation",
        lambda i, k, v: boundary_neighbour(v) if i == 0 and k == "entropy_mean" else v * (1 - 1e-6),
    )
    assert f"{moved[0]['entropy_mean']:.5g}" in (results / "b_saturation" / "rows.md").read_text()
    tables = {k: v for k, v in snapshot(results).items() if k.endswith((".json", ".md", ".csv"))}
    code, out, err = reproduce(cli, configs, results, "--check")
    assert code == 0 and err == "", err
    # the figures are redrawn from the values kept (as the machine that made them drew them) ...
    assert reproduce(cli, configs, results, "--quiet")[0] == 0
    before = snapshot(results)
    assert {k: v for k, v in before.items() if k in tables and k != "README.md"} == {
        k: v for k, v in tables.items() if k != "README.md"
    }
    # ... and from then on nothing is rewritten: a clean `git status` on the other machine
    assert reproduce(cli, configs, results, "--quiet")[0] == 0
    assert snapshot(results) == before


def test_a_real_change_is_caught_and_rewritten(cli, variance_project):
    configs, results = variance_project
    fresh = snapshot(results)
    rows = json.loads((results / "a_variance" / "rows.json").read_text())
    se = rows[1]["variance_se"]
    rewrite_rows(results / "a_variance", lambda i, k, v: v + 3 * se if (i, k) == (1, "variance") else v)
    code, _, err = reproduce(cli, configs, results, "--check", "--quiet")
    assert code == 1
    assert f"a_variance/rows.json: row 2, column 'variance': committed {rows[1]['variance'] + 3 * se!r}" in err
    reproduce(cli, configs, results, "--quiet")
    assert snapshot(results) == fresh  # rewritten from the fresh values


def test_tables_must_render_the_committed_rows(cli, variance_project):
    configs, results = variance_project
    md = results / "a_variance" / "rows.md"
    lines = md.read_text().splitlines()
    lines[2] = lines[2].replace("| 4 |", "| 5 |", 1)
    md.write_text("\n".join(lines) + "\n")
    code, _, err = reproduce(cli, configs, results, "--check", "--quiet")
    assert code == 1 and "a_variance/rows.md: not what rows.json renders to: line 3" in err


def test_histogram_counts_are_kept_within_rounding(cli, variance_project):
    configs, results = variance_project
    path = results / "a_variance" / "histograms.json"
    histograms = json.loads(path.read_text())
    histograms[0]["counts"][60] += 1  # a score that another CPU put across a bin edge
    path.write_text(json.dumps(histograms, indent=2) + "\n")
    kept = path.read_bytes()
    reproduce(cli, configs, results, "--quiet")  # redrawn from the kept counts
    assert path.read_bytes() == kept
    before = snapshot(results)
    reproduce(cli, configs, results, "--quiet")
    assert snapshot(results) == before
    histograms[0]["counts"][60] += 1000
    path.write_text(json.dumps(histograms, indent=2) + "\n")
    reproduce(cli, configs, results, "--quiet")
    assert json.loads(path.read_text())[0]["counts"][60] == histograms[0]["counts"][60] - 1001


def test_removed_config_removes_its_folder(cli, project):
    configs, results = project
    (results / "mine").mkdir()  # not reproduce's: left alone
    (configs / "b_saturation.toml").unlink()
    code, _, err = reproduce(cli, configs, results, "--check", "--quiet")
    assert code == 1 and "b_saturation: no config makes this folder any more" in err
    reproduce(cli, configs, results, "--quiet")
    assert sorted(p.name for p in results.iterdir()) == ["README.md", "a_variance", "details.md", "mine"]


def test_bad_config_stops_everything_before_work(cli, project):
    configs, results = project
    before = snapshot(results)
    (configs / "c_bad.toml").write_text('experiment = "gradient"\neps = 2.0\n')
    code, out, err = cli("reproduce", str(configs), "--out", str(results))
    assert code == 2 and out == ""
    assert err.strip() == (
        f"sqrtdk: error: {configs / 'c_bad.toml'}: key 'eps': 2.0 is not allowed; "
        "eps must be a finite number >= 1e-10 and <= 1"
    )
    assert snapshot(results) == before


def test_report_reads_the_numbers(cli, project):
    """The report's page shows the figures and sentences, details.md every reading with its tables."""
    configs, results = project
    report = (results / "README.md").read_text()
    details = (results / "details.md").read_text()
    rows = json.loads((results / "b_saturation" / "rows.json").read_text())
    none = {r["d_k"]: r for r in rows if r["scaling"] == "none" and r["seq_len"] == 32}
    table = f"| 32 | unscaled | {none[4]['max_prob_mean']:.3f} → {none[64]['max_prob_mean']:.3f} |"
    assert "Mean over query rows, from d_k = 4 to 64" in details and table in details
    assert "(details.md#saturation)" in report and "(README.md#saturation)" in details
    assert "](a_variance/variance_vs_dk.png)" in report and "![" in report
    assert "## Variance" in report and report.index("## Variance") < report.index("## Saturation")
    assert "[`a_variance.toml`](../configs/a_variance.toml)" in report


@pytest.mark.parametrize(
    "committed,fresh,se,same",
    [
        (1.0000001, 1.0000002, None, True),  # relative 1e-7: BLAS
        (1.0, 1.001, None, False),  # relative 1e-3, no standard error
        (65506.50006, 65506.49999571, None, True),  # prints 65507 and 65506: a rounding boundary
        (0.5, 0.5 + 3 * 0.01, 0.01, False),  # three standard errors
        (0.5, 0.5 + 0.05 * 0.01, 0.01, True),  # a twentieth of one
        (0.0, 1e-300, None, False),  # nothing to scale by: exact
        (128, 129, None, False),  # whole numbers match exactly
        (128, 128.0, None, False),  # and keep their type
        (True, False, None, False),
        (None, None, None, True),
        ("sqrt", "sqrt ", None, False),
    ],
)
def test_same_value(committed, fresh, se, same):
    assert same_value(committed, fresh, se) is same


def test_standard_errors_belong_to_their_columns():
    row = {
        "variance": 1.0,
        "variance_se": 0.01,
        "variance_ci_low": 0.97,
        "theory_variance": 1.0,
        "saturated_fraction_ci_high": 0.1,
        "saturated_fraction_se": 0.02,
    }
    assert standard_error(row, "variance") == standard_error(row, "variance_ci_low") == 0.01
    assert standard_error(row, "saturated_fraction_ci_high") == 0.02
    assert standard_error(row, "theory_variance") is None and standard_error(row, "variance_se") is None


def test_committed_results_are_reproduce_output():
    """Each committed folder's tables are what its rows render to, and the toy (instant to rerun) has the
    committed numbers; `sqrtdk reproduce --check` in CI compares every config's numbers."""
    from pathlib import Path

    import sqrtdk
    from sqrtdk import output
    from sqrtdk.reproduce import compare_rows

    root = Path(__file__).parent.parent
    for config in sorted((root / "configs").glob("*.toml")):
        folder = root / "results" / config.stem
        rows = json.loads((folder / "rows.json").read_text())
        assert (folder / "rows.md").read_text() == output.to_markdown(rows), folder
        assert (folder / "rows.csv").read_text() == output.to_csv(rows), folder
    committed = json.loads((root / "results" / "ssmax_toy" / "rows.json").read_text())
    fresh = json.loads(output.to_json(sqrtdk.run_config(root / "configs" / "ssmax_toy.toml").rows))
    assert compare_rows(committed, fresh) is None


READABLE = [  # configs the report once could not read: one d_k and only the scaled rule; infinite kurtosis
    ('experiment = "variance"\ndim = 16\nsamples = 4096\nscaling = ["sqrt"]\n', "the scaled variance is"),
    ('experiment = "variance"\ndim = 16\nsamples = 4096\ndist = "student-t"\ndf = 3.0\n', "no interval"),
    ('experiment = "variance"\ndim = [4, 16]\nsamples = 4096\ndist = "student-t"\ndf = 3.0\n', "Unscaled"),
]


@pytest.mark.parametrize("text,reading", READABLE, ids=["sqrt-only", "student-t-df3", "student-t-df3-sweep"])
def test_report_reads_every_valid_config(cli, tmp_path, text, reading):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "one.toml").write_text(text)
    code, _, stderr = cli("reproduce", configs, "--out", tmp_path / "results", "--workers", "1", "--quiet")
    assert code == 0, stderr
    assert reading in (tmp_path / "results" / "README.md").read_text()
