"""clipped_inverse: the clipped inverse sigmoid is L-Lipschitz, L = 2 + 2 cosh(1/2) <= 5.

Paper Lemma 6.1 (v1) = Lemma A.1 (v2); paper.md §5. Also the constants and
inequalities of noisy_oracle (Thm 6.2 v1 = Thm 6.1 v2) that the module
exposes as plain functions: the probe geometry and the error chain.

This file holds: a worked example with literal numbers; property tests
(Hypothesis) of the Lipschitz inequality and of clip on exact points; every
symbolic step verified; the interval proof of the constants; wrong constants
rejected (a smaller Lipschitz constant has a counterexample, L <= 4 is
refuted, a wrong step is not verified); the probe geometry, and its failure
for other probe scales; every step of the error chain, and its failure with
wrong tolerances; the registry entries and their LaTeX.

No float enters a decision: EXP comparisons are exact, logarithms of
rationals are arb balls at rising precision, constants are fmpq.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Any

import pytest
import sympy as sp
from flint import arb, ctx, fmpq
from hypothesis import given
from hypothesis import strategies as st

from exactattn.claims import REGISTRY, run_claims
from exactattn.fields import EXP
from exactattn.models import SingleHeadAttention
from exactattn.report.latex import label_section
from exactattn.symbolic import clipped_inverse as ci

F = Fraction
HALF = F(1, 2)


def sigma(q: Any) -> Any:
    """sigma(q) as an exact EXP element."""
    return EXP.sigmoid(EXP(q))


def clip(a: Any) -> Any:
    """clip(a) = min(max(a, tau_c), 1 - tau_c), exactly in EXP."""
    A = EXP(a)
    return ci.TAU_C if A <= ci.TAU_C else (1 - ci.TAU_C if A >= 1 - ci.TAU_C else A)


def inside(x: arb, lo: str, hi: str) -> bool:
    """The ball x lies strictly between the decimal literals lo and hi."""
    with ctx.workprec(128):
        return bool(arb(fmpq(F(lo).numerator, F(lo).denominator)) < x
                    < arb(fmpq(F(hi).numerator, F(hi).denominator)))


# -- worked example -----------------------------------------------------------------
def test_worked_example_constants() -> None:
    # tau_c = 1/(1 + sqrt e) = 0.3775406688..., L = 2 + 2 cosh(1/2) = 4.2552519304...
    enc = ci.enclosures(128)
    assert inside(enc["tau_c"], "0.37754066879", "0.37754066880")
    assert inside(enc["1 - tau_c"], "0.62245933120", "0.62245933121")
    assert inside(enc["L"], "4.25525193041", "4.25525193042")
    assert ci.TAU_C_LOWER == fmpq(3775406687, 10**10)
    assert ci.L_UPPER == fmpq(42553, 10000) and ci.L_UPPER <= 5
    # exactly in EXP: tau_c = sigma(-1/2), 1 - tau_c = sigma(1/2), L = 2 + e^(1/2) + e^(-1/2)
    assert ci.TAU_C == sigma(-HALF) and 1 - ci.TAU_C == sigma(HALF)
    assert ci.L_EXACT == 2 + EXP.exp(EXP(HALF)) + EXP.exp(EXP(-HALF))
    assert EXP.logit(ci.TAU_C) == EXP(-HALF)


def test_worked_example_lipschitz_points() -> None:
    # a = 2/5 inside the clip interval, alpha = tau_c (q = -1/2):
    # |logit(2/5) + 1/2| = |log(2/3) + 1/2| = 0.0945348919...
    # L |2/5 - tau_c|    = 4.2552519 * 0.0224593312 = 0.0955701...   (ratio 0.989)
    with ctx.workprec(128):
        lhs = abs(arb(fmpq(2, 3)).log() + arb(fmpq(1, 2)))
        rhs = EXP.to_arb(ci.L_EXACT * abs(EXP(F(2, 5)) - ci.TAU_C), 128)
        assert inside(lhs, "0.0945348918", "0.0945348919")
        assert inside(rhs, "0.0955701124", "0.0955701125")
        assert lhs < rhs
    # a = 0 is clipped to tau_c: logit = -1/2 exactly; alpha = sigma(1/2):
    # |-1/2 - 1/2| = 1 <= L sigma(1/2) = 2.6487..., an exact EXP comparison
    assert clip(0) == ci.TAU_C
    assert EXP(1) <= ci.L_EXACT * sigma(HALF)
    found = ci.check_lipschitz_on_points([(F(2, 5), -HALF), (0, HALF), (HALF, 0), (7, 0)])
    assert found.holds and found.instances == 4
    assert "3 points decided exactly in EXP, 1 by arb" in found.detail


def test_worked_example_probe() -> None:
    # d = 2, W_bar = 2 (a = 1/2, b = 1/2), ||W||_F^2 = 1 + 1 + 1/4 + 1 = 13/4 <= 4
    W = [[1, -1], [F(1, 2), 1]]
    v = [F(1, 2), F(-1, 3)]
    f = SingleHeadAttention(W, v, field=EXP)
    # (i, j) = (0, 1): x_1 = b e_0 + a e_1 = (1/2, 1/2), x_2 = a e_1 = (0, 1/2)
    # gap = a b W_01 = -1/4; f(X) = a v_1 + sigma(-1/4) b v_0 = -1/6 + sigma(-1/4)/4
    y = f([[HALF, HALF], [0, HALF]])
    assert y == EXP(F(-1, 6)) + sigma(F(-1, 4)) / 4
    # (i, j) = (1, 1): x_1 = (b + a) e_1 = (0, 1), norm exactly 1; gap = W_11/4 = 1/4
    assert f([[0, 1], [0, HALF]]) == EXP(F(-1, 6)) + sigma(F(1, 4)) * EXP(F(-1, 6))
    inst = [("worked", fmpq(2), [[fmpq(1), fmpq(-1)], [fmpq(1, 2), fmpq(1)]],
             [fmpq(1, 2), fmpq(-1, 3)])]
    found = ci.check_probe_geometry(inst)
    assert found.holds and found.instances == 4


def test_worked_example_error_chain() -> None:
    # W_bar = 2, mu = 1/2, d = 2, eps_W = 1: tau_f = tau_v = mu eps_W/(80 W_bar^2 d) = 1/1280;
    # (1): (2 W_bar/mu) tau_f + ((W_bar + 2)/mu) tau_v = 8/1280 + 8/1280 = 1/80
    #      = eps_W/(20 W_bar d): step (2) is tight at W_bar = 2.
    wbar, mu, d, eps = F(2), F(1, 2), 2, F(1)
    tau = mu * eps / (80 * wbar**2 * d)
    assert tau == F(1, 1280)
    bound = 2 * wbar / mu * tau + (wbar + 2) / mu * tau
    assert bound == F(1, 80) == eps / (20 * wbar * d)
    # (3): L * bound / (a b) = L * 4 / 80 = L/20 <= L eps_W/(10 d) = L/20 < 1/2 = eps_W/d
    assert bound * 2 * wbar == F(1, 20) and ci.L_UPPER / 20 < fmpq(1, 2)
    # the symbolic step (2) at W_bar = 2 + s: the slack is exactly eps_W s/(80 d (s + 2)^2)
    step = ci.check_tolerance_bound().steps[2]
    s, k = sp.Symbol("s", nonnegative=True), sp.Symbol("k", integer=True, nonnegative=True)
    eps_w = [x for x in step.rhs.free_symbols if x.name == r"\varepsilon_W"][0]
    assert sp.simplify(step.rhs - eps_w * s / (80 * (1 + k) * (s + 2) ** 2)) == 0


# -- property tests ---------------------------------------------------------------------
qs = st.fractions(min_value=-HALF, max_value=HALF, max_denominator=60)
anywhere = st.fractions(min_value=-3, max_value=4, max_denominator=1000)
interior = st.fractions(min_value=F(378, 1000), max_value=F(622, 1000), max_denominator=10**6)


@given(st.lists(st.tuples(st.one_of(anywhere, interior), qs), min_size=1, max_size=6))
def test_lipschitz_inequality_on_exact_points(points: list[tuple[F, F]]) -> None:
    found = ci.check_lipschitz_on_points(points)
    assert found.holds, found.detail
    assert found.instances == len(points)


@given(anywhere, anywhere)
def test_clip_is_one_lipschitz_into_the_interval(a: F, b: F) -> None:
    ca, cb = clip(a), clip(b)
    assert ci.TAU_C <= ca <= 1 - ci.TAU_C
    assert abs(ca - cb) <= abs(EXP(a) - EXP(b))
    if ci.TAU_C <= EXP(a) <= 1 - ci.TAU_C:
        assert ca == EXP(a)


@given(st.fractions(min_value=1, max_value=F(4255, 1000), max_denominator=1000))
def test_every_smaller_constant_has_a_counterexample(C: F) -> None:
    # a just above tau_c, alpha = tau_c: the secant slope of logit tends to L
    found = ci.check_lipschitz_on_points([(ci.TAU_C_UPPER, -HALF)], constant=C)
    assert not found.holds and "counterexample" in found.detail


# -- the symbolic proof ----------------------------------------------------------------
DERIVATIONS = [ci.constants_derivation, ci.clip_derivation, ci.logit_derivative_derivation,
               ci.mean_value_derivation]


@pytest.mark.parametrize("derivation", DERIVATIONS, ids=lambda f: f.__name__)
def test_every_symbolic_step_is_verified(derivation: Any) -> None:
    steps = derivation()
    assert steps
    for s in steps:
        assert s.verified, s.why
        if isinstance(s, ci.NonnegStep):
            assert s.identity and s.manifest
            assert s.latex().endswith(r"\geq 0")
        assert "&=" in s.latex()


def test_clip_cases_cover_every_ordered_pair_of_regions() -> None:
    steps = ci.clip_derivation()
    # 6 ordered pairs of regions x (monotone, 1-Lipschitz), 3 regions x 2 ends, fixed point
    assert len(steps) == 6 * 2 + 3 * 2 + 1
    assert sum("monotone" in s.why for s in steps) == 6
    assert sum("1-Lipschitz" in s.why for s in steps) == 6


def test_a_wrong_step_is_not_verified() -> None:
    t = sp.Symbol(r"\tau", real=True)
    r, w = sp.symbols("r w", nonnegative=True)
    subs = [(t, (1 - w) / 2)]
    # clip(tau - r) is tau, not tau - r: the identity fails
    wrong = ci._nonneg(ci.Clip(t - r, t) - t, "wrong", subs, -r)
    assert not wrong.identity and not wrong.verified
    right = ci._nonneg(ci.Clip(t - r, t) - (t - r), "clip(tau - r) - (tau - r) = r", subs, r)
    assert right.verified
    # a true identity whose right side is not manifestly >= 0 is not verified
    negative = ci._nonneg(t - r - ci.Clip(t - r, t), "-r >= 0?", subs, -r)
    assert negative.identity and not negative.manifest and not negative.verified
    assert ci.check_lipschitz_proof().holds
    x, y = sp.symbols("x y", nonnegative=True)
    assert not ci.manifestly_nonnegative(x - y)
    assert not ci.manifestly_nonnegative(sp.Symbol("z", real=True) ** 2)  # z not declared >= 0
    assert not ci.manifestly_nonnegative(x / y)  # y may be 0: no positive denominator
    assert ci.manifestly_nonnegative(x / (1 + y))
    found = ci._settle("demo", [ci._nonneg(x - y, "x >= y?")], "ok")
    assert not found.holds and found.route == ci.ROUTE_GRID and "negative" in found.detail


def test_a_true_but_uncertified_inequality_is_checked_on_a_grid() -> None:
    x = sp.Symbol("x", nonnegative=True)
    step = ci._nonneg(x**2 - 2 * x + 1, "(x - 1)^2")
    assert step.identity and not step.manifest
    found = ci._settle("demo", [step], "ok")
    assert found.holds and found.route == ci.ROUTE_GRID and "no certificate" in found.detail


# -- interval arithmetic ----------------------------------------------------------------
def test_interval_proof_of_the_constants() -> None:
    assert ci.check_constant_bounds().holds
    assert ci.check_L_upper_bound(5).holds
    assert ci.check_L_upper_bound(ci.L_UPPER).holds
    assert ci.decide_between("tau_c", ci.TAU_C_LOWER, ci.TAU_C_UPPER)[0] is True
    assert ci.decide_between("L", *ci.L_DECIMAL)[0] is True


def test_a_wrong_constant_is_refuted_by_interval_arithmetic() -> None:
    for wrong in (4, F(17, 4), ci.L_LOWER):
        found = ci.check_L_upper_bound(wrong)
        assert not found.holds and ">" in found.detail
    assert ci.decide_between("tau_c", fmpq(38, 100), fmpq(1, 2))[0] is False
    assert ci.decide_between("L", ci.L_UPPER, None)[0] is False


def test_the_working_precision_is_restored() -> None:
    before = ctx.prec
    ci.enclosures(512)
    ci.decide_between("L", None, fmpq(5))
    ci.check_lipschitz_on_points([(F(2, 5), -HALF)])
    assert ctx.prec == before


# -- wrong constants in the Lipschitz check ---------------------------------------------
def test_the_lipschitz_check_with_4_finds_a_counterexample() -> None:
    points = ci.lipschitz_points()
    assert ci.check_lipschitz_on_points(points).holds
    found = ci.check_lipschitz_on_points(points, constant=4)
    assert not found.holds and "counterexample" in found.detail


def test_L_is_sharp() -> None:
    # the proven lower bound L_LOWER < L already fails next to the end of the interval
    point = [(ci.TAU_C_UPPER, -HALF)]
    assert ci.check_lipschitz_on_points(point).holds
    assert not ci.check_lipschitz_on_points(point, constant=ci.L_LOWER).holds


def test_points_outside_the_hypothesis_or_inexact_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        ci.check_lipschitz_on_points([(0, F(3, 5))])
    with pytest.raises(TypeError, match="exact rational"):
        ci.check_lipschitz_on_points([(0.4, 0)])


# -- probe geometry (noisy_oracle) ------------------------------------------------------
def test_probe_geometry_holds_on_seeded_and_extreme_instances() -> None:
    instances = ci.probe_instances()
    assert any("W_bar e_" in name for name, *_ in instances)  # |W_ij| = W_bar, gap = -+1/2
    for _, wbar, W, v in instances:
        assert sum((x * x for row in W for x in row), fmpq(0)) <= wbar * wbar
        assert sum((x * x for x in v), fmpq(0)) <= 1
    found = ci.check_probe_geometry(instances)
    assert found.holds, found.detail
    assert found.instances == sum(len(v) ** 2 for *_, v in instances)


def test_other_probe_scales_break_the_geometry() -> None:
    assert not ci.check_probe_geometry(b_scale=2).holds  # norm (a + 2/W_bar)^2 > 1
    assert not ci.check_probe_geometry(a=F(3, 4)).holds
    # W = +-7 e_i e_j^T, W_bar = 7, b = (3/2)/7: norms (1/2 + 3/14)^2 < 1, but gap = 3/4
    extreme = [i for i in ci.probe_instances(dims=(2,)) if "e_" in i[0] and "W_bar=7" in i[0]]
    assert ci.check_probe_geometry(extreme).holds
    found = ci.check_probe_geometry(extreme, b_scale=F(3, 2))
    assert not found.holds and "outside [-1/2, 1/2]" in found.detail
    big = [("too big", fmpq(2), [[fmpq(3)]], [fmpq(1, 2)])]
    assert not ci.check_probe_geometry(big).holds


# -- the error chain (noisy_oracle) -----------------------------------------------------
CHAIN = [ci.check_alpha_error_bound, ci.check_tolerance_bound, ci.check_entry_error,
         ci.check_frobenius_error, ci.check_v_error, ci.check_error_chain]


@pytest.mark.parametrize("check", CHAIN, ids=lambda f: f.__name__)
def test_every_step_of_the_error_chain_holds_symbolically(check: Any) -> None:
    found = check()
    assert found.holds, found.detail
    assert found.route == ci.ROUTE_SYMBOLIC
    assert found.instances > 0 and found.steps
    assert all(s.verified for s in found.steps)


def test_the_key_identity_of_step_1() -> None:
    steps = ci.alpha_error_derivation()
    assert steps[0].verified and "key identity" in steps[0].why


@pytest.mark.parametrize("kwargs", [
    {"tau_f_factor": 10}, {"tau_f_factor": 3}, {"tau_v_factor": 3}, {"tau_v_factor": 2},
    {"lipschitz_upper": 11}, {"lipschitz_upper": 4},
])
def test_a_wrong_tolerance_breaks_the_chain(kwargs: dict[str, Any]) -> None:
    found = ci.check_error_chain(**kwargs)
    assert not found.holds, kwargs


def test_each_wrong_constant_is_caught_where_it_enters() -> None:
    found = ci.check_tolerance_bound(tau_f_factor=10)
    assert not found.holds and found.route == ci.ROUTE_GRID and "negative" in found.detail
    assert not ci.check_alpha_error_bound(coefficient_f=1).holds
    assert not ci.check_entry_error(lipschitz_upper=11).holds
    assert "premise" in ci.check_entry_error(lipschitz_upper=4).detail
    assert not ci.check_frobenius_error(entry_factor=2).holds
    assert not ci.check_v_error(tau_v_factor=2).holds


def test_the_error_chain_on_exact_instances() -> None:
    found = ci.check_error_chain_on_instances()
    assert found.holds, found.detail
    assert found.instances > 1000
    bad = ci.check_error_chain_on_instances(tau_f_factor=10, dims=(1, 2))
    assert not bad.holds and "eps_W/(20 W_bar d)" in bad.detail


# -- registry and LaTeX ------------------------------------------------------------------
def test_the_lemma_claims_are_registered_and_hold_quickly() -> None:
    ids = {c.id for c in REGISTRY if c.label == "clipped_inverse"}
    assert ids == {"clipped_inverse.constants", "clipped_inverse.constant_bounds",
                   "clipped_inverse.lipschitz", "clipped_inverse.lipschitz_exact_points"}
    start = time.perf_counter()
    results = run_claims(["clipped_inverse"])
    assert all(r.holds for r in results), [(r.claim.id, r.outcome.detail) for r in results]
    assert all(r.seconds < 3 for r in results)
    assert time.perf_counter() - start < 6


def test_the_latex_section_has_the_verified_derivation() -> None:
    tex = label_section("clipped_inverse")
    assert r"\label{clipped_inverse}" in tex
    assert "NOT VERIFIED" not in tex
    assert r"\operatorname{clip}" in tex and r"\geq 0" in tex
    assert "Conclusion" in tex
