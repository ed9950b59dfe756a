"""Finite-precision fields: BALL(prec) (rigorous balls) and MP(prec) (mpmath).

Design route 2 (design.md §2): an oracle that can only print digits answers
with enclosures (BALL) or high-precision numbers (MP); learners run on them
unchanged, and :mod:`exactattn.reconstruct` turns balls back into exact
rationals.

Each field owns its precision: every operation on its elements runs at that
precision (``flint.ctx.workprec`` for arb, a private ``mpmath.MPContext`` for
MP), whatever the global settings are. Elements of two such fields (or of
the same kind at two precisions) never mix: :class:`IncompatibleFieldError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from flint import arb, arb_mat, ctx, fmpq, fmpz

from ..errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
)
from .base import Array, Field, describe, literal_rational
from .rational import gaussian_rationals, rational

__all__ = ["BallField", "MPField", "BALL", "MP", "PrecisionElement",
           "InsufficientPrecisionError", "arf_to_fmpq"]


class InsufficientPrecisionError(ExactattnError, ArithmeticError):
    """A decision (a sign, a comparison, a log) is not settled at this precision.

    ``prec`` is the precision tried (bits) and ``needed_prec`` the precision
    needed, or a lower bound on it when the message says so (None when unknown).
    """

    def __init__(self, message: str, *, prec: int | None = None,
                 needed_prec: int | None = None) -> None:
        super().__init__(message)
        self.prec = prec
        self.needed_prec = needed_prec


class PrecisionElement:
    """An element of a :class:`BallField` or :class:`MPField`: a value and its field."""

    __slots__ = ("value", "field")

    def __init__(self, value: Any, field: PrecisionField) -> None:
        self.value = value
        self.field = field

    def _other(self, other: Any) -> Any:
        if isinstance(other, PrecisionElement):
            if other.field != self.field:
                raise IncompatibleFieldError(
                    f"cannot mix elements of {self.field.name} and {other.field.name}")
            return other.value
        if isinstance(other, np.ndarray):
            return NotImplemented
        if literal_rational(other) is not None:
            return self.field._lift(rational(other))
        raise IncompatibleFieldError(
            f"cannot mix a {self.field.name} element with {describe(other)}; convert it with "
            f"{self.field.name}(...)")

    def _wrap(self, op: Callable[[Any, Any], Any], other: Any, swap: bool = False) -> Any:
        b = self._other(other)
        if b is NotImplemented:
            return NotImplemented
        a = self.value
        return PrecisionElement(self.field._run(lambda: op(b, a) if swap else op(a, b)),
                                self.field)

    def __add__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a + b, o)

    def __radd__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a + b, o, swap=True)

    def __sub__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a - b, o)

    def __rsub__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a - b, o, swap=True)

    def __mul__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a * b, o)

    def __rmul__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a * b, o, swap=True)

    def __truediv__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a / b, o)

    def __rtruediv__(self, o: Any) -> Any:
        return self._wrap(lambda a, b: a / b, o, swap=True)

    def __neg__(self) -> PrecisionElement:
        return PrecisionElement(self.field._run(lambda: -self.value), self.field)

    def __pos__(self) -> PrecisionElement:
        return self

    def __abs__(self) -> PrecisionElement:
        return PrecisionElement(self.field._run(lambda: abs(self.value)), self.field)

    def _cmp(self, other: Any) -> int | None:
        b = self._other(other)
        if b is NotImplemented:
            return None
        return self.field.sign(PrecisionElement(self.field._run(lambda: self.value - b),
                                                self.field))

    def __lt__(self, o: Any) -> bool:
        s = self._cmp(o)
        return NotImplemented if s is None else s < 0

    def __le__(self, o: Any) -> bool:
        s = self._cmp(o)
        return NotImplemented if s is None else s <= 0

    def __gt__(self, o: Any) -> bool:
        s = self._cmp(o)
        return NotImplemented if s is None else s > 0

    def __ge__(self, o: Any) -> bool:
        s = self._cmp(o)
        return NotImplemented if s is None else s >= 0

    def __eq__(self, o: object) -> bool:
        s = self._cmp(o)
        return NotImplemented if s is None else s == 0

    __hash__ = None  # type: ignore[assignment]  # balls are not values: no hashing

    def __float__(self) -> float:
        return self.field.to_float(self)

    def __repr__(self) -> str:
        return str(self.value)


class PrecisionField(Field):
    """Common part of BALL(prec) and MP(prec)."""

    exact = False
    dtype = object
    kind: str = ""

    def __init__(self, prec: int) -> None:
        if not isinstance(prec, int) or isinstance(prec, bool) or prec < 8:
            raise InvalidEntryError(f"precision must be an integer >= 8 bits, got {prec!r}")
        self.prec = prec
        self.name = f"{self.kind}({prec})"

    # to be provided by the concrete field
    def _lift(self, q: fmpq) -> Any:
        raise NotImplementedError

    def _run(self, fn: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any) -> PrecisionElement:
        if isinstance(x, PrecisionElement):
            if x.field != self:
                raise IncompatibleFieldError(f"{describe(x)} belongs to {x.field.name}, "
                                             f"not {self.name}")
            return x
        if isinstance(x, fmpq | fmpz):
            return PrecisionElement(self._lift(fmpq(x)), self)
        if isinstance(x, float | np.floating) and not isinstance(x, bool):
            if not math.isfinite(float(x)):
                raise InvalidEntryError(f"{x!r} is not finite")
            return PrecisionElement(self._lift(rational(Fraction(float(x)))), self)
        if hasattr(x, "field") and isinstance(getattr(x, "field", None), Field):
            raise IncompatibleFieldError(f"{describe(x)} belongs to {x.field.name}, "
                                         f"not {self.name}")
        return PrecisionElement(self._lift(rational(x)), self)

    def is_element(self, x: Any) -> bool:
        return isinstance(x, PrecisionElement) and x.field == self

    def check_array(self, A: Array, *, name: str = "array") -> None:
        from .rational import check_object_array

        check_object_array(self, A, name)

    def gaussian(self, rng: np.random.Generator, shape: int | Sequence[int]) -> Array:
        out = np.empty(shape, dtype=object)
        out.flat[:] = [self(q) for q in gaussian_rationals(rng, shape)]
        return out

    def magnitude(self, x: Any) -> float:
        return abs(self.to_float(x))


class BallField(PrecisionField):
    """Rigorous ball arithmetic (python-flint ``arb``) at ``prec`` bits.

    Every element is a ball [m - r, m + r] guaranteed to contain the true
    value. A sign is decided only when the ball excludes 0; otherwise
    :class:`InsufficientPrecisionError` says so (never a guess). ``==`` holds
    only when the difference is the exact zero ball.

    >>> F = BALL(64)
    >>> third = F(1) / 3
    >>> third > F(Fraction(33, 100))
    True
    >>> F.sign(third - F(Fraction(1, 3)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exactattn.fields.precision.InsufficientPrecisionError: the sign of [+/- ...] is not ...
    """

    kind = "BALL"

    def _lift(self, q: fmpq) -> arb:
        with ctx.workprec(self.prec):
            return arb(q)

    def _run(self, fn: Callable[[], Any]) -> Any:
        with ctx.workprec(self.prec):
            return fn()

    def sign(self, x: Any) -> int:
        b = self(x).value
        if b > 0:
            return 1
        if b < 0:
            return -1
        if b.is_exact() and b.is_zero():
            return 0
        raise InsufficientPrecisionError(
            f"the sign of {b} is not decided at {self.prec} bits (the ball contains 0)",
            prec=self.prec)

    def exp(self, x: Any) -> Any:
        return self.map(lambda a: PrecisionElement(self._run(lambda: self(a).value.exp()), self),
                        x)

    def log(self, x: Any) -> Any:
        def one(a: Any) -> PrecisionElement:
            b = self(a).value
            if not b > 0:
                raise InsufficientPrecisionError(
                    f"log({b}): the ball is not positive at {self.prec} bits", prec=self.prec)
            return PrecisionElement(self._run(lambda: b.log()), self)

        return self.map(one, x)

    def logit(self, p: Any) -> Any:
        """logit(p) = log(p / (1 - p)) of balls, elementwise.

        A ball inside (0, 1) gives the ball of its logit. A ball certainly
        outside (0, 1) (or exactly 0 or 1) has no real logit:
        :class:`~exactattn.errors.NotRepresentableError`. A ball that contains 0
        or 1 is undecided at this precision: :class:`InsufficientPrecisionError`
        with the figures. If such a ball (midpoint m, radius r) encloses a
        sigmoid p = sigma(t), then |1 - p| <= 2r (or p <= 2r), so
        |t| >= L = ln((1 - 2r) / (2r)); the radius shrinks like 2^-prec, so at
        P bits the logits resolved grow by (P - prec) ln 2: more than ``prec``
        bits are needed, about prec + (T - L) / ln 2 for a logit of size T.

        >>> F = BALL(64)
        >>> round(F.to_float(F.logit(F(3) / 4)), 12)
        1.098612288668
        >>> F.logit(F(1) - F(Fraction(1, 2**70)))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        exactattn.fields.precision.InsufficientPrecisionError: logit(...): the ball contains 1 ...
        """
        def one(a: Any) -> PrecisionElement:
            b = self(a).value
            q = self._run(lambda: 1 - b)
            if b > 0 and q > 0:
                return PrecisionElement(self._run(lambda: (b / q).log()), self)
            if b <= 0 or q <= 0:
                if b < 0 or q < 0 or (b.is_exact() and q.is_exact()):
                    raise NotRepresentableError(
                        f"logit({b}) is not an element of {self.name}: logit(p) is a real "
                        "number only for 0 < p < 1, and this ball lies outside")
            near = 1 if self.midpoint(a) > fmpq(1, 2) else 0
            r = self.radius(a)
            if 4 * r < 1:
                low = math.log(float(1 - 2 * r) / float(2 * r))
                bound = (f"if p is a sigmoid sigma(t), then |t| >= {low:.4g}, and a logit of "
                         f"size T needs about {self.prec} + (T - {low:.4g}) / ln 2 bits")
            else:
                bound = "the ball is wider than (0, 1) itself"
            raise InsufficientPrecisionError(
                f"logit({b}): the ball contains {near} at {self.prec} bits, so p / (1 - p) "
                f"is not a ball of positive reals; {bound}; more than {self.prec} bits are "
                "needed", prec=self.prec, needed_prec=self.prec + 1)

        return self.map(one, p)

    def to_float(self, x: Any) -> float:
        return float(self(x).value.mid())

    def to_json(self, x: Any) -> Any:
        b = self(x).value
        return {"mid": _arf_to_str(b.mid()), "rad": _arf_to_str(b.rad())}

    def from_json(self, obj: Any) -> PrecisionElement:
        if isinstance(obj, dict) and set(obj) == {"mid", "rad"}:
            try:
                mid, rad = Fraction(str(obj["mid"])), Fraction(str(obj["rad"]))
            except (ValueError, ZeroDivisionError):
                raise InvalidEntryError(f"not the JSON form of a {self.name} element: "
                                        f"{describe(obj)}") from None
            with ctx.workprec(self.prec):
                ball = arb(rational(mid)) + arb(0, rational(rad))
            return PrecisionElement(ball, self)
        raise InvalidEntryError(f"not the JSON form of a {self.name} element: {describe(obj)}")

    def radius(self, x: Any) -> fmpq:
        """The ball's radius as an exact rational (an upper bound on the error)."""
        return arf_to_fmpq(self(x).value.rad())

    def midpoint(self, x: Any) -> fmpq:
        """The ball's midpoint as an exact rational."""
        return arf_to_fmpq(self(x).value.mid())

    def to_arb_mat(self, A: Array) -> arb_mat:
        A2 = A if A.ndim == 2 else A.reshape(-1, 1)
        with ctx.workprec(self.prec):
            return arb_mat(A2.shape[0], A2.shape[1], [self(x).value for x in A2.flat])

    def from_arb_mat(self, M: arb_mat) -> Array:
        out = np.empty((M.nrows(), M.ncols()), dtype=object)
        for i in range(M.nrows()):
            for j in range(M.ncols()):
                out[i, j] = PrecisionElement(M[i, j], self)
        return out


class MPField(PrecisionField):
    """mpmath floating point at ``prec`` bits, on a private context.

    Not rigorous (like F64, with more bits): signs are those of the rounded
    values. Results over MP are never called exact.

    >>> F = MP(200)
    >>> F.to_float(F.exp(F(1)))
    2.718281828459045
    """

    kind = "MP"

    def __init__(self, prec: int) -> None:
        super().__init__(prec)
        self.ctx = mpmath.MPContext()
        self.ctx.prec = prec

    def _lift(self, q: fmpq) -> Any:
        return self.ctx.mpf(int(q.p)) / int(q.q)

    def _run(self, fn: Callable[[], Any]) -> Any:
        return fn()  # mpf arithmetic uses the operands' (private) context

    def sign(self, x: Any) -> int:
        v = self(x).value
        return int(v > 0) - int(v < 0)

    def exp(self, x: Any) -> Any:
        return self.map(lambda a: PrecisionElement(self.ctx.exp(self(a).value), self), x)

    def log(self, x: Any) -> Any:
        def one(a: Any) -> PrecisionElement:
            v = self(a).value
            if not v > 0:
                raise NotRepresentableError(f"log({v}): the argument is not positive")
            return PrecisionElement(self.ctx.log(v), self)

        return self.map(one, x)

    def to_float(self, x: Any) -> float:
        return float(self(x).value)

    def exact_value(self, x: Any) -> fmpq:
        """The exact (dyadic) rational value of an mpmath number of this field."""
        v = x.value if isinstance(x, PrecisionElement) else x
        man, exp = self.ctx.mpf(v).man_exp  # man_exp drops the sign
        q = fmpq(int(man)) * fmpq(2) ** int(exp) if exp >= 0 else fmpq(int(man), 2 ** -int(exp))
        return -q if v < 0 else q

    def to_json(self, x: Any) -> str:
        return str(self.exact_value(self(x)))

    def from_json(self, obj: Any) -> PrecisionElement:
        if not isinstance(obj, str | int) or isinstance(obj, bool):
            raise InvalidEntryError(f"not the JSON form of a {self.name} element (a rational "
                                    f"string): {describe(obj)}")
        try:
            return self(Fraction(str(obj)))
        except (ValueError, ZeroDivisionError):
            raise InvalidEntryError(f"not the JSON form of a {self.name} element (a rational "
                                    f"string): {describe(obj)}") from None

    def to_matrix(self, A: Array) -> Any:
        A2 = A if A.ndim == 2 else A.reshape(-1, 1)
        return self.ctx.matrix([[self(x).value for x in row] for row in A2])

    def from_matrix(self, M: Any) -> Array:
        out = np.empty((M.rows, M.cols), dtype=object)
        for i in range(M.rows):
            for j in range(M.cols):
                out[i, j] = PrecisionElement(M[i, j], self)
        return out


def arf_to_fmpq(x: Any) -> fmpq:
    """The exact value of an arb midpoint or radius (a dyadic number) as a rational."""
    man, exp = x.man_exp()
    man, exp = int(man), int(exp)
    return fmpq(man * 2**exp) if exp >= 0 else fmpq(man, 2**-exp)


def _arf_to_str(x: Any) -> str:
    return str(arf_to_fmpq(x))


_CACHE: dict[tuple[str, int], PrecisionField] = {}


def BALL(prec: int) -> BallField:  # noqa: N802 - the field's name, like QQ
    """The ball field at ``prec`` bits (one object per precision)."""
    key = ("BALL", prec)
    if key not in _CACHE:
        _CACHE[key] = BallField(prec)
    out = _CACHE[key]
    assert isinstance(out, BallField)
    return out


def MP(prec: int) -> MPField:  # noqa: N802 - the field's name, like QQ
    """The mpmath field at ``prec`` bits (one object per precision)."""
    key = ("MP", prec)
    if key not in _CACHE:
        _CACHE[key] = MPField(prec)
    out = _CACHE[key]
    assert isinstance(out, MPField)
    return out
