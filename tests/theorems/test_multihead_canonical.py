"""multihead_canonical: exactattn's own; cf. arXiv 2608.03294 (paper.md §6).

A worked example with literal numbers; property tests of exact recovery of
the canonical heads; the query count against its proved closed form and
against the published 4 H d^2 - 2 H + 1; certificates that reject a
perturbed recovery; violated hypotheses (more heads than ``heads``, an
oracle that is not attention) with clear errors; functional equivalence on
many seeded pairs including near misses (1/97); the concatenation form.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import exactattn.checks.multihead  # noqa: F401  (registers the labels until checks/__init__ does)
from exactattn.certificates import verify
from exactattn.checks.multihead import recovered_model
from exactattn.claims import run_claims
from exactattn.errors import (
    HypothesisViolatedError,
    InvalidEntryError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64
from exactattn.learners.multihead import (
    LABEL,
    learn_multihead,
    published_bound,
    query_count,
)
from exactattn.models.multihead import (
    ConcatenatedMultiHeadAttention,
    MultiHeadAttention,
    canonical,
    equivalent,
    random_multihead,
    same_heads,
)
from exactattn.oracle import ValueOracle

F = Fraction


# -- worked example --------------------------------------------------------------
W1, V1 = [[1, 0], [0, 2]], [1, 0]
W2, V2 = [[0, 1], [-1, 0]], [1, 1]


def test_worked_example() -> None:
    model = MultiHeadAttention([(W1, V1), (W2, V2)])
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=2)
    # canonical order: by W row-major, [[0, 1], [-1, 0]] < [[1, 0], [0, 2]]
    assert [W.tolist() for W in rec.params["W"]] == [W2, W1]
    assert rec.params["v"].tolist() == [V2, V1]  # head first: row h is v_h
    assert rec.label == LABEL and rec.status == "exact_given"
    assert "canonical heads" in rec.hypotheses[0]
    assert rec.options["m"] == 2 and rec.options["plan"] == "isolating"
    # 1 + 2Hd = 9 (phase v), d - 1 = 1 (match), (d - 1)(Hd + (H - 1)^2) = 5 (phase W)
    assert dict(rec.queries_by_phase) == {"v": 9, "match": 1, "W": 5}
    assert rec.queries == oracle.queries == 15 == query_count(2, 2) < published_bound(2, 2) == 29
    lengths = [t.X.shape[0] for t in rec.transcript]
    assert max(lengths) == 2 * 2 + 1 and lengths[0] == 1
    # the first answer is f([b_1]) = (v_1 + v_2) . b_1, a rational
    b1 = rec.transcript[0].X[0]
    assert rec.transcript[0].answer == b1 @ (EXP.array(V1) + EXP.array(V2))
    cert = verify(rec, oracle, probes=6)
    assert cert.holds and cert.kind == "exact"


def test_worked_example_two_token_answer_by_hand() -> None:
    # one head of the example on X = [a; b]: b + sigma((a - b)^T W b)(a - b) . v
    model = MultiHeadAttention([(W1, V1), (W2, V2)])
    a, b = EXP.array([1, 0]), EXP.array([0, 1])
    by_hand = sum((b @ EXP.array(v) + EXP.sigmoid((a - b) @ EXP.array(W) @ b)
                   * ((a - b) @ EXP.array(v)) for W, v in ((W1, V1), (W2, V2))), EXP(0))
    assert model(np.stack([a, b])) == by_hand
    # (a - b)^T W1 b = -2, (a - b)^T W2 b = 1: y = 0 + sigma(-2) * 1 + 1 + sigma(1) * 0
    assert by_hand == 1 + EXP.sigmoid(EXP(-2))


# -- query count -------------------------------------------------------------------
def test_query_count_closed_form_and_published_bound() -> None:
    for H in range(1, 11):
        for d in range(1, 21):
            for m in range(0, H + 1):
                for plan in ("isolating", "families"):
                    if plan == "isolating" and m > d:
                        continue
                    assert query_count(H, d, m=m, plan=plan) <= published_bound(H, d)
            q = query_count(H, d)
            if H <= d:
                assert q == 1 + 2 * H * d + (d - 1) * (H * d + (H - 1) ** 2 + (H >= 2))
    assert query_count(1, 5) == 5 * 5 + 5 + 1
    assert [query_count(4, d) for d in (2, 4, 8)] == [32, 111, 359]


@pytest.mark.parametrize(("H", "d"), [(1, 3), (2, 2), (2, 5), (3, 2), (3, 4), (4, 3)])
def test_query_count_spent_exactly(H: int, d: int) -> None:
    model = random_multihead(H, d, 5)
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=H, seed=1)
    plan = "isolating" if H <= d else "families"
    assert rec.options == {"m": H, "plan": plan, "heads": H}
    assert rec.queries == oracle.queries == query_count(H, d, plan=plan) <= published_bound(H, d)
    assert same_heads(recovered_model(rec), canonical(model))


# -- property test of exact recovery ----------------------------------------------
small = st.fractions(min_value=-4, max_value=4, max_denominator=6)


@st.composite
def multihead_models(draw: Any) -> tuple[int, MultiHeadAttention]:
    d = draw(st.integers(1, 3))
    H = draw(st.integers(1, 3))
    heads = [(draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d)),
              draw(st.lists(small, min_size=d, max_size=d))) for _ in range(H)]
    return H, MultiHeadAttention(heads, d=d)


# a draw met by Hypothesis: at seed 1, delta_3 . v_3 = 0 exactly, so the third copy family at
# b_1 shows two poles, not three (test_degenerate_direction_is_refused_with_its_cause)
_F = Fraction
DEGENERATE_AT_SEED_1 = [
    ([[2, -5, _F(-9, 5)], [_F(-23, 5), _F(8, 3), -1], [_F(1, 2), 1, 2]], [-2, 0, -1]),
    ([[3, 2, -1], [0, 2, -8], [_F(-17, 6), 0, -2]], [-1, 1, 2]),
    ([[2, _F(-7, 2), _F(16, 3)], [-1, _F(-18, 5), 24], [0, _F(13, 2), 2]],
     [_F(-10, 3), 1, _F(10, 3)])]


@settings(max_examples=15)
@given(multihead_models(), st.integers(0, 3))
@example((3, MultiHeadAttention(DEGENERATE_AT_SEED_1)), 1)
def test_exact_recovery_property(case: tuple[int, MultiHeadAttention], seed: int) -> None:
    H, model = case
    oracle = ValueOracle(model)
    canon = canonical(model)
    try:
        rec = learn_multihead(oracle, heads=H, seed=seed, max_prec=2048)
    except HypothesisViolatedError:
        # the documented limitation: two canonical heads with the same v, v's dependent
        vs = canon.vs
        assert any(bool((vs[g] == vs[h]).all()) for g in range(len(vs)) for h in range(g))
        return
    except RecoveryFailedError as exc:
        # a degenerate draw of the directions (small rational v_h make delta . v_h = 0 a
        # chance of about 1/513 per head and direction): shown exactly, then another seed
        assert "copy families at b_1 show" in str(exc), exc
        assert _degenerate_families(oracle, canon, H)
        oracle = ValueOracle(model)
        seed += 4
        rec = learn_multihead(oracle, heads=H, seed=seed, max_prec=2048)
    assert same_heads(recovered_model(rec), canon)
    assert rec.options["m"] == canon.H
    assert rec.queries == oracle.queries == query_count(
        H, model.d, m=canon.H, plan=rec.options["plan"]) <= published_bound(H, model.d)
    assert verify(rec, oracle, probes=2, seed=seed).holds


def _degenerate_families(oracle: ValueOracle, canon: MultiHeadAttention, H: int) -> bool:
    """Some phase-v direction delta_k (read off the transcript) has delta_k . v_h = 0 for a
    canonical head, or two canonical heads share the logit delta_k^T W_h b_1 (exactly)."""
    entries = list(oracle.transcript)
    b1 = entries[0].X[0]
    for k in range(oracle.d):
        X = entries[1 + 2 * H * k].X          # c = 1: [b_1 + delta_k; b_1]
        delta = X[0] - b1
        logits = [delta @ (W @ b1) for W in canon.Ws]
        if any(delta @ v == 0 for v in canon.vs) or len(set(logits)) < len(logits):
            return True
    return False


def test_degenerate_direction_is_refused_with_its_cause() -> None:
    # DEGENERATE_AT_SEED_1: the refusal names the cause, and another seed recovers the heads
    model = MultiHeadAttention(DEGENERATE_AT_SEED_1)
    oracle = ValueOracle(model)
    with pytest.raises(RecoveryFailedError, match=r"show \[3, 3, 2\] heads: along delta_k "
                                                  r"for k in \[3\] a head has residue"):
        learn_multihead(oracle, heads=3, seed=1)
    assert _degenerate_families(oracle, canonical(model), 3)
    entries = list(oracle.transcript)
    delta3 = entries[1 + 2 * 3 * 2].X[0] - entries[0].X[0]
    assert delta3 @ model.vs[2] == 0
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=3, seed=2)
    assert same_heads(recovered_model(rec), canonical(model))
    assert rec.queries == oracle.queries == query_count(3, 3)


def test_fewer_canonical_heads_than_allowed() -> None:
    # four heads, two of them a split of one and one with v = 0: canonically 2 heads
    model = MultiHeadAttention([(W1, [3, 0]), (W1, [-2, 0]), (W2, V2), ([[5, 1], [1, 5]], [0, 0])])
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=4)
    assert same_heads(recovered_model(rec), canonical(model))
    assert rec.options["m"] == 2
    assert rec.queries == query_count(4, 2, m=2)
    assert verify(rec, oracle, probes=4).holds


def test_zero_function_has_empty_canonical_form() -> None:
    model = MultiHeadAttention([(W1, [0, 0])])
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=2)
    assert rec.params["W"].shape == (0, 2, 2) and rec.options["m"] == 0
    assert rec.queries == query_count(2, 2, m=0) == 1 + 2 * 2 * 2
    assert verify(rec, oracle, probes=4).holds


# -- certificates and violated hypotheses ------------------------------------------
def test_certificate_rejects_perturbed_recovery() -> None:
    model = random_multihead(2, 3, 7)
    oracle = ValueOracle(model)
    rec = learn_multihead(oracle, heads=2)
    assert verify(rec, oracle).holds
    for h, (i, j) in ((0, (1, 2)), (1, (0, 0))):
        W = rec.params["W"].copy()
        W[h, i, j] = W[h, i, j] + EXP(F(1, 97))
        bad = dataclasses.replace(rec, params={"W": W, "v": rec.params["v"].copy()})
        cert = verify(bad, oracle)
        assert not cert.holds and cert.first_failure is not None
    v = rec.params["v"].copy()
    v[1, 0] = v[1, 0] + EXP(F(1, 97))
    assert not verify(dataclasses.replace(rec, params={"W": rec.params["W"].copy(), "v": v}),
                      oracle).holds


@pytest.mark.parametrize(("H", "d"), [(2, 2), (3, 3)])
def test_more_heads_than_allowed_is_a_clear_error(H: int, d: int) -> None:
    model = random_multihead(H, d, 2)
    with pytest.raises(RecoveryFailedError, match=f"at most {H - 1} canonical heads"):
        learn_multihead(ValueOracle(model), heads=H - 1, max_prec=512)


def test_not_attention_is_a_clear_error() -> None:
    def cubic(X: Any) -> Any:  # depends on the copy count polynomially: no attention does
        return EXP(int(X.shape[0])) ** 3 * X[-1, 0]

    with pytest.raises(RecoveryFailedError, match="not multi-head attention"):
        learn_multihead(ValueOracle(cubic, field=EXP, d=2), heads=2, max_prec=512)


def test_equal_v_with_dependent_vs_is_reported() -> None:
    # three heads in d = 2 (v's dependent), two of them with the same v
    model = MultiHeadAttention([(W1, [1, 2]), (W2, [1, 2]), ([[1, 1], [0, -1]], [3, -1])])
    with pytest.raises(HypothesisViolatedError, match="same v"):
        learn_multihead(ValueOracle(model), heads=3)


def test_bad_arguments() -> None:
    model = random_multihead(1, 2, 0)
    with pytest.raises(InvalidEntryError, match="heads"):
        learn_multihead(ValueOracle(model), heads=0)
    f64 = MultiHeadAttention([(np.eye(2), np.ones(2))], field=F64)
    with pytest.raises(InvalidEntryError, match="EXP"):
        learn_multihead(ValueOracle(f64), heads=1)


# -- equivalence -------------------------------------------------------------------
def _near_miss(model: MultiHeadAttention, rng: np.random.Generator) -> MultiHeadAttention:
    heads = [(W.copy(), v.copy()) for W, v in zip(model.Ws, model.vs, strict=True)]
    h = int(rng.integers(0, len(heads)))
    i, j = (int(x) for x in rng.integers(0, model.d, size=2))
    if rng.integers(0, 2):
        heads[h][0][i, j] = heads[h][0][i, j] + EXP(F(1, 97))
    else:
        heads[h][1][i] = heads[h][1][i] + EXP(F(1, 97))
    return MultiHeadAttention(heads, d=model.d)


def _symmetric(model: MultiHeadAttention, rng: np.random.Generator) -> MultiHeadAttention:
    heads: list[tuple[Any, Any]] = []
    for W, v in zip(model.Ws, model.vs, strict=True):
        lam = EXP(F(int(rng.integers(-5, 6)), 3))
        heads += [(W, lam * v), (W, (1 - lam) * v)]
    heads.append((EXP.eye(model.d), EXP.zeros(model.d)))
    return MultiHeadAttention([heads[int(k)] for k in rng.permutation(len(heads))], d=model.d)


@pytest.mark.parametrize("seed", range(12))
def test_equivalence_both_directions(seed: int) -> None:
    rng = np.random.default_rng(seed)
    H, d = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    model = random_multihead(H, d, seed)
    same = equivalent(model, _symmetric(model, rng))
    assert same and same.witness is None and same_heads(same.canonical1, same.canonical2)
    other = _near_miss(model, rng)
    res = equivalent(model, other, seed=seed)
    assert not res and res.witness is not None and res.answers is not None
    assert model(res.witness) == res.answers[0] != res.answers[1] == other(res.witness)
    unrelated = equivalent(model, random_multihead(H, d, seed + 100))
    assert not unrelated and model(unrelated.witness) != random_multihead(
        H, d, seed + 100)(unrelated.witness)


def test_equivalence_with_zero_function() -> None:
    zero = MultiHeadAttention([], d=2)
    assert equivalent(zero, MultiHeadAttention([(W1, [0, 0]), (W2, [0, 0])]))
    res = equivalent(zero, MultiHeadAttention([(W1, [0, F(1, 97)])]))
    assert not res and res.witness is not None


# -- concatenation form --------------------------------------------------------------
@pytest.mark.parametrize(("H", "dh", "d"), [(1, 1, 1), (2, 1, 2), (2, 2, 4), (3, 1, 3)])
def test_concatenation_form_agrees_with_merged_form(H: int, dh: int, d: int) -> None:
    rng = np.random.default_rng([H, dh, d])

    def mats() -> list[Any]:
        return [[[F(int(x), 2) for x in row] for row in rng.integers(-3, 4, size=(dh, d))]
                for _ in range(H)]

    Q, K, V = mats(), mats(), mats()
    w_o = [F(int(x), 3) for x in rng.integers(-3, 4, size=H * dh)]
    cat = ConcatenatedMultiHeadAttention(Q, K, V, w_o)
    merged = MultiHeadAttention.from_projections(Q, K, V, w_o)
    assert merged.H == H
    for _ in range(6):
        N = int(rng.integers(1, 5))
        X = [[F(int(x), 4) for x in row] for row in rng.integers(-5, 6, size=(N, d))]
        assert cat(X) == merged(X)


def test_registered_claims_hold() -> None:
    # the exact claims; the float and BALL variants' are tested in test_multihead_float.py,
    # the biased heads' in test_multihead_biased.py
    exact = {f"{LABEL}.{name}" for name in ("concatenation_form", "exact_recovery",
                                            "equivalence", "certificate_soundness")}
    results = [r for r in run_claims([LABEL]) if r.claim.id in exact]
    assert len(results) == 4
    assert all(r.holds for r in results), [r.outcome.detail for r in results if not r.holds]
