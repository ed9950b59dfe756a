"""Unit tests for the number fields QQ, EXP, F64 and for exactattn.linalg.

Exact fields are tested with ``==`` only (no tolerance). Where a numerical
reference is needed (signs, ordering, float conversion) it is computed
independently of the field: python-flint ``arb`` balls evaluated from the
terms an element was built from, mpmath at high precision, or exact
mathematical facts (continued fractions of e^{1/n}, monotonicity of exp,
Taylor bounds).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from itertools import permutations

import mpmath
import numpy as np
import pytest
from flint import arb, ctx, fmpq, fmpz
from hypothesis import given
from hypothesis import strategies as st

from exactattn import linalg
from exactattn.errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    ShapeError,
)
from exactattn.fields import (
    EXP,
    F64,
    QQ,
    ExpElement,
    ExponentialField,
    Field,
    Float64Field,
    RationalField,
    field_by_name,
)
from exactattn.linalg import SingularMatrixError
from tests.strategies import (
    ExpSample,
    exp_elements,
    exp_samples,
    exp_sum,
    exponents,
    fraction_to_arb,
    nonzero_exp_elements,
    nonzero_rationals,
    rational_matrices,
    rational_vectors,
    rationals,
    square_rational_matrices,
)

HALF = Fraction(1, 2)
BIG = Fraction(10**6, 7)  # e^BIG ~ 10^62042: far outside float range


def e(q: Fraction | int) -> ExpElement:
    """e^q in EXP."""
    return EXP.exp(EXP(q))


def sigma(q: Fraction | int) -> ExpElement:
    """The logistic function at q, built by hand from field operations."""
    t = e(q)
    return t / (1 + t)


def arb_sign(ball: arb) -> int:
    if ball > 0:
        return 1
    if ball < 0:
        return -1
    return 0


def names(message: str, *alternatives: tuple[str, ...]) -> bool:
    """True if ``message`` contains one token of every tuple of alternatives."""
    return all(any(tok in message for tok in alt) for alt in alternatives)


# =============================================================================
# strategies (sanity: the generators produce what they claim)
# =============================================================================
@given(rationals(), exp_samples())
def test_strategies_produce_fractions_and_exp_elements(q: Fraction, s: ExpSample) -> None:
    assert isinstance(q, Fraction)
    assert abs(q.numerator) <= 60 and q.denominator <= 12
    assert isinstance(s.element, ExpElement)
    assert s.element == exp_sum(list(s.num)) / exp_sum(list(s.den))


@given(rational_matrices(rows=2, cols=3), square_rational_matrices(n=3), rational_vectors(4))
def test_matrix_strategies_have_the_requested_shapes(
    M: list[list[Fraction]], S: list[list[Fraction]], v: list[Fraction]
) -> None:
    assert np.array(M, dtype=object).shape == (2, 3)
    assert np.array(S, dtype=object).shape == (3, 3)
    assert len(v) == 4 and all(isinstance(x, Fraction) for x in v)


# =============================================================================
# EXP: field axioms
# =============================================================================
@given(exp_elements(), exp_elements())
def test_exp_addition_and_multiplication_commute(a: ExpElement, b: ExpElement) -> None:
    assert a + b == b + a
    assert a * b == b * a


@given(exp_elements(2), exp_elements(2), exp_elements(2))
def test_exp_addition_and_multiplication_associate(
    a: ExpElement, b: ExpElement, c: ExpElement
) -> None:
    assert (a + b) + c == a + (b + c)
    assert (a * b) * c == a * (b * c)


@given(exp_elements(2), exp_elements(2), exp_elements(2))
def test_exp_distributivity(a: ExpElement, b: ExpElement, c: ExpElement) -> None:
    assert a * (b + c) == a * b + a * c
    assert (a - b) * c == a * c - b * c


@given(exp_elements())
def test_exp_identities_and_inverses(a: ExpElement) -> None:
    assert a - a == 0
    assert a + 0 == a and 0 + a == a
    assert a * 1 == a and a * 0 == 0
    negated = -a
    assert -negated == a
    assert a + (-a) == EXP.zero()
    if a != 0:
        assert a / a == 1
        assert a * (1 / a) == EXP.one()
        assert a**-1 == 1 / a


@given(exp_elements(), nonzero_exp_elements())
def test_exp_division_undoes_multiplication(a: ExpElement, b: ExpElement) -> None:
    assert (a / b) * b == a
    assert (a * b) / b == a
    assert a / b - a / b == 0


@given(exp_elements(2), st.integers(0, 4))
def test_exp_integer_powers_are_repeated_products(a: ExpElement, k: int) -> None:
    expected = EXP.one()
    for _ in range(k):
        expected = expected * a
    assert a**k == expected


def test_exp_division_by_zero_raises() -> None:
    with pytest.raises(ZeroDivisionError):
        e(1) / EXP(0)
    with pytest.raises(ZeroDivisionError):
        EXP(1) / (e(HALF) - e(HALF))
    with pytest.raises(ZeroDivisionError):
        EXP(0) ** -1


def test_exp_power_rejects_non_integer_exponents() -> None:
    with pytest.raises(NotRepresentableError):
        e(1) ** HALF  # type: ignore[operator]


# =============================================================================
# EXP: equality is equality of real numbers
# =============================================================================
def test_exp_equal_values_built_differently_compare_equal() -> None:
    s = e(HALF)
    assert (s + 1) ** 2 == e(1) + 2 * s + 1
    assert (s + 1) * (s - 1) == e(1) - 1
    assert (e(1) - 1) / (s - 1) == s + 1
    assert e(Fraction(1, 3)) ** 3 == e(1)
    assert e(Fraction(2, 3)) * e(Fraction(1, 3)) == EXP.exp(EXP(1))
    assert e(Fraction(5, 7)) / e(Fraction(5, 7)) == 1
    assert 1 / e(3) == e(-3)
    assert (e(2) + e(1)) / (e(1) + 1) == e(1)  # a quotient that is one term
    assert (2 * e(3) - 4) / (e(3) - 2) == 2  # a quotient that is a rational


@given(rationals())
def test_sigma_q_plus_sigma_minus_q_is_one(q: Fraction) -> None:
    assert sigma(q) + sigma(-q) == 1
    assert EXP.sigmoid(EXP(q)) + EXP.sigmoid(EXP(-q)) == 1
    assert EXP.sigmoid(EXP(q)) == sigma(q)
    assert 1 - sigma(q) == sigma(-q)


@given(rationals(), rationals())
def test_exp_of_sum_is_product_of_exps(a: Fraction, b: Fraction) -> None:
    assert e(a) * e(b) == e(a + b)
    assert e(a) / e(b) == e(a - b)
    assert EXP.exp(EXP(a) + EXP(b)) == EXP.exp(EXP(a)) * EXP.exp(EXP(b))


@given(rationals(), rationals())
def test_distinct_exponents_give_distinct_values(a: Fraction, b: Fraction) -> None:
    assert (e(a) == e(b)) == (a == b)
    assert (e(a) != e(b)) == (a != b)
    assert e(a) != a + 1 or a == 0  # e^a = a + 1 only at a = 0
    assert e(a) != 0


def test_different_values_compare_unequal() -> None:
    s = e(HALF)
    assert (s + 1) ** 2 != e(1) + 2 * s + 2
    assert e(1) != Fraction(27182818284590452, 10**16)
    assert sigma(1) != HALF
    assert e(1) + e(2) != e(3)
    assert e(1) * e(2) != e(2)
    assert (e(2) + e(1)) / (e(1) + 1) != e(2)
    assert EXP(Fraction(1, 3)) != Fraction(333333, 1000000)


def test_exp_equality_with_python_literals() -> None:
    assert EXP(3) == 3 and 3 == EXP(3)
    assert EXP(Fraction(1, 3)) == Fraction(1, 3)
    assert EXP(Fraction(1, 3)) != Fraction(1, 4)
    assert e(0) == 1
    assert (e(1) == 1) is False


@given(exp_elements(), exp_elements())
def test_equal_exp_elements_have_equal_hashes(a: ExpElement, b: ExpElement) -> None:
    c = (a + b) - b
    assert c == a
    assert hash(c) == hash(a)
    if b != 0:
        d = (a * b) / b
        assert d == a
        assert hash(d) == hash(a)


@given(rationals())
def test_hash_agrees_with_python_rationals(q: Fraction) -> None:
    x = EXP(q)
    assert x == q and hash(x) == hash(q)
    y = e(q) * e(-q)
    assert y == 1 and hash(y) == hash(1)
    assert len({EXP(q), q, e(HALF) / e(HALF) * q}) == 1


def test_exp_elements_work_as_dict_keys() -> None:
    s = e(HALF)
    table = {(s + 1) ** 2: "a", sigma(2): "b", EXP(Fraction(1, 3)): "c", e(3): "d"}
    assert table[e(1) + 2 * s + 1] == "a"
    assert table[1 - sigma(-2)] == "b"
    assert table[Fraction(1, 3)] == "c"
    assert table[e(1) * e(2)] == "d"


# =============================================================================
# EXP: sign and ordering against an independent high-precision evaluation
# =============================================================================
@given(exp_samples())
def test_exp_sign_agrees_with_arb_reference(s: ExpSample) -> None:
    expected = s.reference_sign()
    assert EXP.sign(s.element) == expected
    assert s.element.sign() == expected
    assert bool(s.element) == (expected != 0)
    assert EXP.is_zero(s.element) == (expected == 0)


@given(exp_samples(), exp_samples())
def test_exp_ordering_agrees_with_arb_reference(s: ExpSample, t: ExpSample) -> None:
    with ctx.workprec(1000):
        diff = s.reference() - t.reference()
    expected = arb_sign(diff)
    a, b = s.element, t.element
    assert (a < b) == (expected < 0)
    assert (a <= b) == (expected <= 0)
    assert (a > b) == (expected > 0)
    assert (a >= b) == (expected >= 0)
    assert (a == b) == (expected == 0)
    assert abs(a - b) == (a - b if expected >= 0 else b - a)


@given(exp_samples(), st.integers(3, 60))
def test_exp_sign_of_near_cancellation_with_decimal_rounding(s: ExpSample, k: int) -> None:
    # r is the value of s rounded to k decimals: s - r is tiny (down to 1e-60)
    with ctx.workprec(1000):
        man, ex = s.reference().mid().man_exp()
    approx = Fraction(int(man)) * Fraction(2) ** int(ex)
    r = Fraction(round(approx * 10**k), 10**k)
    with ctx.workprec(1000):
        expected = arb_sign(s.reference() - fraction_to_arb(r))
    assert EXP.sign(s.element - r) == expected
    assert (s.element > r) == (expected > 0)
    assert (s.element < r) == (expected < 0)


def e_root_continued_fraction(n: int, length: int) -> list[int]:
    """Partial quotients of e^{1/n} = [1; n-1, 1, 1, 3n-1, 1, 1, 5n-1, ...] (Euler)."""
    cf = [1]
    k = 0
    while len(cf) < length:
        cf += [(2 * k + 1) * n - 1, 1, 1]
        k += 1
    return cf[:length]


def convergents(cf: list[int]) -> list[Fraction]:
    h0, h1, k0, k1 = 0, 1, 1, 0
    out = []
    for a in cf:
        h0, h1 = h1, a * h1 + h0
        k0, k1 = k1, a * k1 + k0
        out.append(Fraction(h1, k1))
    return out


@pytest.mark.parametrize("n", [2, 3, 7])
def test_exp_sign_against_continued_fraction_convergents(n: int) -> None:
    # Even convergents of an irrational lie below it, odd ones above; the last
    # ones agree with e^{1/n} to more than 100 digits.
    root = e(Fraction(1, n))
    conv = convergents(e_root_continued_fraction(n, 90))
    assert conv[-1].denominator > 10**50
    for i, c in enumerate(conv):
        with mpmath.workdps(250):
            # the reference is right: |x - p/q| < 1/q^2, with the alternating sign
            gap = mpmath.exp(mpmath.mpf(1) / n) - mpmath.mpf(c.numerator) / c.denominator
            assert abs(gap) < mpmath.mpf(1) / c.denominator**2
            assert (gap > 0) == (i % 2 == 0)
        expected = 1 if i % 2 == 0 else -1
        assert EXP.sign(root - c) == expected
        assert (root > c) == (expected > 0)
        assert EXP.sign(c - root) == -expected


def test_exp_sign_of_decimal_truncations_of_e_to_the_third() -> None:
    x = e(Fraction(1, 3))
    assert EXP.sign(x - Fraction(13955877, 10**7)) == 1
    for k in range(1, 120, 7):
        with mpmath.workdps(200):
            low = Fraction(int(mpmath.floor(mpmath.exp(mpmath.mpf(1) / 3) * 10**k)), 10**k)
        high = low + Fraction(1, 10**k)
        assert EXP.sign(x - low) == 1, k
        assert EXP.sign(x - high) == -1, k
        assert low < x < high


@given(exponents(), st.integers(1, 60))
def test_exp_is_strictly_increasing_at_tiny_gaps(q: Fraction, k: int) -> None:
    # e^a vs e^b for b = a + 10^-k, also at huge exponents (a + 10^6/7)
    for a in (q, q + BIG):
        b = a + Fraction(1, 10**k)
        assert EXP.sign(e(b) - e(a)) == 1
        assert e(a) < e(b)
        assert EXP.sign(3 * e(a) - 2 * e(b) - e(a)) == -1


@given(nonzero_rationals(8, 5), st.integers(0, 25))
def test_exp_exceeds_its_taylor_polynomials(q: Fraction, n: int) -> None:
    # For q > 0: e^q > sum_{j<=n} q^j/j!, the gap being about q^{n+1}/(n+1)!
    # (below 1e-30 for small q and large n). For q < 0 and odd n, e^q > T_n(q) too.
    taylor = sum(Fraction(q**j, math.factorial(j)) for j in range(n + 1))
    if q > 0 or n % 2 == 1:
        assert EXP.sign(e(q) - taylor) == 1
        assert e(q) > taylor
    else:
        assert EXP.sign(e(q) - taylor) == -1


def test_exp_sign_with_exponent_ten_to_the_six_over_seven() -> None:
    x = e(BIG)
    y = (x + 1) / (x + 2)
    # 1 - y = 1 / (x + 2), about 10^-62042: needs ~206,000 bits to see with a
    # plain evaluation. Reference: arb at 220,000 bits.
    with ctx.workprec(220_000):
        xb = fraction_to_arb(BIG).exp()
        yb = (xb + 1) / (xb + 2)
        assert (yb - 1) < 0
        assert (yb - (1 - arb(10) ** -1000)) > 0
        assert (yb - (1 - arb(10) ** -70000)) < 0
    assert y < 1
    assert EXP.sign(y - 1) == -1
    assert EXP.sign(1 - y) == 1
    assert y > 1 - Fraction(1, 10**1000)
    assert y < 1 - Fraction(1, 10**70000)
    assert y > (x + 2) / (x + 3) - 1  # trivially
    assert y < (x + 2) / (x + 3)  # (x+1)(x+3) - (x+2)^2 = -1
    assert y > x / (x + 1)
    assert 1 - y == 1 / (x + 2)
    assert EXP.sign(y) == 1
    assert EXP.sign(x - e(BIG - Fraction(1, 10**40))) == 1


# -- tiny exponent gaps (issue 10, defect 2.8): decided by exact Taylor moments ------
TINY = fmpq(1, 2**4_200_000)  # e^TINY - 1 needed 4.2 million bits term by term


def test_exp_sign_past_four_million_bits_is_decided() -> None:
    # was RuntimeError("sign not decided below SIGN_MAX_PREC bits")
    x = EXP.exp(EXP(TINY))
    assert x > 1 and EXP.sign(1 - x) == -1
    assert EXP.exp(EXP(-TINY)) < 1 < x
    # near misses of every order: e^q - T_n(q) ~ q^{n+1}/(n+1)!, sign by parity
    for q in (TINY, -TINY):
        for n in range(3):
            taylor = sum((q**j / math.factorial(j) for j in range(n + 1)), fmpq(0))
            expected = 1 if q > 0 or n % 2 == 1 else -1
            assert EXP.sign(EXP.exp(EXP(q)) - EXP(taylor)) == expected, (q > 0, n)
    # a cancellation of order 3 among four close exponents: (e^q - 1)^3 > 0
    cube = EXP.exp(EXP(3 * TINY)) - 3 * EXP.exp(EXP(2 * TINY)) + 3 * x - 1
    assert EXP.sign(cube) == 1 and EXP.sign(-cube) == -1


def test_exp_arb_ball_of_a_tiny_gap_is_narrow_and_encloses() -> None:
    # arb() (what enclosing_oracle answers with) sums tiny gaps by exact moments, as
    # the sign does: at 300 bits e^(2^-1000) - 1 was [+/- 3.7e-301], a ball holding 0
    x = EXP.exp(EXP(fmpq(1, 2**1000))) - 1
    ball = x.arb(300)
    with ctx.workprec(4000):
        truth = fraction_to_arb(Fraction(1, 2**1000)).exp() - 1
        assert ball.contains(truth)
    assert ball > 0 and ball.rel_accuracy_bits() >= 280


def test_exp_sign_with_two_tiny_clusters_far_apart() -> None:
    # (1 - e^x) + (e - e^{1-x}) = x (e - 1) + O(x^2) > 0, and twice the second
    # cluster minus three times the first: x (2e + 3) > 0; swapped: < 0
    x = Fraction(1, 2**100_000)
    a, b = 1 - e(x), e(1) - e(1 - x)
    assert EXP.sign(a + b) == 1
    assert EXP.sign(2 * b - 3 * a) == 1 and EXP.sign(3 * a - 2 * b) == -1
    assert EXP.sign(a + b / 3) == -1  # -x + e x / 3 < 0 since e < 3


@pytest.mark.parametrize("k", [70, 300, 2000])
def test_exp_sign_at_small_gaps_agrees_with_a_high_precision_reference(k: int) -> None:
    # the clustered evaluation against plain arb at 8 k bits (enough for gaps 2^-k)
    x = Fraction(1, 2**k)
    elements = [e(x) - 1 - x, e(2 * x) - 2 * e(x) + 1 - x * x,
                3 * e(Fraction(1, 3)) - 3 * e(Fraction(1, 3) + x) + x * e(Fraction(1, 3))
                + Fraction(1, 3) * x * x]
    with ctx.workprec(8 * k):
        third, xb = fraction_to_arb(Fraction(1, 3)), fraction_to_arb(x)
        refs = [xb.exp() - 1 - xb, (2 * xb).exp() - 2 * xb.exp() + 1 - xb * xb,
                3 * third.exp() - 3 * (third + xb).exp() + xb * third.exp()
                + third * xb * xb]
        expected = [arb_sign(r) for r in refs]
    assert 0 not in expected
    assert [EXP.sign(el) for el in elements] == expected
    if k < 1000:  # below float64's range past that
        assert float(e(x) - 1) * 2.0**k == pytest.approx(1.0, rel=1e-15)


@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=2, max_size=4),
       st.integers(40, 400), st.sampled_from([Fraction(0), Fraction(-2, 3), Fraction(1000, 7)]))
def test_exp_sign_of_clustered_sums_agrees_with_arb(
        terms: list[tuple[int, int]], K: int, base: Fraction) -> None:
    # sum_i c_i e^{base + k_i 2^-K}: gaps below 2^-32 (one cluster) and cancellations of
    # order up to 3, against plain arb at 6K bits
    el = EXP(0)
    for c, k in terms:
        el = el + c * e(base + Fraction(k, 2**K))
    with ctx.workprec(6 * K + 400):
        ref = arb(0)
        for c, k in terms:
            ref += c * fraction_to_arb(base + Fraction(k, 2**K)).exp()
        expected = arb_sign(ref)
    if el == 0:
        assert expected == 0 or not ref.is_exact()
        assert EXP.sign(el) == 0
        return
    assert expected != 0
    assert EXP.sign(el) == expected


def test_exp_sign_gives_up_with_the_bits_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # the give-up path, forced by a cap far below what this sum needs (~340 bits):
    # the library's own error, with the precision tried
    import exactattn.fields.exponential as expmod
    from exactattn.fields import InsufficientPrecisionError

    monkeypatch.setattr(expmod, "SIGN_MAX_PREC", 128)
    monkeypatch.setattr(expmod, "_sum_bits", lambda a: 1)
    conv = convergents(e_root_continued_fraction(3, 90))[-1]
    with pytest.raises(InsufficientPrecisionError) as err:
        EXP.sign(e(Fraction(1, 3)) - conv)
    assert err.value.prec == 128 and "128 bits" in str(err.value)
    # needed_prec is what the message knows: more than 128 bits (not the 256 never tried)
    assert err.value.needed_prec == 129 and "more than 128 bits" in str(err.value)
    assert isinstance(err.value, ExactattnError)


def test_abs_min_max_and_sorting_use_the_exact_order() -> None:
    x = e(Fraction(1, 3))
    r = Fraction(13956124, 10**7)  # just below e^{1/3}
    vals = [x, EXP(r), sigma(0), e(-1), EXP(-2)]
    assert sorted(vals) == [EXP(-2), e(-1), sigma(0), EXP(r), x]
    assert max(vals) == x
    assert abs(EXP(r) - x) == x - r
    assert abs(EXP(-2)) == 2


# =============================================================================
# EXP: float conversion (display only, but it must not lie about the sign)
# =============================================================================
@given(exp_samples())
def test_exp_to_float_is_close_to_the_reference(s: ExpSample) -> None:
    ref = s.reference(400)
    got = EXP.to_float(s.element)
    assert got == float(s.element)
    expected = float(ref.mid())
    assert math.isclose(got, expected, rel_tol=1e-14, abs_tol=0.0) or got == expected


@pytest.mark.parametrize("k", [10, 30, 60])
def test_exp_to_float_after_near_cancellation(k: int) -> None:
    # e^{1/3} minus its truncation to k decimals: a positive number below 10^-k
    x = e(Fraction(1, 3))
    with mpmath.workdps(200):
        value = mpmath.exp(mpmath.mpf(1) / 3)
        r = Fraction(int(mpmath.floor(value * 10**k)), 10**k)
        reference = float(value - mpmath.mpf(r.numerator) / r.denominator)
    d = x - r
    assert EXP.sign(d) == 1
    assert EXP.to_float(d) > 0, "float() of a positive element is not positive"
    assert math.isclose(EXP.to_float(d), reference, rel_tol=1e-12)


def test_exp_to_float_of_rationals_is_correctly_rounded() -> None:
    for q in (Fraction(1, 3), Fraction(-22, 7), Fraction(10**30 + 1, 10**30), Fraction(1, 10**300)):
        assert EXP.to_float(EXP(q)) == float(q)
        assert QQ.to_float(QQ(q)) == float(q)


# =============================================================================
# EXP: exact exp and log
# =============================================================================
@given(rationals(10**6, 10**4))
def test_log_of_exp_is_exact(q: Fraction) -> None:
    assert EXP.log(EXP.exp(EXP(q))) == q
    assert EXP.is_rational(EXP.log(e(q)))
    assert EXP.exp(EXP.log(e(q))) == e(q)


@given(rationals())
def test_logit_of_sigmoid_is_exact(q: Fraction) -> None:
    p = sigma(q)
    assert EXP.log(p / (1 - p)) == q
    assert EXP.logit(p) == q
    assert EXP.logit(EXP.sigmoid(EXP(q))) == q


@given(rationals(), nonzero_exp_elements(2))
def test_log_of_e_to_the_q_built_as_a_quotient(q: Fraction, a: ExpElement) -> None:
    # a * e^q / a is the element e^q, however a is written
    assert EXP.log(a * e(q) / a) == q


def test_log_of_one_is_zero() -> None:
    assert EXP.log(EXP(1)) == 0
    assert EXP.log(e(HALF) / e(HALF)) == 0


@pytest.mark.parametrize(
    "x",
    [EXP(2), e(1) + 1, 2 * e(1), sigma(1), EXP(-3), -e(1), EXP(0), e(1) - e(1)],
    ids=["2", "e+1", "2e", "sigma(1)", "-3", "-e", "0", "e-e"],
)
def test_log_outside_the_field_raises_not_representable(x: ExpElement) -> None:
    with pytest.raises(NotRepresentableError) as info:
        EXP.log(x)
    message = str(info.value)
    assert "log" in message and "EXP" in message, message
    assert len(message) > 20


def test_log_of_non_positive_says_so() -> None:
    for x in (EXP(0), EXP(-1), -e(2)):
        with pytest.raises(NotRepresentableError, match="not positive"):
            EXP.log(x)


@pytest.mark.parametrize("x", [e(1), sigma(2), e(HALF) + 1], ids=["e", "sigma(2)", "e^(1/2)+1"])
def test_exp_of_a_non_rational_element_raises(x: ExpElement) -> None:
    with pytest.raises(NotRepresentableError) as info:
        EXP.exp(x)
    assert "exp" in str(info.value)


def test_exp_and_log_map_over_arrays() -> None:
    qs = EXP.array([[0, 1], [Fraction(-1, 3), Fraction(10**6, 7)]])
    ex = EXP.exp(qs)
    assert ex.shape == (2, 2) and ex.dtype == object
    assert ex[0, 0] == 1 and ex[0, 1] == e(1) and ex[1, 1] == e(BIG)
    back = EXP.log(ex)
    assert all(back[idx] == qs[idx] for idx in np.ndindex(2, 2))
    with pytest.raises(NotRepresentableError):
        EXP.log(EXP.array([1, 2]))


def test_exp_to_rational() -> None:
    assert EXP.to_rational(EXP(Fraction(3, 4))) == fmpq(3, 4)
    assert EXP.to_rational(e(1) / e(1) * Fraction(3, 4)) == fmpq(3, 4)
    with pytest.raises(NotRepresentableError):
        EXP.to_rational(e(1))
    assert EXP.from_rational(fmpq(-5, 3)) == Fraction(-5, 3)


# =============================================================================
# EXP: sparsity (exponent 10^6/7 costs what 7/3 costs)
# =============================================================================
def _sparse_workload(q: Fraction) -> tuple[list[int], list[ExpElement]]:
    t = e(q)
    s = EXP.sigmoid(EXP(q))
    built = [
        t,
        1 / t,
        s,
        1 - s,
        s / (1 - s),
        (t**3 - 2 * t + 1) / (t**2 + t + 5),
        (t + 1) / (t + 2) - 1,
        sum((k * e(k * q) for k in range(1, 6)), EXP(0)),
        e(q / 3) ** 3,
        (s + EXP.sigmoid(EXP(2 * q))) * (1 - s),
        ((t + 1) ** 4) / ((t + 1) ** 2),
    ]
    return [x.terms() for x in built], built


def test_sparsity_exponent_size_does_not_change_term_counts() -> None:
    small, small_el = _sparse_workload(Fraction(7, 3))
    big, big_el = _sparse_workload(BIG)
    huge, _ = _sparse_workload(Fraction(10**30 + 1, 7))
    assert small == big == huge
    # exact sizes: e^q is one term over 1; sigma is one term over two
    assert small[0] == 2 and small[2] == 3 and small[7] == 6
    # (t+1)^4 / (t+1)^2 == (t+1)^2 which has 3 terms (over 1) when written out
    assert big_el[10] == (e(BIG) + 1) ** 2
    assert EXP.logit(big_el[2]) == BIG
    assert EXP.log(big_el[4]) == BIG
    assert EXP.log(big_el[8]) == BIG


# =============================================================================
# JSON round trips
# =============================================================================
def _through_json(obj: object) -> object:
    return json.loads(json.dumps(obj))


@given(exp_elements())
def test_exp_json_round_trip(x: ExpElement) -> None:
    data = _through_json(EXP.to_json(x))
    y = EXP.from_json(data)
    assert isinstance(y, ExpElement)
    assert y == x
    assert hash(y) == hash(x)
    assert EXP.to_json(y) == data


def test_exp_json_of_huge_exponents_round_trips() -> None:
    x = (e(BIG) + 1) / (e(BIG) + 2)
    assert EXP.from_json(_through_json(EXP.to_json(x))) == x
    assert EXP.from_json(_through_json(EXP.to_json(e(BIG)))) == e(BIG)


@given(rationals(10**12, 10**12))
def test_qq_json_round_trip(q: Fraction) -> None:
    data = _through_json(QQ.to_json(QQ(q)))
    assert QQ.from_json(data) == QQ(q)
    assert QQ.is_element(QQ.from_json(data))
    assert EXP.from_json(data) == q


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_f64_json_round_trip_is_bit_exact(x: float) -> None:
    y = F64.from_json(_through_json(F64.to_json(F64(x))))
    assert isinstance(y, np.float64)
    assert y == x and math.copysign(1.0, y) == math.copysign(1.0, x)


@given(rational_matrices())
def test_array_json_round_trip_exact_fields(M: list[list[Fraction]]) -> None:
    for field in (QQ, EXP):
        A = field.array(M)
        data = _through_json(field.array_to_json(A))
        assert data["shape"] == list(A.shape)
        B = field.array_from_json(data)
        assert B.shape == A.shape and B.dtype == object
        assert all(field.is_element(x) for x in B.flat)
        assert all(x == y for x, y in zip(A.flat, B.flat, strict=True))


@given(st.lists(exp_elements(2), min_size=6, max_size=6))
def test_array_json_round_trip_exp_elements(xs: list[ExpElement]) -> None:
    A = EXP.array(np.array(xs, dtype=object).reshape(2, 3))
    B = EXP.array_from_json(_through_json(EXP.array_to_json(A)))
    assert B.shape == (2, 3)
    assert all(x == y for x, y in zip(A.flat, B.flat, strict=True))


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=6, max_size=6))
def test_array_json_round_trip_f64(xs: list[float]) -> None:
    A = F64.array(np.array(xs).reshape(3, 2))
    B = F64.array_from_json(_through_json(F64.array_to_json(A)))
    assert B.dtype == np.float64 and B.shape == (3, 2)
    assert np.array_equal(A, B)


@pytest.mark.parametrize("field", [QQ, EXP, F64], ids=str)
@pytest.mark.parametrize("shape", [(0,), (2, 0), (), (1, 1, 2)])
def test_array_json_round_trip_edge_shapes(field: Field, shape: tuple[int, ...]) -> None:
    A = field.zeros(shape)
    B = field.array_from_json(_through_json(field.array_to_json(A)))
    assert B.shape == A.shape
    assert all(x == 0 for x in B.flat)


@pytest.mark.parametrize(
    "field, bad",
    [
        (QQ, "1/0"),
        (QQ, "one half"),
        (QQ, 0.5),
        (QQ, None),
        (EXP, {"num": [["0", "1"]]}),
        (EXP, [1, 2]),
        (EXP, "1/2/3"),
        (EXP, {"num": [["x", "1"]], "den": [["0", "1"]]}),
    ],
)
def test_from_json_rejects_garbage(field: Field, bad: object) -> None:
    with pytest.raises(InvalidEntryError):
        field.from_json(bad)


# =============================================================================
# QQ
# =============================================================================
def test_qq_exp_and_log_at_their_only_points() -> None:
    assert QQ.exp(QQ(0)) == 1 and QQ.is_element(QQ.exp(0))
    assert QQ.log(QQ(1)) == 0
    assert QQ.sigmoid(QQ(0)) == fmpq(1, 2)
    assert QQ.logit(QQ(Fraction(1, 2))) == 0


@pytest.mark.parametrize("x", [1, -1, Fraction(1, 2), Fraction(-7, 3)])
def test_qq_exp_elsewhere_raises(x: object) -> None:
    with pytest.raises(NotRepresentableError) as info:
        QQ.exp(x)
    assert "exp" in str(info.value) and "QQ" in str(info.value)


@pytest.mark.parametrize("x", [2, Fraction(1, 2), 0, -1])
def test_qq_log_elsewhere_raises(x: object) -> None:
    with pytest.raises(NotRepresentableError) as info:
        QQ.log(x)
    assert "log" in str(info.value) and "QQ" in str(info.value)


@pytest.mark.parametrize("field", [QQ, EXP], ids=str)
@pytest.mark.parametrize(
    "bad, word",
    [
        (0.5, "float"),
        (1.0, "float"),
        (np.float64(0.25), "float"),
        (float("nan"), "float"),
        ("1/2", "string"),
        ("3", "string"),
        (None, "None"),
        (True, "bool"),
        (np.bool_(False), "bool"),
        (1 + 2j, "complex"),
        ([1, 2], "list"),
    ],
)
def test_exact_fields_reject_non_exact_literals(field: Field, bad: object, word: str) -> None:
    with pytest.raises(InvalidEntryError) as info:
        field(bad)
    assert word in str(info.value)


@given(rationals(10**9, 10**9))
def test_qq_accepts_fractions_and_ints_exactly(q: Fraction) -> None:
    x = QQ(q)
    assert isinstance(x, fmpq)
    assert (int(x.p), int(x.q)) == (q.numerator, q.denominator)
    assert QQ(q.numerator) == q.numerator
    assert QQ(np.int64(7)) == 7
    assert QQ(fmpz(5)) == 5 and QQ(fmpq(1, 3)) == fmpq(1, 3)
    assert QQ(Fraction(2, 6)) == fmpq(1, 3)


@given(rationals(), rationals())
def test_qq_arithmetic_matches_fractions(a: Fraction, b: Fraction) -> None:
    x, y = QQ(a), QQ(b)
    assert x + y == QQ(a + b) and x * y == QQ(a * b) and x - y == QQ(a - b)
    if b != 0:
        assert x / y == QQ(a / b)
    assert QQ.sign(x) == (a > 0) - (a < 0)
    assert QQ.to_rational(x) == x and QQ.from_rational(x) == x


def test_qq_array_reports_name_and_position() -> None:
    with pytest.raises(InvalidEntryError) as info:
        QQ.array([[1, 2], [3, "4"]], name="W")
    assert str(info.value).startswith("W[1, 1]")
    with pytest.raises(InvalidEntryError, match=r"v\[2\]"):
        QQ.array([1, 2, 0.5], name="v")


@pytest.mark.parametrize("field", [QQ, EXP, F64], ids=str)
def test_ragged_input_is_an_invalid_entry(field: Field) -> None:
    with pytest.raises(InvalidEntryError):
        field.array([[1, 2], [3]], name="X")


@pytest.mark.parametrize("field", [QQ, EXP, F64], ids=str)
def test_ragged_input_is_reported_as_ragged(field: Field) -> None:
    # base.Field.array has a dedicated "X is ragged" message for this case
    with pytest.raises(ExactattnError, match="ragged"):
        field.array([[1, 2], [3]], name="X")


# =============================================================================
# F64
# =============================================================================
@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan"), np.float32("inf")]
)
def test_f64_rejects_non_finite(bad: float) -> None:
    with pytest.raises(InvalidEntryError, match="finite"):
        F64(bad)
    with pytest.raises(InvalidEntryError, match=r"X\[0, 1\]"):
        F64.array([[1.0, bad]], name="X")
    with pytest.raises(InvalidEntryError, match=r"X\[1\]"):
        F64.array(np.array([1.0, bad]), name="X")
    with pytest.raises(InvalidEntryError):
        F64.check_array(np.array([[0.0, 1.0], [bad, 2.0]]))


@pytest.mark.parametrize(
    "big", [10**400, -(10**309), Fraction(10**400, 3)], ids=["1e400", "-1e309", "1e400/3"]
)
def test_f64_rejects_numbers_beyond_float_range(big: object) -> None:
    with pytest.raises(InvalidEntryError):
        F64(big)


@pytest.mark.parametrize("bad", ["1.5", None, True, np.bool_(True)])
def test_f64_rejects_non_numbers(bad: object) -> None:
    with pytest.raises(InvalidEntryError, match="not a number"):
        F64(bad)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_f64_arrays_of_float64_pass(xs: list[float]) -> None:
    A = np.array(xs, dtype=np.float64)
    F64.check_array(A)
    B = F64.array(A)
    assert B.dtype == np.float64 and np.array_equal(A, B)
    C = F64.array(xs)
    assert C.dtype == np.float64 and np.array_equal(A, C)
    assert all(F64.is_element(x) for x in C.flat)


def test_f64_converts_exact_literals_and_integer_arrays() -> None:
    assert F64(Fraction(1, 3)) == 1 / 3
    assert F64(7) == 7.0 and isinstance(F64(7), np.float64)
    A = F64.array(np.arange(6).reshape(2, 3))
    assert A.dtype == np.float64 and A[1, 2] == 5.0
    assert F64.exact is False and QQ.exact is True and EXP.exact is True


def _logit_reference(p: float) -> float:
    with mpmath.workdps(60):
        x = mpmath.mpf(p)  # the exact binary value of p
        return float(mpmath.log(x / (1 - x)))


@given(st.floats(min_value=1e-300, max_value=0.25))
def test_f64_logit_is_accurate_near_zero(p: float) -> None:
    ref = _logit_reference(p)
    got = float(F64.logit(F64(p)))
    assert abs(got - ref) <= 4 * 2.0**-52 * abs(ref)


@given(
    st.one_of(
        st.floats(min_value=0.75, max_value=1.0, exclude_max=True),
        st.integers(2, 53).map(lambda k: 1.0 - 2.0**-k),
        st.integers(1, 2**20).map(lambda m: 1.0 - m * 2.0**-53),
    )
)
def test_f64_logit_is_accurate_near_one(p: float) -> None:
    assert 0.75 <= p < 1.0
    ref = _logit_reference(p)
    got = float(F64.logit(F64(p)))
    assert abs(got - ref) <= 4 * 2.0**-52 * abs(ref)


def test_f64_logit_extremes_and_arrays() -> None:
    p = np.array([2.0**-1000, 0.5, 1.0 - 2.0**-53])
    out = F64.logit(p)
    assert out.dtype == np.float64 and out.shape == (3,)
    assert out[1] == 0.0
    assert math.isclose(out[0], _logit_reference(2.0**-1000), rel_tol=1e-15)
    assert math.isclose(out[2], _logit_reference(1.0 - 2.0**-53), rel_tol=1e-15)
    back = F64.sigmoid(F64.logit(np.array([0.1, 0.9])))
    assert np.allclose(back, [0.1, 0.9], rtol=1e-14, atol=0)


# =============================================================================
# mixing fields
# =============================================================================
_OPS = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "<": lambda a, b: a < b,
}


@pytest.mark.parametrize("op", list(_OPS))
@pytest.mark.parametrize(
    "other, other_names",
    [
        (fmpq(1, 3), ("QQ", "fmpq")),
        (fmpz(2), ("QQ", "fmpz")),
        (1.5, ("F64", "float")),
        (np.float64(2.0), ("F64", "float")),
    ],
    ids=["fmpq", "fmpz", "float", "np.float64"],
)
@pytest.mark.parametrize("element", [e(HALF), EXP(1)], ids=["e^(1/2)", "rational"])
def test_exp_elements_refuse_other_fields_in_arithmetic(
    element: ExpElement, other: object, other_names: tuple[str, ...], op: str
) -> None:
    fn = _OPS[op]
    for left, right in ((element, other), (other, element)):
        with pytest.raises(IncompatibleFieldError) as info:
            fn(left, right)
        assert names(str(info.value), ("EXP",), other_names), str(info.value)


def test_incompatible_field_error_is_a_type_error() -> None:
    assert issubclass(IncompatibleFieldError, TypeError)
    assert issubclass(IncompatibleFieldError, ExactattnError)
    with pytest.raises(TypeError):
        e(1) + 0.5


@pytest.mark.parametrize(
    "bad, source",
    [
        (fmpq(1, 3), ("QQ", "fmpq")),
        (fmpz(3), ("QQ", "fmpz")),
        (e(HALF), ("EXP",)),
        (EXP(2), ("EXP",)),
    ],
    ids=["fmpq", "fmpz", "EXP element", "rational EXP element"],
)
def test_f64_refuses_elements_of_exact_fields(bad: object, source: tuple[str, ...]) -> None:
    with pytest.raises(IncompatibleFieldError) as info:
        F64(bad)
    assert names(str(info.value), ("F64", "float64"), source), str(info.value)
    with pytest.raises(IncompatibleFieldError) as info:
        F64.array([[0.5, bad]], name="X")
    message = str(info.value)
    assert message.startswith("X[0, 1]")
    assert names(message, ("F64", "float64"), source), message


@pytest.mark.parametrize("bad", [e(HALF), EXP(Fraction(1, 3)), sigma(1)], ids=str)
def test_qq_refuses_exp_elements(bad: ExpElement) -> None:
    with pytest.raises(IncompatibleFieldError) as info:
        QQ(bad)
    assert names(str(info.value), ("EXP",), ("QQ",))
    with pytest.raises(IncompatibleFieldError) as info:
        QQ.array([[1, 2], [bad, 3]], name="W")
    message = str(info.value)
    assert message.startswith("W[1, 0]") and names(message, ("EXP",), ("QQ",)), message


def test_exp_accepts_qq_elements_as_the_embedding() -> None:
    # QQ -> EXP is the explicit embedding (exponential.py): EXP(fmpq) is allowed
    assert EXP(fmpq(1, 3)) == Fraction(1, 3)
    assert EXP(fmpz(4)) == 4
    assert EXP.array([fmpq(1, 2)])[0] == HALF


def test_exp_array_refuses_floats() -> None:
    # A float given to an exact field's constructor is refused as an inexact
    # entry (the same rule as QQ, rational.rational), naming the position.
    for bad in (0.5, np.float64(0.5)):
        with pytest.raises(InvalidEntryError) as info:
            EXP.array([[1, bad]], name="A")
        assert str(info.value).startswith("A[0, 1]") and "float" in str(info.value)


@pytest.mark.parametrize(
    "field, A, expect",
    [
        (EXP, np.array([0.5, 1.0]), ("EXP",)),
        (QQ, np.array([0.5, 1.0]), ("QQ",)),
        (F64, np.array([fmpq(1, 2)], dtype=object), ("F64",)),
        (QQ, np.array([e(1)], dtype=object), ("QQ", "EXP")),
        (EXP, np.array([fmpq(1, 2)], dtype=object), ("EXP",)),
    ],
    ids=["float64->EXP", "float64->QQ", "QQ->F64", "EXP->QQ", "QQ->EXP"],
)
def test_check_array_refuses_arrays_of_another_field(
    field: Field, A: np.ndarray, expect: tuple[str, ...]
) -> None:
    with pytest.raises(IncompatibleFieldError) as info:
        field.check_array(A, name="A")
    for token in expect:
        assert token in str(info.value)


def test_check_array_accepts_own_arrays() -> None:
    QQ.check_array(QQ.array([[1, 2]]))
    EXP.check_array(EXP.array([[e(1), 2]]))
    F64.check_array(F64.array([[1, 2]]))


def test_exp_comparison_with_an_array_is_elementwise() -> None:
    arr = EXP.array([e(1), EXP(0)])
    assert list(arr > EXP(1)) == [True, False]
    assert list(EXP(1) < arr) == [True, False]


# =============================================================================
# field_by_name, identity, zeros/eye, gaussian draws
# =============================================================================
def test_field_by_name() -> None:
    assert field_by_name("QQ") is QQ
    assert field_by_name("EXP") is EXP
    assert field_by_name("F64") is F64
    assert field_by_name("exp") is EXP and field_by_name("f64") is F64
    with pytest.raises(ValueError) as info:
        field_by_name("RR")
    message = str(info.value)
    assert "RR" in message and all(n in message for n in ("QQ", "EXP", "F64"))


def test_field_equality_and_hash() -> None:
    assert RationalField() == QQ and hash(RationalField()) == hash(QQ)
    assert ExponentialField() == EXP and Float64Field() == F64
    assert QQ != EXP and EXP != F64 and QQ != F64
    assert QQ != "QQ"
    assert len({QQ, EXP, F64, RationalField(), ExponentialField()}) == 3
    assert repr(EXP) == "EXP" and QQ.name == "QQ" and F64.name == "F64"
    QQ.require_same(RationalField(), "W")
    with pytest.raises(IncompatibleFieldError, match="W is over F64, expected QQ"):
        QQ.require_same(F64, "W")


@pytest.mark.parametrize("field", [QQ, EXP, F64], ids=str)
def test_zeros_and_eye(field: Field) -> None:
    Z = field.zeros((2, 3))
    assert Z.shape == (2, 3) and Z.dtype == field.dtype
    assert all(field.is_element(x) and x == 0 for x in Z.flat)
    assert field.zeros(4).shape == (4,)
    eye = field.eye(3)
    assert eye.shape == (3, 3)
    for i, j in np.ndindex(3, 3):
        assert field.is_element(eye[i, j])
        assert eye[i, j] == (1 if i == j else 0)
    assert field.zero() == 0 and field.one() == 1
    field.check_array(Z)
    field.check_array(eye)


@pytest.mark.parametrize("field", [QQ, EXP, F64], ids=str)
def test_gaussian_draws_are_seeded(field: Field) -> None:
    a = field.gaussian(np.random.default_rng(1234), (3, 4))
    b = field.gaussian(np.random.default_rng(1234), (3, 4))
    c = field.gaussian(np.random.default_rng(1235), (3, 4))
    assert a.shape == (3, 4) and a.dtype == field.dtype
    assert all(x == y for x, y in zip(a.flat, b.flat, strict=True))
    assert any(x != y for x, y in zip(a.flat, c.flat, strict=True))
    field.check_array(a)
    # roughly standard normal: the exact draws are roundings of the float draws
    floats = np.random.default_rng(1234).standard_normal((3, 4))
    assert np.allclose([field.to_float(x) for x in a.flat], floats.flat, atol=2**-10)


@pytest.mark.parametrize("field", [QQ, EXP], ids=str)
def test_gaussian_draws_are_rational_in_exact_fields(field: Field) -> None:
    draws = field.gaussian(np.random.default_rng(7), 50)
    for x in draws:
        q = field.to_rational(x)
        assert isinstance(q, fmpq)
        assert 1024 % int(q.q) == 0
    assert len({field.to_json(x) for x in draws}) > 10


# =============================================================================
# linalg
# =============================================================================
def _leibniz_det(M: list[list[Fraction]]) -> Fraction:
    n = len(M)
    total = Fraction(0)
    for perm in permutations(range(n)):
        inversions = sum(perm[i] > perm[j] for i in range(n) for j in range(i + 1, n))
        term = Fraction(-1 if inversions % 2 else 1)
        for i, j in enumerate(perm):
            term *= M[i][j]
        total += term
    return total


def _matmul(A: list[list[Fraction]], X: list[list[Fraction]]) -> list[list[Fraction]]:
    return [
        [sum((A[i][k] * X[k][j] for k in range(len(X))), Fraction(0)) for j in range(len(X[0]))]
        for i in range(len(A))
    ]


@given(square_rational_matrices(), st.data())
def test_exact_solve_det_rank(A: list[list[Fraction]], data: st.DataObject) -> None:
    n = len(A)
    X = data.draw(rational_matrices(rows=n, cols=data.draw(st.integers(1, 2))))
    B = _matmul(A, X)
    d = _leibniz_det(A)
    for field in (QQ, EXP):
        Af, Bf = field.array(A), field.array(B)
        assert linalg.det(field, Af) == field(d)
        assert field.is_element(linalg.det(field, Af))
        r = linalg.rank(field, Af)
        assert (r == n) == (d != 0) and 0 <= r <= n
        if d != 0:
            sol = linalg.solve(field, Af, Bf)
            assert sol.shape == Bf.shape
            assert all(field.is_element(x) for x in sol.flat)
            assert all(sol[i, j] == field(X[i][j]) for i, j in np.ndindex(*sol.shape))
            vec = linalg.solve(field, Af, field.array([row[0] for row in B]))
            assert vec.shape == (n,)
            assert all(vec[i] == field(X[i][0]) for i in range(n))
        else:
            with pytest.raises(SingularMatrixError):
                linalg.solve(field, Af, Bf)


@given(rational_matrices())
def test_exact_rank_of_products_and_transposes(M: list[list[Fraction]]) -> None:
    r = linalg.rank(QQ, QQ.array(M))
    T = [list(col) for col in zip(*M, strict=True)]
    assert linalg.rank(QQ, QQ.array(T)) == r
    assert linalg.rank(EXP, EXP.array(M)) == r
    assert r <= min(len(M), len(M[0]))
    # stacking a copy of a row does not change the rank
    assert linalg.rank(QQ, QQ.array([*M, M[0]])) == r


def test_solve_examples_and_singular_systems() -> None:
    A = [[2, 1], [1, 3]]
    b = [3, 5]
    for field in (QQ, EXP):
        x = linalg.solve(field, field.array(A), field.array(b))
        assert list(x) == [field(Fraction(4, 5)), field(Fraction(7, 5))]
    xf = linalg.solve(F64, F64.array(A), F64.array(b))
    assert xf.dtype == np.float64 and np.allclose(xf, [0.8, 1.4], rtol=1e-15)
    singular = [[1, 2], [2, 4]]
    for field in (QQ, EXP, F64):
        with pytest.raises(SingularMatrixError):
            linalg.solve(field, field.array(singular), field.array([1, 1]))
        assert linalg.rank(field, field.array(singular)) == 1
        assert linalg.det(field, field.array(singular)) == 0


@given(square_rational_matrices(elements=rationals(9, 1)))
def test_f64_linalg_matches_exact(A: list[list[Fraction]]) -> None:
    d = _leibniz_det(A)
    Af = F64.array(A)
    assert isinstance(linalg.det(F64, Af), np.float64)
    assert math.isclose(float(linalg.det(F64, Af)), float(d), rel_tol=1e-9, abs_tol=1e-9)
    assert linalg.rank(F64, Af) == linalg.rank(QQ, QQ.array(A))
    if d != 0:
        b = list(range(1, len(A) + 1))
        x = linalg.solve(F64, Af, F64.array(b))
        exact = linalg.solve(QQ, QQ.array(A), QQ.array(b))
        assert x.dtype == np.float64
        cond = np.linalg.cond(Af)
        assert np.allclose(x, [float(q.p) / float(q.q) for q in exact], rtol=0, atol=1e-12 * cond)


def test_exp_linalg_refuses_non_rational_entries() -> None:
    A = EXP.array([[e(1), 1], [0, 1]])
    b = EXP.array([1, 1])
    with pytest.raises(NotRepresentableError):
        linalg.solve(EXP, A, b)
    with pytest.raises(NotRepresentableError):
        linalg.solve(EXP, EXP.eye(2), EXP.array([sigma(1), 0]))
    with pytest.raises(NotRepresentableError):
        linalg.rank(EXP, A)
    with pytest.raises(NotRepresentableError):
        linalg.det(EXP, A)


def test_linalg_shape_errors() -> None:
    with pytest.raises(ShapeError):
        linalg.solve(QQ, QQ.array([[1, 2, 3], [4, 5, 6]]), QQ.array([1, 2]))
    with pytest.raises(ShapeError):
        linalg.solve(QQ, QQ.eye(2), QQ.array([1, 2, 3]))
    with pytest.raises(ShapeError):
        linalg.det(EXP, EXP.zeros((2, 3)))


def test_exact_linalg_refuses_arrays_of_another_exact_field() -> None:
    with pytest.raises(IncompatibleFieldError):
        linalg.solve(QQ, EXP.array([[1, 2], [3, 4]]), QQ.array([1, 1]))
    with pytest.raises(IncompatibleFieldError):
        linalg.det(QQ, EXP.eye(2))


def test_f64_linalg_refuses_arrays_of_exact_fields() -> None:
    with pytest.raises(IncompatibleFieldError):
        linalg.solve(F64, QQ.array([[1, 2], [3, 4]]), QQ.array([1, 1]))
    with pytest.raises(IncompatibleFieldError):
        linalg.rank(F64, EXP.array([[1, 2], [3, 4]]))


def test_higham_gamma_refuses_n_u_of_one_or_more() -> None:
    from exactattn.fields.float64 import UNIT_ROUNDOFF, higham_gamma
    assert higham_gamma(2, fmpq(1, 4)) == fmpq(1)  # 2/4 / (1 - 2/4), exact
    assert higham_gamma(0) == 0.0
    with pytest.raises(InvalidEntryError):
        higham_gamma(4, fmpq(1, 4))  # n u = 1: a division by zero before
    with pytest.raises(InvalidEntryError):
        higham_gamma(3, 0.5)  # n u > 1: a negative "bound" before
    with pytest.raises(InvalidEntryError):
        higham_gamma(-1, UNIT_ROUNDOFF)
