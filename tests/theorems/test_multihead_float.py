"""multihead_canonical, float variant: canonical heads from a float64 oracle.

The five kinds: a worked example with literal numbers; a property test
(every recovered entry within its computed first-order bound); the query
count against its proved closed form and against 4 H d^2 - 2 H + 1; a
certificate that rejects a perturbed recovery and a non-attention oracle;
violated hypotheses (more heads than d, nearly equal heads, not attention,
bad arguments) with clear errors.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flint import arb
from hypothesis import given, settings
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.checks.multihead_float import (
    TOLERANCE_TEXT,
    ball_oracle,
    balls_contain,
    random_float_multihead,
    recovery_errors,
    within_bounds,
)
from exactattn.claims import run_claims
from exactattn.errors import (
    HypothesisViolatedError,
    IllConditionedError,
    InvalidEntryError,
    RecoveryFailedError,
)
from exactattn.fields import BALL, EXP, F64
from exactattn.learners import learn_multihead_float, multihead_float
from exactattn.learners.multihead_float import (
    LABEL,
    MIN_MARGIN,
    float_query_count,
    published_bound,
    ratio_grid,
)
from exactattn.learners.recovery import Recovery
from exactattn.models.multihead import MultiHeadAttention
from exactattn.oracle import ValueOracle

W1 = np.array([[0.5, -0.3], [0.2, 0.4]])
V1 = np.array([1.0, -0.5])
W2 = np.array([[-0.6, 0.1], [0.3, -0.2]])
V2 = np.array([0.3, 0.8])


# -- worked example ------------------------------------------------------------------
def test_worked_example() -> None:
    model = MultiHeadAttention([(W1, V1), (W2, V2)], field=F64)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=2)
    assert rec.label == LABEL and rec.status == "float" and rec.field is F64
    assert rec.options["m"] == 2
    # canonical order: by W row-major, W2 (-0.6, ...) before W1 (0.5, ...)
    W, v = rec.params["W"], rec.params["v"]
    assert np.abs(W[0] - W2).max() <= rec.params["W_error_bound"][0].max() < 1e-10
    assert np.abs(W[1] - W1).max() <= rec.params["W_error_bound"][1].max() < 1e-10
    assert np.abs(v[0] - V2).max() <= rec.params["v_error_bound"][0].max() < 1e-10
    assert np.abs(v[1] - V1).max() <= rec.params["v_error_bound"][1].max() < 1e-10
    # phase v: 1 + 2 H f d = 1 + 2*2*2*2 = 17; match: d - 1 = 1; per base
    # K_W = m (d - m + 1) + 3 m (m - 1) / 2 = 2 + 3 = 5: phase W (d - 1) K_W = 5,
    # refine 2 K_W = 10
    assert dict(rec.queries_by_phase) == {"v": 17, "match": 1, "W": 5, "refine": 10}
    assert rec.queries == oracle.queries == float_query_count(2, 2) == 33
    assert rec.options["head_count"]["margin_decades"] >= MIN_MARGIN
    assert rec.options["residual"] <= 2 * rec.options["noise_bound"]


def test_ratio_grid_by_hand() -> None:
    # e^-1 ~ 0.368 ~ 3/8 (denominator <= 8), e^0 = 1, e^1 ~ 8/3
    assert ratio_grid(3, 1.0, 8) == [(3, 8), (1, 1), (8, 3)]
    grid = ratio_grid(12)
    ratios = [c / K for c, K in grid]
    assert ratios == sorted(ratios) and max(max(c, K) for c, K in grid) <= 64
    with pytest.raises(InvalidEntryError, match="coincide"):
        ratio_grid(40, 0.1, 4)


# -- property test -------------------------------------------------------------------
@settings(max_examples=6)
@given(H=st.integers(1, 2), d=st.integers(2, 4), seed=st.integers(0, 10**6))
def test_recovery_within_computed_bounds(H: int, d: int, seed: int) -> None:
    model = random_float_multihead(H, d, seed)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=H, seed=seed)
    assert rec.options["m"] == H
    assert within_bounds(rec, model)
    _, _, rel = recovery_errors(rec, model)
    assert rel <= rec.options["conditioning"]["max_relative_bound"] <= 1e-6
    assert rec.queries == oracle.queries == float_query_count(H, d)


# -- query count -----------------------------------------------------------------------
def test_count_below_the_published_bound() -> None:
    # the docstring's proof: f = 2, m <= H <= d, d >= 3
    for d in range(3, 41):
        for H in range(1, d + 1):
            for m in range(1, H + 1):
                assert float_query_count(H, d, m=m) < published_bound(H, d), (H, d, m)
    # with n <= H d polish queries per base, d >= 4 (the docstring's second bound)
    for d in range(4, 41):
        for H in range(1, d + 1):
            assert float_query_count(H, d, polish_queries=H * d) < published_bound(H, d)
    assert float_query_count(6, 8, families_per_dimension=4, polish_queries=64) == 1407 < 1525
    # and where the claim does not reach: d = 2, H = 2 spends more than the bound
    assert float_query_count(2, 2) == 33 > published_bound(2, 2) == 29


def test_count_with_extra_scales() -> None:
    model = random_float_multihead(2, 3, 8)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=2, seed=8, extra_scales=(2.0,))
    # K_W = 2 (3 - 2 + 1) + 3 = 7 more queries at each of the d - 1 = 2 bases
    assert rec.queries == oracle.queries == float_query_count(2, 3, extra_scales=1) == 55 + 14
    assert rec.queries_by_phase["refine"] == 2 * 7 + 14
    assert within_bounds(rec, model)


def test_count_with_two_pair_directions() -> None:
    model = random_float_multihead(3, 4, 9)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=3, seed=9, pair_directions=2)
    # K_W = 3 (4 - 3 + 1) + 3 * 2 * 3 = 24 per base; d - 1 + 2 = 5 bases' worth
    assert rec.queries == oracle.queries == float_query_count(3, 4, pair_directions=2)
    assert rec.queries == 1 + 2 * 3 * 2 * 4 + 3 + 5 * 24 == 172
    assert within_bounds(rec, model)


def test_unknown_head_count_is_decided_with_margin() -> None:
    # heads=3 is only an upper bound; a zero-v head and a split head are not canonical
    zero = np.zeros(2)
    model = MultiHeadAttention([(W1, 0.25 * V1), (W2, V2), (W1, 0.75 * V1),
                                (np.eye(2), zero)], field=F64)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=3)
    assert rec.options["m"] == 2
    assert rec.queries == oracle.queries == float_query_count(3, 2, m=2)
    assert rec.options["head_count"]["margin_decades"] >= MIN_MARGIN
    assert within_bounds(rec, model)


# -- certificates ----------------------------------------------------------------------
def test_certificate_holds_and_rejects_a_perturbed_recovery() -> None:
    model = random_float_multihead(2, 3, 5)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=2, seed=5)
    cert = verify(rec, oracle, probes=8)
    assert cert.holds and cert.kind == "tolerance" and cert.tolerance == TOLERANCE_TEXT
    W = rec.params["W"].copy()
    W[1, 2, 0] += 1e-7
    bad = dataclasses.replace(rec, params={**rec.params, "W": W})
    assert not verify(bad, oracle, probes=8).holds


@pytest.mark.parametrize(("H", "d", "seed"), [(2, 3, 5), (3, 4, 9)])
def test_certificate_rejects_every_entry_off_by_1000_estimates(H: int, d: int, seed: int) -> None:
    # the tolerance is not vacuous: one entry of W_h (v_h) moved by 1000 times the Frobenius
    # (2-) norm of its head's error estimates is rejected, for every entry (measured: 100
    # times suffices on these instances, 10 to 30 times for most entries)
    model = random_float_multihead(H, d, seed)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=H, seed=seed)
    assert verify(rec, oracle, probes=8).holds
    for h in range(H):
        eW = float(np.linalg.norm(rec.params["W_error_bound"][h]))
        ev = float(np.linalg.norm(rec.params["v_error_bound"][h]))
        assert 0 < eW < 1e-7 and 0 < ev < 1e-7
        for i in range(d):
            v = rec.params["v"].copy()
            v[h, i] += 1000 * ev
            assert not verify(dataclasses.replace(rec, params={**rec.params, "v": v}),
                              oracle, probes=8).holds, ("v", h, i)
            for j in range(d):
                W = rec.params["W"].copy()
                W[h, i, j] -= 1000 * eW
                assert not verify(dataclasses.replace(rec, params={**rec.params, "W": W}),
                                  oracle, probes=8).holds, ("W", h, i, j)


def test_certificate_rejects_another_oracle() -> None:
    model = random_float_multihead(2, 3, 6)
    rec = learn_multihead_float(ValueOracle(model), heads=2, seed=6)
    other = MultiHeadAttention([(W, v * (1 + 1e-6)) for W, v in zip(model.Ws, model.vs,
                                                                      strict=True)], field=F64)
    cert = verify(rec, ValueOracle(other), probes=8)
    assert not cert.holds and cert.first_failure is not None


def test_the_claims_hold() -> None:
    ours = {f"{LABEL}.{name}" for name in ("float_recovery", "float_head_count",
                                           "float_ill_conditioning",
                                           "float_certificate_soundness", "ball_enclosure")}
    results = [r for r in run_claims([LABEL]) if r.claim.id in ours]
    assert len(results) == 5 and all(r.outcome.holds for r in results)


# -- violated hypotheses -----------------------------------------------------------------
def test_nearly_equal_heads_are_reported_not_merged() -> None:
    rng = np.random.default_rng(3)
    W, v, v2 = rng.standard_normal((3, 3)) / 2, rng.standard_normal(3), rng.standard_normal(3)
    W3 = rng.standard_normal((3, 3)) / 2
    model = MultiHeadAttention([(W, v), (W + 1e-6 * np.eye(3), v2), (W3, v - v2)], field=F64)
    with pytest.raises(RecoveryFailedError) as info:
        learn_multihead_float(ValueOracle(model), heads=3)
    text = str(info.value)
    if isinstance(info.value, IllConditionedError):
        assert info.value.report  # the measured figures
        assert "decade" in text or "condition" in text
    else:
        assert "residual" in text and "nearly equal" in text


def test_more_heads_than_d() -> None:
    rng = np.random.default_rng(4)
    model = MultiHeadAttention([(rng.standard_normal((1, 1)) * 2, [1.0 + h]) for h in range(2)],
                               field=F64)
    with pytest.raises((HypothesisViolatedError, IllConditionedError)):
        learn_multihead_float(ValueOracle(model), heads=2)


def test_not_attention() -> None:
    def f(X: np.ndarray) -> float:
        return float(np.tanh(X).sum() + (X[-1] ** 2).sum())

    with pytest.raises(RecoveryFailedError):
        learn_multihead_float(ValueOracle(f, field=F64, d=3), heads=2)


@pytest.mark.parametrize("kwargs", [
    {"heads": 0}, {"heads": True}, {"heads": 2, "max_relative_bound": -1.0},
    {"heads": 2, "direction_scale": float("nan")}, {"heads": 2, "families_per_dimension": 0},
    {"heads": 2, "extra_scales": (1.0, -2.0)}, {"heads": 2, "extra_scales": [2.0]},
    {"heads": 2, "pair_directions": 0}, {"heads": 2, "families_per_dimension": 65},
    {"heads": 2, "pair_directions": 10**9}, {"heads": 2, "pair_directions": 2.0},
])
def test_bad_arguments_before_any_query(kwargs: dict[str, object]) -> None:
    oracle = ValueOracle(random_float_multihead(2, 2, 0))
    with pytest.raises(InvalidEntryError):
        learn_multihead_float(oracle, **kwargs)  # type: ignore[arg-type]
    assert oracle.queries == 0


def test_exact_oracle_refused() -> None:
    model = MultiHeadAttention([([[1, 0], [0, 1]], [1, 0])], field=EXP)
    with pytest.raises(InvalidEntryError, match="F64"):
        learn_multihead_float(ValueOracle(model), heads=1)


def test_tight_threshold_refuses_with_report() -> None:
    model = random_float_multihead(2, 3, 7)
    with pytest.raises(IllConditionedError) as info:
        learn_multihead_float(ValueOracle(model), heads=2, max_relative_bound=1e-18)
    assert info.value.report["max_relative_bound"] > 1e-18
    assert set(info.value.recovered) == {"W", "v", "W_error_bound", "v_error_bound"}


# -- benchmark smoke test ----------------------------------------------------------------
def test_quick_benchmark_prints_valid_json_rows() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "multihead_float.py"),
                           "--quick"], cwd=root, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["case"] for r in rows] == ["H2_d3", "near_equal", "H2_d3_ball80"]
    first, near, ball = rows
    # the BALL row: every hidden parameter inside its ball, radii far below the target
    assert ball["contains_hidden"] and ball["status"] == "approximate" and ball["target_met"]
    assert ball["queries"] == ball["proved_queries"]
    assert 0 < ball["max_parameter_radius"] <= 1e-15
    assert first["queries"] == first["proved_queries"] < first["published_bound"]
    assert first["within_bounds"] and first["certificate_holds"] and first["target_met"]
    assert first["max_rel_error"] <= 1e-10
    # nearly equal heads: refused with an ill-conditioning report carrying the measured
    # residual against the rounding estimate (before: a refusal without a report)
    assert near["target_met"] and near["refused"]
    assert near["error"].startswith("IllConditionedError")
    assert near["report"]["residual_over_noise"] > 1e3 and near["report"]["m"] < near["H"]


@pytest.mark.parametrize(("H", "d", "seed"), [(3, 3, 0), (3, 4, 1)])
def test_nearly_equal_heads_get_an_ill_conditioning_report(H: int, d: int, seed: int) -> None:
    # two heads 1e-6 apart: the copy families see one of them (m < H), no m-head model
    # fits; the refusal is an IllConditionedError whose report carries the measured
    # residual against the rounding estimate and the head count's margin (regression:
    # it was a RecoveryFailedError without a report)
    base = random_float_multihead(H, d, seed)
    heads = list(zip(base.Ws, base.vs, strict=True))
    rng = np.random.default_rng([seed, 99])
    heads[1] = (heads[0][0] + 1e-6 * rng.uniform(-1, 1, size=(d, d)), heads[1][1])
    model = MultiHeadAttention(heads, field=F64, d=d)
    with pytest.raises(IllConditionedError) as info:
        learn_multihead_float(ValueOracle(model), heads=H, seed=seed)
    report = info.value.report
    assert report["m"] < H and report["residual"] > 1e3 * report["noise_bound"] > 0
    assert report["margin_decades"] >= MIN_MARGIN
    assert "nearly equal" in str(info.value) and f"{report['residual']:.3e}" in str(info.value)



# -- the polish queries and the BALL route ---------------------------------------------
def test_count_with_polish_queries() -> None:
    model = random_float_multihead(2, 3, 8)
    oracle = ValueOracle(model)
    rec = learn_multihead_float(oracle, heads=2, seed=8, polish_queries=5)
    # (d - 1) n = 2 * 5 random two-token queries at b_2, b_3, phase "polish"
    assert rec.queries_by_phase["polish"] == 10
    assert rec.queries == oracle.queries == float_query_count(2, 3, polish_queries=5) == 55 + 10
    assert within_bounds(rec, model)


@pytest.mark.parametrize(("H", "d", "seed", "prec", "radius"), [
    (2, 3, 0, 80, 1e-16), (1, 3, 4, 64, 1e-12), (2, 4, 2, 120, 1e-20)])
def test_ball_route_encloses_the_hidden_parameters(H: int, d: int, seed: int, prec: int,
                                                   radius: float) -> None:
    model = random_float_multihead(H, d, seed)
    oracle = ball_oracle(model, prec)
    rec = learn_multihead_float(oracle, heads=H, seed=seed)
    assert rec.status == "approximate" and rec.field == BALL(prec)
    assert any("Krawczyk box" in h for h in rec.hypotheses)
    assert rec.queries == oracle.queries == float_query_count(H, d)
    enclosure = rec.options["enclosure"]
    assert enclosure["contained"] and enclosure["precision"] == prec
    W, v = rec.params["W"], rec.params["v"]
    assert W.shape == (H, d, d) and v.shape == (H, d)
    for Wt, vt in zip(model.Ws, model.vs, strict=True):
        # the head whose balls contain the hidden W_h (decided by arb, no tolerance)
        hits = [k for k in range(H)
                if all(b.value.contains(arb(float(t))) for b, t in zip(W[k].flat, Wt.flat,
                                                                        strict=True))]
        assert len(hits) == 1
        assert all(b.value.contains(arb(float(t))) for b, t in zip(v[hits[0]], vt, strict=True))
    # rigorous and narrow (measured: 1.3e-13 at 64 bits, 5e-23 at 120 bits on (2, 4))
    assert 0 < enclosure["max_parameter_radius"] < radius


def test_krawczyk_rejects_a_wrong_centre() -> None:
    # the enclosure test is not vacuous: around parameters 1e-8 off (box radius 1e-12)
    # the Krawczyk operator leaves the box, and no enclosure is claimed
    model = random_float_multihead(2, 3, 0)
    oracle = ball_oracle(model, 80)
    captured: dict[str, object] = {}
    original = multihead_float._krawczyk

    def spy(F, bases, balls, V, Ucols, rho):  # type: ignore[no-untyped-def]
        captured.update(F=F, bases=bases, balls=balls, V=V, Ucols=Ucols)
        return original(F, bases, balls, V, Ucols, rho)

    multihead_float._krawczyk = spy  # type: ignore[assignment]
    try:
        learn_multihead_float(oracle, heads=2)
    finally:
        multihead_float._krawczyk = original  # type: ignore[assignment]
    F, bases, balls = captured["F"], captured["bases"], captured["balls"]
    V, Ucols = captured["V"], captured["Ucols"]
    theta = multihead_float._flat(V, Ucols)

    def box(centre: np.ndarray) -> list[arb]:
        return [arb(float(x), 1e-12) for x in centre]

    _, figures = original(F, bases, balls, V, Ucols, box(theta))
    assert figures["contained"]                          # the right centre: enclosed
    wrong = theta.copy()
    wrong[0] += 1e-8                                     # one entry of v_1 off by 1e-8
    _, figures = original(F, bases, balls, V, Ucols, box(wrong))
    assert not figures["contained"]                      # refused: no enclosure claimed


def test_ball_oracle_below_float64_precision_refused() -> None:
    oracle = ball_oracle(random_float_multihead(1, 2, 0), 40)
    with pytest.raises(InvalidEntryError, match="at least 53 bits"):
        learn_multihead_float(oracle, heads=1)
    assert oracle.queries == 0


def test_ball_certificate_holds_and_rejects_a_moved_ball() -> None:
    # verify() certifies a multi-head BALL recovery by enclosure (each query: the
    # recovered balls' value meets the oracle's ball), and rejects one W entry moved
    # by 1e-12 (disjoint balls: a rigorous rejection)
    model = random_float_multihead(2, 3, 0)
    oracle = ball_oracle(model, 80)
    rec = learn_multihead_float(oracle, heads=2)
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "enclosure" and cert.checked == rec.queries + 4
    # saved and loaded (JSON): the same balls, status and hypotheses, certified again
    back = Recovery.from_json(json.loads(json.dumps(rec.to_json())))
    assert back.status == "approximate" and back.hypotheses == rec.hypotheses
    assert balls_contain(back, model) and verify(back, oracle, probes=2).holds
    W = rec.params["W"].copy()
    ball = W[1, 2, 0]
    W[1, 2, 0] = type(ball)(ball.field._run(lambda: ball.value + 1e-12), ball.field)
    bad = verify(dataclasses.replace(rec, params={**rec.params, "W": W}), oracle, probes=4)
    assert not bad.holds and bad.first_failure is not None
    assert "disjoint" in bad.first_failure.reason



def _near_equal(H: int, d: int, eps: float) -> MultiHeadAttention:
    base = random_float_multihead(H, d, 0)
    heads = list(zip(base.Ws, base.vs, strict=True))
    rng = np.random.default_rng([0, 99])
    heads[1] = (heads[0][0] + eps * rng.uniform(-1, 1, size=(d, d)), heads[1][1])
    return MultiHeadAttention(heads, field=F64, d=d)


def test_heads_closer_than_float64_resolves_are_a_named_hypothesis() -> None:
    # W_2 = W_1 + 1e-12 U: over F64 the answers are within rounding of one merged head,
    # and the recovery returns 2 heads of H = 3; its hypotheses say so. Over BALL(80)
    # the same merge is refuted: f over the enclosure misses the answers' balls (arb)
    model = _near_equal(3, 3, 1e-12)
    rec = learn_multihead_float(ValueOracle(model), heads=3)
    assert rec.options["m"] == 2 and rec.status == "float"
    assert any("closer than float64 resolves" in h for h in rec.hypotheses)
    with pytest.raises(IllConditionedError, match="misses") as info:
        learn_multihead_float(ball_oracle(model, 80), heads=3)
    assert info.value.report["answers_missed"] > 0
    # equal heads are one canonical head: merged over BALL too, and enclosed
    same = learn_multihead_float(ball_oracle(_near_equal(3, 3, 0.0), 80), heads=3)
    assert same.options["m"] == 2 and same.options["enclosure"]["answers_missed"] == 0


@settings(max_examples=4)
@given(H=st.integers(1, 2), d=st.integers(2, 3), seed=st.integers(0, 10**6),
       prec=st.sampled_from([64, 80, 100]))
def test_ball_route_property(H: int, d: int, seed: int, prec: int) -> None:
    # every hidden canonical parameter lies in its Krawczyk ball (decided by arb), the
    # count is the proved one, and f over the enclosure meets every answer's ball
    model = random_float_multihead(H, d, seed)
    oracle = ball_oracle(model, prec)
    try:
        rec = learn_multihead_float(oracle, heads=H, seed=seed)
    except IllConditionedError as exc:  # a refusal names its figures; never a wrong ball
        assert exc.report
        return
    assert rec.status == "approximate" and balls_contain(rec, model)
    assert rec.queries == oracle.queries == float_query_count(H, d)
    assert rec.options["enclosure"]["answers_missed"] == 0


def test_ball_route_refuses_when_no_box_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # boxes far narrower than the float solve's error (1e-9 x the estimates, widened
    # 16-fold twice) cannot contain the Krawczyk image: the learner refuses with the
    # figures instead of returning unproved balls
    monkeypatch.setattr(multihead_float, "KRAWCZYK_INFLATION", 1e-9)
    oracle = ball_oracle(random_float_multihead(2, 3, 0), 80)
    with pytest.raises(IllConditionedError, match="Krawczyk test failed") as info:
        learn_multihead_float(oracle, heads=2)
    assert info.value.report["contained"] is False and info.value.report["max_radius"] > 0
