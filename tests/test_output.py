"""Run folders are written whole or not at all."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import STANDIN

import sqrtdk
from sqrtdk import result as result_module
from sqrtdk.errors import InputError
from sqrtdk.output import commit, stage, sweep, to_csv, to_json, to_markdown


def dead_pid():
    """The process id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_failed_write_leaves_nothing_and_keeps_earlier(tmp_path, monkeypatch):
    result = sqrtdk.run("variance", dim=[4, 8], samples=1000)
    folder = Path(result.write(tmp_path)[0]).parent
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def boom(item):
        raise RuntimeError("disk full")

    monkeypatch.setattr(result_module, "_render", boom)
    with pytest.raises(RuntimeError):
        result.write(tmp_path, workers=1)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging folder left
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_commit_exchanges_a_folder_whole_and_refuses_what_sqrtdk_did_not_make(tmp_path):
    made = tmp_path / "run"
    made.mkdir()
    (made / "manifest.json").write_text(json.dumps({"experiment": "variance", "versions": {"sqrtdk": "0"}}))
    (made / "rows.csv").write_text("an earlier output")
    (made / "notes.txt").write_text("the user's")
    staging = stage(made)
    (staging / "manifest.json").write_text((made / "manifest.json").read_text())
    # the earlier output is replaced (gone: this run does not write it), the user's file is carried over
    assert commit(staging, made) == [str(made / "manifest.json"), str(made / "notes.txt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    staging = stage(mine)
    with pytest.raises(InputError, match="sqrtdk did not make it"):
        commit(staging, mine)
    assert (mine / "notes.txt").read_text() == "the user's"


def test_sweep_puts_back_a_folder_a_kill_left_retired_and_removes_debris(tmp_path):
    pid = dead_pid()
    (tmp_path / f".run.sqrtdk-old-{pid}").mkdir()  # killed between the two renames of a commit
    (tmp_path / f".run.sqrtdk-old-{pid}" / "rows.csv").write_text("kept")
    (tmp_path / f".other.sqrtdk-partial-{pid}").mkdir()
    (tmp_path / f".README.md.sqrtdk-partial-{pid}").write_text("half")
    (tmp_path / f".live.sqrtdk-partial-{os.getpid()}").mkdir()  # this process's own: not debris
    (tmp_path / f".profile.old-{pid}").write_text("the user's")  # names like debris, but not sqrtdk's
    sweep(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".live.sqrtdk-partial-{os.getpid()}",
        f".profile.old-{pid}",
        "run",
    ]
    assert (tmp_path / "run" / "rows.csv").read_text() == "kept"


def test_two_identical_runs_at_once_both_succeed(tmp_path):
    command = [
        *STANDIN,
        "variance",
        "--dim",
        "8",
        "--samples",
        "4096",
        "--out",
        str(tmp_path),
        "--quiet",
        "--workers",
        "1",
    ]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    (folder,) = tmp_path.iterdir()
    assert {"rows.json", "manifest.json", "histogram_dk8.png"} <= {p.name for p in folder.iterdir()}


def test_tables():
    rows = [{"d_k": 4, "variance": 1.0000001, "kurtosis": float("nan")}]
    assert to_csv(rows) == "d_k,variance,kurtosis\n4,1.0000001,\n"  # empty, as null in JSON
    assert "| 4 | 1 |  |" in to_markdown(rows)
    assert '"kurtosis": null' in to_json(rows)


def test_rerun_without_figures_keeps_the_earlier_figures(tmp_path):
    """A rerun of the same parameters with --no-plot writes the tables again and loses nothing."""
    result = sqrtdk.run("variance", dim=[4, 8], samples=1000)
    first = {Path(p).name for p in result.write(tmp_path)}
    assert "variance_vs_dk.png" in first
    again = sqrtdk.run("variance", dim=[4, 8], samples=1000).write(tmp_path, plot=False)
    folder = tmp_path / result.folder_name()
    assert {p.name for p in folder.iterdir()} == first
    assert {str(folder / name) for name in first} == set(again)


@pytest.mark.parametrize("name", ["sqrtdk", "numpy", "scipy", "matplotlib", "threadpoolctl", "safetensors"])
def test_package_version_reads_what_importlib_metadata_reads(name):
    from importlib.metadata import version

    from sqrtdk.output import package_version

    assert package_version(name) == version(name)
