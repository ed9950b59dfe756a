"""The recorder behind the proof companion (no SymPy import: the registry loads it).

While a claim of :mod:`exactattn.claims` runs, every call of a function
decorated with :func:`recorded` (the derivations of :mod:`exactattn.symbolic`)
appends what it returned, with the function's name and arguments, to the
claim's evidence; the LaTeX companion prints that evidence, so a printed
derivation is the one the check ran.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

__all__ = ["Recorded", "recorded", "collecting", "NOT_VERIFIED", "status_of_step",
           "steps_of"]

#: the status of a step whose check failed (the proof companion prints it; verify fails)
NOT_VERIFIED = "NOT VERIFIED"


@dataclass(frozen=True)
class Recorded:
    """What a decorated derivation returned inside a claim's check, and how it was called."""

    function: str  # module.qualname, the code that built (and checked) the value
    arguments: str  # the call's arguments, as written: "d=3"
    value: Any


_EVIDENCE: ContextVar[list[Recorded] | None] = ContextVar("exactattn_evidence", default=None)
_DEPTH: ContextVar[int] = ContextVar("exactattn_evidence_depth", default=0)

F = TypeVar("F", bound=Callable[..., Any])


def recorded(fn: F) -> F:
    """Record the value of ``fn`` in the evidence of the running claim (outermost call only).

    Put it above ``functools.cache``: a cached derivation is recorded on every call.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = _DEPTH.set(_DEPTH.get() + 1)
        try:
            value = fn(*args, **kwargs)
        finally:
            _DEPTH.reset(token)
        sink = _EVIDENCE.get()
        if sink is not None and _DEPTH.get() == 0:
            shown = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
            sink.append(Recorded(f"{fn.__module__}.{fn.__qualname__}", ", ".join(shown), value))
        return value

    return cast(F, wrapper)


def _short(value: Any) -> str:
    """The repr of an argument, or its size when it is long (a list of 500 points).

    Fractions print as 1/2, also inside a tuple or list, so a short grid stays readable:

    >>> from fractions import Fraction
    >>> _short((Fraction(1, 2), Fraction(1), Fraction(3, 2))), _short(list(range(50)))
    ('(1/2, 1, 3/2)', '<list: 50 items>')
    """
    from fractions import Fraction

    if isinstance(value, (tuple, list)) and all(isinstance(x, Fraction) for x in value):
        inner = ", ".join(str(x) for x in value)
        text = f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    else:
        text = repr(value)
    if len(text) <= 40:
        return text
    size = f"{len(value)} items" if hasattr(value, "__len__") else "..."
    return f"<{type(value).__name__}: {size}>"


def status_of_step(step: Any) -> str:
    """The status of a step-like object: its ``status``; else a symbolic step by
    ``verified``; else a finding by ``holds`` and its ``route`` (interval or exact).

    The one rule for both the printed badge and the verdict of a claim
    (:attr:`exactattn.claims.ClaimResult.unverified`).

    >>> from types import SimpleNamespace as S
    >>> status_of_step(S(status="interval", verified=False)), status_of_step(S(verified=True))
    ('interval', 'symbolic')
    >>> status_of_step(S(holds=False)), status_of_step(S(holds=True, route="exact (EXP)"))
    ('NOT VERIFIED', 'exact instances')
    """
    status = getattr(step, "status", None)
    if isinstance(status, str):
        return status
    if hasattr(step, "verified"):
        return "symbolic" if step.verified is True else NOT_VERIFIED
    if getattr(step, "holds", False) is not True:
        return NOT_VERIFIED
    return "interval" if "interval" in getattr(step, "route", "") else "exact instances"


def steps_of(value: Any) -> list[Any]:
    """The step-like items of a recorded value: its ``steps``, or the value itself when it is
    a non-empty list or tuple, else ``[value]`` (a finding without steps, a case table)."""
    items = getattr(value, "steps", value)
    if isinstance(items, (list, tuple)) and items:
        return list(items)
    return [value]


@contextmanager
def collecting() -> Iterator[list[Recorded]]:
    """Collect what every :func:`recorded` derivation returns inside the ``with`` block.

    >>> from exactattn.symbolic.single_head import derivation
    >>> with collecting() as evidence:
    ...     _ = derivation(2)
    >>> [(e.function.rsplit(".", 1)[1], e.arguments) for e in evidence]
    [('derivation', '2')]
    """
    sink: list[Recorded] = []
    token = _EVIDENCE.set(sink)
    try:
        yield sink
    finally:
        _EVIDENCE.reset(token)
