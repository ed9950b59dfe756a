"""Linear algebra over a field: solve, rank, determinant.

The choice of method per domain sits here, in one place:

* exact fields (QQ, EXP with rational entries): python-flint ``fmpq_mat``,
  exact fraction-free elimination in C (an exact 1024 x 1024 rational solve
  takes about 1.5 s, design.md §3). An EXP matrix with a non-rational entry
  is refused: no algorithm in exactattn needs one, and elimination over
  exponential sums would grow them without bound.
* BALL(prec): ``arb_mat.solve``, rigorous: the result balls contain the exact
  solution for every matrix in the input balls.
* MP(prec): mpmath's LU solve on the field's private context.
* F64: LAPACK through numpy (partial pivoting, backward stable).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flint import fmpq, fmpq_mat

from .errors import ExactattnError, ShapeError
from .fields import Array, BallField, Field, InsufficientPrecisionError, MPField

__all__ = ["solve", "rank", "det", "SingularMatrixError", "to_fmpq_mat", "from_fmpq_mat",
           "exact_values"]


class SingularMatrixError(ExactattnError, ArithmeticError):
    """The matrix of a linear system is singular."""


def to_fmpq_mat(field: Field, A: Array) -> fmpq_mat:
    """An exact field's matrix as ``fmpq_mat`` (entries must be rational)."""
    if not field.exact:
        raise TypeError(f"{field.name} is not exact")
    if A.ndim == 1:
        A = A.reshape(-1, 1)
    to_q = field.to_rational
    return fmpq_mat(A.shape[0], A.shape[1], [to_q(x) for x in A.flat])


def from_fmpq_mat(field: Field, M: fmpq_mat) -> Array:
    out = np.empty((M.nrows(), M.ncols()), dtype=object)
    conv = field.from_rational
    for i, row in enumerate(M.tolist()):
        for j, q in enumerate(row):
            out[i, j] = conv(fmpq(q))
    return out


def _check(field: Field, *arrays: Array) -> None:
    for k, A in enumerate(arrays):
        field.check_array(A, name=f"linalg argument {k + 1}")


def _square(A: Array, what: str) -> None:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ShapeError(f"{what} needs a square matrix, got shape {A.shape}")


def solve(field: Field, A: Array, B: Array) -> Array:
    """X with A X = B (B a vector or a matrix of right-hand sides).

    >>> from exactattn.fields import QQ
    >>> solve(QQ, QQ.array([[2, 0], [0, 4]]), QQ.array([1, 1]))
    array([1/2, 1/4], dtype=object)
    """
    _check(field, A, B)
    _square(A, "solve")
    if B.shape[0] != A.shape[0]:
        raise ShapeError(f"solve: A is {A.shape}, B has {B.shape[0]} rows")
    if field.exact:
        try:
            X = to_fmpq_mat(field, A).solve(to_fmpq_mat(field, B))
        except ZeroDivisionError:
            raise SingularMatrixError("solve: the matrix is singular") from None
        out = from_fmpq_mat(field, X)
        return out.reshape(B.shape)
    if isinstance(field, BallField):
        # rigorous: arb_mat.solve encloses the exact solution of every system in the balls
        try:
            M = field._run(lambda: field.to_arb_mat(A).solve(field.to_arb_mat(B)))
        except ZeroDivisionError:
            raise InsufficientPrecisionError(
                f"solve: the matrix is singular or not invertible at {field.prec} bits") from None
        return field.from_arb_mat(M).reshape(B.shape)
    if isinstance(field, MPField):
        Am = field.to_matrix(A)
        Bm = field.to_matrix(B)
        try:
            cols = [field.ctx.lu_solve(Am, Bm.column(k)) for k in range(Bm.cols)]
        except ZeroDivisionError:
            raise SingularMatrixError("solve: the matrix is singular") from None
        X = field.ctx.matrix(Am.rows, Bm.cols)
        for k, col in enumerate(cols):
            for i in range(Am.rows):
                X[i, k] = col[i]
        return field.from_matrix(X).reshape(B.shape)
    try:
        return np.asarray(np.linalg.solve(A, B), dtype=np.float64)
    except np.linalg.LinAlgError as exc:
        raise SingularMatrixError(f"solve: {exc}") from None


def rank(field: Field, A: Array) -> int:
    """Rank, exact in exact fields, numerical (SVD, numpy's default tolerance) in F64."""
    _check(field, A)
    if field.exact:
        return int(to_fmpq_mat(field, A).rank())
    if isinstance(field, BallField | MPField):
        return int(exact_values(field, A).rank())
    return int(np.linalg.matrix_rank(A))


def det(field: Field, A: Array) -> Any:
    """Determinant, as an element of ``field``."""
    _check(field, A)
    _square(A, "det")
    if field.exact:
        return field.from_rational(to_fmpq_mat(field, A).det())
    if isinstance(field, BallField | MPField):
        return field(exact_values(field, A).det())
    return np.float64(np.linalg.det(A))


def exact_values(field: BallField | MPField, A: Array) -> fmpq_mat:
    """A matrix of exactly known entries (zero-radius balls, mpf values) as fmpq_mat."""
    from .fields.precision import arf_to_fmpq

    entries = []
    for x in A.flat:
        v = field(x).value
        if isinstance(field, BallField):
            if not v.is_exact():
                raise InsufficientPrecisionError(
                    "rank/det over BALL needs exactly known entries (zero-radius balls)")
            entries.append(arf_to_fmpq(v.mid()))
        else:
            entries.append(field.exact_value(v))
    return fmpq_mat(A.shape[0], A.shape[1], entries)
