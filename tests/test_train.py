"""One training run (sqrtdk/core/train.py): it learns a task that two attention layers can solve, it is
the same run from the same seed, a run that blows up stops at a non-finite number, each run ends in the
outcome its final numbers say, and its attention statistics match a brute-force count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sqrtdk.core import transformer as tf
from sqrtdk.core.tasks import Task
from sqrtdk.core.train import MARGIN, Run, attention_statistics, outcome, train

COPY = Task("copy", keys=4, values=4, pairs=4)


def _copy_run(seed: int = 0, lr: float = 3e-2, scaling: str = "sqrt", steps: int = 300):
    shape = tf.Shape(COPY.vocab, COPY.length, 16, 1, 2, scaling)
    return train(
        shape, COPY, tf.AdamW(lr, steps, 30), np.random.SeedSequence(seed), batch_size=32, every=100, held_out=256
    )


def test_two_layers_learn_to_copy_and_the_log_says_so():
    run = _copy_run()
    assert not run.non_finite and run.steps_done == 300 and outcome(run, COPY.vocab) == "trained"
    assert [row["step"] for row in run.log] == [0, 100, 200, 300]
    assert run.log[0]["loss"] == run.loss_at_init and run.log[0]["accuracy"] < 0.5
    assert run.log[1]["loss"] < run.loss_at_init < 2 * math.log(COPY.vocab)
    assert run.final["accuracy"] >= 0.99 and run.steps_to(0.99) is not None
    assert set(run.final) >= {"train_loss", "entropy_ratio", "max_logit", "grad_w_q", "grad_w_o", "update_ratio"}
    assert len(run.final["entropy"]) == 2 and all(0 <= r <= 1 + 1e-6 for r in run.final["entropy_ratio"])


def test_the_same_seed_is_the_same_run():
    a, b = _copy_run(seed=3, steps=100), _copy_run(seed=3, steps=100)
    assert a.log == b.log
    assert _copy_run(seed=4, steps=100).log != a.log


def test_a_run_that_blows_up_is_diverged_not_nan():
    run = _copy_run(lr=1e30, scaling="none", steps=50)
    assert run.non_finite and run.steps_done < 50 and run.final_loss is None
    assert all(math.isfinite(row["loss"]) for row in run.log)
    assert outcome(run, COPY.vocab) == "diverged"


def _ended(loss: float, accuracy: float, non_finite: bool = False, at_init: float = 2.5) -> Run:
    return Run(non_finite, 10, at_init, [{"step": 10, "loss": loss, "accuracy": accuracy}])


UNIFORM = math.log(COPY.vocab)  # 2.197: the loss of the uniform output over the 9 tokens


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (_ended(1.0, 0.5, non_finite=True), "diverged"),  # stopped on a non-finite number
        (_ended(2.6, 0.0), "diverged"),  # finite, but worse than at initialisation
        (_ended(2.6, 1.0), "diverged"),  # an accuracy does not excuse it
        (_ended(0.01, 0.99), "trained"),
        (_ended(UNIFORM - MARGIN + 1e-6, 0.12), "collapsed"),  # within the margin of ln V
        (_ended(UNIFORM + MARGIN - 1e-6, 0.10), "collapsed"),
        (_ended(UNIFORM - MARGIN - 1e-6, 0.12), "plateaued"),
        (_ended(UNIFORM + MARGIN + 1e-6, 0.10), "plateaued"),  # between the uniform output and the start
        (_ended(0.3, 0.989), "plateaued"),
    ],
)
def test_each_run_ends_in_the_first_outcome_that_holds(run, expected):
    assert outcome(run, COPY.vocab) == expected


def test_attention_statistics_against_a_brute_force_count():
    rng = np.random.default_rng(0)
    t = 5
    logits = rng.normal(0, 3, (2, 1, t, t))
    causal = np.tril(np.ones((t, t), dtype=bool))
    weights = np.where(causal, np.exp(logits), 0.0)
    weights /= weights.sum(axis=-1, keepdims=True)
    stats = attention_statistics([{"weights": weights, "logits": np.where(causal, logits, 0.0)}, {}])
    rows = [(b, i) for b in range(2) for i in range(1, t)]
    entropies = [-sum(weights[b, 0, i, j] * math.log(weights[b, 0, i, j]) for j in range(i + 1)) for b, i in rows]
    assert stats["entropy"][0] == pytest.approx(np.mean(entropies))
    ratios = [h / math.log(i + 1) for h, (_, i) in zip(entropies, rows)]
    assert stats["entropy_ratio"][0] == pytest.approx(np.mean(ratios))
    seen = [logits[b, 0, i, j] for b in range(2) for i in range(1, t) for j in range(i + 1)]
    assert stats["max_logit"][0] == pytest.approx(max(abs(x) for x in seen))
    assert stats["logit_std"][0] == pytest.approx(np.std(seen))
    assert stats["saturated"][0] == pytest.approx(np.mean([weights[b, 0, i].max() >= 0.99 for b, i in rows]))


@pytest.mark.parametrize("scaling", ["sqrt", "qknorm", "logn"])
def test_saved_queries_and_keys_rebuild_the_attention(scaling):
    """q, k and scale of the saved activations give back the model's own attention weights, computed
    here from the layout alone (a softmax over the keys each query sees)."""
    shape = tf.Shape(COPY.vocab, COPY.length, 16, 2, 2, scaling)
    run = train(
        shape, COPY, tf.AdamW(1e-2, 20, 5), np.random.SeedSequence(1), batch_size=8, every=10, held_out=16, keep=5
    )
    saved = run.activations
    assert saved["q"].shape == saved["k"].shape == (2, 2, 5, COPY.length, 8) and saved["q"].dtype == np.float32
    assert saved["scale"].shape == (COPY.length,)
    # the same model, rebuilt from the same seed and steps, run forward on the same held-out sequences
    train_seed, test_seed, init_seed = np.random.SeedSequence(1).spawn(3)
    from sqrtdk.core.tasks import batch

    tokens, _ = batch(np.random.default_rng(test_seed), COPY, 16)
    p = tf.init(np.random.default_rng(init_seed), shape)
    rng, optimiser, state = np.random.default_rng(train_seed), tf.AdamW(1e-2, 20, 5), {}
    for step in range(20):
        x, y = batch(rng, COPY, 8)
        _, grad, _ = tf.loss_and_grad(p, x, y, shape)
        p, state, _ = optimiser.update(p, grad, state, step)
    _, caches = tf.forward(p, tokens[:5], shape)
    for layer in range(2):
        q, k = saved["q"][layer].astype(np.float64), saved["k"][layer].astype(np.float64)  # (H, N, T, d_k)
        logits = saved["scale"][:, None] * np.einsum("hnid,hnjd->nhij", q, k)
        logits = np.where(np.tril(np.ones((COPY.length,) * 2, dtype=bool)), logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        assert np.allclose(weights, caches[layer]["weights"], atol=1e-5)


def test_under_one_over_d_k_every_logit_starts_at_exactly_zero():
    """muP's zero W_q makes q = 0 in every layer, so at step 0 every logit is 0 and every row's attention
    uniform (entropy ln n); training moves W_q off zero at the first step."""
    run = _copy_run(scaling="linear", steps=20)
    first = run.log[0]
    assert first["step"] == 0 and first["max_logit"] == [0.0, 0.0] and first["logit_std"] == [0.0, 0.0]
    assert first["entropy_ratio"] == pytest.approx([1.0, 1.0], abs=1e-6)
    assert all(m > 0 for m in run.final["max_logit"])
