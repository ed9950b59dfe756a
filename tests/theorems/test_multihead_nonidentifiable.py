"""multihead_nonidentifiable: paper Prop 7.1 (v1 and v2); paper.md §6.

A worked example with literal numbers; property tests that the families of
Prop 7.1 (shared-W split with lambda of any sign, permutation, zero-v head)
leave the function unchanged (exact, EXP) and the canonical form unchanged;
the symbolic identities and the H = 2 derivation (d = 1, d = 2), including a
false identity that is *not* verified; the orthogonal-heads learner (the
paper's structural remark) with its query count, and its violated
hypothesis.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import exactattn.checks.multihead  # noqa: F401  (registers the labels until checks/__init__ does)
from exactattn.certificates import verify
from exactattn.claims import run_claims
from exactattn.errors import HypothesisViolatedError
from exactattn.fields import EXP
from exactattn.learners.multihead import learn_orthogonal_heads, orthogonal_query_count
from exactattn.models.multihead import (
    MultiHeadAttention,
    canonical,
    random_multihead,
    same_heads,
)
from exactattn.oracle import ValueOracle
from exactattn.symbolic.multihead import (
    _head,
    _verified,
    derivation_latex,
    derive_equal_functions,
    nonidentifiable_families,
)
from exactattn.symbolic.steps import symbol_matrix, symbol_vector

F = Fraction


def e(q: Any) -> Any:
    return EXP.exp(EXP(q))


# -- worked example ------------------------------------------------------------
# A = [[1, 0], [0, -1]], b = [1, 2]; X = [[1, 0], [0, 1]], x_N = (0, 1).
# A x_N = (0, -1): scores s = (0, -1); values b . x_i = (1, 2).
# f = (1 * e^0 + 2 * e^-1) / (e^0 + e^-1) for (A, b), and for every split.
A_EX, B_EX = [[1, 0], [0, -1]], [1, 2]
X_EX = [[1, 0], [0, 1]]
F_EX = (1 + 2 * e(-1)) / (1 + e(-1))


def test_worked_example_split_heads() -> None:
    one = MultiHeadAttention([(A_EX, B_EX)])
    split = MultiHeadAttention([(A_EX, [3, 6]), (A_EX, [-2, -4])])  # lambda = (3, -2)
    zero = MultiHeadAttention([([[7, 7], [7, 7]], [0, 0]), (A_EX, B_EX)])
    for m in (one, split, zero):
        assert m(X_EX) == F_EX
    assert not EXP.is_rational(F_EX)
    # and a genuinely different model is not equal: lambda summing to 2
    assert MultiHeadAttention([(A_EX, [3, 6]), (A_EX, [-1, -2])])(X_EX) == 2 * F_EX != F_EX
    c = canonical(split)
    assert c.H == 1 and c.Ws[0].tolist() == A_EX and c.vs[0].tolist() == B_EX


def test_canonical_merges_drops_and_sorts() -> None:
    m = MultiHeadAttention([([[2]], [1]), ([[1]], [5]), ([[2]], [-1]), ([[0]], [0]),
                            ([[1]], [F(1, 2)])])
    c = canonical(m)
    assert [W.tolist() for W in c.Ws] == [[[1]]]
    assert [v.tolist() for v in c.vs] == [[F(11, 2)]]
    both = canonical(MultiHeadAttention([([[3]], [1]), ([[-3]], [2])]))
    assert [W.tolist() for W in both.Ws] == [[[-3]], [[3]]]  # sorted by W
    empty = canonical(MultiHeadAttention([([[3]], [0])]))
    assert empty.H == 0 and empty([[5]]) == 0


# -- property tests ------------------------------------------------------------
small = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@st.composite
def models_and_symmetries(draw: Any) -> tuple[MultiHeadAttention, MultiHeadAttention, Any]:
    d = draw(st.integers(1, 3))
    H = draw(st.integers(1, 3))
    heads = [(draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d)),
              draw(st.lists(small, min_size=d, max_size=d))) for _ in range(H)]
    sym: list[tuple[Any, Any]] = []
    for W, v in heads:
        lams = draw(st.lists(small, min_size=1, max_size=3))
        lams.append(1 - sum(lams, F(0)))  # sum lambda = 1, any signs
        sym += [(W, [lam * x for x in v]) for lam in lams]
    for _ in range(draw(st.integers(0, 2))):
        sym.append((draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d,
                                  max_size=d)), [0] * d))
    sym = draw(st.permutations(sym))
    N = draw(st.integers(1, 4))
    X = draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=N, max_size=N))
    return MultiHeadAttention(heads), MultiHeadAttention(sym), X


@given(models_and_symmetries())
def test_symmetries_keep_function_and_canonical_form(case: Any) -> None:
    m, s, X = case
    assert m(X) == s(X)
    c = canonical(m)
    assert same_heads(canonical(s), c)
    assert same_heads(canonical(c), c)  # idempotent
    assert c(X) == m(X)


def test_random_models_have_full_canonical_forms() -> None:
    for H, d in ((1, 2), (2, 3), (4, 2)):
        assert canonical(random_multihead(H, d, 0)).H == H


# -- symbolic ------------------------------------------------------------------
def test_symbolic_families_verified() -> None:
    steps = nonidentifiable_families(2, 2, 3)
    assert len(steps) == 3 and all(s.verified for s in steps)
    assert all("&=" in s.latex() for s in steps)


def test_a_false_family_is_not_verified() -> None:
    X = [symbol_vector("x1", 1), symbol_vector("x2", 1)]
    A, b = symbol_matrix("A", 1), symbol_vector("b", 1)
    lam = sp.Symbol("lambda", real=True)
    wrong = _head(X, A, lam * b) + _head(X, A, (2 - lam) * b)  # sum lambda = 2
    assert not _verified(wrong, _head(X, A, b), "false").verified


@pytest.mark.parametrize("d", [1, 2])
def test_derivation_finds_exactly_the_canonical_symmetries(d: int) -> None:
    der = derive_equal_functions(d)
    assert len(der.cases) == 15 and der.complete
    assert all(all(x == 0 for x in c.solution) for c in der.cases)
    tex = derivation_latex(der)
    assert "Lindemann" in tex and tex.count("canonical symmetries") == 15


def test_registered_claims_hold() -> None:
    results = run_claims(["multihead_nonidentifiable"])
    assert len(results) == 5
    assert all(r.holds for r in results), [r.outcome.detail for r in results if not r.holds]


# -- orthogonal heads -------------------------------------------------------------
def _orthogonal_model(dims: tuple[int, ...], seed: int) -> tuple[MultiHeadAttention, list[Any]]:
    d = sum(dims)
    rng = np.random.default_rng(seed)
    # a rational orthogonal basis of R^d: rows of a scaled Hadamard-like rotation
    Q = EXP.eye(d)
    if d >= 2:
        Q[0, 0], Q[0, 1], Q[1, 0], Q[1, 1] = EXP(3), EXP(4), EXP(-4), EXP(3)  # 5 * rotation
    heads, bases, offset = [], [], 0
    for k in dims:
        Bh = Q[:, offset:offset + k]
        M = EXP.array(rng.integers(-3, 4, size=(k, k)).tolist())
        vh = EXP.array(rng.integers(1, 4, size=k).tolist())
        heads.append((Bh @ M @ Bh.T, Bh @ vh))
        bases.append(Bh)
        offset += k
    return MultiHeadAttention(heads, d=d), bases


@pytest.mark.parametrize("dims", [(1, 1), (2, 1), (1, 2, 1), (2, 2)])
def test_orthogonal_heads_exact_with_count(dims: tuple[int, ...]) -> None:
    model, bases = _orthogonal_model(dims, sum(dims))
    oracle = ValueOracle(model)
    rec = learn_orthogonal_heads(oracle, bases)
    W, v = rec.params["W"], rec.params["v"]
    for h, (Wh, vh) in enumerate(zip(model.Ws, model.vs, strict=True)):
        assert (W[h] == Wh).all() and (v[h] == vh).all()
    assert rec.queries == oracle.queries == orthogonal_query_count(dims)
    assert rec.queries == sum(k + k * k for k in dims)
    assert verify(rec, oracle, probes=4).holds


def test_orthogonal_heads_hypothesis_violated() -> None:
    model, _ = _orthogonal_model((1, 1), 0)
    with pytest.raises(HypothesisViolatedError, match="not orthogonal"):
        learn_orthogonal_heads(ValueOracle(model), [[[1], [0]], [[1], [1]]])
