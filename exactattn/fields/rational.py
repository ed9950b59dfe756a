"""QQ: exact rationals on python-flint ``fmpq`` (matrices on ``fmpq_mat``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq, fmpz

from ..errors import IncompatibleFieldError, InvalidEntryError, NotRepresentableError
from .base import (
    Array,
    Field,
    checked_generator,
    checked_shape,
    describe,
    literal_rational,
    not_representable,
)

__all__ = ["RationalField", "QQ", "rational", "gaussian_rationals", "sqrt_upper"]

#: denominator of the seeded Gaussian draws in exact fields (2^10)
GAUSSIAN_DENOMINATOR = 1024


def rational(x: Any) -> fmpq:
    """Convert an exact literal (int, Fraction, fmpq, fmpz) to ``fmpq``.

    Floats are refused: a float is a binary fraction (0.1 is
    3602879701896397/2^55), which is rarely what was meant. Pass
    ``Fraction(x)`` to accept a float's exact binary value.

    >>> rational(3), rational(__import__("fractions").Fraction(-2, 6))
    (3, -1/3)
    """
    if isinstance(x, fmpq):
        return x
    if isinstance(x, fmpz):
        return fmpq(x)
    lit = literal_rational(x)
    if lit is not None:
        return fmpq(*lit)
    if isinstance(x, float | np.floating):
        raise InvalidEntryError(
            f"float {x!r} is not an exact number; pass an int or fractions.Fraction "
            "(Fraction(x) keeps the float's exact binary value)"
        )
    if isinstance(x, str):
        raise InvalidEntryError(
            f"string {x!r} is not a number; convert it first (for example Fraction({x!r}))"
        )
    if x is None:
        raise InvalidEntryError("None is not a number")
    if hasattr(x, "field") and isinstance(getattr(x, "field", None), Field):
        raise IncompatibleFieldError(f"{describe(x)} belongs to {x.field.name}, not QQ")
    raise InvalidEntryError(f"{describe(x)} is not an exact rational number")


def sqrt_upper(x: Any, factor: Any = Fraction(9, 8)) -> fmpq:
    """A dyadic rational r with sqrt(x) <= r <= factor sqrt(x) (x >= 0, factor > 1), exactly.

    Rationals stand in for square roots (norms) wherever a bound must stay exact.

    >>> r = sqrt_upper(2); r * r >= 2 and r * r <= fmpq(81, 32)
    True
    """
    q, f = rational(x), rational(factor)
    if q < 0 or f <= 1:
        raise InvalidEntryError(f"sqrt_upper needs x >= 0 and factor > 1, got {q}, {f}")
    if q == 0:
        return fmpq(0)
    k = 0
    while True:
        M = q * 4**k
        n = math.isqrt(int(M.p) // int(M.q))
        while n * n < M:
            n += 1
        r = fmpq(n, 2**k)
        if r * r <= f * f * q:
            return r
        k += 1


def gaussian_rationals(rng: np.random.Generator, shape: int | Sequence[int]) -> list[fmpq]:
    """Seeded N(0, 1) draws rounded to rationals of denominator 2^10."""
    draws = checked_generator(rng).standard_normal(checked_shape(shape))
    return [fmpq(int(round(g * GAUSSIAN_DENOMINATOR)), GAUSSIAN_DENOMINATOR) for g in draws.flat]


class RationalField(Field):
    """The field of rational numbers, exact, on python-flint ``fmpq``.

    ``exp`` and ``log`` stay in QQ only at 0 and 1 respectively (e^q is
    irrational for every rational q != 0, by Lindemann's theorem); any other
    argument raises :class:`~exactattn.errors.NotRepresentableError`. Use
    :data:`~exactattn.fields.EXP` for softmax attention.

    >>> QQ(1) / 3 + QQ(1) / 6
    1/2
    >>> QQ.exp(QQ(0))
    1
    """

    name = "QQ"
    exact = True
    dtype = object

    def __call__(self, x: Any) -> fmpq:
        return rational(x)

    def is_element(self, x: Any) -> bool:
        return isinstance(x, fmpq)

    def exp(self, x: Any) -> Any:
        def one(q: Any) -> fmpq:
            if rational(q) != 0:
                raise not_representable("exp", q, "QQ", "e^q is irrational for rational q != 0")
            return fmpq(1)

        return self.map(one, x)

    def log(self, x: Any) -> Any:
        def one(q: Any) -> fmpq:
            r = rational(q)
            if r <= 0:
                raise not_representable("log", q, "QQ", "log q is not a real number for q <= 0")
            if r != 1:
                raise not_representable("log", q, "QQ", "log q is irrational for rational q != 1")
            return fmpq(0)

        return self.map(one, x)

    def logit(self, p: Any) -> Any:
        """logit(p) = log(p / (1 - p)), exactly: 0 at p = 1/2, and not rational elsewhere.

        Outside 0 < p < 1 the logit is not a real number (+-inf at 1 and 0).

        >>> QQ.logit(QQ(1) / 2)
        0
        >>> QQ.logit(QQ(1))
        Traceback (most recent call last):
        ...
        exactattn.errors.NotRepresentableError: logit(1) is not an element of QQ: ...
        """
        half = fmpq(1, 2)

        def one(q: Any) -> fmpq:
            r = rational(q)
            if not 0 < r < 1:
                raise not_representable("logit", q, "QQ",
                                        "logit(p) is a real number only for 0 < p < 1")
            if r != half:
                raise not_representable("logit", q, "QQ",
                                        "logit(p) is irrational for rational p != 1/2")
            return fmpq(0)

        return self.map(one, p)

    def sign(self, x: Any) -> int:
        q = rational(x)
        return (q > 0) - (q < 0)

    def to_float(self, x: Any) -> float:
        q = rational(x)
        try:
            return int(q.p) / int(q.q)
        except OverflowError:
            raise NotRepresentableError(
                f"{q} is beyond the float64 range (|x| > 1.8e308): no float approximates it"
            ) from None

    def magnitude(self, x: Any) -> float:
        """|x| as a float (inf beyond the float64 range), for heuristic choices only."""
        try:
            return abs(self.to_float(x))
        except NotRepresentableError:
            return math.inf

    def to_json(self, x: Any) -> str:
        return str(rational(x))

    def from_json(self, obj: Any) -> fmpq:
        return parse_rational(obj)

    def check_array(self, A: Array, *, name: str = "array") -> None:
        check_object_array(self, A, name)

    def gaussian(self, rng: np.random.Generator, shape: int | Sequence[int]) -> Array:
        draws = gaussian_rationals(rng, shape)
        out = np.empty(checked_shape(shape), dtype=object)
        out.flat[:] = draws
        return out

    def to_rational(self, x: Any) -> fmpq:
        return rational(x)

    def from_rational(self, q: fmpq) -> fmpq:
        return q


def parse_rational(text: Any) -> fmpq:
    """Parse ``"p/q"`` or an integer string (the JSON form of a rational)."""
    if not isinstance(text, str | int):
        raise InvalidEntryError(f"expected a rational as a string 'p/q', got {describe(text)}")
    s = str(text).strip()
    try:
        if "/" in s:
            p, q = s.split("/")
            return fmpq(int(p), int(q))
        return fmpq(int(s))
    except (ValueError, ZeroDivisionError) as exc:
        raise InvalidEntryError(f"{s!r} is not a rational 'p/q': {exc}") from None


def check_object_array(field: Field, A: Array, name: str) -> None:
    if not isinstance(A, np.ndarray):
        raise InvalidEntryError(
            f"{name} must be a numpy array over {field.name}, got {describe(A)}")
    if A.dtype != object:
        raise IncompatibleFieldError(
            f"{name} has dtype {A.dtype}; arrays over {field.name} hold field elements "
            f"(dtype object): convert with {field.name}.array(...)"
        )
    for idx, x in np.ndenumerate(A):
        if not field.is_element(x):
            field(x)  # raises the precise error for strings, None, floats, ...
            raise IncompatibleFieldError(
                f"{name}{list(idx)} = {describe(x)} is not an element of {field.name}"
            )


QQ = RationalField()
