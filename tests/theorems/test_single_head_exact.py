"""single_head_exact: exact (W, v) of one attention head from d + d^2 value queries.

Paper Thm 4.1 (v1 and v2); paper.md §2. This file holds, as docs/style.md
asks: a worked example with literal numbers; property tests of exact
recovery (deterministic and Gaussian probes); the query count against its
closed form d + d^2; certificates that hold on the truth and reject a
perturbed model, a two-head oracle and a linear oracle; the instance that
violates the hypothesis (v = 0) with its clear error; the F64 route against
its own error bound; the budget; the JSON round trip.

Exact fields are compared with ``==`` only. The single tolerance (F64) is
the one the F64 route states for itself.
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

from exactattn.certificates import verify
from exactattn.errors import (
    NotIdentifiableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64, QQ, Field
from exactattn.learners.recovery import Recovery
from exactattn.learners.single_head import (
    LABEL,
    learn_single_head,
    probe_matrix,
    query_count,
)
from exactattn.linalg import det
from exactattn.models import SingleHeadAttention
from exactattn.oracle import Transcript, ValueOracle
from tests.helpers import e, same, sigma

F = Fraction


# -- helpers ---------------------------------------------------------------






def head_oracle(W: Any, v: Any, field: Field = EXP, **kw: Any) -> ValueOracle:
    return ValueOracle(SingleHeadAttention(W, v, field=field), **kw)


def perturbed(rec: Recovery, i: int, j: int, delta: Any) -> Recovery:
    """The same recovery with W[i, j] changed by delta (a new frozen Recovery)."""
    W = rec.W.copy()
    W[i, j] = W[i, j] + delta
    return dataclasses.replace(rec, params={"W": W, "v": rec.v.copy()})


def f64_instance(d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Well-scaled F64 instance: W ~ N(0, 1)/sqrt(d), v ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, d)) / np.sqrt(d), rng.standard_normal(d)


# -- strategies (local on purpose: no dependency on tests/strategies.py) ----
small_rationals = st.fractions(min_value=-4, max_value=4, max_denominator=6)
nonzero_rationals = small_rationals.filter(lambda q: q != 0)
# v entries: zero with a large weight, so zero coordinates appear often
v_entries = st.one_of(st.just(F(0)), small_rationals)


@st.composite
def rational_heads(draw: Any, min_d: int = 1, max_d: int = 5) -> tuple[list[Any], list[Any]]:
    """(W, v) with rational entries, v != 0 (zeros allowed in v), d in [min_d, max_d]."""
    d = draw(st.integers(min_d, max_d))
    W = draw(st.lists(st.lists(small_rationals, min_size=d, max_size=d), min_size=d, max_size=d))
    v = draw(st.lists(v_entries, min_size=d, max_size=d))
    if not any(v):
        v[draw(st.integers(0, d - 1))] = draw(nonzero_rationals)
    return W, v


@st.composite
def v_with_zero_coordinates(draw: Any) -> list[Any]:
    """v of length 2..6 with at least one zero and at least one nonzero coordinate."""
    d = draw(st.integers(2, 6))
    v = draw(st.lists(v_entries, min_size=d, max_size=d))
    zero, nonzero = draw(st.lists(st.integers(0, d - 1), min_size=2, max_size=2, unique=True))
    v[zero] = F(0)
    if v[nonzero] == 0:
        v[nonzero] = draw(nonzero_rationals)
    return v


# -- worked example, d = 2 --------------------------------------------------
# W = [[1/2, -1], [2, 1/3]], v = [3, 0]. The pivot is p = 0 (v_0 = 3 != 0);
# v_1 = 0, so u_1 = e_1 + e_0 and Z = [[1, 0], [1, 1]], c = Z v = [3, 3].
W_EX = [[F(1, 2), -1], [2, F(1, 3)]]
V_EX = [3, 0]

# Each W query is X = [(u_l + e_j)^T; e_j^T], asked column by column (j),
# probe by probe (l). Scores s_i = x_i^T W x_N, values c_i = v . x_i, worked
# out by hand (W e_0 = (1/2, 2), W e_1 = (-1, 1/3)):
#   j=0 l=0  X=[[2,0],[1,0]]  s = (1, 1/2)      c = (6, 3)
#   j=0 l=1  X=[[2,1],[1,0]]  s = (3, 1/2)      c = (6, 3)
#   j=1 l=0  X=[[1,1],[0,1]]  s = (-2/3, 1/3)   c = (3, 0)
#   j=1 l=1  X=[[1,2],[0,1]]  s = (-1/3, 1/3)   c = (3, 0)
EXPECTED_TRANSCRIPT = [
    (0, "v", [[1, 0]], EXP(3)),
    (1, "v", [[0, 1]], EXP(0)),
    (2, "W", [[2, 0], [1, 0]], (6 * e(1) + 3 * e(F(1, 2))) / (e(1) + e(F(1, 2)))),
    (3, "W", [[2, 1], [1, 0]], (6 * e(3) + 3 * e(F(1, 2))) / (e(3) + e(F(1, 2)))),
    (4, "W", [[1, 1], [0, 1]], (3 * e(F(-2, 3)) + 0 * e(F(1, 3))) / (e(F(-2, 3)) + e(F(1, 3)))),
    (5, "W", [[1, 2], [0, 1]], (3 * e(F(-1, 3)) + 0 * e(F(1, 3))) / (e(F(-1, 3)) + e(F(1, 3)))),
]
# The paper's two-token identity y = v_j + sigma(u_l^T w_j) (u_l^T v) for the
# same four queries; u_l^T w_j = t_lj with T = Z W = [[1/2, -1], [5/2, -2/3]].
EXPECTED_W_ANSWERS_BY_IDENTITY = [
    3 + sigma(F(1, 2)) * 3,
    3 + sigma(F(5, 2)) * 3,
    0 + sigma(-1) * 3,
    0 + sigma(F(-2, 3)) * 3,
]


def test_worked_example_transcript() -> None:
    rec = learn_single_head(head_oracle(W_EX, V_EX))
    got = [(t.index, t.phase, t.X, t.answer) for t in rec.transcript]
    assert len(got) == len(EXPECTED_TRANSCRIPT) == 6
    for (index, phase, X, answer), (index0, phase0, X0, answer0) in zip(
        got, EXPECTED_TRANSCRIPT, strict=True
    ):
        assert (index, phase) == (index0, phase0)
        assert same(X, X0), (index, X.tolist(), X0)
        assert EXP.is_element(answer)
        assert answer == answer0, (index, answer, answer0)
    for t, y in zip(rec.transcript[2:], EXPECTED_W_ANSWERS_BY_IDENTITY, strict=True):
        assert t.answer == y


def test_worked_example_answers_are_not_rational() -> None:
    # the W answers are genuinely transcendental: no rational equals them
    rec = learn_single_head(head_oracle(W_EX, V_EX))
    for t in rec.transcript[2:]:
        assert not EXP.is_rational(t.answer)


def test_worked_example_recovers_W_and_v() -> None:
    oracle = head_oracle(W_EX, V_EX)
    rec = learn_single_head(oracle)
    assert same(rec.W, [[F(1, 2), -1], [2, F(1, 3)]])
    assert same(rec.v, [3, 0])
    assert all(EXP.is_element(x) for x in rec.W.flat)
    assert rec.label == LABEL == "single_head_exact"
    assert rec.field == EXP and rec.status == "exact"
    assert rec.queries == 6 == oracle.queries
    assert dict(rec.queries_by_phase) == {"v": 2, "W": 4}
    assert rec.options["probes"] == "deterministic" and rec.options["pivot"] == 0
    # and not a nearby matrix: the comparison is exact
    assert not same(rec.W, [[F(1, 2), -1], [2, F(1, 3) + F(1, 10**12)]])
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "exact" and cert.first_failure is None
    assert cert.replayed == 6 and cert.fresh == 4 and cert.checked == 10


def test_worked_example_probe_matrix() -> None:
    Z, p = probe_matrix(EXP, EXP.array(V_EX))
    assert p == 0
    assert same(Z, [[1, 0], [1, 1]])
    assert det(EXP, Z) == 1


# -- query count -----------------------------------------------------------
def test_query_count_closed_form() -> None:
    assert [query_count(d) for d in range(1, 7)] == [2, 6, 12, 20, 30, 42]
    assert query_count(64) == 64 + 64 * 64


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_query_count_is_spent_exactly(d: int) -> None:
    W = [[F(i - j, 1 + i + j) for j in range(d)] for i in range(d)]
    v = [F(k + 1, 2) for k in range(d)]
    oracle = head_oracle(W, v)
    rec = learn_single_head(oracle)
    assert rec.queries == oracle.queries == query_count(d) == d + d * d
    assert dict(rec.queries_by_phase) == oracle.queries_by_phase == {"v": d, "W": d * d}
    # d queries of length 1, d^2 of length 2 (paper.md §2)
    lengths = [t.X.shape[0] for t in rec.transcript]
    assert lengths == [1] * d + [2] * (d * d)


# -- property tests of exact recovery --------------------------------------
@given(rational_heads())
def test_exact_recovery_property(head: tuple[list[Any], list[Any]]) -> None:
    W, v = head
    d = len(v)
    oracle = head_oracle(W, v)
    rec = learn_single_head(oracle)
    assert same(rec.W, W)
    assert same(rec.v, v)
    assert rec.queries == oracle.queries == query_count(d)
    assert dict(rec.queries_by_phase) == {"v": d, "W": d * d}
    assert len(rec.transcript) == d + d * d
    cert = verify(rec, oracle, probes=2)
    assert cert.holds and cert.kind == "exact"


@given(rational_heads(max_d=4), st.integers(0, 3))
def test_exact_recovery_gaussian_probes(head: tuple[list[Any], list[Any]], seed: int) -> None:
    W, v = head
    d = len(v)
    oracle = head_oracle(W, v)
    rec = learn_single_head(oracle, probes="gaussian", seed=seed)
    assert same(rec.W, W)
    assert same(rec.v, v)
    assert rec.queries == oracle.queries == query_count(d)
    assert dict(rec.queries_by_phase) == {"v": d, "W": d * d}
    assert rec.options["probes"] == "gaussian" and rec.seed == seed


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_gaussian_probes_fixed_instance(seed: int) -> None:
    W = [[1, F(-3, 2), 0], [F(2, 5), 0, 4], [-1, F(1, 7), F(5, 3)]]
    v = [0, F(-2, 3), 0]
    rec = learn_single_head(head_oracle(W, v), probes="gaussian", seed=seed)
    assert same(rec.W, W) and same(rec.v, v)
    assert dict(rec.queries_by_phase) == {"v": 3, "W": 9}


@given(v_with_zero_coordinates())
def test_deterministic_probes_have_det_one(v: list[Any]) -> None:
    d = len(v)
    for field in (EXP, QQ):
        va = field.array(v)
        Z, p = probe_matrix(field, va)
        assert det(field, Z) == 1
        assert v[p] != 0 and all(x == 0 for x in v[:p])  # first nonzero coordinate
        for l in range(d):
            expected = [int(k == l) + int(v[l] == 0 and k == p) for k in range(d)]
            assert same(Z[l], field.array(expected))
            assert field.sign(Z[l] @ va) != 0  # u_l^T v != 0


@given(v_with_zero_coordinates())
def test_deterministic_probes_have_det_one_f64(v: list[Any]) -> None:
    va = np.array([float(x) for x in v])
    Z, p = probe_matrix(F64, va)
    # entries are 0 and +-1 here, so the determinant is computed exactly over QQ
    assert set(Z.flat) <= {0.0, 1.0, -1.0}
    Zq = QQ.array([[F(x) for x in row] for row in Z.tolist()])
    assert det(QQ, Zq) == 1
    # every probe has |u_l^T v| >= |v_p| / 2 with |v_p| = max |v_i| (no tiny divisor)
    assert abs(va[p]) == np.abs(va).max()
    assert np.all(np.abs(Z @ va) >= abs(va[p]) / 2)


# -- the hypothesis violated: v = 0 ----------------------------------------
@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
@pytest.mark.parametrize("d", [1, 3])
def test_v_zero_is_not_identifiable(field: Field, d: int) -> None:
    W = np.arange(d * d).reshape(d, d) - 2
    if field is F64:
        W = W.astype(float)
    oracle = head_oracle(W.tolist(), [0] * d, field=field)
    with pytest.raises(NotIdentifiableError, match="W cannot be identified") as info:
        learn_single_head(oracle)
    v = info.value.recovered["v"]
    assert v.shape == (d,)
    assert all(x == 0 for x in v)
    if field.exact:
        assert all(field.is_element(x) for x in v)
    assert "W" not in info.value.recovered
    # only the d length-1 queries were spent: nothing was guessed
    assert oracle.queries_by_phase == {"v": d}


def test_v_zero_two_different_W_answer_identically() -> None:
    d = 3
    W1 = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    W2 = [[-5, 0, F(1, 3)], [0, 0, 0], [2, -1, 11]]
    f1 = SingleHeadAttention(W1, [0] * d, field=EXP)
    f2 = SingleHeadAttention(W2, [0] * d, field=EXP)
    assert not same(f1.W, f2.W)
    rng = np.random.default_rng(2024)
    for _ in range(12):
        X = EXP.gaussian(rng, (int(rng.integers(1, 6)), d))
        assert f1(X) == f2(X) == 0
    # a control: with v != 0 the same two W are told apart on these queries
    g1 = SingleHeadAttention(W1, [1, 0, 0], field=EXP)
    g2 = SingleHeadAttention(W2, [1, 0, 0], field=EXP)
    X = EXP.array([[0, 1, 0], [1, 0, 0]])
    assert g1(X) != g2(X)


# -- F64 route ---------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 8, 32, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_f64_relative_error_and_own_bound(d: int, seed: int) -> None:
    W, v = f64_instance(d, seed)
    oracle = head_oracle(W, v, field=F64)
    rec = learn_single_head(oracle)
    assert rec.status == "float" and rec.field == F64
    assert dict(rec.queries_by_phase) == {"v": d, "W": d * d}
    rel = np.abs(rec.W - W).max() / np.abs(W).max()
    assert rel < 1e-9
    # the recovery's own first-order bound (Frobenius) covers the actual error
    bound = float(rec.options["W_error_bound"])
    assert 0 < bound < 1e-6
    assert np.linalg.norm(rec.W - W) <= bound
    assert np.linalg.norm(rec.v - v) <= float(rec.options["v_error_bound"])
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "tolerance" and cert.tolerance


# -- certificates: sound, i.e. able to fail -------------------------------
def test_certificate_holds_on_correct_recovery_exact() -> None:
    oracle = head_oracle(W_EX, V_EX)
    cert = verify(learn_single_head(oracle), oracle)
    assert cert.holds and cert.kind == "exact" and cert.first_failure is None


@pytest.mark.parametrize("ij", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_certificate_rejects_perturbed_W_exact(ij: tuple[int, int]) -> None:
    oracle = head_oracle(W_EX, V_EX)
    rec = learn_single_head(oracle)
    bad = perturbed(rec, *ij, EXP(F(1, 7)))
    assert not same(bad.W, rec.W) and same(bad.v, rec.v)
    cert = verify(bad, oracle)
    assert cert.holds is False
    assert cert.first_failure is not None
    # every entry of W enters some transcript query, so the replay catches it
    assert cert.first_failure.source == "transcript"
    # with the transcript removed, fresh probes alone still catch it
    blind = dataclasses.replace(bad, transcript=Transcript(EXP))
    cert = verify(blind, oracle, probes=8)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


def test_certificate_rejects_perturbed_W_f64() -> None:
    d = 8
    W, v = f64_instance(d, 3)
    oracle = head_oracle(W, v, field=F64)
    rec = learn_single_head(oracle)
    assert verify(rec, oracle).holds
    bad = perturbed(rec, 5, 2, 1 / 7)
    cert = verify(bad, oracle)
    assert cert.holds is False and cert.kind == "tolerance"
    assert cert.first_failure is not None


def _two_heads(field: Field, d: int) -> tuple[SingleHeadAttention, SingleHeadAttention]:
    if field is EXP:
        h1 = SingleHeadAttention([[1, 0], [0, 1]], [1, 2], field=EXP)
        h2 = SingleHeadAttention([[0, 1], [-1, 0]], [2, -1], field=EXP)
        return h1, h2
    (W1, v1), (W2, v2) = f64_instance(d, 10), f64_instance(d, 11)
    return SingleHeadAttention(W1, v1, field=F64), SingleHeadAttention(W2, v2, field=F64)


def _two_head_oracle(h1: Any, h2: Any, field: Field) -> ValueOracle:
    def both(X: Any) -> Any:
        return h1(X) + h2(X)

    return ValueOracle(both, field=field, d=h1.d)


def _linear_oracle(field: Field, d: int) -> ValueOracle:
    a = field.array(list(range(1, d + 1)))

    def last_token(X: Any) -> Any:
        return X[-1] @ a

    return ValueOracle(last_token, field=field, d=d)


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_certificate_rejects_two_head_oracle(field: Field) -> None:
    d = 2 if field is EXP else 3
    h1, h2 = _two_heads(field, d)
    rec = learn_single_head(ValueOracle(h1))
    assert verify(rec, ValueOracle(h1)).holds
    cert = verify(rec, _two_head_oracle(h1, h2, field))
    assert cert.holds is False and cert.first_failure is not None


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_certificate_rejects_linear_oracle(field: Field) -> None:
    d = 2
    W = [[1, 0], [0, 1]] if field is EXP else [[1.0, 0.0], [0.0, 1.0]]
    head = SingleHeadAttention(W, [1, 2], field=field)
    rec = learn_single_head(ValueOracle(head))
    cert = verify(rec, _linear_oracle(field, d))
    assert cert.holds is False and cert.first_failure is not None


def test_learner_on_two_head_oracle_exact_raises() -> None:
    h1, h2 = _two_heads(EXP, 2)
    with pytest.raises(RecoveryFailedError, match="not a single-head attention model"):
        learn_single_head(_two_head_oracle(h1, h2, EXP))


def test_learner_on_two_head_oracle_f64_returns_a_failing_certificate() -> None:
    # In F64 every p = (y - v_j)/c_l of this instance lies in (0, 1), so the
    # learner cannot tell; it returns, and the certificate must reject it.
    h1, h2 = _two_heads(F64, 3)
    oracle = _two_head_oracle(h1, h2, F64)
    rec = learn_single_head(oracle)
    cert = verify(rec, oracle)
    assert cert.holds is False and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_learner_on_linear_oracle_raises(field: Field) -> None:
    # a . x_N answers v_j on every W query, so p = 0: no sigmoid gives that
    with pytest.raises(RecoveryFailedError, match="not a single-head attention model"):
        learn_single_head(_linear_oracle(field, 3))


# -- budget -------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
def test_budget_one_short_raises(d: int) -> None:
    W = [[F(i + 2 * j, 3) for j in range(d)] for i in range(d)]
    v = [1] * d
    budget = d + d * d - 1
    oracle = head_oracle(W, v, budget=budget)
    with pytest.raises(QueryBudgetExceededError, match=f"budget of {budget} exceeded") as info:
        learn_single_head(oracle)
    assert info.value.budget == budget
    assert oracle.queries <= budget


@pytest.mark.parametrize("d", [1, 2, 3])
def test_budget_exactly_enough(d: int) -> None:
    W = [[F(i + 2 * j, 3) for j in range(d)] for i in range(d)]
    v = [1] * d
    oracle = head_oracle(W, v, budget=d + d * d)
    rec = learn_single_head(oracle)
    assert same(rec.W, W) and same(rec.v, v)
    assert oracle.queries == oracle.budget == query_count(d)
    # the certificate works on a fork: it spends nothing from the budget
    assert verify(rec, oracle, probes=3).holds
    assert oracle.queries == query_count(d)


# -- JSON round trip --------------------------------------------------------
def _recover(field: Field) -> tuple[Recovery, ValueOracle]:
    if field is EXP:
        oracle = head_oracle(W_EX, V_EX)
    else:
        oracle = head_oracle(*f64_instance(5, 4), field=F64)
    return learn_single_head(oracle), oracle


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_recovery_json_round_trip(field: Field, tmp_path: Any) -> None:
    rec, oracle = _recover(field)
    loaded: list[Recovery] = [Recovery.from_json(json.loads(json.dumps(rec.to_json())))]
    path = tmp_path / "recovery.json"
    rec.save(str(path))
    loaded.append(Recovery.load(str(path)))
    for back in loaded:
        assert back.field == field and back.label == rec.label
        assert same(back.W, rec.W) and same(back.v, rec.v)
        assert back.W.dtype == rec.W.dtype
        assert dict(back.queries_by_phase) == dict(rec.queries_by_phase)
        assert back.queries == rec.queries and back.seed == rec.seed
        assert dict(back.options) == dict(rec.options)
        assert len(back.transcript) == len(rec.transcript)
        for a, b in zip(back.transcript, rec.transcript, strict=True):
            assert (a.index, a.phase) == (b.index, b.phase)
            assert same(a.X, b.X) and a.answer == b.answer
        cert = verify(back, oracle)
        assert cert.holds and cert.kind == ("exact" if field.exact else "tolerance")
    # the saved file with W[0, 1] moved (+1/7 exactly; a relative 1e-6 over F64): loaded,
    # it is a wrong model that the replay of its transcript rejects
    saved = json.loads(path.read_text())
    entries = saved["params"]["W"]["entries"]
    entries[1] = str(F(str(entries[1])) + F(1, 7)) if field.exact else entries[1] * (1 + 1e-6)
    path.write_text(json.dumps(saved))
    wrong = verify(Recovery.load(str(path)), oracle)
    assert not wrong.holds and wrong.first_failure is not None
    assert wrong.first_failure.source == "transcript"


def test_json_round_trip_keeps_a_wrong_model_wrong(tmp_path: Any) -> None:
    rec, oracle = _recover(EXP)
    bad = perturbed(rec, 1, 0, EXP(F(1, 7)))
    path = tmp_path / "bad.json"
    bad.save(str(path))
    back = Recovery.load(str(path))
    assert back.W[1, 0] == 2 + F(1, 7)
    assert verify(back, oracle).holds is False


# -- the recovery is frozen ----------------------------------------------------
def test_recovery_parameters_are_read_only() -> None:
    rec, _ = _recover(EXP)
    with pytest.raises(ValueError):
        rec.W[0, 0] = EXP(5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.queries = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        rec.params["W"] = rec.W  # type: ignore[index]
