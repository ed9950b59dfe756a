"""Near misses for every exact decision: inputs a float comparison would accept.

Each test builds a candidate that agrees with the truth to far below float64
resolution (2^-80, 10^-30, ...) and asserts that the exact decision rejects it,
next to the same decision accepting the truth. If an exact ``==`` were ever
replaced by a float comparison (or a tolerance), these tests fail. Each test
also shows that the near miss *is* one: converted to float64, the candidate
and the truth are indistinguishable.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from flint import fmpq

import exactattn.checks.low_rank  # noqa: F401  (registers the low-rank certificate builders)
import exactattn.checks.multihead  # noqa: F401  (registers the multi-head certificate builder)
from exactattn.certificates import verify
from exactattn.fields import EXP, F64, QQ
from exactattn.learners import learn_low_rank, learn_multihead, learn_single_head
from exactattn.learners.low_rank import exact_polish
from exactattn.learners.recovery import Recovery
from exactattn.models import MultiHeadAttention, SingleHeadAttention
from exactattn.models.multihead import equivalent
from exactattn.oracle import ValueOracle
from tests.helpers import e

TINY = Fraction(1, 2**80)       # below float64 resolution of 1 (2^-52) by 28 bits
TINIER = Fraction(1, 10**30)


def _with_params(rec: Recovery, **params: object) -> Recovery:
    """The same recovery (transcript included) with some parameters replaced."""
    return dataclasses.replace(rec, params={**rec.params, **params})


def test_float_cannot_see_the_perturbations() -> None:
    assert float(Fraction(3, 7) + TINY) == float(Fraction(3, 7))
    assert float(Fraction(-2) + TINIER) == float(Fraction(-2))


# -- certificates (single head, exact kind) -----------------------------------------------
@pytest.mark.parametrize("entry", [(0, 0), (1, 0), (1, 1)])
def test_certificate_rejects_W_off_by_2_to_minus_80(entry: tuple[int, int]) -> None:
    head = SingleHeadAttention([[Fraction(3, 7), -2], [1, Fraction(1, 5)]], [1, Fraction(-1, 3)],
                               field=EXP)
    oracle = ValueOracle(head)
    rec = learn_single_head(oracle)
    assert verify(rec, oracle, probes=4).holds
    W = rec.W.copy()
    W[entry] = W[entry] + EXP(TINY)
    assert float(EXP.to_rational(W[entry])) == float(EXP.to_rational(rec.W[entry]))
    cert = verify(_with_params(rec, W=W), oracle, probes=4)
    assert not cert.holds and cert.kind == "exact"
    assert cert.first_failure is not None
    assert "not equal (exact comparison)" in cert.first_failure.reason


def test_certificate_rejects_v_off_by_2_to_minus_80() -> None:
    head = SingleHeadAttention([[1, 0], [0, 1]], [Fraction(1, 3), 2], field=EXP)
    oracle = ValueOracle(head)
    rec = learn_single_head(oracle)
    v = rec.v.copy()
    v[1] = v[1] - EXP(TINY)
    cert = verify(_with_params(rec, v=v), oracle, probes=0)  # the replay alone decides
    assert not cert.holds and cert.first_failure is not None
    assert cert.first_failure.source == "transcript"


# -- multi-head: exact equivalence and the learner's certificate ----------------------------
def _two_heads(shift: Fraction = Fraction(0)) -> MultiHeadAttention:
    return MultiHeadAttention([
        ([[1, Fraction(1, 2)], [0, -1]], [1, 0]),
        ([[Fraction(2, 3) + shift, 0], [1, 1]], [0, Fraction(1, 2)]),
    ])


def test_multihead_equivalence_rejects_a_candidate_agreeing_to_1e_30() -> None:
    f, g = _two_heads(), _two_heads(TINIER)
    assert bool(equivalent(f, _two_heads()))
    result = equivalent(f, g)
    assert not result and result.witness is not None and result.answers is not None
    y1, y2 = result.answers
    assert y1 != y2 and f(result.witness) == y1 and g(result.witness) == y2
    # the two answers agree in float64: only the exact comparison separates them
    assert abs(float(EXP.to_arb(y1, 64).mid()) - float(EXP.to_arb(y2, 64).mid())) < 1e-15


def test_multihead_certificate_rejects_a_head_off_by_1e_30() -> None:
    f = _two_heads()
    oracle = ValueOracle(f)
    rec = learn_multihead(oracle, heads=2)
    assert verify(rec, oracle, probes=4).holds
    W = rec.params["W"].copy()
    W[0, 0, 0] = W[0, 0, 0] + EXP(TINIER)
    cert = verify(_with_params(rec, W=W), oracle, probes=4)
    assert not cert.holds and cert.kind == "exact"


# -- low rank: the exact polish -------------------------------------------------------------
def _rank_one_measurements(m: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    u = [Fraction(int(x), 4) for x in rng.integers(-8, 9, 3)]
    w = [Fraction(int(x), 3) for x in rng.integers(-6, 7, 3)]
    W = QQ.array([[a * b for b in w] for a in u])
    A = QQ.array(rng.integers(-3, 4, (m, 3)).astype(object))
    B = QQ.array(rng.integers(-3, 4, (m, 3)).astype(object))
    t = np.array([a @ W @ b for a, b in zip(A, B, strict=True)], dtype=object)
    return W, A, B, t


def test_polish_rejects_a_measurement_missed_by_2_to_minus_80() -> None:
    W, A, B, t = _rank_one_measurements()
    W_float = np.array([[float(QQ.to_rational(x)) for x in row] for row in W])
    Wq, info = exact_polish(QQ, W_float, A, B, t, 1)
    assert Wq is not None and all(bool(a == b) for a, b in zip(Wq.flat, W.flat, strict=True))
    k = next(k for k in range(len(t)) if QQ.sign(t[k]) != 0)
    bad = t.copy()
    bad[k] = bad[k] + QQ(TINY) * bad[k]
    assert float(QQ.to_rational(bad[k])) == float(QQ.to_rational(t[k]))
    Wq_bad, info_bad = exact_polish(QQ, W_float, A, B, bad, 1)
    # the float gate passes (the residual is far below 1e-9), the exact fit does not
    assert info_bad["relative_residual"] < 1e-12
    assert Wq_bad is None and "fits every measurement exactly" in info_bad["reason"]


def test_low_rank_certificate_rejects_W_off_by_2_to_minus_80() -> None:
    head = SingleHeadAttention([[1, 2, 0], [2, 4, 0], [0, 0, 0]], [1, 0, -1], field=EXP)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=1)
    assert verify(rec, oracle, probes=4).holds
    W = rec.W.copy()
    W[2, 2] = W[2, 2] + EXP(TINY)
    assert not verify(_with_params(rec, W=W), oracle, probes=4).holds


# -- the exponential field itself ------------------------------------------------------------
def test_exp_drops_zero_coefficients() -> None:
    x = 2 * e(Fraction(1, 3)) - e(Fraction(1, 3)) - e(Fraction(1, 3))
    assert x == 0 and EXP.sign(x) == 0 and EXP.is_rational(x)
    assert str(x) == "0" and x.terms() == 1
    # a sum that cancels only in part keeps the rest, exactly
    y = e(1) + e(2) - e(1)
    assert y == e(2) and str(y) == str(e(2))


def test_exp_separates_what_floats_cannot() -> None:
    q = Fraction(1, 2**80)
    x = e(q) - 1                 # e^(2^-80) - 1 ~ 8e-25 > 0
    assert x != 0 and EXP.sign(x) == 1 and EXP.sign(-x) == -1
    assert float(EXP.to_arb(e(q), 64).mid()) == 1.0
    # two different quotients that agree to ~1e-48
    a = (e(1) + 1) / (e(1) - 1)
    b = a + EXP(TINY) * EXP(TINY)
    assert a != b and EXP.sign(b - a) == 1


def test_exp_equality_is_not_float_equality_for_rationals() -> None:
    a = EXP(Fraction(1, 3))
    assert a != EXP(Fraction(1, 3) + TINY)
    assert EXP(fmpq(1, 3)) == a


# -- certificates (single head, tolerance kind: F64) ------------------------------------------
@pytest.mark.parametrize("d", [8, 64])
def test_f64_certificate_accepts_honest_and_rejects_W_off_by_1e_9(d: int) -> None:
    # the replay tolerance is the float64 rounding of the answers (the recovery interpolates
    # its transcript), not the learner's ||W error||_F estimate carried to the query: with
    # that, d = 64 accepted a W off by 1e-7 (relative) and rejected from 1e-6 only
    rng = np.random.default_rng(d)
    W, v = rng.standard_normal((d, d)), rng.standard_normal(d)
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    rec = learn_single_head(oracle, field=F64)
    honest = verify(rec, oracle, probes=4)
    assert honest.holds and honest.kind == "tolerance"
    assert "rounding of the two evaluations" in (honest.tolerance or "")
    E = rng.standard_normal((d, d))
    for W_bad in (rec.W * (1 + 1e-9), rec.W + E * (1e-9 * np.linalg.norm(W) / np.linalg.norm(E))):
        assert np.linalg.norm(W_bad - rec.W) <= 1.01e-9 * np.linalg.norm(rec.W)
        cert = verify(_with_params(rec, W=W_bad), oracle, probes=4)
        assert not cert.holds and cert.first_failure is not None
        assert cert.first_failure.source == "transcript"
        assert "> bound" in cert.first_failure.reason
