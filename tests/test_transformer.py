"""The training lab's model (sqrtdk/core/transformer.py): its hand-written backward pass against central
finite differences for every parameter tensor in float64, and against autograd applied to a forward pass
written again here, independently; and AdamW against its closed form."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from sqrtdk.core import transformer as tf
from sqrtdk.core.rules import SSMAX_S

RULES = ("none", "sqrt", "linear", "qknorm", "logn")


def _problem(scaling: str, seed: int = 0):
    shape = tf.Shape(vocab=7, length=5, d_model=8, heads=2, layers=2, scaling=scaling)
    rng = np.random.default_rng(seed)
    p = tf.init(rng, shape, dtype=np.float64)
    for name in p:  # away from the initial gains, biases and zero W_q, so that every term is exercised
        p[name] = p[name] + 0.3 * rng.standard_normal(p[name].shape)
    tokens = rng.integers(0, shape.vocab, (3, shape.length))
    targets = np.where(rng.random((3, shape.length)) < 0.6, rng.integers(0, shape.vocab, (3, shape.length)), -1)
    targets[0, -1] = 1  # at least one scored position
    return shape, p, tokens, targets


@pytest.mark.parametrize("scaling", RULES)
def test_every_gradient_matches_central_differences(scaling):
    shape, p, tokens, targets = _problem(scaling)
    _, grad, _ = tf.loss_and_grad(p, tokens, targets, shape)
    assert set(grad) == set(p)
    h = 1e-6
    for name, value in p.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            saved = value[index]
            value[index] = saved + h
            up = tf.loss_and_grad(p, tokens, targets, shape)[0]
            value[index] = saved - h
            down = tf.loss_and_grad(p, tokens, targets, shape)[0]
            value[index] = saved
            numeric[index] = (up - down) / (2 * h)
        # central differences err by h^2 f''' / 6 (~1e-12 here) plus rounding eps / h (~1e-10)
        scale = max(float(np.abs(numeric).max()), 1e-3)
        assert np.allclose(grad[name], numeric, rtol=0, atol=1e-7 * scale), name


def _oracle_loss(params: dict, tokens, targets, shape: tf.Shape):
    """The same model, written a second time from its definition in autograd's numpy."""
    import autograd.numpy as anp

    one_hot = np.eye(shape.vocab)[tokens]  # (B, T, V)
    x = anp.einsum("btv,vd->btd", one_hot, params["embed"]) + params["position"]
    d_k = shape.d_k

    def layer_norm(z):
        mu = anp.mean(z, axis=-1, keepdims=True)
        var = anp.mean((z - mu) ** 2, axis=-1, keepdims=True)
        return (z - mu) / anp.sqrt(var + tf.EPS)

    def split(z):
        b, t, _ = z.shape
        return anp.transpose(anp.reshape(z, (b, t, shape.heads, d_k)), (0, 2, 1, 3))

    positions = np.arange(1, shape.length + 1)
    factor = {
        "none": np.ones(shape.length),
        "sqrt": np.full(shape.length, d_k**-0.5),
        "linear": np.full(shape.length, 1.0 / d_k),
        "qknorm": np.full(shape.length, d_k**-0.5),
        "logn": SSMAX_S * np.log(positions) / math.sqrt(d_k),
    }[shape.scaling][:, None]
    mask = np.tril(np.ones((shape.length, shape.length)))
    for layer in range(shape.layers):
        h = layer_norm(x) * params[f"{layer}.gain"] + params[f"{layer}.bias"]
        q, k, v = (split(anp.dot(h, params[f"{layer}.{n}"])) for n in ("w_q", "w_k", "w_v"))
        if shape.scaling == "qknorm":
            q = layer_norm(q) * params[f"{layer}.q_gain"]
            k = layer_norm(k) * params[f"{layer}.k_gain"]
        s = factor * anp.einsum("bhid,bhjd->bhij", q, k)
        s = s - 1e9 * (1 - mask)
        e = anp.exp(s - anp.max(s, axis=-1, keepdims=True)) * mask
        a = e / anp.sum(e, axis=-1, keepdims=True)
        out = anp.einsum("bhij,bhjd->bhid", a, v)
        b, _, t, _ = out.shape
        x = x + anp.dot(anp.reshape(anp.transpose(out, (0, 2, 1, 3)), (b, t, shape.d_model)), params[f"{layer}.w_o"])
    logits = anp.dot(layer_norm(x) * params["final_gain"] + params["final_bias"], params["unembed"])
    z = logits - anp.max(logits, axis=-1, keepdims=True)
    log_p = z - anp.log(anp.sum(anp.exp(z), axis=-1, keepdims=True))
    scored = targets >= 0
    picked = anp.sum(log_p * np.eye(shape.vocab)[np.where(scored, targets, 0)], axis=-1)
    return -anp.sum(picked * scored) / scored.sum()


@pytest.mark.parametrize("scaling", RULES)
def test_the_backward_pass_agrees_with_automatic_differentiation(scaling):
    import autograd  # the test extra's oracle: a missing one is a failure, not a skip

    shape, p, tokens, targets = _problem(scaling, seed=1)
    loss, grad, _ = tf.loss_and_grad(p, tokens, targets, shape)
    oracle = autograd.value_and_grad(_oracle_loss)
    value, expected = oracle(p, tokens, targets, shape)
    assert loss == pytest.approx(float(value), rel=1e-12)
    for name in p:
        assert np.allclose(grad[name], expected[name], rtol=1e-9, atol=1e-12), name


def test_float32_gradients_follow_the_float64_ones():
    shape, p64, tokens, targets = _problem("sqrt", seed=2)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    _, g64, _ = tf.loss_and_grad(p64, tokens, targets, shape)
    _, g32, _ = tf.loss_and_grad(p32, tokens, targets, shape)
    for name in p64:
        assert g32[name].dtype == np.float32
        assert np.allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5 * max(1.0, np.abs(g64[name]).max()))


def test_the_attention_weights_are_causal_and_sum_to_one():
    shape, p, tokens, _ = _problem("logn", seed=3)
    _, caches = tf.forward(p, tokens, shape)
    weights = caches[0]["weights"]
    assert np.allclose(weights.sum(axis=-1), 1.0)
    assert np.all(weights[..., np.triu_indices(shape.length, 1)[0], np.triu_indices(shape.length, 1)[1]] == 0)


def test_linear_rule_starts_with_a_zero_query_projection():
    shape = tf.Shape(vocab=5, length=4, d_model=8, heads=2, layers=2, scaling="linear")
    p = tf.init(np.random.default_rng(0), shape)
    assert not p["0.w_q"].any() and not p["1.w_q"].any() and p["0.w_k"].any()


def test_adamw_first_step_is_its_closed_form():
    opt = tf.AdamW(lr=0.1, steps=100, warmup=10, weight_decay=0.01, clip=1e9)
    p = {"w": np.array([[1.0, -2.0], [0.5, 0.0]]), "g": np.array([1.0, 2.0])}
    g = {"w": np.array([[0.3, -0.1], [0.0, 2.0]]), "g": np.array([-1.0, 0.5])}
    new, _, norm = opt.update(p, g, {}, 0)
    lr = 0.1 / 10  # the first warm-up step
    # m_hat = g and v_hat = g^2 after bias correction, so the step is lr * g / (|g| + eps)
    expected_w = p["w"] - lr * g["w"] / (np.abs(g["w"]) + 1e-8) - (lr / 0.1) * 0.01 * p["w"]
    assert np.allclose(new["w"], expected_w, rtol=1e-12)
    assert np.allclose(new["g"], p["g"] - lr * g["g"] / (np.abs(g["g"]) + 1e-8), rtol=1e-12)  # no decay on gains
    assert norm == pytest.approx(math.sqrt(sum(float((v**2).sum()) for v in g.values())))


@pytest.mark.parametrize("peak", [1e-3, 1e-2, 1e-1])
def test_weight_decay_does_not_scale_with_the_peak_rate(peak):
    """Independent weight decay (Wortsman et al. 2023): with no gradient, a step at the top of the
    schedule shrinks a matrix by weight_decay whatever the peak rate, and by weight_decay times the
    schedule's factor elsewhere; vectors (gains, biases) are not decayed."""
    opt = tf.AdamW(lr=peak, steps=20, warmup=4, weight_decay=1e-4)
    p = {"w": np.ones((2, 2)), "b": np.ones(2)}
    zero = {"w": np.zeros((2, 2)), "b": np.zeros(2)}
    at_top, _, _ = opt.update(p, zero, {}, 3)  # the last warm-up step: the full rate
    assert np.allclose(at_top["w"], 1 - 1e-4, rtol=0, atol=1e-15) and np.array_equal(at_top["b"], p["b"])
    first, _, _ = opt.update(p, zero, {}, 0)  # a quarter of the way up
    assert np.allclose(first["w"], 1 - 0.25e-4, rtol=0, atol=1e-15)


def test_clipping_and_the_schedule():
    opt = tf.AdamW(lr=1.0, steps=110, warmup=10, clip=1.0)
    rates = [opt.rate(s) for s in range(110)]
    assert rates[9] == pytest.approx(1.0) and rates[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:])) and rates[-1] < 1e-3
    p, g = {"w": np.zeros((2, 2))}, {"w": np.full((2, 2), 10.0)}  # norm 20: clipped to 1
    _, moments, norm = opt.update(p, g, {}, 0)
    assert norm == pytest.approx(20.0)
    assert np.allclose(moments["w"][0], 0.1 * g["w"] / 20.0)  # m = (1 - beta1) * clipped g


def test_a_saturated_model_makes_no_subnormal_numbers():
    """Unscaled logits of large queries saturate the softmax: weights and gradients far below 1e-38 that
    would slow every later product. The backward pass drops them, and its float32 gradient still follows
    the float64 one."""
    shape, p64, tokens, targets = _problem("none", seed=3)
    for layer in range(shape.layers):
        p64[f"{layer}.w_q"] = 30.0 * p64[f"{layer}.w_q"]
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    _, g32, caches = tf.loss_and_grad(p32, tokens, targets, shape)
    _, g64, _ = tf.loss_and_grad(p64, tokens, targets, shape)
    tiny = np.finfo(np.float32).tiny

    def subnormal(x):
        return int(((x != 0) & (np.abs(x) < tiny)).sum())

    assert caches[0]["weights"].min() == 0.0  # saturated: some weights underflow
    assert all(subnormal(c["weights"]) == 0 for c in caches[:-1])
    assert all(subnormal(g) == 0 for g in g32.values())
    for name in p64:
        assert np.allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5 * max(1.0, np.abs(g64[name]).max())), name
