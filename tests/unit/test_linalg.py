"""linalg over every field: exact results in QQ/EXP, rigorous enclosures in BALL, MP values.

Written to kill the mutants that mutation testing (docs/mutation.md) found alive in
``exactattn/linalg.py``: the ball and mpmath branches of solve, rank and det, and the
validation of both arguments of solve.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from flint import fmpq

from exactattn.errors import ExactattnError, IncompatibleFieldError, ShapeError
from exactattn.fields import BALL, EXP, F64, MP, QQ
from exactattn.linalg import det, exact_values, rank, solve

A_INT = [[2, 1], [1, 3]]
B_RECT = [[1, 0, 2], [0, 1, 5]]          # 2 x 3: more right-hand sides than rows
X_TRUE = [[Fraction(3, 5), Fraction(-1, 5), Fraction(1, 5)],
          [Fraction(-1, 5), Fraction(2, 5), Fraction(8, 5)]]


@pytest.mark.parametrize("F", [QQ, EXP])
def test_exact_solve_rank_det(F: Any) -> None:
    X = solve(F, F.array(A_INT), F.array(B_RECT))
    assert X.shape == (2, 3)
    assert all(bool(X[i, j] == F(X_TRUE[i][j])) for i in range(2) for j in range(3))
    assert rank(F, F.array([[1, 2], [2, 4]])) == 1
    assert det(F, F.array(A_INT)) == 5


@pytest.mark.parametrize("F", [BALL(64), MP(64)])
def test_solve_with_more_right_hand_sides_than_rows(F: Any) -> None:
    X = solve(F, F.array(A_INT), F.array(B_RECT))
    assert X.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            mid = F.midpoint(X[i, j]) if hasattr(F, "midpoint") else None
            value = fmpq(X_TRUE[i][j].numerator, X_TRUE[i][j].denominator)
            if mid is not None:  # a ball: the exact solution lies in it, and it is narrow
                rad = F.radius(X[i, j])
                assert mid - rad <= value <= mid + rad and rad < fmpq(1, 2**50)
            else:                # mpmath: within a few ulps at 64 bits
                assert abs(F.exact_value(X[i, j]) - value) < fmpq(1, 2**55)
    v = solve(F, F.array(A_INT), F.array([1, 1]))
    assert v.shape == (2,)


@pytest.mark.parametrize("F", [BALL(64), MP(64)])
def test_rank_and_det_of_exactly_known_entries(F: Any) -> None:
    assert rank(F, F.array([[1, 2], [2, 4]])) == 1
    assert rank(F, F.array(A_INT)) == 2
    d = det(F, F.array([[1, Fraction(1, 2)], [3, 7]]))
    assert exact_values(F, np.array([[d]], dtype=object))[0, 0] == fmpq(11, 2)


def test_rank_over_balls_refuses_inexact_entries() -> None:
    F = BALL(64)
    M = F.array([[1, 1], [1, 1]])
    M[0, 0] = M[0, 0] / 3          # 1/3 is not a binary fraction: a ball of positive radius
    with pytest.raises(ExactattnError, match="exactly known entries"):
        rank(F, M)


def test_solve_det_and_rank_check_their_arguments() -> None:
    with pytest.raises(IncompatibleFieldError):
        solve(QQ, F64.array([[1.0, 0.0], [0.0, 1.0]]), QQ.array([1, 1]))
    with pytest.raises(IncompatibleFieldError):
        solve(QQ, QQ.array([[1, 0], [0, 1]]), F64.array([1.0, 1.0]))
    with pytest.raises(IncompatibleFieldError):
        det(QQ, F64.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(IncompatibleFieldError):
        rank(QQ, F64.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ShapeError, match="solve needs a square matrix"):
        solve(QQ, QQ.array([[1, 0, 0], [0, 1, 0]]), QQ.array([1, 1]))
    with pytest.raises(ShapeError, match="det needs a square matrix"):
        det(QQ, QQ.array([[1, 0, 0], [0, 1, 0]]))
    with pytest.raises(ShapeError, match="B has 3 rows"):
        solve(QQ, QQ.array(A_INT), QQ.array([1, 1, 1]))
