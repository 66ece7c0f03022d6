"""One training run (sqrtdk/core/train.py): it learns a task that two attention layers can solve, it is
the same run from the same seed, a run that blows up is marked diverged, and its attention statistics
match a brute-force count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sqrtdk.core import transformer as tf
from sqrtdk.core.tasks import Task
from sqrtdk.core.train import attention_statistics, train

COPY = Task("copy", keys=4, values=4, pairs=4)


def _copy_run(seed: int = 0, lr: float = 3e-2, scaling: str = "sqrt", steps: int = 300):
    shape = tf.Shape(COPY.vocab, COPY.length, 16, 1, 2, scaling)
    return train(
        shape, COPY, tf.AdamW(lr, steps, 30), np.random.SeedSequence(seed), batch_size=32, every=100, held_out=256
    )


def test_two_layers_learn_to_copy_and_the_log_says_so():
    run = _copy_run()
    assert not run.diverged and run.steps_done == 300
    assert [row["step"] for row in run.log] == [100, 200, 300]
    assert run.log[0]["loss"] < run.loss_at_init < 2 * math.log(COPY.vocab)
    assert run.final["accuracy"] >= 0.99 and run.steps_to(0.99) is not None
    assert set(run.final) >= {"train_loss", "entropy_ratio", "max_logit", "grad_w_q", "grad_w_o", "update_ratio"}
    assert len(run.final["entropy"]) == 2 and all(0 <= r <= 1 + 1e-6 for r in run.final["entropy_ratio"])


def test_the_same_seed_is_the_same_run():
    a, b = _copy_run(seed=3, steps=100), _copy_run(seed=3, steps=100)
    assert a.log == b.log
    assert _copy_run(seed=4, steps=100).log != a.log


def test_a_run_that_blows_up_is_diverged_not_nan():
    run = _copy_run(lr=1e30, scaling="none", steps=50)
    assert run.diverged and run.steps_done < 50
    assert all(math.isfinite(row["loss"]) for row in run.log)


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
