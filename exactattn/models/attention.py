"""Single-head softmax attention, the regressor of paper.md §1.

    f_{W,v}(X) = sum_i alpha_i (v . x_i),   alpha = softmax(X W x_N),

with merged parameters W in F^{d x d}, v in F^d, the last token x_N as the
query position, no mask, no positional encoding, no temperature.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from flint import fmpq, fmpq_mat

from ..errors import InvalidEntryError, NotRepresentableError, ShapeError
from ..fields import EXP, F64, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of

__all__ = ["SingleHeadAttention", "softmax_average", "f64_attention_weights", "finite_answers"]

T = TypeVar("T")


def finite_answers(out: T, what: str = "f(X)") -> T:
    """``out`` (float64 answers), or NotRepresentableError where one is inf or nan.

    A float64 model whose scores or values leave the float64 range computes
    inf - inf = nan; that is refused here, never returned as an answer.

    >>> finite_answers(np.array([1.0, np.inf]))
    Traceback (most recent call last):
    ...
    exactattn.errors.NotRepresentableError: f(X) over F64 is inf at query 1: ...
    """
    flat = np.ravel(np.asarray(out, dtype=np.float64))
    bad = ~np.isfinite(flat)
    if np.any(bad):
        b = int(np.flatnonzero(bad)[0])
        raise NotRepresentableError(
            f"{what} over F64 is {flat[b]} at query {b}: a score or a value is beyond "
            "the float64 range (~1.8e308); scale the parameters or the queries down, or "
            "evaluate over an exact field (EXP)")
    return out


def softmax_average(field: Field, scores: list[Any], values: list[Any]) -> Any:
    """sum_i softmax(scores)_i values_i over an exact field, written once.

    Scores are shifted by their maximum (a no-op on the value, and it keeps
    every exponent <= 0). Over EXP with rational scores and values the
    quotient is built at once by :meth:`ExponentialField.softmax_average
    <exactattn.fields.exponential.ExponentialField.softmax_average>` (speed
    only: the same element).
    """
    if field is EXP and all(type(x) is fmpq for x in (*scores, *values)):
        return EXP.softmax_average(scores, values)
    top = max(scores)
    weights = [field.exp(field(s - top)) for s in scores]
    num = weights[0] * field(values[0])
    den = weights[0]
    for w, c in zip(weights[1:], values[1:], strict=True):
        num = num + w * field(c)
        den = den + w
    return num / den


def rationals(field: Field, X: Array) -> list[fmpq]:
    """The entries of an array over an exact field as fmpq (flat order), in bulk over EXP."""
    if field is EXP:
        return EXP.to_rationals(X)
    return [field.to_rational(x) for x in X.flat]


class ExactScores:
    """Scores s_i = x_i^T (W x_N + c) and values v . x_i of queries over an exact field.

    Built once per model from its parameters (as fmpq). A query whose tokens
    are sparse (the learners' e_j and u_l + e_j) is evaluated over its nonzero
    entries only: with J the nonzeros of x_N and A the nonzeros of the other
    tokens, (W x_N + c)_a is formed for a in A alone, |A| |J| products instead
    of d^2 (d = 128: about 6 instead of 16,384). A dense query goes through
    one fmpq_mat product (FLINT), which is faster there. Both are exact: the
    same rationals either way.
    """

    #: sparse evaluation when (nonzeros of the tokens) x (nonzeros of x_N) x this <= d^2
    DENSE_FACTOR = 8

    def __init__(self, field: Field, W: Array, v: Array, c: Array | None = None) -> None:
        d = W.shape[0]
        self.field, self.d = field, d
        flat = rationals(field, W)
        self.W_rows = [flat[a * d:(a + 1) * d] for a in range(d)]
        self.v = rationals(field, v)
        self.c = None if c is None else rationals(field, c)
        self.Wq = fmpq_mat(d, d, flat)
        self.vq = fmpq_mat(d, 1, self.v)
        self.cq = None if self.c is None else fmpq_mat(d, 1, self.c)

    def __call__(self, X: Array) -> tuple[list[fmpq], list[fmpq]]:
        """(scores, values) of a validated N x d query."""
        N, d = X.shape
        q = rationals(self.field, X)
        nz = [[(a, x) for a, x in enumerate(q[i * d:(i + 1) * d]) if x] for i in range(N)]
        J = nz[N - 1]
        rows = {a for token in nz for a, _ in token}
        if len(rows) * len(J) * self.DENSE_FACTOR > d * d:
            Xq = fmpq_mat(N, d, q)
            xN = fmpq_mat(d, 1, q[(N - 1) * d:])
            w = self.Wq * xN if self.cq is None else self.Wq * xN + self.cq
            S, C = Xq * w, Xq * self.vq
            return [S[i, 0] for i in range(N)], [C[i, 0] for i in range(N)]
        zero = fmpq(0)
        w_at: dict[int, fmpq] = {}
        for a in rows:
            Wa = self.W_rows[a]
            t = sum((Wa[k] * x for k, x in J), zero if self.c is None else self.c[a])
            w_at[a] = t
        scores = [sum((x * w_at[a] for a, x in token), zero) for token in nz]
        values = [sum((x * self.v[a] for a, x in token), zero) for token in nz]
        return scores, values


def square_dimension(W: Any, name: str) -> int:
    """d for a d x d matrix, d >= 1, or a ShapeError naming ``name``."""
    if W is None:
        raise InvalidEntryError(f"{name} is None, expected a d x d matrix")
    shape = shape_of(W, name)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ShapeError(f"{name} has shape {shape}, expected a square d x d matrix")
    if shape[0] == 0:
        raise ShapeError(f"{name} is empty: the token dimension d must be at least 1")
    return int(shape[0])


class SingleHeadAttention:
    """f(X) = softmax(X W x_N)^T X v over a field.

    Parameters
    ----------
    W : d x d matrix (merged K^T Q); v : length-d vector (merged V^T w_o).
    field : the field the model is evaluated over (default :data:`EXP`).

    Label ``single_head_exact`` (paper Thm 4.1) learns (W, v) from queries.

    >>> from exactattn.fields import EXP
    >>> f = SingleHeadAttention([[0, 1], [2, 0]], [1, 3], field=EXP)
    >>> f([[1, 0]])                       # one token: alpha = 1, the answer is v . x
    1
    >>> f([[1, 0], [0, 1]]) == (EXP.exp(EXP(1)) * 1 + 3) / (EXP.exp(EXP(1)) + 1)
    True
    """

    def __init__(self, W: Any, v: Any, *, field: Field = EXP) -> None:
        self.field = field
        self.d = square_dimension(W, "W")
        if v is None:
            raise InvalidEntryError(f"v is None, expected a vector of length d = {self.d}")
        if (shape := shape_of(v, "v")) != (self.d,):
            raise ShapeError(f"v has shape {shape}, but W is {self.d} x {self.d}: "
                             f"expected a vector of length d = {self.d}")
        # copies: the model freezes its parameters, never the caller's arrays
        self.W = as_matrix(field, W, (self.d, self.d), name="W").copy()
        self.v = as_vector(field, v, self.d, name="v").copy()
        self.W.flags.writeable = False
        self.v.flags.writeable = False
        if field.exact:
            self._parts = ExactScores(field, self.W, self.v)

    def __repr__(self) -> str:
        return f"SingleHeadAttention(d={self.d}, field={self.field.name})"

    def _exact_parts(self, X: Array) -> tuple[list[fmpq], list[fmpq]]:
        """Scores s_i and values c_i = v . x_i of a validated query (exact rationals)."""
        return self._parts(X)

    def _evaluate(self, X: Array) -> Any:
        """f(X) for a validated query."""
        if not self.field.exact:
            return _f64_batch(self.W, self.v, X[None])[0]
        return softmax_average(self.field, *self._exact_parts(X))

    def __call__(self, X: Any) -> Any:
        return self._evaluate(as_query(self.field, X, self.d))

    def batch(self, Xs: Any) -> Array:
        """Answers to many queries; over F64 one vectorised pass per query length."""
        checked = as_query_batch(self.field, Xs, self.d)
        if self.field is F64:
            return _f64_batch(self.W, self.v, checked)
        out = np.empty(len(checked), dtype=object)
        for b, X in enumerate(checked):
            out[b] = self._evaluate(X)
        return out


def f64_attention_weights(Xs: Array, W: Array, c: Array | None = None) -> Array:
    """softmax(X W x_N (+ X c)) for every query of a (B, N, d) float64 batch.

    One GEMM gives W x_N for the whole batch; scores are shifted by their
    maximum before exp (the stable softmax). Shared by every float64 model.
    """
    q = Xs[:, -1, :] @ W.T
    if c is not None:
        q = q + c
    s = np.einsum("bnd,bd->bn", Xs, q)
    s -= s.max(axis=1, keepdims=True)
    a: Array = np.exp(s)
    a /= a.sum(axis=1, keepdims=True)
    return a


def _f64_batch(W: Array, v: Array, Xs: list[Array] | Array) -> Array:
    if isinstance(Xs, np.ndarray):
        out: Array = np.einsum("bn,bn->b", f64_attention_weights(Xs, W), Xs @ v)
        return finite_answers(out)
    return np.array([_f64_batch(W, v, X[None])[0] for X in Xs], dtype=np.float64)
