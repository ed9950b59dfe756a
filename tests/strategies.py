"""Reusable Hypothesis strategies for the exactattn tests.

Import them from any test module::

    from tests.strategies import rationals, exp_elements, rational_matrices

Everything here is kept small (few terms, small numerators and denominators)
so that a test with the default profile runs in well under a second.

* Rationals are :class:`fractions.Fraction` (a Python literal every field
  accepts), never ``fmpq``: tests convert them with ``QQ(...)``/``EXP(...)``.
* EXP elements are built *only* through the field's public operations
  (``EXP(...)``, ``EXP.exp``, ``+``, ``*``, ``/``), never from the private
  representation. :func:`exp_samples` also returns the terms an element was
  built from, so a test can evaluate the same real number independently
  (:meth:`ExpSample.reference`, python-flint ``arb`` at high precision).
* Matrices and vectors are nested lists of ``Fraction`` (convert with
  ``QQ.array``, ``EXP.array`` or ``F64.array``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from flint import arb, ctx, fmpq
from hypothesis import strategies as st

from exactattn.fields import EXP, ExpElement

__all__ = [
    "MAX_NUMERATOR",
    "MAX_DENOMINATOR",
    "rationals",
    "nonzero_rationals",
    "exponents",
    "exp_terms",
    "exp_sum",
    "exp_sums",
    "ExpSample",
    "exp_samples",
    "exp_elements",
    "nonzero_exp_elements",
    "rational_vectors",
    "rational_matrices",
    "square_rational_matrices",
    "fraction_to_arb",
    "HOSTILE_LITERALS",
    "hostile_scalars",
    "hostile_arrays",
]

#: default bound on |numerator| of generated rationals
MAX_NUMERATOR = 60
#: default bound on the denominator of generated rationals
MAX_DENOMINATOR = 12

Term = tuple[Fraction, Fraction]  # (coefficient c, exponent q) of c * e^q


# -- rationals ---------------------------------------------------------------
def rationals(
    max_numerator: int = MAX_NUMERATOR,
    max_denominator: int = MAX_DENOMINATOR,
    *,
    nonzero: bool = False,
) -> st.SearchStrategy[Fraction]:
    """``Fraction(p, q)`` with ``|p| <= max_numerator`` and ``1 <= q <= max_denominator``.

    Shrinks towards 0 (or towards +-1 when ``nonzero``).
    """
    numerators = st.integers(-max_numerator, max_numerator)
    if nonzero:
        numerators = numerators.filter(lambda p: p != 0)
    return st.builds(Fraction, numerators, st.integers(1, max_denominator))


def nonzero_rationals(
    max_numerator: int = MAX_NUMERATOR, max_denominator: int = MAX_DENOMINATOR
) -> st.SearchStrategy[Fraction]:
    """Like :func:`rationals`, never 0."""
    return rationals(max_numerator, max_denominator, nonzero=True)


def exponents(max_numerator: int = 12, max_denominator: int = 4) -> st.SearchStrategy[Fraction]:
    """Exponents q for e^q: small rationals with small denominators.

    The denominators are kept small on purpose, so that exponents of
    different terms often coincide or differ by an integer: that is where
    cancellation and merging of terms happen.
    """
    return rationals(max_numerator, max_denominator)


# -- EXP elements -------------------------------------------------------------
def exp_terms(
    min_terms: int = 1,
    max_terms: int = 3,
    coefficients: st.SearchStrategy[Fraction] | None = None,
    powers: st.SearchStrategy[Fraction] | None = None,
) -> st.SearchStrategy[list[Term]]:
    """Lists of ``(c, q)`` pairs, the terms of an exponential sum sum c e^q.

    Coefficients are nonzero; exponents may repeat (the field must merge them).
    """
    coefficients = coefficients if coefficients is not None else nonzero_rationals(20, 6)
    powers = powers if powers is not None else exponents()
    return st.lists(st.tuples(coefficients, powers), min_size=min_terms, max_size=max_terms)


def exp_sum(terms: list[Term]) -> ExpElement:
    """The EXP element sum c * EXP.exp(q), built with field operations only."""
    total = EXP(0)
    for c, q in terms:
        total = total + EXP(c) * EXP.exp(EXP(q))
    return total


def exp_sums(min_terms: int = 1, max_terms: int = 3) -> st.SearchStrategy[ExpElement]:
    """EXP elements sum_k c_k e^{q_k} (possibly 0 when terms cancel)."""
    return exp_terms(min_terms, max_terms).map(exp_sum)


def fraction_to_arb(x: Fraction) -> arb:
    """``x`` as an arb ball (at the current ``flint.ctx`` precision)."""
    return arb(fmpq(x.numerator, x.denominator))


@dataclass(frozen=True)
class ExpSample:
    """An EXP element together with the terms it was built from.

    ``element == exp_sum(num) / exp_sum(den)``. :meth:`reference` evaluates
    that quotient from the terms with python-flint ``arb``, independently of
    the field's representation, sign logic and normalisation.
    """

    num: tuple[Term, ...]
    den: tuple[Term, ...]
    element: ExpElement

    def reference(self, prec: int = 1000) -> arb:
        """A rigorous ball for the value, evaluated term by term at ``prec`` bits."""
        with ctx.workprec(prec):

            def ev(terms: tuple[Term, ...]) -> arb:
                total = arb(0)
                for c, q in terms:
                    total += fraction_to_arb(c) * fraction_to_arb(q).exp()
                return total

            return ev(self.num) / ev(self.den)

    def reference_sign(self, prec: int = 1000) -> int:
        """Sign of :meth:`reference`; 0 when the ball contains 0.

        With the small inputs generated here a nonzero value is far larger
        than 2^-prec, so a ball containing 0 means the value is exactly 0.
        """
        ball = self.reference(prec)
        if ball > 0:
            return 1
        if ball < 0:
            return -1
        return 0


@st.composite
def exp_samples(draw: st.DrawFn, max_terms: int = 3, quotient: bool | None = None) -> ExpSample:
    """:class:`ExpSample` values: a sum, or a quotient of two sums (nonzero denominator).

    ``quotient=None`` draws both kinds; ``True``/``False`` forces one.
    """
    num = tuple(draw(exp_terms(0, max_terms)))
    use_quotient = draw(st.booleans()) if quotient is None else quotient
    if not use_quotient:
        return ExpSample(num, ((Fraction(1), Fraction(0)),), exp_sum(list(num)))
    den_terms = exp_terms(1, max_terms).filter(lambda t: exp_sum(t) != 0)
    den = tuple(draw(den_terms))
    return ExpSample(num, den, exp_sum(list(num)) / exp_sum(list(den)))


def exp_elements(max_terms: int = 3) -> st.SearchStrategy[ExpElement]:
    """EXP elements: rationals, sums sum c e^q, and quotients of such sums.

    Rationals are drawn with some weight of their own because they are a
    special (stored-as-rational) case of the representation.
    """
    return st.one_of(
        rationals().map(EXP),
        exp_samples(max_terms).map(lambda s: s.element),
    )


def nonzero_exp_elements(max_terms: int = 3) -> st.SearchStrategy[ExpElement]:
    """Like :func:`exp_elements`, never 0 (as a real number)."""
    return exp_elements(max_terms).filter(lambda x: x != 0)


# -- vectors and matrices -----------------------------------------------------
def rational_vectors(
    n: int | None = None,
    *,
    min_size: int = 1,
    max_size: int = 4,
    elements: st.SearchStrategy[Fraction] | None = None,
) -> st.SearchStrategy[list[Fraction]]:
    """Lists of ``Fraction`` of length ``n`` (or between ``min_size`` and ``max_size``)."""
    elements = elements if elements is not None else rationals(9, 4)
    if n is not None:
        return st.lists(elements, min_size=n, max_size=n)
    return st.lists(elements, min_size=min_size, max_size=max_size)


@st.composite
def rational_matrices(
    draw: st.DrawFn,
    rows: int | None = None,
    cols: int | None = None,
    *,
    min_size: int = 1,
    max_size: int = 4,
    elements: st.SearchStrategy[Fraction] | None = None,
) -> list[list[Fraction]]:
    """Rectangular nested lists of ``Fraction`` (``rows`` x ``cols``; sizes drawn if None).

    Entries default to small rationals with many zeros and repeats, so
    singular and low-rank matrices come up often.
    """
    r = rows if rows is not None else draw(st.integers(min_size, max_size))
    c = cols if cols is not None else draw(st.integers(min_size, max_size))
    row = rational_vectors(c, elements=elements)
    return draw(st.lists(row, min_size=r, max_size=r))


@st.composite
def square_rational_matrices(
    draw: st.DrawFn,
    n: int | None = None,
    *,
    min_size: int = 1,
    max_size: int = 4,
    elements: st.SearchStrategy[Fraction] | None = None,
) -> list[list[Fraction]]:
    """``n`` x ``n`` nested lists of ``Fraction`` (``n`` drawn if None)."""
    size = n if n is not None else draw(st.integers(min_size, max_size))
    return draw(rational_matrices(size, size, elements=elements))


# -- hostile input ------------------------------------------------------------
def _other_field_elements() -> list[object]:
    """One element of every field, and flint's own numbers (built on demand)."""
    from flint import fmpz

    from exactattn.fields import BALL, F64, MP, QQ

    return [EXP.exp(EXP(1)), EXP(Fraction(1, 3)), QQ(Fraction(2, 3)), fmpz(5), F64(0.5),
            BALL(64)(1), MP(64)(Fraction(1, 2))]


#: literal values that are not numbers of any field, or are numbers at the edge
HOSTILE_LITERALS: tuple[object, ...] = (
    None, True, False, float("nan"), float("inf"), -float("inf"), -0.0, 1.5, 1e308,
    "", "1", "1/0", "nan", b"1", 1j, 10**400, -(10**400), 2**64, -1, 0,
    [], (), {}, set(), [[]], [1, [2]], {"shape": [1], "entries": ["1"]},
)


def hostile_scalars() -> st.SearchStrategy[object]:
    """Single values an API entry point must refuse cleanly (or accept as a number).

    NaN and infinities, bools, strings, bytes, None, complex numbers, huge
    integers, containers, arbitrary objects, numpy scalars and elements of
    every field (for the fields that must refuse them).
    """
    import numpy as np

    numpy_scalars = st.sampled_from([np.float64("nan"), np.float32("inf"), np.int64(-3),
                                     np.bool_(True), np.float16(1.5), np.complex128(1j)])
    return st.one_of(
        st.sampled_from(HOSTILE_LITERALS),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**30), 10**30),
        st.text(max_size=4),
        numpy_scalars,
        st.builds(object),
        st.sampled_from(range(7)).map(lambda k: _other_field_elements()[k]),
    )


@st.composite
def hostile_arrays(draw: st.DrawFn, d: int = 2) -> object:
    """Inputs in the place of an N x d (or length-d) array: all malformed in some way.

    Ragged nested lists, an entry replaced by a hostile scalar, the wrong
    width or number of dimensions, empty arrays, numpy arrays of strings,
    complex or bool dtype, NaN-filled float arrays, or not an array at all.
    Sizes stay below 4 so that nothing can take long.
    """
    import numpy as np

    kind = draw(st.sampled_from(["scalar", "ragged", "entry", "width", "ndim", "empty",
                                 "dtype", "nonfinite"]))
    if kind == "scalar":
        return draw(hostile_scalars())
    if kind == "ragged":
        rows = draw(st.lists(st.lists(st.integers(-3, 3), min_size=0, max_size=3),
                             min_size=2, max_size=3)
                    .filter(lambda rs: len({len(r) for r in rs}) > 1))
        return rows
    if kind == "entry":
        n = draw(st.integers(1, 3))
        rows: list[list[object]] = [[1] * d for _ in range(n)]
        rows[draw(st.integers(0, n - 1))][draw(st.integers(0, d - 1))] = draw(hostile_scalars())
        return rows
    if kind == "width":
        width = draw(st.sampled_from([0, d + 1, d + 2] + ([d - 1] if d > 1 else [])))
        return [[1] * width for _ in range(draw(st.integers(1, 3)))]
    if kind == "ndim":
        return draw(st.sampled_from([[1] * d, [[[1] * d]], [[[[1] * d]]], np.ones((1, 1, d))]))
    if kind == "empty":
        return draw(st.sampled_from([[], [[]], np.empty((0, d)), np.empty((2, 0)),
                                     np.empty((0,)), np.empty((0, d), dtype=object)]))
    if kind == "dtype":
        return draw(st.sampled_from([np.array([["a"] * d]), np.ones((1, d), dtype=complex),
                                     np.ones((1, d), dtype=bool), np.array([[None] * d])]))
    return draw(st.sampled_from([np.full((1, d), np.nan), np.full((2, d), np.inf),
                                 [[float("nan")] * d], [[1e308] * d, [-1e308] * d]]))
