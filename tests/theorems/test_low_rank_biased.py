"""low_rank_adaptive, biased variant: heads of real layers (rank(W) <= r, biases) at the floor.

Learner :func:`exactattn.learners.biased_low_rank.learn_biased_low_rank`;
claims ``low_rank_adaptive.biased_*``. As docs/style.md asks: a worked
example with literal numbers; property tests of exact recovery (both
routes, rank given and discovered, EXP and QQ); the query counts against
their closed forms from the oracle's counter; certificates that hold and
that reject perturbed models (with a near miss a float comparison would
accept); the violated hypotheses (v = 0, rank larger than declared, c
outside the column space) with their outcomes; F64 with error bounds.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exactattn.checks.low_rank_biased  # noqa: F401  (registers the certificate builder)
from exactattn.certificates import verify
from exactattn.checkpoints import random_layer
from exactattn.checks.low_rank_biased import biased_low_rank_head
from exactattn.claims import run_claims
from exactattn.errors import (
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64, QQ
from exactattn.learners import learn_biased_low_rank
from exactattn.learners.biased_low_rank import (
    LABEL,
    Bias,
    biased_degrees_of_freedom,
    biased_low_rank_query_count,
)
from exactattn.learners.low_rank import over_field
from exactattn.learners.recovery import Recovery
from exactattn.linalg import rank
from exactattn.models import BiasedSingleHeadAttention
from exactattn.oracle import ValueOracle
from tests.helpers import sigma

F = Fraction

# -- worked example: d = 3, r = 1 ----------------------------------------------------------
# W = (1, 2, -1)^T (2, -1, 0): rank 1; c = 3 (1, 2, -1) is in its column space.
W_EX = [[2, -1, 0], [4, -2, 0], [-2, 1, 0]]
C_EX = [3, 6, -3]
C_OUT = [1, 0, 0]                    # not in the column space of W_EX
V_EX = [1, 0, F(1, 2)]
BETA_EX = F(-3, 2)


def _q(A: Any, field: Any) -> list[Any]:
    return [field.to_rational(x) for x in np.asarray(A, dtype=object).flat]


def _same_head(rec: Recovery, head: BiasedSingleHeadAttention) -> bool:
    Fr = rec.field
    return (_q(rec.W, Fr) == _q(head.W, EXP) and _q(rec.params["c"], Fr) == _q(head.c, EXP)
            and _q(rec.v, Fr) == _q(head.v, EXP)
            and _q(rec.params["beta"], Fr) == [EXP.to_rational(head.beta)])


def test_worked_example_measurement_by_hand() -> None:
    head = BiasedSingleHeadAttention(W_EX, C_EX, V_EX, BETA_EX, field=EXP)
    p, x = EXP.array([1, 0, 0]), EXP.array([0, 1, 0])
    # [(p + x)^T; x^T]: gap p^T (W x + c) = W_12 + c_1 = -1 + 3 = 2; values 1 and 0
    y = head(np.stack([p + x, x]))
    assert y == BETA_EX + 0 + sigma(2) * 1
    assert EXP.logit((y - BETA_EX - x @ head.v) / (p @ head.v)) == 2
    # x = 0 measures p^T c alone
    assert EXP.logit((head(np.stack([p, 0 * p])) - BETA_EX) / (p @ head.v)) == 3


@pytest.mark.parametrize("bias, count", [("general", 12), ("column_space", 10)])
def test_worked_example_recovery(bias: Any, count: int) -> None:
    head = BiasedSingleHeadAttention(W_EX, C_EX, V_EX, BETA_EX, field=EXP)
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, rank=1, bias=bias)
    assert _same_head(rec, head)
    assert rec.label == LABEL and rec.status == "exact_given"
    # general: 1 + 3 + 3 + 1 (6 - 1) = 12; column space: 1 + 3 + 1 (7 - 1) = 10;
    # the full biased learner needs (d + 1)^2 = 16
    assert rec.queries == oracle.queries == count == biased_low_rank_query_count(3, 1, bias=bias)
    assert [t.answer for t in rec.transcript[:4]] == [BETA_EX, 1 + BETA_EX, BETA_EX,
                                                      F(1, 2) + BETA_EX]
    what = "rank(W)" if bias == "general" else "rank([W | c])"
    assert rec.hypotheses == (f"{what} <= 1",)
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "exact" and cert.replayed == count


# -- counts ---------------------------------------------------------------------------
def test_closed_forms_against_degrees_of_freedom() -> None:
    # the figures: d = 384, r = 32 has r(2d - r) + 2d + 1 = 24,321 degrees of freedom
    assert biased_degrees_of_freedom(384, 32) == 32 * (768 - 32) + 769 == 24_321
    assert biased_degrees_of_freedom(384, 32, bias="column_space") == 24_321 - (384 - 32)
    for d in range(1, 7):
        assert biased_degrees_of_freedom(d, d) == (d + 1) ** 2      # the full biased learner
        assert biased_degrees_of_freedom(d, d, bias="column_space") == (d + 1) ** 2
        for r in range(d + 1):
            assert biased_low_rank_query_count(d, r, rank_given=False) == \
                biased_degrees_of_freedom(d, r) + (r < d)


@pytest.mark.parametrize("d, r", [(1, 0), (1, 1), (2, 1), (3, 0), (4, 2), (5, 5), (8, 3)])
@pytest.mark.parametrize("bias", ["general", "column_space"])
def test_count_is_the_floor(d: int, r: int, bias: Any) -> None:
    head = biased_low_rank_head(d, r, seed=d, c_in_column_space=True)
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, rank=r, bias=bias, seed=r)
    assert _same_head(rec, head)
    assert oracle.queries == rec.queries == biased_low_rank_query_count(d, r, bias=bias)
    n = d if bias == "general" else d + 1
    phases = {"beta": 1, "v": d, "c": d if bias == "general" else 0, "core": r * r,
              "WB": r * (d - r), "AW": r * (n - r)}
    assert dict(rec.queries_by_phase) == {k: m for k, m in phases.items() if m}
    assert rec.options["queries_over_floor"] == 0


@pytest.mark.parametrize("d, r", [(1, 0), (2, 1), (4, 2), (5, 5), (7, 3)])
@pytest.mark.parametrize("bias", ["general", "column_space"])
def test_rank_discovered_one_query_over_the_floor(d: int, r: int, bias: Any) -> None:
    head = biased_low_rank_head(d, r, seed=d + 1, c_in_column_space=True)
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, bias=bias, seed=d)
    assert _same_head(rec, head) and rec.options["rank"] == r
    assert oracle.queries == biased_low_rank_query_count(d, r, bias=bias, rank_given=False)
    assert rec.options["queries_over_floor"] == (1 if r < d else 0)


# -- property tests -------------------------------------------------------------------
small = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@st.composite
def biased_heads(draw: Any) -> tuple[BiasedSingleHeadAttention, int]:
    """A biased head with W = U V^T (U, V d x k), c random or in the column space, v != 0."""
    d = draw(st.integers(1, 4))
    k = draw(st.integers(0, d))

    def mat(rows: int, cols: int) -> Any:
        return QQ.array(draw(st.lists(st.lists(small, min_size=cols, max_size=cols),
                                      min_size=rows, max_size=rows))).reshape(rows, cols)

    U, V = mat(d, k), mat(d, k)
    W = U @ V.T if k else QQ.zeros((d, d))
    c = (W @ mat(d, 1))[:, 0] if draw(st.booleans()) else mat(d, 1)[:, 0]
    v = draw(st.lists(small, min_size=d, max_size=d))
    if not any(v):
        v[0] = F(1)
    head = BiasedSingleHeadAttention(EXP.array(W), EXP.array(c), v, draw(small), field=EXP)
    return head, rank(QQ, W)


@given(biased_heads(), st.integers(0, 3), st.sampled_from([EXP, QQ]))
def test_exact_recovery_general(case: Any, seed: int, field: Any) -> None:
    head, r = case
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, rank=r, seed=seed, field=field)
    assert _same_head(rec, head)
    assert oracle.queries == biased_degrees_of_freedom(head.d, r)
    assert verify(over_field(rec, EXP), oracle, probes=2, seed=seed).holds


@given(biased_heads(), st.integers(0, 3))
def test_exact_recovery_column_space_rank_discovered(case: Any, seed: int) -> None:
    head, _ = case
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, bias="column_space", seed=seed)
    assert _same_head(rec, head)       # whatever c is: nothing is assumed
    Wc = np.concatenate([head.W, head.c[:, None]], axis=1)
    assert rec.options["rank"] == rank(EXP, Wc)
    assert rec.options["c_in_column_space"] == (rank(EXP, Wc) == rank(EXP, head.W))


# -- certificates ------------------------------------------------------------------------
def _perturbed(rec: Recovery, name: str, delta: Any) -> Recovery:
    params = {k: np.array(A) for k, A in rec.params.items()}
    params[name].flat[0] = params[name].flat[0] + delta
    return dataclasses.replace(rec, params=params)


@pytest.mark.parametrize("name", ["W", "c"])
def test_certificate_rejects_a_perturbed_model_and_a_near_miss(name: str) -> None:
    head = biased_low_rank_head(5, 2, seed=3)
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, rank=2)
    assert verify(rec, oracle, probes=4).holds
    assert not verify(_perturbed(rec, name, EXP(F(1, 7))), oracle, probes=4).holds
    # near miss: 10^-30 off; every answer agrees to ~30 digits, so a float comparison
    # would accept the model, == does not
    near = _perturbed(rec, name, EXP(F(1, 10**30)))
    X = rec.transcript[-1].X
    assert float(near_model_answer(near, X)) == float(rec.transcript[-1].answer)
    assert not verify(near, oracle, probes=4).holds


def near_model_answer(rec: Recovery, X: Any) -> Any:
    from exactattn.certificates import rebuild
    return rebuild(rec)(X)


def test_f64_certificate_rejects_a_perturbed_model() -> None:
    layer = random_layer(24, 4, seed=1)
    target = layer.head(2)
    oracle = target.oracle()
    rec = learn_biased_low_rank(oracle, rank=6, bias="column_space", scale=4)
    cert = verify(rec, oracle, probes=8)
    assert cert.holds and cert.kind == "tolerance"
    assert not verify(_perturbed(rec, "W", 1e-3), oracle, probes=8).holds
    assert not verify(_perturbed(rec, "c", 1e-3), oracle, probes=8).holds


# -- violated hypotheses -------------------------------------------------------------------
def test_v_zero_is_not_identifiable() -> None:
    head = BiasedSingleHeadAttention(W_EX, C_EX, [0, 0, 0], 5, field=EXP)
    with pytest.raises(NotIdentifiableError, match="v = 0") as info:
        learn_biased_low_rank(ValueOracle(head), rank=1)
    assert info.value.recovered["beta"][()] == 5


@pytest.mark.parametrize("bias", ["general", "column_space"])
def test_rank_larger_than_declared_is_caught(bias: Any) -> None:
    head = biased_low_rank_head(5, 3, seed=2)
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, rank=2, bias=bias)
    assert not _same_head(rec, head)
    assert verify(rec, None).holds                      # the floor transcript is consistent
    assert not verify(rec, oracle, probes=4).holds       # fresh probes are not
    with pytest.raises(HypothesisViolatedError, match="<= 2"):
        learn_biased_low_rank(ValueOracle(head), rank=2, bias=bias, confirm=1)
    # c is not in the column space here: rank [W | c] = 4, rank W = 3
    ok = learn_biased_low_rank(ValueOracle(head), rank=3 if bias == "general" else 4,
                               bias=bias, confirm=2)
    assert _same_head(ok, head) and "tested, not proved" in ok.hypotheses[0]


def test_c_outside_the_column_space() -> None:
    head = BiasedSingleHeadAttention(W_EX, C_OUT, V_EX, BETA_EX, field=EXP)
    # rank given: the hypothesis rank [W | c] <= 1 is false; confirm catches it
    with pytest.raises(HypothesisViolatedError, match=r"rank\(\[W \| c\]\)"):
        learn_biased_low_rank(ValueOracle(head), rank=1, bias="column_space", confirm=1)
    # the general route needs no such hypothesis
    assert _same_head(learn_biased_low_rank(ValueOracle(head), rank=1), head)
    # rank discovered: recovered anyway, and the failure of the saving is reported
    oracle = ValueOracle(head)
    rec = learn_biased_low_rank(oracle, bias="column_space")
    assert _same_head(rec, head) and rec.options["rank"] == 2
    assert rec.options["c_in_column_space"] is False
    general = biased_low_rank_query_count(3, 1, rank_given=False)
    # d - r = 2 queries more than the general route with discovery would have spent
    assert rec.options["extra_queries_vs_general"] == oracle.queries - general == 2


def test_answers_of_no_biased_head_are_refused() -> None:
    def fake(X: Any) -> Any:   # length 1: v . x with v = (1, 1), beta = 0; then always 5
        return EXP(5) if X.shape[0] > 1 else sum(X[0], EXP(0))
    with pytest.raises(RecoveryFailedError, match="not a biased single-head"):
        learn_biased_low_rank(ValueOracle(fake, field=EXP, d=2), rank=1)


def test_bad_input() -> None:
    oracle = ValueOracle(BiasedSingleHeadAttention(W_EX, C_EX, V_EX, 0, field=EXP))
    with pytest.raises(InvalidEntryError, match="bias must be"):
        learn_biased_low_rank(oracle, rank=1, bias="other")  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError, match="rank must be"):
        learn_biased_low_rank(oracle, rank=4)
    with pytest.raises(InvalidEntryError, match="confirm"):
        learn_biased_low_rank(oracle, rank=1, confirm=-1)
    with pytest.raises(InvalidEntryError, match="scale must be positive"):
        learn_biased_low_rank(oracle, rank=1, scale=0)
    with pytest.raises(IncompatibleFieldError):
        learn_biased_low_rank(oracle, rank=1, field=F64)
    f64 = random_layer(8, 2).head(0).oracle()
    with pytest.raises(InvalidEntryError, match="give rank=r"):
        learn_biased_low_rank(f64)
    with pytest.raises(InvalidEntryError, match="confirm= needs an exact field"):
        learn_biased_low_rank(f64, rank=4, confirm=1)


# -- F64 -------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", ["general", "column_space"])
def test_f64_factored_head_within_its_bound(bias: Any) -> None:
    d, H = 64, 8
    layer = random_layer(d, H, seed=0)
    target = layer.head(5)
    p = target.merged()
    oracle = target.oracle(keep_transcript=False)
    rec = learn_biased_low_rank(oracle, rank=layer.head_dim, bias=bias, scale=8)
    assert rec.status == "float"
    assert oracle.queries == biased_low_rank_query_count(d, 8, bias=bias)
    for name, truth, bound in (("W", p.W, "W_error_bound"), ("c", p.c, "c_error_bound"),
                               ("v", p.v, "v_error_bound")):
        err = float(np.linalg.norm(rec.params[name] - truth))
        assert err <= rec.options[bound], name
        assert err <= 1e-9 * float(np.linalg.norm(truth)), name
    assert abs(float(rec.params["beta"]) - p.beta) <= 1e-12
    assert abs(float(rec.params["beta"]) - p.beta) <= rec.options["beta_error_bound"]


def test_f64_adaptive_probes_avoid_an_ill_conditioned_core() -> None:
    # regression: with the r random probes of plain (**) this seeded head (d = 96, r = 12)
    # came back with relative errors 3.8e-11 (general) and 8.3e-10 (column space): the
    # inverse of the random r x r core amplified the logits' rounding; probes adapted to
    # the measured column space give 2e-13 and 7e-12, with the same query count
    head = random_layer(96, 1, head_dim=12, seed=1).head(0)
    p = head.merged()
    biases: tuple[Bias, ...] = ("general", "column_space")
    for bias in biases:
        oracle = head.oracle(keep_transcript=False)
        rec = learn_biased_low_rank(oracle, rank=12, bias=bias, scale=4)
        assert oracle.queries == biased_low_rank_query_count(96, 12, bias=bias)
        rel = float(np.linalg.norm(rec.W - p.W) / np.linalg.norm(p.W))
        assert rel < 3e-11, (bias, rel)
        assert rec.options["adaptive_probes"] is True


def test_f64_saturated_sigmoid_is_an_error_not_a_wrong_answer() -> None:
    # probes 64 times longer push score gaps past float64's sigmoid: refused, with the advice
    head = random_layer(96, 1, head_dim=12, seed=1).head(0)
    with pytest.raises(RecoveryFailedError, match="rescale the probes"):
        learn_biased_low_rank(head.oracle(keep_transcript=False), rank=12, scale=256)


def test_claims_hold() -> None:
    results = [r for r in run_claims(["low_rank_adaptive"]) if ".biased_" in r.claim.id]
    assert len(results) >= 4
    assert sorted(r.claim.id.split(".biased_")[1] for r in results) == [
        "certificate_soundness", "exact_recovery_at_floor", "measurement_identity",
        "rank_discovery", "real_heads_f64", "violation_detected"]
    assert all(r.holds for r in results), [(r.claim.id, r.outcome.detail) for r in results]
