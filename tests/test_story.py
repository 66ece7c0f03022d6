"""The story figure: drawn from the committed rows of the four configs it cites, its panels' claims borne
out by those rows, its caption's numbers those of the configs, written again only when its bytes change."""

import shutil
import tomllib
from pathlib import Path

import pytest

from sqrtdk import story
from sqrtdk.errors import InputError

RESULTS = Path(__file__).parent.parent / "results"
CONFIGS = Path(__file__).parent.parent / "configs"


def test_each_panels_title_holds_on_the_committed_rows():
    rows = story.committed_rows(RESULTS)
    assert rows is not None
    assert story.claims_hold(rows) == {"(a)": True, "(b)": True, "(c)": True, "(d)": True}


def test_the_captions_numbers_are_the_configs():
    gradient = tomllib.loads((CONFIGS / "gradient_vs_dk.toml").read_text())
    training = tomllib.loads((CONFIGS / "train_copy.toml").read_text())
    assert story.threshold(RESULTS) == gradient.get("eps", 1e-3) == 0.001
    assert "below 0.001" in story.CAPTION and f"after {training['steps']} steps" in story.CAPTION
    assert story.N in tomllib.loads((CONFIGS / "saturation_vs_dk.toml").read_text())["seq_len"]
    rows = story.committed_rows(RESULTS)
    collapsed = [
        r
        for r in rows["training"]
        if r["d_k"] == story.TRAIN_D_K and r["lr"] == 0.3 and r["scaling"] in story.RULES_SHOWN
    ]
    assert len(collapsed) == 2 and all(set(r["seed_outcome"]) == {"collapsed"} for r in collapsed)
    assert f"d_k = {story.TRAIN_D_K}" in story.CAPTION and f"n = {story.N}" in story.CAPTION


def test_drawn_from_the_rows_and_written_only_when_its_bytes_change(tmp_path):
    assert story.write(tmp_path) == []  # no rows: nothing drawn
    for name in story.SOURCES.values():
        shutil.copytree(RESULTS / name, tmp_path / name)
    written = story.write(tmp_path)
    assert sorted(Path(p).name for p in written) == ["story.pdf", "story.png", "story_slide.png"]
    assert story.write(tmp_path) == []
    assert b"/Type3" not in (tmp_path / "story" / "story.pdf").read_bytes()


def test_no_config_may_take_the_story_figures_folder(tmp_path):
    from sqrtdk import config, reproduce

    (tmp_path / "story.toml").write_text('experiment = "toy"\n')
    with pytest.raises(InputError, match="the config name 'story' is not allowed; reproduce draws into results/story/"):
        reproduce.check_names([config.load(tmp_path / "story.toml")])


def test_it_is_the_first_figure_of_the_readme_and_of_the_report():
    for readme in (RESULTS.parent / "README.md", RESULTS / "README.md"):
        text = readme.read_text()
        first = text.index("![")
        assert (
            text[first:].startswith("![The argument in one figure](") and "story/story.png)" in text[first : first + 80]
        )
    rows = story.committed_rows(RESULTS)
    rates = sorted({r["lr"] for r in rows["training"]})
    assert rates == [0.003, 0.03, 0.3]  # as README's caption names them
