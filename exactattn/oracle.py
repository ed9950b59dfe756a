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

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import IncompatibleFieldError, InvalidEntryError, QueryBudgetExceededError
from .fields import EXP, QQ, Array, Field, field_by_name
from .fields.base import describe, literal_rational
from .queries import as_query, as_query_batch

__all__ = ["ValueOracle", "Transcript", "TranscriptEntry"]


@dataclass(frozen=True)
class TranscriptEntry:
    """One answered query: its index, phase, the query X and the answer."""

    index: int
    phase: str
    X: Array
    answer: Any


class Transcript(Sequence[TranscriptEntry]):
    """The append-only record of an oracle's answered queries.

    Slicing gives a frozen copy (a :class:`Transcript` too); ``to_json`` and
    ``from_json`` save and load it with exact field elements.
    """

    def __init__(self, field: Field, entries: Sequence[TranscriptEntry] = ()) -> None:
        self.field = field
        self._entries: list[TranscriptEntry] = list(entries)

    def _append(self, entry: TranscriptEntry) -> None:
        self._entries.append(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return Transcript(self.field, self._entries[i])
        return self._entries[i]

    def __iter__(self) -> Iterator[TranscriptEntry]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"Transcript({len(self)} entries over {self.field.name})"

    def to_json(self) -> dict[str, Any]:
        F = self.field
        return {
            "field": F.name,
            "entries": [
                {
                    "index": e.index,
                    "phase": e.phase,
                    "X": F.array_to_json(e.X),
                    "answer": F.to_json(e.answer),
                }
                for e in self._entries
            ],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Transcript:
        F = field_by_name(obj["field"])
        return cls(
            F,
            [
                TranscriptEntry(e["index"], e["phase"], F.array_from_json(e["X"]),
                                F.from_json(e["answer"]))
                for e in obj["entries"]
            ],
        )


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
    keep_transcript : record (query, answer) pairs (default True). For runs
        with millions of float queries turn it off to save memory; the
        certificate then relies on fresh probes only, and says so.
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
        model_field = getattr(target, "field", None)
        model_d = getattr(target, "d", None)
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
        if budget is not None and (not isinstance(budget, int) or budget < 0):
            raise InvalidEntryError(
                f"budget must be a non-negative integer or None, got {budget!r}")
        self._target = target
        self.field: Field = field
        self.d = int(d)
        self.budget = budget
        self.keep_transcript = keep_transcript
        self.name = name or type(target).__name__
        self._counts: dict[str, int] = {}
        self._total = 0
        self._seconds = 0.0
        self.transcript = Transcript(field)

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

    def _record(self, phase: str, X: Array, y: Any) -> None:
        if self.keep_transcript:
            self.transcript._append(TranscriptEntry(len(self.transcript), phase, X, y))

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
            if not self.keep_transcript:
                pass  # nothing is kept, so the caller's arrays need no protection
            elif isinstance(checked, np.ndarray):
                checked = _frozen(checked, Xs)
            else:
                checked = [_frozen(X, Xs[b]) for b, X in enumerate(checked)]
            self._spend(len(checked), phase)
            answers = self._answer_batch(checked)
            if self.keep_transcript:
                for X, y in zip(checked, answers, strict=True):
                    self._record(phase, X, y)
            return answers
        finally:
            self._seconds += time.perf_counter() - start

    def _answer_batch(self, checked: list[Array] | Array) -> Array:
        F = self.field
        batch = getattr(self._target, "batch", None)
        if batch is not None:
            raw = batch(checked)
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


def _frozen(checked: Array, given: Any) -> Array:
    """A read-only array that the caller cannot change afterwards (copied if shared)."""
    if checked is given or (isinstance(given, np.ndarray) and np.shares_memory(checked, given)):
        checked = checked.copy()
    checked.flags.writeable = False
    return checked
