"""Seed 001: d_model = 512, h = 8 heads, d_k = d_model / h = 64, and which of them the scores are divided by.

Each head computes its scores from 64-dimensional queries and keys, so Var(q.k) = 64 per head, and the
scale that brings it back to 1 is 1/sqrt(64) = 1/8, the head dimension (as in the Transformer paper and
PyTorch's scaled_dot_product_attention). Dividing by sqrt(d_model) = sqrt(512) instead leaves the logits
with variance 64/512 = 1/8: the softmax does not saturate, it goes flat. Every query spreads its weight
almost evenly over the keys, and the Jacobian shrinks towards that of a uniform row: a different way to
lose the signal, and not the one the scaling was meant to prevent.

Dividing d_k = 64 scores by sqrt(512) is the same, in distribution, as dividing by sqrt(64) scores whose
entries have variance sqrt(64 / 512) (for Gaussian entries c q.k with entry variance sigma^2 is c sigma^2
times a unit-variance score). The saturation and gradient runs below use that identity, so every number
comes with its standard error from sqrtdk's independent replicates.

Run: python experiments/seed001_head_dim.py [--quick] [--out results/studies]
"""

from __future__ import annotations

import math

from common import heading, options, pm, say

import sqrtdk

D_MODEL, HEADS = 512, 8
D_K = D_MODEL // HEADS


def main(argv: list[str] | None = None) -> None:
    args = options(__doc__, argv)
    samples, rows, n = (2**18, 2**11, 128) if args.quick else (2**22, 2**15, 128)

    heading(f"1. The variance of a head's scores (d_k = {D_MODEL} / {HEADS} = {D_K})")
    variance = sqrtdk.run("variance", dim=D_K, samples=samples)
    variance.write(args.out, plot=False, folder="seed001_head_dim_variance")
    none = next(r for r in variance.rows if r["scaling"] == "none")
    scaled = next(r for r in variance.rows if r["scaling"] == "sqrt")
    say(
        f"Unscaled, Var(q.k) = {pm(none['variance'], none['variance_se'])} (theory {D_K}). Divided by "
        f"sqrt(d_k) = {math.sqrt(D_K):g}: {pm(scaled['variance'], scaled['variance_se'])} (theory 1). Divided by "
        f"sqrt(d_model) = {math.sqrt(D_MODEL):.4g}: {pm(none['variance'] / D_MODEL, none['variance_se'] / D_MODEL)} "
        f"(theory {D_K / D_MODEL:g})."
    )

    heading(f"2. What each choice does to the softmax over n = {n} keys")
    flat_std = (D_K / D_MODEL) ** 0.25  # entries whose sqrt(d_k)-scaled scores have variance d_k / d_model
    common = {"dim": D_K, "seq_len": n, "samples": rows}
    saturation = sqrtdk.run("saturation", std=[1.0, flat_std], **common)
    gradient = sqrtdk.run("gradient", std=[1.0, flat_std], **common)
    saturation.write(args.out, plot=False, folder="seed001_head_dim_saturation")
    gradient.write(args.out, plot=False, folder="seed001_head_dim_gradient")

    def pick(result, std, scaling):
        return next(r for r in result.rows if r["entry_std"] == std and r["scaling"] == scaling)

    cases = [
        ("no scaling", 1.0, "none"),
        (f"1/sqrt(d_k) = 1/{math.sqrt(D_K):g}", 1.0, "sqrt"),
        (f"1/sqrt(d_model) = 1/{math.sqrt(D_MODEL):.4g}", flat_std, "sqrt"),
    ]
    print(f"{'scale':>26} {'logit sd':>9} {'max weight':>18} {'entropy / ln n':>18} {'||J||_F':>18}")
    for name, std, scaling in cases:
        s, g = pick(saturation, std, scaling), pick(gradient, std, scaling)
        print(
            f"{name:>26} {s['logit_std']:>9.3f} {pm(s['max_prob_mean'], s['max_prob_mean_se'], 3):>18} "
            f"{pm(s['entropy_ratio_mean'], s['entropy_ratio_mean_se'], 4):>18} "
            f"{pm(g['jacobian_fro_mean'], g['jacobian_fro_mean_se'], 3):>18}"
        )
    uniform = pick(gradient, 1.0, "sqrt")["uniform_jacobian_fro"]
    flat, right = pick(saturation, flat_std, "sqrt"), pick(saturation, 1.0, "sqrt")
    print()
    say(
        f"With the model dimension the entropy is {flat['entropy_ratio_mean']:.3f} of its maximum ln n against "
        f"{right['entropy_ratio_mean']:.3f} with the head dimension, the largest weight "
        f"{flat['max_prob_mean']:.4f} against {right['max_prob_mean']:.4f} (uniform: {1 / n:.4f}), and ||J||_F "
        f"{pick(gradient, flat_std, 'sqrt')['jacobian_fro_mean']:.4f} against "
        f"{pick(gradient, 1.0, 'sqrt')['jacobian_fro_mean']:.4f}, closer to the uniform row's {uniform:.4f}. "
        "Unscaled, the same head saturates instead. Only the head dimension keeps the logits at unit variance."
    )
    print(f"tables: {args.out}/seed001_head_dim_*/")


if __name__ == "__main__":
    main()
