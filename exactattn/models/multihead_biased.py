"""Multi-head attention with biases, as a real attention layer computes it.

    f(X) = beta + sum_h softmax(X (W_h x_N + c_h))^T X v_h

with merged parameters W_h in F^{d x d}, c_h, v_h in F^d per head and one
common constant beta; the last token x_N is the query position, no mask, no
positional encoding, no temperature. Each head is a
:class:`~exactattn.models.BiasedSingleHeadAttention` without its constant;
the heads of a BERT-style layer read out by a vector rho (label
``multihead_canonical``, biased variant) have

    W_h = W_k^hT W_q^h / sqrt(r),   c_h = W_k^hT b_q^h / sqrt(r),
    v_h = W_v^hT W_o^hT rho,        beta = rho^T (W_o b_v + b_o),

rank(W_h) <= r (the head dimension) and c_h in the column space of W_h
(see :mod:`exactattn.checkpoints`). Only the canonical form is identifiable:
heads with equal (W_h, c_h) merge (their v_h add up), heads whose merged v
is 0 drop out, and the remaining heads are sorted (:func:`canonical_biased`).

Weights may be given as factors W_h = L_h R_h^T (L_h, R_h of shape d x r):
then a float64 query costs O(N d r) per head, as in the layer itself,
and no d x d matrix is formed (:meth:`BiasedMultiHeadAttention.from_factors`).
Over an exact field (EXP, QQ) the product L_h R_h^T is formed exactly and
every head is evaluated exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..errors import InvalidEntryError, ShapeError
from ..fields import EXP, F64, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of
from .attention import finite_answers
from .biased import BiasedSingleHeadAttention

__all__ = ["BiasedMultiHeadAttention", "canonical_biased", "random_biased_multihead"]

#: float64 batches are evaluated in chunks of at most this many (query x token x head) scores
_CHUNK_SCORES = 1 << 22


class BiasedMultiHeadAttention:
    """f(X) = beta + sum_h softmax(X (W_h x_N + c_h))^T X v_h over a field.

    Parameters
    ----------
    heads : sequence of triples (W_h, c_h, v_h): W_h a d x d matrix, c_h and
        v_h vectors of length d. May be empty (then ``d`` is required).
    beta : the common constant (the layer's output bias read out by rho).
    field : the field the model is evaluated over (default :data:`EXP`).
    d : the token dimension; required only when ``heads`` is empty.

    >>> from exactattn.fields import EXP
    >>> f = BiasedMultiHeadAttention([([[0, 1], [1, 0]], [1, 0], [1, 0]),
    ...                               ([[2, 0], [0, 0]], [0, 0], [0, 1])], 5)
    >>> f.H, f.d, f([[3, 4]])            # one token: beta + sum_h v_h . x
    (2, 2, 12)
    >>> # [e_1; 0]: head 1 scores (c_1 . e_1, 0) = (1, 0), head 2 (0, 0): values (1, 0) and (0, 0)
    >>> f([[1, 0], [0, 0]]) == EXP.sigmoid(EXP(1)) + 5
    True
    """

    def __init__(self, heads: Iterable[tuple[Any, Any, Any]], beta: Any, *,
                 field: Field = EXP, d: int | None = None) -> None:
        self.field = field
        if not isinstance(heads, Iterable) or isinstance(heads, str | bytes | dict):
            raise InvalidEntryError(f"heads must be a sequence of triples (W_h, c_h, v_h), got "
                                    f"{type(heads).__name__}")
        triples = list(heads)
        Ws, cs, vs = [], [], []
        for h, triple in enumerate(triples):
            if not isinstance(triple, tuple | list) or len(triple) != 3:
                raise InvalidEntryError(f"head {h} is {triple!r:.60}, expected a triple "
                                        "(W_h, c_h, v_h)")
            W, c, v = triple
            shape = shape_of(W, f"W_{h}")
            if len(shape) != 2 or shape[0] != shape[1] or shape[0] < 1:
                raise ShapeError(f"W_{h} has shape {shape}, expected a square d x d matrix")
            if d is not None and shape[0] != d:
                raise ShapeError(f"W_{h} is {shape[0]} x {shape[1]}, expected d = {d}")
            d = shape[0]
            for name, vec in ((f"c_{h}", c), (f"v_{h}", v)):
                if (s := shape_of(vec, name)) != (d,):
                    raise ShapeError(f"{name} has shape {s}, but W_{h} is {d} x {d}: expected "
                                     f"a vector of length d = {d}")
            Ws.append(as_matrix(field, W, (d, d), name=f"W_{h}"))
            cs.append(as_vector(field, c, d, name=f"c_{h}"))
            vs.append(as_vector(field, v, d, name=f"v_{h}"))
        if d is None:
            raise ShapeError("a model with no heads needs d= (the token dimension)")
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ShapeError(f"d must be a positive integer, got {d!r}")
        self.d = d
        self._set(Ws, cs, vs, beta, factors=None)

    def _set(self, Ws: list[Array] | None, cs: list[Array], vs: list[Array], beta: Any,
             factors: tuple[Array, Array] | None) -> None:
        F = self.field
        if beta is None:
            raise InvalidEntryError("beta is None, expected a scalar")
        if (shape := shape_of(beta, "beta")) != ():
            raise ShapeError(f"beta has shape {shape}, expected a scalar")
        try:
            self.beta = F(beta)
        except InvalidEntryError as exc:
            raise InvalidEntryError(f"beta: {exc}") from None
        self._factors = factors
        if Ws is None:           # factors over F64: W_h formed only on request
            assert factors is not None
            self._Ws: list[Array] | None = None
        else:
            self._Ws = [W.copy() for W in Ws]
        self._cs = [c.copy() for c in cs]
        self._vs = [v.copy() for v in vs]
        for A in [*(self._Ws or []), *self._cs, *self._vs]:
            A.flags.writeable = False
        if F.exact:
            zero = F.zero()
            assert self._Ws is not None
            self._exact_heads = [BiasedSingleHeadAttention(W, c, v, zero, field=F)
                                 for W, c, v in zip(self._Ws, self._cs, self._vs, strict=True)]
        else:
            self._C = np.stack(self._cs) if self._cs else np.zeros((0, self.d))
            self._V = np.stack(self._vs) if self._vs else np.zeros((0, self.d))

    @classmethod
    def from_factors(cls, L: Any, R: Any, c: Any, v: Any, beta: Any, *,
                     field: Field = F64) -> BiasedMultiHeadAttention:
        """Heads with W_h = L_h R_h^T: ``L``, ``R`` of shape (H, d, r), ``c``, ``v`` (H, d).

        Over F64 a query costs O(N d r) per head (no d x d matrix is formed);
        over an exact field W_h is formed exactly.

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> L, R = rng.standard_normal((2, 2, 3, 1))
        >>> c, v = rng.standard_normal((2, 2, 3))
        >>> f = BiasedMultiHeadAttention.from_factors(L, R, c, v, 0.5)
        >>> g = BiasedMultiHeadAttention(list(zip(f.Ws, f.cs, f.vs)), 0.5, field=F64)
        >>> X = rng.standard_normal((4, 3))
        >>> bool(abs(f(X) - g(X)) <= 1e-14 * (1 + abs(g(X))))
        True
        """
        La = np.asarray(L, dtype=object if field.exact else np.float64)
        Ra = np.asarray(R, dtype=object if field.exact else np.float64)
        if La.ndim != 3 or Ra.shape != La.shape or La.shape[1] < 1 or La.shape[2] < 1:
            raise ShapeError(f"L and R must both have shape (H, d, r), got {La.shape} and "
                             f"{Ra.shape}")
        H, d, r = La.shape
        ca = np.asarray(c, dtype=object if field.exact else np.float64)
        va = np.asarray(v, dtype=object if field.exact else np.float64)
        for name, A in (("c", ca), ("v", va)):
            if A.shape != (H, d):
                raise ShapeError(f"{name} has shape {A.shape}, expected (H, d) = ({H}, {d})")
        if field.exact:
            Ws = [as_matrix(field, La[h], (d, r), name=f"L_{h}")
                  @ as_matrix(field, Ra[h], (d, r), name=f"R_{h}").T for h in range(H)]
            return cls([(Ws[h], ca[h], va[h]) for h in range(H)], beta, field=field, d=d)
        model = cls.__new__(cls)
        model.field, model.d = field, int(d)
        Lc = as_matrix(field, La.reshape(H * d, r), (H * d, r), name="L").reshape(H, d, r)
        Rc = as_matrix(field, Ra.reshape(H * d, r), (H * d, r), name="R").reshape(H, d, r)
        model._set(None, [as_vector(field, ca[h], d, name=f"c_{h}") for h in range(H)],
                   [as_vector(field, va[h], d, name=f"v_{h}") for h in range(H)], beta,
                   factors=(Lc, Rc))
        return model

    @property
    def H(self) -> int:
        """The number of heads (not necessarily canonical)."""
        return len(self._vs)

    @property
    def Ws(self) -> list[Array]:
        """The merged score matrices W_h (formed from the factors when given as factors)."""
        if self._Ws is None:
            assert self._factors is not None
            L, R = self._factors
            return [L[h] @ R[h].T for h in range(self.H)]
        return list(self._Ws)

    @property
    def cs(self) -> list[Array]:
        return list(self._cs)

    @property
    def vs(self) -> list[Array]:
        return list(self._vs)

    @property
    def params(self) -> dict[str, Any]:
        """``W`` (H, d, d), ``c`` (H, d), ``v`` (H, d), ``beta``: the recovery's layout."""
        d = self.d
        dtype = object if self.field.exact else np.float64
        W = np.stack(self.Ws) if self.H else np.zeros((0, d, d), dtype=dtype)
        c = np.stack(self._cs) if self.H else np.zeros((0, d), dtype=dtype)
        v = np.stack(self._vs) if self.H else np.zeros((0, d), dtype=dtype)
        return {"W": W, "c": c, "v": v, "beta": self.beta}

    def __repr__(self) -> str:
        kind = ", factors" if self._factors is not None else ""
        return f"BiasedMultiHeadAttention(H={self.H}, d={self.d}{kind}, field={self.field.name})"

    # -- evaluation ----------------------------------------------------------------
    def _f64(self, Xs: Array) -> Array:
        """f on a (B, N, d) float64 batch, in chunks (vectorised over queries and heads)."""
        B, N, _ = Xs.shape
        out = np.empty(B)
        step = max(1, _CHUNK_SCORES // max(1, N * max(1, self.H)))
        for lo in range(0, B, step):
            out[lo:lo + step] = self._f64_chunk(Xs[lo:lo + step])
        return finite_answers(out)

    def _f64_chunk(self, Xs: Array) -> Array:
        if self.H == 0:
            return np.full(Xs.shape[0], float(self.beta))
        xN = Xs[:, -1, :]                                           # (B, d)
        if self._factors is not None:
            L, R = self._factors
            q = np.einsum("bd,hdr->bhr", xN, R)                     # R_h^T x_N
            keys = np.einsum("bnd,hdr->bhnr", Xs, L)                # L_h^T x_i
            s = np.einsum("bhnr,bhr->bhn", keys, q)
        else:
            assert self._Ws is not None
            u = np.einsum("hde,be->bhd", np.stack(self._Ws), xN)    # W_h x_N
            s = np.einsum("bnd,bhd->bhn", Xs, u)
        s = s + np.einsum("bnd,hd->bhn", Xs, self._C)               # + c_h . x_i
        s -= s.max(axis=2, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=2, keepdims=True)
        vals = np.einsum("bnd,hd->bhn", Xs, self._V)                # v_h . x_i
        out: Array = np.einsum("bhn,bhn->b", a, vals) + float(self.beta)
        return out

    def _exact(self, X: Array) -> Any:
        total = self.beta
        for head in self._exact_heads:
            total = total + head._evaluate(X)
        return total

    def __call__(self, X: Any) -> Any:
        Xc = as_query(self.field, X, self.d)
        if self.field.exact:
            return self._exact(Xc)
        return np.float64(self._f64(Xc[None])[0])

    def batch(self, Xs: Any) -> Array:
        """Answers to many queries; over F64 one vectorised pass per (B, N, d) array."""
        return _batch_answers(self.field, self.d, Xs, self._f64, self._exact)


def _batch_answers(field: Field, d: int, Xs: Any, f64: Callable[[Array], Array],
                   exact: Callable[[Array], Any]) -> Array:
    """A model's answers to a batch of queries (checked by ``as_query_batch``): over an
    inexact field ``f64`` on the (B, N, d) array in one pass (else once per query, as a
    (1, N, d) array), over an exact field ``exact`` per query, in an object array.
    Also :class:`exactattn.checkpoints.FactoredHead`'s."""
    checked = as_query_batch(field, Xs, d)
    if not field.exact:
        if isinstance(checked, np.ndarray):
            return f64(checked)
        return np.array([f64(X[None])[0] for X in checked], dtype=np.float64)
    out = np.empty(len(checked), dtype=object)
    for b, X in enumerate(checked):
        out[b] = exact(X)
    return out


def canonical_biased(model: BiasedMultiHeadAttention) -> BiasedMultiHeadAttention:
    """The canonical form over an exact field: heads with equal (W_h, c_h) merged, zero v
    dropped, sorted by (W_h, c_h) row-major (decided with ==).

    >>> f = BiasedMultiHeadAttention([([[1]], [0], [2]), ([[3]], [1], [1]), ([[1]], [0], [-2])], 4)
    >>> g = canonical_biased(f)
    >>> g.H, g.Ws[0].tolist(), g.vs[0].tolist(), g.beta
    (1, [[3]], [1], 4)
    """
    F = model.field
    if not F.exact:
        raise InvalidEntryError("canonical_biased decides equality with ==: pass a model over "
                                "an exact field (EXP or QQ)")
    groups: dict[tuple[Any, ...], Array] = {}
    keep: dict[tuple[Any, ...], tuple[Array, Array]] = {}
    for W, c, v in zip(model.Ws, model.cs, model.vs, strict=True):
        key = tuple(F.to_rational(x) for x in (*W.flat, *c))
        if key in groups:
            groups[key] = groups[key] + v
        else:
            groups[key], keep[key] = v.copy(), (W, c)
    heads = [(keep[k][0], keep[k][1], groups[k]) for k in sorted(groups)
             if any(F.sign(x) != 0 for x in groups[k])]
    return BiasedMultiHeadAttention(heads, model.beta, field=F, d=model.d)


def random_biased_multihead(H: int, d: int, *, rank: int | None = None, seed: int = 0,
                            c_in_column_space: bool = True, scale: float = 1.0
                            ) -> BiasedMultiHeadAttention:
    """A seeded float64 instance with factored heads, as a real layer has them.

    W_h = L_h R_h^T with L_h, R_h entries N(0, scale / sqrt(d r)) (so W_h x has
    entries of order scale ||x|| / sqrt(d)), c_h = L_h g_h (in the column space
    of W_h) or, with ``c_in_column_space=False``, an unconstrained vector of the
    same size; v_h entries N(0, 1); beta N(0, 1). ``rank`` defaults to d / H.

    >>> f = random_biased_multihead(2, 4, seed=0)
    >>> f.H, f.d, f._factors[0].shape
    (2, 4, (2, 4, 2))
    """
    r = rank if rank is not None else max(1, d // H)
    rng = np.random.default_rng([seed, H, d, r, 15])
    sd = np.sqrt(scale / np.sqrt(d * r))
    L = rng.standard_normal((H, d, r)) * sd
    R = rng.standard_normal((H, d, r)) * sd
    if c_in_column_space:
        c = np.einsum("hdr,hr->hd", L, rng.standard_normal((H, r)) * sd)
    else:
        c = rng.standard_normal((H, d)) * (sd * sd * np.sqrt(r))
    v = rng.standard_normal((H, d))
    return BiasedMultiHeadAttention.from_factors(L, R, c, v, float(rng.standard_normal()))
