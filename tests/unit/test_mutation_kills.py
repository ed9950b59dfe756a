"""Tests that kill the mutants mutmut found surviving on exact decisions and
proved bounds (issue 10, section 3; see docs/mutation.md).

Each test pins a decision or a bound against an independent computation of
what its docstring states: the precision bound of ``required_precision``
against its formula re-evaluated in mpmath at 200 digits (which pins the code to
the formula, not the formula to the truth) and against exact reconstruction at
that precision on a head at the proof's extreme steps, the uniqueness test 2 r Q^2 < 1 of
``reconstruct_rational`` against balls that hold two candidates or one, and
the clustered evaluation of exponential sums (exact Taylor moments plus a
Lagrange remainder) against arb at thousands of bits, on sums whose value is
set by cancellations of orders 1 to 3 inside clusters whose gaps sit near
CLUSTER_GAP. The comparison operators and the hash of EXP are pinned too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
import pytest
from flint import arb, ctx, fmpq

from exactattn import certificates as cert
from exactattn.certificates import verify
from exactattn.errors import IncompatibleFieldError, InvalidEntryError
from exactattn.fields import BALL, EXP, F64, MP, QQ
from exactattn.fields import exponential as ex
from exactattn.fields.rational import sqrt_upper
from exactattn.learners import Recovery, learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import Transcript, ValueOracle, enclosing_oracle
from exactattn.reconstruct import (
    AmbiguousReconstructionError,
    logit_slope_bound,
    reconstruct_rational,
    required_precision,
)

# -- reconstruct.py ------------------------------------------------------------


def _bound_bits(M: Fraction, Q: int, rho: int) -> int:
    """floor(log2(70 (4 rho + 3) A Q^3 K)) + 1 with A = max(3M, 1), K = 2 + 2 cosh(2M),
    the docstring's statement evaluated independently in mpmath at 200 digits."""
    with mpmath.workdps(200):
        Mm = mpmath.mpf(M.numerator) / M.denominator
        A = max(3 * Mm, mpmath.mpf(1))
        K = 2 + 2 * mpmath.cosh(2 * Mm)
        x = mpmath.log(70 * (4 * rho + 3) * A * mpmath.mpf(Q) ** 3 * K, 2)
        return int(mpmath.floor(x)) + 1


def _rho_just_above_power_of_two(k: int, Q: int) -> int:
    """The least rho with 280 (4 rho + 3) Q^3 > 2^k: log2 of the bound at M = 0 is
    then k + (a fraction below 1e-9), where a rounding slack pointing the wrong
    way would lose a bit."""
    rho: int = (2**k // (280 * Q**3) - 3) // 4
    while 280 * (4 * rho + 3) * Q**3 <= 2**k:
        rho += 1
    return rho


def _rho_just_below_power_of_two(k: int, Q: int) -> int:
    """The largest rho with 280 (4 rho + 3) Q^3 < 2^k: log2 of the bound at M = 0 is
    then just below the integer k, so a constant 1.5 % too large (71 for 70) crosses it."""
    return _rho_just_above_power_of_two(k, Q) - 1


@pytest.mark.parametrize(("M", "Q", "rho"), [
    (Fraction(0), 1, 1),            # A = 1, K = 4; the smallest valid answer radius
    (Fraction(1, 7), 3, 1),         # 3M < 1: A = 1, not 3M (and not 3/M)
    (Fraction(1, 2), 8, 16),        # M not an integer: its denominator matters
    (Fraction(9), 8, 16),           # the docstring's example
    (Fraction(5, 3), 1000, 2),
    (Fraction(400), 7, 16),         # K ~ e^800: far beyond float64
    (Fraction(0), 1, _rho_just_above_power_of_two(50, 1)),
    (Fraction(0), 5, _rho_just_above_power_of_two(60, 5)),
    (Fraction(0), 1, _rho_just_below_power_of_two(40, 1)),
    (Fraction(0), 3, _rho_just_below_power_of_two(40, 3)),
    # log2 of the bound ~2e-15 below the integer 60: the formula gives 60 bits; a float
    # step with a slack (floor(U + 1e-9) + 1) gave 61, not the proved formula
    (Fraction(0), 1, _rho_just_below_power_of_two(60, 1)),
])
def test_required_precision_is_the_proved_formula(M: Fraction, Q: int, rho: int) -> None:
    bits = required_precision(3, M, Q, answer_radius=rho)
    assert bits == _bound_bits(M, Q, rho)


@pytest.mark.parametrize("sign", [1, -1])
def test_the_required_precision_suffices_on_the_proofs_worst_steps(sign: int) -> None:
    """The claim itself, not its formula: at required_precision(d, M, Q) bits a BALL
    oracle's head is reconstructed exactly, on a head that hits the proof's extreme
    steps (|c_l| = 1/Q through the pivot, logits u_l^T w_j = +-2M, entries of
    denominator Q). The test above only compares the formula with itself."""
    M, Q = 9, 8
    W = [[9, -9, 9], [9, -9, 9], [Fraction(71, 8), Fraction(-71, 8), 9]]
    W = [[sign * x for x in row] for row in W]
    head = SingleHeadAttention(W, [Fraction(1, Q), 0, 0], field=EXP)
    prec = required_precision(3, M, Q)
    rec = learn_single_head(enclosing_oracle(head, BALL(prec)), max_denominator=Q)
    assert rec.options["pivot"] == 0
    assert sorted({abs(x) for x in head.W[0] + head.W[1]}) == [2 * M]  # t_1j = W_1j + W_0j
    assert (rec.W == head.W).all() and (rec.v == head.v).all()
    # the instance is sensitive to the precision: 22 bits below the bound it is ambiguous
    with pytest.raises(AmbiguousReconstructionError):
        learn_single_head(enclosing_oracle(head, BALL(prec - 22)), max_denominator=Q)


def test_the_slack_case_is_really_within_1e_9_above_an_integer() -> None:
    # the two parametrised cases above are only a test of the rounding if log2 of
    # the bound lies just above an integer (rounding its upper end down, e.g. through
    # a float, would lose the bit)
    for k, Q in ((50, 1), (60, 5)):
        rho = _rho_just_above_power_of_two(k, Q)
        with mpmath.workdps(60):
            x = mpmath.log(280 * (4 * rho + 3) * mpmath.mpf(Q) ** 3, 2)
        frac = x - mpmath.floor(x)
        assert 0 < frac < mpmath.mpf("1e-9")


def test_required_precision_accepts_the_edges_of_its_domain() -> None:
    # answer_radius = 1 and max_entry = 0 are valid (>= 1 and >= 0)
    assert required_precision(1, 0, 1, answer_radius=1) == _bound_bits(Fraction(0), 1, 1)
    assert required_precision(1, Fraction(1, 3), 1, answer_radius=1) == \
        _bound_bits(Fraction(1, 3), 1, 1)


def test_logit_slope_bound_encloses_2_plus_2_cosh() -> None:
    for T in (fmpq(0), fmpq(1, 3), fmpq(7), fmpq(200)):
        K = logit_slope_bound(T)
        with mpmath.workdps(100):
            exact = 2 + 2 * mpmath.cosh(mpmath.mpf(int(T.p)) / int(T.q))
            with ctx.workprec(400):
                assert K.contains(arb(mpmath.nstr(exact, 90)))


def _ball(mid: Fraction, rad: Fraction) -> object:
    return BALL(64).from_json({"mid": str(mid), "rad": str(rad)})


def test_a_ball_holding_two_candidates_is_ambiguous() -> None:
    # [0, 1] holds both 0 and 1 (Q = 1): 2 r Q^2 = 1 (plus the 2^-30 by which arb
    # rounds every radius up), so no rational can be singled out; a doubled
    # threshold (2 r Q^2 >= 2) would pick one
    F = BALL(64)
    with pytest.raises(AmbiguousReconstructionError):
        reconstruct_rational(F, _ball(Fraction(1, 2), Fraction(1, 2)), 1)
    # [1/4, 3/4] (Q = 2) holds 1/2 only, but 2 r Q^2 = 2: two rationals of
    # denominator <= 2 are 1/2 apart, so a ball this wide could have held two
    with pytest.raises(AmbiguousReconstructionError):
        reconstruct_rational(F, _ball(Fraction(1, 2), Fraction(1, 4)), 2)


def test_a_ball_just_narrow_enough_reconstructs() -> None:
    # 2 r Q^2 = 3/4 < 1 (while 3 r Q^2 >= 1): unique, must succeed
    F = BALL(64)
    rec = reconstruct_rational(F, _ball(Fraction(1, 4), Fraction(3, 8)), 1)
    assert rec.value == 0
    rec = reconstruct_rational(F, _ball(Fraction(9, 16), Fraction(3, 32)), 2)
    assert rec.value == fmpq(1, 2)


@pytest.mark.parametrize(("mid", "rad", "Q"), [
    (Fraction(1, 2), Fraction(1, 2), 1),         # 2 r Q^2 = 1
    (Fraction(1, 3), Fraction(1, 8), 3),         # r < 1, Q > 1
    (Fraction(1, 3), Fraction(1, 2**10), 1000),
    (Fraction(7, 3), Fraction(5), 4),            # r > 1
    (Fraction(7, 3), Fraction(2**40), 1000),     # many bits missing
])
def test_the_named_precision_is_the_missing_bits(mid: Fraction, rad: Fraction, Q: int) -> None:
    """needed_prec = prec + ceil(log2(2 r Q^2)) + 10: the radius shrinks like 2^-prec,
    so log2(2 r Q^2) bits bring 2 r Q^2 to 1, and 10 more bits to below 2^-10."""
    F = BALL(64)
    x = _ball(mid, rad)
    r = Fraction(str(F.radius(x)))
    with pytest.raises(AmbiguousReconstructionError) as info:
        reconstruct_rational(F, x, Q)
    with mpmath.workdps(50):
        missing = mpmath.log(2 * mpmath.mpf(r.numerator) / r.denominator * Q * Q, 2)
    assert info.value.needed_prec == 64 + int(mpmath.ceil(missing)) + 10
    # and that many bits do settle it: the radius scaled down by 2^-(needed - prec)
    assert 2 * r * Q * Q / 2 ** (info.value.needed_prec - 64) < 1


# -- fields/exponential.py: the clustered sign evaluation ---------------------

G = fmpq(1, 2**32)  # CLUSTER_GAP
h = fmpq(1, 2**35)

#: (sum as (exponent, coefficient) pairs, relative accuracy slack in bits or None
#: when clusters cancel each other, which may cost up to 32 bits by design)
SUMS: list[tuple[list[tuple[fmpq, fmpq]], int | None]] = [
    ([(fmpq(0), fmpq(1)), (-h, fmpq(-1))], 4),                            # order 1
    ([(fmpq(0), fmpq(1)), (-h, fmpq(-2)), (-2 * h, fmpq(1))], 4),          # order 2
    ([(fmpq(0), fmpq(1)), (-h, fmpq(-3)), (-2 * h, fmpq(3)), (-3 * h, fmpq(-1))], 4),
    # three terms, gaps just below CLUSTER_GAP, far coefficient dominant, m_0 = 0:
    # the remainder bound is tight here
    ([(fmpq(0), fmpq(-1)), (-(G - fmpq(1, 2**70)), fmpq(-1000)),
      (-(2 * G - fmpq(1, 2**69)), fmpq(1001))], 4),
    # gaps of 0.6 G: a cluster only as a whole; order-2 cancellation
    ([(fmpq(0), fmpq(1)), (-G * fmpq(3, 5), fmpq(-2)), (-G * fmpq(6, 5), fmpq(1))], 4),
    # non-dyadic exponents and coefficients: common denominators L and G
    ([(fmpq(1, 3), fmpq(1, 3)), (fmpq(1, 3) - fmpq(1, 5 * 2**33), fmpq(1, 5)),
      (fmpq(1, 3) - fmpq(1, 7 * 2**33), fmpq(-8, 15))], 4),
    # a positive exponent: splitting on the sum of exponents would cut it
    ([(fmpq(5), fmpq(1)), (5 - h, fmpq(-1))], 4),
    # far apart negative clusters
    ([(fmpq(-1), fmpq(1)), (-1 - h, fmpq(-1)), (fmpq(-50), fmpq(3)), (-50 - h, fmpq(-3))], 4),
    # the first gap is the split: e^3 dwarfs nothing here, the clusters are 5 apart
    ([(fmpq(3), fmpq(1, 2**120)), (fmpq(-2), fmpq(5)), (-2 - h, fmpq(-5))], 4),
    # two clusters exactly CLUSTER_GAP apart (split: up to 32 bits of cancellation)
    ([(fmpq(0), fmpq(1)), (-G, fmpq(-1))], None),
]


def _truth(a: list[tuple[fmpq, fmpq]]) -> arb:
    """The sum term by term in arb at 20000 bits (the cancellations above cost < 200)."""
    with ctx.workprec(20000):
        total = arb(0)
        for e, c in a:
            total += arb(c) * arb(e).exp()
        return total


@pytest.mark.parametrize("prec", [ex.CLUSTER_FROM_PREC, 300, 384, 448, 512, 1024])
@pytest.mark.parametrize("case", range(len(SUMS)))
def test_clustered_ball_encloses_the_value_and_is_accurate(case: int, prec: int) -> None:
    terms, slack = SUMS[case]
    a = ex._normalize(list(terms))
    truth = _truth(terms)
    ball = ex._sum_ball(a, prec)
    with ctx.workprec(20000):
        assert ball.contains(truth), (case, prec, ball, truth)
        if slack is not None:
            # rad <= 2^-(prec - slack) |value|: the Taylor loop stops when its bound
            # is below 2^-prec |P_N| and works at prec + 16 bits
            assert arb(ball.rad()) < abs(truth) * arb(2) ** (slack - prec), (case, prec)
    assert ex._sum_sign(a) == (1 if truth > 0 else -1)


@pytest.mark.parametrize("case", [i for i, (t, _) in enumerate(SUMS) if len(ex._clusters(
    ex._normalize(list(t)))) == 1])
def test_one_cluster_ball_keeps_its_remainder(case: int) -> None:
    """:func:`_cluster_ball` alone: its Taylor remainder bound is part of the ball
    (the rounding at prec + 16 bits is too small to stand in for it)."""
    terms = ex._normalize(list(SUMS[case][0]))
    z = terms[0][0]
    shifted = [(e - z, c) for e, c in terms]
    truth = _truth(shifted)
    for prec in range(ex.CLUSTER_FROM_PREC, 1024, 8):
        ball = ex._cluster_ball(terms, prec)
        with ctx.workprec(20000):
            assert ball.contains(truth), (case, prec, ball, truth)


def test_the_empty_sum_has_sign_zero() -> None:
    assert ex._sum_sign(()) == 0
    assert ex._sum_sign(ex._normalize([(fmpq(1), fmpq(2)), (fmpq(1), fmpq(-2))])) == 0


def test_sign_of_a_quotient_is_an_int() -> None:
    q = (EXP.exp(1) - 2) / (1 - EXP.exp(2))  # (e - 2) / (1 - e^2) < 0
    assert q.sign() == -1 and type(q.sign()) is int


def test_the_sign_of_tiny_cancellations_is_decided_and_right() -> None:
    # signs decided only through clusters: e^{q} - e^{q - k} and third differences,
    # flipped by a 2^-300 nudge of one coefficient
    for s in (1, -1):
        a = [(fmpq(0), fmpq(1)), (-h, fmpq(-3)), (-2 * h, fmpq(3)),
             (-3 * h, fmpq(-1) + s * fmpq(1, 2**300))]
        v = _truth(a)
        assert EXP.sign(EXP.exp(0) - 3 * EXP.exp(-h) + 3 * EXP.exp(-2 * h)
                        + EXP(a[3][1]) * EXP.exp(-3 * h)) == (1 if v > 0 else -1)


# -- fields/exponential.py: comparisons and hash ---------------------------------

def test_exp_comparisons_near_a_miss() -> None:
    x = EXP.exp(fmpq(1, 2**40))  # 1 + 2^-40 + ...: a float says 1.0000000000009
    one = EXP(1)
    assert one <= x and not (x <= one) and x <= x
    assert x >= one and not (one >= x) and x >= x
    assert x > one and not (one > x) and not (x > x)
    assert one < x and not (x < one)
    assert abs(one - x) == x - one and abs(x - one) == x - one
    # against plain rationals (no reflected EXP operator to fall back on)
    assert x <= 2 and not (x <= 1) and x <= Fraction(3, 2)
    assert x >= 1 and not (x >= 2) and not (one >= Fraction(3, 2))
    assert one <= 1 and one >= 1 and not (one < 1) and not (one > 1)
    # against a numpy array: EXP returns NotImplemented and numpy compares elementwise
    e = EXP.exp(1)
    arr = np.array([EXP(2), EXP(3), e], dtype=object)
    assert (e <= arr).tolist() == [False, True, True]
    assert (e >= arr).tolist() == [True, False, True]
    assert (e > arr).tolist() == [True, False, False]
    assert (e < arr).tolist() == [False, True, False]


def test_exp_hash_agrees_with_equality_across_representations() -> None:
    x = EXP.exp(1) / (1 + EXP.exp(2))
    z = EXP.exp(1) * (1 + EXP.exp(1)) / ((1 + EXP.exp(1)) * (1 + EXP.exp(2)))
    assert x == z
    assert hash(x) == hash(z)
    m1, m2 = 2 * EXP.exp(fmpq(1, 3)), EXP.exp(fmpq(1, 3)) + EXP.exp(fmpq(1, 3))
    assert m1 == m2 and hash(m1) == hash(m2)
    assert len({m1, m2, EXP.exp(fmpq(1, 2))}) == 2


# -- certificates.py ------------------------------------------------------------------------
# The tolerance formulas, the F64 replay's first failure and the certificate's record, pinned
# against independent computations (loops over the queries, exact rationals), so that a
# mutant changing a bound, the query reported or a field of the record fails a test.

def _f64_single_head(d: int = 3, seed: int = 0) -> tuple[Recovery, ValueOracle]:
    rng = np.random.default_rng(seed)
    head = SingleHeadAttention(rng.standard_normal((d, d)), rng.standard_normal(d), field=F64)
    oracle = ValueOracle(head)
    return learn_single_head(oracle, field=F64), oracle


def _batch(d: int, seed: int = 5) -> np.ndarray:
    """Three queries of three tokens whose norms, spreads and largest entries all differ."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 3, d)) * np.array([0.5, 2.0, 7.0])[:, None, None]


def test_tolerances_is_its_docstring_formula_query_by_query() -> None:
    rec, _ = _f64_single_head()
    o = rec.options
    Xs = _batch(rec.d)
    got = cert._tolerances(rec, Xs)
    for b, X in enumerate(Xs):
        norms = [math.sqrt(sum(t * t for t in x)) for x in X]
        c = [sum(t * w for t, w in zip(x, rec.v, strict=True)) for x in X]
        want = (o["W_error_bound"] * max(norms) * norms[-1] * (max(c) - min(c))
                + o["v_error_bound"] * max(norms)
                + 2 * o["answer_error_factor"] * sum(abs(w) for w in rec.v)
                * max(abs(t) for x in X for t in x))
        assert got[b] == pytest.approx(want, rel=1e-12, abs=0)


@pytest.mark.parametrize("case", ["beta", "no beta, no beta bound"])
def test_tolerances_of_a_biased_head_adds_its_terms(case: str) -> None:
    rec, _ = _f64_single_head()
    opts = {**rec.options, "c_error_bound": 3e-9}
    params = dict(rec.params)
    beta = 0.0
    if case == "beta":
        opts["beta_error_bound"] = 5e-10
        beta = -2.5
        params["beta"] = np.array(beta)
    biased = dataclasses.replace(rec, options=opts, params=params)
    Xs = _batch(rec.d, seed=6)
    got = cert._tolerances(biased, Xs) - cert._tolerances(rec, Xs)
    g = rec.options["answer_error_factor"]
    for b, X in enumerate(Xs):
        norms = [math.sqrt(sum(t * t for t in x)) for x in X]
        c = [sum(t * w for t, w in zip(x, rec.v, strict=True)) for x in X]
        want = (3e-9 * max(norms) * (max(c) - min(c)) + opts.get("beta_error_bound", 0.0)
                + 2 * g * abs(beta))
        assert got[b] == pytest.approx(want, rel=1e-9, abs=0)


def test_approximate_bound_is_its_docstring_formula_in_rationals() -> None:
    W = QQ.array([[Fraction(1, 2), -1], [0, Fraction(1, 3)]])
    rec = dataclasses.replace(
        _f64_single_head(2)[0], field=QQ, params={"W": W, "v": QQ.array([2, -3])},
        options={"W_frobenius_bound": "1/7", "v_bound": "2/9"})
    X = np.array([[Fraction(3), Fraction(-1, 2)], [Fraction(1, 5), Fraction(2)]], dtype=object)
    e_W, e_v = Fraction(1, 7), Fraction(2, 9)
    norms = [Fraction(int(r.p), int(r.q))
             for r in (sqrt_upper(sum(t * t for t in row)) for row in X)]
    for row, n in zip(X, norms, strict=True):   # 2-norm upper bounds within 9/8
        assert sum(t * t for t in row) <= n * n <= Fraction(81, 64) * sum(t * t for t in row)
    c = [2 * row[0] - 3 * row[1] for row in X]
    top = max(norms)
    want = e_v * top + e_W * top * norms[-1] * (max(c) - min(c) + 2 * e_v * top) / 2
    assert cert._approximate_bound(rec, QQ.array(X.tolist())) == fmpq(want.numerator,
                                                                        want.denominator)


def test_f64_replay_reports_the_first_bad_query_in_transcript_order() -> None:
    # queries of length 2, 1, 2: the replay runs one block per length (length 1 first), so
    # the first failure (#0, length 2) is found after #1's and must replace it
    W, v = np.array([[0.3, -1.2], [0.8, 0.1]]), np.array([-0.7, -0.4])
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    for X in ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]):
        oracle(np.array(X))
    rec, _ = _f64_single_head(2)
    bad_v = v + np.array([1e-6, 0.0])  # answers #0 and #1 move, #2 (v_1 only) does not
    rec = dataclasses.replace(rec, params={"W": W.copy(), "v": bad_v},
                              transcript=oracle.transcript)
    c = verify(rec, None)
    assert not c.holds and c.kind == "tolerance"
    assert (c.checked, c.replayed, c.fresh) == (1, 1, 0)  # up to and including #0
    f = c.first_failure
    assert f is not None and f.source == "transcript" and f.index == 0
    entry = oracle.transcript[0]
    assert np.array_equal(f.X, entry.X) and f.oracle_answer == float(entry.answer)
    model_answer = float(SingleHeadAttention(W, bad_v, field=F64)(entry.X))
    assert f.model_answer == model_answer
    tol = float(cert._answer_rounding(rec, entry.X[None].astype(float))[0])
    assert f.reason == (f"|difference| = {abs(model_answer - float(entry.answer)):.3e} > bound "
                        f"{tol:.3e}")
    assert verify(dataclasses.replace(rec, params={"W": W.copy(), "v": v.copy()}), None).holds


@contextlib.contextmanager
def _tolerance_equal_to_the_difference(
        label: str, oracle: ValueOracle,
        model: SingleHeadAttention) -> Iterator[Callable[[Recovery, np.ndarray], np.ndarray]]:
    """Register `label` with a float tolerance that is |model - oracle| itself (so <= passes
    and < would not); yields that tolerance and unregisters the label afterwards."""

    def exactly_the_difference(r: Recovery, Xs: np.ndarray) -> np.ndarray:
        ys = np.array([oracle._target(X) for X in Xs])
        out: np.ndarray = np.abs(model.batch(Xs) - ys)
        return out

    cert.register_model_builder(label, lambda r: model, float_tolerance=exactly_the_difference,
                                tolerance_text="the difference itself")
    try:
        yield exactly_the_difference
    finally:
        cert.MODEL_BUILDERS.pop(label, None)
        cert.FLOAT_TOLERANCES.pop(label, None)


def test_f64_replay_accepts_a_difference_equal_to_the_tolerance() -> None:
    # a registered tolerance that returns the difference itself: <= passes, < would not
    label = "mutation_kill_equal_tolerance"
    rec, oracle = _f64_single_head(2)
    model = SingleHeadAttention(rec.W * 1.001, rec.v, field=F64)
    with _tolerance_equal_to_the_difference(label, oracle, model) as exactly_the_difference:
        c = verify(dataclasses.replace(rec, label=label), None)
        assert c.holds and c.tolerance == "the difference itself"
        assert cert.FLOAT_TOLERANCES[label] == (exactly_the_difference, "the difference itself")


def test_register_model_builder_records_and_refuses_twice() -> None:
    label = "mutation_kill_registry"

    def builder(r: Recovery) -> Any:
        return None

    def tol(r: Recovery, Xs: np.ndarray) -> np.ndarray:
        return np.zeros(len(Xs))

    try:
        cert.register_model_builder(label, builder)
        assert cert.MODEL_BUILDERS[label] is builder and label not in cert.FLOAT_TOLERANCES
        with pytest.raises(ValueError, match=f"a model builder for {label} is already"):
            cert.register_model_builder(label, builder)
        cert.MODEL_BUILDERS.pop(label)
        cert.register_model_builder(label, builder, float_tolerance=tol)
        assert cert.FLOAT_TOLERANCES[label] == (tol, "")
    finally:
        cert.MODEL_BUILDERS.pop(label, None)
        cert.FLOAT_TOLERANCES.pop(label, None)


def test_certificate_text_and_json_of_each_verdict() -> None:
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    failure = cert.Failure("fresh", 3, X, 0.25, 0.5, "a reason")
    holds = cert.Certificate("lab", "tolerance", True, 5, 4, 1, None, "tau")
    fails = cert.Certificate("lab", "exact", False, 4, 0, 4, failure)
    empty = cert.Certificate("lab", "exact", False, 0, 0, 0, None)
    assert str(holds) == ("certificate (tolerance) for lab: holds; 5 queries checked "
                          "(4 replayed, 1 fresh), tolerance: tau")
    assert str(fails) == ("certificate (exact) for lab: FAILS at fresh query #3 (N = 2): oracle "
                          "0.25, model 0.5 (a reason); 4 queries checked (0 replayed, 4 fresh)")
    assert str(empty) == ("certificate (exact) for lab: NOTHING CHECKED, so it does not hold "
                          "(the transcript is empty and no fresh query was asked); 0 queries "
                          "checked (0 replayed, 0 fresh)")
    assert holds.to_json() == {
        "label": "lab", "kind": "tolerance", "holds": True, "verdict": "holds", "checked": 5,
        "replayed": 4, "fresh": 1, "tolerance": "tau", "first_failure": None}
    assert fails.to_json() == {
        "label": "lab", "kind": "exact", "holds": False, "verdict": "fails", "checked": 4,
        "replayed": 0, "fresh": 4, "tolerance": None, "first_failure": {
            "source": "fresh", "index": 3, "N": 2, "oracle_answer": "0.25",
            "model_answer": "0.5", "reason": "a reason"}}
    assert empty.to_json()["verdict"] == "nothing checked"


def test_answer_rounding_is_its_docstring_formula_query_by_query() -> None:
    rec, _ = _f64_single_head()
    Xs = _batch(rec.d, seed=7)
    got = cert._answer_rounding(rec, Xs)
    g = rec.options["answer_error_factor"]
    for b, X in enumerate(Xs):
        c = [sum(t * w for t, w in zip(x, rec.v, strict=True)) for x in X]
        scores = [sum(abs(x[k]) * abs(rec.W[k, m]) * abs(X[-1][m])
                      for k in range(rec.d) for m in range(rec.d)) for x in X]
        want = 2 * g * (sum(abs(w) for w in rec.v) * max(abs(t) for x in X for t in x)
                        + max(scores) * (max(c) - min(c)))
        assert got[b] == pytest.approx(want, rel=1e-12, abs=0)


def test_exp_repr_shows_the_denominator_exactly_when_there_is_one() -> None:
    # printing (e + 1)/(e^2 + 3) as "e + 1" would show a different number
    s = EXP.exp(EXP(1)) + 1
    q = s / (EXP.exp(EXP(2)) + 3)
    assert "/" not in repr(s) and repr(s) == str(s)
    assert "/" in repr(q)
    assert repr(EXP(Fraction(-2, 3))) == "-2/3"


def test_exp_inverse_of_a_constant_over_a_sum_is_scaled() -> None:
    # 1 / (2 / (1 + e^-1)) puts the single term 2 in the denominator: it must be divided
    # out, not dropped ((1 + e^-1) / 2, never 1 + e^-1)
    s = 1 + EXP.exp(EXP(-1))
    w = EXP(2) / s
    assert 1 / w == s / 2 and 1 / w != s
    assert (1 / w) * 2 == s and float(1 / w) == pytest.approx(float(s) / 2, rel=1e-15, abs=0)
    t = EXP(Fraction(3, 7)) / (EXP.exp(EXP(2)) + 5)
    assert 1 / t == (EXP.exp(EXP(2)) + 5) * Fraction(7, 3)


def test_exp_refuses_an_element_of_another_field_itself() -> None:
    # the EXP side names the mix; NotImplemented would hand the decision to the other
    # operand (a ball raises with its own message, another object would compare False)
    for other in (BALL(64)(1), MP(64)(1)):
        for op in (lambda a, b: a == b, lambda a, b: a + b, lambda a, b: a * b):
            with pytest.raises(IncompatibleFieldError, match="cannot mix an EXP element"):
                op(EXP(1), other)


# the approximate route (noisy recoveries): the bound checks of _check_certifiable and the
# exact comparison |f_hat(X) - y| <= bound + tau of verify
def _noisy_recovery() -> tuple[Recovery, Any]:
    from exactattn.learners import learn_single_head_noisy
    from exactattn.oracle import NoisyOracle

    head = SingleHeadAttention([[1, -1], [Fraction(1, 2), 0]], [Fraction(1, 2), Fraction(-1, 2)])
    oracle = NoisyOracle(head, tolerance=Fraction(1, 10**6), adversary="worst")
    rec = learn_single_head_noisy(oracle, epsilon_W=Fraction(1, 10), epsilon_v=Fraction(1, 10),
                                  W_bound=2, margin=Fraction(1, 2))
    return rec, oracle


def test_approximate_certificate_compares_exactly_against_bound_plus_tau() -> None:
    rec, oracle = _noisy_recovery()
    c = verify(rec, oracle, probes=3)
    assert c.holds and c.kind == "tolerance" and (c.replayed, c.fresh) == (6, 3)
    assert c.tolerance == ("the recovery's bounds (given its listed hypotheses) propagated to "
                           "the query, plus the oracle's tolerance; compared exactly in EXP")
    # the hidden (W, v) with bounds 0: every answer is within tau of it (the adversary
    # moves it by up to tau), so bound + tau = tau must accept it, a bound of 0 is checked
    # (not refused), and bound - tau or a missing tau would reject it
    truth = dataclasses.replace(rec, params={"W": QQ.array([[1, -1], [Fraction(1, 2), 0]]),
                                             "v": QQ.array([Fraction(1, 2), Fraction(-1, 2)])},
                                options={**rec.options, "W_frobenius_bound": "0", "v_bound": "0"})
    model = cert.rebuild(truth)
    gaps = [(abs(EXP(model(e.X)) - EXP(e.answer)), EXP(e.tolerance)) for e in rec.transcript]
    assert all(gap <= tau for gap, tau in gaps)
    assert any(gap == tau for gap, tau in gaps)  # the worst adversary: exactly tau
    assert verify(truth, None).holds
    # moving W far outside the bound fails on the transcript, decided exactly
    W = rec.W.copy()
    W[0, 0] = W[0, 0] + 10
    bad = verify(dataclasses.replace(rec, params={**rec.params, "W": W}), None)
    assert not bad.holds and bad.first_failure is not None
    f = bad.first_failure
    assert f.reason.endswith("(exact comparison)") and f.source == "transcript"
    entry = rec.transcript[f.index]
    assert np.array_equal(f.X, entry.X) and f.oracle_answer == entry.answer
    assert f.model_answer is not None and EXP(f.model_answer) != EXP(entry.answer)


@pytest.mark.parametrize("text", ["abc", "-1/2", "1e5", "1/0", None])
def test_approximate_bounds_that_are_not_plain_rationals_are_refused(text: Any) -> None:
    rec, _ = _noisy_recovery()
    bad = dataclasses.replace(rec, options={**rec.options, "v_bound": text})
    with pytest.raises(InvalidEntryError, match="v_bound = .* is not a rational >= 0"):
        verify(bad, None)


def test_a_ball_recovery_with_other_parameters_is_refused() -> None:
    head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 2]], [1, 3], field=EXP)
    oracle = enclosing_oracle(head, BALL(128))
    rec = learn_single_head(oracle, field=BALL(128))
    assert verify(rec, oracle, probes=2).holds
    extra = dataclasses.replace(rec, params={**rec.params, "beta": rec.v[:1]})
    with pytest.raises(InvalidEntryError, match="ball recoveries are certified by enclosure"):
        verify(extra, oracle)
    # a disjoint enclosure is a failure with the query and both balls
    W = rec.W.copy()
    W[0, 1] = W[0, 1] + BALL(128)(Fraction(1, 1000))
    c = verify(dataclasses.replace(rec, params={**rec.params, "W": W}), None)
    f = c.first_failure
    assert not c.holds and f is not None and f.source == "transcript"
    entry = rec.transcript[f.index]
    assert np.array_equal(f.X, entry.X) and f.oracle_answer is not None
    assert f.model_answer is not None and not f.model_answer.value.overlaps(f.oracle_answer.value)
    assert f.reason == "the recovered enclosure and the oracle's ball are disjoint (rigorous)"


def test_verify_kind_arguments_and_defaults() -> None:
    from exactattn.errors import ExactattnError
    from exactattn.learners import learn_biased_head
    from exactattn.models import BiasedSingleHeadAttention

    head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 2]], [1, 3], field=EXP)
    exact_oracle = ValueOracle(head)
    rec = learn_single_head(exact_oracle)
    c = verify(rec, exact_oracle)
    assert (c.kind, c.tolerance, c.fresh) == ("exact", None, 16)  # 16 fresh probes by default
    # reconstructed from balls: EXP parameters, ball answers: the kind is enclosure, with the
    # oracle and offline
    balls = enclosing_oracle(head, BALL(128))
    rec_b = learn_single_head(balls, field=BALL(128), max_denominator=4)
    assert rec_b.field == EXP
    assert verify(rec_b, balls, probes=2).kind == verify(rec_b, None).kind == "enclosure"
    with pytest.raises(IncompatibleFieldError, match="the oracle"):
        verify(rec, ValueOracle(SingleHeadAttention([[1.0, 0.5], [0.0, 2.0]], [1.0, 3.0],
                                                    field=F64)))
    for bad in ({"seed": "x"}, {"seed": True}, {"seed": -1}, {"probes": "x"}, {"probes": True},
                {"probes": 2.5}, {"probes": -1}):
        with pytest.raises(InvalidEntryError):
            verify(rec, exact_oracle, **bad)  # type: ignore[arg-type]
    # a float recovery that does not interpolate its transcript keeps the propagated estimate
    biased = BiasedSingleHeadAttention([[0.5, -0.2], [0.1, 0.3]], [0.2, -0.1], [1.0, -0.5], 0.25,
                                       field=F64)
    oracle_f = ValueOracle(biased)
    try:
        rec_f = learn_biased_head(oracle_f)
    except ExactattnError as exc:  # pragma: no cover - the instance is generic
        pytest.fail(f"the biased learner refused a generic head: {exc}")
    cf = verify(rec_f, oracle_f, probes=2)
    assert cf.holds and cf.tolerance is not None and not cf.tolerance.startswith("transcript:")


def test_rebuild_registers_the_later_builders_itself() -> None:
    # a fresh process that never imported exactattn.claims: rebuild imports it for a label
    # registered there (low_rank_adaptive), instead of calling it unknown
    import subprocess
    import sys

    code = ("import sys\n"
            "from exactattn.certificates import MODEL_BUILDERS, rebuild\n"
            "from exactattn.fields import EXP\n"
            "from exactattn.learners import learn_low_rank\n"
            "from exactattn.models import SingleHeadAttention\n"
            "from exactattn.oracle import ValueOracle\n"
            "assert 'exactattn.claims' not in sys.modules and 'low_rank_adaptive' not in "
            "MODEL_BUILDERS\n"
            "rec = learn_low_rank(ValueOracle(SingleHeadAttention([[1, 2], [2, 4]], [1, 1])), "
            "rank=1)\n"
            "print(type(rebuild(rec)).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "SingleHeadAttention"


# -- certificates.py, third pass: verify's records on each route, the counts of a
# certificate with one query, fresh probes compared with <=, and rebuild's import of the
# later builders exactly when a label is unknown

def _assert_transcript_failure(c: cert.Certificate, rec: Recovery, reason: str) -> cert.Failure:
    """A failure on the transcript: holds is False (not None), nothing fresh asked, and the
    record names the entry, its query, both answers and the reason."""
    assert c.holds is False and c.label == rec.label
    assert c.fresh == 0 and c.checked == c.replayed >= 1
    f = c.first_failure
    assert f is not None and f.source == "transcript" and f.reason == reason
    entry = rec.transcript[c.replayed - 1]  # the last entry replayed is the failing one
    assert f.index == entry.index and np.array_equal(f.X, entry.X)
    assert f.oracle_answer is entry.answer
    model = cert.rebuild(rec)
    assert f.model_answer is not None and f.model_answer == model(cert._exact_query(entry.X))
    return f


def test_verify_records_an_exact_failure() -> None:
    head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 2]], [1, 3], field=EXP)
    rec = learn_single_head(ValueOracle(head))
    W = rec.W.copy()
    W[0, 1] = W[0, 1] + Fraction(1, 1000)
    bad = dataclasses.replace(rec, params={**rec.params, "W": W})
    c = verify(bad, None)
    assert c.kind == "exact"
    _assert_transcript_failure(c, bad, "not equal (exact comparison)")


def test_verify_records_an_exact_value_outside_the_oracles_ball() -> None:
    head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 2]], [1, 3], field=EXP)
    rec = learn_single_head(enclosing_oracle(head, BALL(128)), field=BALL(128),
                            max_denominator=4)
    assert rec.field == EXP
    W = rec.W.copy()
    W[0, 1] = W[0, 1] + Fraction(1, 1000)
    bad = dataclasses.replace(rec, params={**rec.params, "W": W})
    c = verify(bad, None)
    assert c.kind == "enclosure"
    _assert_transcript_failure(c, bad, "the exact value is outside the ball")
    # an oracle ball that is not finite encloses everything: a failure, never a pass
    from exactattn.fields.precision import PrecisionElement

    e0 = rec.transcript[0]
    unbounded = PrecisionElement(arb(0, arb("inf")), e0.answer.field)
    assert not unbounded.value.is_finite()
    inf_rec = dataclasses.replace(rec, transcript=Transcript(
        rec.transcript.field, [dataclasses.replace(e0, answer=unbounded), *rec.transcript[1:]]))
    c = verify(inf_rec, None)
    f = _assert_transcript_failure(c, inf_rec, cert._UNBOUNDED_BALL)
    assert c.replayed == 1 and f.oracle_answer is unbounded


def test_verify_records_a_fresh_float_failure_and_counts_one_query() -> None:
    rec, oracle = _f64_single_head(2)
    empty = dataclasses.replace(rec, transcript=Transcript(F64))
    # one fresh query and nothing replayed: it is checked (probes = 1 is not 0), and a
    # certificate of one query holds
    c = verify(empty, oracle, probes=1)
    assert c.holds is True and (c.checked, c.replayed, c.fresh) == (1, 0, 1)
    assert c.label == rec.label
    # a wrong v fails on that fresh query, recorded with its query and both answers
    bad = dataclasses.replace(empty, params={**rec.params, "v": rec.v + 1e-3})
    c = verify(bad, oracle, probes=1)
    assert c.holds is False and (c.checked, c.replayed, c.fresh) == (1, 0, 1)
    f = c.first_failure
    assert f is not None and f.source == "fresh" and f.index == 0
    assert f.X is not None and f.X.shape[1] == rec.d
    assert f.oracle_answer == float(oracle._target(f.X))
    model_answer = float(SingleHeadAttention(rec.W, rec.v + 1e-3, field=F64)(f.X))
    assert f.model_answer == model_answer
    assert f.reason is not None and f.reason.startswith(
        f"|difference| = {abs(model_answer - f.oracle_answer):.3e} > bound ")


def test_fresh_float_probes_accept_a_difference_equal_to_the_tolerance() -> None:
    label = "mutation_kill_equal_tolerance_fresh"
    rec, oracle = _f64_single_head(2)
    model = SingleHeadAttention(rec.W * 1.001, rec.v, field=F64)
    with _tolerance_equal_to_the_difference(label, oracle, model):
        c = verify(dataclasses.replace(rec, label=label, transcript=Transcript(F64)), oracle,
                   probes=3)
        assert c.holds is True and (c.replayed, c.fresh) == (0, 3)


def test_failures_on_the_transcript_hold_false_and_ask_nothing_fresh() -> None:
    # the approximate route and the float64 replay: holds is False (not None), fresh = 0
    rec, oracle = _noisy_recovery()
    W = rec.W.copy()
    W[0, 0] = W[0, 0] + 10
    c = verify(dataclasses.replace(rec, params={**rec.params, "W": W}), oracle, probes=3)
    assert c.holds is False and c.fresh == 0 and c.checked == c.replayed >= 1
    rec64, oracle64 = _f64_single_head(2)
    c = verify(dataclasses.replace(rec64, params={**rec64.params, "v": rec64.v + 1e-3}),
               oracle64, probes=3)
    assert c.holds is False and c.fresh == 0 and c.checked == c.replayed >= 1
    assert c.label == rec64.label


def test_rebuild_imports_the_claims_exactly_when_the_label_is_unknown(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # in process: with exactattn.claims made unimportable, a known label must not try the
    # import (it is registered), an unknown one must (its builder may live there)
    import sys

    import exactattn

    head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 2]], [1, 3], field=EXP)
    rec = learn_single_head(ValueOracle(head))
    monkeypatch.delattr(exactattn, "claims", raising=False)
    monkeypatch.setitem(sys.modules, "exactattn.claims", None)
    assert type(cert.rebuild(rec)).__name__ == "SingleHeadAttention"
    with pytest.raises(ImportError):
        cert.rebuild(dataclasses.replace(rec, label="mutation_kill_no_such_label"))


def test_fresh_probes_of_an_approximate_recovery_use_the_oracles_tolerance() -> None:
    # the hidden (W, v) with bounds 0: the noisy oracle's fresh answers are off by up to tau
    # (exactly tau for the worst adversary), so the fresh comparison must add tau
    rec, noisy = _noisy_recovery()
    truth = dataclasses.replace(rec, params={"W": QQ.array([[1, -1], [Fraction(1, 2), 0]]),
                                             "v": QQ.array([Fraction(1, 2), Fraction(-1, 2)])},
                                options={**rec.options, "W_frobenius_bound": "0", "v_bound": "0"})
    empty = dataclasses.replace(truth, transcript=Transcript(rec.transcript.field))
    c = verify(empty, noisy, probes=4)
    assert c.holds is True and (c.replayed, c.fresh) == (0, 4)
    # v moved by (3, -3) with bounds 0: the fresh answers differ by far more than tau
    moved = dataclasses.replace(empty, params={**empty.params, "v": QQ.array(
        [Fraction(7, 2), Fraction(-7, 2)])})
    c = verify(moved, noisy, probes=4)
    assert c.holds is False and c.first_failure is not None
    f = c.first_failure
    assert f.source == "fresh" and f.index == c.fresh - 1


def test_fresh_probes_follow_the_seed() -> None:
    rec, oracle = _f64_single_head(2)
    bad = dataclasses.replace(rec, transcript=Transcript(F64),
                              params={**rec.params, "v": rec.v + 1e-3})
    fa, fb = verify(bad, oracle, probes=1, seed=3).first_failure, \
        verify(bad, oracle, probes=1, seed=3).first_failure
    fc = verify(bad, oracle, probes=1, seed=4).first_failure
    assert fa is not None and fb is not None and fc is not None
    assert np.array_equal(fa.X, fb.X) and not np.array_equal(fa.X, fc.X)


def test_exp_sums_print_their_terms() -> None:
    # _sum_str: a constant as itself, exp(q) without a coefficient 1, c*exp(q), "- " for a
    # negative term, "0" for the empty sum
    assert repr(EXP.exp(EXP(1))) == "exp(1)"
    assert repr(2 * EXP.exp(EXP(1)) - 3) == "2*exp(1) - 3"
    assert repr(EXP.exp(EXP(-1)) + 1) == "1 + exp(-1)"
    assert repr(1 / (EXP.exp(EXP(1)) + 1)) == "(exp(-1))/(1 + exp(-1))"
    assert ex._sum_str(()) == "0"
