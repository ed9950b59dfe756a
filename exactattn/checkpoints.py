"""Checkpoints as oracles: one head of a stored attention layer as a value oracle.

A standard (BERT-style) self-attention layer with H heads of dimension h
stores, in ``torch.nn.Linear`` orientation (out x in):

* query, key, value projections W_q, W_k, W_v (H h x d) with biases
  b_q, b_k, b_v (H h), and
* the output projection W_o (d x H h) with bias b_o (d).

Head j uses rows jh .. (j + 1)h - 1 of W_q, W_k, W_v (and of their biases)
and the same columns of W_o. Its value oracle, with a read-out vector
rho in R^d (default e_1) and the last token x_N as the query position, is

    f_j(X) = rho^T (W_o^j sum_i alpha_i (W_v^j x_i + b_v^j) + b_o),
    alpha = softmax_i((W_q^j x_N + b_q^j) . (W_k^j x_i + b_k^j) / sqrt(h)),

evaluated from the factors as the layer does: O(N d h) per query, never
forming a d x d matrix. (b_o belongs to the layer, not to a head; it is
kept in every head's oracle so that f_j is exactly what the layer computes
when the other heads' value projections are zero.) Expanding the score as
in :mod:`exactattn.torch_oracle` shows that f_j is the biased head
(:class:`~exactattn.models.BiasedSingleHeadAttention`) with

    W = W_k^jT W_q^j / sqrt(h),   c = W_k^jT b_q^j / sqrt(h),
    v = W_v^jT W_o^jT rho,        beta = rho^T (W_o^j b_v^j + b_o);

b_k^j leaves no trace (its score term does not depend on i), and
[W | c] = W_k^jT [W_q^j | b_q^j] / sqrt(h) has rank <= h: learn it with
``learn_biased_low_rank(oracle, rank=h, bias="column_space")``.
:meth:`FactoredHead.merged` returns these merged parameters, to compare
with a recovery.

Sources. :func:`load_layer` reads a ``.safetensors`` file with the
``safetensors`` package (numpy API, no torch; optional extra
``checkpoints``), only the eight tensors it needs, or takes a state dict
(a mapping from names to torch tensors or numpy arrays). Every tensor is
widened to float64 (exact for float16 and float32). Tensor names come
from a :class:`TensorNames` (format strings with ``{prefix}`` and
``{layer}``); the default :data:`BERT_NAMES` is the Hugging Face BERT
layout::

    {prefix}encoder.layer.{layer}.attention.self.query.weight   (and .bias)
    {prefix}encoder.layer.{layer}.attention.self.key.weight     (and .bias)
    {prefix}encoder.layer.{layer}.attention.self.value.weight   (and .bias)
    {prefix}encoder.layer.{layer}.attention.output.dense.weight (and .bias)

With ``prefix=None`` the prefix is detected (``""``, ``"bert."``,
``"roberta."``, ... : whatever precedes the query weight's name). The
number of heads is not stored with the weights: pass ``num_heads`` or keep
the model's ``config.json`` (``num_attention_heads``) beside the file.

Exact route. Every float64 weight is a rational number; if h is a perfect
square (so 1/sqrt(h) is rational), ``field=EXP`` evaluates the head exactly
in the exponential field from those rationals, and
:meth:`FactoredHead.merged` returns the merged parameters exactly (QQ).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from flint import fmpq, fmpq_mat

from .errors import InvalidEntryError, NotRepresentableError, ShapeError
from .fields import EXP, F64, QQ, Array, Field
from .linalg import from_fmpq_mat
from .models.attention import softmax_average
from .models.multihead_biased import _batch_answers
from .oracle import ValueOracle
from .queries import as_query

__all__ = ["TensorNames", "BERT_NAMES", "AttentionLayer", "FactoredHead", "HeadParameters",
           "load_layer", "head_oracle", "random_layer", "CHECKPOINTS_EXTRA"]

#: the optional extra that installs the safetensors reader
CHECKPOINTS_EXTRA = "checkpoints"

_ROLES = ("query_weight", "query_bias", "key_weight", "key_bias", "value_weight",
          "value_bias", "output_weight", "output_bias")


@dataclass(frozen=True)
class TensorNames:
    """Names of a layer's eight tensors: format strings with ``{prefix}`` and ``{layer}``.

    ``prefix=None`` detects it from the source (see :func:`load_layer`).

    >>> BERT_NAMES.resolve(prefix="bert.", layer=3)["key_bias"]
    'bert.encoder.layer.3.attention.self.key.bias'
    """

    query_weight: str = "{prefix}encoder.layer.{layer}.attention.self.query.weight"
    query_bias: str = "{prefix}encoder.layer.{layer}.attention.self.query.bias"
    key_weight: str = "{prefix}encoder.layer.{layer}.attention.self.key.weight"
    key_bias: str = "{prefix}encoder.layer.{layer}.attention.self.key.bias"
    value_weight: str = "{prefix}encoder.layer.{layer}.attention.self.value.weight"
    value_bias: str = "{prefix}encoder.layer.{layer}.attention.self.value.bias"
    output_weight: str = "{prefix}encoder.layer.{layer}.attention.output.dense.weight"
    output_bias: str = "{prefix}encoder.layer.{layer}.attention.output.dense.bias"
    prefix: str | None = None

    def resolve(self, *, prefix: str, layer: int) -> dict[str, str]:
        """The eight tensor names of ``layer`` with ``prefix``."""
        return {role: getattr(self, role).format(prefix=prefix, layer=layer) for role in _ROLES}


#: Hugging Face BERT names (also RoBERTa, MiniLM, ... with a detected prefix)
BERT_NAMES = TensorNames()


@dataclass(frozen=True)
class HeadParameters:
    """Merged parameters (W, c, v, beta) of one head, over ``field`` (F64 or QQ)."""

    W: Array
    c: Array
    v: Array
    beta: Any
    head_dim: int
    field: Field


@dataclass(frozen=True, eq=False)
class AttentionLayer:
    """The eight float64 tensors of one attention layer and its number of heads.

    Weights in ``torch.nn.Linear`` orientation: ``Wq``, ``Wk``, ``Wv`` are
    (H h) x d, ``Wo`` is d x (H h); biases are vectors.
    """

    Wq: Array
    bq: Array
    Wk: Array
    bk: Array
    Wv: Array
    bv: Array
    Wo: Array
    bo: Array
    num_heads: int
    source: str = field(default="arrays")

    def __post_init__(self) -> None:
        H = self.num_heads
        if isinstance(H, bool) or not isinstance(H, int) or H < 1:
            raise InvalidEntryError(f"num_heads must be a positive integer, got {H!r}")
        inner, d = self.Wq.shape if self.Wq.ndim == 2 else (-1, -1)
        expected = {"Wq": (inner, d), "Wk": (inner, d), "Wv": (inner, d), "Wo": (d, inner),
                    "bq": (inner,), "bk": (inner,), "bv": (inner,), "bo": (d,)}
        for name, shape in expected.items():
            A = getattr(self, name)
            if A.shape != shape or min(shape) < 1:
                raise ShapeError(f"{self.source}: {name} has shape {A.shape}, expected {shape} "
                                 f"(query weight {self.Wq.shape}: (H h) x d)")
            F64.check_array(A, name=f"{self.source}: {name}")
            A.flags.writeable = False
        if inner % H:
            raise ShapeError(f"{self.source}: {inner} projection rows do not split into "
                             f"num_heads = {H} heads")

    @property
    def d(self) -> int:
        return int(self.Wq.shape[1])

    @property
    def head_dim(self) -> int:
        return int(self.Wq.shape[0]) // self.num_heads

    def head(self, j: int, *, readout: Any = None, field: Field = F64) -> FactoredHead:
        """Head ``j`` (0-based) as a hidden function over ``field`` (F64 or EXP)."""
        if isinstance(j, bool) or not isinstance(j, int | np.integer) or \
                not 0 <= j < self.num_heads:
            raise InvalidEntryError(f"head must be an integer in [0, {self.num_heads}), "
                                    f"got {j!r}")
        h = self.head_dim
        s = slice(int(j) * h, (int(j) + 1) * h)
        return FactoredHead(self.Wq[s], self.bq[s], self.Wk[s], self.bk[s], self.Wv[s],
                            self.bv[s], self.Wo[:, s], self.bo, readout=readout, field=field,
                            name=f"{self.source}, head {j}")


class FactoredHead:
    """One head evaluated from its factors: O(N d h) per query (h = head dimension).

    f(X) = rho^T (W_o sum_i alpha_i (W_v x_i + b_v) + b_o),
    alpha = softmax_i((W_q x_N + b_q) . (W_k x_i + b_k) / sqrt(h)),
    with W_q, W_k, W_v of shape h x d and W_o of shape d x h. ``field``: F64
    (vectorised) or EXP (exact from the rational values of the weights; h
    must be a perfect square). See the module docstring.

    >>> rng = np.random.default_rng(0)
    >>> P = [rng.standard_normal((2, 3)) for _ in range(3)]
    >>> head = FactoredHead(P[0], np.ones(2), P[1], np.ones(2), P[2], np.ones(2),
    ...                     rng.standard_normal((3, 2)), np.zeros(3))
    >>> X = rng.standard_normal((4, 3))
    >>> p = head.merged()
    >>> s = X @ (p.W @ X[-1] + p.c); a = np.exp(s - s.max()); a /= a.sum()
    >>> bool(abs(head(X) - (a @ (X @ p.v) + p.beta)) < 1e-12)
    True
    """

    def __init__(self, Wq: Any, bq: Any, Wk: Any, bk: Any, Wv: Any, bv: Any, Wo: Any, bo: Any,
                 *, readout: Any = None, field: Field = F64, name: str = "head") -> None:
        arrays = [np.array(x, dtype=np.float64) for x in (Wq, bq, Wk, bk, Wv, bv, Wo, bo)]
        self.Wq, self.bq, self.Wk, self.bk, self.Wv, self.bv, self.Wo, self.bo = arrays
        h, d = self.Wq.shape
        for nm, A, shape in (("Wq", self.Wq, (h, d)), ("Wk", self.Wk, (h, d)),
                             ("Wv", self.Wv, (h, d)), ("Wo", self.Wo, (d, h)),
                             ("bq", self.bq, (h,)), ("bk", self.bk, (h,)),
                             ("bv", self.bv, (h,)), ("bo", self.bo, (d,))):
            if A.shape != shape:
                raise ShapeError(f"{name}: {nm} has shape {A.shape}, expected {shape}")
            F64.check_array(A, name=f"{name}: {nm}")
            A.flags.writeable = False
        if field not in (F64, EXP):
            raise InvalidEntryError(f"field must be F64 or EXP, got {field.name}")
        self.d, self.head_dim, self.field, self.name = int(d), int(h), field, name
        if readout is None:
            rho = np.zeros(d)
            rho[0] = 1.0
        else:
            rho = np.array(readout, dtype=np.float64)
            if rho.shape != (d,):
                raise ShapeError(f"readout has shape {rho.shape}, expected ({d},)")
            F64.check_array(rho, name="readout")
        self.readout = rho
        self.readout.flags.writeable = False
        self._u = self.Wo.T @ rho                   # the head's value read-out, length h
        self._const = float(rho @ self.bo)
        self._scale = 1.0 / math.sqrt(h)
        if field == EXP:
            root = math.isqrt(h)
            if root * root != h:
                raise NotRepresentableError(
                    f"{name}: the score scale 1/sqrt(h) = 1/sqrt({h}) is irrational, so the "
                    "exact route (EXP) cannot evaluate this head; use field=F64, or a head "
                    "dimension that is a perfect square")
            self._q = {k: _qmat(getattr(self, k)) for k in ("Wq", "Wk", "Wv", "Wo")}
            self._qv = {k: _qmat(getattr(self, k)[:, None]) for k in ("bq", "bk", "bv", "bo")}
            self._q_rho = _qmat(rho[:, None])
            self._q_root = fmpq(root)

    def __repr__(self) -> str:
        return f"FactoredHead({self.name}, d={self.d}, head_dim={self.head_dim}, " \
               f"field={self.field.name})"

    # -- evaluation --------------------------------------------------------------
    def _f64(self, Xs: Array) -> Array:
        q = Xs[:, -1, :] @ self.Wq.T + self.bq                    # (B, h)
        K = Xs @ self.Wk.T + self.bk                              # (B, N, h)
        s = np.einsum("bnh,bh->bn", K, q) * self._scale
        s -= s.max(axis=1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=1, keepdims=True)
        vals = Xs @ self.Wv.T + self.bv                           # (B, N, h)
        out_h = np.einsum("bn,bnh->bh", a, vals)                  # sum_i alpha_i val_i
        out: Array = out_h @ self._u + self._const                # rho^T (W_o out_h + b_o)
        return out

    def _exact(self, X: Array) -> Any:
        N, d = X.shape
        Xq = fmpq_mat(N, d, [EXP.to_rational(x) for x in X.flat])
        xN = fmpq_mat(d, 1, [Xq[N - 1, k] for k in range(d)])
        Q, Kw, V, O = self._q["Wq"], self._q["Wk"], self._q["Wv"], self._q["Wo"]
        q = Q * xN + self._qv["bq"]                                # h x 1
        ones = fmpq_mat(1, N, [1] * N)
        Kx = Kw * Xq.transpose() + self._qv["bk"] * ones           # h x N
        vals = V * Xq.transpose() + self._qv["bv"] * ones          # h x N
        s = q.transpose() * Kx                                      # 1 x N
        u = O.transpose() * self._q_rho                            # h x 1
        c = u.transpose() * vals                                    # 1 x N
        const = (self._q_rho.transpose() * self._qv["bo"])[0, 0]
        scores = [s[0, i] / self._q_root for i in range(N)]
        return softmax_average(EXP, scores, [c[0, i] for i in range(N)]) + EXP(const)

    def __call__(self, X: Any) -> Any:
        Xc = as_query(self.field, X, self.d)
        if self.field == EXP:
            return self._exact(Xc)
        return np.float64(self._f64(Xc[None])[0])

    def batch(self, Xs: Any) -> Array:
        """Answers to a batch; over F64 one vectorised pass per (B, N, d) array."""
        # field is F64 (not exact) or EXP (exact): the biased multi-head model's batch
        return _batch_answers(self.field, self.d, Xs, self._f64, self._exact)

    # -- merged parameters ---------------------------------------------------------
    def merged(self) -> HeadParameters:
        """(W, c, v, beta): float64 over F64, exact rationals (QQ) over EXP.

        W = W_k^T W_q / sqrt(h), c = W_k^T b_q / sqrt(h), v = W_v^T W_o^T rho,
        beta = rho^T (W_o b_v + b_o).
        """
        h = self.head_dim
        if self.field == F64:
            W = self.Wk.T @ self.Wq * self._scale
            c = self.Wk.T @ self.bq * self._scale
            v = self.Wv.T @ self._u
            beta = float(self.readout @ (self.Wo @ self.bv + self.bo))
            return HeadParameters(W, c, v, beta, h, F64)
        Q, Kw, V, O = self._q["Wq"], self._q["Wk"], self._q["Wv"], self._q["Wo"]
        Kt = Kw.transpose()
        W = (Kt * Q) / self._q_root
        c = (Kt * self._qv["bq"]) / self._q_root
        v = V.transpose() * (O.transpose() * self._q_rho)
        beta = (self._q_rho.transpose() * (O * self._qv["bv"] + self._qv["bo"]))[0, 0]
        return HeadParameters(_from_qmat(W), _from_qmat(c)[:, 0], _from_qmat(v)[:, 0],
                              QQ(beta), h, QQ)

    def oracle(self, **kwargs: Any) -> ValueOracle:
        """A :class:`~exactattn.oracle.ValueOracle` on this head (keyword arguments passed on)."""
        kwargs.setdefault("name", repr(self))
        return ValueOracle(self, **kwargs)


def _qmat(A: Array) -> Any:
    """A float64 matrix as the exact rationals its entries are (flint fmpq_mat)."""
    rows, cols = A.shape
    return fmpq_mat(rows, cols, [fmpq(*float(x).as_integer_ratio()) for x in A.flat])


def _from_qmat(M: Any) -> Array:
    return from_fmpq_mat(QQ, M)


# -- loading -----------------------------------------------------------------------------
def _safetensors() -> Any:
    try:
        return importlib.import_module("safetensors")
    except ImportError as exc:
        raise ImportError("reading .safetensors files needs the safetensors package: "
                          f"pip install \"exactattn[{CHECKPOINTS_EXTRA}]\"") from exc


def _as_float64(x: Any, name: str) -> Array:
    """A tensor (torch or numpy) as a float64 numpy array (widening is exact)."""
    if hasattr(x, "detach"):  # a torch tensor: no torch import needed
        x = x.detach().to("cpu").double().numpy()
    try:
        out = np.array(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidEntryError(f"tensor {name!r} cannot be read as float64: {exc}") from None
    return out


def _detect_prefix(keys: list[str], names: TensorNames, layer: int) -> str:
    probe = names.query_weight.format(prefix="\0", layer=layer)
    head, _, tail = probe.partition("\0")
    found = sorted({k[len(head):len(k) - len(tail)] for k in keys
                    if k.startswith(head) and k.endswith(tail)}, key=len)
    if not found:
        close = [k for k in keys if "query" in k or "attention" in k][:5]
        raise InvalidEntryError(
            f"no tensor named like {probe.replace(chr(0), '<prefix>')!r} for layer {layer}; "
            f"tensors mentioning attention/query: {close}. Pass names=TensorNames(...) with "
            "this checkpoint's names, or another layer")
    return found[0]


def _layer_tensors(keys: list[str], get: Any, names: TensorNames, layer: int,
                   where: str) -> dict[str, Array]:
    """The eight tensors of ``layer`` (by role, float64) from a source listing ``keys``."""
    prefix = names.prefix if names.prefix is not None else _detect_prefix(keys, names, layer)
    wanted = names.resolve(prefix=prefix, layer=layer)
    have = set(keys)
    missing = [n for n in wanted.values() if n not in have]
    if missing:
        raise InvalidEntryError(f"{where}: missing tensors {missing}")
    return {role: _as_float64(get(n), n) for role, n in wanted.items()}


def _num_heads_from_config(path: Path) -> int | None:
    cfg = path.parent / "config.json"
    if not cfg.exists():
        return None
    value = json.loads(cfg.read_text(encoding="utf-8")).get("num_attention_heads")
    return int(value) if isinstance(value, int) else None


def load_layer(source: str | Path | Mapping[str, Any] | Any, *, layer: int,
               num_heads: int | None = None, names: TensorNames = BERT_NAMES) -> AttentionLayer:
    """The attention layer ``layer`` of a checkpoint.

    Parameters
    ----------
    source : path of a ``.safetensors`` file (read with ``safetensors``, numpy
        API, only the eight tensors needed), a state dict (names to torch
        tensors or numpy arrays), or a ``torch.nn.Module`` (its state dict).
    layer : the layer index (0-based, as in the tensor names).
    num_heads : H; default ``num_attention_heads`` from ``config.json``
        beside the file.
    names : the tensor names (:class:`TensorNames`); default BERT's.

    Raises
    ------
    InvalidEntryError : a tensor is missing (the message lists similar names),
        or H is unknown. ShapeError : inconsistent shapes.
    """
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise InvalidEntryError(f"layer must be a non-negative integer, got {layer!r}")
    if not isinstance(source, str | Path | Mapping) and callable(
            getattr(source, "state_dict", None)):
        source = source.state_dict()          # a torch.nn.Module: its state dict
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InvalidEntryError(f"checkpoint file {str(path)!r} does not exist")
        st = _safetensors()
        try:
            opened = st.safe_open(str(path), framework="numpy")
        except (st.SafetensorError, OSError) as exc:  # a damaged or truncated file
            raise InvalidEntryError(f"{path.name}: not a readable .safetensors file "
                                    f"({exc})") from None
        with opened as fh:
            try:
                tensors = _layer_tensors(list(fh.keys()), fh.get_tensor, names, layer,
                                         path.name)
            except TypeError as exc:  # e.g. bfloat16, which numpy has no dtype for
                raise InvalidEntryError(f"{path.name}: cannot read a tensor with numpy "
                                        f"({exc}); convert the checkpoint to float32") from None
        label = f"{path.name}, layer {layer}"
        if num_heads is None:
            num_heads = _num_heads_from_config(path)
    else:
        tensors = _layer_tensors(list(source.keys()), source.__getitem__, names, layer,
                                 "state dict")
        label = f"state dict, layer {layer}"
    if num_heads is None:
        raise InvalidEntryError("num_heads is not stored with the weights: pass num_heads= "
                                "(or keep the model's config.json beside the file)")
    return AttentionLayer(tensors["query_weight"], tensors["query_bias"],
                          tensors["key_weight"], tensors["key_bias"],
                          tensors["value_weight"], tensors["value_bias"],
                          tensors["output_weight"], tensors["output_bias"],
                          num_heads=num_heads, source=label)


def head_oracle(source: str | Path | Mapping[str, Any], *, layer: int, head: int,
                num_heads: int | None = None, readout: Any = None,
                names: TensorNames = BERT_NAMES, field: Field = F64,
                **oracle_kwargs: Any) -> tuple[ValueOracle, HeadParameters]:
    """A value oracle on one head of a checkpoint, and that head's merged parameters.

    The learner gets the oracle only; the parameters are for comparison.
    ``oracle_kwargs`` go to :class:`~exactattn.oracle.ValueOracle` (``budget``,
    ``keep_transcript``).
    """
    target = load_layer(source, layer=layer, num_heads=num_heads, names=names).head(
        head, readout=readout, field=field)
    return target.oracle(**oracle_kwargs), target.merged()


def random_layer(d: int, num_heads: int, *, seed: int = 0, head_dim: int | None = None,
                 init_scale: float = 1.0) -> AttentionLayer:
    """A seeded layer with torch.nn.Linear's default initialisation U(-1/sqrt(d), 1/sqrt(d)).

    ``init_scale`` multiplies every weight and bias; ``head_dim`` defaults to
    d / num_heads. Used by the tests (written to a checkpoint) and the benchmark.

    >>> L = random_layer(32, 4)
    >>> L.d, L.head_dim, L.head(3).merged().W.shape
    (32, 8, (32, 32))
    """
    h = head_dim if head_dim is not None else d // num_heads
    inner = h * num_heads
    rng = np.random.default_rng([seed, d, num_heads, h])
    bound_in, bound_out = init_scale / math.sqrt(d), init_scale / math.sqrt(inner)

    def u(shape: tuple[int, ...], b: float) -> Array:
        return rng.uniform(-b, b, size=shape)

    return AttentionLayer(u((inner, d), bound_in), u((inner,), bound_in),
                          u((inner, d), bound_in), u((inner,), bound_in),
                          u((inner, d), bound_in), u((inner,), bound_in),
                          u((d, inner), bound_out), u((d,), bound_out),
                          num_heads=num_heads, source=f"random_layer(d={d}, seed={seed})")

