"""A whole attention layer of a checkpoint as one value oracle (issue 15 §3).

:mod:`exactattn.checkpoints` turns one head into an oracle. Here the heads
of a layer (all of them, or a chosen subset) are summed as the layer sums
them, and read out at the last position by a vector rho, before the
residual and the LayerNorm:

    f(X) = rho^T (W_o concat_h(sum_i alpha_ih (W_v^h x_i + b_v^h)) + b_o),
    alpha_h = softmax_i((W_q^h x_N + b_q^h) . (W_k^h x_i + b_k^h) / sqrt(r)).

Evaluated from the factors, vectorised over queries and heads: O(N d r)
per head and query, no d x d matrix. With a subset S of the heads the
oracle is the layer whose other heads' value projections are zero. Its
merged form is the biased multi-head model
(:class:`~exactattn.models.BiasedMultiHeadAttention`) with the heads'
(W_h, c_h, v_h) of :meth:`~exactattn.checkpoints.FactoredHead.merged` and
beta = rho^T (sum_{h in S} W_o^h b_v^h + b_o); :func:`layer_merged` returns
it, to compare with a recovery by
:func:`~exactattn.learners.learn_multihead_biased`.

>>> from exactattn.checkpoints import random_layer
>>> L = random_layer(8, 4, seed=0)
>>> model = LayerReadout(L, heads=(0, 2))
>>> X = np.random.default_rng(1).standard_normal((3, 5, 8))
>>> merged = layer_merged(L, heads=(0, 2))
>>> bool(np.abs(model.batch(X) - merged.batch(X)).max() < 1e-13)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checkpoints import AttentionLayer
from .errors import InvalidEntryError, ShapeError
from .fields import F64, Array
from .models.attention import finite_answers
from .models.multihead_biased import BiasedMultiHeadAttention
from .oracle import ValueOracle
from .queries import as_query, as_query_batch

__all__ = ["LayerReadout", "layer_merged", "layer_oracle"]

#: float64 batches are evaluated in chunks of at most this many (query x token x head x r) entries
_CHUNK = 1 << 23


def _heads(layer: AttentionLayer, heads: Sequence[int] | None) -> tuple[int, ...]:
    if heads is None:
        return tuple(range(layer.num_heads))
    out = []
    for j in heads:
        if isinstance(j, bool) or not isinstance(j, int | np.integer) or \
                not 0 <= j < layer.num_heads:
            raise InvalidEntryError(f"heads: {j!r} is not a head index in [0, "
                                    f"{layer.num_heads})")
        out.append(int(j))
    if not out or len(set(out)) != len(out):
        raise InvalidEntryError(f"heads must be distinct head indices, at least one; got "
                                f"{list(heads)!r}")
    return tuple(out)


def _readout(layer: AttentionLayer, readout: Any) -> Array:
    if readout is None:
        rho = np.zeros(layer.d)
        rho[0] = 1.0
        return rho
    rho = np.array(readout, dtype=np.float64)
    if rho.shape != (layer.d,):
        raise ShapeError(f"readout has shape {rho.shape}, expected ({layer.d},)")
    F64.check_array(rho, name="readout")
    return rho


class LayerReadout:
    """The layer's attention output at the last position, read out by rho (F64).

    Parameters
    ----------
    layer : an :class:`~exactattn.checkpoints.AttentionLayer`.
    heads : the heads summed (default all).
    readout : rho (default e_1).
    """

    field = F64

    def __init__(self, layer: AttentionLayer, *, heads: Sequence[int] | None = None,
                 readout: Any = None) -> None:
        self.layer = layer
        self.heads = _heads(layer, heads)
        self.readout = _readout(layer, readout)
        self.readout.flags.writeable = False
        self.d, r = layer.d, layer.head_dim
        self.head_dim = r
        rows = np.concatenate([np.arange(j * r, (j + 1) * r) for j in self.heads])
        k = len(self.heads)
        self._Wq = layer.Wq[rows].reshape(k, r, self.d)
        self._Wk = layer.Wk[rows].reshape(k, r, self.d)
        self._Wv = layer.Wv[rows].reshape(k, r, self.d)
        self._bq = layer.bq[rows].reshape(k, r)
        self._bk = layer.bk[rows].reshape(k, r)
        self._bv = layer.bv[rows].reshape(k, r)
        self._u = (layer.Wo[:, rows].T @ self.readout).reshape(k, r)   # W_o^hT rho
        self._const = float(self.readout @ layer.bo)
        self._scale = 1.0 / math.sqrt(r)

    def __repr__(self) -> str:
        return (f"LayerReadout({self.layer.source}, heads={list(self.heads)}, d={self.d}, "
                f"head_dim={self.head_dim})")

    def _f64(self, Xs: Array) -> Array:
        B, N, _ = Xs.shape
        out = np.empty(B)
        step = max(1, _CHUNK // max(1, N * len(self.heads) * self.head_dim))
        for lo in range(0, B, step):
            X = Xs[lo:lo + step]
            q = np.einsum("bd,hrd->bhr", X[:, -1, :], self._Wq) + self._bq
            K = np.einsum("bnd,hrd->bhnr", X, self._Wk) + self._bk[None, :, None, :]
            s = np.einsum("bhnr,bhr->bhn", K, q) * self._scale
            s -= s.max(axis=2, keepdims=True)
            a = np.exp(s)
            a /= a.sum(axis=2, keepdims=True)
            vals = np.einsum("bnd,hrd->bhnr", X, self._Wv) + self._bv[None, :, None, :]
            heads = np.einsum("bhn,bhnr->bhr", a, vals)
            out[lo:lo + step] = np.einsum("bhr,hr->b", heads, self._u) + self._const
        return finite_answers(out)

    def __call__(self, X: Any) -> Any:
        return np.float64(self._f64(as_query(F64, X, self.d)[None])[0])

    def batch(self, Xs: Any) -> Array:
        """Answers to a batch; one vectorised pass per (B, N, d) array."""
        checked = as_query_batch(F64, Xs, self.d)
        if isinstance(checked, np.ndarray):
            return self._f64(checked)
        return np.array([self._f64(X[None])[0] for X in checked], dtype=np.float64)


def layer_merged(layer: AttentionLayer, *, heads: Sequence[int] | None = None,
                 readout: Any = None) -> BiasedMultiHeadAttention:
    """The merged biased multi-head model of the chosen heads, in factored form.

    W_h = L_h R_h^T with L_h = W_k^hT / sqrt(r), R_h = W_q^hT; c_h = L_h b_q^h;
    v_h = W_v^hT W_o^hT rho; beta = rho^T (sum_h W_o^h b_v^h + b_o). Its ``Ws``,
    ``cs``, ``vs``, ``beta`` are what a recovery is compared with.
    """
    sel = _heads(layer, heads)
    rho = _readout(layer, readout)
    r = layer.head_dim
    Ls, Rs, cs, vs = [], [], [], []
    beta = float(rho @ layer.bo)
    for j in sel:
        s = slice(j * r, (j + 1) * r)
        L = layer.Wk[s].T / math.sqrt(r)
        Ls.append(L)
        Rs.append(layer.Wq[s].T)
        cs.append(L @ layer.bq[s])
        u = layer.Wo[:, s].T @ rho
        vs.append(layer.Wv[s].T @ u)
        beta += float(u @ layer.bv[s])
    return BiasedMultiHeadAttention.from_factors(np.stack(Ls), np.stack(Rs), np.stack(cs),
                                                 np.stack(vs), beta)


def layer_oracle(layer: AttentionLayer, *, heads: Sequence[int] | None = None,
                 readout: Any = None, **oracle_kwargs: Any
                 ) -> tuple[ValueOracle, BiasedMultiHeadAttention]:
    """A value oracle on the layer's read-out and the merged model, for comparison.

    The learner gets the oracle only. ``oracle_kwargs`` go to
    :class:`~exactattn.oracle.ValueOracle`.
    """
    model = LayerReadout(layer, heads=heads, readout=readout)
    oracle_kwargs.setdefault("name", repr(model))
    return ValueOracle(model, **oracle_kwargs), layer_merged(layer, heads=heads,
                                                             readout=readout)
