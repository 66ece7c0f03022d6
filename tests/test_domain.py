"""Every allowed value gives a result that matches its theory within its interval, or is refused.

The numeric options are swept across their allowed range, to its edges and past them (schema.py states
the domain: |mean| / std, the variance of q.k, and what projected inputs allow). Inside, the measured
mean and variance of q.k lie within 5 standard errors of the closed forms (two-sided, 6e-7 each);
outside, the run is refused with one message naming the option and the limit, before any work.
"""

import math

import numpy as np
import pytest

import sqrtdk
from sqrtdk.errors import InputError

Z = 5.0
REFUSED = "refused"


def variance_rows(**params):
    params = {"scaling": ["none", "sqrt"], "samples": 20000, **params}
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        return sqrtdk.run("variance", **params).rows


@pytest.mark.parametrize(
    "params,outcome",
    [
        ({"mean": 0.0}, "ok"),
        ({"mean": 1e-300}, "ok"),
        ({"mean": -1e-10}, "ok"),
        ({"mean": 1.0}, "ok"),
        ({"mean": 1e3}, "ok"),
        ({"mean": -1e6}, "ok"),
        ({"mean": 1e6, "dim": 4}, "ok"),
        ({"mean": 1.01e6}, REFUSED),
        ({"mean": 1e10}, REFUSED),
        ({"mean": 1e30}, REFUSED),
        ({"mean": -1e300}, REFUSED),
        ({"std": 1e-300}, REFUSED),
        ({"std": 1e-38}, REFUSED),
        ({"std": 1e-37}, "ok"),
        ({"std": 1e-20}, "ok"),
        ({"std": 1e-3}, "ok"),
        ({"std": 1e3}, "ok"),
        ({"std": 1e6}, "ok"),
        ({"std": 1e6, "mean": 1e12}, "ok"),
        ({"std": 1e6, "mean": 2e12}, REFUSED),
        ({"std": 1e-3, "mean": 1e3}, "ok"),
        ({"std": 1e-3, "mean": 1e4}, REFUSED),
        ({"dim": 1, "mean": 1e6}, "ok"),
        ({"dim": 65536, "mean": 10.0, "std": 3.0, "samples": 4096}, "ok"),  # d_k 65536: 16384 scores
        ({"rho": 0.9, "mean": 1e4}, "ok"),
        ({"rho": 0.5, "std": 1e-30}, "ok"),
        ({"dist": "student-t", "df": 2.5, "mean": 1e3}, "ok"),
        ({"dist": "uniform", "mean": 1e5, "std": 0.1}, "ok"),
        ({"dist": "rademacher", "mean": -3.0, "std": 1e-5}, "ok"),
        ({"dim": 65536, "std": 2e-39, "scaling": ["linear"], "samples": 4096}, "ok"),  # near 1e-160: errors kept
    ],
)
def test_variance_matches_theory_or_is_refused(params, outcome):
    params = {"dim": 64, **params}
    if outcome == REFUSED:
        with pytest.raises(InputError) as refusal:
            variance_rows(**params)
        name = "mean" if "mean:" in str(refusal.value).split(" ")[0] else "std"
        assert str(refusal.value).startswith(f"{name}: ") and "must" in str(refusal.value)
        return
    for row in variance_rows(**params):
        assert math.isfinite(row["mean"]) and row["variance"] > 0
        assert abs(row["mean"] - row["theory_mean"]) <= Z * row["mean_se"] + 1e-12 * abs(row["theory_mean"])
        if row["variance_se"] is not None:
            assert abs(row["variance"] - row["theory_variance"]) <= Z * row["variance_se"], row
        else:  # heavy tails: no interval, and the estimate is at least of the right size
            assert 0.7 < row["variance"] / row["theory_variance"] < 5  # 400 seeds: 0.80 to 27.5


@pytest.mark.parametrize(
    "params,outcome",
    [
        ({"std": 1e-14}, "ok"),
        ({"std": 1e-16}, REFUSED),
        ({"std": 1e4}, "ok"),
        ({"std": 1e15}, REFUSED),
        ({"mean": 1e5}, "ok"),
        ({"mean": -1e6}, "ok"),
        ({"mean": 2e6}, REFUSED),
        ({"mean": 3.0, "scaling": ["qknorm"]}, "ok"),
    ],
)
def test_attention_stays_finite_and_right_or_is_refused(params, outcome):
    params = {"dim": 64, "seq_len": 32, "samples": 512, **params}
    if outcome == REFUSED:
        with pytest.raises(InputError, match="is not allowed"):
            sqrtdk.run("gradient", **params)
        return
    scalings = params.pop("scaling", ["none", "sqrt"])
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        saturation = sqrtdk.run("saturation", scaling=scalings, **params).rows
        gradient = sqrtdk.run("gradient", scaling=scalings, **params).rows
    for row in saturation:
        assert 1 / 32 - 1e-6 <= row["max_prob_mean"] <= 1 and 0 <= row["entropy_mean"] <= math.log(32) + 1e-6
        spread = row["logit_std"]
        if spread is not None and spread < 1e-3:  # a flat row: the uniform softmax
            assert row["entropy_mean"] == pytest.approx(math.log(32), abs=1e-4)
        if spread is not None and spread > 1e3:  # frozen onto one key
            assert row["max_prob_mean"] > 0.99
    for row in gradient:
        assert all(math.isfinite(row[k]) for k in ("jacobian_fro_mean", "grad_logits_mean", "grad_q_mean"))


def test_projected_inputs_have_their_own_domain():
    with pytest.raises(InputError, match=r"mean: 2000 is not allowed .* at most 1000"):
        sqrtdk.run("variance", inputs="projected", d_model=64, heads=4, mean=2000.0, samples=1000)
    with pytest.raises(InputError, match=r"std: 1e-05 is not allowed .* mean square"):
        sqrtdk.run("variance", inputs="projected", d_model=64, heads=4, std=1e-5, samples=1000)
    with pytest.raises(InputError, match=r"init_std: 1e-30 is not allowed .* variance of a query entry"):
        sqrtdk.run("variance", inputs="projected", d_model=64, heads=4, init="normal", init_std=1e-30, samples=1000)
    for params in (
        {"mean": 30.0},
        {"init": "normal", "init_std": 1e-7},
        {"init": "normal", "init_std": 1e3},
        {"init": "torch-linear", "std": 1e3},
        {"layernorm": True, "std": 0.1},
        {"layernorm": True, "std": 1e-3},
    ):
        rows = sqrtdk.run("variance", inputs="projected", d_model=64, heads=4, samples=20000, **params).rows
        for row in rows:
            if params.get("std") == 1e-3:  # LayerNorm's eps shrinks these tokens: no theory
                assert row["theory_variance"] is None and row["variance"] > 0
                continue
            assert abs(row["variance"] - row["theory_variance"]) <= Z * row["variance_se"], (params, row)


@pytest.mark.parametrize("gain", [1e-6, 1.0, 1e6])
def test_any_qk_gain_matches_theory(gain):
    for row in sqrtdk.run("variance", dim=64, scaling=["qknorm"], qk_gain=gain, samples=20000).rows:
        assert abs(row["variance"] - row["theory_variance"]) <= Z * row["variance_se"], row


def brute_force_rows(d_k, n, mean, std, scaling, gain, rows, threshold=0.99, seed=7):
    """Each metric's mean and standard error over independent rows in float64: a query and its own n keys
    drawn whole (mean + std z), the logits q.k / sqrt(d_k) or gain cos(q, k), the softmax written out."""
    rng = np.random.default_rng(seed)
    values = {"max_prob_mean": [], "entropy_mean": [], "saturated_fraction": [], "jacobian_fro_mean": []}
    for start in range(0, rows, 1024):
        q = mean + std * rng.standard_normal((min(1024, rows - start), d_k, 1))
        k = mean + std * rng.standard_normal((len(q), n, d_k))
        if scaling == "sqrt":
            s = ((k - mean) @ q)[..., 0] / math.sqrt(d_k)  # q.k less c mean sum(q), which every key shares
        else:
            cos = (k / np.linalg.norm(k, axis=-1, keepdims=True)) @ (q / np.linalg.norm(q, axis=-2, keepdims=True))
            s = gain * cos[..., 0]
        p = np.exp(s - s.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        sum_p2, sum_p3 = (p * p).sum(axis=-1), (p**3).sum(axis=-1)
        values["max_prob_mean"].append(p.max(axis=-1))
        values["entropy_mean"].append(-(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=-1))
        values["saturated_fraction"].append(p.max(axis=-1) >= threshold)
        values["jacobian_fro_mean"].append(np.sqrt(np.maximum(sum_p2 - 2 * sum_p3 + sum_p2**2, 0)))  # diag(p) - pp^T
    return {m: (np.mean(np.concatenate(v)), np.std(np.concatenate(v)) / math.sqrt(rows)) for m, v in values.items()}


@pytest.mark.parametrize(
    "mean,std,scaling,gain",
    [(1e5, 0.1, "sqrt", None), (1e6, 1.0, "sqrt", None), (1e4, 1.0, "qknorm", 1e6), (1e3, 1.0, "qknorm", 1e6)],
)
def test_a_large_mean_keeps_the_spread_of_the_logits(mean, std, scaling, gain):
    """With |mean| / std up to 1e6 the logits of a row differ by far less than float32 resolves at the mean;
    the saturation and gradient rows match a float64 simulation of the same model."""
    d_k, n = 16, 32
    truth = brute_force_rows(d_k, n, mean, std, scaling, gain, rows=2**15)
    params = {"dim": d_k, "seq_len": n, "mean": mean, "std": std, "scaling": [scaling], "samples": 2**18}
    if gain is not None:
        params["qk_gain"] = gain
    (saturation,) = sqrtdk.run("saturation", **params).rows
    (gradient,) = sqrtdk.run("gradient", **{**params, "samples": 2**16}).rows
    for row, metric in [(saturation, m) for m in ("max_prob_mean", "entropy_mean", "saturated_fraction")] + [
        (gradient, "jacobian_fro_mean")
    ]:
        value, se = truth[metric]
        assert abs(row[metric] - value) <= Z * math.hypot(row[metric + "_se"], se), (metric, row[metric], value, se)
