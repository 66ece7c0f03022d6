"""Rows measured through the kernels and the experiments' row builders, as several test modules need them."""

from sqrtdk.core.rows import sample_rows
from sqrtdk.core.scores import sample_scores
from sqrtdk.experiments._attention.measure import attention_rows
from sqrtdk.experiments.variance.measure import variance_rows

Z = 5.0  # standard errors allowed for a single comparison


def variance_rows_for(d_k, samples=2**18, mean=0.0, std=1.0, seed=0, scalings=("none", "sqrt"), source=None, **kw):
    """The variance experiment's rows at one d_k, by rule."""
    sample = sample_scores(d_k, samples, mean, std, seed, source=source, cosine="qknorm" in scalings, **kw)
    return {r["scaling"]: r for r in variance_rows(sample, scalings)}


def attention_rows_for(kind, d_k, n, samples=2**13, seed=0, level=None, scalings=("none", "sqrt"), source=None, **kw):
    """The saturation or gradient rows at one (d_k, n), by rule."""
    level = level if level is not None else (0.99 if kind == "saturation" else 1e-3)
    sample = sample_rows(kind, d_k, n, samples, seed=seed, level=level, scalings=scalings, source=source, **kw)
    return {r["scaling"]: r for r in attention_rows(sample)}
