"""The training lab's tasks (sqrtdk/core/tasks.py), checked by brute force: every target is what the
task's definition says, read back from the tokens."""

from __future__ import annotations

import numpy as np

from sqrtdk.core.tasks import Task, batch


def test_recall_targets_are_the_values_of_the_queried_keys():
    task = Task()
    tokens, targets = batch(np.random.default_rng(0), task, 50)
    assert tokens.shape == targets.shape == (50, 24) and task.length == 24
    for seq, want in zip(tokens, targets):
        pairs = {int(seq[2 * i]): int(seq[2 * i + 1]) for i in range(task.pairs)}
        assert len(pairs) == task.pairs  # distinct keys
        assert all(0 <= k < task.keys for k in pairs) and all(
            task.keys <= v < task.keys + task.values for v in pairs.values()
        )
        for position in range(2 * task.pairs, task.length):
            assert want[position] == pairs[int(seq[position])]
        assert (want[: 2 * task.pairs] == -1).all()


def test_copy_targets_are_the_next_token_of_the_string():
    task = Task("copy", pairs=6)
    tokens, targets = batch(np.random.default_rng(1), task, 20)
    for seq, want in zip(tokens, targets):
        string = seq[:6]
        assert seq[6] == task.separator and (seq[7:] == string).all()
        assert (want[6:12] == string).all() and (want[:6] == -1).all() and want[12] == -1


def test_batches_come_from_the_seed_alone():
    a = batch(np.random.default_rng(7), Task(), 8)
    b = batch(np.random.default_rng(7), Task(), 8)
    assert all((x == y).all() for x, y in zip(a, b))
    assert Task().chance == 1 / 64 and Task().vocab == 129
