"""The arguments every learner shares, checked in one place before any query is spent.

:func:`checked_arguments` wraps a learner: before it runs, ``oracle`` must be an
oracle (a :class:`~exactattn.oracle.ValueOracle`), ``field`` and ``ffn_field``
a :class:`~exactattn.fields.Field` or None, ``seed`` a non-negative integer,
``progress`` None or a callable, and every count named in ``counts`` an integer
in its range (an upper bound keeps a typo such as ``confirm=10**9`` from
running for hours). A bad argument raises :class:`~exactattn.errors.InvalidEntryError`
naming the learner, the argument and what it got; nothing is asked of the oracle.

>>> from exactattn.learners import learn_single_head
>>> learn_single_head("not an oracle")
Traceback (most recent call last):
...
exactattn.errors.InvalidEntryError: learn_single_head: oracle must be an oracle (...), got str
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from ..errors import ExactattnError, InvalidEntryError
from ..fields import Field
from ..fields.base import describe
from ..oracle import ValueOracle

__all__ = ["checked_arguments", "check_count", "checked_scale", "MAX_SEED"]

P = ParamSpec("P")
R = TypeVar("R")

#: seeds are numpy SeedSequence entropy: any non-negative integer; this bound keeps them printable
MAX_SEED = 2**128


def check_count(where: str, name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi], else InvalidEntryError naming ``where`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidEntryError(f"{where}: {name} must be an integer in [{lo}, {hi}], got "
                                f"{describe(value)}")
    return int(value)


def checked_scale(field: Field, scale: Any, roundoff: Any) -> Any:
    """The probe scale a = field(scale) > 0 of a learner with a ``roundoff`` (F64 bounds).

    ``roundoff`` must be a unit roundoff in (0, 1); ``scale`` an element of
    ``field`` (a rational in an exact field), positive. Otherwise an
    InvalidEntryError (or the field's own error, prefixed with ``scale:``).
    """
    if not (isinstance(roundoff, float | int) and 0 < roundoff < 1):
        raise InvalidEntryError(f"roundoff must be a unit roundoff in (0, 1), got {roundoff!r}")
    try:
        a = field(scale)
    except ExactattnError as exc:
        raise type(exc)(f"scale: {exc}") from None
    if field.sign(a) <= 0:
        raise InvalidEntryError(f"scale must be positive, got {scale!r}")
    return a


def checked_arguments(*, counts: Mapping[str, tuple[int, int]] | None = None
                      ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Check a learner's shared arguments (see the module docstring) before it runs."""
    limits = dict(counts or {})

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        where = fn.__name__

        @functools.wraps(fn)
        def learner(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidEntryError(f"{where}: {exc}") from None
            given = bound.arguments
            if "oracle" in given and not isinstance(given["oracle"], ValueOracle):
                raise InvalidEntryError(
                    f"{where}: oracle must be an oracle (exactattn.oracle.ValueOracle or a "
                    f"subclass), got {type(given['oracle']).__name__}")
            for name in ("field", "ffn_field"):
                if given.get(name) is not None and not isinstance(given[name], Field):
                    raise InvalidEntryError(
                        f"{where}: {name} must be a field (QQ, EXP, F64, BALL(p), MP(p)) or "
                        f"None, got {describe(given[name])}")
            if "seed" in given and not (given["seed"] is None and
                                        signature.parameters["seed"].default is None):
                check_count(where, "seed", given["seed"], 0, MAX_SEED)
            if given.get("progress") is not None and not callable(given["progress"]):
                raise InvalidEntryError(f"{where}: progress must be None or a callable "
                                        f"(done, total), got {describe(given['progress'])}")
            for name, (lo, hi) in limits.items():
                if name in given and not (given[name] is None
                                          and signature.parameters[name].default is None):
                    check_count(where, name, given[name], lo, hi)
            return fn(*args, **kwargs)

        return learner

    return wrap
