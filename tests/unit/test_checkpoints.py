"""exactattn.checkpoints: heads of a stored attention layer as oracles, recovered.

The tests write their own small checkpoints (random weights, d = 32, 4
heads of dimension 8, BERT tensor names) with the ``safetensors`` numpy API,
read them back, check the oracle against the layer computed here from the
raw tensors, check the merged parameters against the oracle's answers, and
recover every head (F64, error bounds; and an exact case in EXP with a
perfect-square head dimension, compared with ==).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import exactattn.checks.low_rank_biased  # noqa: F401  (registers the certificate builder)
from exactattn.certificates import verify
from exactattn.checkpoints import (
    BERT_NAMES,
    TensorNames,
    head_oracle,
    load_layer,
    random_layer,
)
from exactattn.errors import InvalidEntryError, NotRepresentableError, ShapeError
from exactattn.fields import EXP, QQ
from exactattn.learners import learn_biased_low_rank
from exactattn.learners.biased_low_rank import biased_low_rank_query_count
from exactattn.linalg import rank

st_numpy = pytest.importorskip("safetensors.numpy")

D, H, HD = 32, 4, 8


def _tensors(seed: int, d: int = D, heads: int = H, layers: int = 2,
             prefix: str = "bert.") -> dict[str, np.ndarray[Any, Any]]:
    """A BERT-named state dict with float32 weights (as real checkpoints store them)."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer in range(layers):
        base = f"{prefix}encoder.layer.{layer}.attention."
        for name in ("self.query", "self.key", "self.value", "output.dense"):
            out[base + name + ".weight"] = rng.uniform(-1, 1, (d, d)).astype(np.float32) \
                / np.float32(math.sqrt(d))
            out[base + name + ".bias"] = rng.uniform(-1, 1, d).astype(np.float32) \
                / np.float32(math.sqrt(d))
    out[f"{prefix}embeddings.word_embeddings.weight"] = np.zeros((5, d), np.float32)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    tensors = _tensors(seed=0)
    st_numpy.save_file(tensors, str(path))
    (path.parent / "config.json").write_text(json.dumps({"num_attention_heads": H}))
    return path, tensors


def _layer_by_hand(t: dict[str, Any], layer: int, X: np.ndarray[Any, Any], j: int,
                   rho: np.ndarray[Any, Any]) -> float:
    """rho^T of the layer's output at x_N restricted to head j, from the raw tensors."""
    g = {k.split(f"layer.{layer}.attention.")[1]: v.astype(np.float64) for k, v in t.items()
         if f"layer.{layer}.attention." in k}
    s = slice(j * HD, (j + 1) * HD)
    q = g["self.query.weight"][s] @ X[-1] + g["self.query.bias"][s]
    K = X @ g["self.key.weight"][s].T + g["self.key.bias"][s]
    V = X @ g["self.value.weight"][s].T + g["self.value.bias"][s]
    a = np.exp(K @ q / math.sqrt(HD))
    a /= a.sum()
    out = g["output.dense.weight"][:, s] @ (a @ V) + g["output.dense.bias"]
    return float(rho @ out)


def test_load_from_safetensors_detects_prefix_and_heads(checkpoint: Any) -> None:
    path, tensors = checkpoint
    layer = load_layer(path, layer=1)                 # num_heads from config.json
    assert (layer.d, layer.num_heads, layer.head_dim) == (D, H, HD)
    assert np.array_equal(layer.Wk, tensors["bert.encoder.layer.1.attention.self.key.weight"])
    assert layer.Wq.dtype == np.float64               # widened exactly from float32


def test_oracle_answers_like_the_layer(checkpoint: Any) -> None:
    path, tensors = checkpoint
    rng = np.random.default_rng(1)
    rho = rng.standard_normal(D)
    for j in range(H):
        oracle, merged = head_oracle(path, layer=1, head=j, readout=rho)
        for N in (1, 2, 5):
            X = rng.standard_normal((N, D))
            y = oracle(X)
            assert abs(y - _layer_by_hand(tensors, 1, X, j, rho)) <= 1e-12 * (1 + abs(y))
            # the merged parameters give the same function (the key bias cancels)
            s = X @ (merged.W @ X[-1] + merged.c)
            a = np.exp(s - s.max())
            a /= a.sum()
            assert abs(y - (a @ (X @ merged.v) + merged.beta)) <= 1e-12 * (1 + abs(y))
        # [W | c] = W_k^T [W_q | b_q] / sqrt(h) has rank h
        assert np.linalg.matrix_rank(np.column_stack([merged.W, merged.c])) == HD


@pytest.mark.parametrize("bias", ["column_space", "general"])
def test_recover_every_head_f64(checkpoint: Any, bias: Any) -> None:
    path, _ = checkpoint
    for j in range(H):
        oracle, p = head_oracle(path, layer=1, head=j)
        rec = learn_biased_low_rank(oracle, rank=HD, bias=bias, scale=4)
        assert rec.queries == oracle.queries == biased_low_rank_query_count(D, HD, bias=bias)
        assert rec.queries < (D + 1) ** 2               # the full biased learner's count
        for name, truth, bound in (("W", p.W, "W_error_bound"), ("c", p.c, "c_error_bound"),
                                   ("v", p.v, "v_error_bound")):
            err = float(np.linalg.norm(rec.params[name] - truth))
            assert err <= rec.options[bound] and err <= 1e-9 * np.linalg.norm(truth), (j, name)
        assert abs(float(rec.params["beta"]) - p.beta) <= rec.options["beta_error_bound"] \
            + 1e-15
        assert verify(rec, oracle, probes=8).holds


def test_state_dict_of_torch_tensors_and_numpy_arrays() -> None:
    torch = pytest.importorskip("torch")
    tensors = _tensors(seed=3, layers=1, prefix="")
    from_np = load_layer(tensors, layer=0, num_heads=H)
    from_torch = load_layer({k: torch.from_numpy(v) for k, v in tensors.items()}, layer=0,
                            num_heads=H)
    assert np.array_equal(from_np.Wo, from_torch.Wo) and np.array_equal(from_np.bq, from_torch.bq)
    assert from_np.head(2).merged().W.tolist() == from_torch.head(2).merged().W.tolist()


def test_torch_module_with_bert_names_and_its_forward_pass() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    _ = torch.manual_seed(0)
    lin = lambda: nn.Linear(D, D, dtype=torch.float64)  # noqa: E731
    attention = nn.ModuleDict({"self": nn.ModuleDict({"query": lin(), "key": lin(),
                                                      "value": lin()}),
                               "output": nn.ModuleDict({"dense": lin()})})
    model = nn.ModuleDict({"encoder": nn.ModuleDict({"layer": nn.ModuleList(
        [nn.ModuleDict({"attention": attention})])})})
    layer = load_layer(model, layer=0, num_heads=H)     # the module itself, or its state dict
    assert np.array_equal(layer.Wq, load_layer(model.state_dict(), layer=0, num_heads=H).Wq)
    X = torch.randn(5, D, dtype=torch.float64)
    sa, dense = attention["self"], attention["output"]["dense"]
    rho = torch.zeros(D, dtype=torch.float64)
    rho[3] = 1.0
    with torch.no_grad():
        q, K, V = sa["query"](X[-1:]), sa["key"](X), sa["value"](X)
        heads = []
        for j in range(H):
            s = slice(j * HD, (j + 1) * HD)
            a = torch.softmax(q[:, s] @ K[:, s].T / math.sqrt(HD), dim=-1)
            heads.append(a @ V[:, s])
        y = float(rho @ dense(torch.cat(heads, dim=-1))[0])    # the layer, all heads at once
        rho_bo = float(rho @ dense.bias)
    # the layer's output is the sum of the heads' oracles, each of which holds b_o once
    total = sum(layer.head(j, readout=rho.numpy())(X.numpy()) for j in range(H))
    assert abs(total - (H - 1) * rho_bo - y) <= 1e-12


def test_custom_names() -> None:
    gpt_like = TensorNames(
        query_weight="h.{layer}.attn.q.weight", query_bias="h.{layer}.attn.q.bias",
        key_weight="h.{layer}.attn.k.weight", key_bias="h.{layer}.attn.k.bias",
        value_weight="h.{layer}.attn.v.weight", value_bias="h.{layer}.attn.v.bias",
        output_weight="h.{layer}.attn.o.weight", output_bias="h.{layer}.attn.o.bias",
        prefix="")
    bert = _tensors(seed=4, layers=1, prefix="")
    renamed = {}
    for role, name in BERT_NAMES.resolve(prefix="", layer=0).items():
        renamed[gpt_like.resolve(prefix="", layer=0)[role]] = bert[name]
    a = load_layer(renamed, layer=0, num_heads=H, names=gpt_like)
    b = load_layer(bert, layer=0, num_heads=H)
    assert np.array_equal(a.Wv, b.Wv)


def test_exact_head_recovered_with_equality(tmp_path: Path) -> None:
    # d = 8, 2 heads of dimension 4 (a perfect square: 1/sqrt(4) = 1/2 is rational); weights
    # stored as float32 multiples of 1/8, read back as the exact rationals they are
    rng = np.random.default_rng(5)
    tensors = {k: (np.round(v * 8 * math.sqrt(32)) / 8).astype(np.float32)
               for k, v in _tensors(seed=5, d=8, heads=2, layers=1).items()
               if not k.endswith("word_embeddings.weight")}
    path = tmp_path / "tiny.safetensors"
    st_numpy.save_file(tensors, str(path))
    for j in range(2):
        oracle, p = head_oracle(path, layer=0, head=j, num_heads=2, field=EXP,
                                readout=rng.integers(-2, 3, 8).astype(float))
        assert p.field == QQ and rank(QQ, np.concatenate([p.W, p.c[:, None]], axis=1)) <= 4
        rec = learn_biased_low_rank(oracle, rank=4, bias="column_space", field=QQ, seed=j)
        assert rec.status == "exact_given"
        for name, truth in (("W", p.W), ("c", p.c), ("v", p.v)):
            assert rec.params[name].tolist() == truth.tolist(), name
        assert rec.params["beta"][()] == p.beta
        assert rec.queries == biased_low_rank_query_count(8, 4, bias="column_space") == 61


def test_exact_route_refuses_an_irrational_scale() -> None:
    with pytest.raises(NotRepresentableError, match=r"1/sqrt\(8\) is irrational"):
        random_layer(16, 2).head(0, field=EXP)


def test_clear_errors(checkpoint: Any, tmp_path: Path) -> None:
    path, tensors = checkpoint
    with pytest.raises(InvalidEntryError, match="does not exist"):
        load_layer(tmp_path / "missing.safetensors", layer=0, num_heads=H)
    with pytest.raises(InvalidEntryError, match="for layer 7"):
        load_layer(path, layer=7)
    partial = {k: v for k, v in tensors.items() if "layer.0.attention.self.key.bias" not in k}
    with pytest.raises(InvalidEntryError, match=r"missing tensors \['bert.encoder.layer.0"):
        load_layer(partial, layer=0, num_heads=H)
    with pytest.raises(InvalidEntryError, match="num_heads is not stored"):
        load_layer(tensors, layer=0)
    with pytest.raises(ShapeError, match="do not split into num_heads = 5"):
        load_layer(tensors, layer=0, num_heads=5)
    with pytest.raises(InvalidEntryError, match=r"head must be an integer in \[0, 4\)"):
        load_layer(tensors, layer=0, num_heads=H).head(4)
    bad = dict(tensors)
    bad["bert.encoder.layer.0.attention.self.query.bias"] = np.full(D, np.nan, np.float32)
    with pytest.raises(InvalidEntryError, match="bq"):
        load_layer(bad, layer=0, num_heads=H)
    with pytest.raises(ShapeError, match="readout"):
        random_layer(8, 2).head(0, readout=np.ones(3))

