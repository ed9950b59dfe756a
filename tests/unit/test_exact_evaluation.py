"""Exact model evaluation in bulk (issue 12: the EXP head at d = 128 in under 60 s).

The hidden models over EXP evaluate sparse queries over their nonzero
entries (:class:`exactattn.models.attention.ExactScores`) and build the
softmax quotient at once (:meth:`ExponentialField.softmax_average`). Both are
speed only: the tests compare them with the plain computation (a dense
fmpq_mat product, the element-by-element softmax), with ``==`` and with the
stored representation, near misses included.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from flint import fmpq, fmpq_mat
from hypothesis import given
from hypothesis import strategies as st

from exactattn.errors import InvalidEntryError, NotRepresentableError
from exactattn.fields import EXP
from exactattn.models import BiasedSingleHeadAttention, SingleHeadAttention
from exactattn.models.attention import ExactScores

small = st.fractions(min_value=-4, max_value=4, max_denominator=8)


def _elementwise(scores: list[fmpq], values: list[fmpq]) -> Any:
    """The softmax average term by term (the computation before issue 12's speed-up)."""
    top = max(scores)
    w = [EXP.exp(EXP(s - top)) for s in scores]
    num, den = w[0] * EXP(values[0]), w[0]
    for wi, c in zip(w[1:], values[1:], strict=True):
        num, den = num + wi * EXP(c), den + wi
    return num / den


@given(d=st.integers(1, 5), N=st.integers(1, 3), data=st.data())
def test_sparse_and_dense_scores_are_the_same_rationals(d: int, N: int, data: Any) -> None:
    W = [[data.draw(small) for _ in range(d)] for _ in range(d)]
    v, c = [data.draw(small) for _ in range(d)], [data.draw(small) for _ in range(d)]
    zero_or = st.one_of(st.just(Fraction(0)), small)
    X = EXP.array([[data.draw(zero_or) for _ in range(d)] for _ in range(N)])
    parts = ExactScores(EXP, EXP.array(W), EXP.array(v), EXP.array(c))
    Xq = fmpq_mat(N, d, EXP.to_rationals(X))
    xN = fmpq_mat(d, 1, EXP.to_rationals(X[-1]))
    Wq = fmpq_mat(d, d, [fmpq(x.numerator, x.denominator) for row in W for x in row])
    cq = fmpq_mat(d, 1, [fmpq(x.numerator, x.denominator) for x in c])
    vq = fmpq_mat(d, 1, [fmpq(x.numerator, x.denominator) for x in v])
    S, C = Xq * (Wq * xN + cq), Xq * vq
    expected = ([S[i, 0] for i in range(N)], [C[i, 0] for i in range(N)])
    assert parts(X) == expected
    parts.DENSE_FACTOR = 0  # every query through the sparse route (0 > d^2 never holds)
    assert parts(X) == expected
    # the dense fmpq_mat route for every query with a nonzero token entry and x_N != 0
    parts.DENSE_FACTOR = 10**9
    assert parts(X) == expected


@given(scores=st.lists(small, min_size=1, max_size=4), data=st.data())
def test_softmax_quotient_at_once_equals_term_by_term(scores: list[Fraction], data: Any) -> None:
    values = [data.draw(small) for _ in scores]
    s = [fmpq(x.numerator, x.denominator) for x in scores]
    c = [fmpq(x.numerator, x.denominator) for x in values]
    fast, slow = EXP.softmax_average(s, c), _elementwise(s, c)
    assert fast == slow and repr(fast) == repr(slow)
    # canonical: an element equal to a rational is stored as that rational. By
    # Lindemann-Weierstrass the quotient is rational exactly when every distinct score's
    # values have the same mean (scores [0, 0, 1, 1], values [1, 3, 2, 2]: 2), and then
    # it is that mean
    means = {sum(c for t, c in zip(scores, values, strict=True) if t == x)
             / scores.count(x) for x in set(scores)}
    assert EXP.is_rational(fast) == (len(means) == 1)
    if len(means) == 1:
        assert fast == EXP(means.pop())


def test_softmax_quotient_of_equal_group_means_is_rational() -> None:
    # scores not all equal, values not all equal, yet each score's values average 2
    p = EXP.softmax_average([fmpq(0), fmpq(0), fmpq(1), fmpq(1)],
                            [fmpq(1), fmpq(3), fmpq(2), fmpq(2)])
    assert EXP.is_rational(p) and p == EXP(2)

def test_softmax_quotient_near_miss() -> None:
    # sigma(2^-60) and 1/2 differ by about 2^-62: a float comparison calls them equal
    t = fmpq(1, 2**60)
    p = EXP.softmax_average([t, fmpq(0)], [fmpq(1), fmpq(0)])
    assert float(p) == 0.5 and p != EXP(Fraction(1, 2)) and p > EXP(Fraction(1, 2))
    assert p == _elementwise([t, fmpq(0)], [fmpq(1), fmpq(0)])
    with pytest.raises(InvalidEntryError, match="as many values as scores"):
        EXP.softmax_average([fmpq(1)], [])


def test_models_evaluate_sparse_queries_by_hand() -> None:
    W = [[1, Fraction(-1, 2), 0], [0, 2, 1], [Fraction(3, 4), 0, -1]]
    head = SingleHeadAttention(W, [1, 0, -2], field=EXP)
    biased = BiasedSingleHeadAttention(W, [0, 1, Fraction(1, 3)], [1, 0, -2], 5, field=EXP)
    X = EXP.array([[1, 1, 0], [0, 0, 1]])     # [(e_1 + e_2)^T; e_3^T]
    # W e_3 = (0, 1, -1): scores (1, -1), values v . x = (1, -2)
    assert head(X) == EXP.sigmoid(EXP(2)) * 3 - 2
    # plus c . x = (1, 1/3): scores (2, -2/3)
    assert biased(X) == EXP.sigmoid(EXP(Fraction(8, 3))) * 3 - 2 + 5
    assert head(X) != EXP.sigmoid(EXP(Fraction(8, 3))) * 3 - 2


def test_bulk_rationals_and_array_checks_keep_their_errors() -> None:
    A = EXP.array([[1, Fraction(1, 3)], [0, -2]])
    assert EXP.to_rationals(A) == [fmpq(1), fmpq(1, 3), fmpq(0), fmpq(-2)]
    assert EXP.array(A) is A
    B = A.copy()
    B[1, 1] = EXP.exp(EXP(1))
    with pytest.raises(NotRepresentableError):
        EXP.to_rationals(B)
    C = A.copy()
    C[0, 1] = 0.5  # a float in an array of elements: refused by name, as before
    with pytest.raises(InvalidEntryError, match=r"batch\[0, 1\]: float 0.5"):
        EXP.array(C, name="batch")
    assert EXP.to_rationals(np.empty((0, 2), dtype=object)) == []
