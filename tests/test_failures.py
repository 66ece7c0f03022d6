"""The failures that users and machines cause: each ends in one line and a documented exit code, and
nothing that an earlier run or the user made is lost. Real subprocesses and real signals throughout."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STANDIN, descendants

SQRTDK = [sys.executable, "-m", "sqrtdk"]
FAST = ["--samples", "4096", "--quiet", "--workers", "1"]


def sqrtdk(*argv, env=None, drawn=False, **kw):
    """`python -m sqrtdk *argv`, its figures stand-ins unless `drawn` (the tests about figures)."""
    return subprocess.run(
        [*(SQRTDK if drawn else STANDIN), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
        **kw,
    )


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(done, code):
    assert done.returncode == code, (done.returncode, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip()


CONFIG = 'experiment = "variance"\ndim = 4\nsamples = 2000\n'


@pytest.fixture
def project(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.toml").write_text(CONFIG)
    return configs, tmp_path / "results"


@pytest.fixture
def reproduced_project(tmp_path, reproduced):
    """The project with its results already reproduced (made once in the test process, copied here)."""
    return reproduced({"a.toml": CONFIG}, tmp_path)


# ---- ownership of outputs ----


def test_reproduce_never_replaces_a_folder_it_did_not_make(project):
    configs, results = project
    (results / "mine" / "variance-abc").mkdir(parents=True)
    (results / "mine" / "variance-abc" / "rows.csv").write_text("an ad-hoc run")
    (configs / "mine.toml").write_text(CONFIG)
    before = files(results)
    line = one_line(sqrtdk("reproduce", configs, "--out", results), 2)
    assert "mine.toml: this config's results folder" in line and "sqrtdk did not make it" in line
    assert files(results) == before


@pytest.mark.parametrize(
    "names,message",
    [
        (["README.md"], "'README.md' is not allowed; its results folder would be the report's page <out>/README.md"),
        (["readme.MD"], "'readme.MD' is not allowed; its results folder would be the report's page"),
        (["Details.md"], "'Details.md' is not allowed; its results folder would be the report's page <out>/Details.md"),
        (["."], "'.' is not allowed; its results folder would be hidden"),
        ([".x.sqrtdk-partial-1"], "'.x.sqrtdk-partial-1' is not allowed; its results folder would be hidden"),
        (["runs"], "'runs' is not allowed; ad-hoc runs write into results/runs/ by default"),
        (["Studies"], "'Studies' is not allowed; study scripts write into results/studies/ by default"),
        (["Noise", "noise"], "'noise' is not allowed; it differs from"),
    ],
)
def test_config_names_that_collide_with_what_reproduce_writes_are_refused_up_front(cli, project, names, message):
    """A config named README.md.toml made results/README.md/ with its files, then failed to write the
    report over it. Names that would be the report, a hidden or . or .. folder, the ad-hoc runs' or the
    studies' folder, or one folder for two configs where case is ignored: one line, nothing written."""
    configs, results = project
    for name in names:
        (configs / f"{name}.toml").write_text('experiment = "toy"\nseq_len = [10, 100]\n')
    for argv in ([configs], [configs, "--check"], [configs / f"{names[-1]}.toml"]):
        code, out, err = cli("reproduce", *argv, "--out", results)
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert message in err and err.endswith("rename the config\n"), err
    assert not results.exists()


def test_reproduce_into_a_folder_of_the_users_keeps_their_files(project):
    configs, results = project
    results.mkdir()
    (results / "README.md").write_text("# my notes\n")
    (results / "a").mkdir()
    (results / "a" / "notes.txt").write_text("mine")
    line = one_line(sqrtdk("reproduce", configs, "--out", results), 2)
    assert "sqrtdk did not make it" in line
    (results / "a" / "notes.txt").unlink()
    (results / "a").rmdir()
    line = one_line(sqrtdk("reproduce", configs, "--out", results), 2)
    assert "README.md is not a report sqrtdk wrote" in line
    assert files(results) == {"README.md": b"# my notes\n"}
    (results / "README.md").unlink()
    (results / "details.md").write_text("# my details\n")
    line = one_line(sqrtdk("reproduce", configs, "--out", results), 2)
    assert "details.md is not a report sqrtdk wrote" in line
    assert files(results) == {"details.md": b"# my details\n"}


def test_reproduce_keeps_what_the_user_put_beside_and_inside_its_folders(reproduced_project, tmp_path):
    configs, results = reproduced_project
    (results / "a" / "notes.txt").write_text("mine")
    (results / "a" / "mine").mkdir()
    (results / "a" / "mine" / "f").write_text("mine too")
    (results / "a" / "link").symlink_to(tmp_path / "nowhere")
    shutil.copytree(results / "a", results / "a_backup", symlinks=True)  # a copy still names its config
    (results / "a_link").symlink_to(results / "a")
    (results / ".profile.old-2023").write_text("a dot-file that looks like debris")
    (configs / "a.toml").write_text('experiment = "variance"\ndim = 4\nsamples = 100000\n')  # the numbers change
    assert sqrtdk("reproduce", configs, "--out", results, "--quiet").returncode == 0
    assert (results / "a" / "notes.txt").read_text() == "mine" and (results / "a" / "mine" / "f").exists()
    assert os.readlink(results / "a" / "link") == str(tmp_path / "nowhere")
    assert (results / "a_backup" / "notes.txt").exists() and (results / "a_link").is_symlink()
    assert (results / ".profile.old-2023").exists()
    assert (
        json.loads((results / "a" / "rows.json").read_text())[0]["n_scores"]
        != json.loads((results / "a_backup" / "rows.json").read_text())[0]["n_scores"]
    )
    # with the user's files beside them, unchanged outputs are still left untouched
    stamp = (results / "a" / "rows.json").stat().st_mtime_ns
    assert sqrtdk("reproduce", configs, "--out", results, "--quiet").returncode == 0
    assert (results / "a" / "rows.json").stat().st_mtime_ns == stamp


def test_a_pipe_or_endless_manifest_is_never_read(project):
    configs, results = project
    (results / "other").mkdir(parents=True)
    os.mkfifo(results / "other" / "manifest.json")
    (results / "zero").mkdir()
    (results / "zero" / "manifest.json").symlink_to("/dev/zero")
    done = sqrtdk("reproduce", configs, "--out", results, "--quiet")
    assert done.returncode == 0, done.stderr
    (configs / "zero.toml").write_text(CONFIG)
    assert "sqrtdk did not make it" in one_line(sqrtdk("reproduce", configs, "--out", results), 2)


def test_kill_9_of_reproduce_leaves_nothing_that_the_next_run_trips_on(reproduced_project, ready):
    configs, results = reproduced_project
    before = files(results)
    (configs / "slow.toml").write_text('experiment = "gradient"\ndim = [64, 128]\nsamples = 100000000\n')
    proc = subprocess.Popen(
        [*SQRTDK, "reproduce", str(configs), "--out", str(results), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready(proc, workers=2)  # both workers sampling
    workers = descendants(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60  # workers notice within a second; the rest is a busy machine's margin
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert workers and not [pid for pid in workers if _alive(pid)]
    # a staging folder that a kill could have left: the next run removes it
    (results / f".a.sqrtdk-partial-{_dead_pid()}").mkdir()
    (configs / "slow.toml").unlink()
    assert files(results) == before
    check = sqrtdk("reproduce", configs, "--out", results, "--check")
    assert check.returncode == 0, check.stderr
    assert sqrtdk("reproduce", configs, "--out", results, "--quiet").returncode == 0
    assert not [p for p in results.iterdir() if p.name.startswith(".")]


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_two_reproduce_runs_at_once_both_succeed(project):
    configs, results = project
    runs = [
        subprocess.Popen(
            [*STANDIN, "reproduce", str(configs), "--out", str(results), "--quiet"], stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert sqrtdk("reproduce", configs, "--out", results, "--check").returncode == 0


# ---- one line and a documented code for every failure ----


def test_sighup_is_handled_like_sigterm(tmp_path, ready):
    proc = subprocess.Popen(
        [*SQRTDK, "variance", "--dim", "64", "--samples", "100000000000", "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready(proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 129 and err.strip() == "sqrtdk: interrupted; nothing was written for the unfinished run"
    assert list(tmp_path.iterdir()) == []


def _signalled(tmp_path, argv, appeared, send):
    """`sqrtdk *argv --out tmp_path` in a process group of its own (as a shell gives a command), `send`
    called with its pid once `appeared` processes are below it: (exit code, stderr)."""
    proc = subprocess.Popen(
        [*SQRTDK, *argv, "--out", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(descendants(proc.pid)) < appeared and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        send(proc.pid)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("appeared,then", [(1, 0.0), (2, 0.1), (3, 0.0)])
def test_ctrl_c_while_workers_start_is_one_line(tmp_path, appeared, then):
    """Ctrl-C to the whole process group as the run's helper processes appear: as the pool's resource
    tracker starts (1), while the forkserver imports numpy and sqrtdk (2), as the first worker is forked (3).
    The one line and 130, never a worker's or the server's KeyboardInterrupt or a half-started worker's
    traceback. Points, not times: the test waits for the process to appear, however busy the machine."""
    argv = ["variance", "--dim", "64,128,256,512", "--samples", "33554432", "--workers", "2", "--quiet"]

    def ctrl_c(pid):
        time.sleep(then)
        os.killpg(pid, signal.SIGINT)

    code, err = _signalled(tmp_path, argv, appeared, ctrl_c)
    assert code == 130 and err == "sqrtdk: interrupted; nothing was written for the unfinished run\n", err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("how", ["hang-up", "kill-9"])
def test_a_hang_up_or_kill_9_among_workers_leaves_the_resource_tracker_silent(tmp_path, how):
    """A closed terminal (SIGHUP to the process group) while workers train: the one line and 129; a kill
    -9 of the run: nothing at all. The resource tracker (the process that unlinks the pool's semaphores
    if the run cannot) outlives both and is the last to let go of stderr, so reading stderr to its end
    waits for it: it once printed a KeyError per semaphore after a hang-up, and after a kill -9 that it
    had leaked semaphores to clean up."""
    argv = ["train", "--scaling", "sqrt,none", "--lr", "0.01", "--steps", "3000", "--replicates", "2"]

    def send(pid):
        if how == "hang-up":
            os.killpg(pid, signal.SIGHUP)
        else:
            os.kill(pid, signal.SIGKILL)

    # the tracker, the forkserver and two workers
    code, err = _signalled(tmp_path, [*argv, "--workers", "2", "--quiet"], 4, send)
    if how == "hang-up":
        assert (code, err) == (129, "sqrtdk: interrupted; nothing was written for the unfinished run\n")
    else:
        assert (code, err) == (-signal.SIGKILL, "")


def test_a_reader_that_goes_away_is_not_a_failed_check():
    done = subprocess.run(
        f"{' '.join(SQRTDK)} check --dim 4 | true; echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() in ("0", "141") and done.stderr == ""


def test_a_reader_that_closes_without_reading_is_exit_141(tmp_path):
    done = subprocess.run(
        f"{' '.join(SQRTDK)} variance --dim 16 --samples 4096 --workers 1 --json --no-plot "
        f"--out {tmp_path} | (exec <&-; sleep 3); echo ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.strip() == "141" and done.stderr == ""


def test_a_full_stdout_is_reported_as_such_after_the_files_are_written(tmp_path):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*STANDIN, "variance", "--dim", "4", *FAST, "--json", "--out", str(tmp_path)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    assert done.returncode == 74 and "the results could not be printed (No space left on device)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    (folder,) = tmp_path.iterdir()
    assert (folder / "rows.json").exists()
    assert done.stderr.rstrip().endswith(f"; the {len(list(folder.iterdir()))} files written are kept")


@pytest.mark.parametrize("argv", [["--help"], ["configs"]])
def test_a_full_stdout_after_writing_nothing_claims_no_files(argv):
    with open("/dev/full", "w") as full:
        done = subprocess.run([*SQRTDK, *argv], stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 74
    assert done.stderr == "sqrtdk: error: the results could not be printed (No space left on device)\n"


def test_closed_stdout_still_writes_the_files(tmp_path):
    done = subprocess.run(
        " ".join([*STANDIN, "variance", "--dim", "4", *FAST, "--out", str(tmp_path)]) + " >&-",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("backend", ["nonsense", "module://matplotlib_inline.backend_inline", "TkAgg"])
def test_any_mplbackend_draws_the_figures(tmp_path, backend):
    done = sqrtdk("variance", "--dim", "4", *FAST, "--out", tmp_path, env={"MPLBACKEND": backend}, drawn=True)
    assert done.returncode == 0, done.stderr
    (folder,) = tmp_path.iterdir()
    assert (folder / "histogram_dk4.png").exists()


@pytest.mark.parametrize("where", ["read-only", "below a file"])
def test_an_unwritable_mplconfigdir_is_no_warning_under_quiet(tmp_path, where):
    """matplotlib warns, in every process that draws, when its folder is not writable; the run makes its
    fallback (a temporary folder, removed at exit) once and quietly. A folder of mode 555 is read-only
    except to root, to whom a path below a file is as unwritable as to anyone."""
    if where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder")
        config = tmp_path / "mpl"
        config.mkdir(mode=0o555)
    else:
        (tmp_path / "file").write_text("")
        config = tmp_path / "file" / "mpl"
    out = tmp_path / "out"
    argv = ["saturation", "--dim", "4,8", "--seq-len", "8", "--samples", "64", "--workers", "2", "--quiet"]
    done = sqrtdk(*argv, "--out", out, env={"MPLCONFIGDIR": str(config)}, drawn=True)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    (folder,) = out.iterdir()
    assert (folder / "saturation_vs_dk.png").exists()


def test_run_of_a_failing_check_config_exits_1(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('experiment = "check"\ndim = 16\nstd = 1.1\nsamples = 65536\n')
    line = one_line(sqrtdk("run", config, "--out", tmp_path / "runs", "--quiet"), 1)
    assert line == "sqrtdk: check failed: the scaled variance's 99.9% interval leaves [0.95, 1.05] at d_k = 16"


# ---- configs and paths ----


@pytest.mark.parametrize(
    "name,text,message",
    [
        ("nested.toml", 'experiment = "variance"\ndim = ' + "[" * 5000 + "]" * 5000 + "\n", "nest too deeply"),
        ("bom.toml", '\ufeffexperiment = "variance"\ndim = 4\nsamples = 1000\n', None),
    ],
)
def test_config_files_that_break_parsers(tmp_path, name, text, message):
    config = tmp_path / name
    config.write_text(text, encoding="utf-8")
    done = sqrtdk("run", config, "--no-plot", "--quiet", "--out", tmp_path / "runs")
    if message is None:
        assert done.returncode == 0, done.stderr
    else:
        assert message in one_line(done, 2)


def test_a_config_that_never_ends(tmp_path):
    config = tmp_path / "endless.toml"
    config.symlink_to("/dev/zero")
    assert "not a regular file" in one_line(sqrtdk("run", config, "--out", tmp_path / "runs"), 2)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    assert "larger than 1024 KiB" in one_line(sqrtdk("run", big, "--out", tmp_path / "runs"), 2)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["variance", "--dim", "4", "--out", ""], "--out: '' is not allowed; it must not be empty"),
        (["variance", "--dim", "4", "--scheduler", ""], "--scheduler: '' is not allowed; it must not be empty"),
        (["reproduce", ""], "CONFIG_DIR: '' is not allowed"),
        (["variance", "--dim", "4", "--out", "x" * 300], "longer than 255 bytes"),
    ],
)
def test_empty_and_impossible_names_are_refused_up_front(tmp_path, argv, message):
    assert message in one_line(sqrtdk(*argv, cwd=tmp_path), 2)
    assert list(tmp_path.iterdir()) == []


def test_a_dangling_link_as_out_is_refused_before_any_work(tmp_path, cli, monkeypatch):
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "nowhere")
    argv = ("variance", "--dim", "4", "--samples", "100000000000", "--out", link)
    assert "a link to nothing" in one_line(sqrtdk(*argv), 2)
    # the same run in this process, where starting any task would fail the test
    from sqrtdk import executors

    monkeypatch.setattr(executors, "run_all", lambda *a, **kw: pytest.fail("a task was started"))
    code, _, err = cli(*argv)
    assert code == 2 and "a link to nothing" in err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["saturation", "--threshold", "1.0"], "--threshold: '1.0' is not allowed"),
        (["gradient", "--eps", "1e-20"], "--eps: '1e-20' is not allowed"),
        (["variance", "--scaling", "qknorm", "--qk-gain", "1e-300"], "--qk-gain: '1e-300' is not allowed"),
        (["gradient", "--scaling", "logn", "--ssmax-s", "1e-300"], "--ssmax-s: '1e-300' is not allowed"),
    ],
)
def test_values_the_arithmetic_cannot_resolve_are_refused(tmp_path, argv, message):
    assert message in one_line(sqrtdk(*argv, "--out", tmp_path), 2)


def test_minus_zero_is_zero(tmp_path):
    rows = [
        json.loads(
            sqrtdk("variance", "--dim", "4", *FAST, "--json", "--no-plot", "--mean", mean, "--out", tmp_path).stdout
        )["rows"]
        for mean in ("0", "-0")
    ]
    assert rows[0] == rows[1]
