"""One error hierarchy for exactattn.

Every error that exactattn raises on purpose derives from
:class:`ExactattnError`, so a caller can catch them all in one place. Each
subclass also derives from the closest built-in exception (``ValueError``,
``TypeError``, ...) so that generic handlers keep working.

>>> issubclass(ShapeError, ValueError) and issubclass(ShapeError, ExactattnError)
True
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ExactattnError",
    "ShapeError",
    "InvalidEntryError",
    "IncompatibleFieldError",
    "NotRepresentableError",
    "QueryBudgetExceededError",
    "NotIdentifiableError",
    "HypothesisViolatedError",
    "RecoveryFailedError",
    "IllConditionedError",
    "JournalMismatchError",
    "JournalDivergedError",
    "OracleUnavailableError",
]


class ExactattnError(Exception):
    """Base class of every error exactattn raises on purpose."""


class ShapeError(ExactattnError, ValueError):
    """A matrix, vector or query has the wrong shape (names the shapes)."""


class InvalidEntryError(ExactattnError, ValueError):
    """An entry is not a number of the field: NaN, inf, a string, None, ..."""


class IncompatibleFieldError(ExactattnError, TypeError):
    """Elements or objects of two different fields were mixed."""


class NotRepresentableError(ExactattnError, ArithmeticError):
    """The result of an operation is not an element of the field.

    For example ``QQ.exp(1)`` (e is irrational) or ``EXP.log(2)`` (log 2 is
    not of the form q with e^q in the exponential field).
    """


class QueryBudgetExceededError(ExactattnError, RuntimeError):
    """An oracle was asked more queries than its budget allows."""

    def __init__(self, message: str, *, budget: int, used: int) -> None:
        super().__init__(message)
        self.budget = budget
        self.used = used


class NotIdentifiableError(ExactattnError, ValueError):
    """The queried function does not determine the parameters asked for.

    ``recovered`` holds what *was* determined exactly (for example ``v = 0``
    for a single head whose W cannot be identified).
    """

    def __init__(self, message: str, *, recovered: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.recovered = dict(recovered or {})


class HypothesisViolatedError(ExactattnError, ValueError):
    """A hypothesis of a theorem does not hold for the given instance."""

    def __init__(self, message: str, *, hypothesis: str) -> None:
        super().__init__(message)
        self.hypothesis = hypothesis


class RecoveryFailedError(ExactattnError, RuntimeError):
    """A learner saw answers that no model of its class can give.

    Raised instead of returning a confident wrong answer, for example when
    the oracle is not a single-head attention model.
    """


class IllConditionedError(RecoveryFailedError):
    """A float recovery whose conditioning does not support the answer asked for.

    Raised instead of a silent poor estimate (for example two nearly equal
    heads over float64). ``report`` holds the measured figures (condition
    numbers, margins, relative bounds); ``recovered`` the estimate, if any.
    """

    def __init__(self, message: str, *, report: dict[str, Any],
                 recovered: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = dict(report)
        self.recovered = dict(recovered or {})


class JournalMismatchError(InvalidEntryError):
    """A query journal does not belong to this run (:mod:`exactattn.remote.journal`).

    Raised when a journal's fingerprint (instance, field, d, learner, seed,
    options, exactattn version) differs from the run's; ``key`` names the
    first entry that differs, ``old`` and ``new`` its two values.
    """

    def __init__(self, message: str, *, key: str, old: Any, new: Any) -> None:
        super().__init__(message)
        self.key = key
        self.old = old
        self.new = new


class JournalDivergedError(InvalidEntryError):
    """A resumed run asked another query than the journal holds at that position.

    ``position`` is the 0-based index of the query in its stream; answering it
    from the journal would be a silent wrong answer, so the run stops.
    """

    def __init__(self, message: str, *, stream: str, position: int) -> None:
        super().__init__(message)
        self.stream = stream
        self.position = position


class OracleUnavailableError(ExactattnError, ConnectionError):
    """A remote oracle did not answer: every attempt failed (refused, dropped, 5xx, timed out).

    The message names the URL, the number of attempts and the last status;
    ``url``, ``attempts`` and ``last_status`` hold them.
    """

    def __init__(self, message: str, *, url: str, attempts: int, last_status: str) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts
        self.last_status = last_status
