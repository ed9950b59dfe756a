"""Number domains. Every algorithm takes one of these as ``field=``.

* :data:`QQ`  exact rationals (python-flint ``fmpq``)
* :data:`EXP` the exponential field: exact quotients of sums c e^q (default exact route)
* :data:`F64` numpy float64, vectorised, never called exact
"""

from __future__ import annotations

from ..errors import InvalidEntryError
from .base import Array, Field, describe
from .exponential import EXP, ExpElement, ExponentialField
from .float64 import F64, UNIT_ROUNDOFF, Float64Field
from .precision import (
    BALL,
    MP,
    BallField,
    InsufficientPrecisionError,
    MPField,
    PrecisionElement,
)
from .rational import QQ, RationalField, rational

__all__ = [
    "Array",
    "Field",
    "QQ",
    "EXP",
    "F64",
    "BALL",
    "MP",
    "BallField",
    "MPField",
    "PrecisionElement",
    "InsufficientPrecisionError",
    "ExpElement",
    "ExponentialField",
    "Float64Field",
    "RationalField",
    "UNIT_ROUNDOFF",
    "rational",
    "field_by_name",
]

_BY_NAME: dict[str, Field] = {"QQ": QQ, "EXP": EXP, "F64": F64}


def field_by_name(name: str) -> Field:
    """The field called ``name`` (``"QQ"``, ``"EXP"``, ``"F64"``, ``"BALL(128)"``, ``"MP(200)"``).

    >>> field_by_name("EXP") is EXP, field_by_name("BALL(128)") is BALL(128)
    (True, True)
    """
    accepted = f"{', '.join(_BY_NAME)}, BALL(prec), MP(prec) with an integer prec >= 8"
    if not isinstance(name, str):
        raise InvalidEntryError(f"a field name must be a string, got {describe(name)}; "
                                f"choose one of {accepted}")
    key = name.strip().upper()
    if key in _BY_NAME:
        return _BY_NAME[key]
    for kind, make in (("BALL", BALL), ("MP", MP)):
        if key.startswith(kind + "(") and key.endswith(")"):
            digits = key[len(kind) + 1:-1]
            if digits.isascii() and digits.isdigit():
                return make(int(digits))  # make() refuses precisions it cannot hold
    raise InvalidEntryError(f"unknown field {name!r}; choose one of {accepted}")
