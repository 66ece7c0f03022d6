"""`sqrtdk train`: does the scaling matter for learning? Small attention-only models trained under each rule.

Every task of the grid is one (task, size, rule, learning rate) trained from `replicates` seeds spawned
from the root seed; the same seeds serve every rule and rate, so rules are compared on the same initial
draws and batches. A run (core/train.py) trains the model of core/transformer.py with AdamW (0.9, 0.95;
weight decay 1e-4 independent of the rate; clipping at norm 1; linear warm-up, cosine decay) and logs its
held-out loss and accuracy, attention entropy, largest logit and gradients, and ends in one outcome
(core.train.outcome, the first that holds): diverged (its loss stopped being finite, or its final
held-out loss is above its loss at initialisation), trained (final held-out accuracy >= 99%), collapsed
(final held-out loss within 0.05 nats of ln V, V the vocabulary: the loss of the uniform output) or
plateaued (the rest). A row summarises the replicates: the share of seeds in each outcome; the final
held-out loss and accuracy, the largest logit and the final entropy / ln n, each the mean with its
standard error over the seeds that did not diverge; the step at which held-out accuracy first reached
99%; and each seed's outcome, final loss and loss at initialisation (the lists seed_outcome, seed_loss,
seed_loss_at_init), from which the comparisons across rows are made. Across the learning rates of a rule,
its LR sensitivity is Wortsman et al. 2023's (arXiv 2309.14322, section 2.2), taken per seed as the paper
takes it per run: the mean over the grid of min(loss(lr), loss at initialisation) minus the best such
loss of that seed, a seed whose loss stopped being finite counting as its loss at initialisation; then
its mean and standard error over the seeds. A rule that trains at no rate scores low by this definition
(every rate about as bad as its best), and the report marks it.
"""

from __future__ import annotations

from sqrtdk.experiments import assembled
from sqrtdk.experiments.train import figures, measure, reading

EXPERIMENT = assembled(
    "train",
    "Small attention-only models trained under each scaling rule across learning rates: loss, accuracy, entropy.",
    measure,
    figures,
    reading,
    across=measure.across,
    curves=measure.curves,
    with_curves=measure.with_curves,
    arrays=measure.arrays,
    agree=measure.agree,
)
