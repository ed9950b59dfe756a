"""The interface every number domain implements.

Every algorithm in exactattn is written once and receives its domain as a
value (``field=``), the way mpmath algorithms receive a context and SymPy's
``DomainMatrix`` carries ``QQ``. Vectors and matrices are numpy arrays: of
dtype ``object`` holding field elements for the exact fields, of dtype
``float64`` for :data:`~exactattn.fields.F64`. Elementwise ``+ - * /`` on
such arrays is the field's arithmetic; everything else (``exp``, ``log``,
signs, conversion, linear algebra) goes through the field object.

Python literals (``int``, ``fractions.Fraction``) are accepted by every
field's constructor; elements of *another* field never are
(:class:`~exactattn.errors.IncompatibleFieldError`).
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import IncompatibleFieldError, InvalidEntryError, NotRepresentableError, ShapeError

__all__ = ["Field", "Array"]

Array = np.ndarray[Any, Any]

#: errors whose constructor takes only a message (so an entry's position can be prefixed)
_PLAIN_ERRORS = (NotRepresentableError, InvalidEntryError, IncompatibleFieldError)


def _at(where: str, exc: Exception) -> Exception:
    """``exc`` with ``where`` before its message; a subclass of the plain errors, which
    may carry more than a message, is returned as it is."""
    return type(exc)(f"{where}: {exc}") if type(exc) in _PLAIN_ERRORS else exc


class Field(ABC):
    """A number domain: element conversion, exp/log, signs, random draws.

    Subclasses are immutable and compare equal when they describe the same
    domain (``BALL(64) != BALL(128)``).
    """

    #: short name used in reports, JSON and the CLI (``"EXP"``, ``"F64"``, ...)
    name: str
    #: True when ``==`` decides equality of real numbers exactly
    exact: bool
    #: numpy dtype of arrays over this field
    dtype: Any

    # -- elements ----------------------------------------------------------
    @abstractmethod
    def __call__(self, x: Any) -> Any:
        """Convert a literal (or an element of this field) to an element."""

    @abstractmethod
    def is_element(self, x: Any) -> bool:
        """True if ``x`` is already an element of this field."""

    def zero(self) -> Any:
        return self(0)

    def one(self) -> Any:
        return self(1)

    @abstractmethod
    def exp(self, x: Any) -> Any:
        """e^x, elementwise on arrays; NotRepresentableError if it leaves the field."""

    @abstractmethod
    def log(self, x: Any) -> Any:
        """Natural log, elementwise on arrays; NotRepresentableError if it leaves the field."""

    def logit(self, p: Any) -> Any:
        """logit(p) = log(p / (1 - p)), elementwise.

        At p = 1 the logit is +inf, not an element of any field:
        :class:`~exactattn.errors.NotRepresentableError` (p <= 0 or p > 1 is
        refused by the field's ``log``).

        >>> from exactattn.fields import EXP
        >>> EXP.logit(EXP.exp(EXP(3)) / (1 + EXP.exp(EXP(3)))) == EXP(3)
        True
        """
        def one(q: Any) -> Any:
            q = self(q)  # an element first: anything else is refused with the field's error
            try:
                ratio = q / (1 - q)
            except ZeroDivisionError:
                raise not_representable("logit", q, self.name,
                                        "logit(p) is a real number only for 0 < p < 1") from None
            return self.log(ratio)

        return self.map(one, p)

    def sigmoid(self, x: Any) -> Any:
        """sigma(x) = e^x / (1 + e^x), elementwise."""
        t = self.exp(x)
        return t / (1 + t)

    @abstractmethod
    def sign(self, x: Any) -> int:
        """-1, 0 or 1, decided exactly in exact fields."""

    def is_zero(self, x: Any) -> bool:
        return self.sign(x) == 0

    @abstractmethod
    def to_float(self, x: Any) -> float:
        """A float64 approximation of one element (for display and plots only)."""

    @abstractmethod
    def to_json(self, x: Any) -> Any:
        """A JSON-serialisable form of one element, read back by :meth:`from_json`."""

    @abstractmethod
    def from_json(self, obj: Any) -> Any:
        """Inverse of :meth:`to_json`."""

    def magnitude(self, x: Any) -> float:
        """|x| as a float, for heuristic choices only (pivots), never for decisions."""
        return abs(self.to_float(x))

    def to_rational(self, x: Any) -> Any:
        """The exact rational value of ``x`` as ``fmpq`` (exact fields, rational x)."""
        raise NotRepresentableError(f"{self.name} elements are not exact rationals")

    def from_rational(self, q: Any) -> Any:
        """The element equal to the rational ``q`` (an ``fmpq``)."""
        return self(Fraction(int(q.p), int(q.q)))

    # -- arrays -----------------------------------------------------------
    def array(self, data: Any, *, name: str = "array") -> Array:
        """Convert nested sequences (or an array) to an array over this field.

        Every entry is converted with the field's constructor, so bad entries
        (strings, None, NaN, elements of another field) raise a clear error
        naming ``name`` and the position.
        """
        if isinstance(data, np.ndarray) and data.dtype == self.dtype:
            if data.dtype != object:
                self.check_array(data, name=name)
                return data
            if all(self.is_element(x) for x in data.flat):
                return data  # already over this field: nothing to convert
        try:
            raw = np.array(data, dtype=object)
        except ValueError as exc:  # ragged nested lists
            raise InvalidEntryError(f"{name} is ragged, not a rectangular array: {exc}") from exc
        out = np.empty(raw.shape, dtype=self.dtype)
        for idx, entry in np.ndenumerate(raw):
            if isinstance(entry, list | tuple | np.ndarray):
                raise InvalidEntryError(
                    f"{name} is ragged, not a rectangular array: entry {list(idx)} is "
                    f"{describe(entry)} while other rows have {raw.shape[-1] if raw.ndim else 0}"
                    " entries")
            try:
                out[idx] = self(entry)
            except (InvalidEntryError, IncompatibleFieldError) as exc:
                raise type(exc)(f"{name}{list(idx)}: {exc}") from None
        return out

    @abstractmethod
    def check_array(self, A: Array, *, name: str = "array") -> None:
        """Raise unless every entry of ``A`` is an element of this field."""

    def zeros(self, shape: int | Sequence[int]) -> Array:
        out = np.empty(checked_shape(shape), dtype=self.dtype)
        out.fill(self.zero())
        return out

    def eye(self, n: int) -> Array:
        (size,) = checked_size(n)
        out = self.zeros((size, size))
        for i in range(size):
            out[i, i] = self.one()
        return out

    def map(self, fn: Any, A: Any) -> Any:
        """Apply a scalar function elementwise (scalars pass straight through).

        An error on an entry of an array names its position.
        """
        if isinstance(A, np.ndarray):
            out = np.empty(A.shape, dtype=self.dtype)
            for idx, entry in np.ndenumerate(A):
                try:
                    out[idx] = fn(entry)
                except _PLAIN_ERRORS as exc:
                    raise _at(f"entry {list(idx)}", exc) from None
            return out
        return fn(A)

    @abstractmethod
    def gaussian(self, rng: np.random.Generator, shape: int | Sequence[int]) -> Array:
        """Seeded draws from N(0, 1): rational roundings in exact fields."""

    def array_to_json(self, A: Array) -> dict[str, Any]:
        """``{"shape": [...], "entries": [...]}`` with entries in row-major order."""
        return {"shape": list(A.shape), "entries": [self.to_json(x) for x in A.flat]}

    def array_from_json(self, obj: dict[str, Any]) -> Array:
        """Inverse of :meth:`array_to_json`; a malformed object is an InvalidEntryError.

        >>> from exactattn.fields import QQ
        >>> QQ.array_from_json({"shape": [2, 2], "entries": ["1", "2", "3"]})
        Traceback (most recent call last):
        ...
        exactattn.errors.InvalidEntryError: an array of shape [2, 2] needs 4 entries, got 3
        """
        if not isinstance(obj, dict) or "shape" not in obj or "entries" not in obj:
            raise InvalidEntryError("an array in JSON is {\"shape\": [...], \"entries\": [...]},"
                                    f" got {describe(obj)}")
        shape, raw = obj["shape"], obj["entries"]
        if not isinstance(shape, list) or not isinstance(raw, list):
            raise InvalidEntryError(f"an array's shape and entries are lists, got "
                                    f"{describe(shape)} and {describe(raw)}")
        dims = checked_shape(shape)
        if math.prod(dims) != len(raw):
            raise InvalidEntryError(f"an array of shape {shape} needs {math.prod(dims)} entries, "
                                    f"got {len(raw)}")
        out = np.empty(len(raw), dtype=self.dtype)
        for i, x in enumerate(raw):
            try:
                out[i] = self.from_json(x)
            except _PLAIN_ERRORS as exc:
                raise _at(f"entry {i}", exc) from None
        return out.reshape(dims)

    # -- identity ----------------------------------------------------------
    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Field", self.name))

    def require_same(self, other: Field, what: str) -> None:
        """Raise IncompatibleFieldError unless ``other`` is this field."""
        if other != self:
            raise IncompatibleFieldError(f"{what} is over {other.name}, expected {self.name}")


#: the largest number of entries of an array built from a shape (zeros, eye, JSON): 2^26
#: (512 MiB of float64 or of object pointers, before the elements); a larger shape is
#: refused with its size, not attempted
MAX_ENTRIES = 2**26


def checked_shape(shape: Any) -> tuple[int, ...]:
    """``shape`` (an int or a sequence of ints) as a tuple, or ShapeError naming it.

    >>> checked_shape(3), checked_shape([2, 0])
    ((3,), (2, 0))
    >>> checked_shape(-1)
    Traceback (most recent call last):
    ...
    exactattn.errors.ShapeError: a shape has integer sizes >= 0, got -1 (type int)
    """
    dims = shape if isinstance(shape, Sequence) and not isinstance(shape, str | bytes) \
        else (shape,)
    if not all(isinstance(n, int | np.integer) and not isinstance(n, bool | np.bool_) and n >= 0
               for n in dims):
        raise ShapeError(f"a shape has integer sizes >= 0, got {describe(shape)}")
    out = tuple(int(n) for n in dims)
    if math.prod(out) > MAX_ENTRIES or any(n > MAX_ENTRIES for n in out):
        raise ShapeError(f"a shape of {math.prod(out)} entries ({out}) is beyond the "
                         f"{MAX_ENTRIES} entries exactattn builds at once")
    return out


def checked_size(n: Any) -> tuple[int]:
    """``(n,)`` for one size n >= 0 (an int, not a shape), or ShapeError."""
    if isinstance(n, Sequence | np.ndarray) and not isinstance(n, str | bytes):
        raise ShapeError(f"expected one size n >= 0, got the shape {describe(n)}")
    (size,) = checked_shape(n)
    checked_shape((size, size))
    return (size,)


def checked_generator(rng: Any) -> np.random.Generator:
    """``rng`` if it is a numpy Generator (seeded draws), else InvalidEntryError."""
    if not isinstance(rng, np.random.Generator):
        raise InvalidEntryError(f"rng must be a numpy Generator (np.random.default_rng(seed)), "
                                f"got {describe(rng)}")
    return rng


def literal_rational(x: Any) -> tuple[int, int] | None:
    """(numerator, denominator) of an exact Python literal, or None.

    Accepted literals: ``int`` and numpy integers (not ``bool``),
    ``fractions.Fraction`` and other ``numbers.Rational``.
    """
    if isinstance(x, bool | np.bool_):
        return None
    if isinstance(x, int | np.integer):
        return int(x), 1
    if isinstance(x, numbers.Rational):
        return int(x.numerator), int(x.denominator)
    return None


def describe(x: Any) -> str:
    """Short description of a bad entry for error messages."""
    text = repr(x)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} (type {type(x).__name__})"


def not_representable(op: str, x: Any, field: str, why: str) -> NotRepresentableError:
    return NotRepresentableError(f"{op}({x}) is not an element of {field}: {why}")
