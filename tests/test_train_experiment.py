"""`sqrtdk train` (sqrtdk/experiments/train/): rows that do not depend on who runs them, each seed's
outcome counted and the means taken over the seeds that did not diverge, Wortsman et al.'s LR
sensitivity by hand, and bad input refused in one line."""

from __future__ import annotations

import json
import math
import statistics

import pytest

import sqrtdk
from sqrtdk.experiments.train.measure import lr_sensitivity

TINY = {"steps": 30, "batch": 8, "replicates": 2, "every": 10, "d_model": 16, "task": "copy"}


def test_rows_are_the_same_whichever_runs_them():
    serial = sqrtdk.run("train", scaling=["sqrt", "qknorm"], lr=[1e-2, 1e-1], workers=1, **TINY).rows
    pooled = sqrtdk.run("train", scaling=["sqrt", "qknorm"], lr=[1e-2, 1e-1], workers=2, **TINY).rows
    assert serial == pooled
    assert {r["scaling"] for r in serial} == {"sqrt", "qknorm"} and len(serial) == 4
    assert all(r["d_k"] == 16 and r["replicates"] == 2 for r in serial)


def test_a_finite_loss_far_above_the_start_is_diverged_and_the_uniform_output_collapsed():
    """At rate 10 the unscaled model's loss stays finite but ends a hundred times above its loss at
    initialisation: diverged, though no number overflowed. At rate 0.3 its attention logits grow to 1e4
    and it ends within 0.05 nats of ln V, the loss of the uniform output over the vocabulary: collapsed,
    not a model that learned something."""
    (row,) = sqrtdk.run("train", scaling="none", lr=10.0, **{**TINY, "steps": 40, "warmup": 4}).rows
    assert all(loss > 10 * row["loss_at_init"] for loss in row["seed_loss"])
    assert row["diverged"] == 1.0 and row["seed_outcome"] == ["diverged", "diverged"]
    assert row["final_loss"] is None and row["final_accuracy"] is None
    (row,) = sqrtdk.run("train", scaling="none", lr=0.3, **{**TINY, "steps": 80, "warmup": 4}).rows
    assert all(abs(loss - math.log(129)) <= 0.05 for loss in row["seed_loss"]) and row["max_logit"] > 1e3
    assert row["collapsed"] == 1.0 and row["trained"] == row["plateaued"] == row["diverged"] == 0.0
    assert row["final_loss"] == pytest.approx(sum(row["seed_loss"]) / 2, rel=1e-5)


def test_the_shares_of_the_outcomes_add_up_and_the_means_leave_out_the_diverged_seeds():
    rows = sqrtdk.run("train", scaling=["sqrt"], lr=[3e-2, 1.0], **{**TINY, "replicates": 3, "warmup": 4}).rows
    for row in rows:
        shares = [row[end] for end in ("trained", "plateaued", "collapsed", "diverged")]
        assert sum(shares) == pytest.approx(1.0)
        assert [
            row["seed_outcome"].count(end) / 3 for end in ("trained", "plateaued", "collapsed", "diverged")
        ] == shares
        kept = [loss for loss, end in zip(row["seed_loss"], row["seed_outcome"]) if end != "diverged"]
        if kept:
            assert row["final_loss"] == pytest.approx(sum(kept) / len(kept), rel=1e-5)


def _row(losses, at_init=5.0):
    return {"seed_loss": losses, "seed_loss_at_init": [at_init] * len(losses)}


def test_lr_sensitivity_is_taken_per_seed_then_averaged():
    """Wortsman et al.'s definition per seed, by hand: each seed's own best rate sets its excess. The
    seeds here are best at different rates, so every rate's mean over seeds is 5 and a sensitivity of the
    means would be 0."""
    rows = [_row([1.0, 9.0]), _row([9.0, 1.0])]  # capped at 5: seed 1 sees (1, 5), seed 2 (5, 1)
    mean, se = lr_sensitivity(rows)
    assert mean == pytest.approx(2.0) and se == pytest.approx(0.0)
    rows = [
        _row([1.0, 2.0, 1.0]),
        _row([2.0, 2.0, 3.0]),
        _row([9.0, None, 4.0]),  # above the start, and not finite: both count as the loss at initialisation
    ]
    each = [(1 + 2 + 5) / 3 - 1, (2 + 2 + 5) / 3 - 2, (1 + 3 + 4) / 3 - 1]
    mean, se = lr_sensitivity(rows)
    assert mean == pytest.approx(sum(each) / 3)
    assert se == pytest.approx(statistics.stdev(each) / math.sqrt(3))


def test_the_json_document_carries_the_lr_sensitivity(cli, tmp_path):
    code, out, _ = cli(
        "train",
        "--scaling",
        "sqrt",
        "--lr",
        "1e-2,1e-1",
        "--steps",
        "20",
        "--batch",
        "8",
        "--replicates",
        "2",
        "--d-model",
        "16",
        "--task",
        "copy",
        "--json",
        "--no-plot",
        "--out",
        tmp_path,
    )
    assert code == 0
    doc = json.loads(out)
    (entry,) = doc["lr_sensitivity"]
    assert entry["scaling"] == "sqrt" and entry["lr_sensitivity"] >= 0 and entry["lr_sensitivity_se"] >= 0
    assert isinstance(entry["trains_at_some_rate"], bool)


def test_trained_queries_and_keys_are_saved_for_the_probe(cli, tmp_path):
    import numpy as np

    argv = ["train", "--scaling", "sqrt,qknorm", "--lr", "0.01", "--steps", "10", "--batch", "4", "--replicates", "2"]
    argv += ["--d-model", "16", "--heads", "2", "--task", "copy", "--activations", "3", "--no-plot", "--quiet"]
    assert cli(*argv, "--out", tmp_path / "a")[0] == 0
    (folder,) = (tmp_path / "a").iterdir()
    saved = sorted(p.name for p in folder.glob("*.npz"))
    assert saved == [f"activations_scaling{s}_seed{i}.npz" for s in ("qknorm", "sqrt") for i in (1, 2)]
    with np.load(folder / saved[0]) as archive:
        assert set(archive.files) == {"q", "k", "scale", "causal"}
        assert archive["q"].shape == (2, 2, 3, 17, 8) and bool(archive["causal"])
    assert cli(*argv, "--out", tmp_path / "b")[0] == 0  # the same run writes the same bytes
    (again,) = (tmp_path / "b").iterdir()
    assert all((folder / name).read_bytes() == (again / name).read_bytes() for name in saved)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--d-model", "10", "--heads", "3"),
            "--heads: 3 is not allowed with d_model = 10; the number of heads must divide d_model",
        ),
        (("--lr", "0"), "--lr: '0' is not allowed; the learning rate must be"),
        (("--task", "sort"), "--task: 'sort' is not allowed; the task must be one of recall, copy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, argv, message):
    code, out, err = cli("train", *argv, "--out", tmp_path)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"sqrtdk: error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def _reading(seeds: dict) -> str:
    """The reading of a grid of unscaled and 1/sqrt(d_k) at three rates whose seeds ended as `seeds`
    says: (rule, rate) -> (outcomes, final losses); the rest of each row from a one-step run."""
    import dataclasses

    from sqrtdk.experiments.train import EXPERIMENT

    result = sqrtdk.run(
        "train", scaling=["none", "sqrt"], lr=[3e-3, 3e-2, 0.3], **{**TINY, "steps": 1, "replicates": 3}
    )
    rows = []
    for row in result.rows:
        ends, losses = seeds[(row["scaling"], row["lr"])]
        kept = [loss for loss, end in zip(losses, ends) if end != "diverged"]
        rows.append(
            {
                **row,
                **{end: ends.count(end) / 3 for end in ("trained", "plateaued", "collapsed", "diverged")},
                "final_loss": statistics.mean(kept),
                "final_loss_se": statistics.stdev(kept) / math.sqrt(3),
                "final_accuracy": 1.0 if ends == ["trained"] * 3 else 0.5,
                "final_accuracy_se": 0.0,
                "seed_outcome": ends,
                "seed_loss": losses,
                "seed_loss_at_init": [5.35] * 3,
            }
        )
    return "\n\n".join(EXPERIMENT.reading(dataclasses.replace(result, rows=rows)))


T, P, C = ["trained"] * 3, ["plateaued"] * 3, ["collapsed"] * 3
GRID = {
    ("none", 3e-3): (P, [0.3, 1.0, 0.5]),
    ("sqrt", 3e-3): (T, [0.05, 0.05, 0.05]),
    ("none", 3e-2): (P, [1.0, 2.0, 3.0]),
    ("sqrt", 3e-2): (P, [0.9, 1.9, 2.9]),
    ("none", 0.3): (C, [4.86, 4.87, 4.85]),
    ("sqrt", 0.3): (C, [4.84, 4.845, 4.835]),
}


def test_a_rule_that_trains_at_no_rate_has_its_small_sensitivity_marked():
    text = _reading(GRID)
    table = text[text.index("| rule |") :].splitlines()
    unscaled = next(line for line in table if line.startswith("| unscaled"))
    scaled = next(line for line in table if line.startswith("| 1/sqrt(d_k)"))
    assert unscaled.rstrip(" |").endswith("†") and "†" not in scaled
    assert "† The rule trains at no rate of the grid" in text and "section 2.2" in text


def test_unscaled_against_sqrt_is_a_paired_t_interval_on_the_shared_seeds():
    """At 0.003 the means lie 2.6 standard errors apart, but three seeds give 2 degrees of freedom, whose
    95% t quantile is 4.30: no difference. At 0.03 the seeds spread widely but every one is 0.1 worse
    unscaled: the pairs see it where the two rules' spreads hide it. At 0.3 both collapsed on every seed:
    not ranked by loss."""
    from sqrtdk.experiments.train.reading import paired

    text = _reading(GRID)
    (sentence,) = [p for p in text.split("\n\n") if p.startswith("Unscaled attention against")]
    assert "95% interval from Student's t on 2 degrees of freedom" in sentence
    assert "no difference at lr 0.003 (+0.55, interval -0.35 to +1.4)" in sentence
    assert "worse at lr 0.03 (+0.1," in sentence
    assert "not compared at lr 0.3, where neither learned" in sentence
    assert "better" not in sentence

    def row(ends, losses):
        return {"seed_outcome": ends, "seed_loss": losses, "seed_loss_at_init": [5.0] * len(losses)}

    diffs = [0.25, 0.95, 0.45]
    c = paired(row(P, [0.3, 1.0, 0.5]), row(T, [0.05] * 3))
    from scipy import stats

    half = stats.t.ppf(0.975, 2) * statistics.stdev(diffs) / math.sqrt(3)
    assert c["verdict"] == "no difference" and c["seeds"] == 3
    assert (c["low"], c["high"]) == pytest.approx((statistics.mean(diffs) - half, statistics.mean(diffs) + half))
    assert paired(row(C, [4.9] * 3), row(["diverged"] * 3, [None, 9.0, 5.5]))["verdict"] == "not compared"
    worse = paired(row(P, [2.0, 5.5, None]), row(P, [1.0, 1.1, 1.2]))  # above the start or not finite: 5
    assert worse["mean"] == pytest.approx((1.0 + 3.9 + 3.8) / 3)


def test_the_curves_show_step_0_of_every_rule_even_a_largest_logit_of_0():
    """The 1/d_k curve of the largest logit starts at 0 (W_q = 0): the axis must be able to draw it."""
    import numpy as np

    from sqrtdk.experiments.train.figures import curves_figure

    result = sqrtdk.run("train", scaling=["sqrt", "linear"], lr=[1e-2], **TINY)
    fig = curves_figure(result)
    logit_panel = fig.axes[2]
    lines = [line for line in logit_panel.get_lines() if len(line.get_xdata())]
    assert len(lines) == 2
    for line in lines:
        x, y = line.get_xdata()[0], line.get_ydata()[0]
        assert x == 0
        drawn = logit_panel.transData.transform((x, y))
        low, high = logit_panel.get_ylim()
        assert np.isfinite(drawn).all() and low <= y <= high, (line.get_label(), y)
    assert min(line.get_ydata()[0] for line in lines) == 0.0  # the 1/d_k curve
