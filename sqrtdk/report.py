"""The generated report, results/README.md: each config's figure, its config, and a reading of its numbers.

Every sentence of a reading is built from the rows it describes (which way a quantity moves, how many
intervals contain the theory), so the report cannot say what the tables do not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqrtdk import plots, story

HEADER = """# sqrtdk results

Attention divides its scores by sqrt(d_k) because, for query and key entries that are independent with mean 0 and variance 1, q.k has variance d_k: unscaled, the softmax saturates as d_k grows and its gradients vanish. Each section below measures one step of that argument: its figures first, then a reading of its numbers, generated from the tables beside it; [details.md](details.md) holds every reading with its tables. In every figure a marker is a measurement and its bar a {level:.0%} interval (hollow: no honest interval exists, as for every excess kurtosis; a share of 0 has only its upper end, drawn faint); a thin line is exact theory; each training seed is a dot. The tables give each experiment's own level.

This file and every folder beside it are written by `sqrtdk reproduce` from the configs in [`{folder}/`]({link}/); `sqrtdk reproduce --check` tells whether they are stale. Do not edit them by hand.
"""
DETAILS = "details.md"  # every reading, tables included, beside the report
DETAILS_HEADER = """# sqrtdk results: every reading

Each config's reading in full, with the tables that compare its settings; the figures and the summary are in [README.md](README.md). Written by `sqrtdk reproduce` from the configs in [`{folder}/`]({link}/); do not edit by hand.
"""
PAGES = ("README.md", DETAILS)


def is_report(path: Path) -> bool:
    """Whether `path` holds a page of the report that sqrtdk wrote (it starts with that page's heading)."""
    headings = {HEADER.splitlines(keepends=True)[0], DETAILS_HEADER.splitlines(keepends=True)[0]}
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline() in headings
    except (OSError, UnicodeDecodeError):
        return False


PARTS = (  # (first order, heading): the report in the order a reader learns the argument
    (0, "The argument: scores, softmax, gradients"),
    (40, "The scaling rules"),
    (50, "Beyond the textbook case"),
)

# A short explanation of each concept, given once, under the first section whose text names it (any of
# TRIGGERS[concept], else the concept's own name), and the references a section's text calls on.
TRIGGERS = {
    "s_c": ("s_c", "freez", "saturat"),
    "random-energy model": ("random-energy",),
    "participation": ("participation", "effective number"),
}
SOURCES = {
    1: ("sqrt(d_k)", "Var(q.k)", "variance-gamma"),
    2: ("jackknife",),
    3: ("1/d_k", "muP"),
    4: ("random-energy", "s_c", "freez"),
    5: ("random-energy",),
    6: ("QK-norm",),
    7: ("Scalable-Softmax", "s ln n"),
    8: ("LR sensitivity", "learning rate"),
    9: ("sink heads", "[SEP]"),
    10: ("sigma = ||W_Q",),
}
CONCEPTS = {
    "variance-gamma": "**variance-gamma density**: the exact law of q.k for Gaussian entries, a Bessel-function "
    "density with exponential tails, heavier than a normal curve's [1].",
    "jackknife": "**jackknife interval**: the estimate recomputed with each of the independent replicates left "
    "out; their spread gives a standard error and a Student-t interval.",
    "excess kurtosis": "**excess kurtosis**: E[(x - mean)^4] / Var^2 - 3, 0 for a normal curve; for q.k with "
    "unit-variance entries it is (m4^2 - 3) / d_k, m4 the entries' fourth moment.",
    "s_c": "**s_c = sqrt(2 ln n)**: the logit spread at which the softmax of n iid normal logits freezes; "
    "below it the weight spreads over many keys, above it over a few [4, 5].",
    "random-energy model": "**random-energy model (REM)**: Derrida's model of n iid energies, whose large-n "
    "limits give E[H] ~ ln n - s^2/2 and 1/sum p^2 ~ n e^(-s^2) below s_c; sqrtdk draws these asymptotic "
    "forms only where they agree with the exact value to 2% [4, 5].",
    "participation": "**participation 1/sum p^2**: the number of keys a row effectively attends to (n for "
    "uniform weights, 1 for one-hot).",
    "||J||_F": "**||J||_F**: the Frobenius norm of the softmax Jacobian diag(p) - p p^T, the size of the "
    "gradient the softmax passes back; 0 for a one-hot row, sqrt(n-1)/n for a uniform one.",
    "1/d_k": "**1/d_k (muP)**: Tensor Programs V scales attention logits by 1/d_k rather than "
    "1/sqrt(d_k), so that a query correlated with its key gives a logit that stays O(1) as d_k grows [3].",
    "QK-norm": "**QK-norm**: LayerNorm (here: normalisation) of q and k before the product, logits "
    "g cos(q, k) with a gain g (sqrt(d_k) unless set), bounded by g whatever the entries' scale; used against logit growth in ViT-22B [6].",
    "Scalable-Softmax": "**Scalable-Softmax (SSMax)**: logits multiplied by s ln n, so that the weight of a "
    "key that stands out does not fade as the sequence grows [7].",
    "LR sensitivity": "**LR sensitivity**: for one seed over a grid of learning rates, the mean of min(final "
    "loss, loss at initialisation) minus that seed's lowest such loss, then averaged over seeds; 0 when every "
    "rate trains as well as the best one, and small too when no rate trains at all [8].",
}

REFERENCES = """## References

1. Vaswani et al. 2017, "Attention Is All You Need", section 3.2.1 and footnote 4: Var(q.k) = d_k for independent mean-0, variance-1 entries, hence the 1/sqrt(d_k). Base model d_k = d_model / h = 64. The closed forms for other means, variances, correlations and distributions, and the variance-gamma density, are derived in sqrtdk/core/theory.py and described in sqrtdk's docs/numbers.md.
2. Efron and Stein 1981, "The jackknife estimate of variance", Annals of Statistics 9(3): the jackknife standard errors and intervals over independent replicates.
3. Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer" (muP), arXiv 2203.03466: attention scaled by 1/d_head, section on attention logits.
4. Derrida 1981, "Random-energy model: an exactly solvable model of disordered systems", Physical Review B 24: the freezing transition at s_c.
5. Giorlandino and Goldt 2025, arXiv 2505.24333: the random-energy model mapped onto attention at initialisation (entropy and participation below s_c).
6. Dehghani et al. 2023, "Scaling Vision Transformers to 22 Billion Parameters", arXiv 2302.05442: LayerNorm on queries and keys (QK-norm) against attention-logit growth.
7. Nakanishi 2025, "Scalable-Softmax Is Superior for Attention", arXiv 2501.19399: logits times s ln n, and its toy example (one logit 3, the rest -2; s = 0.43), whose published weights the toy section reproduces.
8. Wortsman et al. 2023, "Small-scale proxies for large-scale Transformer training instabilities", arXiv 2309.14322: attention-logit growth at high learning rates, QK-layernorm against it, and the LR sensitivity defined in section 2.2.
9. Clark et al. 2019, "What Does BERT Look At? An Analysis of BERT's Attention", arXiv 1906.04341: heads that attend to [SEP] and [CLS] (more than half of BERT-base's attention in layers 6-10 goes to [SEP]).
10. Zhai et al. 2023, "Stabilizing Transformer Training by Preventing Attention Entropy Collapse", arXiv 2303.06296: sigma = ||W_Q W_K^T||_2 / sqrt(d_head), the attention logits' largest gain.
"""


def pages(configs: Sequence, results: Sequence, shown_at: Path, summary: str = "") -> dict[str, str]:
    """The report's pages for `configs` and their `results`, by file name: README.md (the `summary`
    (sqrtdk/summary.py's Markdown), the story figure and each config's figures and reading without its
    tables) and details.md (every reading in full). Links are relative to the folder `shown_at`; the
    headings name the folder the configs came from."""
    folder = configs[0].path.parent if configs else Path("configs")
    link = Path(os.path.relpath(folder.resolve(), shown_at.resolve())).as_posix()
    # named relative to the report, so that a results folder moved or copied with its configs still checks
    parts = [HEADER.format(folder=link, link=link, level=plots.LEVEL)]
    if summary:
        parts.append(summary)
    if set(story.SOURCES.values()) <= {c.name for c in configs}:
        parts.append(f"![{story.ALT}]({story.FOLDER}/story.png)\n\n{story.CAPTION}\n")
    details = [DETAILS_HEADER.format(folder=link, link=link)]
    contents: list[tuple[str, list[str]]] = []
    sections: list[str] = []
    said: set[str] = set()
    said_in_full: set[str] = set()
    explained: set[str] = set()
    for config, result in zip(configs, results):
        heading = [h for start, h in PARTS if config.order >= start][-1]
        if not contents or contents[-1][0] != heading:
            contents.append((heading, []))
            sections.append(f"# {heading}\n")
        title = config.title or config.name
        contents[-1][1].append(f"[{title}](#{anchor(title)})")
        sections.append(section(config, result, shown_at, said, explained))
        details.append(reading_in_full(config, result, shown_at, said_in_full))
    parts.append("## Contents\n")
    parts += [f"- **{heading}**: " + " · ".join(links) for heading, links in contents]
    parts.append("- [References](#references)\n")
    report = "\n".join([*parts, *sections, REFERENCES]).rstrip() + "\n"
    return {"README.md": report, DETAILS: "\n".join(details).rstrip() + "\n"}


def anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to hyphens, punctuation dropped."""
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def _is_table(item: str) -> bool:
    return "\n|" in item


SHORT_TABLE = 3  # rows of a reading's table that the report shows; longer tables are in details.md only
ONLY_TABLE = 5  # rows of a table that the report shows when that table is the whole reading


def _table_rows(item: str) -> int:
    return sum(line.startswith("|") for line in item.splitlines()) - 2


# What each kind of figure shows, for readers who cannot see it (the image's alt text): the first key that
# starts a figure's name
ALT = {
    "histograms": "Histograms of the scores side by side: scaled ones on a shared axis with the exact density and "
    "the normal curve, unscaled ones below them widening with d_k",
    "histogram_": "Histograms of the unscaled and the scaled scores against the exact density and the normal "
    "curve, the scaled ones again on a log axis for the tails",
    "variance_vs_dk": "The variance of the scores against d_k for each rule, measured points on exact-theory "
    "lines, and measured over theory with 95% intervals",
    "variance_checks": "Quality checks against d_k: the mean in units of the spread and d_k times the excess "
    "kurtosis, measured points beside their theory",
    "variance_by_setting": "The variance of the scores for each setting and rule beside its theory, and measured "
    "over theory with 95% intervals",
    "saturation_": "The softmax's largest weight, its entropy over ln n and the share of rows with a weight of "
    "0.99 or more, for each rule, measured points with 95% intervals on exact-theory lines",
    "gradient_rows": "The distribution of the per-row gradient to the query, unscaled and scaled: frozen rows "
    "near zero, the rest large",
    "gradient_": "The softmax Jacobian's norm, the gradient to the query and the share of rows whose Jacobian "
    "vanishes, for each rule, measured points with 95% intervals on exact-theory lines",
    "precision_overflow": "The share of float16 scores that overflow against d_k for each entry spread, "
    "measured and exact, and the headroom that scaling before the product leaves",
    "precision_error": "The softmax's rounding error against d_k, by number format and by where the scale is applied",
    "probe_maps": "Maps of a trained model's heads, layer by head: logit spread, entropy, the variance against "
    "the independent-coordinates value and the means' share, frozen and sink heads marked",
    "probe_logits": "Histograms of two heads' logits against the normal curve that independent coordinates would give",
    "ssmax_toy": "The largest softmax weight against n for plain softmax and Scalable-Softmax, computed, in "
    "closed form and as published",
    "train_vs_lr": "Held-out loss and accuracy against the learning rate for each rule, each seed a dot, and "
    "each seed's outcome",
    "train_curves": "Training curves at each rule's best rate: held-out loss, accuracy, attention entropy and "
    "the largest logit against the step",
}


def alt_text(figure: str, title: str) -> str:
    """The alt text of a figure of the section titled `title`."""
    what = next((words for key, words in ALT.items() if figure.startswith(key)), figure.replace("_", " "))
    return f"{title}: {what}".replace("[", "(").replace("]", ")")


def _in_report(item: str, items: Sequence[str]) -> bool:
    """Whether a reading's item goes into the report: a sentence, a table of at most SHORT_TABLE rows, or
    one of at most ONLY_TABLE rows that is the only item of `items` (a reading's items not said before)."""
    if not _is_table(item):
        return True
    return _table_rows(item) <= (ONLY_TABLE if len(items) == 1 else SHORT_TABLE)


def section(config, result, shown_at: Path, said: set[str] | None = None, explained: set[str] | None = None) -> str:
    """One config's section of the report: title, description, figures, the reading's sentences and short
    tables (its longer tables are in details.md), the concepts it names for the first time, and one line of links (sources,
    tables, the full reading, the config). A sentence an earlier section has said is not said again."""
    said = set() if said is None else said
    explained = set() if explained is None else explained
    name, title = config.name, config.title or config.name
    lines = [f"## {title}", ""]
    if config.description:
        lines += [config.description, ""]
    figures = list(result.figures())
    shown = [f for f in figures if not f.startswith("histogram_") and not f.endswith("_checks")] or figures
    for figure in shown:
        lines += [f"![{alt_text(figure, title)}]({name}/{figure}.png)", ""]
    others = [f for f in figures if f not in shown]
    if others:
        lines += ["More figures: " + ", ".join(f"[{f}]({name}/{f}.png)" for f in others) + ".", ""]
    items = [item for item in result.spec.reading(result) if item not in said]
    for item in items:
        if not _in_report(item, items):
            continue
        said.add(item)
        lines += ["", item, ""] if _is_table(item) else [f"- {item}"]
    text = "\n".join([*lines, config.text])
    new = [c for c in CONCEPTS if c not in explained and any(t in text for t in TRIGGERS.get(c, (c,)))]
    if new:
        explained.update(new)
        lines += ["", "Terms: " + " ".join(CONCEPTS[c] for c in new)]
    cited = [n for n, triggers in SOURCES.items() if any(t in text for t in triggers)]
    links = ["Sources: " + ", ".join(f"[{n}](#references)" for n in cited) + "."] if cited else []
    tables = sum(not _in_report(item, items) for item in items)
    full = f"[{tables} more table{'s' * (tables != 1)}, every reading]" if tables else "[The reading in full]"
    links += [
        f"Rows: [rows.md]({name}/rows.md), [csv]({name}/rows.csv), [json]({name}/rows.json).",
        f"{full}({DETAILS}#{anchor(title)}).",
        f"Config: [`{config.path.name}`]({_config_link(config, shown_at)}).",
    ]
    lines += ["", " ".join(links), ""]
    return "\n".join(line for i, line in enumerate(lines) if line or i == 0 or lines[i - 1])


def reading_in_full(config, result, shown_at: Path, said: set[str] | None = None) -> str:
    """One config's section of details.md: its whole reading, tables included, with its rows and config."""
    said = set() if said is None else said
    name, title = config.name, config.title or config.name
    lines = [f"## {title}", ""]
    for item in result.spec.reading(result):
        if item in said:
            continue
        said.add(item)
        lines += ["", item, ""] if _is_table(item) else [f"- {item}"]
    lines += [
        "",
        f"Figures and summary: [README.md](README.md#{anchor(title)}). Rows: [rows.md]({name}/rows.md), "
        f"[csv]({name}/rows.csv), [json]({name}/rows.json). Config: "
        f"[`{config.path.name}`]({_config_link(config, shown_at)}).",
        "",
    ]
    return "\n".join(line for i, line in enumerate(lines) if line or i == 0 or lines[i - 1])


def _config_link(config, shown_at: Path) -> str:
    return Path(os.path.relpath(config.path.resolve(), shown_at.resolve())).as_posix()


# ---- wording built from numbers: one format for every number ----

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def num(x: float, digits: int = 4) -> str:
    """A number in prose: `digits` significant digits, thousands separated, no exponent between 1e-4
    and 1e6 (65,510; 4.352; 0.0002446); outside that range 2.4 times a power of ten, in superscript."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    size = abs(x)
    if size >= 1e6 or size < 1e-4:
        power = math.floor(math.log10(size))
        return f"{x / 10**power:.{max(digits - 1, 1)}g} \u00d7 10{str(power).translate(SUPERSCRIPT)}"
    if size >= 10 ** (digits - 1):
        return f"{round(x):,}"
    return f"{x:.{digits}g}"


def share(x: float) -> str:
    """A share as a percentage, always with one decimal: 0.0%, 16.6%, 100.0%."""
    return f"{x:.1%}"


def _format(x: float, spec: str) -> str:
    if spec == "%":
        return share(x)
    if spec.endswith("g"):
        return num(x, int(spec.strip(".g") or 4))
    return format(x, spec)


def trend(a: float, b: float, spec: str, se: tuple[float | None, float | None] | None = None) -> str:
    """'rises from 0.75 to 0.97', 'falls from ...', or, when the change is within two standard errors
    of the difference (or the printed numbers agree), 'stays at 0.069' / 'does not move beyond its
    uncertainty (0.903 and 0.900)'."""
    sa, sb = _format(a, spec), _format(b, spec)
    if sa == sb:
        return f"stays at {sa}"
    if _within(a, b, se):
        return f"does not move beyond its uncertainty ({sa} and {sb})"
    return f"{'rises' if b > a else 'falls'} from {sa} to {sb}"


def _within(a: float, b: float, se: tuple[float | None, float | None] | None) -> bool:
    """Whether b - a is within two standard errors of the difference (independent estimates)."""
    if se is None:
        return False
    se_a, se_b = se
    return se_a is not None and se_b is not None and abs(b - a) <= 2 * math.hypot(se_a, se_b)


def arrow(a: float, b: float, spec: str, se: tuple[float | None, float | None] | None = None) -> str:
    """'0.425 → 0.961' for a table cell, with '(flat within 2 SE)' when the change is inside the noise."""
    sa, sb = _format(a, spec), _format(b, spec)
    if sa == sb:
        return f"{sa} (flat)"
    flat = _within(a, b, se)
    return f"{sa} → {sb}" + (" (flat within 2 SE)" if flat else "")


def between(values: Sequence[float], spec: str) -> str:
    lo, hi = _format(min(values), spec), _format(max(values), spec)
    return f"at {lo}" if lo == hi else f"between {lo} and {hi}"


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A small Markdown table, for readings that compare several settings."""

    def row(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(head), "|" + "|".join("---" for _ in head) + "|", *(row(r) for r in rows)])


def groups(result: Any, x: str) -> list[tuple[str, list[dict]]]:
    """Rows grouped by the varying parameters other than d_k and n, with a prefix naming the group."""
    from sqrtdk.plots import series_of

    others = [c for c in result.series_columns(x) if c not in ("d_k", "seq_len")]
    return [(f"With {name}: " if name else "", rows) for name, rows in series_of(result.rows, others)]


def by_rule(rows: Sequence[dict], scaling: str, key: str = "d_k") -> list[dict]:
    """The rows of one scaling rule, in order of `key`."""
    return sorted((r for r in rows if r["scaling"] == scaling), key=lambda r: r[key])
