"""Kill tests for the mutants of ``exactattn/reconstruct.py`` that survived the fourth
mutmut pass (docs/mutation.md).

Two of them weakened an exact decision: ``required_precision`` read the lower end of
its log2 ball instead of the upper one (one bit short when log2 of the bound lies just
above an integer, inside the ball), and ``reconstruct_rational`` accepted a ball
exactly 1/Q^2 wide (``>`` for ``>=``), which can hold two rationals of denominator
<= Q. The others dropped the figures of a refusal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import mpmath
import pytest
from flint import fmpq

from exactattn.errors import InvalidEntryError, RecoveryFailedError
from exactattn.fields import BALL, BallField
from exactattn.reconstruct import (
    AmbiguousReconstructionError,
    logit_slope_bound,
    reconstruct_rational,
    required_precision,
)


def _rho_just_above(k: int, Q: int) -> int:
    """The least answer radius rho with X = 280 (4 rho + 3) Q^3 > 2^k.

    At max_entry = 0 (A = 1, K = 4) the bound of required_precision is X, and
    X / 2^k - 1 < 1120 Q^3 / 2^k: for large k, log2 X is above k by far less than the
    radius of a 64-bit ball of it.
    """
    rho: int = max(1, (int(2**k) // (280 * Q**3) - 3) // 4)
    while 280 * (4 * rho + 3) * Q**3 <= 2**k:
        rho += 1
    return rho


@pytest.mark.parametrize(("k", "Q"), [(100, 1), (150, 5), (300, 7)])
def test_required_precision_is_sound_when_its_log2_ball_straddles_an_integer(
        k: int, Q: int) -> None:
    """required_precision mutant 62 (``bits.lower()`` for ``bits.upper()``) returned k
    bits here, and 2^k < X: eps = 2^-p is then not below 1 / X, the proof's condition.
    The check is exact, in integers: 2^(p-1) <= X < 2^p."""
    rho = _rho_just_above(k, Q)
    X = 280 * (4 * rho + 3) * Q**3
    with mpmath.workdps(400):  # the case is a rounding test: log2 X - k is far below 2^-64
        gap = mpmath.log(X, 2) - k
        assert 0 < gap < mpmath.mpf(2) ** -80
    p = required_precision(1, 0, Q, answer_radius=rho)
    assert 2 ** (p - 1) <= X < 2**p
    assert p == k + 1


class _DyadicRadiusBall(BallField):
    """A BALL field whose balls report a radius without arb's upward rounding.

    python-flint rounds every radius up by a 30-bit ulp (the ball [0, 1] has radius
    1/2 + 2^-30), so a real BALL(p) never reports 2 r Q^2 = 1 exactly; an oracle's
    closed ball may be exactly that wide. This double reports the radius rounded to
    the nearest rational of denominator <= 2^20 (1/2 for [0, 1]).
    """

    def radius(self, x: Any) -> fmpq:
        r = Fraction(str(super().radius(x))).limit_denominator(2**20)
        return fmpq(r.numerator, r.denominator)


@pytest.mark.parametrize("mid", [Fraction(1, 2), Fraction(5, 2), Fraction(-7, 2)])
def test_a_ball_exactly_1_over_q_squared_wide_is_ambiguous(mid: Fraction) -> None:
    """reconstruct_rational mutant 15 (``2 r Q^2 > 1``): the closed ball
    [mid - 1/2, mid + 1/2] holds two integers (Q = 1), and the mutant returned one."""
    F = _DyadicRadiusBall(64)
    x = F.from_json({"mid": str(mid), "rad": "1/2"})
    assert F.radius(x) == fmpq(1, 2)
    with pytest.raises(AmbiguousReconstructionError):
        reconstruct_rational(F, x, 1)


def test_an_ambiguous_ball_names_its_entry_and_figures() -> None:
    """Mutants 1, 2 (the default entry label) and 49-53 (the width and 1/Q^2 printed)."""
    F = BALL(64)
    x = F.from_json({"mid": "1/3", "rad": "1/1024"})  # 2 r Q^2 ~ 2000 for Q = 1000
    width = 2 * Fraction(str(F.radius(x)))
    with pytest.raises(AmbiguousReconstructionError) as info:
        reconstruct_rational(F, x, 1000)
    text = str(info.value)
    assert text.startswith("entry: the ball ")
    assert f"(width {float(width):.3e})" in text and "(width 1.953e-03)" in text
    assert "needs width < 1/Q^2 = 1.000e-06" in text


def test_a_ball_without_a_candidate_says_what_to_do() -> None:
    """Mutants 72-75: the refusal's advice (raise max_denominator, or the oracle's
    balls are wrong)."""
    F = BALL(64)
    x = F.from_json({"mid": "1/7", "rad": "1/10000"})  # holds no rational of denominator <= 5
    with pytest.raises(RecoveryFailedError) as info:
        reconstruct_rational(F, x, 5, entry="v[2]")
    assert str(info.value) == (
        f"v[2]: no rational with denominator <= 5 lies in the ball {x}; the parameter is "
        "not such a rational (raise max_denominator) or the oracle's balls do not contain "
        "the true values")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: reconstruct_rational(BALL(64), BALL(64)(1), 0),
     "max_denominator must be >= 1, got 0"),                               # mutant 7
    (lambda: logit_slope_bound("two"), "max_logit must be a rational >= 0, got 'two'"),  # 4
    (lambda: logit_slope_bound(-1), "max_logit must be >= 0, got -1"),     # 12
    (lambda: required_precision(0, 9, 8),
     "d and max_denominator must be integers >= 1, got 0 and 8"),          # 10
    (lambda: required_precision(2, 9, 8, answer_radius=0),
     "answer_radius must be an integer >= 1, got 0"),                      # 15
    (lambda: required_precision(2, "nine", 8),
     "max_entry must be a rational >= 0, got 'nine'"),                     # 18
    (lambda: required_precision(2, -9, 8), "max_entry must be >= 0, got -9"),  # 21
])
def test_a_refused_argument_is_named_with_its_value(call: Any, message: str) -> None:
    with pytest.raises(InvalidEntryError) as info:
        call()
    assert str(info.value) == message
