"""Kill tests for the mutants of ``_sum_bits`` in ``exactattn/fields/exponential.py``
(docs/mutation.md: three mutants that no test covered).

``_sum_bits`` sizes an exponential sum; the sign search uses it past SIGN_MAX_PREC
(it keeps doubling the precision up to 4 times the size) and names it when it gives
up. Reaching that point on a real sum takes minutes of evaluation, so the second test
lowers SIGN_MAX_PREC and replaces the evaluation by one that never decides.
"""

from __future__ import annotations

from typing import Any

import pytest
from flint import arb, fmpq

from exactattn.fields import InsufficientPrecisionError
from exactattn.fields import exponential as ex

# (-5/7) e^(3/4) + (1/2) e^0 as a Sum of (exponent, coefficient) pairs; sizes in bits:
# 3 -> 2, 4 -> 3, -5 -> 3, 7 -> 3, and 0 -> 0, 1 -> 1 (its denominator), 1 -> 1, 2 -> 2
SUM = ((fmpq(3, 4), fmpq(-5, 7)), (fmpq(0), fmpq(1, 2)))
SUM_BITS = 2 + 3 + 3 + 3 + 0 + 1 + 1 + 2


def test_sum_bits_counts_numerators_and_denominators() -> None:
    assert ex._sum_bits(SUM) == SUM_BITS == 15
    big = ((fmpq(1, 2**40), fmpq(-(3**30), 7)),)  # 1 + 41, 48 (3^30 < 2^48) + 3
    assert ex._sum_bits(big) == 1 + 41 + 48 + 3
    assert ex._sum_bits(()) == 0


def test_the_sign_search_gives_up_at_four_times_the_size(monkeypatch: Any) -> None:
    """Past SIGN_MAX_PREC the search goes on to 4 * _sum_bits bits, then refuses
    naming the size: with SIGN_MAX_PREC = 32 and 4 * 44 = 176 bits it evaluates at
    64 and 128 bits and gives up at 128."""
    calls: list[int] = []

    def undecided(a: Any, prec: int) -> arb:
        calls.append(prec)
        return arb(0, 1)  # a ball around 0: the sign is never decided

    monkeypatch.setattr(ex, "SIGN_MAX_PREC", 32)
    monkeypatch.setattr(ex, "_sum_ball", undecided)
    a = ((fmpq(1), fmpq(1)), (fmpq(0), fmpq(-(2**30 + 1), 2**7)))  # 2 + 2 + 1 + 31 + 8 bits
    assert ex._sum_bits(a) == 44
    with pytest.raises(InsufficientPrecisionError) as info:
        ex._sum_sign(a)
    assert calls == [64, 128]
    err = info.value
    assert (err.prec, err.needed_prec) == (128, 129)
    assert str(err) == (
        f"the sign of the exponential sum {ex._sum_str(a)} (2 terms, 44 bits) is not decided "
        "by rigorous balls at 128 bits (tiny exponent gaps already resolved by exact Taylor "
        "moments); it is nonzero, but its coefficients cancel to more than 128 bits: the sign "
        "needs more than 128 bits of working precision")


def test_the_give_up_message_shortens_a_long_sum(monkeypatch: Any) -> None:
    """The sum's text is cut to 197 characters and "..." past 200 characters."""
    monkeypatch.setattr(ex, "SIGN_MAX_PREC", 32)
    monkeypatch.setattr(ex, "_sum_ball", lambda a, prec: arb(0, 1))
    a = tuple((fmpq(k, 3), fmpq((-1) ** k * (k + 1), 7)) for k in range(40, 0, -1))
    text = ex._sum_str(a)
    assert len(text) > 200
    with pytest.raises(InsufficientPrecisionError) as info:
        ex._sum_sign(a)
    assert str(info.value).startswith(
        f"the sign of the exponential sum {text[:197]}... (40 terms, ")
