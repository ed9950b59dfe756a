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


def _undecided(monkeypatch: Any) -> list[int]:
    """SIGN_MAX_PREC lowered to 32 and an evaluation that never decides the sign (a ball
    around 0); returns the list of the precisions it is called at."""
    calls: list[int] = []

    def undecided(a: Any, prec: int) -> arb:
        calls.append(prec)
        return arb(0, 1)

    monkeypatch.setattr(ex, "SIGN_MAX_PREC", 32)
    monkeypatch.setattr(ex, "_sum_ball", undecided)
    return calls


def _e_minus(num: int, den: int) -> Any:
    """The sum e^1 - num/den (sizes: 1, 1 -> 2 + 2 bits; 0 -> 0 + 1; num and den)."""
    return ((fmpq(1), fmpq(1)), (fmpq(0), fmpq(-num, den)))


@pytest.mark.parametrize(("num", "bits", "calls"), [
    (2**30 + 1, 44, [64, 128]),   # 4 * 44 = 176: 256 is past it
    (2**18 + 1, 32, [64, 128]),   # 4 * 32 = 128 exactly: 128 is still evaluated
    (2**46 + 1, 60, [64, 128]),   # 4 * 60 = 240 < 256 (5 * 60 = 300 would not be)
])
def test_the_sign_search_gives_up_at_four_times_the_size(
        monkeypatch: Any, num: int, bits: int, calls: list[int]) -> None:
    """Past SIGN_MAX_PREC the search goes on while the precision is <= 4 * _sum_bits,
    then refuses naming the size and the last precision tried, as integers."""
    seen = _undecided(monkeypatch)
    a = _e_minus(num, 2**7)
    assert ex._sum_bits(a) == bits == 2 + 2 + 1 + num.bit_length() + 8
    with pytest.raises(InsufficientPrecisionError) as info:
        ex._sum_sign(a)
    assert seen == calls
    err = info.value
    assert (err.prec, err.needed_prec) == (128, 129)
    assert type(err.prec) is int and type(err.needed_prec) is int
    assert str(err) == (
        f"the sign of the exponential sum {ex._sum_str(a)} (2 terms, {bits} bits) is not "
        "decided by rigorous balls at 128 bits (tiny exponent gaps already resolved by exact "
        "Taylor moments); it is nonzero, but its coefficients cancel to more than 128 bits: "
        "the sign needs more than 128 bits of working precision")


def _long_sum(last: int) -> Any:
    """13 terms of alternating sign and a last term last * e^(1/3), in decreasing order."""
    return tuple((fmpq(k, 3), fmpq((-1) ** k * (k + 1), 7)) for k in range(14, 1, -1)) + \
        ((fmpq(1, 3), fmpq(last)),)


@pytest.mark.parametrize(("last", "length", "shortened"), [(8, 200, False), (15, 201, True)])
def test_the_give_up_message_shortens_a_sum_past_200_characters(
        monkeypatch: Any, last: int, length: int, shortened: bool) -> None:
    """The sum's text is kept up to 200 characters, else cut to 197 and "..."."""
    _undecided(monkeypatch)
    a = _long_sum(last)
    text = ex._sum_str(a)
    assert len(text) == length
    with pytest.raises(InsufficientPrecisionError) as info:
        ex._sum_sign(a)
    shown = text[:197] + "..." if shortened else text
    assert str(info.value).startswith(f"the sign of the exponential sum {shown} (14 terms, ")
