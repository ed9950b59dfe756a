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
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ExactattnError, InvalidEntryError, ShapeError
from ..fields import EXP, F64, QQ, Array, Field
from ..fields.base import describe

__all__ = ["PROTOCOL_VERSION", "WIRE_FIELDS", "MAX_QUERIES_PER_REQUEST", "MAX_BODY_BYTES",
           "dumps", "loads", "encode_query", "encode_queries", "decode_queries",
           "encode_answers", "decode_answers", "query_key", "wire_field",
           "JSON_TYPE", "F64_BINARY_TYPE", "ENCODINGS", "F64_MAGIC", "encodings_of",
           "pack_f64_queries", "unpack_f64_queries", "pack_f64_answers", "unpack_f64_answers",
           "batch_digest"]

#: version of the wire format (``GET /info`` reports it; a client refuses another)
PROTOCOL_VERSION = 1
#: the fields that travel: exact rationals and exponential sums, and float64. BALL and MP
#: answers are balls and private-precision numbers with no JSON form here.
WIRE_FIELDS: dict[str, Field] = {"EXP": EXP, "QQ": QQ, "F64": F64}
#: the most queries one request may carry (a server refuses more with 413)
MAX_QUERIES_PER_REQUEST = 65_536
#: the largest request body a server reads (64 MiB; larger is refused with 413)
MAX_BODY_BYTES = 64 * 2**20
#: the content type of a JSON request or answer (the default, and the only one for EXP and QQ)
JSON_TYPE = "application/json"
#: the content type of the binary F64 encoding ``"f64le"`` (see :func:`pack_f64_queries`)
F64_BINARY_TYPE = "application/vnd.exactattn.f64+octet-stream"
#: the encodings a server may offer in ``GET /info`` (``"encodings"``), by name
ENCODINGS = {"json": JSON_TYPE, "f64le": F64_BINARY_TYPE}
#: the first 4 bytes of every binary body (format version 1)
F64_MAGIC = b"XAF1"
_PREFIX = struct.Struct("<4sI")  # magic, length of the JSON header in bytes
#: the longest JSON header of a binary body (a header of 65,536 token counts fits)
MAX_HEADER_BYTES = 2**20


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


def encodings_of(field: Field) -> list[str]:
    """The encodings a server over ``field`` offers: ``["json", "f64le"]`` over F64, else
    ``["json"]`` (exact entries have no binary form here).

    >>> encodings_of(F64), encodings_of(EXP)
    (['json', 'f64le'], ['json'])
    """
    return ["json", "f64le"] if field == F64 else ["json"]


# -- the binary F64 encoding "f64le" ------------------------------------------------
# A body is: the 4 bytes F64_MAGIC, the header's length H (uint32, little-endian), H bytes
# of a compact JSON object, then the numbers as little-endian IEEE 754 float64, C order.
# The bytes of a float64 are the number, so the encoding is bit-exact by construction
# (-0.0, subnormals, the largest doubles); NaN and the infinities are refused both ways.
def _pack(header: dict[str, Any], payload: Sequence[bytes]) -> bytes:
    head = dumps(header).encode("utf-8")
    return b"".join([_PREFIX.pack(F64_MAGIC, len(head)), head, *payload])


def _unpack(body: bytes, what: str) -> tuple[dict[str, Any], memoryview]:
    """The JSON header and the payload of a binary body; InvalidEntryError if it is not one."""
    if len(body) < _PREFIX.size:
        raise InvalidEntryError(f"a binary {what} of {len(body)} bytes is truncated: it starts "
                                f"with {_PREFIX.size} bytes (the magic {F64_MAGIC!r} and the "
                                "header's length)")
    magic, size = _PREFIX.unpack_from(body)
    if magic != F64_MAGIC:
        raise InvalidEntryError(f"a binary {what} starts with {F64_MAGIC!r}, got {magic!r}")
    if size > MAX_HEADER_BYTES or _PREFIX.size + size > len(body):
        raise InvalidEntryError(f"the binary {what}'s header of {size} bytes does not fit in "
                                f"its {len(body)} bytes (truncated, or not this encoding)")
    header = loads(bytes(body[_PREFIX.size:_PREFIX.size + size]))
    if not isinstance(header, dict):
        raise InvalidEntryError(f"the binary {what}'s header is a JSON object, got "
                                f"{describe(header)}")
    return header, memoryview(body)[_PREFIX.size + size:]


def _first_not_finite(A: np.ndarray) -> tuple[int, ...] | None:
    bad = np.argwhere(~np.isfinite(A))
    return None if len(bad) == 0 else tuple(int(i) for i in bad[0])


def _not_finite(where: str, x: float) -> InvalidEntryError:
    # the words of loads' refusal, so that NaN and Infinity read the same in both encodings
    name = "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    return InvalidEntryError(f"{where}: {name} is not a number of any field; F64 entries are "
                             "finite (JSON has no NaN or Infinity)")


def pack_f64_queries(Xs: Any, request_id: str, d: int) -> bytes:
    """A batch of F64 queries (N_b x d each; a (B, N, d) array or a sequence) as a binary body.

    The header is ``{"d": d, "field": "F64", "request_id": ..., "tokens": [N_0, ...]}``
    (one token count per query, so queries may have different lengths); the
    payload is the queries one after another, row by row.

    >>> body = pack_f64_queries([[[1.0, -0.0]], [[2.0, 3.0], [4.0, 5.0]]], "r1", 2)
    >>> header, Xs = unpack_f64_queries(body, 2)
    >>> header["tokens"], [X.tolist() for X in Xs]
    ([1, 2], [[[1.0, -0.0]], [[2.0, 3.0], [4.0, 5.0]]])
    """
    if isinstance(Xs, np.ndarray) and Xs.ndim == 3:
        A = np.ascontiguousarray(Xs, dtype="<f8")
        if A.shape[2] != d:  # as for a sequence: refused here, not by the server's byte count
            raise ShapeError(f"queries have shape {A.shape[1:]}; this oracle's queries are "
                             f"N x {d}")
        tokens = [A.shape[1]] * A.shape[0]
        parts = [A.tobytes()]
    else:
        arrays = [np.ascontiguousarray(X, dtype="<f8") for X in Xs]
        for b, A in enumerate(arrays):
            if A.ndim != 2 or A.shape[1] != d:
                raise ShapeError(f"queries[{b}] has shape {A.shape}; this oracle's queries "
                                 f"are N x {d}")
        tokens = [A.shape[0] for A in arrays]
        parts = [A.tobytes() for A in arrays]
    # refused here, as the JSON encoder refuses it, not sent for the server to refuse
    blocks = [A] if isinstance(Xs, np.ndarray) and Xs.ndim == 3 else arrays
    for b, block in enumerate(blocks):
        at = _first_not_finite(block)
        if at is not None:
            where = f"queries{list(at)}" if block.ndim == 3 else f"queries[{b}]{list(at)}"
            raise _not_finite(where, float(block[at]))
    return _pack({"d": d, "field": "F64", "request_id": request_id, "tokens": tokens}, parts)


def unpack_f64_queries(body: bytes, d: int) -> tuple[dict[str, Any], list[Array] | Array]:
    """The header and the queries of a binary body, checked against ``d``.

    Everything that is not a well-formed body of this encoding (truncated, a
    wrong magic, a header that is not the expected JSON object, a length that
    is not the header's token counts times d float64s, NaN or an infinity) is
    an InvalidEntryError or ShapeError naming what is wrong, never a partial
    read. The queries are a (B, N, d) float64 array when all have N tokens (as
    :func:`decode_queries` returns), else a list.

    >>> unpack_f64_queries(pack_f64_queries([[[1.0, 2.0]]], "r", 2)[:-1], 2)
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: the binary request has 15 bytes of numbers; ...
    """
    header, payload = _unpack(body, "request")
    keys = {"d", "field", "request_id", "tokens"}
    if set(header) != keys:
        raise InvalidEntryError(f"the binary request's header has the keys {sorted(keys)}, got "
                                f"{sorted(header)}")
    if header["field"] != "F64":
        raise InvalidEntryError(f"the binary encoding carries F64 only; the header asks "
                                f"{describe(header['field'])}")
    if type(header["d"]) is not int or header["d"] != d:
        shown = header["d"] if type(header["d"]) is int else describe(header["d"])
        raise ShapeError(f"the binary request's header has d = {shown}; this oracle's d "
                         f"is {d}")
    if not isinstance(header["request_id"], str):
        raise InvalidEntryError(f"request_id must be a string, got "
                                f"{describe(header['request_id'])}")
    tokens = header["tokens"]
    if not isinstance(tokens, list) or not tokens:
        raise ShapeError(f"tokens must be a non-empty list of token counts, got "
                         f"{describe(tokens)}")
    if len(tokens) > MAX_QUERIES_PER_REQUEST:
        raise ShapeError(f"{len(tokens)} queries in one request; at most "
                         f"{MAX_QUERIES_PER_REQUEST} (split the batch)")
    for b, n in enumerate(tokens):
        if type(n) is not int or n < 1:
            raise ShapeError(f"tokens[{b}] = {describe(n)}: a query has N >= 1 tokens")
    rows = sum(tokens)
    if len(payload) != 8 * d * rows:
        listed: Any = tokens if len(tokens) <= 8 else f"(sum {rows})"
        raise InvalidEntryError(f"the binary request has {len(payload)} bytes of numbers; its "
                                f"header's tokens {listed} times d = {d} make {8 * d * rows} "
                                "(8 bytes per float64)")
    flat = np.frombuffer(payload, dtype="<f8").astype(np.float64).reshape(rows, d)
    bad = _first_not_finite(flat)
    if bad is not None:
        starts = np.cumsum([0, *tokens])
        b = int(np.searchsorted(starts, bad[0], side="right")) - 1
        raise _not_finite(f"queries[{b}][{bad[0] - int(starts[b])}][{bad[1]}]",
                          float(flat[bad]))
    if len(set(tokens)) == 1:
        return header, flat.reshape(len(tokens), tokens[0], d)
    out: list[Array] = []
    lo = 0
    for n in tokens:
        out.append(flat[lo:lo + n])
        lo += n
    return header, out


def pack_f64_answers(answers: Any, request_id: str) -> bytes:
    """F64 answers as a binary body: header ``{"count": B, "request_id": ...}``, B float64s.

    A NaN or infinite answer is refused (InvalidEntryError), as the JSON path refuses it.

    >>> unpack_f64_answers(pack_f64_answers([0.5, -0.0, 5e-324], "r"), 3)[1].tolist()
    [0.5, -0.0, 5e-324]
    """
    A = np.ascontiguousarray(answers, dtype="<f8").reshape(-1)
    bad = _first_not_finite(A)
    if bad is not None:
        raise _not_finite(f"answers[{bad[0]}]", float(A[bad]))
    return _pack({"count": int(A.shape[0]), "request_id": request_id}, [A.tobytes()])


def unpack_f64_answers(body: bytes, count: int) -> tuple[dict[str, Any], Array]:
    """The header and the ``count`` answers of a binary answer body, checked (length, count,
    finiteness); InvalidEntryError naming what is wrong otherwise."""
    header, payload = _unpack(body, "answer")
    said = header.get("count")
    if type(said) is not int or said != count:
        shown = said if type(said) is int else describe(said)
        raise InvalidEntryError(f"the server answered {shown} values to {count} queries")
    if len(payload) != 8 * count:
        raise InvalidEntryError(f"the binary answer has {len(payload)} bytes of numbers for "
                                f"{count} answers (8 bytes per float64)")
    A = np.frombuffer(payload, dtype="<f8").astype(np.float64)
    bad = _first_not_finite(A)
    if bad is not None:
        raise _not_finite(f"answers[{bad[0]}]", float(A[bad]))
    return header, A


def batch_digest(field: Field, Xs: Any) -> str:
    """A sha256 (hex) of a decoded F64 batch: its shapes and float64 bits, whatever the
    encoding it came in (the server's memory of answered requests keys on it over F64, so
    that a request resent in the other encoding is still recognised).

    >>> a = batch_digest(F64, np.zeros((1, 1, 2)))
    >>> a == batch_digest(F64, [np.zeros((1, 2))]), a == batch_digest(F64, [-np.zeros((1, 2))])
    (True, False)
    """
    h = hashlib.sha256(field.name.encode("utf-8"))
    for X in Xs:
        A = np.ascontiguousarray(X, dtype="<f8")
        h.update(struct.pack("<II", *A.shape))
        h.update(A.tobytes())
    return h.hexdigest()
