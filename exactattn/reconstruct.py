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

from flint import fmpq

from .errors import ExactattnError, RecoveryFailedError
from .fields import BallField

__all__ = ["AmbiguousReconstructionError", "reconstruct_rational", "required_precision",
           "Reconstruction"]


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
        raise ValueError(f"max_denominator must be >= 1, got {max_denominator}")
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


def required_precision(d: int, max_entry: Any, max_denominator: int) -> int:
    """Bits of BALL precision that provably suffice for reconstruction.

    For the deterministic probes of ``single_head_exact``, hidden W, v with
    rational entries of denominator <= Q and |entry| <= M, and an oracle
    answering balls at the same precision p (radius <= 2^-p |answer|, the
    enclosure of an exact value):

    * answers are bounded by A = 2M (tokens e_j, u + e_j with u = e_l or
      e_l + e_p), so their radius is <= 2^-p A;
    * c_l = u_l^T v is a nonzero rational with denominator <= Q: |c_l| >= 1/Q,
      so p_l = (y - v_j)/c_l has radius <= 4 Q 2^-p A (y, v_j, c_l each off);
    * t = logit(p) with |t| = |u_l^T w_j| <= 2M has slope
      1/(p(1-p)) = 2 + 2 cosh(t) <= e^{2M} + 2 =: K;
    * W = Z^{-1} T with Z^{-1} = I - a e_p^T adds at most a factor 2;
    * the rounding of the working arithmetic at p bits at most doubles the
      radii (a factor 4 of slack is kept).

    Hence every radius is <= 2^-p * 64 A Q K, and reconstruction needs radius
    < 1/(2 Q^2): p >= log2(128 A Q^3 K) suffices. (v's radii, <= 2^-p A, are
    smaller.) ``d`` does not enter: each entry's chain has bounded length.

    >>> required_precision(4, 9, 8)
    48
    """
    if d < 1 or max_denominator < 1:
        raise ValueError("d and max_denominator must be >= 1")
    M = float(Fraction(max_entry))
    if M < 0:
        raise ValueError("max_entry must be >= 0")
    A = max(2 * M, 1.0)
    Q = max_denominator
    log2_K = (2 * M) / math.log(2) + 1  # log2(e^{2M} + 2) <= 2M/ln 2 + 1
    return math.ceil(math.log2(128 * A) + 3 * math.log2(Q) + log2_K)
