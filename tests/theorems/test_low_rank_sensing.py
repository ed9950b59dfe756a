"""low_rank_sensing: rank-one measurements, a float solver, then an exact polish.

Paper Thm 5.2 (v1) = Thm 5.1 (v2); paper.md §4; learner
:func:`exactattn.learners.low_rank.learn_low_rank` with ``method="sensing"``.
This file holds, as docs/style.md asks: a worked example of the rank-one
measurement identity with literal numbers; a property test of the identity;
exact recovery through the numpy ALS route (and, when the optional extra is
installed, the cvxpy nuclear-norm route); the query count d + m from the
oracle's counter; the exact polish accepting and rejecting; a certificate
rejecting a perturbed model; violated hypotheses (rank(W) > r, too few
measurements, v = 0) with clear errors carrying the float estimate; and the
measured ratios of docs/low_rank_success.json. The heavy success-rate
experiment lives in ``benchmarks/low_rank.py``, not here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exactattn.checks.low_rank  # noqa: F401  (registers the certificate builders)
from exactattn.certificates import verify
from exactattn.checks.low_rank import (
    SENSING_GRID_D,
    SENSING_RATIO_ALS,
    SENSING_RATIO_NUCLEAR,
    low_rank_head,
    sensing_measurements,
)
from exactattn.claims import run_claims
from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    RecoveryFailedError,
)
from exactattn.fields import EXP, F64, QQ
from exactattn.learners import learn_low_rank
from exactattn.learners.low_rank import (
    LABEL_SENSING,
    PAPER_REF_SENSING,
    InexactRecoveryError,
    degrees_of_freedom,
    exact_polish,
    nuclear_norm_estimate,
    rank_one_query,
    sensing_query_count,
)
from exactattn.learners.recovery import Recovery
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle
from exactattn.report.latex import label_section
from tests.helpers import e, same, sigma

F = Fraction
ROOT = Path(__file__).resolve().parents[2]








def perturbed(rec: Recovery, delta: Any) -> Recovery:
    W = rec.W.copy()
    W[0, -1] = W[0, -1] + delta
    return dataclasses.replace(rec, params={"W": W, "v": rec.v.copy()})


# -- worked example: the rank-one measurement, d = 2 -----------------------------------
# W = [[1, 2], [1/2, 1]] (rank 1), v = (1, -1); a = e_1, b = e_2.
W_EX = [[1, 2], [F(1, 2), 1]]
V_EX = [1, -1]


def test_worked_example_rank_one_measurement() -> None:
    head = SingleHeadAttention(W_EX, V_EX, field=EXP)
    a, b = EXP.array([1, 0]), EXP.array([0, 1])
    X = rank_one_query(a, b)
    assert X.tolist() == [[1, 1], [0, 1]]
    # scores: (1, 1) W (0, 1)^T = W_12 + W_22 = 3 and W_22 = 1; values: v.(1, 1) = 0, v_2 = -1
    y = head(X)
    assert y == (0 * e(3) + (-1) * e(1)) / (e(3) + e(1))
    assert y == -1 / (e(2) + 1)
    # y = b^T v + sigma(a^T W b) a^T v = -1 + sigma(2)
    assert y == -1 + sigma(2)
    t = EXP.logit((y - b @ head.v) / (a @ head.v))
    assert t == 2 == W_EX[0][1] and EXP.is_rational(t)


small = st.fractions(min_value=-3, max_value=3, max_denominator=4)


@given(st.integers(1, 4).flatmap(lambda d: st.tuples(
    st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d),
    st.lists(small, min_size=d, max_size=d),
    st.lists(small, min_size=d, max_size=d),
    st.lists(small, min_size=d, max_size=d))))
def test_rank_one_identity_property(case: tuple[Any, Any, Any, Any]) -> None:
    W, v, a, b = case
    head = SingleHeadAttention(W, v, field=EXP)
    a, b = EXP.array(a), EXP.array(b)
    if a @ head.v == 0:
        return
    y = head(rank_one_query(a, b))
    assert EXP.logit((y - b @ head.v) / (a @ head.v)) == a @ head.W @ b


# -- exact recovery: the ALS route (always available) ------------------------------------
@pytest.mark.parametrize("d, r", [(4, 1), (6, 2), (8, 3)])
def test_als_recovers_exactly_with_d_plus_m_queries(d: int, r: int) -> None:
    head = low_rank_head(d, r, seed=d)
    m = sensing_measurements(d, r, 2)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=r, method="sensing", measurements=m, seed=1)
    assert rec.label == LABEL_SENSING and rec.paper_ref == PAPER_REF_SENSING
    assert same(rec.W, head.W) and same(rec.v, head.v) and rec.status == "exact_given"
    assert oracle.queries == rec.queries == d + m == sensing_query_count(d, m)
    assert dict(rec.queries_by_phase) == {"v": d, "measurements": m}
    assert [t.X.shape[0] for t in rec.transcript] == [1] * d + [2] * m
    opts = rec.options
    assert opts["solver"] == "als" and opts["measurements"] == m
    assert "float64" in opts["solver_output"] and "exactly" in opts["polish"]
    assert opts["float_relative_residual"] < 1e-9
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "exact"


def test_sensing_in_QQ() -> None:
    head = low_rank_head(5, 1, seed=2)
    rec = learn_low_rank(ValueOracle(head), rank=1, method="sensing",
                         measurements=sensing_measurements(5, 1, 2), field=QQ)
    assert rec.field == QQ and same(rec.W, QQ.array([[EXP.to_rational(x) for x in row]
                                                     for row in head.W]))


def test_rank_zero() -> None:
    head = SingleHeadAttention([[0, 0], [0, 0]], [1, 2], field=EXP)
    rec = learn_low_rank(ValueOracle(head), rank=0, method="sensing", measurements=3)
    assert same(rec.W, [[0, 0], [0, 0]])


# -- the nuclear-norm route (optional extra `sensing`) ---------------------------------------
def test_nuclear_norm_route() -> None:
    pytest.importorskip("cvxpy", reason="optional extra 'sensing' (cvxpy) not installed")
    head = low_rank_head(6, 1, seed=0)
    m = sensing_measurements(6, 1, SENSING_RATIO_NUCLEAR)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=1, method="sensing", measurements=m, solver="nuclear")
    assert same(rec.W, head.W) and oracle.queries == 6 + m
    assert rec.options["solver"] in ("nuclear (SCS)", "nuclear (CLARABEL)")
    # Clarabel alone, and a missing solver skipped on the way
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=1, method="sensing", measurements=m, solver="nuclear",
                         sdp_solvers=("NO_SUCH_SOLVER", "CLARABEL"))
    assert same(rec.W, head.W) and rec.options["solver"] == "nuclear (CLARABEL)"
    with pytest.raises(RecoveryFailedError, match="NO_SUCH_SOLVER: not installed"):
        nuclear_norm_estimate(np.eye(2), np.eye(2), np.ones(2), solvers=("NO_SUCH_SOLVER",))


def test_nuclear_norm_without_cvxpy_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cvxpy", None)  # 'import cvxpy' now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'exactattn\[sensing\]'"):
        learn_low_rank(ValueOracle(low_rank_head(4, 1, seed=0)), rank=1, method="sensing",
                       measurements=12, solver="nuclear")


# -- the exact polish ------------------------------------------------------------------------
def _measurements(W: Any, m: int, seed: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    d = W.shape[0]
    A, B = QQ.gaussian(rng, (m, d)), QQ.gaussian(rng, (m, d))
    t = np.array([a @ W @ b for a, b in zip(A, B, strict=True)], dtype=object)
    return A, B, t


def test_polish_reconstructs_and_checks_exactly() -> None:
    W = QQ.array([[F(1, 3), F(-2, 3)], [F(1, 2), -1]])        # rank 1, denominators 3 and 2
    A, B, t = _measurements(W, 6, 0)
    noisy = np.array([[1 / 3 + 1e-13, -2 / 3], [0.5, -1 - 1e-13]])
    got, info = exact_polish(QQ, noisy, A, B, t, 1)
    assert got is not None and same(got, W)
    assert info["max_denominator"] in (4, 8) and info["reason"] == ""
    # the same estimate with a wrong measurement: no rational candidate fits it
    t_bad = t.copy()
    t_bad[0] = t_bad[0] + QQ(F(1, 10**6))
    got, info = exact_polish(QQ, noisy, A, B, t_bad, 1)
    assert got is None and "fits every measurement" in info["reason"]
    assert info["estimate"].dtype == np.float64


def test_polish_refuses_an_estimate_of_higher_rank() -> None:
    W = QQ.array([[1, 0], [0, 1]])
    A, B, t = _measurements(W, 6, 1)
    got, info = exact_polish(QQ, np.eye(2), A, B, t, 1)
    assert got is None and "not numerically of rank <= 1" in info["reason"]


def test_polish_refuses_to_solve_instead_of_the_solver() -> None:
    W = QQ.array([[1, 2], [2, 4]])
    A, B, t = _measurements(W, 6, 2)
    # a rank-1 float estimate far from W: the refinement would have to move it a lot
    got, info = exact_polish(QQ, np.array([[1.0, 1.0], [1.0, 1.0]]), A, B, t, 1)
    assert got is None and "moved the estimate" in info["reason"]


# -- violated hypotheses: an error carrying the float estimate, never a wrong W ----------------
def test_rank_larger_than_given_raises_with_the_float_estimate() -> None:
    head = low_rank_head(6, 2, seed=4)
    oracle = ValueOracle(head)
    m = sensing_measurements(6, 1, 3)
    with pytest.raises(InexactRecoveryError, match="exact polish rejected") as info:
        learn_low_rank(oracle, rank=1, method="sensing", measurements=m)
    est = info.value.estimate
    assert est.W.dtype == np.float64 and est.W.shape == (6, 6)
    assert est.relative_residual > 1e-6 and "not exact" in est.kind and est.solver == "als"
    assert str(est).startswith("float64 estimate (not exact) from als")
    assert same(info.value.recovered["v"], head.v)
    assert oracle.queries == 6 + m


def test_too_few_measurements_never_return_a_wrong_matrix() -> None:
    for seed in range(3):
        head = low_rank_head(8, 2, seed=seed)
        m = degrees_of_freedom(8, 2) // 2
        try:
            rec = learn_low_rank(ValueOracle(head), rank=2, method="sensing", measurements=m,
                                 seed=seed)
        except InexactRecoveryError:
            continue
        assert same(rec.W, head.W)  # pragma: no cover - not reached on these seeds


def test_v_zero_is_not_identifiable() -> None:
    oracle = ValueOracle(SingleHeadAttention(W_EX, [0, 0], field=EXP))
    with pytest.raises(NotIdentifiableError):
        learn_low_rank(oracle, rank=1, method="sensing", measurements=5)
    assert oracle.queries == 2


def test_bad_arguments() -> None:
    oracle = ValueOracle(SingleHeadAttention(W_EX, V_EX, field=EXP))
    with pytest.raises(InvalidEntryError, match="needs rank=r"):
        learn_low_rank(oracle, method="sensing", measurements=5)
    for bad in (None, 0, -3, 2.5, True):
        with pytest.raises(InvalidEntryError, match="needs measurements=m"):
            learn_low_rank(oracle, rank=1, method="sensing", measurements=bad)  # type: ignore
    with pytest.raises(InvalidEntryError, match="solver must be"):
        learn_low_rank(oracle, rank=1, method="sensing", measurements=5,
                       solver="sgd")  # type: ignore[arg-type]
    f64 = ValueOracle(SingleHeadAttention([[1.0, 2.0], [0.5, 1.0]], [1.0, -1.0], field=F64))
    with pytest.raises(IncompatibleFieldError, match="exact polish"):
        learn_low_rank(f64, rank=1, method="sensing", measurements=5)
    assert oracle.queries == f64.queries == 0


# -- certificates ------------------------------------------------------------------------------
def test_certificate_rejects_perturbed_model() -> None:
    head = low_rank_head(5, 1, seed=6)
    oracle = ValueOracle(head)
    rec = learn_low_rank(oracle, rank=1, method="sensing",
                         measurements=sensing_measurements(5, 1, 2))
    assert verify(rec, oracle).holds
    cert = verify(perturbed(rec, EXP(F(1, 7))), oracle)
    assert not cert.holds and cert.first_failure is not None
    assert cert.first_failure.source == "transcript"


# -- the measured ratios, the registry ------------------------------------------------------
def test_measured_ratios_match_the_success_data() -> None:
    data = json.loads((ROOT / "docs" / "low_rank_success.json").read_text(encoding="utf-8"))
    assert data["complete"] and data["trials_per_point"] >= 10
    assert set(data["d"]) == {10, 20, 40} and set(data["r"]) == {1, 2, 4}
    overall = data["summary"]["overall"]
    assert Fraction(overall["als"]["all_succeed_from"]) == SENSING_RATIO_ALS
    assert Fraction(overall["nuclear"]["all_succeed_from"]) == SENSING_RATIO_NUCLEAR
    assert SENSING_GRID_D == min(data["d"])
    # every trial of the smallest d at the claim's ratio succeeded in the recorded run
    for p in data["points"]:
        if p["solver"] == "als" and p["d"] == SENSING_GRID_D and \
                Fraction(p["ratio"]) == SENSING_RATIO_ALS:
            assert p["successes"] == p["trials"]
    assert (ROOT / "docs" / "low_rank_success.png").stat().st_size > 10_000


def test_claims_hold_and_have_their_latex_label() -> None:
    results = run_claims([LABEL_SENSING])
    assert len(results) >= 4
    assert [(r.claim.id, r.outcome.detail) for r in results if not r.holds] == []
    assert "\\label{low_rank_sensing}" in label_section(LABEL_SENSING)


# -- the claim runs the paper's program when cvxpy imports, and says which solver ran ---------
def _sensing_claim() -> Any:
    from exactattn.claims import REGISTRY

    (c,) = [c for c in REGISTRY if c.id == f"{LABEL_SENSING}.sensing_recovery"]
    return c


def test_the_sensing_claim_runs_the_nuclear_norm_program_and_names_its_solver(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cvxpy", reason="optional extra 'sensing' (cvxpy) not installed")
    import exactattn.checks.low_rank as checks

    monkeypatch.setattr(checks, "SENSING_GRID_TRIALS", 1)  # 1 seeded trial per r: fast
    c = _sensing_claim()
    assert r"\arg\min_X \|X\|_*" in c.statement and "nuclear-norm program" in c.route
    out = c.check()
    assert out.holds and out.instances == 1 * 3 * 2, out.detail
    assert re.search(r"the nuclear-norm program ran \(cvxpy [\d.]+, solver "
                     r"(SCS|CLARABEL) \(\d+ trials\)", out.detail), out.detail
    # C in the paper's normalisation beside ours, exactly: m = ceil(7/2 r(2d - r)), d = 10
    ms = [sensing_measurements(10, r, SENSING_RATIO_NUCLEAR) for r in (1, 2, 4)]
    assert ms == [67, 126, 224]
    assert "m / (r(2d - r)) = 7/2 (ours), C = m / (2rd) = 67/20, 63/20, 14/5 (the paper's)" \
        in out.detail
    assert "ALS (numpy) ran" in out.detail
    # the detail counts nothing it did not decide: it is shown only when every trial was exact
    assert "every trial exact at m / (r(2d - r)) = 7/2 (ours)" in out.detail
    assert " of 3 trials" not in out.detail


def test_the_sensing_claim_without_cvxpy_says_so_and_runs_als(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import exactattn.checks.low_rank as checks

    monkeypatch.setitem(sys.modules, "cvxpy", None)  # 'import cvxpy' now raises ImportError
    monkeypatch.setattr(checks, "SENSING_GRID_TRIALS", 2)
    out = _sensing_claim().check()
    assert out.holds and out.instances == 3 * 2, out.detail
    assert out.detail.startswith("cvxpy is not importable") and "did not run" in out.detail
    assert "ALS (numpy) ran: every trial exact at m / (r(2d - r)) = 5/2 (ours)" in out.detail


def test_the_sensing_claim_fails_below_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The claim can fail: at half the degrees of freedom no solver recovers W exactly."""
    import exactattn.checks.low_rank as checks

    monkeypatch.setattr(checks, "SENSING_GRID_TRIALS", 1)
    monkeypatch.setattr(checks, "SENSING_RATIO_ALS", Fraction(1, 2))
    monkeypatch.setattr(checks, "SENSING_RATIO_NUCLEAR", Fraction(1, 2))
    out = _sensing_claim().check()
    assert not out.holds and "exact polish rejected" in out.detail


def test_the_paper_constant_is_reported_exactly() -> None:
    head = low_rank_head(5, 2, seed=1)
    m = sensing_measurements(5, 2, SENSING_RATIO_ALS)
    rec = learn_low_rank(ValueOracle(head), rank=2, method="sensing", measurements=m)
    assert m == 40 and rec.options["C_paper"] == "2" == str(Fraction(m, 2 * 2 * 5))
