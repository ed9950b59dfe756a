"""one_layer_reduction: a one-layer Transformer = FFN learner + single-head learner.

Paper §4.1 (v1 and v2); paper.md §3; docs/one_layer.md. As docs/style.md
asks: a worked example with literal numbers; property tests of exact
recovery (plain and residual); the query counts against their closed forms
Q_FFN + 2(d + d^2), Q_FFN + 2(2d + d^2) and d^2 + 2d (skip head), read from
the oracle's own counter; certificates that hold and that reject perturbed
models; the violated hypothesis A w_o = 0 with its clear error; the residual
counterexample (W, g, v, u do not determine TF).

Exact fields are compared with ``==`` only.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import exactattn.checks.one_layer_reduction as checks  # registers the certificate builder
from exactattn.certificates import verify
from exactattn.errors import (
    IncompatibleFieldError,
    NotIdentifiableError,
    QueryBudgetExceededError,
    RecoveryFailedError,
    ShapeError,
)
from exactattn.fields import EXP, F64, QQ
from exactattn.learners.one_layer import (
    LABEL,
    antisymmetrised,
    attention_query_count,
    learn_one_layer,
)
from exactattn.learners.recovery import Recovery
from exactattn.learners.skip_head import learn_skip_head
from exactattn.learners.skip_head import query_count as skip_query_count
from exactattn.models import (
    OneLayerTransformer,
    ResidualOneLayerTransformer,
    SingleHeadAttention,
    SkipHeadAttention,
)
from exactattn.models.relu import ReluFFN, equivalent
from exactattn.oracle import Transcript, ValueOracle
from tests.helpers import e, same

F = Fraction


# -- helpers -------------------------------------------------------------------




def with_params(rec: Recovery, **changes: Any) -> Recovery:
    return dataclasses.replace(rec, params={**rec.params, **changes})


def ffn_of(rec: Recovery) -> ReluFFN:
    return ReluFFN(rec.params["A"], rec.params["w"], field=EXP)


def check_counts(rec: Recovery, oracle: ValueOracle, d: int, *, residual: bool) -> None:
    """The count is the closed form, from the oracle's own counter, phase by phase."""
    q_ffn = int(rec.options["ffn_queries"])
    assert q_ffn > 0
    assert rec.queries == oracle.queries == q_ffn + attention_query_count(d, residual=residual)
    assert rec.queries == checks.expected_queries(q_ffn, d, residual=residual)
    phases = dict(rec.queries_by_phase)
    anti = {k: n for k, n in phases.items() if k.startswith("antisymmetrised:")}
    if residual:
        assert anti == {"antisymmetrised:v+u": 2 * d, "antisymmetrised:v": 2 * d,
                        "antisymmetrised:W": 2 * d * d}
    else:
        assert anti == {"antisymmetrised:v": 2 * d, "antisymmetrised:W": 2 * d * d}
    assert sum(n for k, n in phases.items() if k not in anti) == q_ffn
    # the FFN step asks length-1 queries only: TF([x^T]) = g(x) holds for them alone
    ffn_entries = [t for t in oracle.transcript if not t.phase.startswith("antisymmetrised:")]
    assert len(ffn_entries) == q_ffn and all(t.X.shape[0] == 1 for t in ffn_entries)


# -- worked example, d = m = 2 ----------------------------------------------------
# W = [[1/2, -1], [2, 1/3]], A = [[1, 0], [-1, 2]], w_o = [1, -1]:
# g(x) = ReLU(x_1 - x_2) - ReLU(2 x_2) and A w_o = (1, -3) (both coordinates
# nonzero, so the probes are Z = I and c = v).
W_EX = [[F(1, 2), -1], [2, F(1, 3)]]
A_EX = [[1, 0], [-1, 2]]
W_O_EX = [1, -1]


def example() -> OneLayerTransformer:
    return OneLayerTransformer(W_EX, A_EX, W_O_EX, field=EXP)


def test_worked_example_model_values() -> None:
    tf = example()
    assert same(tf.v, [1, -3])
    # length 1: A^T (1, 1) = (0, 2), so TF = 1 * 0 - 1 * 2
    assert tf([[1, 1]]) == -2
    assert tf([[3, 1]]) == 2 - 2  # A^T x = (2, 2)
    # X = [(2, 0); (1, 0)]: scores 2 W_11 = 1 and W_11 = 1/2; X A has rows (2, 0), (1, 0)
    X = EXP.array([[2, 0], [1, 0]])
    a1 = e(1) / (e(1) + e(F(1, 2)))
    assert tf.attention(X)[0] == a1
    assert tf(X) == (2 * e(1) + e(F(1, 2))) / (e(1) + e(F(1, 2)))
    assert tf(-X) == 0  # both pre-activations <= 0
    assert tf(X) - tf(-X) == 2 * a1 + (1 - a1) * 1  # alpha^T X (A w_o)


def test_worked_example_recovery() -> None:
    tf = example()
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle)
    assert rec.label == LABEL == "one_layer_reduction"
    assert rec.field == EXP and rec.status == "exact_given"
    assert same(rec.W, [[F(1, 2), -1], [2, F(1, 3)]])
    assert same(rec.v, [1, -3])
    assert equivalent(ffn_of(rec), ReluFFN(A_EX, W_O_EX, field=EXP))
    assert same(rec.params["A"] @ rec.params["w"], [1, -3])
    check_counts(rec, oracle, 2, residual=False)
    assert rec.queries == rec.options["ffn_queries"] + 12
    # the step-2 transcript: X then -X, adjacent; the first W query is the one above
    step2 = [t for t in rec.transcript if t.phase.startswith("antisymmetrised:")]
    assert [t.phase for t in step2] == ["antisymmetrised:v"] * 4 + ["antisymmetrised:W"] * 8
    assert same(step2[0].X, [[1, 0]]) and same(step2[1].X, [[-1, 0]])
    assert step2[0].answer - step2[1].answer == 1  # g(e_1) - g(-e_1) = v_1
    X, negX = step2[4], step2[5]
    assert same(X.X, [[2, 0], [1, 0]]) and same(negX.X, [[-2, 0], [-1, 0]])
    assert X.answer == (2 * e(1) + e(F(1, 2))) / (e(1) + e(F(1, 2))) and negX.answer == 0
    cert = verify(rec, oracle, probes=6)
    assert cert.holds and cert.kind == "exact" and cert.replayed == len(rec.transcript)


def test_worked_example_residual() -> None:
    # V = [[0, 1], [1, 0]], W_1 = [[1, 0], [0, 1], [1, 1]], w_o = [2, 1, -1]:
    # u = W_1^T w_o = (1, 0), v = V^T u = (0, 1)
    tf = ResidualOneLayerTransformer(W_EX, [[0, 1], [1, 0]], [[1, 0], [0, 1], [1, 1]],
                                     [2, 1, -1], field=EXP)
    assert same(tf.u, [1, 0]) and same(tf.v, [0, 1])
    A, w = tf.length_one_ffn
    assert same(A, [[1, 1, 2], [1, 1, 2]])  # (I + V)^T W_1^T
    assert tf([[1, -1]]) == 0 and tf([[1, 2]]) == 2 * 3 + 3 - 6
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle, residual=True)
    assert same(rec.W, W_EX) and same(rec.v, [0, 1]) and same(rec.params["u"], [1, 0])
    assert equivalent(ffn_of(rec), ReluFFN(A, w, field=EXP))
    check_counts(rec, oracle, 2, residual=True)
    assert rec.queries == rec.options["ffn_queries"] + 2 * (2 * 2 + 4)
    # v_2 = 0 for the deterministic probes: z_2 = e_2 + e_p with p the first nonzero
    assert rec.options["pivot"] == 1
    cert = verify(rec, antisymmetrised(oracle), probes=6)
    assert cert.holds and cert.kind == "exact"


# -- query counts ------------------------------------------------------------------
def test_closed_forms() -> None:
    assert [attention_query_count(d) for d in (1, 2, 4, 8, 16)] == [4, 12, 40, 144, 544]
    assert [attention_query_count(d, residual=True) for d in (1, 2, 4)] == [6, 16, 48]
    assert [skip_query_count(d) for d in (1, 2, 3, 4)] == [3, 8, 15, 24]


@pytest.mark.parametrize(("d", "m"), [(1, 1), (2, 3), (3, 2), (4, 4)])
def test_query_count_is_spent_exactly(d: int, m: int) -> None:
    tf = checks.one_layer_instance(d, m, seed=7)
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle)
    assert same(rec.W, tf.W) and same(rec.v, tf.v)
    check_counts(rec, oracle, d, residual=False)


@pytest.mark.parametrize(("d", "m"), [(1, 2), (3, 3)])
def test_residual_query_count_is_spent_exactly(d: int, m: int) -> None:
    tf = checks.residual_instance(d, m, seed=3)
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle, residual=True)
    assert same(rec.W, tf.W) and same(rec.v, tf.v) and same(rec.params["u"], tf.u)
    check_counts(rec, oracle, d, residual=True)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_skip_head_count_equals_unknowns(d: int) -> None:
    head = checks.skip_head_instance(d, 0, zeros_in_v=d // 2)
    oracle = ValueOracle(head)
    rec = learn_skip_head(oracle)
    assert same(rec.W, head.W) and same(rec.v, head.v) and same(rec.params["u"], head.u)
    unknowns = head.W.size + head.v.size + head.u.size
    assert rec.queries == oracle.queries == skip_query_count(d) == unknowns == d * d + 2 * d
    assert dict(rec.queries_by_phase) == {"v+u": d, "v": d, "W": d * d}
    assert [t.X.shape[0] for t in rec.transcript] == [1] * d + [2] * (d + d * d)


# -- property tests of exact recovery --------------------------------------------------
small = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@st.composite
def transformers(draw: Any, max_d: int = 3, max_m: int = 3) -> tuple[Any, Any, Any]:
    d, m = draw(st.integers(1, max_d)), draw(st.integers(1, max_m))
    W = draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d))
    A = draw(st.lists(st.lists(small, min_size=m, max_size=m), min_size=d, max_size=d))
    w = draw(st.lists(small, min_size=m, max_size=m))
    return W, A, w


@given(transformers())
def test_exact_recovery_property(params: tuple[Any, Any, Any]) -> None:
    W, A, w = params
    tf = OneLayerTransformer(W, A, w, field=EXP)
    assume(any(x != 0 for x in tf.v))
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle)
    assert same(rec.W, W) and same(rec.v, tf.v)
    assert equivalent(ffn_of(rec), ReluFFN(A, w, field=EXP))
    check_counts(rec, oracle, tf.d, residual=False)
    assert verify(rec, oracle, probes=2).holds


@given(transformers(max_d=3, max_m=2), st.lists(small, min_size=9, max_size=9))
def test_residual_recovery_property(params: tuple[Any, Any, Any], flat_V: list[Any]) -> None:
    W, A, w = params
    d, m = len(W), len(w)
    V = [flat_V[i * d:(i + 1) * d] for i in range(d)]
    W1 = [list(col) for col in zip(*A, strict=True)]  # an m x d matrix
    tf = ResidualOneLayerTransformer(W, V, W1, w, field=EXP)
    assume(any(x != 0 for x in tf.v))
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle, residual=True)
    assert same(rec.W, W) and same(rec.v, tf.v) and same(rec.params["u"], tf.u)
    assert equivalent(ffn_of(rec), ReluFFN(*tf.length_one_ffn, field=EXP))
    check_counts(rec, oracle, d, residual=True)
    assert m == tf.m


@given(st.integers(1, 4), st.integers(0, 50), st.sampled_from(["deterministic", "gaussian"]))
def test_skip_head_property(d: int, seed: int, probes: Any) -> None:
    head = checks.skip_head_instance(d, seed, zeros_in_v=seed % d)
    oracle = ValueOracle(head)
    rec = learn_skip_head(oracle, probes=probes, seed=seed)
    assert same(rec.W, head.W) and same(rec.v, head.v) and same(rec.params["u"], head.u)
    assert rec.queries == skip_query_count(d)
    assert verify(rec, oracle, probes=2).holds


# -- certificates: they hold, and they can fail ---------------------------------------
def test_certificate_rejects_perturbed_models() -> None:
    tf = checks.one_layer_instance(3, 3, seed=1)
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle)
    assert verify(rec, oracle).holds
    W = rec.W.copy()
    W[2, 0] = W[2, 0] + EXP(F(1, 7))
    w = rec.params["w"].copy()
    w[-1] = w[-1] + EXP(F(1, 7))
    A = rec.params["A"].copy()
    A[0, 0] = A[0, 0] - EXP(F(1, 3))
    for bad in (with_params(rec, W=W), with_params(rec, w=w), with_params(rec, A=A)):
        cert = verify(bad, oracle)
        assert cert.holds is False and cert.first_failure is not None
        assert cert.first_failure.source == "transcript"
        blind = dataclasses.replace(bad, transcript=Transcript(EXP))
        cert = verify(blind, oracle, probes=16)
        assert cert.holds is False and cert.first_failure is not None
        assert cert.first_failure.source == "fresh"


def test_certificate_rebuilds_the_whole_transformer() -> None:
    tf = checks.one_layer_instance(2, 3, seed=2)
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle)
    model = checks.build_model(rec)
    assert isinstance(model, OneLayerTransformer)
    rng = np.random.default_rng(5)
    for N in (1, 2, 3, 6):
        X = checks.random_query(rng, 2, N)
        assert model(X) == tf(X)
    # offline replay of a saved recovery (JSON round trip)
    again = Recovery.from_json(rec.to_json())
    assert verify(again, None).holds and same(again.W, rec.W)
    # the saved recovery with W[1, 0] moved by 1/7: rejected by the same offline replay
    saved = rec.to_json()
    entries = saved["params"]["W"]["entries"]
    entries[2] = str(F(str(entries[2])) + F(1, 7))
    wrong = verify(Recovery.from_json(saved), None)
    assert not wrong.holds and wrong.first_failure is not None
    assert wrong.first_failure.source == "transcript"


def test_residual_certificate_rejects_perturbed_u() -> None:
    tf = checks.residual_instance(2, 2, seed=0)
    oracle = ValueOracle(tf)
    rec = learn_one_layer(oracle, residual=True)
    assert verify(rec, antisymmetrised(oracle)).holds
    u = rec.params["u"].copy()
    u[0] = u[0] + EXP(F(1, 7))
    cert = verify(with_params(rec, u=u), antisymmetrised(oracle))
    assert cert.holds is False and cert.first_failure is not None


# -- the violated hypothesis: A w_o = 0 --------------------------------------------------
@pytest.mark.parametrize("d", [1, 3])
def test_A_w_o_zero_is_not_identifiable(d: int) -> None:
    a = [F(k + 1, 2) for k in range(d)]
    A = [[x, -x] for x in a]  # g(x) = |a . x| and A w_o = 0
    tf = OneLayerTransformer(np.eye(d, dtype=int).tolist(), A, [1, 1], field=EXP)
    oracle = ValueOracle(tf)
    with pytest.raises(NotIdentifiableError,
                       match="W is not identifiable from these queries") as raised:
        learn_one_layer(oracle)
    info = raised.value.recovered
    assert all(x == 0 for x in info["v"]) and set(info) >= {"A", "w", "v"}
    assert equivalent(ReluFFN(info["A"], info["w"], field=EXP), ReluFFN(A, [1, 1], field=EXP))
    # only the FFN queries and the 2d antisymmetrised v-queries were spent
    phases = oracle.queries_by_phase
    assert phases["antisymmetrised:v"] == 2 * d and "antisymmetrised:W" not in phases
    # and indeed two different W give the same (zero) antisymmetrised answers
    other = OneLayerTransformer((np.eye(d, dtype=int) * 3 - 1).tolist(), A, [1, 1], field=EXP)
    rng = np.random.default_rng(d)
    for _ in range(4):
        X = checks.random_query(rng, d)
        assert tf(X) - tf(-X) == other(X) - other(-X) == 0


def test_residual_v_zero_is_not_identifiable() -> None:
    # V = 0: v = V^T W_1^T w_o = 0 and TF(X) - TF(-X) = u . x_N whatever W is
    tf = ResidualOneLayerTransformer([[1, 2], [3, 4]], [[0, 0], [0, 0]], [[1, -1]], [2],
                                     field=EXP)
    with pytest.raises(NotIdentifiableError, match="not identifiable") as info:
        learn_one_layer(ValueOracle(tf), residual=True)
    assert same(info.value.recovered["u"], [2, -2])


def test_skip_head_v_zero_and_impossible_answers() -> None:
    head = SkipHeadAttention([[1, 0], [0, 1]], [0, 0], [1, 2], field=EXP)
    with pytest.raises(NotIdentifiableError, match="W cannot be identified") as info:
        learn_skip_head(ValueOracle(head))
    assert same(info.value.recovered["u"], [1, 2])
    # an oracle that is not a skip-term head: constant answers for two tokens
    const = ValueOracle(lambda X: EXP(1) if X.shape[0] == 1 else EXP(3), field=EXP, d=2)
    with pytest.raises(RecoveryFailedError, match="column 0, probe 0"):
        learn_skip_head(const)
    # a transcendental answer where every skip-term head gives a rational one
    odd = ValueOracle(lambda X: e(1) if X.shape[0] == 1 else EXP(1), field=EXP, d=2)
    with pytest.raises(RecoveryFailedError, match="not rational"):
        learn_skip_head(odd)


def test_plain_learner_on_a_residual_oracle_fails_loudly() -> None:
    # a skip term the plain reduction does not expect: never a silent wrong W
    tf = checks.residual_instance(2, 2, seed=4)
    with pytest.raises(RecoveryFailedError):
        learn_one_layer(ValueOracle(tf))


# -- the residual variant is not determined by (W, g, v, u) ------------------------------
def test_residual_counterexample() -> None:
    zero = [[0, 0], [0, 0]]
    m1 = ResidualOneLayerTransformer(zero, [[0, 1], [1, 0]], [[1, 0], [0, 1]], [1, 1])
    m2 = ResidualOneLayerTransformer(zero, [[1, 0], [0, 1]], [[F(1, 2), F(1, 2)]], [2])
    assert same(m1.v, m2.v) and same(m1.u, m2.u)  # both (1, 1)
    assert equivalent(ReluFFN(*m1.length_one_ffn, field=EXP),
                      ReluFFN(*m2.length_one_ffn, field=EXP))  # g = 2 ReLU(x_1 + x_2)
    rng = np.random.default_rng(0)
    for _ in range(4):
        X = checks.random_query(rng, 2)
        assert m1(X) - m1(-X) == m2(X) - m2(-X)
    # alpha = (1/2, 1/2): m1 = ReLU(1) + ReLU(-1), m2 = ReLU(1 + 0 - 1)
    assert m1([[-3, 0], [1, 0]]) == 1 and m2([[-3, 0], [1, 0]]) == 0


# -- the antisymmetrised oracle ----------------------------------------------------------
def test_antisymmetrised_oracle_counts_and_forks() -> None:
    tf = example()
    oracle = ValueOracle(tf, budget=6)
    anti = antisymmetrised(oracle)
    X = EXP.array([[1, 2], [0, 1]])
    assert anti(X) == tf.attention(X) @ X @ tf.v
    ys = anti.batch([X, X[:1]], phase="b")
    assert ys[1] == X[0] @ tf.v
    assert anti.queries == 3 and oracle.queries == 6
    assert oracle.queries_by_phase == {"antisymmetrised:query": 2, "antisymmetrised:b": 4}
    assert same(oracle.transcript[3].X, -oracle.transcript[2].X)
    fork = anti.fork("certificate")
    fork(X)
    assert oracle.queries == 6 and fork.queries == 1
    with pytest.raises(QueryBudgetExceededError):
        anti(X)  # the inner budget of 6 is spent: the fork did not touch it


def test_learner_refuses_a_rational_oracle() -> None:
    tf = OneLayerTransformer(W_EX, A_EX, W_O_EX, field=QQ)
    assert tf([[1, 1]]) == -2  # length-1 queries are rational
    with pytest.raises(IncompatibleFieldError, match="EXP"):
        learn_one_layer(ValueOracle(tf))


# -- the models ---------------------------------------------------------------------
def test_model_validation() -> None:
    with pytest.raises(ShapeError, match="A has shape"):
        OneLayerTransformer(W_EX, [[1, 0, 2]], W_O_EX)
    with pytest.raises(ShapeError, match="w_o has shape"):
        OneLayerTransformer(W_EX, A_EX, [1, 2, 3])
    with pytest.raises(ShapeError, match="hidden width m must be at least 1"):
        OneLayerTransformer(W_EX, np.zeros((2, 0), dtype=int), [])
    with pytest.raises(ShapeError, match="square"):
        OneLayerTransformer([[1, 2]], A_EX, W_O_EX)
    with pytest.raises(ShapeError, match="V has shape"):
        ResidualOneLayerTransformer(W_EX, [[1]], [[1, 0]], [1])
    with pytest.raises(ShapeError, match="W1 has shape"):
        ResidualOneLayerTransformer(W_EX, W_EX, [[1, 0, 0]], [1])
    with pytest.raises(ShapeError, match="u has shape"):
        SkipHeadAttention(W_EX, [1, 2], [1])
    with pytest.raises(ShapeError, match="width 3"):
        example()([[1, 2, 3]])


def test_models_over_f64_agree_with_exp() -> None:
    rng = np.random.default_rng(3)
    tf = checks.one_layer_instance(3, 2, seed=5)
    res = checks.residual_instance(3, 2, seed=5)
    skip = checks.skip_head_instance(3, 5)

    def f64(A: Any) -> Any:
        return np.array([[float(x) for x in row] for row in A]) if A.ndim == 2 else \
            np.array([float(x) for x in A])

    tf64 = OneLayerTransformer(f64(tf.W), f64(tf.A), f64(tf.w_o), field=F64)
    res64 = ResidualOneLayerTransformer(f64(res.W), f64(res.V), f64(res.W1), f64(res.w_o),
                                        field=F64)
    skip64 = SkipHeadAttention(f64(skip.W), f64(skip.v), f64(skip.u), field=F64)
    Xs = [checks.random_query(rng, 3, 4) for _ in range(3)]
    Xf = np.stack([f64(X) for X in Xs])
    for exact, approx in ((tf, tf64), (res, res64), (skip, skip64)):
        got = approx.batch(Xf)
        for b, X in enumerate(Xs):
            assert abs(got[b] - float(exact(X))) <= 1e-12 * (1 + abs(got[b]))
            assert abs(got[b] - approx(Xf[b])) <= 1e-12 * (1 + abs(got[b]))


def test_skip_head_with_u_zero_is_a_single_head() -> None:
    W, v = [[1, -1], [F(1, 2), 2]], [3, -1]
    skip = SkipHeadAttention(W, v, [0, 0], field=EXP)
    head = SingleHeadAttention(W, v, field=EXP)
    rng = np.random.default_rng(1)
    for _ in range(5):
        X = checks.random_query(rng, 2)
        assert skip(X) == head(X)


def test_ffn_field_qq_is_embedded_in_exp() -> None:
    oracle = ValueOracle(example())
    rec = learn_one_layer(oracle, ffn_field=QQ)
    assert rec.options["ffn_field"] == "QQ" and rec.field == EXP
    assert all(EXP.is_element(x) for x in rec.params["A"].flat)
    assert same(rec.W, W_EX) and verify(rec, oracle, probes=2).holds
