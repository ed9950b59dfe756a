"""Validation of queries: a query is a matrix X in F^{N x d}, rows x_1..x_N.

The last row x_N is the query position (paper.md §1). Shared by the models
(which check what they are given) and the oracle (which checks every query
before it reaches the hidden model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidEntryError, ShapeError
from .fields import Array, Field
from .fields.base import describe

__all__ = ["as_query", "as_query_batch", "as_matrix", "as_vector", "shape_of", "as_row_sums",
           "row_sums", "sums_cannot_overflow"]

#: at most this many row shapes are listed in the message about a ragged input
_SHOWN_ROWS = 6


def shape_of(x: Any, name: str) -> tuple[int, ...]:
    """The shape of an array or of nested sequences; ShapeError naming ``name`` if ragged.

    ``np.shape`` raises numpy's own ValueError on ragged nested lists; this
    says which input is ragged and the shapes of its rows.

    >>> shape_of([[1, 2], [3, 4]], "W")
    (2, 2)
    >>> shape_of([[1, 2], [3]], "W")
    Traceback (most recent call last):
    ...
    exactattn.errors.ShapeError: W is ragged, not a rectangular array: rows of shapes (2,), (1,)
    """
    if isinstance(x, np.ndarray):
        return tuple(int(n) for n in x.shape)
    try:
        return tuple(int(n) for n in np.shape(x))
    except ValueError:
        raise ShapeError(f"{name} is ragged, not a rectangular array: "
                         f"{_row_shapes(x)}") from None


def _row_shapes(x: Any) -> str:
    """'rows of shapes (2,), (1,)' for a ragged nested sequence (for messages)."""
    if not isinstance(x, Sequence) or isinstance(x, str | bytes):
        return "its nesting is too deep or irregular"
    shapes = []
    for row in list(x)[:_SHOWN_ROWS]:
        try:
            shapes.append(str(tuple(int(n) for n in np.shape(row))))
        except ValueError:
            shapes.append("ragged")
    more = f", ... ({len(x)} rows)" if len(x) > _SHOWN_ROWS else ""
    return f"rows of shapes {', '.join(shapes)}{more}"


def as_query(field: Field, X: Any, d: int, *, name: str = "query") -> Array:
    """Return X as an N x d array over ``field``, N >= 1, or raise a clear error.

    >>> from exactattn.fields import QQ
    >>> as_query(QQ, [[1, 2]], 2).shape
    (1, 2)
    >>> as_query(QQ, [[1, 2, 3]], 2)
    Traceback (most recent call last):
    ...
    exactattn.errors.ShapeError: query has width 3, expected d = 2 (one token per row)
    """
    if X is None:
        raise InvalidEntryError(f"{name} is None, expected an N x {d} matrix of tokens")
    if isinstance(X, str):
        raise InvalidEntryError(f"{name} is a string, expected an N x {d} matrix of tokens")
    shape = shape_of(X, name)
    if len(shape) == 1 and shape[0] == 0 or len(shape) == 2 and shape[0] == 0:
        raise ShapeError(f"{name} is empty: a query needs at least one token (N >= 1)")
    if len(shape) != 2:
        raise ShapeError(
            f"{name} has shape {tuple(shape)}, expected a 2-D N x {d} matrix (one token per row)"
        )
    if shape[1] != d:
        raise ShapeError(f"{name} has width {shape[1]}, expected d = {d} (one token per row)")
    return field.array(X, name=name)


def as_query_batch(field: Field, Xs: Any, d: int) -> list[Array] | Array:
    """Validate a batch: a 3-D array (B, N, d) or a sequence of N_b x d queries.

    F64 batches of equal length are kept as one float64 array (vectorised);
    otherwise a list of validated queries is returned.
    """
    if isinstance(Xs, np.ndarray) and Xs.ndim == 3 and Xs.dtype != object:
        if Xs.shape[1] == 0:
            raise ShapeError("queries in the batch are empty: a query needs N >= 1 tokens")
        if Xs.shape[2] != d:
            raise ShapeError(f"batch queries have width {Xs.shape[2]}, expected d = {d}")
        return field.array(Xs, name="batch")
    if isinstance(Xs, np.ndarray) and Xs.ndim == 3:
        return [as_query(field, X, d, name=f"batch[{b}]") for b, X in enumerate(Xs)]
    if not isinstance(Xs, Sequence) and not isinstance(Xs, np.ndarray):
        raise InvalidEntryError(f"a batch is a sequence of queries, got {type(Xs).__name__}")
    return [as_query(field, X, d, name=f"batch[{b}]") for b, X in enumerate(Xs)]


# -- queries given as sums of shared rows ----------------------------------------------
def as_row_sums(field: Field, rows: Any, terms: Any, d: int) -> tuple[Array, Array]:
    """Validate a batch given as sums of shared rows: ``(rows over field, terms as int64)``.

    ``rows`` is an (m, d) matrix; ``terms`` a (B, N, k) integer array with
    entries in [-1, m). Token n of query b is the sum of the rows
    ``terms[b, n, 0], terms[b, n, 1], ...`` (see :func:`row_sums`); -1 marks
    no term, and the terms present come first in each token. A batch of many
    queries built from a few rows (probes and tokens of a grid) is validated
    in O(m d + B N k), not O(B N d).

    >>> import numpy as np
    >>> from exactattn.fields import F64
    >>> rows, terms = as_row_sums(F64, np.eye(2), [[[0, 1], [1, -1]]], 2)
    >>> terms.shape, terms.dtype.name
    ((1, 2, 2), 'int64')
    >>> as_row_sums(F64, np.eye(2), [[[-1, 1]]], 2)
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: terms[0, 0]: a term -1 (none) comes before a term; ...
    """
    if rows is None or isinstance(rows, str):
        raise InvalidEntryError(f"rows is {describe(rows)}, expected an m x {d} matrix")
    shape = shape_of(rows, "rows")
    if len(shape) != 2 or shape[1] != d or shape[0] == 0:
        raise ShapeError(f"rows has shape {shape}, expected an m x {d} matrix (m >= 1), "
                         "one row per line")
    R = field.array(rows, name="rows")
    m = R.shape[0]
    if isinstance(terms, np.ndarray) and terms.dtype.kind in "iu":
        T = terms
    else:
        if not isinstance(terms, Sequence | np.ndarray) or isinstance(terms, str):
            raise InvalidEntryError(f"terms is a (B, N, k) array of row indices, got "
                                    f"{type(terms).__name__}")
        shape_of(terms, "terms")
        T = np.asarray(terms)
        if T.size and T.dtype.kind not in "iu":
            raise InvalidEntryError(f"terms holds row indices (integers), got dtype {T.dtype}")
    if T.ndim != 3 or T.shape[1] == 0 or T.shape[2] == 0:
        raise ShapeError(f"terms has shape {T.shape}, expected (B, N, k) with N, k >= 1: "
                         "k row indices for each of the N tokens of each query")
    T = T.astype(np.int64)
    if T.size:
        lo, hi = int(T.min()), int(T.max())
        if lo < -1 or hi >= m:
            bad = tuple(int(i) for i in np.argwhere((T < -1) | (T >= m))[0])
            raise InvalidEntryError(f"terms{list(bad)} = {T[bad]} is not a row index in "
                                    f"[0, {m}) nor -1 (no term)")
        gap = (T[..., 1:] >= 0) & (T[..., :-1] < 0)
        if gap.any():
            b, n, _ = (int(i) for i in np.argwhere(gap)[0])
            raise InvalidEntryError(f"terms[{b}, {n}]: a term -1 (none) comes before a term; "
                                    "list the terms of a token first, then -1")
    return R, T


def row_sums(rows: Array, terms: Array, *, zero: Any = 0.0, out: Array | None = None) -> Array:
    """The (B, N, d) queries of validated ``(rows, terms)`` (see :func:`as_row_sums`).

    Token (b, n) is ``rows[t_0] + rows[t_1] + ...`` added left to right over
    the terms t present (each addition elementwise, so over F64 each entry is
    correctly rounded: the result is the same bits on every platform); a token
    with no term is the zero row (``zero``: +0.0, or the field's zero for an
    array of field elements); a token of one term is that row, bit for bit
    (-0.0 kept). ``out``: a writeable C-contiguous (B, N, d) array of the rows'
    dtype to fill instead of a new one (a caller reusing a buffer).

    >>> import numpy as np
    >>> row_sums(np.array([[1.0, 2.0], [0.5, -0.0]]), np.array([[[0, 1], [1, -1]]])).tolist()
    [[[1.5, 2.0], [0.5, -0.0]]]
    """
    N, k = terms.shape[1], terms.shape[2]
    first = terms[..., 0]
    if out is None:
        out = rows[np.maximum(first, 0)]  # every token's first term: one gather
    else:  # -1 (no term) clipped to row 0, then zeroed below
        np.take(rows, first, axis=0, out=out, mode="clip")
    absent = first < 0
    if absent.any():
        out[absent] = zero
    for n in range(N):  # then the further terms, token by token
        for t in range(1, k):
            idx = terms[:, n, t]
            present = idx >= 0
            if present.all():
                out[:, n] += rows[idx]
            elif present.any():
                sel = np.flatnonzero(present)
                out[sel, n] = out[sel, n] + rows[idx[sel]]
            else:
                break  # terms are listed first: none further in this token
    return out


def sums_cannot_overflow(rows: Array, k: int) -> bool:
    """True when no float64 sum of at most k rows of ``rows`` (finite) can overflow.

    Every partial sum of k terms of magnitude <= M has magnitude at most
    k M (1 + u)^k < 2 k M for k < 2^52 (u = 2^-53); so k M <= DBL_MAX / 4
    proves every sum finite, and no entry of the materialised queries needs a
    finiteness check.
    """
    if rows.size == 0:
        return True
    M = float(np.abs(rows).max())
    return bool(k < 2**52 and M * k <= float(np.finfo(np.float64).max) / 4)


def as_matrix(field: Field, A: Any, shape: tuple[int, int], *, name: str) -> Array:
    """An array over ``field`` of exactly ``shape``, or ShapeError naming ``name``."""
    if A is None:
        raise InvalidEntryError(f"{name} is None, expected a {shape[0]} x {shape[1]} matrix")
    got = shape_of(A, name)
    if got != shape:
        raise ShapeError(f"{name} has shape {got}, expected {shape[0]} x {shape[1]}")
    return field.array(A, name=name)


def as_vector(field: Field, a: Any, length: int, *, name: str) -> Array:
    """A 1-D array over ``field`` of exactly ``length`` entries."""
    if a is None:
        raise InvalidEntryError(f"{name} is None, expected a vector of length {length}")
    got = shape_of(a, name)
    if got != (length,):
        raise ShapeError(f"{name} has shape {got}, expected a vector of length {length}")
    return field.array(a, name=name)
