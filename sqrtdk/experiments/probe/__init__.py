"""`sqrtdk probe`: sqrtdk's measurements on a real pretrained encoder's heads, beside the iid prediction.

The model (a BERT-family checkpoint, core/bert.py; read by sqrtdk/checkpoint.py) runs on `--seq-len`
token sequences of the text; or the queries and keys come from an .npz (`--activations`). Per layer and
head: the scaled logits' mean and spread; Var(q.k) against sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2),
its value for independent coordinates with the same entries' per-dimension means and variances, and
the share of that the means make; Var(q.k) against d_k Var(q_i) Var(k_i), the iid value (core/probe.py
says what each ratio measures); the excess kurtosis, entropy / ln n, the largest weight, the share of
saturated rows, the attention the most-attended position and [CLS] and [SEP] receive, and Zhai et
al.'s sigma = ||W_Q W_K^T||_2 / sqrt(d_head) from the weights, each with a standard error across
sequences (independent chunks of text). Beside them the iid theory for that head: the logit spread,
entropy and largest weight that iid mean-0 Gaussian entries with the head's own measured variances
would give at the same d_k and n (the exact theory of core/exact.py).
"""

from __future__ import annotations

from sqrtdk.experiments import assembled
from sqrtdk.experiments.probe import figures, measure, reading

EXPERIMENT = assembled(
    "probe",
    "sqrtdk's measurements on a pretrained encoder's heads (or saved queries and keys), beside the iid theory.",
    measure,
    figures,
    reading,
    curves=measure.curves,
    with_curves=measure.with_curves,
    prepare=measure.prepare,
    available=measure.available,
)
