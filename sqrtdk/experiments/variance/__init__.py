"""`sqrtdk variance`: moments of the scores c q.k under each scaling rule, against their closed forms.

For iid entries with mean mu and std sigma, Var(q.k) = d_k (sigma^4 + 2 sigma^2 mu^2) (core/theory.py;
Vaswani et al. 2017, sec. 3.2.1 and footnote 4, for mu = 0 and sigma = 1); dividing by sqrt(d_k) brings it
back to sigma^4 + 2 sigma^2 mu^2, independent of d_k, dividing by d_k takes it to 0, and QK-norm (cos(q, k)
times a gain) makes it independent of sigma as well. The scores are streamed by core/scores.py; measure.py
turns their power sums into estimates with jackknife intervals and rows, figures.py draws them, reading.py
reads them in the report and tabulates them for a terminal.
"""

from __future__ import annotations

from sqrtdk.experiments import assembled
from sqrtdk.experiments.variance import figures, measure, reading

EXPERIMENT = assembled(
    "variance",
    "Moments of q.k under each scaling rule, against their closed forms.",
    measure,
    figures,
    reading,
    histogram=measure.histogram,
    with_histogram=measure.with_histogram,
)
