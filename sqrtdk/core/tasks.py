"""The training lab's tasks: batches of token sequences with the targets a model must emit, generated on
the fly from a seeded generator.

- recall (associative recall; Zoology, Arora et al. 2024): `pairs` key-value pairs (keys from `keys`
  tokens, values from `values` others, keys distinct within a sequence), then `queries` of those keys;
  after each queried key the model must emit its value. Length 2 pairs + 2 queries: the query's key is
  followed by a slot whose target is the value.
- copy: a random string of `span` tokens, a separator, and the string again: after the separator each
  position's target is the next token of the string.

Targets are -1 where nothing is scored. Tokens are laid out as: keys, then values, then a separator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("recall", "copy")


@dataclass(frozen=True)
class Task:
    name: str = "recall"
    keys: int = 64
    values: int = 64
    pairs: int = 8
    queries: int = 8

    @property
    def vocab(self) -> int:
        return self.keys + self.values + 1  # the separator last

    @property
    def separator(self) -> int:
        return self.keys + self.values

    @property
    def length(self) -> int:
        if self.name == "recall":
            return 2 * self.pairs + self.queries
        return 2 * self.pairs + 1  # copy: `pairs` is the string's span

    @property
    def chance(self) -> float:
        """The accuracy of a guess: one value in `values` (recall) or one token in keys + values (copy)."""
        return 1 / self.values if self.name == "recall" else 1 / (self.keys + self.values)


def batch(rng: np.random.Generator, task: Task, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, targets), each (size, task.length) int64."""
    if task.name == "recall":
        return _recall(rng, task, size)
    if task.name == "copy":
        return _copy(rng, task, size)
    raise ValueError(f"unknown task {task.name!r}")


def _recall(rng: np.random.Generator, task: Task, size: int) -> tuple[np.ndarray, np.ndarray]:
    keys = np.argsort(rng.random((size, task.keys)), axis=1)[:, : task.pairs]  # distinct keys per sequence
    values = task.keys + rng.integers(0, task.values, (size, task.pairs))
    asked = rng.integers(0, task.pairs, (size, task.queries))  # which pair each query asks for
    rows = np.arange(size)[:, None]
    tokens = np.empty((size, task.length), dtype=np.int64)
    tokens[:, 0 : 2 * task.pairs : 2], tokens[:, 1 : 2 * task.pairs : 2] = keys, values
    start = 2 * task.pairs
    tokens[:, start:] = keys[rows, asked]
    targets = np.full((size, task.length), -1, dtype=np.int64)
    targets[:, start:] = values[rows, asked]  # predicted at the queried key, as the next token
    return tokens, targets


def _copy(rng: np.random.Generator, task: Task, size: int) -> tuple[np.ndarray, np.ndarray]:
    span = task.pairs
    string = rng.integers(0, task.keys + task.values, (size, span))
    tokens = np.concatenate([string, np.full((size, 1), task.separator), string], axis=1)
    targets = np.full((size, task.length), -1, dtype=np.int64)
    targets[:, span : 2 * span] = string  # at the separator and after: the next token of the copy
    return tokens, targets
