"""Kill tests for the mutants of ``exactattn/linalg.py`` that survived the fourth
mutmut pass (docs/mutation.md).

No survivor of that pass turned an exact decision into a float one (every mutant of
the ``field.exact`` branches was killed); the first test pins that property directly,
on a matrix whose rank, determinant and solution floats get wrong. The others pin
what the surviving mutants changed: which argument a refusal names and what the
refusal of a singular system or of an inexact ball says.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from exactattn.errors import IncompatibleFieldError
from exactattn.fields import BALL, F64, MP, QQ, InsufficientPrecisionError
from exactattn.linalg import SingularMatrixError, det, rank, solve, to_fmpq_mat

TINY = Fraction(1, 10**30)  # 1 + TINY rounds to 1.0 in float64


def test_exact_rank_solve_det_see_a_gap_floats_cannot() -> None:
    """[[1, 1], [1, 1 + 10^-30]] is invertible over QQ; in float64 it is singular."""
    A = QQ.array([[1, 1], [1, 1 + TINY]])
    assert rank(QQ, A) == 2
    assert det(QQ, A) == QQ(TINY)
    X = solve(QQ, A, QQ.array([0, TINY]))
    assert [X[0], X[1]] == [QQ(-1), QQ(1)]
    # the same matrix rounded to float64 has rank 1: the exact answer is not a float one
    assert rank(F64, np.array([[1.0, 1.0], [1.0, float(1 + TINY)]])) == 1


def test_a_refused_argument_is_named_by_its_position() -> None:
    """_check mutants 3, 5, 6, 7: the refusal named no argument or the wrong one."""
    good = QQ.array([[1, 0], [0, 1]])
    with pytest.raises(IncompatibleFieldError, match=r"^linalg argument 2 has dtype float64"):
        solve(QQ, good, np.zeros(2))
    with pytest.raises(IncompatibleFieldError, match=r"^linalg argument 1 has dtype float64"):
        solve(QQ, np.zeros((2, 2)), QQ.array([1, 1]))


@pytest.mark.parametrize(("field", "message"), [
    (QQ, r"^solve: the matrix is singular$"),        # mutants 28-30
    (MP(64), r"^solve: the matrix is singular$"),    # mutants 57-59
    (F64, r"^solve: .*[Ss]ingular"),                 # mutant 78: numpy's reason kept
])
def test_a_singular_system_is_refused_saying_so(field: Any, message: str) -> None:
    with pytest.raises(SingularMatrixError, match=message):
        solve(field, field.array([[1, 2], [2, 4]]), field.array([1, 1]))


def test_a_ball_system_names_the_precision_it_failed_at() -> None:
    """Mutant 43: the BALL refusal lost the precision, the figure that says what to do."""
    F = BALL(64)
    with pytest.raises(InsufficientPrecisionError, match="not invertible at 64 bits"):
        solve(F, F.array([[1, 2], [2, 4]]), F.array([1, 1]))


def test_rank_over_ball_refuses_an_inexact_entry_naming_ball() -> None:
    """exact_values mutants 6, 7 (the text), and to_fmpq_mat 2 (an empty TypeError)."""
    F = BALL(64)
    with pytest.raises(InsufficientPrecisionError,
                       match=r"^rank/det over BALL needs exactly known entries"):
        rank(F, F.array([[F(1) / 3, 1], [1, 1]]))
    with pytest.raises(TypeError, match=r"^BALL\(64\) is not exact$"):
        to_fmpq_mat(F, F.array([[1]]))
