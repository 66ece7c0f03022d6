"""One training run of the lab's model (core/transformer.py) on one task (core/tasks.py): the loop, what
it logs and how it ends.

Training batches and held-out batches come from two streams spawned from the run's seed, so held-out
sequences are never trained on and a run is the same wherever it runs. At step 0 (the model as
initialised, its statistics from the first batch), every `every` steps and at the last, the log gets:
the training loss, the held-out loss and accuracy, and per layer the attention
entropy (over query rows that see at least two keys, also as a fraction of ln n, n the keys a row sees),
the largest |logit|, the logits' standard deviation and the share of saturated rows (largest weight
>= 0.99, the saturation experiment's definition), and over all layers the gradient norms of W_q, W_k,
W_v and W_o and the update-to-weight ratio ||delta W|| / ||W|| of the four projections. A run whose loss
or gradient stops being finite ends there (`non_finite`).

How a run ended (`outcome`), the first of these that holds:

- diverged: its loss stopped being finite, or its final held-out loss is above its loss at
  initialisation (training made the model worse than it started);
- trained: its final held-out accuracy is at least ACCURATE (99%);
- collapsed: its final held-out loss is within MARGIN = 0.05 nats of ln V, V the vocabulary: the loss of
  the uniform output over the vocabulary;
- plateaued: the rest (short of the accuracy, and away from the uniform output: better than it, or
  between it and the start).

The margin: a model that knows the answer at a share f of the scored positions and spreads its
probability evenly over the vocabulary elsewhere has a loss of (1 - f) ln V, so a loss down to 0.05
nats below ln V = ln 129 = 4.86 (either task) allows f <= 0.05 / 4.86 = 1%, next to chance accuracy
(1/128 on copying, 1/64 on recall); a model that learned only which tokens can be targets, and nothing
of the sequence, scores ln 128 = ln V - 0.008 on copying, inside it. Above ln V, a loss ln V + delta of
an output that ignores the sequence is delta nats of KL divergence from the uniform output, so 0.05
nats keeps the output within 0.05 nats of uniform either side. The model as initialised is not: its
output logits have a spread of about 1, so its loss is about ln V + 1/2, and a run that has not yet
moved from it is plateaued, not collapsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sqrtdk.core import transformer as tf
from sqrtdk.core.tasks import Task, batch

SATURATED = 0.99  # as core/rows.py's default threshold
PROJECTIONS = ("w_q", "w_k", "w_v", "w_o")
ACCURATE = 0.99  # the held-out accuracy at which a run has learned its task
MARGIN = 0.05  # nats: a final loss within this of ln V is the uniform output's (see above)
OUTCOMES = ("trained", "plateaued", "collapsed", "diverged")  # as tables and figures list them


@dataclass(frozen=True)
class Run:
    """What a finished run reports; `log` holds one dict per logged step."""

    non_finite: bool  # the loss or a gradient stopped being finite: the run ended at steps_done
    steps_done: int
    loss_at_init: float
    log: list[dict] = field(default_factory=list)
    activations: dict[str, np.ndarray] | None = None  # the trained model's q and k (see `activations`)

    @property
    def final(self) -> dict:
        return self.log[-1]

    def steps_to(self, accuracy: float) -> int | None:
        """The first logged step whose held-out accuracy reaches `accuracy`, or None."""
        return next((row["step"] for row in self.log if row["accuracy"] >= accuracy), None)

    @property
    def max_logit(self) -> float:
        return max(max(row["max_logit"]) for row in self.log)

    @property
    def final_loss(self) -> float | None:
        """The held-out loss at the last step, None where the run stopped on a non-finite number."""
        return None if self.non_finite else float(self.final["loss"])


def outcome(run: Run, vocab: int, accurate: float = ACCURATE, margin: float = MARGIN) -> str:
    """How `run` ended: diverged, trained, collapsed or plateaued, the first that holds (module docstring);
    `vocab` is the task's vocabulary V, whose uniform output has loss ln V."""
    loss = run.final_loss
    if loss is None or loss > run.loss_at_init:
        return "diverged"
    if run.final["accuracy"] >= accurate:
        return "trained"
    if abs(loss - np.log(vocab)) <= margin:
        return "collapsed"
    return "plateaued"


def attention_statistics(caches: list[dict]) -> dict[str, list[float]]:
    """Per layer: entropy, entropy / ln n, largest |logit|, logit std and saturated share, over the query
    rows that see at least two keys (causal: row i sees i + 1 keys)."""
    out: dict[str, list[float]] = {k: [] for k in ("entropy", "entropy_ratio", "max_logit", "logit_std", "saturated")}
    for cache in caches[:-1]:
        weights, logits = cache["weights"][..., 1:, :], cache["logits"][..., 1:, :]  # (B, H, T-1, T)
        t = weights.shape[-1]
        seen = np.arange(2, t + 1)  # keys each kept row sees
        visible = np.tril(np.ones((t, t), dtype=bool))[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(weights > 0, weights * np.log(weights), 0.0)
        entropy = -terms.sum(axis=-1)  # (B, H, T-1)
        out["entropy"].append(float(entropy.mean()))
        out["entropy_ratio"].append(float((entropy / np.log(seen)).mean()))
        values = logits[..., visible]
        out["max_logit"].append(float(np.abs(values).max()))
        out["logit_std"].append(float(values.std()))
        out["saturated"].append(float((weights.max(axis=-1) >= SATURATED).mean()))
    return out


def _norm(x: np.ndarray) -> float:
    return float(np.sqrt((x.astype(np.float64) ** 2).sum()))


def evaluate(p: dict, shape: tf.Shape, task: Task, tokens: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Held-out loss and accuracy (argmax at the scored positions)."""
    logits, _ = tf.forward(p, tokens, shape)
    loss, _, scored, _ = tf.cross_entropy(logits, targets)
    accuracy = float((logits.argmax(axis=-1) == targets)[scored].mean())
    return loss, accuracy


def activations(p: dict, shape: tf.Shape, tokens: np.ndarray) -> dict[str, np.ndarray]:
    """The queries and keys of every layer and head on `tokens` (N, T), as the logits take them (after
    the projection, and under QK-norm after the norm and its gain; before the scale): `q` and `k` of
    shape (layers, heads, N, T, d_k), float32, and `scale`, the factor of q.k at each query position (T,),
    so that the logits are scale[i] * q_i . k_j for keys j <= i (causal)."""
    _, caches = tf.forward(p, tokens, shape)
    pick = {name: np.stack([c.get(f"{name}_scaled", c[name]) for c in caches[:-1]]) for name in ("q", "k")}
    return {
        "q": pick["q"].transpose(0, 2, 1, 3, 4).astype(np.float32),
        "k": pick["k"].transpose(0, 2, 1, 3, 4).astype(np.float32),
        "scale": tf.scale(shape, np.float32)[:, 0],
    }


def train(
    shape: tf.Shape,
    task: Task,
    optimiser: tf.AdamW,
    seed: np.random.SeedSequence,
    batch_size: int = 64,
    every: int = 50,
    held_out: int = 512,
    init: str = "lecun",
    keep: int = 0,
) -> Run:
    """Train from `seed` for optimiser.steps steps; log every `every` steps and at the end. With `keep`,
    the run also returns the activations of the trained model on its first `keep` held-out sequences."""
    train_seed, test_seed, init_seed = seed.spawn(3)
    rng = np.random.default_rng(train_seed)
    p = tf.init(np.random.default_rng(init_seed), shape, init)
    test_tokens, test_targets = batch(np.random.default_rng(test_seed), task, held_out)
    loss_at_init, accuracy_at_init = evaluate(p, shape, task, test_tokens, test_targets)
    state: dict = {}
    log: list[dict] = []
    names = [f"{layer}.{w}" for layer in range(shape.layers) for w in PROJECTIONS]
    for step in range(optimiser.steps):
        tokens, targets = batch(rng, task, batch_size)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, grad, caches = tf.loss_and_grad(p, tokens, targets, shape)
            finite = np.isfinite(loss) and all(np.isfinite(g).all() for g in grad.values())
        if not finite:
            return Run(True, step, loss_at_init, log)
        new, state, grad_norm = optimiser.update(p, grad, state, step)
        logged = [(0, loss_at_init, accuracy_at_init)] if step == 0 else []  # the model as initialised
        if (step + 1) % every == 0 or step + 1 == optimiser.steps:
            logged.append((step + 1, *evaluate(new, shape, task, test_tokens, test_targets)))
        for at, test_loss, accuracy in logged:
            moved = np.sqrt(sum(_norm(new[n] - p[n]) ** 2 for n in names))
            size = np.sqrt(sum(_norm(p[n]) ** 2 for n in names))
            log.append(
                {
                    "step": at,
                    "train_loss": loss,
                    "loss": test_loss,
                    "accuracy": accuracy,
                    **attention_statistics(caches),
                    **{
                        f"grad_{w}": float(
                            np.sqrt(sum(_norm(grad[f"{layer}.{w}"]) ** 2 for layer in range(shape.layers)))
                        )
                        for w in PROJECTIONS
                    },
                    "grad_norm": grad_norm,
                    "update_ratio": float(moved / size) if size > 0 else float("inf"),
                }
            )
            if not np.isfinite(test_loss):
                return Run(True, step + 1, loss_at_init, log)
        p = new
    kept = activations(p, shape, test_tokens[:keep]) if keep else None
    return Run(False, optimiser.steps, loss_at_init, log, kept)
