"""low_rank_adaptive: exact rank-r heads at the degrees-of-freedom floor r(2d - r) + d.

exactattn's own result (beyond the paper's Thm 5.2 v1 = Thm 5.1 v2);
learner :func:`exactattn.learners.low_rank.learn_low_rank` with
``method="adaptive"``. This file holds, as docs/style.md asks: a worked
example with literal numbers; property tests of exact recovery (rank given,
rank bound above the rank, rank discovered; EXP and QQ); the query counts
against their closed forms, read from the oracle's own counter; certificates
that hold and that reject a perturbed model; the violated hypotheses (v = 0,
rank(W) > r) with their clear outcomes; the F64 route at d = 1024, r = 16.
Exact fields are compared with ``==`` only.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exactattn.checks.low_rank  # noqa: F401  (registers the certificate builders)
from exactattn.certificates import verify
from exactattn.checks.low_rank import low_rank_head
from exactattn.claims import run_claims
from exactattn.errors import (
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64, QQ
from exactattn.learners import learn_low_rank
from exactattn.learners.low_rank import (
    LABEL_ADAPTIVE,
    adaptive_query_count,
    degrees_of_freedom,
    over_field,
    query_floor,
    rank_one_query,
)
from exactattn.learners.recovery import Recovery
from exactattn.linalg import rank
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle
from exactattn.report.latex import label_section
from tests.helpers import e, same, sigma

F = Fraction








def perturbed(rec: Recovery, delta: Any) -> Recovery:
    W = rec.W.copy()
    W[0, -1] = W[0, -1] + delta
    return dataclasses.replace(rec, params={"W": W, "v": rec.v.copy()})


# -- worked example: d = 3, r = 1 ------------------------------------------------------
# W = (1, 2, -1)^T (2, -1, 0): rank 1; v = (1, 0, 1/2).
W_EX = [[2, -1, 0], [4, -2, 0], [-2, 1, 0]]
V_EX = [1, 0, F(1, 2)]


def test_worked_example_measurement_by_hand() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    u = x = EXP.array([1, 0, 0])
    X = rank_one_query(u, x)
    assert X.tolist() == [[2, 0, 0], [1, 0, 0]]
    # scores s = (2 W_11, W_11) = (4, 2); values c = (2 v_1, v_1) = (2, 1)
    y = head(X)
    assert y == (2 * e(4) + 1 * e(2)) / (e(4) + e(2))
    assert y == 1 + sigma(2) * 1                    # x^T v + sigma(u^T W x) u^T v
    assert EXP.logit((y - x @ head.v) / (u @ head.v)) == 2 == W_EX[0][0]


def test_worked_example_factorisation_by_hand() -> None:
    # A = B = e_1: M = W_11 = 2, W B = (2, 4, -2)^T, A^T W = (2, -1, 0)
    WB = QQ.array([[2], [4], [-2]])
    AW = QQ.array([[2, -1, 0]])
    assert same(WB @ AW / 2, W_EX)                  # W = (W B) M^{-1} (A^T W)


def test_worked_example_recovery() -> None:
    oracle = ValueOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    rec = learn_low_rank(oracle, rank=1)
    assert same(rec.W, W_EX) and same(rec.v, V_EX)
    assert rec.label == LABEL_ADAPTIVE == "low_rank_adaptive"
    assert rec.status == "exact_given" and rec.field == EXP
    assert rec.hypotheses == ("rank(W) <= 1",)
    # 1 (2 3 - 1) + 3 = 8 queries, against d^2 + d = 12 for the full learner
    assert rec.queries == oracle.queries == 8 == query_floor(3, 1)
    assert dict(rec.queries_by_phase) == {"v": 3, "core": 1, "WB": 2, "AW": 2}
    assert [t.X.shape[0] for t in rec.transcript] == [1, 1, 1] + [2] * 5
    assert [t.answer for t in rec.transcript[:3]] == [1, 0, F(1, 2)]
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "exact" and cert.replayed == 8


# -- counts ---------------------------------------------------------------------------
def test_closed_forms() -> None:
    assert [degrees_of_freedom(4, r) for r in range(5)] == [0, 7, 12, 15, 16]
    assert [query_floor(4, r) for r in range(5)] == [4, 11, 16, 19, 20]
    assert query_floor(1024, 16) == 33_536 and 1024**2 + 1024 == 1_049_600
    assert query_floor(7, 7) == 7 * 7 + 7          # full rank: the single-head count
    assert adaptive_query_count(4, 2, rank_given=False) == 17
    assert adaptive_query_count(4, 4, rank_given=False) == 20


@pytest.mark.parametrize("d, r", [(1, 0), (1, 1), (2, 1), (3, 0), (3, 2), (5, 2), (5, 5),
                                  (8, 3), (16, 2)])
def test_count_is_the_floor(d: int, r: int) -> None:
    head = low_rank_head(d, r, seed=d)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r, seed=r)
    assert same(rec.W, head.W) and same(rec.v, head.v)
    assert oracle.queries == rec.queries == r * (2 * d - r) + d
    phases = {"v": d, "core": r * r, "WB": r * (d - r), "AW": r * (d - r)}
    assert dict(rec.queries_by_phase) == {k: n for k, n in phases.items() if n}
    assert rec.options["queries_over_floor"] == 0


@pytest.mark.parametrize("d, r", [(1, 0), (1, 1), (2, 0), (2, 1), (4, 2), (6, 5), (6, 6),
                                  (12, 3)])
def test_rank_discovered_one_query_over_the_floor(d: int, r: int) -> None:
    head = low_rank_head(d, r, seed=d + 1)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, seed=d)
    assert same(rec.W, head.W) and rec.options["rank"] == r
    expected = r * (2 * d - r) + d + (1 if r < d else 0)
    assert oracle.queries == rec.queries == expected == adaptive_query_count(d, r,
                                                                             rank_given=False)
    assert rec.options["queries_over_floor"] == (1 if r < d else 0)
    grow = (r + 1) ** 2 if r < d else d * d
    assert rec.queries_by_phase["grow"] == grow


def test_rank_bound_above_the_rank() -> None:
    head = low_rank_head(6, 2, seed=4)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=4)
    assert same(rec.W, head.W)
    assert oracle.queries == query_floor(6, 4)
    assert rec.options["rank_of_core"] == 2         # A^T W B has the rank of W


# -- property tests -----------------------------------------------------------------------
small = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@st.composite
def low_rank_heads(draw: Any) -> tuple[Any, Any, int]:
    """(W, v, rank W): W = U V^T with U, V d x k, v != 0, d <= 5."""
    d = draw(st.integers(1, 5))
    k = draw(st.integers(0, d))
    U = QQ.array(draw(st.lists(st.lists(small, min_size=k, max_size=k), min_size=d,
                               max_size=d))).reshape(d, k)
    V = QQ.array(draw(st.lists(st.lists(small, min_size=k, max_size=k), min_size=d,
                               max_size=d))).reshape(d, k)
    W = U @ V.T if k else QQ.zeros((d, d))
    v = draw(st.lists(st.one_of(st.just(F(0)), small), min_size=d, max_size=d))
    if not any(v):
        v[draw(st.integers(0, d - 1))] = F(1)
    return W, v, rank(QQ, W)


def _head(W: Any, v: Any) -> SingleHeadAttention:
    return SingleHeadAttention(EXP.array(W), v, field=EXP)


@given(low_rank_heads(), st.integers(0, 3))
def test_exact_recovery_rank_given(case: tuple[Any, Any, int], seed: int) -> None:
    W, v, r = case
    d = len(v)
    head = _head(W, v)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r, seed=seed)
    assert same(rec.W, head.W) and same(rec.v, head.v)
    assert oracle.queries == query_floor(d, r)
    assert verify(rec, oracle, probes=2, seed=seed).holds


@given(low_rank_heads(), st.integers(0, 3))
def test_exact_recovery_rank_discovered(case: tuple[Any, Any, int], seed: int) -> None:
    W, v, r = case
    d = len(v)
    head = _head(W, v)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, seed=seed)
    assert same(rec.W, head.W) and rec.options["rank"] == r
    assert oracle.queries == adaptive_query_count(d, r, rank_given=False)


@given(low_rank_heads())
def test_exact_recovery_in_QQ(case: tuple[Any, Any, int]) -> None:
    W, v, r = case
    oracle = ValueOracle(_head(W, v))
    rec = learn_low_rank(oracle, rank=r, field=QQ)
    assert rec.field == QQ and all(QQ.is_element(x) for x in rec.W.flat)
    assert same(rec.W, W) and same(rec.v, QQ.array(v))
    assert oracle.queries == query_floor(len(v), r)
    assert verify(over_field(rec, EXP), oracle, probes=2).holds


# -- certificates ----------------------------------------------------------------------------
@pytest.mark.parametrize("d, r", [(2, 1), (5, 2)])
def test_certificate_rejects_perturbed_model(d: int, r: int) -> None:
    head = low_rank_head(d, r, seed=9)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r)
    assert verify(rec, oracle).holds
    cert = verify(perturbed(rec, EXP(F(1, 7))), oracle)
    assert not cert.holds and cert.first_failure is not None


def test_certificate_rejects_perturbed_model_f64() -> None:
    head = low_rank_head(32, 3, seed=1, field=F64)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=3)
    cert = verify(rec, oracle)
    assert cert.holds and cert.kind == "tolerance"
    assert not verify(perturbed(rec, 1 / 7), oracle).holds


# -- violated hypotheses ----------------------------------------------------------------------
@pytest.mark.parametrize("d, r", [(3, 1), (5, 2), (6, 5)])
def test_rank_larger_than_given_is_detected(d: int, r: int) -> None:
    head = low_rank_head(d, r + 1, seed=d)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r)
    assert oracle.queries == query_floor(d, r)
    assert not same(rec.W, head.W) and rank(EXP, rec.W) == r
    assert "assumed" in rec.options["rank_hypothesis"]
    # at the floor the transcript is consistent with the rank-r answer (proven in the
    # learner's docstring) ...
    assert verify(rec, None).holds
    # ... so only a query beyond the floor can tell: the certificate's fresh probes,
    cert = verify(rec, oracle, probes=4)
    assert not cert.holds and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"
    # or confirm=1, which raises instead of returning the wrong matrix
    with pytest.raises(HypothesisViolatedError, match=r"rank\(W\) > ") as info:
        learn_low_rank(ValueOracle(head), rank=r, confirm=1)
    assert info.value.hypothesis == "rank(W) <= r"


def test_confirm_passes_on_a_true_rank() -> None:
    head = low_rank_head(5, 2, seed=2)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=2, confirm=2)
    assert same(rec.W, head.W)
    assert oracle.queries == query_floor(5, 2) + 2
    assert rec.queries_by_phase["confirm"] == 2


@pytest.mark.parametrize("rank_given", [1, None])
def test_v_zero_is_not_identifiable(rank_given: int | None) -> None:
    head = SingleHeadAttention(W_EX, [0, 0, 0], field=EXP)
    oracle = ValueOracle(head)
    with pytest.raises(NotIdentifiableError, match="W cannot be identified") as info:
        learn_low_rank(oracle, rank=rank_given)
    assert same(info.value.recovered["v"], [0, 0, 0])
    assert oracle.queries == 3


def test_non_attention_oracle_raises() -> None:
    a = EXP.array([1, 2, 3])
    oracle = ValueOracle(lambda X: X[-1] @ a, field=EXP, d=3)
    with pytest.raises(RecoveryFailedError, match="not a single-head attention model"):
        learn_low_rank(oracle, rank=1)


@pytest.mark.parametrize("bad", [-1, 4, 1.5, True, "2"])
def test_bad_rank_argument(bad: Any) -> None:
    oracle = ValueOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    with pytest.raises(InvalidEntryError, match="rank must be an integer"):
        learn_low_rank(oracle, rank=bad)
    assert oracle.queries == 0


def test_bad_field_and_options() -> None:
    exp_oracle = ValueOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    with pytest.raises(IncompatibleFieldError, match="compute in EXP or QQ"):
        learn_low_rank(exp_oracle, rank=1, field=F64)
    f64_oracle = ValueOracle(low_rank_head(4, 1, seed=0, field=F64))
    with pytest.raises(InvalidEntryError, match="over F64 give rank"):
        learn_low_rank(f64_oracle)
    with pytest.raises(InvalidEntryError, match="confirm= needs an exact field"):
        learn_low_rank(f64_oracle, rank=1, confirm=1)
    with pytest.raises(InvalidEntryError, match="method must be"):
        learn_low_rank(exp_oracle, rank=1, method="magic")  # type: ignore[arg-type]
    assert exp_oracle.queries == f64_oracle.queries == 0


def test_budget_exactly_the_floor() -> None:
    head = low_rank_head(6, 2, seed=5)
    with pytest.raises(QueryBudgetExceededError):
        learn_low_rank(ValueOracle(head, budget=query_floor(6, 2) - 1), rank=2)
    oracle = ValueOracle(head, budget=query_floor(6, 2))
    assert same(learn_low_rank(oracle, rank=2).W, head.W)


def test_same_seed_same_transcript() -> None:
    head = low_rank_head(5, 2, seed=3)
    a = learn_low_rank(ValueOracle(head), rank=2, seed=11)
    b = learn_low_rank(ValueOracle(head), rank=2, seed=11)
    assert all(same(x.X, y.X) and x.answer == y.answer
               for x, y in zip(a.transcript, b.transcript, strict=True))


# -- F64 at scale ------------------------------------------------------------------------------
def test_f64_d256() -> None:
    d, r = 256, 8
    head = low_rank_head(d, r, seed=0, field=F64)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r)
    assert oracle.queries == query_floor(d, r) == 4288
    err = float(np.linalg.norm(rec.W - head.W))
    assert err / float(np.linalg.norm(head.W)) < 1e-10
    assert err <= float(rec.options["W_error_bound"])
    assert rec.status == "float"
    assert verify(rec, oracle, probes=4).holds


@pytest.mark.parametrize("true_rank", [0, 2])
def test_f64_rank_below_the_bound(true_rank: int) -> None:
    # the numerical rank of M is decided against the error bound of M (Weyl)
    head = low_rank_head(96, true_rank, seed=3, field=F64)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=5)
    assert rec.options["rank_of_core"] == true_rank
    assert float(np.linalg.norm(rec.W - head.W)) <= 1e-10 * max(1.0, np.linalg.norm(head.W))
    assert verify(rec, oracle, probes=4).holds


def test_f64_d1024_r16_at_the_floor() -> None:
    d, r = 1024, 16
    head = low_rank_head(d, r, seed=1024, field=F64)
    oracle = ValueOracle(head, keep_transcript=False)
    rec = learn_low_rank(oracle, rank=r, seed=1024)
    assert oracle.queries == rec.queries == 33_536 == query_floor(d, r)
    assert dict(rec.queries_by_phase) == {"v": 1024, "core": 256, "WB": 16_128, "AW": 16_128}
    rel = float(np.linalg.norm(rec.W - head.W) / np.linalg.norm(head.W))
    assert rel < 1e-9, rel
    assert float(np.linalg.norm(rec.W - head.W)) <= float(rec.options["W_error_bound"])


# -- the registry ---------------------------------------------------------------------------
def test_claims_hold_and_have_their_latex_label() -> None:
    results = run_claims([LABEL_ADAPTIVE])
    assert len(results) >= 5
    assert [(r.claim.id, r.outcome.detail) for r in results if not r.holds] == []
    assert "\\label{low_rank_adaptive}" in label_section(LABEL_ADAPTIVE)
