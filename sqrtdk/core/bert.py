"""A BERT-family encoder's forward pass in numpy: what a pretrained model's heads do with real text.

The architecture of Devlin et al. 2019 as Hugging Face's `BertModel` computes it (post-LayerNorm):
embeddings (word + absolute position + token type) through LayerNorm, then per layer
  q = x W_q^T + b_q, k = x W_k^T + b_k, v = x W_v^T + b_v, split into h heads of d_head = d_model / h,
  P = softmax(q k^T / sqrt(d_head)) over the keys that are not padding, a = P v (heads joined),
  x = LN(x + a W_o^T + b_o),  x = LN(x + gelu(x W_1^T + b_1) W_2^T + b_2)
with the exact (erf) GELU. Parameters are arrays under the checkpoint's own names (`encoder.layer.0.
attention.self.query.weight`, ...; a `bert.` prefix is dropped), Linear weights as (out, in). Reading
the files is the shell's (sqrtdk/checkpoint.py); here arrays come in and arrays go out.

`forward` returns the last hidden states and, per layer, the projected queries and keys before the
scale (batch, heads, tokens, d_head) and the attention weights (batch, heads, tokens, tokens), which is
what sqrtdk measures. It computes in the parameters' dtype (float32 for a checkpoint, float64 in tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BertConfig:
    """The architecture: the keys of a `config.json` that the forward pass needs."""

    hidden: int  # hidden_size, d_model
    heads: int  # num_attention_heads
    layers: int  # num_hidden_layers
    intermediate: int  # intermediate_size
    vocab: int  # vocab_size
    positions: int  # max_position_embeddings
    types: int = 2  # type_vocab_size
    eps: float = 1e-12  # layer_norm_eps

    @property
    def d_head(self) -> int:
        return self.hidden // self.heads


@dataclass(frozen=True)
class LayerHeads:
    """One layer's attention: queries and keys before the scale, and the weights."""

    q: np.ndarray  # (batch, heads, tokens, d_head)
    k: np.ndarray  # (batch, heads, tokens, d_head)
    weights: np.ndarray  # (batch, heads, tokens, tokens), 0 on padding keys


def gelu(x: np.ndarray) -> np.ndarray:
    """The exact GELU, x Phi(x), as BERT's "gelu" is."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)).astype(x.dtype))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(var + x.dtype.type(eps)) * weight + bias


def _linear(x: np.ndarray, params: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return x @ params[name + ".weight"].T + params[name + ".bias"]


def softmax_masked(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Softmax over the last axis where `keys` (broadcast against it) is True; 0 elsewhere."""
    masked = np.where(keys, scores, -np.inf)
    shifted = masked - masked.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def forward(
    params: Mapping[str, np.ndarray],
    config: BertConfig,
    ids: np.ndarray,
    mask: np.ndarray | None = None,
    token_types: np.ndarray | None = None,
) -> tuple[np.ndarray, list[LayerHeads]]:
    """Hidden states (batch, tokens, d_model) and each layer's heads for token `ids` (batch, tokens);
    `mask` (batch, tokens) is True on real tokens (default: all)."""
    batch, tokens = ids.shape
    if tokens > config.positions:
        raise ValueError(f"{tokens} tokens; the model has {config.positions} positions")
    mask = np.ones((batch, tokens), dtype=bool) if mask is None else mask.astype(bool)
    types = np.zeros_like(ids) if token_types is None else token_types
    x = (
        params["embeddings.word_embeddings.weight"][ids]
        + params["embeddings.position_embeddings.weight"][:tokens][None]
        + params["embeddings.token_type_embeddings.weight"][types]
    )
    x = layer_norm(x, params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], config.eps)
    h, d = config.heads, config.d_head
    scale = x.dtype.type(1 / math.sqrt(d))
    keys = mask[:, None, None, :]
    out = []
    for layer in range(config.layers):
        pre = f"encoder.layer.{layer}."

        def split(y: np.ndarray) -> np.ndarray:
            return y.reshape(batch, tokens, h, d).transpose(0, 2, 1, 3)

        q = split(_linear(x, params, pre + "attention.self.query"))
        k = split(_linear(x, params, pre + "attention.self.key"))
        v = split(_linear(x, params, pre + "attention.self.value"))
        weights = softmax_masked((q @ k.transpose(0, 1, 3, 2)) * scale, keys)
        a = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, tokens, h * d)
        x = layer_norm(
            x + _linear(a, params, pre + "attention.output.dense"),
            params[pre + "attention.output.LayerNorm.weight"],
            params[pre + "attention.output.LayerNorm.bias"],
            config.eps,
        )
        inner = gelu(_linear(x, params, pre + "intermediate.dense"))
        x = layer_norm(
            x + _linear(inner, params, pre + "output.dense"),
            params[pre + "output.LayerNorm.weight"],
            params[pre + "output.LayerNorm.bias"],
            config.eps,
        )
        out.append(LayerHeads(q, k, weights))
    return x, out


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Sentence embeddings as sentence-transformers' mean pooling makes them: the mean of the real
    tokens' hidden states, normalised to unit length."""
    m = mask.astype(hidden.dtype)[..., None]
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def qk_product_norm(params: Mapping[str, np.ndarray], config: BertConfig, layer: int) -> np.ndarray:
    """Per head, ||W_Q W_K^T||_2 / sqrt(d_head) (Zhai et al. 2023's sigma): the largest factor by which
    the head's bilinear form q.k / sqrt(d_head) can stretch a pair of unit inputs. (heads,)

    W_Q^T = Q_q R_q and W_K^T = Q_k R_k (QR, orthonormal Q) give W_Q^T W_K = Q_q (R_q R_k^T) Q_k^T, whose
    largest singular value is that of the d_head x d_head matrix R_q R_k^T: a small SVD instead of one of
    the d_model x d_model product (a tenth of the time for MiniLM's 72 heads)."""
    pre = f"encoder.layer.{layer}.attention.self."
    wq, wk = params[pre + "query.weight"], params[pre + "key.weight"]  # (d_model out, d_model in)
    d = config.d_head
    sigma = np.empty(config.heads)
    for head in range(config.heads):
        rows = slice(head * d, (head + 1) * d)
        r_q = np.asarray(
            np.linalg.qr(wq[rows].T.astype(np.float64), mode="r")
        )  # (d_head, d_head) once d_model >= d_head
        r_k = np.asarray(np.linalg.qr(wk[rows].T.astype(np.float64), mode="r"))
        sigma[head] = np.linalg.norm(r_q @ r_k.T, 2) / math.sqrt(d)
    return sigma
