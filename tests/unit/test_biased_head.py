"""The biased single head and its exact learner (claims ``single_head_exact.biased_*``).

s_i = x_i^T W x_N + c^T x_i, f = sum_i alpha_i (v . x_i) + beta, learned with
exactly (d + 1)^2 = d^2 + 2d + 1 queries (optimal: the number of unknowns;
proof in :mod:`exactattn.learners.biased_head`). As docs/style.md asks: a worked
example with literal numbers; property tests of exact recovery and of the
count; certificates that reject perturbed models; the violated hypothesis
(v = 0) and bad input with clear errors; the F64 route against its own
first-order bound. Exact fields are compared with ``==`` only.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exactattn.checks.single_head_biased  # noqa: F401  (claims and the certificate builder)
from exactattn.certificates import verify
from exactattn.claims import run_claims
from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
    ShapeError,
)
from exactattn.fields import EXP, F64, Field
from exactattn.learners.biased_head import LABEL, biased_query_count, learn_biased_head
from exactattn.learners.recovery import Recovery
from exactattn.learners.single_head import learn_single_head
from exactattn.models import BiasedSingleHeadAttention, SingleHeadAttention
from exactattn.oracle import Transcript, ValueOracle
from tests.helpers import e, same, sigma

F = Fraction








def oracle_for(W: Any, c: Any, v: Any, beta: Any, field: Field = EXP, **kw: Any) -> ValueOracle:
    return ValueOracle(BiasedSingleHeadAttention(W, c, v, beta, field=field), **kw)


def recovered(rec: Recovery) -> tuple[Any, Any, Any, Any]:
    return rec.W, rec.params["c"], rec.v, rec.params["beta"][()]


def f64_instance(d: int, seed: int, *, module_like: bool = False) -> tuple[Any, Any, Any, float]:
    """W ~ N(0, 1)/sqrt(d), c ~ N(0, 1)/sqrt(d), v ~ N(0, 1), beta ~ N(0, 1).

    ``module_like``: W ~ N(0, 1)/(2d) instead, the size torch's default
    initialisation gives W_k^T W_q / sqrt(d) (the case for ``scale=sqrt(d)``).
    """
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d, d)) / (2 * d if module_like else np.sqrt(d))
    return (W, rng.standard_normal(d) / np.sqrt(d), rng.standard_normal(d),
            float(rng.standard_normal()))


# -- worked example, d = 2 ---------------------------------------------------------
# W = [[1/2, -1], [2, 1/3]], c = [1, -1/2], v = [3, 0], beta = -2. The pivot is p = 0;
# v_1 = 0, so u_1 = e_1 + e_0: Z = [[1, 0], [1, 1]], gains g = Z v = [3, 3].
W_EX, C_EX, V_EX, BETA_EX = [[F(1, 2), -1], [2, F(1, 3)]], [1, F(-1, 2)], [3, 0], -2

# Scores s_i = x_i . (W x_N + c), values v . x_i, worked out by hand:
#   [0]            one token                        -> beta = -2
#   [e_0], [e_1]   one token: v_i + beta            -> 1, -2
#   [u_0; 0]       s = (c.u_0, 0) = (1, 0)          values (3, 0) -> -2 + 3 sigma(1)
#   [u_1; 0]       s = (1/2, 0)                     values (3, 0) -> -2 + 3 sigma(1/2)
#   [[2,0],[1,0]]  s = (2 W_00 + 2 c_0, W_00 + c_0) = (3, 3/2), values (6, 3)
#   [[2,1],[1,0]]  s = (2 W_00 + W_10 + 2 c_0 + c_1, 3/2) = (9/2, 3/2), values (6, 3)
#   [[1,1],[0,1]]  s = (W_01 + W_11 + c_0 + c_1, W_11 + c_1) = (-1/6, -1/6): a rational answer
#   [[1,2],[0,1]]  s = (W_01 + 2 W_11 + c_0 + 2 c_1, -1/6) = (-1/3, -1/6), values (3, 0)
EXPECTED = [
    ("beta", [[0, 0]], EXP(-2)),
    ("v", [[1, 0]], EXP(1)),
    ("v", [[0, 1]], EXP(-2)),
    ("c", [[1, 0], [0, 0]], -2 + 3 * sigma(1)),
    ("c", [[1, 1], [0, 0]], -2 + 3 * sigma(F(1, 2))),
    ("W", [[2, 0], [1, 0]], -2 + (6 * e(3) + 3 * e(F(3, 2))) / (e(3) + e(F(3, 2)))),
    ("W", [[2, 1], [1, 0]], -2 + (6 * e(F(9, 2)) + 3 * e(F(3, 2))) / (e(F(9, 2)) + e(F(3, 2)))),
    ("W", [[1, 1], [0, 1]], EXP(F(-1, 2))),
    ("W", [[1, 2], [0, 1]], -2 + 3 * e(F(-1, 3)) / (e(F(-1, 3)) + e(F(-1, 6)))),
]
# the same W answers by the learner's identity y = beta + v_j + sigma(u_l^T (w_j + c)) g_l:
# u^T(w_j + c) = (3/2, 3, 0, -1/6)
BY_IDENTITY = [1 + 3 * sigma(F(3, 2)), 1 + 3 * sigma(3),
               -2 + 3 * sigma(0), -2 + 3 * sigma(F(-1, 6))]


def test_worked_example_transcript() -> None:
    rec = learn_biased_head(oracle_for(W_EX, C_EX, V_EX, BETA_EX))
    assert len(rec.transcript) == len(EXPECTED) == 9 == biased_query_count(2)
    for k, (entry, (phase, X, answer)) in enumerate(zip(rec.transcript, EXPECTED, strict=True)):
        assert (entry.index, entry.phase) == (k, phase)
        assert same(entry.X, X), (k, entry.X.tolist(), X)
        assert entry.answer == answer, (k, entry.answer, answer)
    for entry, y in zip(rec.transcript[5:], BY_IDENTITY, strict=True):
        assert entry.answer == y
    assert EXP.is_rational(rec.transcript[7].answer)  # gap 0: sigma(0) = 1/2
    assert not EXP.is_rational(rec.transcript[8].answer)


def test_worked_example_recovers_all_four_parameters() -> None:
    oracle = oracle_for(W_EX, C_EX, V_EX, BETA_EX)
    rec = learn_biased_head(oracle)
    W, c, v, beta = recovered(rec)
    assert same(W, W_EX) and same(c, C_EX) and same(v, V_EX) and beta == -2
    assert rec.label == LABEL == "single_head_biased" and rec.status == "exact"
    assert rec.queries == oracle.queries == 9
    assert dict(rec.queries_by_phase) == {"beta": 1, "v": 2, "c": 2, "W": 4}
    assert rec.options["variant"] == "biased" and rec.options["pivot"] == 0
    assert not same(c, [1, F(-1, 2) + F(1, 10**12)])
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "exact" and cert.checked == 13


def test_worked_example_with_scale_two() -> None:
    rec = learn_biased_head(oracle_for(W_EX, C_EX, V_EX, BETA_EX), scale=2)
    assert same(rec.W, W_EX) and same(rec.params["c"], C_EX) and same(rec.v, V_EX)
    assert rec.transcript[1].X.tolist() == [[2, 0]] and rec.transcript[1].answer == 4
    assert rec.options["scale"] == "2"


# -- the query count -----------------------------------------------------------------
def test_query_count_closed_form() -> None:
    assert [biased_query_count(d) for d in range(1, 6)] == [4, 9, 16, 25, 36]
    # one query per real unknown: d^2 (W) + d (c) + d (v) + 1 (beta)
    assert all(biased_query_count(d) == d * d + d + d + 1 == (d + 1) ** 2 for d in range(1, 50))


# -- property tests -------------------------------------------------------------------
small = st.fractions(min_value=-4, max_value=4, max_denominator=6)
v_entries = st.one_of(st.just(F(0)), small)


@st.composite
def biased_heads(draw: Any, max_d: int = 4) -> tuple[Any, Any, Any, Any]:
    d = draw(st.integers(1, max_d))
    W = draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d))
    c = draw(st.lists(small, min_size=d, max_size=d))
    v = draw(st.lists(v_entries, min_size=d, max_size=d))
    if not any(v):
        v[draw(st.integers(0, d - 1))] = draw(small.filter(lambda q: q != 0))
    return W, c, v, draw(small)


@given(biased_heads(), st.sampled_from(["deterministic", "gaussian"]), st.integers(0, 3))
def test_exact_recovery_property(head: tuple[Any, Any, Any, Any], probes: Any,
                                 seed: int) -> None:
    W, c, v, beta = head
    d = len(v)
    oracle = oracle_for(W, c, v, beta)
    rec = learn_biased_head(oracle, probes=probes, seed=seed)
    rW, rc, rv, rbeta = recovered(rec)
    assert same(rW, W) and same(rc, c) and same(rv, v) and rbeta == beta
    assert rec.queries == oracle.queries == biased_query_count(d) == d * d + 2 * d + 1
    assert dict(rec.queries_by_phase) == {"beta": 1, "v": d, "c": d, "W": d * d}
    assert [t.X.shape[0] for t in rec.transcript] == [1] * (d + 1) + [2] * (d + d * d)
    assert verify(rec, oracle, probes=2, seed=seed).holds


@given(biased_heads(max_d=3))
def test_unbiased_head_is_the_special_case(head: tuple[Any, Any, Any, Any]) -> None:
    W, _, v, _ = head
    d = len(v)
    plain = SingleHeadAttention(W, v, field=EXP)
    rec = learn_biased_head(ValueOracle(BiasedSingleHeadAttention(W, [0] * d, v, 0, field=EXP)))
    ref = learn_single_head(ValueOracle(plain))
    assert same(rec.W, ref.W) and same(rec.v, ref.v)
    assert all(x == 0 for x in rec.params["c"]) and rec.params["beta"][()] == 0


# -- F64 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 8, 32])
@pytest.mark.parametrize("module_like", [False, True])
def test_f64_accuracy_and_own_bounds(d: int, module_like: bool) -> None:
    W, c, v, beta = f64_instance(d, d, module_like=module_like)
    oracle = oracle_for(W, c, v, beta, field=F64)
    # unit probes for W of size 1/sqrt(d); tokens of norm ~ sqrt(d) for W of size 1/d
    rec = learn_biased_head(oracle, scale=float(np.sqrt(d)) if module_like else 1.0)
    rW, rc, rv, rbeta = recovered(rec)
    assert rec.field == F64 and rec.status == "float" and rec.hypotheses == ()
    assert rec.queries == biased_query_count(d)
    # float64 accuracy: max relative error within 2^8 d u, u = 2^-53 (see test_torch_oracle)
    tol = 2.0**8 * d * 2.0**-53
    assert np.abs(rW - W).max() / np.abs(W).max() <= tol
    assert np.abs(rv - v).max() / np.abs(v).max() <= tol
    assert np.abs(rc - c).max() / np.abs(c).max() <= tol
    # the recovery's own first-order bounds cover the actual errors
    o = rec.options
    assert np.linalg.norm(rW - W) <= o["W_error_bound"] < 1e-6
    assert np.linalg.norm(rc - c) <= o["c_error_bound"]
    assert np.linalg.norm(rv - v) <= o["v_error_bound"]
    assert abs(rbeta - beta) <= o["beta_error_bound"] or rbeta == beta
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "tolerance"


def test_f64_batch_is_vectorised_and_matches_single_queries() -> None:
    W, c, v, beta = f64_instance(5, 0)
    m = BiasedSingleHeadAttention(W, c, v, beta, field=F64)
    Xs = np.random.default_rng(1).standard_normal((7, 3, 5))
    got = m.batch(Xs)
    assert got.dtype == np.float64 and got.shape == (7,)
    assert np.allclose(got, [m(X) for X in Xs], rtol=0, atol=1e-14)
    mixed = m.batch([Xs[0], Xs[1, :1]])
    assert np.allclose(mixed, [m(Xs[0]), m(Xs[1, :1])], rtol=0, atol=1e-14)
    # the same function as the unbiased head when c = 0, beta = 0
    plain = SingleHeadAttention(W, v, field=F64)
    zero = BiasedSingleHeadAttention(W, np.zeros(5), v, 0.0, field=F64)
    assert np.allclose(zero.batch(Xs), plain.batch(Xs), rtol=0, atol=1e-14)


# -- certificates: they can fail --------------------------------------------------------
@pytest.mark.parametrize("what", ["W", "c", "v", "beta"])
def test_certificate_rejects_a_perturbed_model_exact(what: str) -> None:
    oracle = oracle_for(W_EX, C_EX, V_EX, BETA_EX)
    rec = learn_biased_head(oracle)
    A = np.array(rec.params[what])
    A[(0,) * A.ndim] = A[(0,) * A.ndim] + EXP(F(1, 7))
    bad = dataclasses.replace(rec, params={**rec.params, what: A})
    cert = verify(bad, oracle)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "transcript"
    blind = dataclasses.replace(bad, transcript=Transcript(EXP))
    cert = verify(blind, oracle, probes=8)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


def test_certificate_rejects_a_perturbed_model_f64() -> None:
    W, c, v, beta = f64_instance(6, 3)
    oracle = oracle_for(W, c, v, beta, field=F64)
    rec = learn_biased_head(oracle)
    assert verify(rec, oracle).holds
    c_bad = rec.params["c"].copy()
    c_bad[2] += 1 / 7
    cert = verify(dataclasses.replace(rec, params={**rec.params, "c": c_bad}), oracle)
    assert cert.holds is False and cert.kind == "tolerance"


def test_the_unbiased_learner_refuses_a_biased_head() -> None:
    # the paper's learner on a biased oracle: beta shifts every answer, so no
    # sigmoid explains them, and it refuses instead of guessing
    oracle = oracle_for(W_EX, C_EX, [3, 1], BETA_EX)
    with pytest.raises(RecoveryFailedError):
        learn_single_head(oracle)


# -- the hypothesis violated and bad input ------------------------------------------------
@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_v_zero_is_not_identifiable(field: Field) -> None:
    d = 3
    W = np.arange(9).reshape(3, 3) - 4
    c = [1, 2, 3]
    if field is F64:
        W, c = W.astype(float), np.array(c, dtype=float)
    beta = 5 if field is EXP else 5.0
    oracle = oracle_for(W.tolist(), c, [0] * d, beta, field=field)
    with pytest.raises(NotIdentifiableError, match="neither W nor c") as info:
        learn_biased_head(oracle)
    assert all(x == 0 for x in info.value.recovered["v"])
    assert info.value.recovered["beta"] == 5
    assert oracle.queries_by_phase == {"beta": 1, "v": d}


def test_a_linear_oracle_is_refused() -> None:
    a = EXP.array([1, 2])
    oracle = ValueOracle(lambda X: X[-1] @ a + 1, field=EXP, d=2)
    with pytest.raises(RecoveryFailedError, match="not a biased single-head"):
        learn_biased_head(oracle)


@pytest.mark.parametrize("d", [1, 2])
def test_budget_one_short(d: int) -> None:
    oracle = oracle_for([[1] * d] * d, [0] * d, [1] * d, 0, budget=biased_query_count(d) - 1)
    with pytest.raises(QueryBudgetExceededError):
        learn_biased_head(oracle)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"scale": 0}, InvalidEntryError, "scale must be positive"),
    ({"scale": -1}, InvalidEntryError, "scale must be positive"),
    ({"scale": 0.5}, InvalidEntryError, "scale: float"),
    ({"roundoff": 0.0}, InvalidEntryError, "roundoff"),
    ({"probes": "random"}, InvalidEntryError, "probes must be"),
    ({"field": F64}, IncompatibleFieldError, "expected F64"),
])
def test_bad_learner_options(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        learn_biased_head(oracle_for(W_EX, C_EX, V_EX, BETA_EX), **kwargs)


@pytest.mark.parametrize("args, error, match", [
    (([[1, 0], [0, 1]], [1], [1, 1], 0), ShapeError, "c has shape"),
    (([[1, 0], [0, 1]], [1, 1], [1, 1, 1], 0), ShapeError, "v has shape"),
    (([[1, 0], [0, 1]], [1, 1], [1, 1], [0, 1]), ShapeError, "beta has shape"),
    (([[1, 0], [0, 1]], None, [1, 1], 0), InvalidEntryError, "c is None"),
    (([[1, 0], [0, 1]], [1, 1], [1, 1], None), InvalidEntryError, "beta is None"),
    (([[1, 0], [0, 1]], [1, 1], [1, 1], 0.5), InvalidEntryError, "beta: float"),
    (([[1, 0]], [1, 1], [1, 1], 0), ShapeError, "square"),
])
def test_bad_model_parameters(args: tuple[Any, ...], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        BiasedSingleHeadAttention(*args, field=EXP)


# -- JSON and the claims --------------------------------------------------------------------
def test_json_round_trip_keeps_beta_and_the_certificate(tmp_path: Any) -> None:
    oracle = oracle_for(W_EX, C_EX, V_EX, BETA_EX)
    rec = learn_biased_head(oracle)
    back = Recovery.from_json(json.loads(json.dumps(rec.to_json())))
    assert back.label == LABEL and back.params["beta"].shape == ()
    assert all(same(a, b) for a, b in zip(recovered(back), recovered(rec), strict=True))
    assert verify(back, oracle).holds
    # the saved recovery with c[0] moved by 1/7: rejected by the replay of its transcript
    saved = json.loads(json.dumps(rec.to_json()))
    entries = saved["params"]["c"]["entries"]
    entries[0] = str(F(str(entries[0])) + F(1, 7))
    wrong = verify(Recovery.from_json(saved), oracle)
    assert not wrong.holds and wrong.first_failure is not None
    assert wrong.first_failure.source == "transcript"


def test_the_biased_claims_hold() -> None:
    results = run_claims([f"single_head_exact.biased_{name}" for name in (
        "length_one", "two_token_identity", "exact_recovery", "reduces_to_unbiased",
        "v_zero_nonidentifiable", "certificate_soundness")])
    assert len(results) == 6
    assert [(r.claim.id, r.outcome.detail) for r in results if not r.holds] == []
    assert all(r.outcome.instances > 0 and r.claim.label == "single_head_exact" for r in results)
