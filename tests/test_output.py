"""Run folders are written whole or not at all."""

import pytest

from sqrtdk.output import to_csv, to_json, to_markdown, write_run


def test_failed_write_leaves_nothing_and_keeps_earlier(tmp_path):
    folder = tmp_path / "variance-abc"
    write_run(folder, {"a.txt": lambda p: p.write_text("first")})

    def boom(path):
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_run(folder, {"a.txt": lambda p: p.write_text("second"), "b.txt": boom})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variance-abc"]
    assert (folder / "a.txt").read_text() == "first"
    assert not (folder / "b.txt").exists()


def test_rewrite_replaces_folder_whole(tmp_path):
    folder = tmp_path / "run"
    write_run(folder, {"old.txt": lambda p: p.write_text("x")})
    files = write_run(folder, {"new.txt": lambda p: p.write_text("y")})
    assert files == [str(folder / "new.txt")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in folder.iterdir()] == ["new.txt"]


def test_tables():
    rows = [{"d_k": 4, "variance": 1.0000001, "kurtosis": float("nan")}]
    assert to_csv(rows) == "d_k,variance,kurtosis\n4,1.0000001,\n"  # empty, as null in JSON
    assert "| 4 | 1 |  |" in to_markdown(rows)
    assert '"kurtosis": null' in to_json(rows)


def test_rerun_without_figures_keeps_the_earlier_figures(tmp_path):
    """A rerun of the same parameters with --no-plot writes the tables again and loses nothing."""
    import sqrtdk

    result = sqrtdk.run("variance", dim=[4, 8], samples=1000)
    first = {p.name for p in map(__import__("pathlib").Path, result.write(tmp_path))}
    assert "variance_vs_dk.png" in first
    again = sqrtdk.run("variance", dim=[4, 8], samples=1000).write(tmp_path, plot=False)
    folder = tmp_path / result.folder_name()
    assert {p.name for p in folder.iterdir()} == first
    assert {str(folder / name) for name in first} == set(again)
