"""Seeded sampling of query and key blocks: every entry iid N(mean, std^2).

A task's stream is the root seed's `SeedSequence` spawned at a key made from the task's own parameters
(`task_seed`), so a task draws the same numbers whichever other tasks run beside it, in whatever order and
on whichever worker. Within a task the stream is consumed block by block, so the numbers do not depend on
how many blocks are drawn at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


def task_seed(seed: int, task: Mapping[str, Any]) -> np.random.SeedSequence:
    """The seed sequence of one task: the root `seed` spawned at a stable hash of the task's parameters."""
    digest = hashlib.sha256(json.dumps(task, sort_keys=True).encode()).digest()
    key = tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(seed, spawn_key=key)


def qk_blocks(rng: np.random.Generator, n_blocks: int, n: int, d_k: int, mean: float, std: float,
              chunk_blocks: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (q, k) for `n_blocks` blocks of n queries and n keys, at most `chunk_blocks` at a time.

    q, k: (b, n, d_k) float32. Each block draws its queries then its keys from `rng`, so the stream is
    the same for every `chunk_blocks`.
    """
    done = 0
    while done < n_blocks:
        b = min(chunk_blocks, n_blocks - done)
        z = rng.standard_normal((b, 2, n, d_k), dtype=np.float32)
        if std != 1.0:
            z *= np.float32(std)
        if mean != 0.0:
            z += np.float32(mean)
        yield z[:, 0], z[:, 1]
        done += b
