"""Small helpers shared by the test files (exact comparisons, literal EXP elements)."""

from __future__ import annotations

from typing import Any

import numpy as np

from exactattn.fields import EXP


def same(A: Any, B: Any) -> bool:
    """Exact elementwise equality of two arrays (shapes included), as a bool."""
    A, B = np.asarray(A, dtype=object), np.asarray(B, dtype=object)
    return A.shape == B.shape and all(bool(a == b) for a, b in zip(A.flat, B.flat, strict=True))


def e(q: Any) -> Any:
    """e^q as an EXP element (q an int or Fraction)."""
    return EXP.exp(EXP(q))


def sigma(q: Any) -> Any:
    """sigma(q) = e^q / (1 + e^q) as an EXP element."""
    return e(q) / (1 + e(q))
