"""A durable journal of answered queries, so that an interrupted run resumes.

Every query an oracle asks through a :class:`JournaledTarget` is answered
either from the journal (when this run has already asked it) or by the inner
target (a remote model, or any target), and in the second case the answer is
committed to the journal *before* it is returned. A run killed at any point
(SIGKILL included) and started again with the same journal asks the inner
target only the queries past the journal's end: the transcript, the query
counts and the result are those of an uninterrupted run.

Design (see docs/remote.md, "Journals and resuming"):

* one SQLite database (stdlib :mod:`sqlite3`) in WAL mode with
  ``synchronous=FULL``: a committed transaction is on disk (the WAL is
  fsynced at each commit), a transaction cut by a kill is rolled back when
  the journal is next opened, so the journal always holds a prefix of the
  run, never half a batch;
* table ``answers``: one row per answered query, keyed by (stream,
  position), with the phase, the query's key (:func:`journal_key`) and the
  answer encoded by the field's JSON form (exact for EXP and QQ, bit-exact
  for F64 through ``repr``);
* table ``header``: the run's fingerprint (instance, field, d, learner,
  seed, options, exactattn version); opening a journal with another
  fingerprint raises :class:`~exactattn.errors.JournalMismatchError` naming
  the key that differs;
* streams: the learner's queries are stream ``"main"``; a fork (the
  certificate's fresh probes, :meth:`JournaledTarget.fork`) journals into its
  own stream ``"main/<name>#<n>"`` (the n-th fork of that name), so that row
  k of ``"main"`` is entry k of the oracle's transcript.

A resumed run is checked query by query: the k-th query asked must have the
key of row k, otherwise :class:`~exactattn.errors.JournalDivergedError`
("the run diverged from the journal at query k"); an answer is never taken
from a row of another query.

>>> import tempfile, os
>>> from exactattn.fields import QQ
>>> from exactattn.oracle import ValueOracle
>>> path = os.path.join(tempfile.mkdtemp(), "run.journal")
>>> calls = []
>>> def square(X):
...     calls.append(1)
...     return X[0, 0] * X[0, 0]
>>> fp = {"instance_sha256": "demo", "field": "QQ", "d": 1}
>>> with Journal(path, fp) as journal:           # first run: asks the target
...     oracle = ValueOracle(JournaledTarget(square, journal, field=QQ, d=1))
...     oracle([[3]]), oracle([[5]]), len(calls)
(9, 25, 2)
>>> with Journal(path, fp) as journal:           # resumed: answered from the journal
...     oracle = ValueOracle(JournaledTarget(square, journal, field=QQ, d=1))
...     oracle([[3]]), oracle([[5]]), oracle([[7]]), len(calls)
(9, 25, 49, 3)
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    JournalDivergedError,
    JournalMismatchError,
)
from ..fields import EXP, F64, QQ, Array, Field
from ..fields.base import describe
from ..oracle import ValueOracle
from .protocol import dumps, query_key

__all__ = ["Journal", "JournalRow", "JournaledTarget", "JournaledOracle", "journal_key",
           "journal_fingerprint", "FORMAT", "MAIN"]

#: version of the journal's tables (header key ``journal_format``)
FORMAT = 1
#: the stream of the learner's own queries
MAIN = "main"
#: answers committed per transaction in a batch (a kill loses at most one chunk)
DEFAULT_CHUNK = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS header (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    stream TEXT NOT NULL,
    position INTEGER NOT NULL,
    phase TEXT NOT NULL,
    query_key TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (stream, position)
) WITHOUT ROWID;
"""


class JournalRow(NamedTuple):
    """One journaled answer: its position in its stream, phase, query key, answer (JSON text)."""

    position: int
    phase: str
    query_key: str
    answer: str


def journal_key(field: Field, X: Array) -> str:
    """The key of one query X over ``field``: :func:`~exactattn.remote.protocol.query_key`.

    The same key as in the server's log (sha256 of the query's canonical wire
    form), so a journal and a server log can be compared query by query.

    >>> from exactattn.fields import QQ
    >>> journal_key(QQ, QQ.array([[1, 2]])) == journal_key(QQ, QQ.array([[1, 2]]))
    True
    >>> journal_key(QQ, QQ.array([[1, 2]])) == journal_key(QQ, QQ.array([[2, 1]]))
    False
    """
    return query_key(field, X)


def journal_fingerprint(*, instance_sha256: str, field: str, d: int, label: str, seed: int,
                        options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of a run: a resumed run must have the same, key for key.

    ``options`` are the learner's options that change its queries (for
    example ``probes``, ``certificate_probes``); the exactattn version is
    added, since another version may ask other queries.
    """
    from .. import __version__

    return {"instance_sha256": instance_sha256, "field": field, "d": d, "label": label,
            "seed": seed, "options": dict(options or {}), "exactattn_version": __version__}


def _canonical(value: Any) -> str:
    """``value`` as the wire's canonical JSON (:func:`~exactattn.remote.protocol.dumps`:
    sorted keys, compact, no NaN or Infinity, which no JSON reader need accept)."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidEntryError(f"a journal fingerprint value must be JSON: {describe(value)} "
                                f"({exc})") from None


class Journal:
    """A journal file: the run's fingerprint and its answered queries, per stream.

    Parameters
    ----------
    path : the SQLite file (created if absent; ``-wal`` and ``-shm`` files
        appear beside it while it is open).
    fingerprint : JSON-serialisable values naming the run
        (:func:`journal_fingerprint`). A new journal stores them; an existing
        one must hold the same keys and values, else
        :class:`~exactattn.errors.JournalMismatchError` names the first key
        that differs (sorted order) with its old and new values.

    Raises
    ------
    InvalidEntryError
        The file is not a journal (not SQLite, or other tables), cannot be
        opened, or its streams have a gap (a damaged file).
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: Mapping[str, Any]) -> None:
        if not isinstance(fingerprint, Mapping) or not fingerprint:
            raise InvalidEntryError(f"a journal needs a non-empty fingerprint mapping, got "
                                    f"{describe(fingerprint)}")
        self.path = os.fspath(path)
        wanted = {"journal_format": _canonical(FORMAT),
                  **{str(k): _canonical(v) for k, v in fingerprint.items()}}
        try:
            self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise InvalidEntryError(f"journal {self.path}: cannot open it ({exc})") from None
        try:
            self._setup(wanted)
        except BaseException:
            self._db.close()
            raise
        self.fingerprint = {k: json.loads(v) for k, v in wanted.items()}
        self._lengths = self._stream_lengths()
        self._targets = 0  # JournaledTargets opened without a stream name (see default_stream)
        #: answers read from the journal / written to it since it was opened (every stream)
        self.replayed = 0
        self.written = 0

    # -- opening -------------------------------------------------------------
    def _setup(self, wanted: dict[str, str]) -> None:
        db = self._db
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            db.execute("PRAGMA synchronous=FULL")
            if str(mode).lower() != "wal":
                raise InvalidEntryError(f"journal {self.path}: SQLite refused WAL mode (got "
                                        f"{mode!r}); put the journal on a local file system")
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                stored = dict(db.execute("SELECT key, value FROM header").fetchall())
                if not stored:
                    rows = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
                    if rows:
                        raise InvalidEntryError(f"journal {self.path}: {rows} answers but no "
                                                "header; the file is damaged, start a new one")
                    db.executemany("INSERT INTO header (key, value) VALUES (?, ?)",
                                   sorted(wanted.items()))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise InvalidEntryError(f"journal {self.path} is not an exactattn journal (SQLite: "
                                    f"{exc}); give a new file name or the journal of this "
                                    "run") from None
        if stored:
            for key in sorted(set(stored) | set(wanted)):
                old, new = stored.get(key), wanted.get(key)
                if old != new:
                    shown_old = "absent" if old is None else old
                    shown_new = "absent" if new is None else new
                    raise JournalMismatchError(
                        f"journal {self.path} belongs to another run: {key} is {shown_old} "
                        f"in the journal and {shown_new} in this run; resume with the same "
                        "instance, learner, seed and options, or give a new journal file",
                        key=key, old=None if old is None else json.loads(old),
                        new=None if new is None else json.loads(new))

    def _stream_lengths(self) -> dict[str, int]:
        lengths = {}
        for stream, count, top in self._db.execute(
                "SELECT stream, COUNT(*), MAX(position) FROM answers GROUP BY stream"):
            if top != count - 1:
                raise InvalidEntryError(f"journal {self.path}: stream {stream!r} has {count} "
                                        f"rows but positions up to {top}; the file is damaged, "
                                        "start a new one")
            lengths[str(stream)] = int(count)
        return lengths

    # -- reading and writing -------------------------------------------------
    def length(self, stream: str = MAIN) -> int:
        """Number of answers journaled in ``stream``."""
        return self._lengths.get(stream, 0)

    def default_stream(self) -> str:
        """The stream of a :class:`JournaledTarget` opened on this journal without a name.

        The first is ``"main"``; the k-th after it ``"main/fork#k"``. An oracle
        that forks by wrapping its inner target again (instead of
        :meth:`JournaledTarget.fork`) thus journals each fork in its own
        stream, in the order the run opens them, which a resumed run repeats.
        """
        k, self._targets = self._targets, self._targets + 1
        return MAIN if k == 0 else f"{MAIN}/fork#{k}"

    def streams(self) -> dict[str, int]:
        """{stream: number of answers} for every stream with at least one answer."""
        return dict(self._lengths)

    def rows(self, stream: str = MAIN, start: int = 0, stop: int | None = None
             ) -> list[JournalRow]:
        """The rows of ``stream`` at positions start <= k < stop, in order."""
        stop = self.length(stream) if stop is None else min(stop, self.length(stream))
        if start >= stop:
            return []
        cur = self._db.execute(
            "SELECT position, phase, query_key, answer FROM answers WHERE stream = ? AND "
            "position >= ? AND position < ? ORDER BY position", (stream, start, stop))
        return [JournalRow(int(p), str(ph), str(k), str(a)) for p, ph, k, a in cur]

    def append(self, stream: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """Commit (phase, query_key, answer) rows at the end of ``stream``, in one transaction.

        When this returns, the rows are on disk (WAL, ``synchronous=FULL``).
        """
        if not rows:
            return
        start = self.length(stream)
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO answers (stream, position, phase, query_key, answer) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [(stream, start + i, ph, k, a) for i, (ph, k, a) in enumerate(rows)])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError:
            raise InvalidEntryError(f"journal {self.path}: position {start} of stream "
                                    f"{stream!r} was written by another process; run one "
                                    "process per journal") from None
        except sqlite3.Error as exc:
            raise InvalidEntryError(f"journal {self.path}: writing {len(rows)} answers at "
                                    f"position {start} of stream {stream!r} failed ({exc})"
                                    ) from None
        self._lengths[stream] = start + len(rows)
        self.written += len(rows)

    def close(self) -> None:
        """Close the database (the journal stays valid; a later open resumes it)."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({self.path!r}, streams={self._lengths})"


class JournaledTarget:
    """A target that answers from a :class:`Journal` first, then from ``inner``.

    Placed under a :class:`~exactattn.oracle.ValueOracle` (which keeps the
    counting, the budget and the transcript): the k-th query asked is
    answered from row k of the stream when the journal has it (after checking
    that the row is the same query), and the queries past the journal's end go
    to ``inner``; each answer is committed before it is returned (a batch is
    committed per chunk of ``chunk_size``).

    Parameters
    ----------
    inner : the target answering new queries (``__call__``, optionally
        ``batch``): a remote model, an in-process model, any callable.
    journal : the open :class:`Journal`.
    field, d : as for a ValueOracle; taken from ``inner`` when it has them.
    stream : the journal stream; by default :meth:`Journal.default_stream`
        (``"main"`` for the first target opened on the journal).
    chunk_size : answers per transaction in a batch.

    Attributes
    ----------
    phase : the phase journaled with the next answers; an oracle that knows
        its phases sets it before each query (default ``"query"``).
    replayed, forwarded : answers taken from the journal / asked of ``inner``.
    """

    def __init__(self, inner: Callable[[Array], Any], journal: Journal, *,
                 field: Field | None = None, d: int | None = None, stream: str | None = None,
                 chunk_size: int = DEFAULT_CHUNK) -> None:
        if not callable(inner):
            raise InvalidEntryError(f"the inner target of a journal is a callable X -> number, "
                                    f"got {describe(inner)}")
        if not isinstance(journal, Journal):
            raise InvalidEntryError(f"journal must be a Journal, got {describe(journal)}")
        inner_field = getattr(inner, "field", None)
        F = field if field is not None else inner_field
        if not isinstance(F, Field):
            raise InvalidEntryError("field= is required when the inner target has no field")
        if isinstance(inner_field, Field) and inner_field != F:
            raise IncompatibleFieldError(f"the inner target is over {inner_field.name}, the "
                                         f"journal over {F.name}")
        if journal.fingerprint.get("field", F.name) != F.name:
            raise IncompatibleFieldError(f"journal {journal.path} is over "
                                         f"{journal.fingerprint['field']}, the target over "
                                         f"{F.name}")
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise InvalidEntryError(f"chunk_size must be a positive integer, got "
                                    f"{describe(chunk_size)}")
        self.inner = inner
        self.journal = journal
        self.field: Field = F
        inner_d = getattr(inner, "d", None)
        if d is not None:
            self.d: int | None = d
        elif isinstance(inner_d, int):
            self.d = inner_d
        else:
            self.d = None  # the oracle's d= decides
        if stream is not None and (not isinstance(stream, str) or not stream):
            raise InvalidEntryError(f"stream must be a non-empty string, got {describe(stream)}")
        self.stream: str = journal.default_stream() if stream is None else stream
        self.chunk_size = chunk_size
        self.phase = "query"
        self.replayed = 0
        self.forwarded = 0
        self._position = 0
        self._forks: dict[str, int] = {}

    # -- encoding ------------------------------------------------------------
    def _element(self, y: Any) -> Any:
        """The inner target's answer as an element of the field (refused otherwise)."""
        F = self.field
        if F.is_element(y):
            return y
        for other in (QQ, EXP):
            if F.exact and other != F and other.is_element(y):
                raise IncompatibleFieldError(f"the journaled target answered {describe(y)}, "
                                             f"an element of {other.name}, not of {F.name}")
        try:
            return F(y)
        except ExactattnError as exc:
            raise type(exc)(f"the journaled target answered {describe(y)}: {exc}") from None

    def _encode(self, y: Any) -> str:
        return json.dumps(self.field.to_json(y), separators=(",", ":"))

    def _decode(self, row: JournalRow) -> Any:
        try:
            return self.field.from_json(json.loads(row.answer))
        except (ExactattnError, ValueError, TypeError, KeyError, ArithmeticError) as exc:
            raise InvalidEntryError(f"journal {self.journal.path}: the answer at position "
                                    f"{row.position} of stream {self.stream!r} is not a number "
                                    f"of {self.field.name} ({exc})") from None

    # -- answering ---------------------------------------------------------------
    def _replay(self, keys: Sequence[str]) -> list[Any]:
        """Answers of the next queries that the journal holds (checked key by key)."""
        start = self._position
        rows = self.journal.rows(self.stream, start, start + len(keys))
        for row, key in zip(rows, keys, strict=False):
            if row.query_key != key or row.phase != self.phase:
                raise JournalDivergedError(
                    f"the run diverged from the journal {self.journal.path} at query "
                    f"{row.position} of stream {self.stream!r}: the journal holds query "
                    f"{row.query_key[:12]} (phase {row.phase!r}), the run asked {key[:12]} "
                    f"(phase {self.phase!r}); the learner, its options or exactattn differ "
                    "from the journaled run: start a new journal",
                    stream=self.stream, position=row.position)
        self._position += len(rows)
        self.replayed += len(rows)
        self.journal.replayed += len(rows)
        return [self._decode(row) for row in rows]

    def _commit(self, keys: Sequence[str], answers: Sequence[Any]) -> None:
        self.journal.append(self.stream, [(self.phase, k, self._encode(y))
                                          for k, y in zip(keys, answers, strict=True)])
        self._position += len(keys)
        self.forwarded += len(keys)

    def __call__(self, X: Array) -> Any:
        """Answer one query: from the journal, else from ``inner`` (committed first)."""
        key = journal_key(self.field, X)
        old = self._replay([key])
        if old:
            return old[0]
        y = self._element(self.inner(X))
        self._commit([key], [y])
        return y

    def batch(self, Xs: Sequence[Array] | Array) -> Array:
        """Answer a batch: the journaled prefix from the journal, the rest from ``inner``
        in chunks of ``chunk_size``, each chunk committed before the next is asked."""
        F = self.field
        n = len(Xs)
        keys = [journal_key(F, X) for X in Xs]
        out = np.empty(n, dtype=F.dtype)
        old = self._replay(keys)
        for b, y in enumerate(old):
            out[b] = y
        inner_batch = getattr(self.inner, "batch", None)
        for lo in range(len(old), n, self.chunk_size):
            hi = min(n, lo + self.chunk_size)
            part = Xs[lo:hi]
            raw = inner_batch(part) if inner_batch is not None else [self.inner(X) for X in part]
            if not hasattr(raw, "__len__") or len(raw) != hi - lo:
                raise InvalidEntryError(f"the journaled target answered {describe(raw)} to a "
                                        f"batch of {hi - lo} queries")
            if F == F64 and isinstance(raw, np.ndarray) and raw.dtype == np.float64:
                F.check_array(raw, name="the journaled target's answers")
                answers: Sequence[Any] = list(raw)  # finite float64 already
            else:
                answers = [self._element(y) for y in raw]
            self._commit(keys[lo:hi], answers)
            for b, y in enumerate(answers, start=lo):
                out[b] = y
        return out

    def fork(self, name: str) -> JournaledTarget:
        """A journaled target on the same inner target, in its own stream.

        The n-th fork named ``name`` journals into ``"<stream>/<name>#<n>"``:
        a resumed run that forks in the same order finds its probes there.
        """
        if not isinstance(name, str) or not name or "/" in name:
            raise InvalidEntryError(f"a fork's name is a non-empty string without '/', got "
                                    f"{describe(name)}")
        n = self._forks[name] = self._forks.get(name, 0) + 1
        return JournaledTarget(self.inner, self.journal, field=self.field, d=self.d,
                               stream=f"{self.stream}/{name}#{n}", chunk_size=self.chunk_size)

    def __repr__(self) -> str:
        return (f"JournaledTarget({self.inner!r}, stream={self.stream!r}, "
                f"position={self._position}, journaled={self.journal.length(self.stream)})")


class JournaledOracle(ValueOracle):
    """A :class:`~exactattn.oracle.ValueOracle` over a :class:`JournaledTarget`.

    The oracle counts, budgets and transcribes as any ValueOracle; in
    addition it tells the journal the phase of each query (journaled with the
    answer, and checked on a resume) and its :meth:`fork` journals into the
    fork's own stream (:meth:`JournaledTarget.fork`), so that the
    certificate's probes are resumed too and row k of ``"main"`` is entry k
    of this oracle's transcript.

    Parameters
    ----------
    target : a :class:`JournaledTarget`.
    field, d, budget, keep_transcript, name : as for a ValueOracle.
    """

    def __init__(self, target: JournaledTarget, *, field: Field | None = None,
                 d: int | None = None, budget: int | None = None, keep_transcript: bool = True,
                 name: str | None = None) -> None:
        if not isinstance(target, JournaledTarget):
            raise InvalidEntryError(f"a JournaledOracle's target is a JournaledTarget, got "
                                    f"{describe(target)}")
        super().__init__(target, field=field, d=d, budget=budget,
                         keep_transcript=keep_transcript,
                         name=name or f"Journaled({type(target.inner).__name__})")
        self.journaled: JournaledTarget = target

    def __call__(self, X: Any, *, phase: str = "query") -> Any:
        self.journaled.phase = phase
        return super().__call__(X, phase=phase)

    def batch(self, Xs: Any, *, phase: str = "query") -> Array:
        self.journaled.phase = phase
        return super().batch(Xs, phase=phase)

    def fork(self, name: str) -> ValueOracle:
        """A fresh oracle (own counter, no budget) journaling into the fork's own stream."""
        return JournaledOracle(self.journaled.fork(name), field=self.field, d=self.d,
                               keep_transcript=self.keep_transcript, name=f"{self.name}/{name}")

