"""Configs: the same schema as the command line, errors that name the file and the key, --set overrides."""

import pytest

from sqrtdk import config
from sqrtdk.errors import InputError
from sqrtdk.output import to_toml
from sqrtdk.schema import resolved


def write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_loads_typed_params_and_meta(tmp_path):
    path = write(
        tmp_path,
        '# why\nexperiment = "saturation"\ntitle = "T"\norder = 3\ndim = [4, 16]\nseq_len = 8\nthreshold = 0.9\n',
    )
    c = config.load(path)
    assert c.experiment == "saturation" and c.title == "T" and c.order == 3 and c.name == "c"
    assert c.params.dim == (4, 16) and c.params.seq_len == (8,) and c.params.threshold == (0.9,)
    assert c.text.startswith("# why")


def test_set_overrides_are_parsed_as_command_line_text(tmp_path):
    path = write(tmp_path, 'experiment = "variance"\ndim = 4\nstd = 2.0\n')
    c = config.load(path, config.parse_sets(["dim=16,64", "seed=7"]))
    assert c.params.dim == (16, 64) and c.params.seed == (7,) and c.params.std == (2.0,)


def test_resolved_config_round_trips_through_toml(tmp_path):
    path = write(tmp_path, 'experiment = "gradient"\ndim = [4, 16]\nmean = 0.25\neps = 1e-6\n')
    c = config.load(path)
    again = config.load(write(tmp_path, to_toml({"experiment": c.experiment, **resolved(c.params)}), "r.toml"))
    assert again.params == c.params


BAD = [
    ("dim = 4\n", "key 'experiment' is missing; choose from variance, saturation, gradient, precision, check"),
    ('experiment = "varience"\n', "key 'experiment': 'varience' is not allowed; choose from variance"),
    ("experiment = 3\n", "key 'experiment': 3 is not allowed; choose from"),
    ('experiment = "variance"\ndims = 4\n', "key 'dims': unknown key; allowed keys are experiment, title"),
    ('experiment = "variance"\ndim = 0\n', "key 'dim': 0 is not allowed; d_k must be an integer from 1 to 65536"),
    ('experiment = "variance"\ndim = "64"\n', "key 'dim': '64' (a string) is not allowed; d_k must be an integer"),
    ('experiment = "variance"\nstd = -1.0\n', "key 'std': -1.0 is not allowed; the std must be a finite number > 0"),
    ('experiment = "variance"\nstd = nan\n', "key 'std': nan is not allowed"),
    ('experiment = "variance"\nsamples = [[1]]\n', "key 'samples': [1] (a list) is not allowed"),
    ('experiment = "saturation"\nthreshold = 1.5\n', "key 'threshold': 1.5 is not allowed; the threshold must be"),
    ('experiment = "saturation"\nseq_len = 0\n', "key 'seq_len': 0 is not allowed; the sequence length must be"),
    ('experiment = "variance"\ntitle = 5\n', "key 'title': 5 is not allowed; the title must be a string"),
    ('experiment = "variance"\norder = "first"\n', "key 'order': 'first' is not allowed; the order must be"),
    ('experiment = "variance"\ndim = [4,\n', "not valid TOML: "),
    ('experiment = "variance"\n[params]\ndim = 4\n', "key 'params': unknown key"),
]


@pytest.mark.parametrize("text,message", BAD, ids=[m.split(";")[0] for _, m in BAD])
def test_bad_configs_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as error:
        config.load(path)
    assert str(error.value).startswith(f"{path}: "), str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "sets,message",
    [
        (["dim=0"], "--set dim: '0' is not allowed; d_k must be an integer from 1 to 65536"),
        (["dims=4"], "--set dims: unknown key; allowed keys are dim, samples, seed, dist, mean, std"),
        (["dim"], "--set: 'dim' is not allowed; write key=value"),
        (["=4"], "--set: '=4' is not allowed; write key=value"),
        (["std=abc"], "--set std: 'abc' is not allowed; the std must be a finite number > 0"),
    ],
)
def test_bad_set(tmp_path, sets, message):
    path = write(tmp_path, 'experiment = "variance"\n')
    with pytest.raises(InputError) as error:
        config.load(path, config.parse_sets(sets))
    assert str(error.value).startswith(message)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such config file"):
        config.load(tmp_path / "nope.toml")
    with pytest.raises(InputError, match="is a folder; give the path of one TOML config file"):
        config.load(tmp_path)
    with pytest.raises(InputError, match=r"holds no \*.toml config"):
        config.load_dir(tmp_path)
    with pytest.raises(InputError, match="it does not exist"):
        config.load_dir(tmp_path / "nope")


def test_directory_in_report_order(tmp_path):
    write(tmp_path, 'experiment = "variance"\norder = 2\n', "a.toml")
    write(tmp_path, 'experiment = "variance"\norder = 1\n', "b.toml")
    write(tmp_path, 'experiment = "variance"\n', "c.toml")
    assert [c.name for c in config.load_dir(tmp_path)] == ["b", "a", "c"]


def test_committed_configs_load():
    from pathlib import Path

    configs = config.load_dir(Path(__file__).parent.parent / "configs")
    assert {"variance_vs_dk", "histogram_dk100", "saturation_vs_dk", "gradient_vs_dk"} <= {c.name for c in configs}


def test_the_configs_ship_with_the_package(tmp_path, monkeypatch):
    """Installed, they are sqrtdk/configs; in a checkout, configs/. Either way the same files, and
    `reproduce` without CONFIG_DIR takes ./configs when there is one, else these."""
    from pathlib import Path

    root = Path(__file__).parent.parent
    bundled = config.bundled_dir()
    assert sorted(p.name for p in bundled.glob("*.toml")) == sorted(p.name for p in (root / "configs").glob("*.toml"))
    monkeypatch.chdir(tmp_path)
    assert config.default_dir() == bundled
    (tmp_path / "configs").mkdir()
    assert config.default_dir() == Path("configs")


def test_copying_the_configs_out_never_overwrites(tmp_path):
    written = config.copy_out(tmp_path / "mine")
    assert len(written) == len(list(config.bundled_dir().glob("*.toml"))) and all(p.is_file() for p in written)
    mine = written[0]
    mine.write_text("# edited\n" + mine.read_text())
    with pytest.raises(InputError, match=r"--copy: .* already holds .*, which sqrtdk does not overwrite"):
        config.copy_out(tmp_path / "mine")
    assert mine.read_text().startswith("# edited")
    assert [c.name for c in config.load_dir(tmp_path / "mine")] == [
        c.name for c in config.load_dir(config.bundled_dir())
    ]


def test_a_bundled_config_by_name_from_any_folder(tmp_path, monkeypatch):
    """A name is looked up in ./configs, then among the bundled configs; a path wins where both exist."""
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    assert config.resolve("ssmax_toy") == config.bundled_dir() / "ssmax_toy.toml"
    assert config.resolve("ssmax_toy.toml") == config.bundled_dir() / "ssmax_toy.toml"
    assert config.load("ssmax_toy").experiment == "toy"
    write(tmp_path, 'experiment = "variance"\ndim = 4\n', "ssmax_toy.toml")  # a file by that name here
    assert config.resolve("ssmax_toy.toml") == Path("ssmax_toy.toml") and config.load("ssmax_toy.toml").experiment == (
        "variance"
    )
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", 'experiment = "gradient"\n', "ssmax_toy.toml")  # ./configs before the bundled
    assert config.load("ssmax_toy").experiment == "gradient"
    with pytest.raises(InputError, match=r"'variance_vs_dk' alone names the config of that name that ships"):
        config.load("elsewhere/variance_vs_dk.toml")
    with pytest.raises(InputError, match=r"no such config file; .* or the name of one that ships with sqrtdk"):
        config.load("no_such_config")


def test_selection_of_configs_to_reproduce(tmp_path, monkeypatch):
    from pathlib import Path

    for name in ("a", "b", "c"):
        write(tmp_path, 'experiment = "variance"\ndim = 4\n', f"{name}.toml")
    folder, every, chosen = config.selection([str(tmp_path)])
    assert folder == tmp_path and [c.name for c in every] == ["a", "b", "c"] and chosen is None
    folder, every, chosen = config.selection([str(tmp_path / "c.toml"), str(tmp_path / "a.toml")])
    assert folder == tmp_path and len(every) == 3 and chosen == ["c", "a"]
    monkeypatch.chdir(tmp_path)
    folder, every, chosen = config.selection(["ssmax_toy", "precision"])  # no ./configs: the bundled ones
    assert folder == config.bundled_dir() and chosen == ["ssmax_toy", "precision"]
    other = tmp_path / "other"
    other.mkdir()
    write(other, 'experiment = "variance"\n', "d.toml")
    with pytest.raises(InputError, match=r"CONFIG: .* are not allowed together; they come from 2 folders"):
        config.selection(["a.toml", "other/d.toml"])
    with pytest.raises(InputError, match=r"CONFIG: 'other' is not allowed beside other configs"):
        config.selection(["a.toml", "other"])
    with pytest.raises(InputError, match=r"no_such: no such config file"):
        config.selection(["a.toml", "no_such"])
    with pytest.raises(InputError, match=r"CONFIG_DIR: 'nowhere' is not allowed; it does not exist"):
        config.selection(["nowhere"])
    assert config.selection([])[0] == config.bundled_dir()  # no ./configs here
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", 'experiment = "variance"\n', "e.toml")
    assert config.selection([])[0] == Path("configs") and config.selection(["e"])[2] == ["e"]


def test_run_config_takes_a_name_outside_a_checkout(tmp_path, monkeypatch):
    import sqrtdk

    monkeypatch.chdir(tmp_path)
    result = sqrtdk.run_config("ssmax_toy", seq_len=[2, 10])
    assert result.experiment == "toy" and sorted({row["seq_len"] for row in result.rows}) == [2, 10]
