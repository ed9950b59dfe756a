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

__all__ = ["as_query", "as_query_batch", "as_matrix", "as_vector", "shape_of"]

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
