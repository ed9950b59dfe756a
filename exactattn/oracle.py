"""The oracle: the only thing a learner holds.

A :class:`ValueOracle` wraps a hidden function (a model from
:mod:`exactattn.models`, or any callable X -> number) for one field. It
validates every query before it reaches the function, counts queries in
total and per phase, keeps the transcript (query, answer), enforces an
optional budget and measures the time spent answering. Learners receive an
oracle and nothing else; they cannot see the function behind it.

>>> from exactattn.fields import EXP
>>> oracle = ValueOracle(lambda X: EXP(7), field=EXP, d=2, budget=2)
>>> oracle([[1, 0]], phase="v"), oracle.queries, oracle.queries_by_phase
(7, 1, {'v': 1})
>>> oracle.batch([[[0, 1]], [[1, 1]]])
Traceback (most recent call last):
...
exactattn.errors.QueryBudgetExceededError: query budget of 2 exceeded: 1 used, 2 more asked
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import arb, ctx, fmpq, fmpz

from .errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    QueryBudgetExceededError,
)
from .fields import EXP, F64, QQ, Array, Field, field_by_name
from .fields.base import describe, literal_rational
from .fields.rational import parse_rational
from .queries import (
    as_query,
    as_query_batch,
    as_row_sums,
    row_sums,
    shape_of,
    sums_cannot_overflow,
)
from .transcript_store import DEFAULT_BLOCK_BYTES, F64QueryStore

__all__ = ["ValueOracle", "NoisyOracle", "Transcript", "TranscriptEntry", "ADVERSARIES",
           "enclosing_oracle", "SignOracle"]

#: bytes of queries materialised at a time by :meth:`ValueOracle.batch_sums` (small enough
#: to stay in cache-friendly sizes, large enough for the target's vectorised pass)
SUMS_BLOCK_BYTES = 4 * 2**20

#: version of :meth:`Transcript.to_json` (1: no ``version`` key, before the ``.npz`` sidecar)
JSON_VERSION = 2


@dataclass(frozen=True)
class TranscriptEntry:
    """One answered query: its index, phase, the query X and the answer.

    ``tolerance`` is the tolerance the query was asked with (approximate
    oracles, :class:`NoisyOracle`); None for exact answers.
    """

    index: int
    phase: str
    X: Array
    answer: Any
    tolerance: Any = None


class Transcript(Sequence[TranscriptEntry]):
    """The append-only record of an oracle's answered queries.

    Slicing gives a frozen copy (a :class:`Transcript` too); ``to_json`` and
    ``from_json`` save and load it with exact field elements.

    An F64 oracle's transcript is backed by an
    :class:`~exactattn.transcript_store.F64QueryStore` (``store``): queries
    kept sparse where they are sparse, spilled to ``.npy`` chunks on disk
    past its memory limit, entries decoded bit-exactly when read. A slice is
    then a view of a fixed range of the store (it never changes: the store is
    append-only). :meth:`iter_blocks` streams (indices, queries, answers) for
    a replay; :meth:`save_npz` / :meth:`load_npz` keep a large one as one
    ``.npz`` file, and ``to_json(sidecar=...)`` references such a file.
    """

    def __init__(self, field: Field, entries: Sequence[TranscriptEntry] = (), *,
                 store: F64QueryStore | None = None, start: int = 0,
                 stop: int | None = None) -> None:
        self.field = field
        self._entries: list[TranscriptEntry] = list(entries)
        if store is not None and (self._entries or field != F64):
            raise InvalidEntryError("a transcript store holds F64 entries only, and no list")
        self.store = store
        self._start = start
        self._stop = stop  # None: a live transcript (it grows with the store)

    def _append(self, entry: TranscriptEntry) -> None:
        if self.store is not None:
            self.store.extend(entry.phase, np.asarray(entry.X, dtype=np.float64)[None],
                              np.array([entry.answer], dtype=np.float64))
        else:
            self._entries.append(entry)

    def _extend(self, phase: str, Xs: Array, answers: Array) -> None:
        """Append a (B, N, d) batch of one phase (vectorised when a store backs it)."""
        if self.store is not None:
            self.store.extend(phase, Xs, answers)
            return
        for X, y in zip(Xs, answers, strict=True):
            self._append(TranscriptEntry(len(self), phase, X, y))

    def __len__(self) -> int:
        if self.store is not None:
            return (len(self.store) if self._stop is None else self._stop) - self._start
        return len(self._entries)

    def _stored(self, k: int) -> TranscriptEntry:
        """Entry k (0-based within this view) decoded from the store."""
        assert self.store is not None
        g = self._start + k
        phase, X, answer = self.store.entry(g)
        X.flags.writeable = False
        return TranscriptEntry(self.store.first_index + g, phase, X, answer)

    def __getitem__(self, i: Any) -> Any:
        if self.store is None:
            if isinstance(i, slice):
                return Transcript(self.field, self._entries[i])
            return self._entries[i]
        n = len(self)
        if isinstance(i, slice):
            lo, hi, step = i.indices(n)
            if step != 1:
                return Transcript(self.field, [self._stored(k) for k in range(lo, hi, step)])
            hi = max(lo, hi)
            return Transcript(self.field, store=self.store, start=self._start + lo,
                              stop=self._start + hi)
        if not isinstance(i, int | np.integer) or isinstance(i, bool):
            raise TypeError(f"transcript indices are integers or slices, not {describe(i)}")
        if not -n <= i < n:
            raise IndexError(f"transcript index {i} out of range ({n} entries)")
        return self._stored(int(i) % n)

    def __iter__(self) -> Iterator[TranscriptEntry]:
        if self.store is None:
            return iter(self._entries)
        return (self._stored(k) for k in range(len(self)))

    def __repr__(self) -> str:
        return f"Transcript({len(self)} entries over {self.field.name})"

    def iter_blocks(self, *, max_bytes: int = DEFAULT_BLOCK_BYTES
                    ) -> Iterator[tuple[Array, Array, Array]]:
        """Blocks ``(positions, Xs, answers)`` as float64 arrays, one query length per block.

        ``positions`` are 0-based within this transcript; ``Xs`` is a (b, N, d)
        float64 array of at most ``max_bytes`` (at least one query). A store
        is streamed chunk by chunk, so a replay holds one block in memory.
        """
        if self.store is not None:
            for g, Xs, ys in self.store.iter_blocks(self._start, self._start + len(self),
                                                    max_bytes=max_bytes):
                yield g - self._start, Xs, ys
            return
        by_length: dict[int, list[int]] = {}
        for k, e in enumerate(self._entries):
            by_length.setdefault(int(e.X.shape[0]), []).append(k)
        for N, ks in by_length.items():
            step = max(1, max_bytes // (N * int(self._entries[ks[0]].X.shape[1]) * 8))
            for b in range(0, len(ks), step):
                part = ks[b:b + step]
                yield (np.array(part, dtype=np.int64),
                       np.stack([self._entries[k].X for k in part]).astype(np.float64),
                       np.array([self._entries[k].answer for k in part], dtype=np.float64))

    def save_npz(self, path: str) -> None:
        """This F64 transcript as one ``.npz`` file (format of :mod:`exactattn.transcript_store`).

        Exact transcripts hold field elements, not floats: save them with ``to_json``.
        """
        if self.field != F64:
            raise IncompatibleFieldError(
                f"a .npz transcript holds float64 queries; this one is over {self.field.name}: "
                "save it with to_json (exact elements as strings)")
        if self.store is not None:
            self.store.save(path, self._start, self._start + len(self))
            return
        d = int(self._entries[0].X.shape[1]) if self._entries else 1
        store = F64QueryStore(d)
        for e in self._entries:
            store.extend(e.phase, np.asarray(e.X, dtype=np.float64)[None],
                         np.array([e.answer], dtype=np.float64))
        store.first_index = self._entries[0].index if self._entries else 0
        store.save(path)

    @classmethod
    def load_npz(cls, path: str) -> Transcript:
        """Inverse of :meth:`save_npz`: a transcript over F64 backed by the file's store."""
        store = F64QueryStore.load(path)
        return cls(F64, store=store)

    def to_json(self, *, sidecar: str | None = None) -> dict[str, Any]:
        """The transcript as JSON (``version`` 2); with ``sidecar``, an F64 transcript is
        written to that ``.npz`` file and the JSON references it by its base name."""
        F = self.field
        if sidecar is not None:
            self.save_npz(sidecar)
            return {"version": JSON_VERSION, "field": F.name, "entries": len(self),
                    "npz": os.path.basename(sidecar)}
        return {
            "version": JSON_VERSION,
            "field": F.name,
            "entries": [
                {
                    "index": e.index,
                    "phase": e.phase,
                    "X": F.array_to_json(e.X),
                    "answer": F.to_json(e.answer),
                    **({} if e.tolerance is None else {"tolerance": str(e.tolerance)}),
                }
                for e in self
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, base: str | None = None) -> Transcript:
        """Inverse of :meth:`to_json`; a malformed object is an InvalidEntryError naming the entry.

        Reads version 1 (no ``version`` key, before issue 12) and version 2; a
        reference to a ``.npz`` sidecar (a bare file name, as :meth:`to_json`
        writes it) is resolved against the directory ``base``.

        >>> Transcript.from_json({"field": "QQ", "entries": [{"index": 0}]})
        Traceback (most recent call last):
        ...
        exactattn.errors.InvalidEntryError: transcript entry 0: missing key 'phase'
        """
        if not isinstance(obj, dict):
            raise InvalidEntryError(f"a transcript is a JSON object, got {describe(obj)}")
        version = obj.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidEntryError(f"transcript: version must be an integer >= 1, got "
                                    f"{describe(version)}")
        if version > JSON_VERSION:
            raise InvalidEntryError(f"transcript: format version {version} was written by a "
                                    f"newer exactattn; this one reads versions up to "
                                    f"{JSON_VERSION}: upgrade exactattn")
        for key in ("field", "entries"):
            if key not in obj:
                raise InvalidEntryError(f"transcript: missing key {key!r}")
        F = field_by_name(obj["field"])
        entries = obj["entries"]
        if "npz" in obj:
            name = obj["npz"]
            if not isinstance(name, str) or not name or os.path.basename(name) != name or (
                    F != F64 or isinstance(entries, bool) or not isinstance(entries, int)):
                raise InvalidEntryError("transcript: an 'npz' reference needs a bare file name "
                                        "(beside the JSON), field F64 and an integer count of "
                                        f"entries; got {describe(name)}")
            out = cls.load_npz(os.path.join(base or "", name))
            if len(out) != entries:
                raise InvalidEntryError(f"transcript: {name} holds {len(out)} entries, the "
                                        f"JSON says {entries}")
            return out
        if not isinstance(entries, list):
            raise InvalidEntryError(f"transcript entries must be a list, got {describe(entries)}")
        return cls(F, [_entry_from_json(F, k, e) for k, e in enumerate(entries)])


def _entry_from_json(F: Field, k: int, e: Any) -> TranscriptEntry:
    """One transcript entry from its JSON form, checked key by key."""
    where = f"transcript entry {k}"
    if not isinstance(e, dict):
        raise InvalidEntryError(f"{where} is not a JSON object: {describe(e)}")
    for key in ("index", "phase", "X", "answer"):
        if key not in e:
            raise InvalidEntryError(f"{where}: missing key {key!r}")
    index, phase = e["index"], e["phase"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise InvalidEntryError(f"{where}: index must be an integer >= 0, got {describe(index)}")
    if not isinstance(phase, str):
        raise InvalidEntryError(f"{where}: phase must be a string, got {describe(phase)}")
    try:
        X = F.array_from_json(e["X"])
        answer = F.from_json(e["answer"])
        tol = parse_rational(e["tolerance"]) if "tolerance" in e else None
    except ExactattnError as exc:
        raise InvalidEntryError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        # untrusted JSON: a malformed element is named here, whatever the field's parser raised
        raise InvalidEntryError(f"{where}: not the JSON form of a query and an answer over "
                                f"{F.name} ({type(exc).__name__}: {exc})") from None
    return TranscriptEntry(index, phase, X, answer, tol)


class ValueOracle:
    """Exact value queries VQ(X) = f(X) to a hidden function, counted.

    Parameters
    ----------
    target : a model (with ``field``, ``d``, ``__call__`` and optionally
        ``batch``) or any callable taking an N x d array over ``field``.
    field, d : required when ``target`` is a plain callable; when given for a
        model they must agree with it.
    budget : maximal number of queries; one more raises
        :class:`~exactattn.errors.QueryBudgetExceededError` before the
        function is called.
    keep_transcript : record (query, answer) pairs (default True). Over F64
        they go to a compact store (:mod:`exactattn.transcript_store`: sparse
        queries, chunks spilled to disk past its memory limit), so a million
        basis-like queries at d = 1024 hold about 110 MB. Turned off, the
        certificate relies on fresh probes only, and says so.
    """

    def __init__(
        self,
        target: Callable[[Array], Any],
        *,
        field: Field | None = None,
        d: int | None = None,
        budget: int | None = None,
        keep_transcript: bool = True,
        name: str | None = None,
    ) -> None:
        if not callable(target):
            raise InvalidEntryError("the target of an oracle is a model or a callable "
                                    f"X -> number, got {describe(target)}")
        if field is not None and not isinstance(field, Field):
            raise InvalidEntryError(f"field must be a Field (QQ, EXP, F64, BALL(prec), MP(prec))"
                                    f" or None, got {describe(field)}")
        if d is not None and not _is_count(d):
            raise InvalidEntryError(f"d must be a positive integer, got {describe(d)}")
        model_field = getattr(target, "field", None)
        model_d = getattr(target, "d", None)
        if model_d is not None and not _is_count(model_d):
            raise InvalidEntryError(f"the target's d is {describe(model_d)}, not an integer")
        if field is None:
            if not isinstance(model_field, Field):
                raise InvalidEntryError("field= is required when the target is not a model")
            field = model_field
        elif isinstance(model_field, Field) and model_field != field:
            raise IncompatibleFieldError(
                f"the target is over {model_field.name}, the oracle over {field.name}"
            )
        if d is None:
            if model_d is None:
                raise InvalidEntryError("d= is required when the target is not a model")
            d = int(model_d)
        elif model_d is not None and int(model_d) != d:
            raise InvalidEntryError(f"d = {d} given, but the target has d = {model_d}")
        if not isinstance(d, int | np.integer) or d < 1:
            raise InvalidEntryError(f"d must be a positive integer, got {d!r}")
        if budget is not None and (not _is_count(budget) or budget < 0):
            raise InvalidEntryError(
                f"budget must be a non-negative integer or None, got {budget!r}")
        if name is not None and not isinstance(name, str):
            raise InvalidEntryError(f"name must be a string or None, got {describe(name)}")
        if not isinstance(keep_transcript, bool | np.bool_):
            raise InvalidEntryError(
                f"keep_transcript must be True or False, got {describe(keep_transcript)}")
        self._target = target
        self.field: Field = field
        self.d = int(d)
        self.budget = budget
        self.keep_transcript = keep_transcript
        self.name = name or type(target).__name__
        self._counts: dict[str, int] = {}
        self._total = 0
        self._seconds = 0.0
        # over F64 a compact store (sparse queries, spilled to disk past its memory limit)
        self.transcript = Transcript(field, store=F64QueryStore(self.d) if field == F64 else None)

    # -- bookkeeping -------------------------------------------------------
    @property
    def queries(self) -> int:
        """Queries answered so far (all phases)."""
        return self._total

    @property
    def queries_by_phase(self) -> dict[str, int]:
        return dict(self._counts)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds spent validating and answering queries."""
        return self._seconds

    def fork(self, name: str) -> ValueOracle:
        """A fresh oracle on the same hidden function: own counter, transcript, no budget.

        Certificates spend their probes on a fork, so the learner's count and
        budget are untouched.
        """
        return ValueOracle(self._target, field=self.field, d=self.d,
                           keep_transcript=self.keep_transcript, name=f"{self.name}/{name}")

    def __repr__(self) -> str:
        return (f"ValueOracle({self.name}, field={self.field.name}, d={self.d}, "
                f"queries={self._total}, budget={self.budget})")

    def _spend(self, n: int, phase: str) -> None:
        if not isinstance(phase, str) or not phase:
            raise InvalidEntryError(f"phase must be a non-empty string, got {describe(phase)}")
        if self.budget is not None and self._total + n > self.budget:
            raise QueryBudgetExceededError(
                f"query budget of {self.budget} exceeded: {self._total} used, {n} more asked",
                budget=self.budget, used=self._total,
            )
        self._total += n
        self._counts[phase] = self._counts.get(phase, 0) + n

    def _check_answer(self, y: Any) -> Any:
        """The answer as an element of the field; literals are converted, elements
        of another field (or anything else) are refused."""
        F = self.field
        if F.is_element(y):
            return y
        # an exact field's constructor embeds QQ into EXP; an answer must not rely on that
        for other in (QQ, EXP):
            if F.exact and other != F and other.is_element(y) and literal_rational(y) is None:
                raise IncompatibleFieldError(f"the oracle's target answered {describe(y)}, "
                                             f"an element of {other.name}, not of {F.name}")
        try:
            return F(y)
        except (InvalidEntryError, IncompatibleFieldError) as exc:
            raise type(exc)(f"the oracle's target answered {y!r}: {exc}") from None

    def _stores_batches(self) -> bool:
        """True when a (B, N, d) batch goes to the transcript's store in one vectorised call
        (a subclass that records more per entry, such as a tolerance, records one by one)."""
        return (self.keep_transcript and self.transcript.store is not None
                and type(self)._record is ValueOracle._record)

    def _record(self, phase: str, X: Array, y: Any, tolerance: Any = None) -> None:
        if self.keep_transcript:
            self.transcript._append(
                TranscriptEntry(len(self.transcript), phase, X, y, tolerance))

    # -- queries -----------------------------------------------------------
    def __call__(self, X: Any, *, phase: str = "query") -> Any:
        """Answer one query X (N x d, N >= 1)."""
        start = time.perf_counter()
        try:
            Xc = _frozen(as_query(self.field, X, self.d), X)
            self._spend(1, phase)
            y = self._check_answer(self._target(Xc))
            self._record(phase, Xc, y)
            return y
        finally:
            self._seconds += time.perf_counter() - start

    def batch(self, Xs: Any, *, phase: str = "query") -> Array:
        """Answer a batch of queries; each one is counted.

        ``Xs`` is a sequence of queries or, over F64, a (B, N, d) array that
        is answered in one vectorised pass when the target has ``batch``.
        """
        start = time.perf_counter()
        try:
            checked = as_query_batch(self.field, Xs, self.d)
            stored = self._stores_batches() and isinstance(checked, np.ndarray)
            if not self.keep_transcript:
                pass  # nothing is kept, so the caller's arrays need no protection
            elif stored and isinstance(checked, np.ndarray):
                # the store copies what it keeps, right after the answers: a read-only
                # view keeps the target from writing into the caller's array, no copy
                checked = checked.view()
                checked.flags.writeable = False
            elif isinstance(checked, np.ndarray):
                checked = _frozen(checked, Xs)
            else:
                checked = [_frozen(X, Xs[b]) for b, X in enumerate(checked)]
            self._spend(len(checked), phase)
            answers = self._answer_batch(checked)
            if stored and isinstance(checked, np.ndarray):
                self.transcript._extend(phase, checked, answers)
            elif self.keep_transcript:
                for X, y in zip(checked, answers, strict=True):
                    self._record(phase, X, y)
            return answers
        finally:
            self._seconds += time.perf_counter() - start

    def batch_sums(self, rows: Any, terms: Any, *, phase: str = "query") -> Array:
        """Answer a batch of queries whose tokens are sums of shared rows; each one counted.

        Query b has the tokens ``rows[terms[b, n, 0]] + rows[terms[b, n, 1]] + ...``
        (n = 0..N-1, -1 = no term; :func:`exactattn.queries.row_sums`): the same
        queries as ``batch(row_sums(rows, terms))``, answered in the same order,
        counted, budgeted and transcribed the same way. A grid of probes p_i
        and tokens x_j, queries [(p_i + x_j)^T; x_j^T], is ``rows = [P; X]``,
        ``terms[b] = [[i, n_p + j], [n_p + j, -1]]``.

        Over F64 this is the compact route (issue 12): the rows are validated
        once (O(m d)), the queries are materialised here in blocks of at most
        :data:`SUMS_BLOCK_BYTES`, read-only,
        only for the hidden function, and the transcript's store keeps the rows
        once and each query as its k N row indices (about 80 bytes a query
        instead of 8 N d). When k max|rows| <= DBL_MAX / 4 no sum can overflow
        (:func:`~exactattn.queries.sums_cannot_overflow`) and the blocks need no
        finiteness check; otherwise each block is checked.

        A subclass that answers batches itself (it overrides :meth:`batch`) gets
        the materialised blocks through its own :meth:`batch`.

        >>> import numpy as np
        >>> from exactattn.fields import F64
        >>> oracle = ValueOracle(lambda X: X.sum(), field=F64, d=2)
        >>> oracle.batch_sums(np.eye(2), [[[0, 1], [1, -1]], [[-1, -1], [0, -1]]], phase="g")
        array([3., 1.])
        >>> oracle.queries_by_phase, oracle.transcript[0].X.tolist()
        ({'g': 2}, [[1.0, 1.0], [0.0, 1.0]])
        """
        R, T = as_row_sums(self.field, rows, terms, self.d)
        B = int(T.shape[0])
        if not isinstance(phase, str) or not phase:
            raise InvalidEntryError(f"phase must be a non-empty string, got {describe(phase)}")
        if self.budget is not None and self._total + B > self.budget:
            raise QueryBudgetExceededError(
                f"query budget of {self.budget} exceeded: {self._total} used, {B} more asked",
                budget=self.budget, used=self._total)
        if self.field != F64 or type(self).batch is not ValueOracle.batch:
            # exact fields and subclasses: block by block through batch (which counts
            # and times them)
            step = max(1, B) if self.field.exact else _block_queries(T, self.d)  # B may be 0
            out = np.empty(B, dtype=self.field.dtype)
            for s in range(0, B, step):
                out[s:s + step] = self.batch(row_sums(R, T[s:s + step], zero=self.field.zero()),
                                             phase=phase)
            return out
        start = time.perf_counter()
        try:
            R = R.copy()  # the oracle's own copy: the caller may change its rows later
            R.flags.writeable = False
            step = _block_queries(T, self.d)
            if not sums_cannot_overflow(R, int(T.shape[2])):
                # rows so large that a sum may overflow: check every query before any is
                # counted (materialised twice; sums of ordinary rows skip this)
                for s in range(0, B, step):
                    with np.errstate(over="ignore", invalid="ignore"):
                        Xs = row_sums(R, T[s:s + step])
                    if not np.isfinite(Xs).all():
                        b, n, j = (int(i) for i in np.argwhere(~np.isfinite(Xs))[0])
                        raise InvalidEntryError(
                            f"query {s + b} of the batch (token {n}, entry {j}): the sum of "
                            f"its rows is {Xs[b, n, j]}, beyond float64 (rows up to "
                            f"{float(np.abs(R).max()):.3g} in magnitude); scale the rows down")
            self._spend(B, phase)
            answers = np.empty(B, dtype=np.float64)
            block: Array | None = None
            for s in range(0, B, step):
                part = T[s:s + step]
                # the last block's buffer is filled again when the hidden function kept no
                # reference to it (CPython's count: this name and getrefcount's argument):
                # a target that keeps its queries keeps them unchanged, and a fresh buffer
                # would cost a page fault per 4 KB (about half the materialisation's time)
                reuse = (block is not None and block.shape[0] == part.shape[0]
                         and sys.getrefcount(block) == 2)
                if reuse:
                    assert block is not None
                    block.flags.writeable = True
                block = row_sums(R, part, out=block if reuse else None)
                block.flags.writeable = False
                answers[s:s + step] = self._answer_batch(block)
            if self._stores_batches():
                assert self.transcript.store is not None
                self.transcript.store.extend_sums(phase, R, T, answers)
            elif self.keep_transcript:  # a subclass that records per entry
                for s in range(0, B, step):
                    Xs = row_sums(R, T[s:s + step])
                    Xs.flags.writeable = False
                    for X, y in zip(Xs, answers[s:s + step], strict=True):
                        self._record(phase, X, y)
            return answers
        finally:
            self._seconds += time.perf_counter() - start

    def _answer_batch(self, checked: list[Array] | Array) -> Array:
        F = self.field
        batch = getattr(self._target, "batch", None)
        if batch is not None:
            raw = batch(checked)
            if not hasattr(raw, "__len__"):
                raise InvalidEntryError(f"the oracle's target answered {describe(raw)} to a "
                                        f"batch of {len(checked)} queries, not a sequence")
            if len(raw) != len(checked):
                raise InvalidEntryError(f"the oracle's target answered {len(raw)} values "
                                        f"to a batch of {len(checked)} queries")
            if not F.exact and isinstance(raw, np.ndarray) and raw.dtype == np.float64:
                F.check_array(raw, name="the oracle's answers")
                return raw
            answers = np.empty(len(checked), dtype=F.dtype)
            for b, y in enumerate(raw):
                answers[b] = self._check_answer(y)
            return answers
        out = np.empty(len(checked), dtype=F.dtype)
        for b, X in enumerate(checked):
            out[b] = self._check_answer(self._target(X))
        return out


def _is_count(n: Any) -> bool:
    """True for an int or numpy integer that is not a bool (sizes, budgets, d)."""
    return isinstance(n, int | np.integer) and not isinstance(n, bool | np.bool_)


def _block_queries(terms: Array, d: int) -> int:
    """Queries per materialised block of :meth:`ValueOracle.batch_sums` (a few MB)."""
    return max(1, SUMS_BLOCK_BYTES // (int(terms.shape[1]) * d * 8))


def _frozen(checked: Array, given: Any) -> Array:
    """A read-only array that the caller cannot change afterwards (copied if shared)."""
    if checked is given or (isinstance(given, np.ndarray) and np.shares_memory(checked, given)):
        checked = checked.copy()
    checked.flags.writeable = False
    return checked


# -- approximate value queries ----------------------------------------------------
#: the adversaries of :class:`NoisyOracle`
ADVERSARIES = ("uniform", "max", "min", "worst", "break_naive")

#: answers are rationals with this many bits after the binary point (at most)
ANSWER_BITS = 96


class NoisyOracle(ValueOracle):
    """Approximate value queries AVQ(X; tau): any answer in [f(X) - tau, f(X) + tau].

    The hidden model is exact (over EXP or QQ); answers are rationals (over
    :data:`~exactattn.fields.QQ`) chosen by an adversary, deterministically:
    the same query with the same tolerance always gets the same answer, so
    repeating or averaging cannot help (paper.md §1). Every answer is checked
    *exactly* to lie in the interval before it is returned.

    Parameters
    ----------
    model : the hidden exact model (``field`` EXP or QQ).
    tolerance : the default tolerance tau (a rational), or a dict from query
        length N to tolerance (the theorem uses tau_v for N = 1 and tau_f for
        N = 2). A learner may ask for a tolerance per query
        (``oracle(X, tolerance=...)``); it is recorded in the transcript.
    adversary :
        ``"uniform"``: a seeded uniform offset in [-tau, tau];
        ``"max"`` / ``"min"``: the upper / lower edge;
        ``"worst"``: for two tokens, the edge that moves the clipped logit
        estimate (y - c_2)/(c_1 - c_2) -> logit(clip(.)) the most, given the
        probe; for one token, the edge towards 0 (shrinks |v_i|);
        ``"break_naive"``: the edge that pushes the unclipped estimate
        (y - c_2)/(c_1 - c_2) towards the nearer of 0 and 1 (outside (0, 1)
        when tau allows it); for one token, towards 0.
    seed : seed of the uniform adversary.

    >>> from fractions import Fraction
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, 0], [0, 1]], [Fraction(1, 2), 1], field=EXP)
    >>> oracle = NoisyOracle(head, tolerance=Fraction(1, 100), adversary="max")
    >>> oracle([[1, 0]])                  # f = 1/2, pushed to the upper edge 1/2 + 1/100
    51/100
    >>> oracle.transcript[0].tolerance
    1/100
    """

    def __init__(
        self,
        model: Any,
        *,
        tolerance: Any,
        adversary: str = "uniform",
        seed: int = 0,
        budget: int | None = None,
        keep_transcript: bool = True,
        name: str | None = None,
    ) -> None:
        model_field = getattr(model, "field", None)
        if not isinstance(model_field, Field) or not model_field.exact:
            raise IncompatibleFieldError(
                "a NoisyOracle needs an exact hidden model (over EXP or QQ) to keep its "
                "answers provably within the tolerance")
        if not _is_count(getattr(model, "d", None)):
            raise InvalidEntryError(f"the hidden model {describe(model)} has no integer d")
        if not _is_count(seed):
            raise InvalidEntryError(f"seed must be an integer, got {describe(seed)}")
        if not isinstance(adversary, str) or adversary not in ADVERSARIES:
            raise InvalidEntryError(
                f"unknown adversary {adversary!r}; choose one of {', '.join(ADVERSARIES)}")
        self._model = model
        self._tolerances = _tolerance_table(tolerance)
        self.adversary = adversary
        self.seed = seed
        self._cache: dict[tuple[str, ...], Any] = {}
        self._pending: Any = None
        super().__init__(self._answer, field=QQ, d=int(model.d), budget=budget,
                         keep_transcript=keep_transcript,
                         name=name or f"Noisy({type(model).__name__}, {adversary})")

    def fork(self, name: str) -> ValueOracle:
        """A fresh noisy oracle on the same model, adversary and tolerances."""
        other = NoisyOracle(self._model, tolerance=dict(self._tolerances), adversary=self.adversary,
                            seed=self.seed, keep_transcript=self.keep_transcript,
                            name=f"{self.name}/{name}")
        return other

    def tolerance_for(self, N: int) -> Any:
        """The default tolerance for a query of N tokens."""
        tau = self._tolerances.get(N, self._tolerances.get(0))
        if tau is None:
            raise InvalidEntryError(f"no tolerance set for queries of length {N}")
        return tau

    def __call__(self, X: Any, *, phase: str = "query", tolerance: Any = None) -> Any:
        """Answer one query within ``tolerance`` (default: the oracle's for its length)."""
        self._pending = None if tolerance is None else _nonnegative_rational(tolerance)
        if tolerance is None and isinstance(X, Sequence | np.ndarray) and not isinstance(X, str):
            shape = shape_of(X, "query")
            if len(shape) == 2:
                self.tolerance_for(shape[0])  # refuse before the query is counted
        try:
            return super().__call__(X, phase=phase)
        finally:
            self._pending = None

    def batch(self, Xs: Any, *, phase: str = "query", tolerance: Any = None) -> Array:
        """Answer a batch of queries, each within ``tolerance``."""
        self._pending = None if tolerance is None else _nonnegative_rational(tolerance)
        if tolerance is None and isinstance(Xs, Sequence | np.ndarray) and not isinstance(Xs, str):
            for b, X in enumerate(Xs):
                if isinstance(X, str):
                    continue  # refused by the validation of the batch
                shape = shape_of(X, f"batch[{b}]")
                if len(shape) == 2:
                    self.tolerance_for(shape[0])  # refuse before anything is counted
        try:
            return super().batch(Xs, phase=phase)
        finally:
            self._pending = None

    def _record(self, phase: str, X: Array, y: Any, tolerance: Any = None) -> None:
        super()._record(phase, X, y, self._used_tolerance(X))

    def _used_tolerance(self, X: Array) -> Any:
        return self._pending if self._pending is not None else self.tolerance_for(X.shape[0])

    # -- the answer -------------------------------------------------------
    def _answer(self, X: Array) -> Any:
        tau = self._used_tolerance(X)
        key = (str(tau), *(str(x) for x in X.flat))
        if key in self._cache:
            return self._cache[key]
        M = self._model
        Xm = M.field.array([[M.field(x) for x in row] for row in X])
        f = M(Xm)
        y = self._choose(X, Xm, f, tau, key)
        F = EXP
        fe, ye, te = F(f), F(y), F(tau)
        if not (fe - te <= ye <= fe + te):  # exact, by the field's sign decision
            raise AssertionError("internal error: a NoisyOracle answer left its interval")
        self._cache[key] = y
        return y

    def _choose(self, X: Array, Xm: Array, f: Any, tau: Any, key: tuple[str, ...]) -> Any:
        """A rational y in [f - tau, f + tau] as the adversary wants it."""
        F = EXP
        fe = F(f)
        if tau == 0:
            if F.is_rational(fe):
                return F.to_rational(fe)
            raise NotRepresentableError(
                "tolerance 0 asks for the exact answer, which is irrational here; "
                "use a ValueOracle over EXP for exact answers")
        offset = self._offset(X, Xm, fe, tau, key)  # a rational in [-1, 1]: y ~ f + offset tau
        scale = fmpz(2) ** ANSWER_BITS
        target = fe + F(offset * tau)
        if F.is_rational(target):
            return F.to_rational(target)
        with ctx.workprec(ANSWER_BITS + 64):
            ball = target.arb(ANSWER_BITS + 64)
            # round inwards: towards f, so that the edges stay inside the interval
            mid = ball.mid()
            y = fmpq(int((mid * arb(scale)).floor().unique_fmpz()), scale) if offset > 0 else \
                fmpq(int((mid * arb(scale)).ceil().unique_fmpz()), scale)
        ye = F(y)
        if fe - F(tau) <= ye <= fe + F(tau):
            return y
        # the ball of the edge was too wide to round inwards safely: step one unit in
        step = fmpq(1, scale) if offset < 0 else fmpq(-1, scale)
        y = y + step
        if not (fe - F(tau) <= F(y) <= fe + F(tau)):  # pragma: no cover - tau < 2^-ANSWER_BITS
            raise NotRepresentableError(
                f"tolerance {tau} is too small for {ANSWER_BITS}-bit answers")
        return y

    def _offset(self, X: Array, Xm: Array, fe: Any, tau: Any, key: tuple[str, ...]) -> fmpq:
        adv = self.adversary
        if adv == "max":
            return fmpq(1)
        if adv == "min":
            return fmpq(-1)
        if adv == "uniform":
            digest = hashlib.sha256(repr((self.seed, key)).encode()).digest()
            k = int.from_bytes(digest[:8], "big")
            return fmpq(2 * k, 2**64 - 1) - 1
        # "worst" and "break_naive" look at the probe, as an adversary may
        if X.shape[0] == 1:
            return fmpq(-1) if EXP.sign(fe) > 0 else fmpq(1)  # towards 0
        v = self._model.v
        c1 = EXP(Xm[0] @ v)
        c2 = EXP(Xm[-1] @ v)
        gap = float(c1 - c2)
        if gap == 0:
            return fmpq(1)
        alpha = (float(fe) - float(c2)) / gap
        up = fmpq(1) if gap > 0 else fmpq(-1)  # the edge that increases the estimate
        if adv == "break_naive":
            return up if alpha >= 0.5 else -up
        # worst: the edge with the larger move of logit(clip(estimate))
        t = float(tau) / abs(gap)
        moves = [abs(_clipped_logit(alpha + t) - _clipped_logit(alpha)),
                 abs(_clipped_logit(alpha - t) - _clipped_logit(alpha))]
        return up if moves[0] >= moves[1] else -up


def _clipped_logit(p: float) -> float:
    """logit(clip(p)) in floats: only the adversary's heuristic uses it."""
    tau_c = 1.0 / (1.0 + math.exp(0.5))
    q = min(max(p, tau_c), 1.0 - tau_c)
    return math.log(q / (1.0 - q))


def _nonnegative_rational(tau: Any) -> fmpq:
    from .fields.rational import rational

    q = rational(tau)
    if q < 0:
        raise InvalidEntryError(f"a tolerance must be >= 0, got {q}")
    return q


def _tolerance_table(tolerance: Any) -> dict[int, fmpq]:
    """{N: tau}, with key 0 for the default."""
    if isinstance(tolerance, dict):
        if any(not _is_count(N) or N < 0 for N in tolerance):
            raise InvalidEntryError("tolerance keys are query lengths N >= 1 (or 0 for default),"
                                    f" got {', '.join(describe(N) for N in tolerance)}")
        return {int(N): _nonnegative_rational(t) for N, t in tolerance.items()}
    return {0: _nonnegative_rational(tolerance)}


def enclosing_oracle(model: Any, field: Field, **kwargs: Any) -> ValueOracle:
    """An oracle over BALL(prec) or MP(prec) for an exact hidden model.

    Each answer is the exact value (computed in the model's exact field)
    enclosed at the field's precision: over BALL a ball guaranteed to
    contain it, over MP the value rounded to ``prec`` bits. Queries must be
    exactly known (zero-radius balls; mpmath numbers are exact dyadics).

    >>> from exactattn.fields import BALL, EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, 0], [0, 1]], [1, 2], field=EXP)
    >>> oracle = enclosing_oracle(head, BALL(80))
    >>> y = oracle([[1, 0], [0, 1]])
    >>> bool(y.value.contains(head(EXP.array([[1, 0], [0, 1]])).arb(200)))
    True
    """
    from .fields import BallField, MPField, PrecisionElement
    from .fields.precision import arf_to_fmpq
    from .linalg import exact_values

    if not isinstance(field, BallField | MPField):
        raise IncompatibleFieldError(f"enclosing_oracle needs BALL(prec) or MP(prec), "
                                     f"not {field.name}")
    exact_field = getattr(model, "field", None)
    if not isinstance(exact_field, Field) or not exact_field.exact:
        raise IncompatibleFieldError("enclosing_oracle needs an exact hidden model (EXP or QQ)")

    def answer(X: Array) -> Any:
        Q = exact_values(field, X)
        Xe = exact_field.array([[exact_field(Q[i, k]) for k in range(Q.ncols())]
                                for i in range(Q.nrows())])
        y = EXP(model(Xe))
        if isinstance(field, BallField):
            return PrecisionElement(y.arb(field.prec), field)
        ball = y.arb(field.prec + 64)
        return field(arf_to_fmpq(ball.mid()))

    return ValueOracle(answer, field=field, d=int(model.d), **kwargs)


# -- membership (label) queries ---------------------------------------------------
class SignOracle(ValueOracle):
    """Membership (label) queries: sign(f(X) - threshold) in {-1, 0, +1}, counted.

    Wraps the same targets as :class:`ValueOracle` (a model, or a callable with
    ``field=`` and ``d=``) and answers only the label of each query, as an
    element of the target's field (``-1``, ``0`` or ``1``), never the value.
    Queries are validated, counted per phase, transcribed (the transcript holds
    the labels), budgeted and batched exactly like a :class:`ValueOracle`.

    The label is exact over an exact field: ``sign`` in EXP is decided by
    ball arithmetic at rising precision on a nonzero element, and 0 only for
    an element equal to 0 (Lindemann–Weierstrass). Over F64 it is the sign of
    the float64 value, wrong when ``|f(X) - threshold|`` is below the float
    error.

    Label ``membership_queries`` (:mod:`exactattn.learners.membership`).

    Parameters
    ----------
    target : a model or a callable X -> number (as for :class:`ValueOracle`).
    threshold : a number of the field (default 0). Labels of a threshold 0 are
        invariant under v -> lambda v, lambda > 0; that is the ambiguity the
        membership learner reports.

    >>> from exactattn.fields import EXP
    >>> oracle = SignOracle(lambda X: X[0, 0] - 1, field=EXP, d=1)
    >>> oracle([[3]]), oracle([[1]]), oracle([[0]]), oracle.queries
    (1, 0, -1, 3)
    >>> SignOracle(lambda X: X[0, 0], field=EXP, d=1, threshold="1/2")
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: threshold of a SignOracle over EXP: string '1/2' is not ...
    """

    def __init__(
        self,
        target: Callable[[Array], Any],
        *,
        threshold: Any = 0,
        field: Field | None = None,
        d: int | None = None,
        budget: int | None = None,
        keep_transcript: bool = True,
        name: str | None = None,
    ) -> None:
        # the value oracle's checks resolve field and d; then the target answers labels
        super().__init__(target, field=field, d=d, budget=budget,
                         keep_transcript=keep_transcript, name=name)
        F = self.field
        try:
            theta = threshold if F.is_element(threshold) else F(threshold)
        except (InvalidEntryError, IncompatibleFieldError) as exc:
            raise InvalidEntryError(
                f"threshold of a SignOracle over {F.name}: {exc}") from None
        self.threshold: Any = theta
        self._source = target
        self._target = self._label
        self.name = name or f"Sign({self.name})"

    def _label(self, X: Array) -> Any:
        F = self.field
        y = self._check_answer(self._source(X))
        return F(F.sign(y - self.threshold))

    def fork(self, name: str) -> ValueOracle:
        """A fresh sign oracle on the same target and threshold (own counter, no budget)."""
        return SignOracle(self._source, threshold=self.threshold, field=self.field, d=self.d,
                          keep_transcript=self.keep_transcript, name=f"{self.name}/{name}")

    def __repr__(self) -> str:
        return (f"SignOracle({self.name}, field={self.field.name}, d={self.d}, "
                f"threshold={self.threshold}, queries={self.queries}, budget={self.budget})")
