"""From rigorous balls back to exact rationals (design.md §2, route 2).

A parameter known to be a rational p/q with q <= Q is recovered from a ball
[m - r, m + r] that contains it as follows. Two distinct rationals with
denominators <= Q differ by at least 1/Q^2 (|p/q - p'/q'| = |pq' - p'q|/(qq')
>= 1/Q^2), so when the ball's width 2r is below 1/Q^2 it holds at most one of
them, and that one is the best rational approximation of m with denominator
<= Q (continued fractions: ``fractions.Fraction.limit_denominator``) if it
lies in the ball at all. A wider ball is reported as ambiguous, with the
precision that would settle it; a ball holding no such rational means the
parameter is not one (or the oracle is not what it claims), and is reported,
never rounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from flint import arb, ctx, fmpq

from .errors import ExactattnError, InvalidEntryError, RecoveryFailedError
from .fields import BallField

__all__ = ["AmbiguousReconstructionError", "reconstruct_rational", "required_precision",
           "Reconstruction", "logit_slope_bound", "ANSWER_RADIUS"]


class AmbiguousReconstructionError(ExactattnError, ArithmeticError):
    """A ball is too wide to single out one rational of denominator <= Q."""

    def __init__(self, message: str, *, entry: str, needed_prec: int) -> None:
        super().__init__(message)
        self.entry = entry
        self.needed_prec = needed_prec


@dataclass(frozen=True)
class Reconstruction:
    value: fmpq
    radius: fmpq


def reconstruct_rational(field: BallField, x: Any, max_denominator: int, *,
                         entry: str = "entry") -> Reconstruction:
    """The unique rational with denominator <= Q in the ball ``x``.

    >>> from exactattn.fields import BALL
    >>> F = BALL(64)
    >>> reconstruct_rational(F, F(1) / 3, 10).value
    1/3
    >>> reconstruct_rational(BALL(8), BALL(8)(1) / 3, 1000)
    Traceback (most recent call last):
    ...
    exactattn.reconstruct.AmbiguousReconstructionError: entry: the ball ... is too wide ...
    """
    Q = int(max_denominator)
    if Q < 1:
        raise InvalidEntryError(f"max_denominator must be >= 1, got {max_denominator}")
    m, r = field.midpoint(x), field.radius(x)
    if 2 * r * Q * Q >= 1:
        # the radius shrinks like 2^-prec: scale the precision by the missing bits
        missing = math.log2(float(2 * r * Q * Q)) + 2 if r > 0 else 2
        needed = field.prec + max(8, math.ceil(missing) + 8)
        raise AmbiguousReconstructionError(
            f"{entry}: the ball {field(x)} (width {float(2 * r):.3e}) is too wide to single "
            f"out a rational of denominator <= {Q} (needs width < 1/Q^2 = "
            f"{1 / (Q * Q):.3e}); about {needed} bits would settle it",
            entry=entry, needed_prec=needed)
    cand = Fraction(int(m.p), int(m.q)).limit_denominator(Q)
    q = fmpq(cand.numerator, cand.denominator)
    if abs(q - m) > r:
        raise RecoveryFailedError(
            f"{entry}: no rational with denominator <= {Q} lies in the ball {field(x)}; the "
            "parameter is not such a rational (raise max_denominator) or the oracle's balls "
            "do not contain the true values")
    return Reconstruction(q, r)


#: hypothesis (H2) on a BALL oracle, assumed by :func:`required_precision`: every answer
#: is a ball of radius <= ANSWER_RADIUS * 2^-prec * A, A bounding the values x_i^T v of
#: the query's tokens. No query can confirm it; for :func:`exactattn.oracle.enclosing_oracle`
#: it is measured (below 6 in tests/unit/test_precision.py), not proved.
ANSWER_RADIUS = 16


def logit_slope_bound(max_logit: Any) -> arb:
    """An upper bound (an arb ball) on the slope of logit over |t| <= T.

    d logit(p) / dp = 1 / (p (1 - p)) = (1 + e^t)(1 + e^-t) = 2 + 2 cosh(t) at
    p = sigma(t), increasing in |t|, so over |t| <= T it is at most
    K(T) = 2 + 2 cosh(T) = e^T + e^-T + 2, computed here in ball arithmetic. (An
    earlier version bounded it by e^T + 2, which misses e^-T: false for every T.)

    >>> K = logit_slope_bound(0)
    >>> bool(K == 4)
    True
    """
    if isinstance(max_logit, fmpq):
        T = max_logit
    else:
        try:
            frac = Fraction(max_logit)
        except (TypeError, ValueError):
            raise InvalidEntryError(f"max_logit must be a rational >= 0, got {max_logit!r}") \
                from None
        T = fmpq(frac.numerator, frac.denominator)
    if T < 0:
        raise InvalidEntryError(f"max_logit must be >= 0, got {max_logit}")
    with ctx.workprec(64):
        return 2 + 2 * arb(T).cosh()


def required_precision(d: int, max_entry: Any, max_denominator: int, *,
                       answer_radius: int = ANSWER_RADIUS) -> int:
    """Bits of BALL precision that suffice for reconstruction, given (H1)-(H3) below.

    (H2), the oracle's answer radius ``answer_radius``, is an assumption about the
    oracle, not something the learner checks; a wider oracle may need more bits.

    Setting: ``learn_single_head`` with deterministic probes over BALL(p) with
    ``max_denominator=Q``. Hypotheses: (H1) hidden W, v rational, |entries| <= M,
    denominators <= Q, v != 0; (H2) every answer is a ball of radius at most
    rho eps A with eps = 2^-p, rho = ``answer_radius`` and A = max(3M, 1) (the
    oracle's contract, see ANSWER_RADIUS); (H3) each ball operation at p bits adds
    at most eps |result| to the radius it propagates (arb's rounding).

    Proof. The probes (module ``single_head``, BALL pivots on the largest |v_p|):
    u_l = e_l if |v_l| >= |v_p| / 2, else e_l + sign(v_l v_p) e_p; so
    c_l = u_l^T v has |c_l| >= |v_p| / 2 >= 1 / (2Q) (v_p != 0 has denominator
    <= Q), every token value (u_l + e_j)^T v, e_j^T v is at most 3M <= A in
    magnitude, and the logit t = u_l^T w_j has |t| <= 2M. Radii, step by step:

    * v_j: <= rho eps A (H2). c_l = v_l or v_l +- v_p: <= (2 rho + 1) eps A.
    * y: <= rho eps A; n = y - v_j: <= (2 rho + 1) eps A (|n| = sigma |c_l| <= A).
    * p = n / c_l, with |p| <= 1 and rad(c_l) <= 1/(5Q) (implied below), so
      |c_l| - rad(c_l) >= 1/(4Q): rad(p) <= 4Q (rad n + rad c_l) + eps
      <= 4Q (4 rho + 3) eps A.
    * t = logit(p): p = sigma(t) with |t| <= 2M has min(p, 1 - p) >= 1/K,
      K = 2 + 2 cosh(2M) (:func:`logit_slope_bound`). If rad(p) <= 1/(2K), every
      p' in the ball has p'(1 - p') >= p(1 - p)/4, so the slope over the ball is
      at most 4K; with the roundings of 1 - p, the quotient and the log (<= 5 eps A):
      rad(t) <= 16 K Q (4 rho + 3) eps A + 5 eps A <= 17 K Q (4 rho + 3) eps A.
    * W_lj = t_lj - a_l t_pj (a_l in {0, +-1}; the learner applies Z^{-1} =
      I - a e_p^T directly): rad(W_lj) <= 2 rad(t) + eps M <= 35 K Q (4 rho + 3) eps A.

    Reconstruction needs rad < 1/(2Q^2) (two rationals of denominator <= Q are
    >= 1/Q^2 apart), i.e. eps < 1 / (70 (4 rho + 3) A Q^3 K), which also gives
    rad(c_l) <= 1/(5Q) and rad(p) <= 1/(2K) used above (v's radii, <= rho eps A,
    are smaller still). Hence p = floor(log2(70 (4 rho + 3) A Q^3 K)) + 1 bits
    suffice; the logarithm is evaluated in arb (K grows like e^{2M}, far beyond
    floats for large M) and p is floor(U) + 1 for U the exact upper end of its
    ball, so p > log2(...) whatever the ball's width (no rounding the wrong way).
    ``d`` does not enter: each entry's chain has bounded length. The reconstruction
    itself does not rely on this bound: it checks every ball a posteriori and
    reports an ambiguous one.

    >>> required_precision(4, 9, 8)
    52
    """
    if not isinstance(d, int) or d < 1 or not isinstance(max_denominator, int) or \
            max_denominator < 1:
        raise InvalidEntryError(
            f"d and max_denominator must be integers >= 1, got {d!r} and {max_denominator!r}")
    if not isinstance(answer_radius, int) or answer_radius < 1:
        raise InvalidEntryError(f"answer_radius must be an integer >= 1, got {answer_radius!r}")
    try:
        frac = Fraction(max_entry)
    except (TypeError, ValueError):
        raise InvalidEntryError(f"max_entry must be a rational >= 0, got {max_entry!r}") from None
    if frac < 0:
        raise InvalidEntryError(f"max_entry must be >= 0, got {max_entry}")
    M = fmpq(frac.numerator, frac.denominator)
    A = max(3 * M, fmpq(1))
    Q = max_denominator
    K = logit_slope_bound(2 * M)
    with ctx.workprec(64):
        bits = (arb(70 * (4 * answer_radius + 3)) * arb(A) * arb(Q) ** 3 * K).log() / arb(2).log()
        # floor(U) + 1 > U >= log2(...) for U the ball's exact upper end: no float step
        top = bits.upper().floor().unique_fmpz()
    if top is None:  # pragma: no cover - the floor of an exact (zero-radius) ball is exact
        raise ArithmeticError(f"floor of the exact upper end {bits.upper()} is not unique")
    return int(top) + 1
