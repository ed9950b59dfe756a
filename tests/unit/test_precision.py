"""BALL(prec) and MP(prec): private precision, reconstruction to exact rationals,
the provable precision bound, and F64 probe rescaling."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from flint import arb, ctx, fmpq
from hypothesis import given
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    RecoveryFailedError,
)
from exactattn.fields import (
    BALL,
    EXP,
    F64,
    MP,
    BallField,
    InsufficientPrecisionError,
    PrecisionElement,
    field_by_name,
)
from exactattn.instances import single_head_instance
from exactattn.learners import learn_single_head
from exactattn.linalg import solve
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle, enclosing_oracle
from exactattn.reconstruct import (
    ANSWER_RADIUS,
    AmbiguousReconstructionError,
    logit_slope_bound,
    reconstruct_rational,
    required_precision,
)


# -- the fields ---------------------------------------------------------------------
def test_ball_keeps_its_own_precision_whatever_the_global_setting() -> None:
    F = BALL(200)
    before = ctx.prec
    ctx.prec = 20
    try:
        third = F(1) / 3
    finally:
        ctx.prec = before
    assert F.radius(third) < fmpq(1, 2**190)
    assert ctx.prec == before


def test_ball_contains_the_truth_and_refuses_undecided_signs() -> None:
    F = BALL(64)
    x = F.exp(F(1))
    assert x.value.contains(EXP.exp(EXP(1)).arb(300))
    with pytest.raises(InsufficientPrecisionError, match="not decided at 64 bits"):
        F.sign(F(1) / 3 - F(Fraction(1, 3)))
    assert F.sign(F(0)) == 0 and F.sign(F(-2)) == -1


def test_mixing_precisions_or_kinds_is_an_error() -> None:
    with pytest.raises(IncompatibleFieldError, match="BALL\\(64\\) and BALL\\(128\\)"):
        BALL(64)(1) + BALL(128)(1)
    with pytest.raises(IncompatibleFieldError):
        BALL(64)(1) + MP(64)(1)
    with pytest.raises(IncompatibleFieldError):
        BALL(64)(1) + 0.5
    with pytest.raises(IncompatibleFieldError):
        MP(64)(1) * EXP(2)


def test_mp_has_a_private_context() -> None:
    import mpmath

    F = MP(300)
    assert mpmath.mp.prec == 53
    x = F(1) / 3
    assert abs(F.exact_value(x) - fmpq(1, 3)) < fmpq(1, 2**298)
    assert F.exact_value(F(-3)) == -3  # the sign survives (mpmath's man_exp drops it)


def test_field_by_name_parses_precisions() -> None:
    assert field_by_name("BALL(96)") is BALL(96)
    assert field_by_name("mp(120)") is MP(120)
    with pytest.raises(ValueError, match="BALL\\(prec\\)"):
        field_by_name("BALL(x)")
    with pytest.raises(InvalidEntryError):
        BALL(4)


def test_ball_solve_encloses_the_exact_solution() -> None:
    F = BALL(80)
    A = F.array([[2, 1], [1, 3]])
    B = F.array([1, Fraction(1, 3)])
    X = solve(F, A, B)
    exact = [Fraction(8, 15), Fraction(-1, 15)]
    for x, q in zip(X, exact, strict=True):
        assert x.value.contains(EXP(q).arb(200))


# -- reconstruction ------------------------------------------------------------------
def test_reconstruct_picks_the_unique_rational_and_reports_ambiguity() -> None:
    F = BALL(64)
    assert reconstruct_rational(F, F(-5) / 7, 10).value == fmpq(-5, 7)
    G = BALL(10)
    with pytest.raises(AmbiguousReconstructionError) as err:
        reconstruct_rational(G, G(1) / 3, 100, entry="W[0][1]")
    assert err.value.entry == "W[0][1]" and err.value.needed_prec > 10
    assert "W[0][1]" in str(err.value) and "bits would settle it" in str(err.value)
    # a ball with no rational of small denominator (pi to 60 bits, Q = 5)
    pi = PrecisionElement(BALL(60)._run(arb.pi), BALL(60))
    with pytest.raises(RecoveryFailedError, match="no rational with denominator <= 5"):
        reconstruct_rational(BALL(60), pi, 5)


@given(st.integers(1, 8), st.integers(0, 10_000))
def test_at_the_required_precision_reconstruction_always_succeeds(d: int, seed: int) -> None:
    inst = single_head_instance(d, seed, field=EXP)
    prec = required_precision(d, 9, 8)  # instance entries: |p/q| <= 9, q <= 8
    rec = learn_single_head(enclosing_oracle(inst.model, BALL(prec)), max_denominator=8)
    assert rec.status == "exact_given" and rec.field == EXP
    assert rec.hypotheses and "denominator" in rec.hypotheses[0]
    assert (rec.W == inst.model.W).all() and (rec.v == inst.model.v).all()
    assert rec.queries == d + d * d


@pytest.mark.parametrize("M", [0, Fraction(1, 2), 3, 40, 10**4])
def test_logit_slope_bound_covers_the_true_slope(M: Any) -> None:
    # the slope of logit at p = sigma(M) is 2 + 2 cosh(M); the old bound e^M + 2 was
    # below it for every M (off by e^-M), so the precision bound's proof was false
    K = logit_slope_bound(M)
    with ctx.workprec(3 * int(M) + 400):  # enough bits to see e^-M beside e^M
        t = arb(fmpq(Fraction(M).numerator, Fraction(M).denominator))
        slope = (1 + t.exp()) * (1 + (-t).exp())  # 1 / (p (1 - p)) at p = sigma(t)
        assert not K < slope  # K >= slope, rigorously (balls)
        assert t.exp() + 2 < slope  # the old bound fails
        assert K.upper() < slope.lower() * (1 + arb(2) ** -40)  # and is tight


def test_oracle_balls_meet_the_answer_radius_hypothesis() -> None:
    # (H2) of required_precision: radius <= ANSWER_RADIUS 2^-prec A, A = max(3M, 1)
    worst = fmpq(0)
    for prec in (40, 120):
        F = BALL(prec)
        for d in (2, 5):
            inst = single_head_instance(d, 3, field=EXP)
            oracle = enclosing_oracle(inst.model, F)
            learn_single_head(oracle, max_denominator=8)
            A = max(3 * fmpq(9), fmpq(1))  # instance entries: |p/q| <= 9
            for entry in oracle.transcript:
                worst = max(worst, F.radius(entry.answer) * 2**prec / A)
    assert 0 < worst <= ANSWER_RADIUS
    assert worst < 6  # the figure ANSWER_RADIUS's comment quotes


@pytest.mark.parametrize("d, seed", [(1, 0), (4, 1), (7, 2)])
def test_radii_stay_within_the_proved_chain(d: int, seed: int) -> None:
    # at the required precision every entry's radius is below the proof's
    # 35 K Q (4 rho + 3) eps A, itself below the 1 / (2 Q^2) reconstruction needs
    inst = single_head_instance(d, seed, field=EXP)
    M, Q = 9, 8
    prec = required_precision(d, M, Q)
    F = BALL(prec)
    rec = learn_single_head(enclosing_oracle(inst.model, F))
    K = logit_slope_bound(2 * M)
    with ctx.workprec(64):
        chain = 35 * K * Q * (4 * ANSWER_RADIUS + 3) * arb(2) ** -prec * (3 * M)
        for x in rec.W.flat:
            r = arb(F.radius(x))
            assert r < chain
            assert r < arb(fmpq(1, 2 * Q * Q))


def test_required_precision_refuses_bad_arguments() -> None:
    for bad in [(0, 9, 8), (2, -1, 8), (2, 9, 0), (2, "x", 8), (2, 9, 2.5)]:
        with pytest.raises(InvalidEntryError):
            required_precision(*bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError):
        required_precision(2, 9, 8, answer_radius=0)
    with pytest.raises(InvalidEntryError):
        logit_slope_bound(-1)


@pytest.mark.parametrize("d", [3, 8])
def test_far_below_the_bound_the_learner_reports_instead_of_guessing(d: int) -> None:
    inst = single_head_instance(d, 1, field=EXP)
    with pytest.raises((AmbiguousReconstructionError, InsufficientPrecisionError)):
        learn_single_head(enclosing_oracle(inst.model, BALL(10)), max_denominator=8)


def test_reconstructed_recovery_certificates() -> None:
    inst = single_head_instance(4, 2, field=EXP)
    balls = enclosing_oracle(inst.model, BALL(64))
    rec = learn_single_head(balls, max_denominator=8)
    exact_cert = verify(rec, ValueOracle(inst.model), probes=8)
    assert exact_cert.holds and exact_cert.kind == "exact"
    ball_cert = verify(rec, balls, probes=8)
    assert ball_cert.holds and ball_cert.kind == "enclosure"
    W = np.array(rec.W)
    W[1, 2] = W[1, 2] + EXP(Fraction(1, 7))
    wrong = dataclasses.replace(rec, params={"W": W, "v": rec.v})
    assert not verify(wrong, ValueOracle(inst.model), probes=8).holds
    assert not verify(wrong, balls, probes=8).holds


def test_max_denominator_needs_balls() -> None:
    inst = single_head_instance(2, 0, field=EXP)
    with pytest.raises(InvalidEntryError, match="BALL"):
        learn_single_head(ValueOracle(inst.model), max_denominator=8)
    with pytest.raises(InvalidEntryError, match="BALL"):
        learn_single_head(enclosing_oracle(inst.model, MP(100)), max_denominator=8)


def test_mp_learner_is_accurate_but_not_exact() -> None:
    inst = single_head_instance(5, 1, field=EXP)
    rec = learn_single_head(enclosing_oracle(inst.model, MP(120)))
    assert rec.status == "float"
    err = max(abs(MP(120).exact_value(rec.W[i, j]) - EXP.to_rational(inst.model.W[i, j]))
              for i in range(5) for j in range(5))
    assert err < fmpq(1, 2**90)


@pytest.mark.parametrize("F", [BALL(128), MP(128)])
def test_biased_head_over_balls_and_mpmath(F: Any) -> None:
    # was IncompatibleFieldError: the F64 error estimates ran on every inexact field
    from exactattn.learners.biased_head import learn_biased_head
    from exactattn.models import BiasedSingleHeadAttention

    head = BiasedSingleHeadAttention([[1, -2], [3, 0]], [1, 0], [0, 5], -1, field=EXP)
    rec = learn_biased_head(enclosing_oracle(head, F))
    assert rec.status == "float" and "W_error_bound" not in rec.options
    for got, truth in zip(rec.W.flat, head.W.flat, strict=True):
        exact = EXP.to_rational(truth)
        if isinstance(F, BallField):  # a rigorous enclosure of the hidden entry
            assert abs(F.midpoint(got) - exact) <= F.radius(got) < fmpq(1, 2**100)
        else:
            assert abs(F.exact_value(got) - exact) < fmpq(1, 2**100)


def test_enclosing_oracle_needs_exact_model_and_precision_field() -> None:
    head = SingleHeadAttention([[1.0]], [1.0], field=F64)
    with pytest.raises(IncompatibleFieldError):
        enclosing_oracle(head, BALL(64))
    with pytest.raises(IncompatibleFieldError):
        enclosing_oracle(SingleHeadAttention([[1]], [1], field=EXP), F64)


def test_mp_learner_on_a_saturated_logit_says_the_precision() -> None:
    # before: "(y - v_j) / (u_l^T v) = 1.0 has no exact logit ()", blaming the oracle only
    head = SingleHeadAttention([[30]], [1], field=EXP)
    with pytest.raises(RecoveryFailedError) as err:
        learn_single_head(enclosing_oracle(head, MP(32)))
    assert "MP(32)" in str(err.value) and "32 ln 2" in str(err.value)
    assert "column 0, probe 0" in str(err.value)
    rec = learn_single_head(enclosing_oracle(head, MP(120)))
    assert abs(MP(120).exact_value(rec.W[0, 0]) - 30) < fmpq(1, 2**60)


# -- F64 rescaling ------------------------------------------------------------------
def _badly_scaled(d: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.standard_normal((d, d)) * 40, rng.standard_normal(d)


def test_naive_probes_fail_on_saturated_logits() -> None:
    W, v = _badly_scaled()
    head = SingleHeadAttention(W, v, field=F64)
    with pytest.raises(RecoveryFailedError, match="outside \\(0, 1\\)"):
        learn_single_head(ValueOracle(head), rescale=False)


def test_rescaled_probes_succeed_and_say_what_they_cost() -> None:
    W, v = _badly_scaled()
    d = v.shape[0]
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    rec = learn_single_head(oracle)
    assert np.abs(rec.W - W).max() / np.abs(W).max() < 1e-12
    assert np.linalg.norm(rec.W - W) <= rec.options["W_error_bound"]
    extra = rec.queries_by_phase["W rescaled"]
    assert rec.queries == d + d * d + extra and extra > 0
    assert rec.options["rescaled_probes"] > 0
    assert verify(rec, oracle).holds


def test_well_scaled_f64_needs_no_rescaling() -> None:
    rng = np.random.default_rng(0)
    d = 16
    W, v = rng.standard_normal((d, d)) / d**0.5, rng.standard_normal(d)
    rec = learn_single_head(ValueOracle(SingleHeadAttention(W, v, field=F64)))
    assert dict(rec.queries_by_phase) == {"v": d, "W": d * d}


# -- F64 rescaling of large heads (issue 10, defect 2.6) ---------------------------
UNIT = 2.0**-53


def _fro(A: np.ndarray) -> float:
    """Frobenius norm, scaled so that squares of 1e300 do not overflow."""
    m = float(np.abs(A).max())
    return m * float(np.linalg.norm(A / m)) if m > 0 else 0.0


def _learn_f64(W: np.ndarray, v: np.ndarray) -> tuple[Any, ValueOracle, float]:
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    rec = learn_single_head(oracle)
    err = _fro(rec.W - W)
    assert err <= rec.options["W_error_bound"]
    rel = err / _fro(W)
    d = v.shape[0]
    assert rec.queries == d + d * d + rec.queries_by_phase["W rescaled"]
    return rec, oracle, rel


@pytest.mark.parametrize("w", [1e6, -1e6, 1e12])
def test_large_scalar_head_to_float64_accuracy(w: float) -> None:
    # before: 1e6 came back with relative error 6e-4 (scales 2^-1, 2^-3, ..., 2^-31 skipped
    # the usable ones) and 1e12 was refused as "not a single-head attention model"
    rec, oracle, rel = _learn_f64(np.array([[w]]), np.array([1.0]))
    assert rel <= 8 * UNIT
    # the stated bound is valid (checked above) and informative: a few hundred ulps
    assert rec.options["W_error_bound"] <= 1e-12 * abs(w)
    assert rec.queries_by_phase["W rescaled"] <= 8 and rec.options["rescaled_probes"] == 1
    assert verify(rec, oracle).holds


def test_d8_head_with_entries_near_1e8() -> None:
    rng = np.random.default_rng(7)
    W, v = rng.standard_normal((8, 8)) * 1e8, rng.standard_normal(8)
    rec, oracle, rel = _learn_f64(W, v)
    assert rel <= 64 * UNIT
    assert rec.options["W_error_bound"] <= 1e-10 * _fro(W)
    assert verify(rec, oracle).holds
    # the certificate still tells a wrong model from the right one at this scale
    wrong = np.array(rec.W)
    wrong[3, 5] *= 1 + 1e-9
    assert not verify(dataclasses.replace(rec, params={"W": wrong, "v": rec.v}), oracle).holds


@pytest.mark.parametrize("seed", range(4))
def test_f64_bound_holds_on_heads_of_mixed_magnitude(seed: int) -> None:
    # entries from 1e-3 to 1e11 in one head: unscaled, rescaled and saturated probes mixed,
    # large W_jj beside small logits (the score-gap rounding the bound now includes)
    rng = np.random.default_rng(seed)
    d = 6
    W = rng.standard_normal((d, d)) * 10.0 ** rng.integers(-3, 12, (d, d))
    v = rng.standard_normal(d)
    rec, oracle, rel = _learn_f64(W, v)
    assert rel <= 64 * UNIT
    assert verify(rec, oracle).holds


def test_gaussian_probes_rescale_too() -> None:
    rng = np.random.default_rng(5)
    W, v = rng.standard_normal((6, 6)) * 1e10, rng.standard_normal(6)
    oracle = ValueOracle(SingleHeadAttention(W, v, field=F64))
    rec = learn_single_head(oracle, probes="gaussian", seed=3)
    err = _fro(rec.W - W)
    assert err <= rec.options["W_error_bound"] <= 1e-8 * _fro(W)
    assert err <= 1e-11 * _fro(W)  # Z's conditioning costs a few digits, not the scale
    assert rec.queries_by_phase["W rescaled"] > 0 and verify(rec, oracle).holds


def test_heads_beyond_1e150_keep_a_finite_bound() -> None:
    rec, _, rel = _learn_f64(np.array([[1e300]]), np.array([1.0]))
    assert rel <= 8 * UNIT and np.isfinite(rec.options["W_error_bound"])


def test_precision_benchmark_quick_rows() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "precision.py"
    run = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                         text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    balls = [r for r in rows if "route" not in r]
    floats = [r for r in rows if r.get("route") == "F64 rescaled"]
    assert len(balls) == 4 and len(floats) == 2
    for r in balls:
        assert r["exact"] is True and r["queries"] == r["expected_queries"]
        assert r["smallest_working_bits"] <= r["bound_bits"]
    for r in floats:
        assert r["within_bound"] is True and r["relative_error_in_ulps"] <= 8


# -- BALL logits that the precision cannot settle (issue 10, defect 2.8) -------------
def test_ball_logit_of_a_ball_holding_one_names_the_precision() -> None:
    # was InsufficientPrecisionError("log(nan): ...") with no figures
    F = BALL(32)
    with pytest.raises(InsufficientPrecisionError) as err:
        F.logit(F(1) - F(Fraction(1, 2**40)))
    assert "nan" not in str(err.value) and "contains 1 at 32 bits" in str(err.value)
    assert err.value.prec == 32 and err.value.needed_prec is not None
    assert err.value.needed_prec > 32
    with pytest.raises(InsufficientPrecisionError, match="contains 0 at 32 bits"):
        F.logit(F(1) / 3 - F(1) / 3 + F(Fraction(1, 2**40)))
    # exactly 1, 0 or outside (0, 1): no logit at any precision
    for p in (F(1), F(0), F(2), F(-1)):
        with pytest.raises(NotRepresentableError, match=r"logit.*0 < p < 1"):
            F.logit(p)
    # a ball inside (0, 1) keeps working, and encloses the logit
    assert F.logit(F(Fraction(3, 4))).value.contains(arb(3).log())


def test_ball_learner_on_a_large_logit_names_the_probe_and_the_bits() -> None:
    head = SingleHeadAttention([[30]], [1], field=EXP)
    with pytest.raises(InsufficientPrecisionError) as err:
        learn_single_head(enclosing_oracle(head, BALL(32)), max_denominator=1)
    message = str(err.value)
    assert "nan" not in message
    assert "column 0, probe 0" in message and "32 bits" in message
    assert "required_precision" in message
    assert err.value.prec == 32
    # the advertised precision does settle it
    prec = required_precision(1, 30, 1)
    rec = learn_single_head(enclosing_oracle(head, BALL(prec)), max_denominator=1)
    assert rec.W.tolist() == [[30]]


def test_other_learners_do_not_advertise_the_single_head_precision_bound() -> None:
    # required_precision is proved for learn_single_head's probes only; the shared
    # probe_logits used to name it for every learner (here a biased head)
    from exactattn.learners.biased_head import learn_biased_head
    from exactattn.models import BiasedSingleHeadAttention

    head = BiasedSingleHeadAttention([[30]], [0], [1], 0, field=EXP)
    with pytest.raises(InsufficientPrecisionError) as err:
        learn_biased_head(enclosing_oracle(head, BALL(32)))
    assert "W column 0, probe 0" in str(err.value) and "32 bits" in str(err.value)
    assert "required_precision" not in str(err.value)
