"""Seeded sampling of query and key blocks.

Direct inputs: every entry of q and k is `mean + std * z` with z standardised from the chosen distribution;
with `rho`, the first rows of k are correlated with the rows of q of the same index (a token's key with its
own query): k = rho q + sqrt(1 - rho^2) z. Projected inputs: a block is a sequence of tokens x through a
freshly initialised layer, q = x W_q + b_q and k = x W_k + b_k, split into heads.

A task's stream is the root seed's `SeedSequence` spawned at a key made from the task's own parameters
(`task_seed`), so a task draws the same numbers whichever other tasks run beside it, in whatever order and
on whichever worker. Within a task the stream is consumed block by block, so the numbers do not depend on
how many blocks are drawn at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sqrtdk.core import theory
from sqrtdk.core.theory import Entries


def task_seed(seed: int, task: Mapping[str, Any]) -> np.random.SeedSequence:
    """The seed sequence of one task: the root `seed` spawned at a stable hash of the task's parameters."""
    task = {k: v + 0.0 if isinstance(v, float) else v for k, v in task.items()}  # -0.0 is 0.0
    digest = hashlib.sha256(json.dumps(task, sort_keys=True).encode()).digest()
    key = tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))
    return np.random.SeedSequence(seed, spawn_key=key)


@dataclass(frozen=True)
class Source:
    """Where q and k come from: their entries directly, or tokens through a projection layer."""

    entries: Entries = Entries()  # noqa: RUF009 (frozen, so one shared default is safe)
    inputs: str = "direct"  # direct | projected
    d_model: int = 512  # token width (projected)
    heads: int = 8  # d_k = d_model / heads (projected)
    init: str = "lecun"  # weight initialisation (projected)
    init_std: float | None = None  # std of the `normal` init
    layernorm: bool = False  # layer-normalise the tokens first (projected)

    def d_k(self, dim: int) -> int:
        """The head dimension: `dim` for direct entries, d_model / heads for projected ones."""
        return self.d_model // self.heads if self.inputs == "projected" else dim

    def stream_key(self) -> dict[str, Any]:
        """The settings that differ from the defaults: with them in the key, a new option leaves the
        streams of existing settings untouched."""
        key = {
            f.name: getattr(self.entries, f.name)
            for f in fields(Entries)
            if getattr(self.entries, f.name) != getattr(theory.DEFAULT, f.name)
        }
        key.pop("mean", None), key.pop("std", None)  # always in the key, below
        key.update(
            {
                f.name: getattr(self, f.name)
                for f in fields(Source)
                if f.name != "entries" and getattr(self, f.name) != f.default
            }
        )
        return key


def standard(rng: np.random.Generator, shape: tuple[int, ...], entries: Entries) -> np.ndarray:
    """float32 draws with mean 0 and variance 1 from `entries.dist`."""
    if entries.dist == "gaussian":
        return rng.standard_normal(shape, dtype=np.float32)
    if entries.dist == "uniform":
        u = rng.random(shape, dtype=np.float32)
        return (u - np.float32(0.5)) * np.float32(2 * math.sqrt(3))
    if entries.dist == "rademacher":
        return rng.integers(0, 2, shape, dtype=np.int8).astype(np.float32) * 2 - 1
    t = rng.standard_t(entries.df, shape)
    return (t * math.sqrt((entries.df - 2) / entries.df)).astype(np.float32)


def affine(z: np.ndarray, mean: float, std: float) -> np.ndarray:
    """mean + std z, in place in float32."""
    if std != 1.0:
        z *= np.float32(std)
    if mean != 0.0:
        z += np.float32(mean)
    return z


def qk_blocks(
    rng: np.random.Generator,
    n_blocks: int,
    n_q: int,
    n_k: int,
    d_k: int,
    entries: Entries,
    chunk_blocks: int,
    standardised: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (q, k) for `n_blocks` blocks of n_q queries and n_k keys, at most `chunk_blocks` at a time.

    q: (b, n_q, d_k), k: (b, n_k, d_k), float32. Each block draws its queries then its keys, so the stream
    is the same for every `chunk_blocks`. With rho, key t (t < n_q) is correlated with query t.
    `standardised`: the draws a, b before q = mean + std a and k = mean + std b.
    """
    done = 0
    s = math.sqrt(1 - entries.rho**2)
    while done < n_blocks:
        b = min(chunk_blocks, n_blocks - done)
        z = standard(rng, (b, n_q + n_k, d_k), entries)
        q, k = z[:, :n_q], z[:, n_q:]
        if entries.rho:
            m = min(n_q, n_k)
            k[:, :m] = np.float32(entries.rho) * q[:, :m] + np.float32(s) * k[:, :m]
        if standardised:
            yield q, k
        else:
            yield affine(q, entries.mean, entries.std), affine(k, entries.mean, entries.std)
        done += b


def init_weights(rng: np.random.Generator, source: Source) -> tuple[np.ndarray, np.ndarray]:
    """One freshly initialised (d_model, d_model) projection: weights and bias, float32 (theory.init_variances)."""
    d = source.d_model
    v_w, v_b = theory.init_variances(source.init, d, source.init_std)
    if source.init in ("normal", "lecun"):
        w = rng.standard_normal((d, d), dtype=np.float32) * np.float32(math.sqrt(v_w))
    else:  # uniform on +-sqrt(3 v)
        w = (rng.random((d, d), dtype=np.float32) - np.float32(0.5)) * np.float32(2 * math.sqrt(3 * v_w))
    if v_b:
        b = (rng.random(d, dtype=np.float32) - np.float32(0.5)) * np.float32(2 * math.sqrt(3 * v_b))
    else:
        b = np.zeros(d, dtype=np.float32)
    return w, b


def layer_norm(x: np.ndarray, eps: float = theory.LAYERNORM_EPS) -> np.ndarray:
    """Each token to mean 0 and mean square 1 over its entries (no learned gain or bias)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    return centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + np.float32(eps))


def projected_blocks(
    rng: np.random.Generator, n_blocks: int, n_q: int, n_tokens: int, source: Source
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (q, k) per block: a sequence of `n_tokens` tokens through a fresh layer, split into heads.

    q: (1, heads, n_q, d_k) for the first n_q tokens, k: (1, heads, n_tokens, d_k), float32. The tokens
    are the layer's inputs, so queries and keys of the same token come from the same x.
    """
    heads, d_k = source.heads, source.d_k(0)
    for _ in range(n_blocks):
        (w_q, b_q), (w_k, b_k) = init_weights(rng, source), init_weights(rng, source)
        x = affine(standard(rng, (n_tokens, source.d_model), source.entries), source.entries.mean, source.entries.std)
        if source.layernorm:
            x = layer_norm(x)
        q = (x[:n_q] @ w_q + b_q).reshape(n_q, heads, d_k).transpose(1, 0, 2)  # (heads, n_q, d_k)
        k = (x @ w_k + b_k).reshape(n_tokens, heads, d_k).transpose(1, 0, 2)
        yield q[None], k[None]
