"""Bad input the way users produce it, through the command line: configs, overrides, the output folder,
the executors and the resource guard. Every case exits 2 with one line naming the option or key, the value
and what is allowed; nothing is written and earlier results stay as they were. (Bad option values of the
experiment commands themselves are in test_cli.py.)"""

import errno
import json
import pathlib

import pytest

import sqrtdk
from sqrtdk import executors, schema
from sqrtdk.errors import InputError


def refused(cli, out, *argv, message):
    """Run argv; assert the refusal contract and that `out` holds only what it held before."""
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    code, stdout, stderr = cli(*argv)
    assert code == 2, stderr
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("sqrtdk: error: ") and "Traceback" not in stderr
    assert message in stderr, stderr
    if before is not None:
        assert sorted(p.name for p in out.iterdir()) == before
        assert (out / "earlier.txt").read_text() == "kept"
    return stderr


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "earlier.txt").write_text("kept")
    return folder


CONFIGS = [
    ("dim = 4\n", "c.toml: key 'experiment' is missing; choose from variance, saturation"),
    ('experiment = "varience"\n', "key 'experiment': 'varience' is not allowed; choose from variance"),
    ('experiment = ["variance"]\n', "key 'experiment': ['variance'] is not allowed; choose from"),
    ('experiment = "variance"\ndims = 4\n', "key 'dims': unknown key; allowed keys are experiment, title"),
    ('experiment = "variance"\ndim = "64"\n', "key 'dim': '64' (a string) is not allowed; d_k must be an integer"),
    ('experiment = "variance"\nsamples = true\n', "key 'samples': true (a boolean) is not allowed"),
    ('experiment = "variance"\ndim = 2.5\n', "key 'dim': 2.5 is not allowed; d_k must be an integer from 1"),
    ('experiment = "variance"\ndim = [[1, 2]]\n', "key 'dim': [1, 2] (a list) is not allowed; give a value or a flat"),
    ('experiment = "variance"\nstd = {a = 1}\n', "key 'std': {'a': 1} (a table) is not allowed"),
    ('experiment = "variance"\ndim = []\n', "key 'dim': an empty list is not allowed"),
    ('experiment = "variance"\nstd = -1.0\n', "key 'std': -1.0 is not allowed; the std must be a finite number > 0"),
    ('experiment = "variance"\nstd = inf\n', "key 'std': inf is not allowed"),
    ('experiment = "variance"\ntitle = ["a"]\n', "key 'title': ['a'] is not allowed; the title must be a string"),
    ('experiment = "variance"\norder = -1\n', "key 'order': -1 is not allowed; the order must be an integer"),
    ('experiment = "variance"\ndim = [4,\n', "c.toml: not valid TOML: "),
    ('experiment = "variance"\ndf = 5.0\n', "key 'df': 5.0 is not allowed here; it is used only with dist student-t"),
    ('experiment = "variance"\ndist = "uniform"\nrho = 0.5\n', "key 'rho': 0.5 is not allowed with dist uniform"),
    ('experiment = "saturation"\ninputs = "projected"\nheads = 5\n', "key 'heads': 5 is not allowed with d_model"),
    ('experiment = "variance"\ninputs = "projected"\ndim = 64\n', "key 'dim': 64 is not allowed here; it is used only"),
    ('experiment = "variance"\nscaling = ["sqrt", "logn"]\n', "key 'scaling': 'logn' is not allowed; the scaling must"),
    ('experiment = "gradient"\nqk_gain = 2.0\n', "key 'qk_gain': 2.0 is not allowed here; it is used only with"),
    (
        'experiment = "saturation"\nseq_len = 16385\n',
        "key 'seq_len': 16385 is not allowed; the sequence length must be",
    ),
    ('experiment = "toy"\nhigh = nan\n', "key 'high': nan is not allowed; high must be a finite number"),
    ('experiment = "precision"\ndtype = "float8"\n', "key 'dtype': 'float8' is not allowed; the dtype must be one"),
    ('experiment = "precision"\nplacement = "key"\n', "key 'placement': 'key' is not allowed; the placement must"),
    (
        'experiment = "precision"\nstd = 5000.0\n',
        "key 'std': 5000.0 is not allowed; the std must be a finite number >= 0.001",
    ),
    ('experiment = "precision"\nseq_len = 8192\n', "key 'seq_len': 8192 is not allowed; the sequence length must be"),
]


@pytest.mark.parametrize("text,message", CONFIGS, ids=[m.split(":")[0][:60] for _, m in CONFIGS])
def test_bad_config(cli, tmp_path, out, text, message):
    config = tmp_path / "c.toml"
    config.write_text(text)
    stderr = refused(cli, out, "run", str(config), "--out", str(out), message=message)
    assert str(config) in stderr


def test_config_that_is_not_text(cli, tmp_path, out):
    config = tmp_path / "c.toml"
    config.write_bytes(b"\xff\xfe\x00experiment")
    refused(cli, out, "run", str(config), "--out", str(out), message="not a text file; a config is TOML in UTF-8")


SETS = [
    (["--set", "dim"], "--set: 'dim' is not allowed; write key=value"),
    (["--set", "dims=4"], "--set dims: unknown key; allowed keys are dim"),
    (["--set", "dim=abc"], "--set dim: 'abc' is not allowed; d_k must be an integer from 1 to 65536"),
    (["--set", "std=0"], "--set std: '0' is not allowed; the std must be a finite number > 0"),
    (["--set", "dist=cauchy"], "--set dist: 'cauchy' is not allowed; the distribution must be one of"),
    (["--set", "df=5"], "--set df: 5.0 is not allowed here; it is used only with dist student-t"),
]


@pytest.mark.parametrize("sets,message", SETS, ids=[m[:40] for _, m in SETS])
def test_bad_set(cli, tmp_path, out, sets, message):
    config = tmp_path / "c.toml"
    config.write_text('experiment = "variance"\ndim = 4\n')
    refused(cli, out, "run", str(config), *sets, "--out", str(out), message=message)


def test_missing_config_and_folder(cli, tmp_path, out):
    refused(cli, out, "run", str(tmp_path / "none.toml"), "--out", str(out), message="no such config file")
    refused(cli, out, "run", str(tmp_path), "--out", str(out), message="is a folder; give the path of one TOML")


def test_reproduce_config_dir(cli, tmp_path, out):
    refused(cli, out, "reproduce", str(tmp_path / "none"), "--out", str(out), message="CONFIG_DIR: ")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(cli, out, "reproduce", str(empty), "--out", str(out), message="it holds no *.toml config")
    refused(cli, out, "reproduce", str(out / "earlier.txt"), "--out", str(out), message="it is a file")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.toml").write_text('experiment = "variance"\ndim = 4\nsamples = 1000\n')
    (configs / "b.toml").write_text('experiment = "variance"\nseed = -1\n')
    refused(cli, out, "reproduce", str(configs), "--out", str(out), message="b.toml: key 'seed': -1 is not allowed")
    (configs / "b.toml").unlink()
    refused(cli, out, "reproduce", str(configs), "--check", "--out", str(out / "earlier.txt"), message="--out: ")


def test_out_that_is_a_file_or_below_one(cli, out):
    refused(cli, out, "variance", "--samples", "100", "--out", str(out / "earlier.txt"), message="it is a file")
    refused(
        cli,
        out,
        "variance",
        "--samples",
        "100",
        "--out",
        str(out / "earlier.txt" / "below"),
        message="is a file, not a folder",
    )


def test_out_not_writable(cli, out, monkeypatch):
    monkeypatch.setattr("sqrtdk.output.os.access", lambda path, mode: False)  # root may write anywhere
    refused(cli, out, "variance", "--samples", "100", "--out", str(out / "runs"), message="is not writable")


def test_out_on_a_full_disk(cli, out, monkeypatch):
    real = pathlib.Path.write_text

    def full(self, *args, **kwargs):
        if self.parent.name.startswith("."):  # the staging folder of a run
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    stderr = refused(
        cli,
        out,
        "variance",
        "--samples",
        "100",
        "--no-plot",
        "--workers",
        "1",
        "--out",
        str(out),
        message="writing the results there failed (No space left on device); nothing was written",
    )
    assert str(out) in stderr


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--workers", "0"], "--workers: '0' is not allowed; the number of workers must be an integer from 1"),
        (["--workers", "two"], "--workers: 'two' is not allowed"),
        (["--max-memory", "-1"], "--max-memory: '-1' is not allowed; the memory limit in GiB must be"),
        (["--max-time", "soon"], "--max-time: 'soon' is not allowed; the time limit in minutes must be"),
    ],
)
def test_bad_execution_options(cli, out, argv, message):
    refused(cli, out, "saturation", "--samples", "64", *argv, "--out", str(out), message=message)


def test_unreachable_scheduler(cli, out, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT", "1s")
    refused(
        cli,
        out,
        "variance",
        "--dim",
        "4,8",
        "--samples",
        "100",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "--out",
        str(out),
        message="--scheduler: 'tcp://127.0.0.1:1' is not allowed; no Dask scheduler answered",
    )


def test_resource_guard_memory(cli, out):
    stderr = refused(
        cli,
        out,
        "gradient",
        "--dim",
        "65536",
        "--seq-len",
        "16384",
        "--samples",
        "64",
        "--max-memory",
        "2",  # one task at one thread holds 4 GiB: refused on any number of cores
        "--out",
        str(out),
        message="--max-memory: 2 GiB is not enough; one gradient task (d_k = 65536, n = 16384) would hold about",
    )
    assert "raise --max-memory" in stderr
    refused(
        cli,
        out,
        "variance",
        "--inputs",
        "projected",
        "--d-model",
        "65536",
        "--heads",
        "64",
        "--out",
        str(out),
        message="one variance task (d_model = 65536) would hold about",
    )


def test_resource_guard_time(out, cli):
    stderr = refused(
        cli,
        out,
        "variance",
        "--samples",
        "1000000000000",
        "--max-time",
        "30",
        "--out",
        str(out),
        message="--max-time: 30 minutes is not enough; the run would take about",
    )
    assert "lower --samples" in stderr
    # the same run is accepted when the limit allows it (and then stopped by a lower sample count here)
    code, _, _ = cli(
        "variance", "--samples", "1000", "--max-time", "30", "--no-plot", "--quiet", "--out", str(out / "runs")
    )
    assert code == 0


# One table, three faces: the command line's text, a TOML config's typed value, Python's keyword.
FACES = [  # experiment, key, command-line text, typed value, what the message says after the value
    ("variance", "dim", "0", 0, "is not allowed; d_k must be an integer from 1 to 65536"),
    ("variance", "samples", "2.5", 2.5, "is not allowed; the number of scores must be an integer"),
    ("variance", "std", "-1", -1.0, "is not allowed; the std must be a finite number > 0"),
    ("variance", "dist", "cauchy", "cauchy", "is not allowed; the distribution must be one of gaussian"),
    ("variance", "scaling", "logn", "logn", "is not allowed; the scaling must be one of none, sqrt"),
    ("saturation", "seq_len", "20000", 20000, "is not allowed; the sequence length must be an integer"),
    ("saturation", "threshold", "1.5", 1.5, "is not allowed; the threshold must be a finite number > 0"),
    ("gradient", "eps", "0", 0.0, "is not allowed; eps must be a finite number >= 1e-10"),
    ("check", "tol", "1", 1.0, "is not allowed; the tolerance must be a finite number > 0 and < 1"),
    ("toy", "high", "nan", float("nan"), "is not allowed; high must be a finite number"),
]


@pytest.mark.parametrize("experiment,key,text,typed,message", FACES, ids=[f"{e}-{k}" for e, k, *_ in FACES])
def test_one_refusal_on_three_faces(cli, tmp_path, experiment, key, text, typed, message):
    out = () if experiment == "check" else ("--out", str(tmp_path / "runs"))
    code, stdout, stderr = cli(experiment, schema.option_name(key), text, *out)
    assert code == 2 and stdout == "" and f"{schema.option_name(key)}: {text!r} {message}" in stderr
    config = tmp_path / "c.toml"
    value = "nan" if typed != typed else json.dumps(typed)
    config.write_text(f'experiment = "{experiment}"\n{key} = {value}\n')
    code, stdout, stderr = cli("run", str(config), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"c.toml: key '{key}': {schema.show(typed)} {message}" in stderr
    with pytest.raises(InputError, match=f"^{key}: ") as refused:
        sqrtdk.run(experiment, **{key: typed})
    assert message in str(refused.value)
    assert not (tmp_path / "runs").exists()


def test_config_overrides_in_python_are_typed_values(tmp_path):
    """run_config's keywords are checked as run's are: text is refused, and errors name the key alone."""
    config = tmp_path / "c.toml"
    config.write_text('experiment = "variance"\ndim = 4\nsamples = 1000\n')
    with pytest.raises(InputError, match=r"^dim: '64' \(a string\) is not allowed"):
        sqrtdk.run_config(config, dim="64")
    with pytest.raises(InputError, match=r"^dim: 0 is not allowed"):
        sqrtdk.run_config(config, dim=0)
    assert sqrtdk.run_config(config, dim=[4, 8]).rows[-1]["d_k"] == 8
