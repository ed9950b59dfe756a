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

__all__ = ["Recorded", "recorded", "collecting"]


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
    """The repr of an argument, or its size when it is long (a list of 500 points)."""
    text = repr(value)
    if len(text) <= 40:
        return text
    size = f"{len(value)} items" if hasattr(value, "__len__") else "..."
    return f"<{type(value).__name__}: {size}>"


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
