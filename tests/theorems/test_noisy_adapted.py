"""noisy_oracle, variant "adapted": probes adapted to v_hat, only nu <= ||v||_2 needed.

Beyond paper Thm 6.2 (v1) / 6.1 (v2), paper.md §5: the paper's learner needs a
margin min_i |v_i| >= mu > 0, which no sparse v has. The variant
(:mod:`exactattn.learners.noisy_adapted`) chooses its probes after
estimating v and needs only a lower bound on the norm. This file holds: a
worked example with literal numbers (sparse v); property tests of the bound
against every adversary of NoisyOracle (d = 1..3, every error decided exactly
in QQ: the hidden W is rational, the estimates are rational); sparse v on which
the paper's learner raises (margin) and the variant succeeds within its bound;
the query count d + d^2; certificates that hold on the recovery and reject a
perturbed one; the symbolic/grid proof, which fails when a tolerance is too
large; the d-dependence of ||Z^{-1}||; the hypothesis violations.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import pytest
from flint import fmpq, fmpq_mat
from hypothesis import given
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.errors import HypothesisViolatedError, InvalidEntryError
from exactattn.fields import EXP, QQ
from exactattn.learners.noisy import L_UPPER, learn_single_head_noisy, theorem_tolerances
from exactattn.learners.noisy_adapted import (
    LABEL,
    adapted_error_bounds,
    adapted_probes,
    adapted_tolerances,
    ceil_sqrt,
    learn_single_head_noisy_adapted,
    probe_inverse,
    z_inverse_bound,
)
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ADVERSARIES, NoisyOracle, ValueOracle
from exactattn.symbolic.noisy_adapted import (
    bounds,
    check_adapted_bound,
    check_probes,
    identities,
)

F = Fraction
#: the sparse worked example: v = (1/2, 0, 0), no coordinate margin at all
W_EXAMPLE: list[list[Any]] = [[1, F(-1, 2), 0], [F(1, 2), 0, F(1, 3)], [0, F(-2, 3), F(1, 2)]]
V_SPARSE: list[Any] = [F(1, 2), 0, 0]


# -- helpers ---------------------------------------------------------------
def q(x: Any) -> Any:
    """An exact rational (fmpq) from an int, Fraction, fmpq or option string."""
    return QQ(F(x)) if isinstance(x, str) else QQ(x)


def oracle_for(W: list[list[Any]], v: list[Any], adversary: str = "worst",
               seed: int = 0) -> NoisyOracle:
    head = SingleHeadAttention(QQ.array(W), QQ.array(v), field=EXP)
    # the default tolerance only serves the certificate's fresh probes
    return NoisyOracle(head, tolerance=F(1, 1000), adversary=adversary, seed=seed)


def errors(rec: Any, W: list[list[Any]], v: list[Any]) -> tuple[Any, Any, Any]:
    """(||W_hat - W||_F^2, max_ij |W_hat_ij - W_ij|, ||v_hat - v||^2), exact rationals."""
    d = len(v)
    dW = [rec.W[i, j] - QQ(W[i][j]) for i in range(d) for j in range(d)]
    dv = [rec.v[i] - QQ(v[i]) for i in range(d)]
    return sum((x * x for x in dW), fmpq(0)), max(abs(x) for x in dW), \
        sum((x * x for x in dv), fmpq(0))


def assert_within_bounds(rec: Any, W: list[list[Any]], v: list[Any], eps_W: Any,
                         eps_v: Any) -> None:
    frob_sq, entry, v_sq = errors(rec, W, v)
    o = rec.options
    assert frob_sq <= q(o["W_frobenius_bound"]) ** 2
    assert entry <= q(o["W_entry_bound"])
    assert v_sq <= q(o["v_bound"]) ** 2
    assert q(o["W_frobenius_bound"]) <= q(eps_W)
    assert q(o["v_bound"]) <= q(eps_v)


# -- worked example ------------------------------------------------------------
def test_worked_example_sparse_v() -> None:
    """d = 3, W_bound = 2, nu = 1/2, eps_W = eps_v = 1/10, v = (1/2, 0, 0)."""
    b = adapted_tolerances(3, epsilon_W=F(1, 10), epsilon_v=F(1, 10), W_bound=2,
                           norm_lower=F(1, 2))
    # r = ceil(sqrt 3) = 2, K_3 = 3 + 3 = 6; tau_f = (1/2)(1/10) / (80 * 6 * 4 * 3)
    assert ceil_sqrt(3) == 2 and b.Z_inverse == 6
    assert b.tau_f == fmpq(1, 115200)
    # tau_v = min(nu/(4r), eps_v/r, 6 W tau_f/(4r + 3W)) = min(1/16, 1/20, (6/7) tau_f)
    assert b.tau_v == fmpq(1, 134400)
    # E_alpha = (3/(2 nu))(2 r tau_v + 3 W tau_f + 3/2 W tau_v) = 9 W tau_f / nu here
    assert b.alpha == fmpq(1, 3200)
    assert b.T_entry == L_UPPER / 800  # 2 W L E_alpha
    assert b.W_frobenius == fmpq(9, 400) * L_UPPER == fmpq(382977, 4000000)  # 0.0957 < 1/10
    assert b.W_entry == 9 * L_UPPER / 800  # (9/2) r e_t
    assert b.v_2 == fmpq(1, 67200)

    oracle = oracle_for(W_EXAMPLE, V_SPARSE)
    rec = learn_single_head_noisy_adapted(oracle, epsilon_W=F(1, 10), epsilon_v=F(1, 10),
                                          W_bound=2, norm_lower=F(1, 2))
    assert rec.label == LABEL == "noisy_oracle"
    assert rec.options["variant"] == "adapted"
    assert rec.approximate and rec.status == "approximate" and rec.field == QQ
    assert rec.queries == 12 and dict(rec.queries_by_phase) == {"v": 3, "W": 9}
    # the "worst" adversary pushes one-token answers towards 0: 1/2 - tau_v, and +tau_v at 0
    assert list(rec.v) == [fmpq(67199, 134400), fmpq(1, 134400), fmpq(1, 134400)]
    assert rec.options["rho"] == "1/2" and rec.options["signs"] == [1, 1, 1]
    assert rec.options["tau_f"] == "1/115200" and rec.options["tau_v"] == "1/134400"
    assert_within_bounds(rec, W_EXAMPLE, V_SPARSE, F(1, 10), F(1, 10))
    frob_sq, _, _ = errors(rec, W_EXAMPLE, V_SPARSE)
    assert frob_sq <= fmpq(1, 80**2)  # the actual error is far below the bound (~0.0114)


# -- the bound, for every adversary --------------------------------------------
@st.composite
def instances(draw: st.DrawFn) -> tuple[list[list[Any]], list[Any], Any, Any]:
    """(W, v, W_bound, nu): ||W||_F <= W_bound, 0 < nu <= ||v||_2 <= 1, v often sparse."""
    d = draw(st.integers(1, 3))
    entry = st.builds(F, st.integers(-6, 6), st.integers(1, 4))
    W = [[draw(entry) for _ in range(d)] for _ in range(d)]
    W_bound = draw(st.sampled_from([F(2), F(5, 2), F(4)]))
    while sum(x * x for row in W for x in row) > W_bound**2:
        W = [[x / 2 for x in row] for row in W]
    support = draw(st.lists(st.booleans(), min_size=d, max_size=d))
    v = [draw(st.builds(F, st.integers(-4, 4).filter(bool), st.integers(1, 4))) if keep
         else F(0) for keep in support]
    if not any(v):
        v[draw(st.integers(0, d - 1))] = draw(st.sampled_from([F(1, 2), F(-1, 3), F(1)]))
    while sum(x * x for x in v) > 1:
        v = [x / 2 for x in v]
    top = max(abs(x) for x in v)  # ||v||_inf <= ||v||_2: a rational lower bound
    nu = top * draw(st.sampled_from([F(1), F(1, 2)]))
    return W, v, W_bound, nu


@given(instances(), st.sampled_from(ADVERSARIES), st.integers(0, 3),
       st.sampled_from([F(1, 10), F(1, 2), F(1)]), st.sampled_from([F(1, 10), F(1)]))
def test_bound_holds_for_every_adversary(inst: tuple[Any, Any, Any, Any], adversary: str,
                                         seed: int, eps_W: Any, eps_v: Any) -> None:
    W, v, W_bound, nu = inst
    d = len(v)
    oracle = oracle_for(W, v, adversary, seed)
    rec = learn_single_head_noisy_adapted(oracle, epsilon_W=eps_W, epsilon_v=eps_v,
                                          W_bound=W_bound, norm_lower=nu)
    assert rec.queries == oracle.queries == d + d * d
    assert dict(rec.queries_by_phase) == {"v": d, "W": d * d}
    assert_within_bounds(rec, W, v, eps_W, eps_v)
    # every query was asked at the theorem's tolerance, with tokens of norm <= 1
    tol = adapted_tolerances(d, epsilon_W=eps_W, epsilon_v=eps_v, W_bound=W_bound,
                             norm_lower=nu)
    for entry in rec.transcript:
        assert entry.tolerance == (tol.tau_v if entry.X.shape[0] == 1 else tol.tau_f)
        assert all(sum(x * x for x in row) <= 1 for row in entry.X)


@pytest.mark.parametrize("adversary", ADVERSARIES)
@pytest.mark.parametrize("v", [V_SPARSE, [0, 0, F(-3, 4)], [0, F(1, 3), 0], [F(3, 5), 0, F(-4, 5)]])
def test_sparse_v_paper_raises_adapted_succeeds(adversary: str, v: list[Any]) -> None:
    nu = max(abs(F(x)) for x in v)
    for margin in (F(1, 2), F(1, 10), F(1, 1000)):
        with pytest.raises(HypothesisViolatedError) as info:
            learn_single_head_noisy(oracle_for(W_EXAMPLE, v, adversary), epsilon_W=F(1, 10),
                                    epsilon_v=F(1, 10), W_bound=2, margin=margin)
        assert info.value.hypothesis == "min |v_i| >= margin"
    oracle = oracle_for(W_EXAMPLE, v, adversary)
    rec = learn_single_head_noisy_adapted(oracle, epsilon_W=F(1, 10), epsilon_v=F(1, 10),
                                          W_bound=2, norm_lower=nu)
    assert rec.queries == 3 + 9
    assert_within_bounds(rec, W_EXAMPLE, v, F(1, 10), F(1, 10))


def test_dense_v_both_learners_succeed() -> None:
    """Where the paper's margin holds, both learners meet their own bounds."""
    v = [F(1, 2), F(-1, 2), F(1, 2)]
    paper = learn_single_head_noisy(oracle_for(W_EXAMPLE, v), epsilon_W=F(1, 10),
                                    epsilon_v=F(1, 10), W_bound=2, margin=F(1, 2))
    adapted = learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, v), epsilon_W=F(1, 10),
                                              epsilon_v=F(1, 10), W_bound=2, norm_lower=F(1, 2))
    for rec in (paper, adapted):
        assert rec.queries == 12
        assert_within_bounds(rec, W_EXAMPLE, v, F(1, 10), F(1, 10))
    assert adapted.options["signs"] == [1, -1, 1]


# -- certificates ----------------------------------------------------------------
def test_certificate_holds_and_rejects_a_perturbed_recovery() -> None:
    oracle = oracle_for(W_EXAMPLE, V_SPARSE)
    rec = learn_single_head_noisy_adapted(oracle, epsilon_W=F(1, 10), epsilon_v=F(1, 10),
                                          W_bound=2, norm_lower=F(1, 2))
    cert = verify(rec, oracle, probes=8)
    assert cert.holds and cert.kind == "tolerance" and cert.checked == 12 + 8
    W = rec.W.copy()
    W[0, 0] = W[0, 0] + 1
    wrong_W = dataclasses.replace(rec, params={"W": W, "v": rec.v.copy()})
    bad = verify(wrong_W, oracle, probes=8)
    assert not bad.holds and bad.first_failure is not None
    assert bad.first_failure.source == "transcript"
    v = rec.v.copy()
    v[1] = v[1] + fmpq(1, 4)
    wrong_v = dataclasses.replace(rec, params={"W": rec.W.copy(), "v": v})
    assert not verify(wrong_v, oracle, probes=8).holds


# -- the proof: symbolic steps, the grid, and a tolerance that is too large -------
def test_every_step_of_the_proof_checks() -> None:
    assert all(s.verified for s in identities(3))
    ineqs = bounds()
    assert all(s.verified for s in ineqs)
    # every inequality is proved symbolically, except two facts decided exactly
    assert {s.method for s in ineqs} == {"symbolic", "exact (EXP)", "exact (QQ)"}
    holds, instances_, detail = check_adapted_bound()
    assert holds, detail
    assert instances_ > 400


@pytest.mark.parametrize(("tau_f_factor", "tau_v_factor"),
                         [(2, 1), (F(21, 20), 1), (1, 2), (1, F(11, 10))])
def test_a_too_large_tolerance_fails_the_check(tau_f_factor: Any, tau_v_factor: Any) -> None:
    holds, _, detail = check_adapted_bound(tau_f_factor, tau_v_factor)
    assert not holds, detail
    failed = [s for s in bounds(tau_f_factor, tau_v_factor) if not s.verified]
    assert failed and all(s.method == "grid" for s in failed)


def test_too_large_tolerances_break_the_stated_bounds() -> None:
    tol = adapted_tolerances(3, epsilon_W=F(1, 10), epsilon_v=F(1, 10), W_bound=2,
                             norm_lower=F(1, 2))
    big = adapted_error_bounds(3, W_bound=2, norm_lower=F(1, 2), tau_f=2 * tol.tau_f,
                               tau_v=tol.tau_v)
    assert big.W_frobenius > fmpq(1, 10)
    with pytest.raises(HypothesisViolatedError):  # r tau_v > nu / 4: step (i) fails
        adapted_error_bounds(3, W_bound=2, norm_lower=F(1, 2), tau_f=tol.tau_f, tau_v=1)


# -- the probes and the d-dependence of ||Z^{-1}|| ----------------------------------
@given(st.lists(st.builds(F, st.integers(-5, 5), st.integers(1, 6)), min_size=1, max_size=5)
       .filter(any))
def test_adapted_probes_have_their_proven_properties(v_hat: list[Any]) -> None:
    assert check_probes(v_hat) is None
    rho, s, U = adapted_probes([QQ(x) for x in v_hat])
    d = len(v_hat)
    Z = fmpq_mat(d, d, [x for row in U for x in row])
    Zi = probe_inverse([QQ(x) for x in v_hat], rho, s)
    assert Z.inv() == fmpq_mat(d, d, [x for row in Zi for x in row])


@pytest.mark.parametrize("d", range(1, 10))
def test_the_inverse_norm_grows_like_sqrt_d_for_sparse_v(d: int) -> None:
    """For v_hat = e_1 / 2: column 1 of Z^{-1} is 3(e_1 - 1/2), squared norm 9 d / 4,
    so (3/2) sqrt d <= ||Z^{-1}||_2 < K_d = 3 + (3/2) ceil(sqrt d)."""
    v_hat = [fmpq(1, 2)] + [fmpq(0)] * (d - 1)
    rho, s, _ = adapted_probes(v_hat)
    Zi = probe_inverse(v_hat, rho, s)
    assert sum(Zi[i][0] ** 2 for i in range(d)) == fmpq(9 * d, 4)
    assert check_probes(v_hat) is None  # the K_d bound, by exact positive definiteness
    assert fmpq(9 * d, 4) < z_inverse_bound(d) ** 2


def test_tolerance_against_the_papers_when_its_margin_holds() -> None:
    """tau_f(paper) / tau_f(adapted) = mu K_d / nu <= K_d / sqrt d <= 9/2 with nu = ||v||,
    since mu <= min_i |v_i| <= ||v|| / sqrt d; equality for a flat v."""
    for d in range(1, 400):
        assert z_inverse_bound(d) ** 2 <= fmpq(81, 4) * d
    # flat v in d = 4: ||v|| = 1/2, min |v_i| = 1/4, K_4 = 6: the ratio is exactly 6 / 2 = 3
    paper = theorem_tolerances(4, epsilon_W=F(1, 10), epsilon_v=F(1, 10), W_bound=2,
                               margin=F(1, 4))
    ours = adapted_tolerances(4, epsilon_W=F(1, 10), epsilon_v=F(1, 10), W_bound=2,
                              norm_lower=F(1, 2))
    assert paper.tau_f / ours.tau_f == 3


# -- hypotheses ------------------------------------------------------------------
def test_violated_hypotheses_are_named() -> None:
    kw: dict[str, Any] = {"epsilon_W": F(1, 10), "epsilon_v": F(1, 10)}
    with pytest.raises(HypothesisViolatedError) as info:
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, V_SPARSE), W_bound=F(3, 2),
                                        norm_lower=F(1, 2), **kw)
    assert info.value.hypothesis == "W_bound >= 2"
    with pytest.raises(HypothesisViolatedError) as info:  # ||v|| = 1/10 < nu = 1/2
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, [F(1, 10), 0, 0]), W_bound=2,
                                        norm_lower=F(1, 2), **kw)
    assert info.value.hypothesis == "||v||_2 >= norm_lower"
    with pytest.raises(HypothesisViolatedError) as info:  # v = 0
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, [0, 0, 0]), W_bound=2,
                                        norm_lower=F(1, 100), **kw)
    assert info.value.hypothesis == "||v||_2 >= norm_lower"
    with pytest.raises(HypothesisViolatedError) as info:
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, V_SPARSE), W_bound=2,
                                        norm_lower=F(3, 2), **kw)
    assert info.value.hypothesis == "norm_lower <= 1"
    with pytest.raises(HypothesisViolatedError) as info:  # ||W||_F = 12 >> W_bound = 2
        learn_single_head_noisy_adapted(oracle_for([[12, 0], [0, 0]], [F(1, 2), 0]),
                                        W_bound=2, norm_lower=F(1, 2), **kw)
    assert info.value.hypothesis == "||W||_F <= W_bound"
    with pytest.raises(HypothesisViolatedError) as info:
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, V_SPARSE), W_bound=2,
                                        norm_lower=0, **kw)
    assert info.value.hypothesis == "norm_lower > 0"
    exact = ValueOracle(SingleHeadAttention(QQ.array(W_EXAMPLE), QQ.array(V_SPARSE), field=EXP))
    with pytest.raises(InvalidEntryError):
        learn_single_head_noisy_adapted(exact, W_bound=2, norm_lower=F(1, 2), **kw)  # type: ignore[arg-type]


# -- issue 10, defect 2.2: proved violations, conditional bounds, prec ---------------
ORACLE_HYP = "every answer is within the tolerance the learner asked for"
KW: dict[str, Any] = {"epsilon_W": F(1, 2), "epsilon_v": F(1, 2)}


@pytest.mark.parametrize("adversary", ADVERSARIES)
def test_W_beyond_the_bound_is_proved_by_one_probe(adversary: str) -> None:
    # regression (issue 10, 2.2): W = [[-23/10]], W_bound = 2, v = [1]. The adapted probe is
    # u = 2/3, so ||W||_F <= 2 needs |a b u W| <= 1/3 <= 11/32 (a dyadic bound on ||u|| / 2)
    # while the answers pin it near 0.383.
    # Before: the test compared with [tau_c, 1 - tau_c] (|.| <= 1/2) and the estimate's norm
    # 2.3 stayed below W_bound + bound: a wrong W came back with a "guaranteed" bound.
    with pytest.raises(HypothesisViolatedError, match=r"sigma\(-11/32\)") as info:
        learn_single_head_noisy_adapted(oracle_for([[F(-23, 10)]], [1], adversary),
                                        W_bound=2, norm_lower=1, **KW)
    assert info.value.hypothesis == "||W||_F <= W_bound"


@pytest.mark.parametrize("adversary", ADVERSARIES)
def test_frobenius_violation_is_proved_from_the_estimate(adversary: str) -> None:
    # ||W||_F = 3 sqrt(2)/2 = 2.12 > W_bound = 2, no entry above 3/2: every W consistent with
    # the answers is within R ~ 0.06 of W_hat, and ||W_hat||_F > W_bound + R. Before: the test
    # ||W_hat||_F > W_bound + (the theorem's bound, ~0.48) missed it.
    W = [[F(3, 2), F(-3, 2)], [0, 0]]
    with pytest.raises(HypothesisViolatedError, match="W_bound \\+ R") as info:
        learn_single_head_noisy_adapted(oracle_for(W, [F(1, 2), F(1, 2)], adversary),
                                        W_bound=2, norm_lower=F(1, 2), **KW)
    assert info.value.hypothesis == "||W||_F <= W_bound"


def test_v_norm_below_norm_lower_is_proved_on_the_box() -> None:
    # ||v|| = 1/2 - 5 tau_v / 2 < nu = 1/2 (d = 3, tau_v = 1/26880). The "max" adversary
    # answers v_i + tau_v; every v consistent with the answers has
    # ||v||^2 <= (v_0 + 2 tau_v)^2 + 2 (2 tau_v)^2 < 1/4: proved. Before: the test
    # ||v_hat|| < nu - ceil(sqrt d) tau_v missed it (||v_hat|| ~ nu - 3 tau_v / 2).
    tau_v = F(1, 26880)
    assert adapted_tolerances(3, W_bound=2, norm_lower=F(1, 2), **KW).tau_v == fmpq(1, 26880)
    with pytest.raises(HypothesisViolatedError) as info:
        learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, [F(1, 2) - 5 * tau_v / 2, 0, 0],
                                                   "max"),
                                        W_bound=2, norm_lower=F(1, 2), **KW)
    assert info.value.hypothesis == "||v||_2 >= norm_lower"


def test_v_norm_above_one_is_proved_on_the_box() -> None:
    # ||v||^2 = 9/8 > 1: the "max" adversary answers v_i + tau_v, every v consistent with the
    # answers has ||v||^2 >= 9/8 > 1 (the same box test as the paper's learner, shared)
    oracle = oracle_for(W_EXAMPLE, [F(3, 4), F(3, 4), 0], "max")
    with pytest.raises(HypothesisViolatedError, match=r"every v within tau_v") as info:
        learn_single_head_noisy_adapted(oracle, W_bound=2, norm_lower=F(1, 2), **KW)
    assert info.value.hypothesis == "||v|| <= 1"
    assert oracle.queries == 3  # stopped after the v phase


def test_unconfirmed_hypotheses_are_listed() -> None:
    # regression (issue 10, 2.2): the bounds rest on hypotheses the answers cannot confirm;
    # before, hypotheses = () read as an unconditional bound
    rec = learn_single_head_noisy_adapted(oracle_for(W_EXAMPLE, V_SPARSE), W_bound=2,
                                          norm_lower=F(1, 2), **KW)
    # ||v|| = 1/2 = nu exactly: the answers cannot confirm ||v|| >= 1/2. ||W||_F = 1.66 is
    # confirmed: the answers put W within R = ||Z^{-1}||_F ||T - T_hat||_F / (a b) of W_hat
    assert rec.hypotheses == ("||v||_2 >= norm_lower = 1/2", ORACLE_HYP)
    assert rec.options["hypotheses_confirmed"] == ["||W||_F <= W_bound = 2", "||v|| <= 1"]
    # W beyond the bound by 1 % cannot be proved from these answers: named, not confirmed
    W = [[F(101, 50), 0, 0], [0, 0, 0], [0, 0, 0]]
    rec = learn_single_head_noisy_adapted(oracle_for(W, V_SPARSE), W_bound=2,
                                          norm_lower=F(1, 2), **KW)
    assert rec.hypotheses[0] == "||W||_F <= W_bound = 2"
    assert rec.status == "approximate"


@pytest.mark.parametrize("prec", [0, 2, 4, 10**10, True, 2.5])
def test_bad_prec_is_refused_before_any_query(prec: Any) -> None:
    # regression (issue 10, 2.2): raw ValueError / OverflowError, or a bound above eps_W
    oracle = oracle_for(W_EXAMPLE, V_SPARSE)
    with pytest.raises(InvalidEntryError, match="prec"):
        learn_single_head_noisy_adapted(oracle, W_bound=2, norm_lower=F(1, 2), prec=prec, **KW)
    assert oracle.queries == 0


def test_sparse_v_claim_checks_the_reported_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # the claim noisy_oracle.adapted_sparse_v compares the errors with the bounds the learner
    # reports, not only with epsilon: a learner that reports an entry bound of 0 fails it
    import dataclasses

    import exactattn.learners.noisy_adapted as na
    from exactattn.claims import run_claims

    (ok,) = run_claims(["noisy_oracle.adapted_sparse_v"])
    assert ok.holds, ok.outcome.detail
    shipped = na.learn_single_head_noisy_adapted

    def overclaiming(*args: Any, **kwargs: Any) -> Any:
        rec = shipped(*args, **kwargs)
        return dataclasses.replace(rec, options={**rec.options, "W_entry_bound": "0"})

    monkeypatch.setattr(na, "learn_single_head_noisy_adapted", overclaiming)
    (bad,) = run_claims(["noisy_oracle.adapted_sparse_v"])
    assert not bad.holds and "above its reported bound" in bad.outcome.detail
