"""The command line: exit codes, one-line errors, the JSON contract, what is written and what is not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STANDIN

BAD = [
    (["variance", "--dim", "0"], "--dim", "'0' is not allowed; d_k must be an integer from 1 to 65536"),
    (["variance", "--dim", "-3"], "--dim", "'-3' is not allowed"),
    (["variance", "--dim", "abc"], "--dim", "'abc' is not allowed"),
    (["variance", "--dim", "70000"], "--dim", "from 1 to 65536"),
    (["variance", "--dim", "2.5"], "--dim", "'2.5' is not allowed"),
    (["variance", "--dim", "16,,64"], "--dim", "'16,,64' is not allowed"),
    (["variance", "--samples", "0"], "--samples", "'0' is not allowed"),
    (["variance", "--samples", "many"], "--samples", "must be an integer"),
    (["variance", "--std", "0"], "--std", "'0' is not allowed; the std must be a finite number > 0"),
    (["variance", "--std", "-1"], "--std", "'-1' is not allowed"),
    (["variance", "--std", "nan"], "--std", "'nan' is not allowed"),
    (["variance", "--std", "inf"], "--std", "'inf' is not allowed"),
    (["variance", "--mean", "nan"], "--mean", "'nan' is not allowed; the mean must be a finite number"),
    (["variance", "--mean", "-inf"], "--mean", "'-inf' is not allowed"),
    (["variance", "--seed", "-1"], "--seed", "'-1' is not allowed"),
    (["variance", "--bogus", "1"], "--bogus", "No such option"),
    (["check", "--tol", "0"], "--tol", "'0' is not allowed"),
    (["saturation", "--seq-len", "0"], "--seq-len", "'0' is not allowed; the sequence length must be"),
    (["saturation", "--seq-len", "20000"], "--seq-len", "from 1 to 16384"),
    (["saturation", "--threshold", "0"], "--threshold", "'0' is not allowed"),
    (["saturation", "--threshold", "1.5"], "--threshold", "<= 0.999999"),
    (["saturation", "--dim", "0"], "--dim", "'0' is not allowed"),
    (["gradient", "--eps", "-1"], "--eps", "'-1' is not allowed"),
    (["gradient", "--std", "nan"], "--std", "'nan' is not allowed"),
    (["gradient", "--samples", "0"], "--samples", "'0' is not allowed"),
    (["check", "--tol", "1.5"], "--tol", "< 1"),
    (["check", "--std", "0"], "--std", "'0' is not allowed"),
    (
        ["variance", "--dist", "cauchy"],
        "--dist",
        "'cauchy' is not allowed; the distribution must be one of gaussian, uniform, rademacher, student-t",
    ),
    (["variance", "--dist", "student-t", "--df", "2"], "--df", "'2' is not allowed; df must be a finite number > 2"),
    (["variance", "--df", "5"], "--df", "5.0 is not allowed here; it is used only with dist student-t"),
    (["variance", "--rho", "1"], "--rho", "'1' is not allowed; rho must be a finite number > -1 and < 1"),
    (["variance", "--rho", "0.5", "--dist", "uniform"], "--rho", "0.5 is not allowed with dist uniform; correlated"),
    (["saturation", "--rho", "0.5", "--inputs", "projected"], "--rho", "0.5 is not allowed with projected inputs"),
    (
        ["variance", "--scaling", "logn"],
        "--scaling",
        "'logn' is not allowed; the scaling must be one of none, sqrt, linear, qknorm (logn needs a sequence length",
    ),
    (["gradient", "--scaling", "sqrt,bogus"], "--scaling", "'bogus' is not allowed; the scaling must be one of"),
    (["saturation", "--qk-gain", "2"], "--qk-gain", "2.0 is not allowed here; it is used only with scaling qknorm"),
    (["saturation", "--scaling", "qknorm", "--qk-gain", "-1"], "--qk-gain", "'-1' is not allowed; the gain must be"),
    (["saturation", "--ssmax-s", "0.5"], "--ssmax-s", "0.5 is not allowed here; it is used only with scaling logn"),
    (
        ["variance", "--inputs", "projected", "--dim", "64"],
        "--dim",
        "64 is not allowed here; it is used only with direct inputs",
    ),
    (
        ["variance", "--inputs", "projected", "--heads", "3"],
        "--heads",
        "3 is not allowed with d_model = 512; the number of heads must divide d_model",
    ),
    (["variance", "--d-model", "256"], "--d-model", "256 is not allowed here; it is used only with inputs projected"),
    (["variance", "--inputs", "projected", "--init", "he"], "--init", "'he' is not allowed; the init must be one of"),
    (
        ["variance", "--inputs", "projected", "--init-std", "0.1"],
        "--init-std",
        "used only with inputs projected and init normal",
    ),
    (
        ["variance", "--inputs", "projected", "--layernorm", "maybe"],
        "--layernorm",
        "'maybe' is not allowed; layernorm must be true or false",
    ),
    (
        ["variance", "--inputs", "sideways"],
        "--inputs",
        "'sideways' is not allowed; inputs must be one of direct, projected",
    ),
    (["toy", "--seq-len", "0"], "--seq-len", "'0' is not allowed"),
    (["toy", "--scaling", "sqrt"], "--scaling", "'sqrt' is not allowed; the scaling must be one of none, logn"),
]


@pytest.mark.parametrize("argv,option,message", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(cli, tmp_path, argv, option, message):
    out = tmp_path / "results"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    extra = ["--out", str(out)] if argv[0] != "check" else []
    code, stdout, stderr = cli(*argv, *extra)
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert option in stderr and message in stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt"]
    assert (out / "earlier.txt").read_text() == "kept"


def test_out_that_is_a_file(cli, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    for out in (target, target / "below"):
        code, stdout, stderr = cli("variance", "--samples", "100", "--out", str(out))
        assert code == 2 and stdout == ""
        assert "--out" in stderr and "is a file" in stderr and len(stderr.splitlines()) == 1
    assert target.read_text() == "x"


def test_variance_json_contract(cli, tmp_path):
    code, stdout, stderr = cli("variance", "--dim", "64", "--json", "--no-plot", "--out", str(tmp_path))
    assert code == 0
    doc = json.loads(stdout)  # exactly one JSON document and nothing else
    assert set(doc) == {"experiment", "version", "config", "rows", "files"}
    assert doc["experiment"] == "variance" and doc["config"]["dim"] == 64
    rows = {r["scaling"]: r for r in doc["rows"]}
    assert rows["sqrt"]["variance_ci_low"] < 1 < rows["sqrt"]["variance_ci_high"]
    assert rows["none"]["variance_ci_low"] < 64 < rows["none"]["variance_ci_high"]
    assert rows["sqrt"]["variance_ci_high"] - rows["sqrt"]["variance_ci_low"] < 0.02  # +-1% at 99.9%
    for key in (
        "d_k",
        "scaling",
        "n_scores",
        "mean",
        "variance",
        "variance_ci_low",
        "variance_ci_high",
        "theory_mean",
        "theory_variance",
        "excess_kurtosis",
        "theory_excess_kurtosis",
    ):
        assert key in rows["sqrt"]
    names = sorted(Path(f).name for f in doc["files"])
    assert names == ["config.toml", "manifest.json", "rows.csv", "rows.json", "rows.md"]
    assert all(Path(f).exists() for f in doc["files"])
    manifest = json.loads(Path(doc["files"][0]).with_name("manifest.json").read_text())
    assert manifest["config"] == doc["config"] and manifest["seed"] == 0
    assert {"sqrtdk", "python", "numpy", "scipy", "matplotlib"} <= set(manifest["versions"])


def test_variance_figures_and_theory_with_mean(tmp_path, cli):
    code, stdout, _ = cli(
        "variance",
        "--dim",
        "16,64",
        "--std",
        "2",
        "--mean",
        "0.5",
        "--samples",
        "300000",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    doc = json.loads(stdout)
    names = {Path(f).name for f in doc["files"]}
    assert {"variance_vs_dk.png", "variance_vs_dk.svg", "histograms.png", "variance_checks.svg"} <= names
    assert not any(name.startswith("histogram_dk") for name in names)  # a sweep's histograms: one figure
    for row in doc["rows"]:
        assert row["variance_ci_low"] < row["theory_variance"] < row["variance_ci_high"]
    # different parameters, different folder
    cli("variance", "--dim", "16", "--samples", "1000", "--no-plot", "--quiet", "--out", str(tmp_path))
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


def test_table_on_stdout(cli, tmp_path):
    code, stdout, _ = cli("variance", "--samples", "10000", "--no-plot", "--out", str(tmp_path))
    assert code == 0 and "99.9% interval" in stdout and "sqrt" in stdout
    code, stdout, stderr = cli("variance", "--samples", "10000", "--no-plot", "--quiet", "--out", str(tmp_path))
    assert code == 0 and stdout == "" and stderr == ""


def test_cli_import_is_light():
    code = (
        "import sys, sqrtdk.cli; heavy = {'numpy', 'scipy', 'matplotlib'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_exits_0(cli):
    code, stdout, _ = cli("variance", "--help")
    assert code == 0 and "--dim" in stdout
    for argv in (("-h",), ("variance", "-h"), ("run", "-h"), ("reproduce", "-h"), ()):  # sqrtdk alone: help
        code, stdout, stderr = cli(*argv)
        assert code == 0 and stdout.startswith("Usage: sqrtdk") and stderr == "", argv
    code, stdout, _ = cli()
    assert all(name in stdout for name in ("variance", "saturation", "gradient", "check", "toy", "run"))


def test_version_is_the_installed_packages(cli):
    from importlib.metadata import version

    code, stdout, _ = cli("--version")
    assert code == 0 and stdout == f"sqrtdk {version('sqrtdk')}\n"


def test_shell_completion_script(monkeypatch, cli):
    """Typer's completion: `sqrtdk --install-completion`, or the script that it installs."""
    code, stdout, _ = cli("--help")
    assert "--install-completion" in stdout and "--show-completion" in stdout
    monkeypatch.setenv("_SQRTDK_COMPLETE", "source_bash")
    code, stdout, _ = cli()
    assert code == 0 and "_sqrtdk_completion()" in stdout


@pytest.mark.parametrize(
    "line,offered",
    [
        ("sqrtdk variance --scaling ", ["none", "sqrt", "linear", "qknorm"]),  # logn is refused in variance
        ("sqrtdk saturation --scaling l", ["linear", "logn"]),
        ("sqrtdk variance --dist st", ["student-t"]),
        ("sqrtdk gradient --style ", ["paper", "slide"]),
        ("sqrtdk variance --format png,s", ["png,svg"]),
        ("sqrtdk variance --layernorm ", ["true", "false"]),
        ("sqrtdk inspect --init t", ["torch-linear", "torch-mha"]),
        ("sqrtdk rep", ["reproduce"]),
    ],
)
def test_completion_offers_the_allowed_values(monkeypatch, cli, line, offered):
    words = line.split()
    monkeypatch.setenv("_SQRTDK_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(len(words) if line.endswith(" ") else len(words) - 1))
    code, stdout, _ = cli()
    assert code == 0 and stdout.split() == offered


@pytest.mark.parametrize("kind,metric", [("saturation", "max_prob_mean"), ("gradient", "grad_q_mean")])
def test_attention_commands(cli, tmp_path, kind, metric):
    code, stdout, _ = cli(
        kind, "--dim", "16,256", "--seq-len", "8,32", "--samples", "512", "--json", "--out", str(tmp_path)
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["experiment"] == kind and len(doc["rows"]) == 2 * 2 * 2
    for row in doc["rows"]:
        assert row[metric] is not None and row[metric + "_se"] > 0
    assert {Path(f).name for f in doc["files"]} >= {f"{kind}_vs_dk.png", f"{kind}_vs_dk.svg", "rows.csv"}


@pytest.mark.parametrize("signum,code", [(2, 130), (15, 143), (1, 129)])
@pytest.mark.parametrize(
    "where", [["--dim", "64"], ["--dim", "64,128,256", "--workers", "2"]], ids=["in-process", "worker-processes"]
)
def test_interrupt_leaves_no_partial_folder(tmp_path, signum, code, where, ready):
    import signal

    out = tmp_path / "results"
    out.mkdir()
    (out / "earlier.txt").write_text("kept")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sqrtdk.cli import main; main()",
            "variance",
            *where,
            "--samples",
            "100000000000",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready(proc, workers=2 if "--workers" in where else 0)  # inside the run, which would take hours
    proc.send_signal(signal.Signals(signum))
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert stderr.strip().splitlines() == ["sqrtdk: interrupted; nothing was written for the unfinished run"]
    assert sorted(p.name for p in out.iterdir()) == ["earlier.txt"]


def test_run_config_with_overrides(cli, tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('experiment = "saturation"\ndim = [4, 64]\nseq_len = 16\nsamples = 256\n')
    code, stdout, _ = cli(
        "run",
        str(config),
        "--set",
        "std=1,2",
        "--set",
        "seq_len=8",
        "--json",
        "--no-plot",
        "--out",
        str(tmp_path / "runs"),
    )
    assert code == 0
    doc = json.loads(stdout)
    assert doc["config"]["std"] == [1.0, 2.0] and doc["config"]["seq_len"] == 8
    assert [(r["entry_std"], r["d_k"], r["scaling"]) for r in doc["rows"][:3]] == [
        (1.0, 4, "none"),
        (1.0, 4, "sqrt"),
        (2.0, 4, "none"),
    ]
    folder = Path(doc["files"][0]).parent
    assert folder.parent == tmp_path / "runs" and folder.name.startswith("sweep-")
    saved = (folder / "config.toml").read_text()
    assert 'experiment = "saturation"' in saved and "std = [1.0, 2.0]" in saved


RUN_BAD = [
    ("dim = 4\n", [], "key 'experiment' is missing"),
    ('experiment = "variance"\ndim = 0\n', [], "key 'dim': 0 is not allowed; d_k must be an integer from 1 to 65536"),
    ('experiment = "variance"\ndims = 4\n', [], "key 'dims': unknown key"),
    ('experiment = "variance"\ndim = "4"\n', [], "key 'dim': '4' (a string) is not allowed"),
    ('experiment = "variance"\n', ["--set", "std=-1"], "--set std: '-1' is not allowed; the std must be"),
    ('experiment = "variance"\n', ["--set", "stdev=1"], "--set stdev: unknown key"),
    ('experiment = "variance"\n', ["--workers", "0"], "--workers: '0' is not allowed; the number of workers"),
]


@pytest.mark.parametrize("text,extra,message", RUN_BAD, ids=[m for _, _, m in RUN_BAD])
def test_run_bad_config_exit_2_nothing_written(cli, tmp_path, text, extra, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    out = tmp_path / "runs"
    code, stdout, stderr = cli("run", str(config), *extra, "--out", str(out))
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert message in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_run_missing_config_and_folder(cli, tmp_path):
    for target, message in ((tmp_path / "none.toml", "no such config file"), (tmp_path, "is a folder")):
        code, stdout, stderr = cli("run", str(target), "--out", str(tmp_path / "runs"))
        assert code == 2 and stdout == "" and message in stderr and len(stderr.strip().splitlines()) == 1


def _in_a_terminal(argv, env_extra):
    """Run the command line with stdout and stderr on a pseudo-terminal; return what it printed."""
    import os
    import pty

    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", **env_extra}
    env.pop("NO_COLOR", None) if "NO_COLOR" not in env_extra else None
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from sqrtdk.cli import main; main()", *argv], stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def _colours(text):
    """The colour parameters (30-38, 40-48, 90-97, 100-107) of the SGR escape sequences in `text`."""
    import re

    params = [p for seq in re.findall(r"\x1b\[([0-9;]*)m", text) for p in seq.split(";") if p]
    return [p for p in params if p[:1] in "349" and len(p) >= 2 and (p[0] in "34" or p.startswith(("9", "10")))]


def test_colour_only_at_a_terminal_and_never_with_no_color(tmp_path):
    argv = ["variance", "--dim", "4", "--samples", "1000", "--no-plot", "--out", str(tmp_path)]
    code, text = _in_a_terminal(argv, {})
    assert code == 0 and _colours(text) and "99.9% interval" in text
    code, text = _in_a_terminal(argv, {"NO_COLOR": "1"})
    assert code == 0 and not _colours(text) and "99.9% interval" in text
    piped = subprocess.run(
        [sys.executable, "-c", "from sqrtdk.cli import main; main()", *argv], capture_output=True, text=True
    )
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout + piped.stderr and piped.stderr == ""


def test_json_stays_valid_when_warnings_are_printed(tmp_path):
    code = "import warnings; warnings.warn('something to say'); from sqrtdk.cli import main; main()"
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            code,
            "saturation",
            "--dim",
            "4",
            "--seq-len",
            "8",
            "--samples",
            "64",
            "--json",
            "--no-plot",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "something to say" in done.stderr
    assert json.loads(done.stdout)["experiment"] == "saturation"


@pytest.mark.parametrize("signum,code", [(2, 130), (15, 143), (1, 129)])
def test_interrupted_reproduce_leaves_earlier_results(tmp_path, signum, code, ready):
    import signal

    configs, out = tmp_path / "configs", tmp_path / "results"
    configs.mkdir()
    (configs / "fast.toml").write_text('experiment = "variance"\ndim = 4\nsamples = 1000\n')
    assert subprocess.run([*STANDIN, "reproduce", str(configs), "--out", str(out), "--quiet"]).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (configs / "slow.toml").write_text('experiment = "gradient"\ndim = [64, 128]\nsamples = 100000000\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from sqrtdk.cli import main; main()",
            "reproduce",
            str(configs),
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready(proc, workers=2)
    proc.send_signal(signal.Signals(signum))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code and stdout == ""
    assert stderr.strip().splitlines() == ["sqrtdk: interrupted; nothing was written for the unfinished run"]
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_help_lists_the_allowed_values(cli):
    _, variance, _ = cli("variance", "--help")
    _, saturation, _ = cli("saturation", "--help")
    flat = " ".join(variance.split())
    assert "one of gaussian, uniform, rademacher, student-t" in flat
    assert "one of none, sqrt, linear, qknorm;" in flat  # no logn without a sequence length
    assert "one of normal, lecun, xavier, torch-linear, torch-mha" in flat
    assert "one of none, sqrt, linear, qknorm, logn" in " ".join(saturation.split())
    assert "true or false" in flat


def test_reproduce_counts_in_words(cli, tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "one.toml").write_text('experiment = "toy"\nseq_len = 10\n')
    code, stdout, _ = cli("reproduce", configs, "--out", tmp_path / "results")
    assert code == 0 and "toy, 1 task, 2 rows" in stdout


def test_configs_lists_and_copies_the_bundled_configs(cli, tmp_path):
    code, stdout, _ = cli("configs")
    assert code == 0 and "variance_vs_dk" in stdout and "ssmax_toy" in stdout
    code, stdout, _ = cli("configs", "--copy", tmp_path / "mine")
    assert code == 0 and (tmp_path / "mine" / "variance_vs_dk.toml").is_file()
    code, stdout, stderr = cli("configs", "--copy", tmp_path / "mine")
    assert code == 2 and stdout == "" and "which sqrtdk does not overwrite" in stderr
    code, _, stderr = cli("run", tmp_path / "none.toml")
    assert code == 2 and "or the name of one that ships with sqrtdk (`sqrtdk configs` lists them" in stderr


def test_configs_by_name_run_and_reproduce(cli, tmp_path, monkeypatch):
    """`run NAME` and `reproduce NAME...`: a name works as well as a path; reproduce regenerates only the
    configs named, leaves every other folder untouched, writes the report again from all committed rows,
    and names the folder the configs came from; --check takes names too."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = cli("run", "variance_vs_dk", "--set", "samples=65536", "--no-plot", "--json")
    assert code == 0, stderr  # no ./configs here: the config that ships with sqrtdk
    doc = json.loads(stdout)
    assert doc["experiment"] == "variance" and Path(doc["files"][0]).parent.name.startswith("variance_vs_dk-")
    (tmp_path / "configs").mkdir()
    for name, lengths in (("a", "[2, 10]"), ("b", "[5, 20]")):
        (tmp_path / "configs" / f"{name}.toml").write_text(
            f'experiment = "toy"\ntitle = "{name}"\nseq_len = {lengths}\n'
        )
    assert cli("reproduce", "--out", "results", "--quiet")[0] == 0
    report = (tmp_path / "results" / "README.md").read_text()
    assert "from the configs in [`../configs/`](../configs/)" in report
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "a").iterdir()}
    (tmp_path / "configs" / "b.toml").write_text('experiment = "toy"\ntitle = "b"\nseq_len = [5, 50]\n')
    assert cli("reproduce", "--check", "--out", "results")[0] == 1  # b is stale
    code, stdout, stderr = cli("reproduce", "b", "--out", "results")
    assert code == 0 and stdout.splitlines()[0].startswith("results/b/"), stderr
    assert "results/a/" not in stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "a").iterdir()} == kept
    rows = json.loads((tmp_path / "results" / "b" / "rows.json").read_text())
    assert sorted({row["seq_len"] for row in rows}) == [5, 50]
    report = (tmp_path / "results" / "README.md").read_text()
    assert "## a" in report and "## b" in report  # a's section from its committed rows
    assert cli("reproduce", "--check", "a", "b", "--out", "results")[0] == 0
    assert cli("reproduce", "--check", "--out", "results")[0] == 0
    (tmp_path / "configs" / "a.toml").write_text('experiment = "toy"\ntitle = "a"\nseq_len = [2, 30]\n')
    code, _, stderr = cli("reproduce", "--check", "b", "--out", "results")  # a's rows are not compared, and
    assert code == 0, stderr  # the report, made from a's committed rows, links a's config without pasting it
    code, _, stderr = cli("reproduce", "--check", "a", "--out", "results")
    assert code == 1 and "results/a/rows.json" in stderr
    before = (tmp_path / "results" / "README.md").read_text()
    code, stdout, stderr = cli("reproduce", "b", "--out", "results")  # a changed: it cannot stay out
    assert code == 2 and stdout == "" and "CONFIG: configs/a.toml is not allowed to stay out" in stderr
    assert "sqrtdk reproduce b a" in stderr and (tmp_path / "results" / "README.md").read_text() == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "c.toml").write_text('experiment = "toy"\nseq_len = 2\n')
    assert cli("reproduce", mine, "--out", "other", "--quiet")[0] == 0
    assert "[`../mine/`](../mine/)" in (tmp_path / "other" / "README.md").read_text()


@pytest.mark.parametrize("columns", [60, 80])
def test_configs_fits_the_terminal(cli, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    code, stdout, _ = cli("configs")
    assert code == 0 and "ssmax_toy" in stdout
    assert max(len(line) for line in stdout.splitlines()) <= columns


def _stderr_at_a_terminal(argv, cwd):
    """`sqrtdk *argv` with stderr on a pseudo-terminal (where progress is shown): (exit code, stderr)."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*STANDIN, *map(str, argv)],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=600), seen.decode("utf-8", "replace")


def test_drawing_figures_is_a_visible_step(tmp_path):
    """After sampling, the figures take a while: a person at a terminal sees "drawing N figures" counted on
    stderr; --quiet shows nothing."""
    argv = ["variance", "--dim", "4,8", "--samples", "1000", "--out", tmp_path / "out"]
    code, stderr = _stderr_at_a_terminal(argv, tmp_path)
    assert code == 0 and "drawing 3 figures" in stderr, stderr  # the histograms, the sweep, its checks
    code, stderr = _stderr_at_a_terminal([*argv, "--quiet"], tmp_path)
    assert code == 0 and stderr == ""


def test_ctrl_c_while_the_command_line_loads_is_one_line():
    """A Ctrl-C before `main` runs (the imports take a second or more on a busy machine) ends as one
    mid-run does: one line, exit 130, no import traceback. Delivered deterministically: the import of the
    command line raises KeyboardInterrupt, as the signal would."""
    code = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'sqrtdk.cli':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "from sqrtdk.entry import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "variance"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stdout == ""
    assert done.stderr == "sqrtdk: interrupted; nothing was written for the unfinished run\n"


def test_a_signal_wrapped_by_python_is_still_the_signal(monkeypatch, capsys):
    """SIGHUP handled while an experiment module's dataclass is being made reaches main as
    RuntimeError("Error calling __set_name__ ...") caused by it: still one line and exit 129, no traceback
    (seen once in 25 runs of a SIGHUP sent as the run starts, on a busy machine)."""
    import signal

    from sqrtdk import cli as cli_module

    class Group:
        def main(self, **kwargs):
            try:
                raise cli_module.Terminated(signal.SIGHUP)
            except cli_module.Terminated as hup:
                raise RuntimeError("Error calling __set_name__ on 'Field' instance 'dim' in 'Params'") from hup

    monkeypatch.setattr(cli_module, "cli", lambda: Group())
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with pytest.raises(SystemExit) as done:
            cli_module.main(["variance"])
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert done.value.code == 129
    assert capsys.readouterr().err.strip().splitlines() == [
        "sqrtdk: interrupted; nothing was written for the unfinished run"
    ]
