"""`sqrtdk precision`: attention scores in float16, bfloat16 and float32, and where the scale goes.

Per d_k and entry std: the share of scores that overflow the format, against the exact variance-gamma tail
probability at its threshold (65520 for float16); the share of rows that an overflow leaves without a
softmax; and over the other rows what rounding put into the weights (max_j and mean_j |p_j - p*_j|) and
into the entropy, p* being the float64 softmax of the unrounded entries. The scale 1/sqrt(d_k) goes after
the product, on the query, or split between q and k (or nowhere: the unscaled softmax). Rounding is
emulated exactly in float64 (core/precision.py), so bfloat16 needs no hardware type.
"""

from __future__ import annotations

from sqrtdk.experiments import assembled
from sqrtdk.experiments.precision import figures, measure, reading

EXPERIMENT = assembled(
    "precision",
    "Attention scores in float16, bfloat16 and float32: overflow and rounding error, per scale placement.",
    measure,
    figures,
    reading,
)
