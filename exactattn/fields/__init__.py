"""Number domains. Every algorithm takes one of these as ``field=``.

* :data:`QQ`  exact rationals (python-flint ``fmpq``)
* :data:`EXP` the exponential field: exact quotients of sums c e^q (default exact route)
* :data:`F64` numpy float64, vectorised, never called exact
"""

from __future__ import annotations

from .base import Array, Field
from .exponential import EXP, ExpElement, ExponentialField
from .float64 import F64, UNIT_ROUNDOFF, Float64Field
from .rational import QQ, RationalField, rational

__all__ = [
    "Array",
    "Field",
    "QQ",
    "EXP",
    "F64",
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
    """The field called ``name`` (``"QQ"``, ``"EXP"``, ``"F64"``).

    >>> field_by_name("EXP") is EXP
    True
    """
    try:
        return _BY_NAME[name.upper()]
    except KeyError:
        raise ValueError(f"unknown field {name!r}; choose one of {', '.join(_BY_NAME)}") from None
