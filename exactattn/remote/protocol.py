"""The wire format of a remote oracle: queries and answers as JSON, one field at a time.

A query X (N x d) travels as a list of N rows of d entries; a batch as a list
of queries; the answers as a list with one entry per query. Every entry is
written by the field's own JSON form (:meth:`~exactattn.fields.base.Field.to_json`),
the same one that :meth:`exactattn.oracle.Transcript.to_json` uses, so there
is one format, not two:

* ``QQ`` and ``EXP``: a rational as the string ``"p/q"`` (or ``"p"``); an EXP
  element that is not rational (an answer sum c e^q / sum c' e^q') as
  ``{"num": [["q", "c"], ...], "den": [["q", "c"], ...]}`` with rational strings.
  JSON integers are read as rationals too; JSON floats and booleans are refused
  (0.1 as a float is not 1/10).
* ``F64``: JSON numbers. Python writes a float by ``repr``, the shortest string
  that reads back to the same double, so every query and answer round-trips
  bit for bit. ``NaN`` and ``Infinity`` (which Python's json module would
  otherwise accept) are refused, and so are booleans and strings.

>>> from fractions import Fraction
>>> from exactattn.fields import EXP, F64
>>> X = EXP.array([[1, Fraction(1, 3)], [0, -2]])
>>> encode_query(EXP, X)
[['1', '1/3'], ['0', '-2']]
>>> y = EXP.exp(EXP(1)) / (1 + EXP.exp(EXP(1)))
>>> wire = encode_answers(EXP, [y])
>>> decode_answers(EXP, loads(dumps(wire)), 1)[0] == y
True
>>> bool(decode_answers(F64, [0.1], 1)[0] == 0.1)
True
>>> decode_answers(F64, ["0.1"], 1)
Traceback (most recent call last):
...
exactattn.errors.InvalidEntryError: answers[0]: '0.1' (type str) is not a JSON number ...
>>> len(query_key(EXP, X)), query_key(EXP, X) == query_key(EXP, [[1, Fraction(2, 6)], [0, -2]])
(64, True)
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from ..errors import ExactattnError, InvalidEntryError, ShapeError
from ..fields import EXP, F64, QQ, Array, Field
from ..fields.base import describe

__all__ = ["PROTOCOL_VERSION", "WIRE_FIELDS", "MAX_QUERIES_PER_REQUEST", "MAX_BODY_BYTES",
           "dumps", "loads", "encode_query", "encode_queries", "decode_queries",
           "encode_answers", "decode_answers", "query_key", "wire_field"]

#: version of the wire format (``GET /info`` reports it; a client refuses another)
PROTOCOL_VERSION = 1
#: the fields that travel: exact rationals and exponential sums, and float64. BALL and MP
#: answers are balls and private-precision numbers with no JSON form here.
WIRE_FIELDS: dict[str, Field] = {"EXP": EXP, "QQ": QQ, "F64": F64}
#: the most queries one request may carry (a server refuses more with 413)
MAX_QUERIES_PER_REQUEST = 65_536
#: the largest request body a server reads (64 MiB; larger is refused with 413)
MAX_BODY_BYTES = 64 * 2**20


def wire_field(name: Any) -> Field:
    """The field called ``name`` if it can travel (EXP, QQ, F64), else InvalidEntryError."""
    if isinstance(name, str) and name in WIRE_FIELDS:
        return WIRE_FIELDS[name]
    raise InvalidEntryError(f"field {describe(name)} cannot be served: a remote oracle "
                            f"answers over {', '.join(WIRE_FIELDS)}")


def _refuse_constant(name: str) -> Any:
    raise InvalidEntryError(f"{name} is not a number of any field; JSON has no NaN or Infinity")


def loads(text: str | bytes) -> Any:
    """Parse JSON, refusing ``NaN``/``Infinity`` and turning every failure into InvalidEntryError.

    >>> loads('[1, NaN]')
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: NaN is not a number of any field; JSON has no NaN ...
    >>> loads(b'{"a": ')
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: not valid JSON: Expecting value at line 1 column 7 (char 6)
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ExactattnError:
        raise
    except (ValueError, RecursionError) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        msg = f"{exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})" \
            if isinstance(exc, json.JSONDecodeError) else f"{type(exc).__name__}: {exc}"
        raise InvalidEntryError(f"not valid JSON: {msg}") from None


def dumps(obj: Any) -> str:
    """Canonical compact JSON (sorted keys, no spaces, no NaN): the bytes that are hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


# -- queries ------------------------------------------------------------------------
def encode_query(field: Field, X: Any) -> list[list[Any]]:
    """One query (N x d, entries of ``field``) as a list of rows of JSON entries."""
    if field == F64:
        out: list[list[Any]] = np.asarray(X, dtype=np.float64).tolist()
        return out
    A = np.asarray(X, dtype=object)
    if A.ndim != 2:
        raise ShapeError(f"a query is an N x d matrix, got shape {A.shape}")
    return [[field.to_json(x) for x in row] for row in A]


def encode_queries(field: Field, Xs: Any) -> list[list[list[Any]]]:
    """A batch (a sequence of queries, or a (B, N, d) float64 array) as JSON."""
    if field == F64 and isinstance(Xs, np.ndarray) and Xs.ndim == 3:
        out: list[list[list[Any]]] = Xs.astype(np.float64, copy=False).tolist()
        return out
    return [encode_query(field, X) for X in Xs]


def _entry(field: Field, x: Any, where: str) -> Any:
    """One JSON entry as an element of ``field``, its type checked first."""
    if field == F64:
        if type(x) is float:
            if not math.isfinite(x):  # pragma: no cover - loads refuses NaN/Infinity
                raise InvalidEntryError(f"{where}: {x!r} is not finite")
            return x
        if type(x) is int:
            try:
                return float(x)
            except OverflowError:
                raise InvalidEntryError(f"{where}: an integer of {len(str(abs(x)))} digits "
                                        "is too large for a float64") from None
        raise InvalidEntryError(f"{where}: {describe(x)} is not a JSON number (entries "
                                "over F64 are JSON numbers)")
    if type(x) is str or type(x) is int or (field == EXP and type(x) is dict):
        try:
            return field.from_json(x)
        except ExactattnError as exc:
            raise InvalidEntryError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidEntryError(f"{where}: not the JSON form of an element of {field.name}"
                                    f" ({type(exc).__name__}: {exc})") from None
    forms = "a rational string 'p/q'" + (" or {\"num\": ..., \"den\": ...}"
                                         if field == EXP else "")
    raise InvalidEntryError(f"{where}: {describe(x)} is not {forms} (entries over {field.name}"
                            " are exact; write 0.1 as the string \"1/10\")")


def decode_queries(field: Field, obj: Any, d: int) -> list[Array] | Array:
    """The JSON batch ``obj`` as queries over ``field`` with d columns, checked entry by entry.

    Returns a (B, N, d) float64 array when the field is F64 and every query has
    the same length (the vectorised path of the models), else a list of N x d
    arrays. Every problem is an InvalidEntryError (or ShapeError) naming the
    query, the row and the entry.

    >>> decode_queries(QQ, [[["1", "2"]], [["1/2", "0"], ["3", "4"]]], 2)[1].tolist()
    [[1/2, 0], [3, 4]]
    >>> decode_queries(QQ, [[["1", "2", "3"]]], 2)
    Traceback (most recent call last):
    ...
    exactattn.errors.ShapeError: queries[0][0] has 3 entries; this oracle's d is 2
    """
    if not isinstance(obj, list):
        raise InvalidEntryError(f"queries must be a JSON list of queries, got {describe(obj)}")
    if not obj:
        raise ShapeError("queries is empty: send at least one query")
    if len(obj) > MAX_QUERIES_PER_REQUEST:
        raise ShapeError(f"{len(obj)} queries in one request; at most "
                         f"{MAX_QUERIES_PER_REQUEST} (split the batch)")
    floats = field == F64  # decided once: a Field comparison per entry costs more than it
    out: list[Array] = []
    for b, X in enumerate(obj):
        where = f"queries[{b}]"
        if not isinstance(X, list) or not X:
            raise ShapeError(f"{where} must be a non-empty list of rows (N >= 1 tokens), got "
                             f"{describe(X)}")
        if floats and all(type(row) is list and len(row) == d and all(
                type(x) is float or type(x) is int for x in row) for row in X):
            try:  # the fast path: JSON numbers only (json.loads refused NaN and Infinity)
                out.append(np.array(X, dtype=np.float64))
                continue
            except OverflowError:
                pass  # an integer beyond the doubles: the loop below names it
        rows: list[list[Any]] = []
        for i, row in enumerate(X):
            if not isinstance(row, list):
                raise ShapeError(f"{where}[{i}] must be a list of {d} entries, got "
                                 f"{describe(row)}")
            if len(row) != d:
                raise ShapeError(f"{where}[{i}] has {len(row)} entries; this oracle's d is {d}")
            rows.append([_entry(field, x, f"{where}[{i}][{k}]") for k, x in enumerate(row)])
        if floats:
            out.append(np.array(rows, dtype=np.float64))
        else:
            A = np.empty((len(rows), d), dtype=object)
            for i, row in enumerate(rows):
                A[i, :] = row
            out.append(A)
    if floats and len({X.shape[0] for X in out}) == 1:
        return np.stack(out)
    return out


# -- answers ------------------------------------------------------------------------
def encode_answers(field: Field, answers: Any) -> list[Any]:
    """Answers (elements of ``field``) as a JSON list."""
    if field == F64:
        out: list[Any] = np.asarray(answers, dtype=np.float64).tolist()
        return out
    return [field.to_json(y) for y in answers]


def decode_answers(field: Field, obj: Any, count: int) -> Array:
    """``count`` answers over ``field`` from the JSON list ``obj``, checked one by one.

    An answer that is not a number of the field, or a list of the wrong
    length, is an InvalidEntryError naming the entry (a server that answers
    something else is refused, never read as a number).

    >>> decode_answers(QQ, ["1/2"], 2)
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: the server answered 1 values to 2 queries
    """
    if not isinstance(obj, list):
        raise InvalidEntryError(f"answers must be a JSON list, got {describe(obj)}")
    if len(obj) != count:
        raise InvalidEntryError(f"the server answered {len(obj)} values to {count} queries")
    if field == F64:
        return np.array([_entry(F64, y, f"answers[{b}]") for b, y in enumerate(obj)],
                        dtype=np.float64)
    out = np.empty(count, dtype=object)
    for b, y in enumerate(obj):
        out[b] = _entry(field, y, f"answers[{b}]")
    return out


def query_key(field: Field, X: Any) -> str:
    """A stable hash of one query: sha256 (hex) of its canonical encoding with the field.

    Two queries get the same key exactly when they are the same matrix over
    the same field (entries compared as exact rationals, or as float64 bit
    patterns up to the sign of zero being kept: -0.0 and 0.0 differ). The
    server's log and the journal of resumable runs key on it.

    >>> from fractions import Fraction
    >>> key = query_key(QQ, [[1, 2]])
    >>> key == query_key(QQ, [[1, Fraction(4, 2)]]), key == query_key(EXP, [[1, 2]])
    (True, False)
    """
    A = field.array(X, name="query") if not (field == F64 and isinstance(X, np.ndarray)) \
        else np.asarray(X, dtype=np.float64)
    if A.ndim != 2:
        raise ShapeError(f"a query is an N x d matrix, got shape {A.shape}")
    text = dumps({"field": field.name, "X": encode_query(field, A)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
