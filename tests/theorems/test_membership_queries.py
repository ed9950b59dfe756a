"""membership_queries: W exactly and v up to a positive scale, from sign labels.

Our own result (the paper's v2 appendix statement is unknown; Part II). This
file holds, as docs/style.md asks: a worked example with literal numbers; a
property test of exact recovery; the query count against its closed form;
the counting lower bound; certificates that hold and reject a head one unit
of 1/Q off; instances that violate the hypotheses (v = 0, a ratio of too
large a denominator, labels no head gives) with clear errors; bad input; the
SignOracle itself, with a near miss that float64 gets wrong.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from flint import arb, fmpq
from hypothesis import given
from hypothesis import strategies as st

from exactattn.certificates import rebuild, verify
from exactattn.checks.membership_queries import (
    SignModel,
    membership_instance,
    off_by_one_unit,
)
from exactattn.errors import (
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64
from exactattn.learners import learn_single_head_membership
from exactattn.learners.membership import (
    LABEL,
    bisection_steps,
    height_class_size,
    lower_bound,
    query_count,
)
from exactattn.learners.recovery import Recovery
from exactattn.models import SingleHeadAttention
from exactattn.oracle import SignOracle, Transcript, ValueOracle
from tests.helpers import same

F = Fraction

# -- worked example, d = 2, height (M, Q) = (4, 2) ----------------------------------------
# W = [[1, -1/2], [0, 3]], v = [2, -4]: labels of [e_0], [e_1] are +1, -1; pivot p = 0;
# r_1 = v_1 / v_0 = -2 in [-4, 0). eta = 1/(1024 * 4) = 1/4096, so the first ratio cut
# is the odd dyadic next to the middle -2: c = -32767/16384, the query [e_1 - c e_0] =
# [32767/16384, 1], and its label sign(2 * 32767/16384 - 4) = sign(-1/8192) = -1.
W_EX = [[1, F(-1, 2)], [0, 3]]
V_EX = [2, -4]
M_EX, Q_EX = 4, 2


def example() -> tuple[SignOracle, Recovery]:
    oracle = SignOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    return oracle, learn_single_head_membership(oracle, max_abs=M_EX, max_denominator=Q_EX)


def test_worked_example_first_labels() -> None:
    _, rec = example()
    t = rec.transcript
    assert [e.phase for e in t[:3]] == ["v signs", "v signs", "v ratios"]
    assert same(t[0].X, [[1, 0]]) and t[0].answer == 1
    assert same(t[1].X, [[0, 1]]) and t[1].answer == -1
    assert same(t[2].X, [[F(32767, 16384), 1]]) and t[2].answer == -1
    # every answer is a label, never a value
    assert {int(EXP.to_rational(e.answer)) for e in t} <= {-1, 0, 1}


def test_worked_example_first_W_query() -> None:
    # entry (0, 0): u = e_0 (u.v = 2 > 0), z = -e_0 (z.v = -2 < 0, sigma = -1), kappa = 0;
    # the query is [(lambda - 1/lambda) e_0; lambda e_0] with lambda^2 ~ 1/2 (the cut at
    # the middle 0 of [-4, 4]); g = z^T W u = -W_00 = -1 < logit(lambda^2) ~ 0: label +1
    _, rec = example()
    first_W = next(e for e in rec.transcript if e.phase == "W")
    X = first_W.X
    lam = X[1, 0]
    assert X[0, 1] == 0 and X[1, 1] == 0
    assert X[0, 0] == lam - 1 / lam
    assert abs(float(lam * lam) - 0.5) < 1e-6
    # the cut -logit(A), A = lambda^2 |u.v| / |z.v| = lambda^2, is within eta = 1/(1024 Q^2)
    # of the middle 0, decided with arb balls (the learner's own criterion)
    A = arb(EXP.to_rational(lam * lam))
    assert bool(abs((A / (1 - A)).log()) < arb(fmpq(1, 1024 * Q_EX**2)))
    assert first_W.answer == 1


def test_worked_example_recovery() -> None:
    oracle, rec = example()
    assert rec.label == LABEL == "membership_queries"
    assert same(rec.W, W_EX)
    assert same(rec.v, [1, -2])  # v / |v_0| = [2, -4] / 2: v only up to a positive scale
    assert rec.options["pivot"] == 0 and rec.options["v_normalisation"] == "v / |v_0|"
    assert rec.status == "exact_given"
    assert any("|W_ij| <= 4 and denominator <= 2" in h for h in rec.hypotheses)
    assert any("positive scale" in h and "v / |v_0|" in h for h in rec.hypotheses)
    # 2 sign labels + 1 ratio * L(4) + 4 entries * L(8), L from the closed form
    assert bisection_steps(4, 2) == 5 and bisection_steps(8, 2) == 6
    assert rec.queries == oracle.queries == 2 + 5 + 4 * 6 == query_count(2, 2, M_EX, Q_EX)
    assert dict(rec.queries_by_phase) == {"v signs": 2, "v ratios": 5, "W": 24}
    cert = verify(rec, oracle, probes=6)
    assert cert.holds and cert.kind == "exact" and cert.replayed == 31 and cert.fresh == 6


def test_regression_cut_at_logit_one_half_gives_no_zero_label() -> None:
    # W_10 = 0 with kappa = 0: the first cut (middle 0) asks for logit(A) = 0, i.e.
    # A = 1/2, which a rational lambda can reach exactly when |u.v| / |z.v| is twice a
    # square (here 1/2 = lambda^2 * 2 with lambda = 1/2). Then g = 0 = logit(A), the label
    # was 0 and the learner refused a genuine head. It now moves lambda off A = 1/2.
    oracle = SignOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    rec = learn_single_head_membership(oracle, max_abs=M_EX, max_denominator=Q_EX)
    assert rec.W[1, 0] == 0
    assert all(e.answer != 0 for e in rec.transcript)


# -- property test of exact recovery ------------------------------------------------------
@st.composite
def heads(draw: Any) -> tuple[list[Any], list[Any], int]:
    """(W, v, p): W of height (5, 6), v = s r with r_p = 1, r of height (5, 6), zeros in v."""
    d = draw(st.integers(1, 3))
    h = st.fractions(min_value=-5, max_value=5, max_denominator=6)
    W = draw(st.lists(st.lists(h, min_size=d, max_size=d), min_size=d, max_size=d))
    p = draw(st.integers(0, d - 1))
    r = [F(0)] * p + [F(1)] + draw(st.lists(h, min_size=d - p - 1, max_size=d - p - 1))
    scale = draw(h.filter(lambda x: x != 0))
    return W, [scale * x for x in r], p


@given(heads())
def test_exact_recovery_property(head: tuple[list[Any], list[Any], int]) -> None:
    W, v, p = head
    d = len(v)
    oracle = SignOracle(SingleHeadAttention(W, v, field=EXP))
    rec = learn_single_head_membership(oracle, max_abs=5, max_denominator=6)
    assert same(rec.W, W)
    assert same(rec.v, [x / abs(v[p]) for x in v])
    assert rec.options["pivot"] == p
    n_v = sum(1 for x in v if x != 0)
    assert rec.queries == oracle.queries == query_count(d, n_v, 5, 6)
    assert verify(rec, oracle, probes=2).holds


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_large_heights(zeros: int) -> None:
    inst = membership_instance(3, 5, max_abs=1000, max_denominator=10**6, zeros_in_v=zeros)
    oracle = SignOracle(inst.model)
    rec = learn_single_head_membership(oracle, max_abs=1000, max_denominator=10**6)
    assert same(rec.W, inst.model.W)
    assert same(rec.v, inst.model.v / abs(inst.model.v[inst.pivot]))
    assert rec.queries == query_count(3, 3 - zeros, 1000, 10**6)


def test_separate_ratio_bound() -> None:
    # v entries of height (3, 4) give ratios of height (12, 16): say so with ratio_bound
    W = [[F(1, 4), -3], [2, F(-3, 4)]]
    v = [F(3, 4), F(-1, 3)]  # v_1 / v_0 = -4/9
    oracle = SignOracle(SingleHeadAttention(W, v, field=EXP))
    rec = learn_single_head_membership(oracle, max_abs=3, max_denominator=4,
                                       ratio_bound=(12, 16))
    assert same(rec.W, W) and same(rec.v, [1, F(-4, 9)])
    assert rec.queries == query_count(2, 2, 3, 4, ratio_bound=(12, 16))
    assert rec.queries_by_phase["v ratios"] == bisection_steps(12, 16)


# -- query count and lower bound ----------------------------------------------------------
@pytest.mark.parametrize("Q", [1, 3, 7, 1000, 10**6])
@pytest.mark.parametrize("w", [1, 2, 5, 18, 2000])
def test_bisection_steps_is_the_least_sufficient(w: int, Q: int) -> None:
    L = bisection_steps(w, Q)
    eta2 = F(2, 1024 * Q * Q)
    assert F(w, 2**L) + eta2 < F(1, Q * Q)
    assert L == 0 or F(w, 2 ** (L - 1)) + eta2 >= F(1, Q * Q)


def test_query_count_closed_form() -> None:
    assert query_count(4, 3, 10, 1000) == 4 + 2 * 24 + 16 * 25 == 452
    assert query_count(1, 1, 1, 1) == 1 + bisection_steps(2, 1)
    with pytest.raises(InvalidEntryError, match="nonzero_v"):
        query_count(3, 0, 1, 1)


@pytest.mark.parametrize(("M", "Q"), [(1, 1), (1, 2), (2, 5), (3, 12)])
def test_height_class_size_by_enumeration(M: int, Q: int) -> None:
    brute = {F(p, q) for q in range(1, Q + 1) for p in range(-M * q, M * q + 1)}
    assert height_class_size(M, Q) == len(brute)


def test_lower_bound() -> None:
    # F(1, 1) = 3: for d = 1 the class has 3 heads (one ray of v), one ternary label
    assert lower_bound(1, 1, 1) == 1 and lower_bound(1, 1, 1, answers=2) == 2
    k, Fq = 4 + 2 - 1, height_class_size(7, 10)
    q = lower_bound(2, 7, 10)
    assert 3**q >= Fq**k > 3 ** (q - 1)
    for d in (1, 2, 3):
        assert lower_bound(d, 7, 10) <= query_count(d, d, 7, 10)
        # the least q with 3^q >= F^(d^2 + d - 1), in integers
        q, N = lower_bound(d, 7, 10), Fq ** (d * d + d - 1)
        assert 3**q >= N > 3 ** (q - 1)
    inst = membership_instance(3, 0, max_abs=9, max_denominator=8)
    rec = learn_single_head_membership(SignOracle(inst.model), max_abs=9, max_denominator=8)
    assert lower_bound(3, 9, 8) <= lower_bound(3, 9, 8, answers=2) <= rec.queries


# -- certificates ---------------------------------------------------------------------------
@pytest.mark.parametrize("entry", [("W", 0, 0), ("W", 0, 1), ("W", 1, 0), ("W", 1, 1),
                                   ("v", 1, 0)])
def test_certificate_rejects_one_unit_off(entry: tuple[str, int, int]) -> None:
    oracle, rec = example()
    bad = off_by_one_unit(rec, entry, Q_EX, M_EX)
    assert not (same(bad.W, rec.W) and same(bad.v, rec.v))
    cert = verify(bad, oracle, probes=0)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "transcript"


def test_certificate_fresh_labels_reject_a_flipped_v() -> None:
    oracle, rec = example()
    flipped = dataclasses.replace(rec, params={"W": rec.W.copy(), "v": -rec.v},
                                  transcript=Transcript(EXP))
    cert = verify(flipped, oracle, probes=8)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


def test_sign_model_replays_labels() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    model = SignModel(head)
    X = EXP.array([[1, 2], [F(-1, 3), 1]])
    assert model(X) == EXP.sign(head(X)) == SignOracle(head)(X)


# -- hypotheses violated and labels no head gives ----------------------------------------------
@pytest.mark.parametrize("d", [1, 3])
def test_v_zero_is_not_identifiable(d: int) -> None:
    oracle = SignOracle(membership_instance(d, 0, v_zero=True).model)
    with pytest.raises(NotIdentifiableError, match="v = 0") as info:
        learn_single_head_membership(oracle, max_abs=9, max_denominator=8)
    assert oracle.queries_by_phase == {"v signs": d}
    assert all(x == 0 for x in info.value.recovered["v"])


def test_ratio_of_too_large_a_denominator_is_named() -> None:
    # v_1 / v_0 = -32767/16384 is exactly the first cut (denominator 16384 > Q = 2)
    head = SingleHeadAttention(W_EX, [2, 2 * F(-32767, 16384)], field=EXP)
    with pytest.raises(RecoveryFailedError, match=r"query #2: label 0 says v_1 / v_0 = "
                                                  r"-32767/16384"):
        learn_single_head_membership(SignOracle(head), max_abs=M_EX, max_denominator=Q_EX)


def test_entry_outside_the_height_class_is_named() -> None:
    # W_00 = 1/3 has denominator 3 > Q = 2: its final interval holds no rational of
    # denominator <= 2; the error names the entry, the interval and the queries
    head = SingleHeadAttention([[F(1, 3), 0], [0, 1]], [1, 1], field=EXP)
    with pytest.raises(RecoveryFailedError,
                       match=r"W\[0\]\[0\]: the labels of queries #7\.\.#12 put it in") as info:
        learn_single_head_membership(SignOracle(head), max_abs=4, max_denominator=2)
    assert "denominator <= 2" in str(info.value)


def test_zero_label_on_a_W_query_is_named() -> None:
    v = EXP.array([1, 2])

    def not_a_head(X: Any) -> Any:  # a head on one token, 0 on two
        return X[0] @ v if X.shape[0] == 1 else EXP(0)

    oracle = SignOracle(not_a_head, field=EXP, d=2)
    with pytest.raises(RecoveryFailedError, match=r"query #\d+ \(W\[0\]\[0\]\): label 0"):
        learn_single_head_membership(oracle, max_abs=3, max_denominator=3)


def test_constant_labels_are_caught_by_the_certificate() -> None:
    # +1 everywhere: the learner ends at the edge of the class, and a fresh label rejects it
    oracle = SignOracle(lambda X: EXP(1), field=EXP, d=2)
    rec = learn_single_head_membership(oracle, max_abs=3, max_denominator=3)
    cert = verify(rec, oracle, probes=16)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


def test_budget_one_short() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    budget = query_count(2, 2, M_EX, Q_EX) - 1
    with pytest.raises(QueryBudgetExceededError, match=f"budget of {budget} exceeded"):
        learn_single_head_membership(SignOracle(head, budget=budget), max_abs=M_EX,
                                     max_denominator=Q_EX)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "3", None])
@pytest.mark.parametrize("name", ["max_abs", "max_denominator"])
def test_height_bound_must_be_a_positive_integer(name: str, bad: Any) -> None:
    oracle = SignOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    kwargs: dict[str, Any] = {"max_abs": 4, "max_denominator": 2, name: bad}
    # max_denominator=None means "no height bound": then epsilon= is required
    match = ("exactly one of" if (name, bad) == ("max_denominator", None)
             else f"{name} must be a positive integer")
    with pytest.raises(InvalidEntryError, match=match):
        learn_single_head_membership(oracle, **kwargs)
    assert oracle.queries == 0


@pytest.mark.parametrize("bad", [(0, 3), (3,), "12/16", (2, 1.5)])
def test_ratio_bound_must_be_a_pair_of_positive_integers(bad: Any) -> None:
    oracle = SignOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    with pytest.raises(InvalidEntryError, match="ratio_bound"):
        learn_single_head_membership(oracle, max_abs=4, max_denominator=2, ratio_bound=bad)


@pytest.mark.parametrize("bad", ["abc", None, True, float("nan"), 0.5, [1]])
def test_threshold_must_be_a_number_of_the_field(bad: Any) -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    with pytest.raises(InvalidEntryError, match="threshold of a SignOracle over EXP"):
        SignOracle(head, threshold=bad)


@pytest.mark.parametrize("bad", ["abc", None, True, float("nan"), float("inf")])
def test_threshold_must_be_a_finite_float_over_f64(bad: Any) -> None:
    head = SingleHeadAttention([[1.0]], [1.0], field=F64)
    with pytest.raises(InvalidEntryError, match="threshold of a SignOracle over F64"):
        SignOracle(head, threshold=bad)


def test_learner_needs_labels_threshold_zero_and_exp() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    with pytest.raises(InvalidEntryError, match="needs a SignOracle"):
        learn_single_head_membership(ValueOracle(head), max_abs=4,  # type: ignore[arg-type]
                                     max_denominator=2)
    with pytest.raises(HypothesisViolatedError, match="threshold is 1/2"):
        learn_single_head_membership(SignOracle(head, threshold=F(1, 2)), max_abs=4,
                                     max_denominator=2)
    f64 = SingleHeadAttention([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0], field=F64)
    with pytest.raises(IncompatibleFieldError, match="needs labels computed in EXP"):
        learn_single_head_membership(SignOracle(f64), max_abs=4, max_denominator=2)


# -- the SignOracle ------------------------------------------------------------------------------
def test_sign_oracle_counts_transcribes_and_forks() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    oracle = SignOracle(head, threshold=1)
    assert oracle([[1, 0]], phase="a") == 1      # f = 2 > 1
    assert oracle([[F(1, 2), 0]], phase="a") == 0  # f = 1 = threshold
    labels = oracle.batch([[[0, 1]], [[0, -1]]], phase="b")  # f = -4, 4
    assert list(labels) == [-1, 1]
    assert oracle.queries == 4 and oracle.queries_by_phase == {"a": 2, "b": 2}
    assert [e.answer for e in oracle.transcript] == [1, 0, -1, 1]
    fork = oracle.fork("c")
    assert isinstance(fork, SignOracle) and fork.threshold == 1 and fork.queries == 0
    assert fork([[F(1, 2), 0]]) == 0


def test_sign_oracle_near_miss_float_gets_wrong() -> None:
    # f = e^(10^-20) - 1 > 0 is exact in EXP; in float64 it rounds to 0
    def tiny(X: Any) -> Any:
        return EXP.exp(EXP(F(1, 10**20))) - 1

    assert SignOracle(tiny, field=EXP, d=1)([[1]]) == 1
    assert float(np.exp(1e-20) - 1.0) == 0.0
    # the same function evaluated in float64: the F64 sign oracle answers the wrong label 0
    assert SignOracle(lambda X: np.exp(1e-20 * X[0, 0]) - 1.0, field=F64, d=1)([[1.0]]) == 0


def test_recovery_json_round_trip(tmp_path: Any) -> None:
    oracle, rec = example()
    back = Recovery.from_json(json.loads(json.dumps(rec.to_json())))
    assert same(back.W, rec.W) and same(back.v, rec.v)
    assert back.hypotheses == rec.hypotheses and back.status == "exact_given"
    assert verify(back, oracle, probes=2).holds
    bad = off_by_one_unit(back, ("W", 1, 1), Q_EX, M_EX)
    assert verify(bad, oracle, probes=0).holds is False


# -- the approximate route: intervals of width <= epsilon, no height bound -----------------
def _huge_height_head(d: int, seed: int) -> tuple[list[Any], list[Any]]:
    """|W_ij| <= 3, |v_i / v_0| <= 3, denominators around 10^30 (no useful height bound)."""
    rng = np.random.default_rng(seed)

    def entry() -> Fraction:
        return F(int(rng.integers(-2 * 10**6, 2 * 10**6)), 10**6) + F(1, 10**30 + seed)

    W = [[entry() for _ in range(d)] for _ in range(d)]
    v = [F(7, 5)] + [F(7, 5) * entry() for _ in range(d - 1)]
    if d > 2:
        v[1] = F(0)
    return W, v


@pytest.mark.parametrize(("d", "seed"), [(1, 0), (2, 1), (3, 2)])
def test_interval_route_contains_the_truth_within_epsilon(d: int, seed: int) -> None:
    from exactattn.learners.membership import interval_steps

    W, v = _huge_height_head(d, seed)
    eps = F(1, 1000)
    oracle = SignOracle(SingleHeadAttention(W, v, field=EXP))
    rec = learn_single_head_membership(oracle, max_abs=3, epsilon=eps)
    assert rec.status == "approximate" and rec.approximate
    assert any("epsilon = 1/1000" in h for h in rec.hypotheses)
    assert rec.queries_by_phase["W"] == d * d * interval_steps(3, eps) == d * d * 18
    for i in range(d):
        for j in range(d):
            lo, hi = (F(s) for s in rec.options["W_intervals"][i][j])
            assert lo <= W[i][j] <= hi and hi - lo <= eps
            assert lo <= F(str(EXP.to_rational(rec.W[i, j]))) <= hi
        lo, hi = (F(s) for s in rec.options["v_intervals"][i])
        assert lo <= v[i] / abs(v[0]) <= hi


def test_near_miss_outside_the_height_class() -> None:
    # W_00 = 1/3 + 10^-30 is not of height (1, 1000); float64 cannot tell it from 1/3.
    # The exact route returns 1/3 under its named hypothesis (exact_given: no label can
    # confirm a height bound), and == tells it from the truth; the interval route returns
    # an interval that holds the truth.
    w = F(1, 3) + F(1, 10**30)
    assert float(w) == float(F(1, 3))
    head = SingleHeadAttention([[w]], [1], field=EXP)
    rec = learn_single_head_membership(SignOracle(head), max_abs=1, max_denominator=1000)
    assert rec.W[0, 0] == F(1, 3) and rec.W[0, 0] != w
    assert rec.status == "exact_given" and "denominator <= 1000" in rec.hypotheses[0]
    approx = learn_single_head_membership(SignOracle(head), max_abs=1, epsilon=F(1, 10**6))
    lo, hi = (F(s) for s in approx.options["W_intervals"][0][0])
    assert lo <= w <= hi and hi - lo <= F(1, 10**6)


def test_interval_route_is_not_certified_as_exact() -> None:
    W, v = _huge_height_head(2, 4)
    oracle = SignOracle(SingleHeadAttention(W, v, field=EXP))
    rec = learn_single_head_membership(oracle, max_abs=3, epsilon=F(1, 10))
    # refused (by the bounds check, or by the label model), never replayed as exact
    with pytest.raises(InvalidEntryError, match="W_frobenius_bound|not certified by replaying"):
        verify(rec, oracle)
    # verify stops at the missing bounds; the label model itself refuses with the reason
    with pytest.raises(InvalidEntryError, match="not certified by replaying labels"):
        rebuild(rec)


@pytest.mark.parametrize("bad", [0, F(-1, 2), "0.1", 0.1, None])
def test_epsilon_must_be_a_positive_rational(bad: Any) -> None:
    oracle = SignOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    kwargs: dict[str, Any] = {"max_abs": 4, "epsilon": bad}
    match = "exactly one of" if bad is None else "epsilon must be a positive rational"
    with pytest.raises(InvalidEntryError, match=match):
        learn_single_head_membership(oracle, **kwargs)
    with pytest.raises(InvalidEntryError, match="exactly one of"):
        learn_single_head_membership(oracle, max_abs=4, max_denominator=2, epsilon=F(1, 10))


# -- command line ------------------------------------------------------------------------------
def test_cli_learn_membership_queries(capsys: Any) -> None:
    from exactattn.cli import main

    assert main(["learn", "membership_queries", "--d", "4", "--seed", "0", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["label"] == "membership_queries" and info["matches_truth"] is True
    assert info["queries"] == info["expected_queries"] == 200
    assert info["status"] == "exact_given" and info["certificate"]["holds"] is True


# -- the interval route over float64 labels -------------------------------------------------
@pytest.mark.parametrize(("d", "seed"), [(2, 0), (3, 1), (5, 2)])
def test_f64_interval_route_contains_the_truth(d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    W, v = rng.uniform(-2, 2, (d, d)), rng.uniform(-2, 2, d)
    v[0] = -1.3
    if d > 2:
        v[1] = 0.0  # a zero coordinate: kappa terms and the pivot column are exercised
    eps = F(1, 1000)
    oracle = SignOracle(SingleHeadAttention(W, v, field=F64))
    rec = learn_single_head_membership(oracle, max_abs=3, epsilon=eps)
    assert rec.status == "approximate" and rec.options["labels"] == "F64"
    assert any(h.startswith("float64 labels") for h in rec.hypotheses)
    # the float-error model is named as an assumption (both of its terms), not as a bound
    assert any("not a proved bound" in h and "scores within" in h for h in rec.hypotheses)
    assert rec.queries == oracle.queries
    for i in range(d):
        for j in range(d):
            lo, hi = (F(s) for s in rec.options["W_intervals"][i][j])
            assert lo <= F(W[i, j]) <= hi and hi - lo <= eps
        lo, hi = (F(s) for s in rec.options["v_intervals"][i])
        assert lo <= F(v[i]) / F(1.3) <= hi  # v / |v_0|, exactly in rationals


def test_f64_exact_route_is_refused() -> None:
    head = SingleHeadAttention(np.eye(2), np.array([1.0, 2.0]), field=F64)
    with pytest.raises(IncompatibleFieldError, match="Over F64 only the interval route"):
        learn_single_head_membership(SignOracle(head), max_abs=3, max_denominator=10)
