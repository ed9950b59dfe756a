"""A single attention head with biases, as real attention modules have them.

    s_i = x_i^T W x_N + c^T x_i,   alpha = softmax(s),
    f_{W,c,v,beta}(X) = sum_i alpha_i (v . x_i) + beta,

with merged parameters W in F^{d x d}, c, v in F^d and beta in F, the last
token x_N as the query position, no mask, no positional encoding, no
temperature (paper.md §1 plus biases).

Why this is the general biased head. A module computes scores
(W_q x_N + b_q)^T (W_k x_i + b_k) / sqrt(h) and the read-out
rho^T (W_o sum_i alpha_i (W_v x_i + b_v) + b_o). Expanding the score gives
x_i^T W x_N + c^T x_i plus x_N^T W_q^T b_k / sqrt(h) + b_q^T b_k / sqrt(h),
and those last two terms do not depend on i: the softmax is invariant under
adding the same number to every score, so they cancel and are not
identifiable: the key bias b_k leaves no trace, the query bias b_q survives
as c = W_k^T b_q / sqrt(h) (it is seen through the keys). The value side
gives v = W_v^T W_o^T rho and, because sum_i alpha_i = 1, the constant
beta = rho^T (W_o b_v + b_o). See :mod:`exactattn.torch_oracle` for the
merged parameters of ``torch.nn.MultiheadAttention``.

With c = 0 and beta = 0 this is :class:`~exactattn.models.SingleHeadAttention`.
The exact learner (d^2 + 2d + 1 queries, optimal) is
:func:`exactattn.learners.biased_head.learn_biased_head`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flint import fmpq

from ..errors import InvalidEntryError, ShapeError
from ..fields import EXP, F64, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of
from .attention import (
    ExactScores,
    f64_attention_weights,
    finite_answers,
    softmax_average,
    square_dimension,
)

__all__ = ["BiasedSingleHeadAttention"]


class BiasedSingleHeadAttention:
    """f(X) = softmax(X W x_N + X c)^T X v + beta over a field.

    Parameters
    ----------
    W : d x d matrix, the merged score matrix (W_k^T W_q / sqrt(h) for a module).
    c : length-d vector, the query-side bias seen by the keys (W_k^T b_q / sqrt(h)).
    v : length-d vector, the merged value read-out (W_v^T W_o^T rho).
    beta : scalar, the constant read-out (rho^T (W_o b_v + b_o)).
    field : the field the model is evaluated over (default :data:`EXP`).

    Learned by :func:`~exactattn.learners.biased_head.learn_biased_head` with
    exactly d^2 + 2d + 1 value queries (claims ``single_head_exact.biased_*``).

    >>> from exactattn.fields import EXP
    >>> f = BiasedSingleHeadAttention([[0, 1], [2, 0]], [1, 0], [1, 3], 5, field=EXP)
    >>> f([[0, 0]]), f([[1, 0]])         # one token: alpha = 1, the answer is v . x + beta
    (5, 6)
    >>> # [e_1; 0]: scores (c_1, 0) = (1, 0), values (1, 0): sigma(1) * 1 + 5
    >>> f([[1, 0], [0, 0]]) == EXP.sigmoid(EXP(1)) + 5
    True
    """

    def __init__(self, W: Any, c: Any, v: Any, beta: Any, *, field: Field = EXP) -> None:
        self.field = field
        self.d = square_dimension(W, "W")
        for name, vec in (("c", c), ("v", v)):
            if vec is None:
                raise InvalidEntryError(f"{name} is None, expected a vector of length d = "
                                        f"{self.d}")
            if (shape := shape_of(vec, name)) != (self.d,):
                raise ShapeError(f"{name} has shape {shape}, but W is {self.d} x "
                                 f"{self.d}: expected a vector of length d = {self.d}")
        if beta is None:
            raise InvalidEntryError("beta is None, expected a scalar")
        if (shape := shape_of(beta, "beta")) != ():
            raise ShapeError(f"beta has shape {shape}, expected a scalar")
        # copies: the model freezes its parameters, never the caller's arrays
        self.W = as_matrix(field, W, (self.d, self.d), name="W").copy()
        self.c = as_vector(field, c, self.d, name="c").copy()
        self.v = as_vector(field, v, self.d, name="v").copy()
        try:
            self.beta = field(beta)
        except InvalidEntryError as exc:
            raise InvalidEntryError(f"beta: {exc}") from None
        for A in (self.W, self.c, self.v):
            A.flags.writeable = False
        if field.exact:
            self._parts = ExactScores(field, self.W, self.v, self.c)

    def __repr__(self) -> str:
        return f"BiasedSingleHeadAttention(d={self.d}, field={self.field.name})"

    def _exact_parts(self, X: Array) -> tuple[list[fmpq], list[fmpq]]:
        """Scores s_i = x_i^T (W x_N + c) and values v . x_i of a validated query."""
        return self._parts(X)

    def _evaluate(self, X: Array) -> Any:
        """f(X) for a validated query."""
        if not self.field.exact:
            return biased_f64_batch(self.W, self.c, self.v, self.beta, X[None])[0]
        return softmax_average(self.field, *self._exact_parts(X)) + self.beta

    def __call__(self, X: Any) -> Any:
        return self._evaluate(as_query(self.field, X, self.d))

    def batch(self, Xs: Any) -> Array:
        """Answers to many queries; over F64 one vectorised pass per (B, N, d) array."""
        checked = as_query_batch(self.field, Xs, self.d)
        if self.field is F64:
            if isinstance(checked, np.ndarray):
                return biased_f64_batch(self.W, self.c, self.v, self.beta, checked)
            return np.array([self._evaluate(X) for X in checked], dtype=np.float64)
        out = np.empty(len(checked), dtype=object)
        for b, X in enumerate(checked):
            out[b] = self._evaluate(X)
        return out


def biased_f64_batch(W: Array, c: Array, v: Array, beta: Any, Xs: Array) -> Array:
    """f on a (B, N, d) float64 batch: s_{b,i} = x_{b,i} . (W x_{b,N} + c), vectorised.

    >>> import numpy as np
    >>> float(biased_f64_batch(np.eye(2), np.zeros(2), np.ones(2), 0.5,
    ...                        np.array([[[1.0, 0.0]]]))[0])
    1.5
    """
    a = f64_attention_weights(Xs, W, c)
    out: Array = np.einsum("bn,bn->b", a, Xs @ v) + beta
    return finite_answers(out)
