"""One-layer Transformers (paper.md §1, §3; label ``one_layer_reduction``).

Three hidden functions over a field (EXP exact by default; QQ for length-1
queries only; F64 vectorised), all with the last token x_N as the query
position and attention weights alpha = softmax(X W x_N):

* :class:`OneLayerTransformer`: TF(X) = w_o^T ReLU(alpha^T X A), A in F^{d x m},
  w_o in F^m (paper §4.1: A = V^T W_1^T; no biases, no residual, no layer
  norm, read-out at the last position only).
* :class:`ResidualOneLayerTransformer`: a residual connection around
  attention, y = x_N + sum_i alpha_i V x_i, TF(X) = w_o^T ReLU(W_1 y).
* :class:`SkipHeadAttention`: the single head with a skip term,
  f(X) = sum_i alpha_i (v . x_i) + u . x_N, which is what the antisymmetrised
  query TF(X) - TF(-X) of the residual Transformer is (docs/one_layer.md).

Exactness. Every pre-activation is a softmax average
h_k = sum_i alpha_i c_ik = (sum_i e^{s_i - s_max} c_ik) / (sum_i e^{s_i - s_max})
with rational scores s_i and rational values c_ik, so ReLU(h_k) needs the
sign of the numerator only (the denominator is positive). Over EXP that sign
is decided exactly by the field (:meth:`~exactattn.fields.Field.sign`:
Lindemann–Weierstrass, then ``arb`` at rising precision); the active units
are then summed as one rational combination of the weights, so TF(X) is one
exact EXP element. No float enters an exact decision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flint import fmpq, fmpq_mat

from ..errors import ShapeError
from ..fields import EXP, F64, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of
from .attention import f64_attention_weights, finite_answers, square_dimension

__all__ = ["OneLayerTransformer", "ResidualOneLayerTransformer", "SkipHeadAttention"]


def _width(A: Any, d: int, name: str, *, transposed: bool = False) -> int:
    """m for A of shape (d, m) (or (m, d) when ``transposed``), m >= 1, else ShapeError."""
    shape = shape_of(A, name)
    want = f"{'m x d' if transposed else 'd x m'} matrix with d = {d}"
    if len(shape) != 2:
        raise ShapeError(f"{name} has shape {shape}, expected a 2-D {want}")
    m, rows = (shape[0], shape[1]) if transposed else (shape[1], shape[0])
    if rows != d:
        raise ShapeError(f"{name} has shape {shape}, expected a {want} (d from W)")
    if m == 0:
        raise ShapeError(f"{name} has shape {shape}: the hidden width m must be at least 1")
    return int(m)


def _frozen(A: Array) -> Array:
    out = A.copy()
    out.flags.writeable = False
    return out


def _to_fmpq_mat(field: Field, A: Array) -> fmpq_mat:
    if A.ndim == 1:
        A = A.reshape(-1, 1)
    to_q = field.to_rational
    return fmpq_mat(A.shape[0], A.shape[1], [to_q(x) for x in A.flat])


class _SoftmaxReadout:
    """Shared evaluation: softmax weights of X W x_N, then a read-out of the
    per-token values C (N x m) given by the subclass.

    Subclasses set ``field``, ``d``, ``W`` (and the exact ``_Wq``) and
    implement ``_values_exact`` / ``_values_f64`` and ``_readout_*``.
    """

    field: Field
    d: int
    W: Array
    _Wq: fmpq_mat

    # -- attention ---------------------------------------------------------
    def _scores_exact(self, Xq: fmpq_mat) -> list[fmpq]:
        N = Xq.nrows()
        xN = fmpq_mat(self.d, 1, [Xq[N - 1, k] for k in range(self.d)])
        S = Xq * (self._Wq * xN)
        return [S[i, 0] for i in range(N)]

    def _weights(self, scores: list[fmpq]) -> list[Any]:
        """e^{s_i - s_max}: exact field elements, the largest equal to 1."""
        F = self.field
        top = max(scores)
        return [F.exp(F(s - top)) for s in scores]

    def _query_exact(self, X: Array) -> fmpq_mat:
        to_q = self.field.to_rational
        return fmpq_mat(X.shape[0], self.d, [to_q(x) for x in X.flat])

    def attention(self, X: Any) -> Array:
        """alpha(X, W) = softmax(X W x_N), as an array over the field.

        >>> from exactattn.fields import EXP
        >>> tf = OneLayerTransformer([[1, 0], [0, 1]], [[1], [0]], [1], field=EXP)
        >>> alpha = tf.attention([[0, 0], [1, 0]])
        >>> alpha[0] == 1 / (1 + EXP.exp(EXP(1))), alpha.sum() == 1
        (True, True)
        """
        Xc = as_query(self.field, X, self.d)
        if not self.field.exact:
            out: Array = finite_answers(f64_attention_weights(np.asarray(Xc)[None], self.W)[0],
                                        "alpha(X, W)")
            return out
        weights = self._weights(self._scores_exact(self._query_exact(Xc)))
        den = weights[0]
        for w in weights[1:]:
            den = den + w
        alpha = np.empty(len(weights), dtype=object)
        alpha[:] = [w / den for w in weights]
        return alpha

    # -- evaluation --------------------------------------------------------
    def _evaluate(self, X: Array) -> Any:
        if not self.field.exact:
            return finite_answers(self._f64_batch(X[None]))[0]
        Xq = self._query_exact(X)
        weights = self._weights(self._scores_exact(Xq))
        return self._readout_exact(Xq, weights)

    def _readout_exact(self, Xq: fmpq_mat, weights: list[Any]) -> Any:
        raise NotImplementedError  # pragma: no cover

    def _f64_batch(self, Xs: Array) -> Array:
        raise NotImplementedError  # pragma: no cover

    def _f64_alpha(self, Xs: Array) -> Array:
        return f64_attention_weights(Xs, self.W)

    def __call__(self, X: Any) -> Any:
        return self._evaluate(as_query(self.field, X, self.d))

    def batch(self, Xs: Any) -> Array:
        """Answers to many queries; over F64 one vectorised pass per equal-length batch."""
        checked = as_query_batch(self.field, Xs, self.d)
        if self.field is F64 and isinstance(checked, np.ndarray):
            return finite_answers(self._f64_batch(checked))
        out = np.empty(len(checked), dtype=self.field.dtype)
        for b, X in enumerate(checked):
            out[b] = self._evaluate(X)
        return out


def _relu_readout(F: Field, weights: list[Any], C: fmpq_mat, w_o: list[fmpq]) -> Any:
    """w_o^T ReLU(h) with h_k = sum_i weights_i C_ik / sum_i weights_i, exactly.

    sign(h_k) = sign(numerator_k) (the denominator is a sum of positive
    terms); the active units' numerators are then combined with rational
    coefficients r_i = sum_{k active} w_k C_ik, one EXP sum per query.
    """
    N, m = C.nrows(), C.ncols()
    active: list[int] = []
    for k in range(m):
        if w_o[k] == 0:
            continue  # an output weight 0 contributes nothing, whatever the sign
        num = weights[0] * F.from_rational(C[0, k])
        for i in range(1, N):
            num = num + weights[i] * F.from_rational(C[i, k])
        if F.sign(num) > 0:
            active.append(k)
    den = weights[0]
    for w in weights[1:]:
        den = den + w
    if not active:
        return F.zero()
    total = F.zero()
    for i in range(N):
        r = sum((w_o[k] * C[i, k] for k in active), fmpq(0))
        if r != 0:
            total = total + weights[i] * F.from_rational(r)
    return total / den


class OneLayerTransformer(_SoftmaxReadout):
    """TF(X) = w_o^T ReLU(alpha(X, W)^T X A): one attention head, then a ReLU FFN.

    Label ``one_layer_reduction`` (paper §4.1, v1 and v2; paper.md §1, §3).

    Parameters
    ----------
    W : d x d score matrix (merged K^T Q), scores s_i = x_i^T W x_N.
    A : d x m matrix (A = V^T W_1^T in the paper), m >= 1 hidden units.
    w_o : length-m output weights.
    field : the field the model is evaluated in (default :data:`EXP`).

    On one token alpha = 1, so TF([x^T]) = g(x) = w_o^T ReLU(A^T x), a
    bias-free two-layer ReLU network (:attr:`length_one_ffn`). Negating X
    leaves the scores unchanged, so TF(X) - TF(-X) = alpha^T X (A w_o)
    (:attr:`v` = A w_o; docs/one_layer.md).

    >>> from exactattn.fields import EXP
    >>> tf = OneLayerTransformer([[0, 1], [1, 0]], [[1, -1], [2, 0]], [1, 3], field=EXP)
    >>> tf([[1, 1]]), tf([[-1, -1]])          # g(x) = ReLU(x1 + 2 x2) + 3 ReLU(-x1)
    (3, 3)
    >>> X = EXP.array([[1, 0], [0, 1]])
    >>> tf(X) - tf(-X) == tf.attention(X) @ X @ tf.v
    True
    """

    def __init__(self, W: Any, A: Any, w_o: Any, *, field: Field = EXP) -> None:
        self.field = field
        self.d = square_dimension(W, "W")
        self.m = _width(A, self.d, "A")
        if (shape := shape_of(w_o, "w_o")) != (self.m,):
            raise ShapeError(f"w_o has shape {shape}, but A is {self.d} x {self.m}: "
                             f"expected a vector of length m = {self.m}")
        self.W = _frozen(as_matrix(field, W, (self.d, self.d), name="W"))
        self.A = _frozen(as_matrix(field, A, (self.d, self.m), name="A"))
        self.w_o = _frozen(as_vector(field, w_o, self.m, name="w_o"))
        if field.exact:
            self._Wq = _to_fmpq_mat(field, self.W)
            self._Aq = _to_fmpq_mat(field, self.A)
            self._wq = [field.to_rational(x) for x in self.w_o]

    def __repr__(self) -> str:
        return f"OneLayerTransformer(d={self.d}, m={self.m}, field={self.field.name})"

    @property
    def v(self) -> Array:
        """A w_o: the value vector of the antisymmetrised query TF(X) - TF(-X)."""
        out: Array = _frozen(self.A @ self.w_o)
        return out

    @property
    def length_one_ffn(self) -> tuple[Array, Array]:
        """(A, w_o): TF([x^T]) = w_o^T ReLU(A^T x)."""
        return self.A, self.w_o

    def _readout_exact(self, Xq: fmpq_mat, weights: list[Any]) -> Any:
        return _relu_readout(self.field, weights, Xq * self._Aq, self._wq)

    def _f64_batch(self, Xs: Array) -> Array:
        a = self._f64_alpha(Xs)
        z = np.einsum("bn,bnd->bd", a, Xs)
        out: Array = np.maximum(z @ self.A, 0.0) @ self.w_o
        return out


class ResidualOneLayerTransformer(_SoftmaxReadout):
    """TF(X) = w_o^T ReLU(W_1 y), y = x_N + sum_i alpha_i V x_i: a residual around attention.

    Label ``one_layer_reduction`` (the residual variant of paper §4.1;
    docs/one_layer.md).

    Parameters
    ----------
    W : d x d score matrix; V : d x d value matrix (read-out folded in);
    W1 : m x d first FFN layer; w_o : length-m output weights;
    field : default :data:`EXP`.

    Since sum_i alpha_i = 1, W_1 y = sum_i alpha_i W_1 (V x_i + x_N): one
    softmax average per hidden unit. On one token y = (I + V) x, so
    TF([x^T]) = w_o^T ReLU(A^T x) with A = (I + V)^T W_1^T
    (:attr:`length_one_ffn`), and TF(X) - TF(-X) = alpha^T X v + u . x_N
    with v = V^T W_1^T w_o, u = W_1^T w_o (:attr:`v`, :attr:`u`).

    >>> from exactattn.fields import EXP
    >>> tf = ResidualOneLayerTransformer([[1, 0], [0, 1]], [[0, 1], [1, 0]],
    ...                                  [[1, 0], [0, 1]], [1, 1], field=EXP)
    >>> tf([[1, -3]])                      # y = (I + V) x = (-2, -2): ReLU kills both
    0
    >>> X = EXP.array([[2, 1], [1, -1]])
    >>> tf(X) - tf(-X) == tf.attention(X) @ X @ tf.v + X[-1] @ tf.u
    True
    """

    def __init__(self, W: Any, V: Any, W1: Any, w_o: Any, *, field: Field = EXP) -> None:
        self.field = field
        self.d = square_dimension(W, "W")
        if (shape := shape_of(V, "V")) != (self.d, self.d):
            raise ShapeError(f"V has shape {shape}, but W is {self.d} x {self.d}: "
                             f"expected a d x d matrix with d = {self.d}")
        self.m = _width(W1, self.d, "W1", transposed=True)
        if (shape := shape_of(w_o, "w_o")) != (self.m,):
            raise ShapeError(f"w_o has shape {shape}, but W1 is {self.m} x {self.d}: "
                             f"expected a vector of length m = {self.m}")
        self.W = _frozen(as_matrix(field, W, (self.d, self.d), name="W"))
        self.V = _frozen(as_matrix(field, V, (self.d, self.d), name="V"))
        self.W1 = _frozen(as_matrix(field, W1, (self.m, self.d), name="W1"))
        self.w_o = _frozen(as_vector(field, w_o, self.m, name="w_o"))
        if field.exact:
            self._Wq = _to_fmpq_mat(field, self.W)
            self._VTq = _to_fmpq_mat(field, self.V).transpose()
            self._W1Tq = _to_fmpq_mat(field, self.W1).transpose()
            self._wq = [field.to_rational(x) for x in self.w_o]

    def __repr__(self) -> str:
        return f"ResidualOneLayerTransformer(d={self.d}, m={self.m}, field={self.field.name})"

    @property
    def u(self) -> Array:
        """W_1^T w_o: the coefficient of the skip term u . x_N of TF(X) - TF(-X)."""
        out: Array = _frozen(self.W1.T @ self.w_o)
        return out

    @property
    def v(self) -> Array:
        """V^T W_1^T w_o: the value vector of the attention term of TF(X) - TF(-X)."""
        out: Array = _frozen(self.V.T @ (self.W1.T @ self.w_o))
        return out

    @property
    def length_one_ffn(self) -> tuple[Array, Array]:
        """(A, w_o) with A = (I + V)^T W_1^T: TF([x^T]) = w_o^T ReLU(A^T x)."""
        A = (self.field.eye(self.d) + self.V).T @ self.W1.T
        return _frozen(A), self.w_o

    def _readout_exact(self, Xq: fmpq_mat, weights: list[Any]) -> Any:
        N = Xq.nrows()
        # rows V x_i + x_N, then times W_1^T: C_ik = (W_1 (V x_i + x_N))_k
        last = fmpq_mat(N, self.d, [Xq[N - 1, k] for _ in range(N) for k in range(self.d)])
        C = (Xq * self._VTq + last) * self._W1Tq
        return _relu_readout(self.field, weights, C, self._wq)

    def _f64_batch(self, Xs: Array) -> Array:
        a = self._f64_alpha(Xs)
        y = Xs[:, -1, :] + np.einsum("bn,bnd->bd", a, Xs) @ self.V.T
        out: Array = np.maximum(y @ self.W1.T, 0.0) @ self.w_o
        return out


class SkipHeadAttention(_SoftmaxReadout):
    """f(X) = sum_i alpha_i (v . x_i) + u . x_N: a single head plus a skip term.

    Label ``one_layer_reduction``: the antisymmetrised query of
    :class:`ResidualOneLayerTransformer` is exactly this class (with
    v = V^T W_1^T w_o, u = W_1^T w_o); learned by
    :func:`exactattn.learners.skip_head.learn_skip_head`. With u = 0 it is
    :class:`~exactattn.models.SingleHeadAttention`.

    >>> from exactattn.fields import EXP
    >>> f = SkipHeadAttention([[1, 0], [0, 1]], [2, 0], [0, 5], field=EXP)
    >>> f([[1, 1]])                        # one token: (v + u) . x
    7
    >>> f([[1, 0], [0, 0]])                # query token 0: alpha = (1/2, 1/2), f = v_1 / 2
    1
    """

    def __init__(self, W: Any, v: Any, u: Any, *, field: Field = EXP) -> None:
        self.field = field
        self.d = square_dimension(W, "W")
        for name, vec in (("v", v), ("u", u)):
            if (shape := shape_of(vec, name)) != (self.d,):
                raise ShapeError(f"{name} has shape {shape}, but W is {self.d} x "
                                 f"{self.d}: expected a vector of length d = {self.d}")
        self.W = _frozen(as_matrix(field, W, (self.d, self.d), name="W"))
        self.v = _frozen(as_vector(field, v, self.d, name="v"))
        self.u = _frozen(as_vector(field, u, self.d, name="u"))
        if field.exact:
            self._Wq = _to_fmpq_mat(field, self.W)
            self._vq = _to_fmpq_mat(field, self.v)
            self._uq = [field.to_rational(x) for x in self.u]

    def __repr__(self) -> str:
        return f"SkipHeadAttention(d={self.d}, field={self.field.name})"

    def _readout_exact(self, Xq: fmpq_mat, weights: list[Any]) -> Any:
        F = self.field
        N = Xq.nrows()
        c = Xq * self._vq
        num = weights[0] * F.from_rational(c[0, 0])
        den = weights[0]
        for i in range(1, N):
            num = num + weights[i] * F.from_rational(c[i, 0])
            den = den + weights[i]
        skip = sum((Xq[N - 1, k] * self._uq[k] for k in range(self.d)), fmpq(0))
        return num / den + F.from_rational(skip)

    def _f64_batch(self, Xs: Array) -> Array:
        a = self._f64_alpha(Xs)
        out: Array = np.einsum("bn,bn->b", a, Xs @ self.v) + Xs[:, -1, :] @ self.u
        return out
