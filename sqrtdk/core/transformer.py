"""A small attention-only transformer in numpy: its forward pass, its backward pass and AdamW.

Tokens t_1..t_T become x = E[t] + P (token and position embeddings, (T, D)). Each of L layers adds
attention to x (pre-LayerNorm, residual):

    h = LN(x) g + b;  q, k, v = h W_q, h W_k, h W_v, split into H heads of d_k = D / H
    S = c q k^T, causal (query i sees keys j <= i);  A = softmax(S) v;  x <- x + merge(A) W_o

and the logits are LN(x) g_f + b_f times U. The rule sets c (core/rules.py): 1, 1/sqrt(d_k), 1/d_k (with
W_q initialised to zero, as muP prescribes: Yang et al. 2022), s ln n / sqrt(d_k) with n = i the keys
query i sees (Scalable-Softmax), and QK-norm: q and k layer-normalised per head with a learnable gain
(Dehghani et al. 2023), then 1/sqrt(d_k), so that at unit gains the logits are sqrt(d_k) cos(q, k) as in
the variance experiment. The loss is the mean cross-entropy over the positions that carry a target.

Every function is pure: parameters are a dict of arrays, the gradient a dict of the same shapes. The
backward pass is written out by hand and tested against central finite differences in float64 and against
an automatic-differentiation library (tests/test_transformer.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqrtdk.core.rules import scale as scale_rule

EPS = 1e-5  # LayerNorm's, as in PyTorch


@dataclass(frozen=True)
class Shape:
    vocab: int  # tokens
    length: int  # positions T
    d_model: int
    heads: int
    layers: int
    scaling: str  # a core.rules name: none, sqrt, linear, qknorm, logn

    @property
    def d_k(self) -> int:
        return self.d_model // self.heads


def init(rng: np.random.Generator, shape: Shape, init: str = "lecun", dtype: Any = np.float32) -> dict:
    """Parameters at initialisation: embeddings N(0, 1), projections as the variance experiment's
    `init` (lecun: N(0, 1/D)), W_q zero under the 1/d_k rule, LayerNorm gains 1 and biases 0."""
    from sqrtdk.core import theory

    d, v = shape.d_model, shape.vocab
    v_w = theory.init_variances(init, d)[0]

    def projection(zero: bool = False) -> np.ndarray:
        if zero:
            return np.zeros((d, d), dtype)
        if init in ("normal", "lecun"):
            return (rng.standard_normal((d, d)) * math.sqrt(v_w)).astype(dtype)
        return ((rng.random((d, d)) - 0.5) * 2 * math.sqrt(3 * v_w)).astype(dtype)

    p = {
        "embed": rng.standard_normal((v, d)).astype(dtype),
        "position": rng.standard_normal((shape.length, d)).astype(dtype),
        "final_gain": np.ones(d, dtype),
        "final_bias": np.zeros(d, dtype),
        "unembed": (rng.standard_normal((d, v)) / math.sqrt(d)).astype(dtype),
    }
    for layer in range(shape.layers):
        p[f"{layer}.gain"], p[f"{layer}.bias"] = np.ones(d, dtype), np.zeros(d, dtype)
        p[f"{layer}.w_q"] = projection(zero=shape.scaling == "linear")
        for name in ("w_k", "w_v", "w_o"):
            p[f"{layer}.{name}"] = projection()
        if shape.scaling == "qknorm":
            p[f"{layer}.q_gain"] = np.ones((shape.heads, 1, shape.d_k), dtype)
            p[f"{layer}.k_gain"] = np.ones((shape.heads, 1, shape.d_k), dtype)
    return p


def scale(shape: Shape, dtype: Any = np.float32) -> np.ndarray:
    """The logits' factor c per query position, (T, 1): core.rules.scale with n = the keys query i sees
    (i + 1). Under QK-norm the layer-normalised q and k have |q| = |k| = sqrt(d_k), so q.k = d_k cos(q, k)
    and the rule's gain g on cos(q, k) is c = g / d_k."""
    d_k, rule = shape.d_k, shape.scaling
    c = [scale_rule(d_k, rule, seq_len=i + 1) / (d_k if rule == "qknorm" else 1) for i in range(shape.length)]
    return np.array(c, dtype)[:, None]


def _norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LayerNorm without gain or bias over the last axis: (y, 1/sigma)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + EPS)
    return centred * inv, inv


def _norm_back(dy: np.ndarray, y: np.ndarray, inv: np.ndarray) -> np.ndarray:
    return inv * (dy - dy.mean(axis=-1, keepdims=True) - y * (dy * y).mean(axis=-1, keepdims=True))


def _heads(x: np.ndarray, heads: int) -> np.ndarray:  # (B, T, D) -> (B, H, T, d_k)
    b, t, d = x.shape
    return x.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)


def _merge(x: np.ndarray) -> np.ndarray:  # (B, H, T, d_k) -> (B, T, D)
    b, h, t, d_k = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, t, h * d_k)


def forward(p: dict, tokens: np.ndarray, shape: Shape) -> tuple[np.ndarray, list[dict]]:
    """Logits (B, T, V) for `tokens` (B, T), and what the backward pass and the statistics need per layer
    (the attention logits S and weights P among it)."""
    c = scale(shape, p["embed"].dtype)
    causal = np.tril(np.ones((shape.length, shape.length), dtype=bool))
    x = p["embed"][tokens] + p["position"]
    caches = []
    for layer in range(shape.layers):
        w = {name: p[f"{layer}.{name}"] for name in ("w_q", "w_k", "w_v", "w_o")}
        y, inv = _norm(x)
        h = y * p[f"{layer}.gain"] + p[f"{layer}.bias"]
        q, k, v = (_heads(_dot(h, w[name]), shape.heads) for name in ("w_q", "w_k", "w_v"))
        cache: dict = {"x": x, "y": y, "inv": inv, "h": h, "q": q, "k": k, "v": v}
        if shape.scaling == "qknorm":
            cache["q_norm"], cache["q_inv"] = _norm(q)
            cache["k_norm"], cache["k_inv"] = _norm(k)
            q = cache["q_norm"] * p[f"{layer}.q_gain"]
            k = cache["k_norm"] * p[f"{layer}.k_gain"]
            cache["q_scaled"], cache["k_scaled"] = q, k
        logits = c * (q @ k.transpose(0, 1, 3, 2))  # (B, H, T, T)
        masked = np.where(causal, logits, -np.inf)
        weights = _exp(masked - masked.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        attended = _merge(weights @ v)  # (B, T, D)
        cache.update(logits=np.where(causal, logits, 0.0), weights=weights, attended=attended)
        x = x + _dot(attended, w["w_o"])
        caches.append(cache)
    y, inv = _norm(x)
    h = y * p["final_gain"] + p["final_bias"]
    caches.append({"x": x, "y": y, "inv": inv, "h": h})
    return _dot(h, p["unembed"]), caches


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, int]:
    """Mean cross-entropy over the positions whose target is >= 0, with the log-probabilities, the mask
    of scored positions and their count."""
    scored = targets >= 0
    count = max(int(scored.sum()), 1)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, np.where(scored, targets, 0)[..., None], axis=-1)[..., 0]
    return float(-(picked * scored).sum() / count), log_probs, scored, count


def loss_and_grad(p: dict, tokens: np.ndarray, targets: np.ndarray, shape: Shape) -> tuple[float, dict, list[dict]]:
    """Mean cross-entropy over the positions whose target is >= 0, its gradient with respect to every
    parameter, and the forward caches (for the statistics)."""
    logits, caches = forward(p, tokens, shape)
    loss, log_probs, scored, count = cross_entropy(logits, targets)

    g: dict = {}
    d_logits = _exp(log_probs)
    d_logits[np.where(scored)[0], np.where(scored)[1], targets[scored]] -= 1.0
    d_logits *= scored[..., None] / count
    _flush(d_logits)
    top = caches[-1]
    g["unembed"] = _outer(top["h"], d_logits)
    d_h = _dot(d_logits, p["unembed"].T)
    g["final_gain"] = (d_h * top["y"]).sum(axis=(0, 1))
    g["final_bias"] = d_h.sum(axis=(0, 1))
    d_x = _flush(_norm_back(d_h * p["final_gain"], top["y"], top["inv"]))
    c = scale(shape, p["embed"].dtype)
    for layer in reversed(range(shape.layers)):
        cache = caches[layer]
        w_o = p[f"{layer}.w_o"]
        g[f"{layer}.w_o"] = _outer(cache["attended"], d_x)
        d_attended = _heads(_dot(d_x, w_o.T), shape.heads)  # (B, H, T, d_k)
        weights = cache["weights"]
        d_v = weights.transpose(0, 1, 3, 2) @ d_attended
        d_weights = d_attended @ cache["v"].transpose(0, 1, 3, 2)
        d_logits_att = _flush(weights * (d_weights - (d_weights * weights).sum(axis=-1, keepdims=True)) * c)
        q = cache.get("q_scaled", cache["q"])
        k = cache.get("k_scaled", cache["k"])
        d_q = d_logits_att @ k
        d_k = d_logits_att.transpose(0, 1, 3, 2) @ q
        if shape.scaling == "qknorm":
            g[f"{layer}.q_gain"] = (d_q * cache["q_norm"]).sum(axis=(0, 2), keepdims=True)[0]
            g[f"{layer}.k_gain"] = (d_k * cache["k_norm"]).sum(axis=(0, 2), keepdims=True)[0]
            d_q = _norm_back(d_q * p[f"{layer}.q_gain"], cache["q_norm"], cache["q_inv"])
            d_k = _norm_back(d_k * p[f"{layer}.k_gain"], cache["k_norm"], cache["k_inv"])
        d_h = np.zeros_like(cache["h"])
        for name, d in (("w_q", d_q), ("w_k", d_k), ("w_v", d_v)):
            merged = _flush(_merge(d))
            g[f"{layer}.{name}"] = _outer(cache["h"], merged)
            d_h += _dot(merged, p[f"{layer}.{name}"].T)
        g[f"{layer}.gain"] = (d_h * cache["y"]).sum(axis=(0, 1))
        g[f"{layer}.bias"] = d_h.sum(axis=(0, 1))
        d_x = _flush(d_x + _norm_back(d_h * p[f"{layer}.gain"], cache["y"], cache["inv"]))
    g["position"] = d_x.sum(axis=0)
    one_hot = np.eye(shape.vocab, dtype=d_x.dtype)[tokens.reshape(-1)]  # (B T, V)
    g["embed"] = one_hot.T @ d_x.reshape(-1, shape.d_model)
    return loss, g, caches


def _flush(x: np.ndarray) -> np.ndarray:
    """x with its subnormal entries set to 0, in place. A saturated softmax makes weights and gradients
    below the dtype's smallest normal number (1.2e-38 in float32, 2.2e-308 in float64), and on x86 CPUs
    every matrix product that touches them runs an order of magnitude slower; what is dropped is below
    that number."""
    info = np.finfo(x.dtype)
    x[np.abs(x) < info.tiny / info.eps] = 0.0
    return x


def _exp(x: np.ndarray) -> np.ndarray:
    return _flush(np.exp(x))


def _dot(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(B, T, D) @ (D, E) as one matrix product of (B T, D) by (D, E): numpy's broadcasting matmul would
    make B small products."""
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(*a.shape[:-1], w.shape[-1])


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum over batch and position of a^T b: (B, T, D), (B, T, E) -> (D, E), as one matrix product."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


@dataclass(frozen=True)
class AdamW:
    """AdamW (Loshchilov and Hutter 2019) with gradient clipping by global norm, linear warm-up then
    cosine decay to 0, and weight decay on the matrices independent of the rate, all as in Wortsman et al.
    2023 (section 3.2.2 for the decay): a step shrinks a matrix W by weight_decay * W times the schedule's
    factor rate(t) / lr, not times the rate itself as PyTorch's AdamW does, so that the decay's strength
    does not fall with the peak rate (tied to it, 1e-4 at rate 1e-3 shrank W by 1e-7 a step: none)."""

    lr: float
    steps: int
    warmup: int
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 1e-4
    clip: float = 1.0

    def rate(self, step: int) -> float:
        """The learning rate at `step` (0-based)."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        done = (step - self.warmup) / max(self.steps - self.warmup, 1)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    def update(self, p: dict, g: dict, state: dict, step: int) -> tuple[dict, dict, float]:
        """The parameters after one step, the new moments, and the gradient's norm before clipping."""
        norm = math.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in g.values()))
        factor = min(1.0, self.clip / norm) if norm > 0 else 1.0
        lr, t = self.rate(step), step + 1
        new, moments = {}, {}
        for name, value in p.items():
            grad = g[name] * factor
            m, v = state.get(name, (np.zeros_like(value), np.zeros_like(value)))
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad * grad
            m_hat, v_hat = m / (1 - self.beta1**t), v / (1 - self.beta2**t)
            decay = (lr / self.lr) * self.weight_decay * value if value.ndim == 2 else 0.0
            new[name] = (value - lr * m_hat / (np.sqrt(v_hat) + self.eps) - decay).astype(value.dtype)
            moments[name] = (m, v)
        return new, moments, norm
