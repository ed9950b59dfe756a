"""F64: numpy float64, vectorised. Not exact: every result says so."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
from flint import fmpq, fmpz

from ..errors import IncompatibleFieldError, InvalidEntryError
from .base import (
    Array,
    Field,
    checked_generator,
    checked_shape,
    checked_size,
    describe,
    not_representable,
)

__all__ = ["Float64Field", "F64", "UNIT_ROUNDOFF", "higham_gamma"]

#: unit roundoff of IEEE binary64, u = 2^-53
UNIT_ROUNDOFF = 2.0**-53


@overload
def higham_gamma(n: int) -> float: ...
@overload
def higham_gamma(n: int, u: float) -> float: ...
@overload
def higham_gamma(n: int, u: fmpq) -> fmpq: ...
def higham_gamma(n: int, u: Any = UNIT_ROUNDOFF) -> Any:
    """Higham's gamma_n = n u / (1 - n u) (n u < 1), in the number type of ``u``.

    The factor of every first-order float64 error model in exactattn: a sum or
    product of n roundings is off by at most gamma_n relatively. Pass
    ``u=fmpq(1, 2**53)`` for an exact rational.

    >>> higham_gamma(1) > UNIT_ROUNDOFF and higham_gamma(4) < 5 * UNIT_ROUNDOFF
    True

    Outside its hypothesis (n < 0, or n u >= 1, where the formula would give a
    negative number or divide by zero) no factor is returned: InvalidEntryError.
    """
    if n < 0 or n * u >= 1:
        raise InvalidEntryError(f"higham_gamma(n, u) needs n >= 0 and n u < 1, got n = {n}, "
                                f"u = {u}")
    return n * u / (1 - n * u)


class Float64Field(Field):
    """IEEE double precision on numpy arrays of dtype float64.

    Arrays are ordinary ``float64`` arrays, so every operation is
    vectorised. NaN and infinities are refused on input. ``==`` here is
    float equality: results over F64 are reported with error bounds, never
    called exact.

    >>> float(F64.logit(F64(0.5)))
    0.0
    """

    name = "F64"
    exact = False
    dtype = np.float64

    def __call__(self, x: Any) -> np.float64:
        if isinstance(x, bool | np.bool_) or x is None or isinstance(x, str):
            raise InvalidEntryError(f"{describe(x)} is not a number")
        if isinstance(x, np.floating | float | int | np.integer) or (
            isinstance(x, numbers.Rational) and type(x).__module__ == "fractions"
        ):
            try:
                y = np.float64(x)
            except OverflowError:
                raise InvalidEntryError(f"{describe(x)} is beyond the float64 range") from None
        else:
            owner = getattr(x, "field", None)
            if isinstance(owner, Field):
                raise IncompatibleFieldError(f"{describe(x)} belongs to {owner.name}, "
                                             "not F64: it is not a float64 number")
            if isinstance(x, fmpq | fmpz):
                raise IncompatibleFieldError(f"{describe(x)} belongs to QQ, not F64: "
                                             "it is not a float64 number")
            raise IncompatibleFieldError(f"{describe(x)} is not a float64 number")
        if not np.isfinite(y):
            raise InvalidEntryError(f"{x!r} is not finite")
        return y

    def is_element(self, x: Any) -> bool:
        return isinstance(x, np.float64 | float) and bool(np.isfinite(x))

    def _operand(self, x: Any) -> Any:
        """x as a float64 array (validated) or a float64 element."""
        if isinstance(x, np.ndarray):
            return self.array(x, name="argument")
        return self(x)

    def _finite(self, op: str, x: Any, y: Any, why: str) -> Any:
        """``y = op(x)``, refused where it is not a finite float (never a silent inf/nan)."""
        bad = ~np.isfinite(y)
        if np.any(bad):
            if np.ndim(y) == 0:
                raise not_representable(op, x, "F64", why)
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise not_representable(op, f"entry {list(idx)} = {x[idx]!r}", "F64", why)
        return y

    def exp(self, x: Any) -> Any:
        """e^x; NotRepresentableError where it overflows float64 (x > 709.78...)."""
        a = self._operand(x)
        with np.errstate(over="ignore"):
            return self._finite("exp", a, np.exp(a), "e^x overflows float64")

    def log(self, x: Any) -> Any:
        """log x; NotRepresentableError for x <= 0 (not a finite real number)."""
        a = self._operand(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._finite("log", a, np.log(a), "log x is a real number only for x > 0")

    def logit(self, p: Any) -> Any:
        """log(p) - log1p(-p) (accurate near 0 and 1); refused outside 0 < p < 1."""
        a = self._operand(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(a) - np.log1p(-a)
        return self._finite("logit", a, y, "logit(p) is a real number only for 0 < p < 1")

    def sign(self, x: Any) -> int:
        return int(np.sign(self(x)))

    def is_zero(self, x: Any) -> bool:
        return bool(self(x) == 0)

    def to_float(self, x: Any) -> float:
        return float(self(x))

    def to_json(self, x: Any) -> float:
        return float(self(x))

    def from_json(self, obj: Any) -> np.float64:
        return self(obj)

    def check_array(self, A: Array, *, name: str = "array") -> None:
        if not isinstance(A, np.ndarray):
            raise InvalidEntryError(f"{name} must be a numpy array, got {describe(A)}")
        if A.dtype != np.float64:
            raise IncompatibleFieldError(f"{name} has dtype {A.dtype}, expected float64 for F64")
        if not np.all(np.isfinite(A)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(A))[0])
            raise InvalidEntryError(f"{name}{list(bad)} = {A[bad]!r} is not finite")

    def array(self, data: Any, *, name: str = "array") -> Array:
        if isinstance(data, np.ndarray) and data.dtype.kind in "iuf":
            out = np.asarray(data, dtype=np.float64)
            self.check_array(out, name=name)
            return out
        return super().array(data, name=name)

    def zeros(self, shape: int | Sequence[int]) -> Array:
        return np.zeros(checked_shape(shape), dtype=np.float64)

    def eye(self, n: int) -> Array:
        (size,) = checked_size(n)
        return np.eye(size, dtype=np.float64)

    def gaussian(self, rng: np.random.Generator, shape: int | Sequence[int]) -> Array:
        out: Array = checked_generator(rng).standard_normal(checked_shape(shape))
        return out


F64 = Float64Field()
