"""Claims of ``low_rank_sensing`` (paper Thm 5.2 v1 = Thm 5.1 v2) and ``low_rank_adaptive``.

paper.md §4; the learners are in :mod:`exactattn.learners.low_rank`. The
hidden heads are seeded rank-r rational heads (:func:`low_rank_head`); every
comparison of parameters is ``==`` in EXP or QQ. The sensing claim runs the
paper's nuclear-norm program (cvxpy, optional extra ``sensing``) when cvxpy
imports, and says which cvxpy solver ran; without cvxpy it says so. It runs
the numpy ALS solver (always installed) in both cases; every estimate is
finished by the exact polish. The success rates over a grid of ratios are
measured in ``benchmarks/low_rank.py`` and ``docs/low_rank.md``.

This module also registers the certificate builders of both labels: a
recovered low-rank head is a single head, replayed as
:class:`~exactattn.models.SingleHeadAttention`.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure, register_result
from ..errors import HypothesisViolatedError, RecoveryFailedError
from ..fields import EXP, F64, QQ, Array, Field
from ..instances import MAX_REDRAWS, check_size, random_rational
from ..learners.low_rank import (
    LABEL_ADAPTIVE,
    LABEL_SENSING,
    PAPER_REF_ADAPTIVE,
    PAPER_REF_SENSING,
    InexactRecoveryError,
    adaptive_query_count,
    degrees_of_freedom,
    learn_low_rank,
    over_field,
    paper_constant,
    query_floor,
    rank_one_query,
)
from ..learners.recovery import Recovery
from ..linalg import rank, solve
from ..models import SingleHeadAttention
from ..oracle import ValueOracle
from ..symbolic.measured import MeasuredCurve, Series
from ..symbolic.recorder import recorded

__all__ = ["low_rank_head", "sensing_measurements", "SENSING_RATIO_ALS",
           "SENSING_RATIO_NUCLEAR", "SENSING_GRID_D"]

#: the measured ratio m / (r(2d - r)) from which every seeded trial of the
#: success-rate grid (d in {10, 20, 40}, r in {1, 2, 4}, 10 trials per point)
#: recovered W exactly, ALS + exact polish; docs/low_rank_success.json
#: ("all_succeed_from"), checked against the file by the tests
SENSING_RATIO_ALS = Fraction(5, 2)
#: the same for nuclear-norm minimisation (cvxpy, SCS) + exact polish
SENSING_RATIO_NUCLEAR = Fraction(7, 2)
#: the smallest d of the grid and its trials: the claim reruns these seeded trials
SENSING_GRID_D = 10
SENSING_GRID_TRIALS = 10


def _build(recovery: Recovery) -> SingleHeadAttention:
    return SingleHeadAttention(recovery.W, recovery.v, field=recovery.field)


register_model_builder(LABEL_SENSING, _build)
register_model_builder(LABEL_ADAPTIVE, _build)

register_result(LABEL_SENSING, paper_ref=PAPER_REF_SENSING,
                title=r"Low-rank $W$ from rank-one measurements: sensing, then an exact polish")
register_result(LABEL_ADAPTIVE, paper_ref=PAPER_REF_ADAPTIVE,
                title=r"Low-rank $W$ exactly at the degrees-of-freedom floor $r(2d - r) + d$")


# -- instances ----------------------------------------------------------------------
def low_rank_head(d: int, r: int, seed: int, *, field: Field = EXP,
                  v_zeros: int = 0) -> SingleHeadAttention:
    """A seeded head with rank(W) = r exactly (W = U V^T) and v != 0.

    Exact fields: U, V with small rational entries (|p| <= 4, q <= 3), redrawn
    until rank W = r (decided exactly); ``v_zeros`` coordinates of v are 0.
    F64: U, V ~ N(0, 1), W = U V^T / sqrt(r) (scores of order 1 for unit
    tokens), v ~ N(0, 1).

    >>> head = low_rank_head(5, 2, 0)
    >>> rank(EXP, head.W), head.d
    (2, 5)
    """
    check_size("d", d, low=1)
    check_size("rank", r, high=d, why="rank(W) <= d for a d x d matrix W")
    check_size("seed", seed)
    check_size("v_zeros", v_zeros)
    rng = np.random.default_rng([seed, d, r, 5])
    if field == F64:
        U, V = rng.standard_normal((d, r)), rng.standard_normal((d, r))
        return SingleHeadAttention(U @ V.T / math.sqrt(max(r, 1)), rng.standard_normal(d),
                                   field=F64)
    for _ in range(MAX_REDRAWS):
        U = QQ.array([[random_rational(rng, max_num=4, max_den=3) for _ in range(r)]
                      for _ in range(d)]).reshape(d, r)
        V = QQ.array([[random_rational(rng, max_num=4, max_den=3) for _ in range(r)]
                      for _ in range(d)]).reshape(d, r)
        W = U @ V.T if r else QQ.zeros((d, d))
        if rank(QQ, W) == r:
            break
    else:  # pragma: no cover - each draw has rank r with probability close to 1
        raise RecoveryFailedError(f"no rank-{r} draw of W = U V^T in {MAX_REDRAWS} draws "
                                  f"(d = {d}, seed = {seed}); try another seed")
    v = [random_rational(rng, max_num=4, max_den=3) or Fraction(1) for _ in range(d)]
    for i in rng.permutation(d)[:min(v_zeros, d - 1)]:
        v[int(i)] = Fraction(0)
    return SingleHeadAttention([[Fraction(int(x.p), int(x.q)) for x in row] for row in W], v,
                               field=field)


def sensing_measurements(d: int, r: int, ratio: Fraction | float) -> int:
    """m = ceil(ratio * r(2d - r)): the measurements at a given ratio to the floor."""
    return math.ceil(Fraction(ratio) * degrees_of_freedom(d, r))


def _same(A: Array, B: Array) -> bool:
    return A.shape == B.shape and all(bool(a == b) for a, b in zip(A.flat, B.flat, strict=True))


def _perturbed(rec: Recovery, delta: Any) -> Recovery:
    W = np.array(rec.W)
    W[0, -1] = W[0, -1] + delta
    return dataclasses.replace(rec, params={"W": W, "v": rec.v})


ROUTE_SENSING = "float solver (numpy ALS) + exact polish (flint); recovery compared in EXP"
ROUTE_SENSING_PROGRAM = ("float solvers (the nuclear-norm program with cvxpy when the 'sensing' "
                         "extra is installed; numpy ALS always) + exact polish (flint); recovery "
                         "compared in EXP")


def sensing_solver() -> tuple[str | None, str]:
    """The solver that runs the paper's nuclear-norm program here, and why.

    ``("nuclear", "cvxpy 1.x")`` when cvxpy imports; ``(None, reason)`` when it
    does not (the optional extra ``sensing`` is not installed).
    """
    try:
        import cvxpy  # optional extra 'sensing'
    except ImportError as exc:
        return None, (f"cvxpy is not importable ({exc}; pip install 'exactattn[sensing]'): "
                      "the nuclear-norm program did not run")
    return "nuclear", f"cvxpy {cvxpy.__version__}"


def _sensing_trials(solver: str, ratio: Fraction) -> tuple[list[str], dict[int, int], list[str]]:
    """The seeded trials of the grid's smallest d with one solver at one ratio.

    Returns (failures, m per r, the solver names the learner reported, one per trial).
    """
    failures, ran = [], []
    d = SENSING_GRID_D
    ms = {r: sensing_measurements(d, r, ratio) for r in (1, 2, 4)}
    for r, m in ms.items():
        for trial in range(SENSING_GRID_TRIALS):
            head = low_rank_head(d, r, seed=trial)
            oracle = ValueOracle(head)
            try:
                rec = learn_low_rank(oracle, rank=r, method="sensing", measurements=m,
                                     solver=solver, seed=trial)  # type: ignore[arg-type]
            except InexactRecoveryError as exc:
                failures.append(f"{solver}, d = {d}, r = {r}, trial {trial}: {exc}")
                continue
            ran.append(str(rec.options["solver"]))
            if rec.options["C_paper"] != str(paper_constant(d, r, m)):
                failures.append(f"{solver}, r = {r}: C = {rec.options['C_paper']} reported")
            if not (_same(rec.W, head.W) and _same(rec.v, head.v)):
                failures.append(f"{solver}, d = {d}, r = {r}, trial {trial}: W differs")
            if rec.queries != d + m or oracle.queries != d + m:
                failures.append(f"{solver}, d = {d}, r = {r}: {rec.queries} queries, "
                                f"expected {d + m}")
            if not certify(rec, oracle, probes=2, seed=trial).holds:
                failures.append(f"{solver}, d = {d}, r = {r}, trial {trial}: certificate fails")
    return failures, ms, ran


def _constants(ratio: Fraction, ms: dict[int, int]) -> str:
    """'m / (r(2d - r)) = 7/2 (ours), C = m / (2rd) = 67/20, 63/20, 14/5 (the paper's) for
    r = 1, 2, 4': the same m in both normalisations, exactly."""
    d = SENSING_GRID_D
    cs = ", ".join(str(paper_constant(d, r, m)) for r, m in ms.items())
    return (f"m / (r(2d - r)) = {ratio} (ours), C = m / (2rd) = {cs} (the paper's) for "
            f"d = {d}, r = {', '.join(map(str, ms))}")


# -- low_rank_sensing -----------------------------------------------------------------
@claim(
    LABEL_SENSING, "rank_one_identity", paper_ref=PAPER_REF_SENSING,
    title="A two-token query measures one bilinear value of W exactly",
    statement=r"a^\top v \ne 0 \implies \operatorname{logit}\!\left(\frac{f([(a + b)^\top;"
              r" b^\top]) - b^\top v}{a^\top v}\right) = a^\top W b = \langle a b^\top, W"
              r"\rangle.",
)
def _check_rank_one_identity() -> Outcome:
    failures, checked = [], 0
    for d, r in ((1, 1), (2, 1), (3, 2), (4, 1), (5, 3), (6, 2)):
        head = low_rank_head(d, r, seed=d, v_zeros=d // 2)
        rng = np.random.default_rng([d, r, 11])
        for _ in range(6):
            a, b = EXP.gaussian(rng, d), EXP.gaussian(rng, d)
            if a @ head.v == 0:
                continue
            y = head(rank_one_query(a, b))
            checked += 1
            t = EXP.logit((y - b @ head.v) / (a @ head.v))
            if t != a @ head.W @ b or not EXP.is_rational(t):
                failures.append(f"d = {d}, r = {r}: logit {t} != a^T W b = {a @ head.W @ b}")
    return first_failure(failures, checked, "equal as elements of EXP; every logit rational")


@claim(
    LABEL_SENSING, "sensing_recovery", paper_ref=PAPER_REF_SENSING,
    title="Rank-one sensing plus the exact polish recovers every seeded instance at the "
          "measured ratio",
    statement=(r"\hat W_0 = \arg\min_X \|X\|_* \text{ subject to } \langle a_k b_k^\top, X"
               r"\rangle = t_k\ (k \le m) \text{ (the paper's program; cvxpy, when installed), "
               r"and ALS; then the exact polish: } \hat W = W \text{ exactly after } d + m "
               r"\text{ queries, for every seeded trial at } "
               rf"d = {SENSING_GRID_D},\ r \in \{{1, 2, 4\}},\ m = \lceil \rho\, r(2d - r) "
               r"\rceil,\ \rho = "
               rf"\tfrac{{{SENSING_RATIO_NUCLEAR.numerator}}}"
               rf"{{{SENSING_RATIO_NUCLEAR.denominator}}}"
               r"\text{ (nuclear norm), }"
               rf"\tfrac{{{SENSING_RATIO_ALS.numerator}}}{{{SENSING_RATIO_ALS.denominator}}}"
               r"\text{ (ALS); the paper's } C = m / (2rd) \text{ printed beside } \rho."),
    route=ROUTE_SENSING_PROGRAM,
)
def _check_sensing_recovery() -> Outcome:
    solver, why = sensing_solver()
    failures: list[str] = []
    checked, parts = 0, []
    if solver is None:
        parts.append(why)
    else:
        nuc_failures, ms, ran = _sensing_trials(solver, SENSING_RATIO_NUCLEAR)
        failures += nuc_failures
        checked += len(ms) * SENSING_GRID_TRIALS
        names = {n.removeprefix("nuclear (").rstrip(")"): ran.count(n) for n in sorted(set(ran))}
        used = ", ".join(f"{n} ({k} trials)" for n, k in names.items()) or "none"
        parts.append(f"the nuclear-norm program ran ({why}, solver {used}): "
                     f"every trial exact at {_constants(SENSING_RATIO_NUCLEAR, ms)}")
    als_failures, ms, _ = _sensing_trials("als", SENSING_RATIO_ALS)
    failures += als_failures
    checked += len(ms) * SENSING_GRID_TRIALS
    parts.append(f"ALS (numpy) ran: every trial exact at {_constants(SENSING_RATIO_ALS, ms)}")
    # parts is the detail only when no trial failed (first_failure reports failures[0])
    return first_failure(failures, checked, "; ".join(parts) + "; W == hidden W (EXP)")


#: the phase transition's grid: d, ranks, ratios m / (r(2d - r)), seeded trials per point
PHASE_D, PHASE_RANKS, PHASE_TRIALS = 6, (1, 2), 2
PHASE_RATIOS = tuple(Fraction(k, 2) for k in range(1, 8))  # 1/2, 1, ..., 7/2


@recorded
def phase_transition(d: int, ranks: tuple[int, ...], ratios: tuple[Fraction, ...],
                     trials: int) -> MeasuredCurve:
    """The fraction of seeded trials recovered exactly against m / (r(2d - r)), per solver.

    ALS always; the nuclear-norm program too when cvxpy imports. Decided on
    every run: an accepted W equals the hidden W (==, EXP), and every trial at
    a ratio >= the solver's measured ratio (:data:`SENSING_RATIO_ALS`,
    :data:`SENSING_RATIO_NUCLEAR`) succeeds.
    """
    solvers = [("als", SENSING_RATIO_ALS)]
    if sensing_solver()[0] is not None:
        solvers.append(("nuclear", SENSING_RATIO_NUCLEAR))
    failures: list[str] = []
    series, runs = [], 0
    for solver, claimed in solvers:
        for r in ranks:
            points = []
            for ratio in ratios:
                m = sensing_measurements(d, r, ratio)
                ok = 0
                for trial in range(trials):
                    head = low_rank_head(d, r, seed=trial)
                    runs += 1
                    try:
                        rec = learn_low_rank(ValueOracle(head), rank=r, method="sensing",
                                             measurements=m, solver=solver,  # type: ignore
                                             seed=trial)
                    except InexactRecoveryError:
                        continue
                    if _same(rec.W, head.W):
                        ok += 1
                    else:
                        failures.append(f"{solver}, r = {r}, m = {m}: a wrong W was returned")
                if ratio >= claimed and ok < trials:
                    failures.append(f"{solver}, r = {r}, ratio {ratio} >= {claimed}: "
                                    f"{ok} of {trials} trials")
                points.append((float(ratio), ok / trials))
            name = "ALS" if solver == "als" else "nuclear norm (cvxpy)"
            series.append(Series(f"{name}, $r = {r}$", tuple(points)))
    names = " and ".join(n for n, _ in solvers)
    detail = (failures[0] if failures else
              f"{names}: no accepted W differs from the hidden W, and every trial at or above "
              f"the measured ratio ({', '.join(f'{n} {c}' for n, c in solvers)}) is exact")
    caption = (r"\texttt{low\_rank\_sensing}: the fraction of seeded trials recovered "
               rf"exactly ($d = {d}$, {trials} trials per point; the exact polish accepted "
               r"and $\hat W = W$ in EXP) against $\rho = m / (r(2d - r))$; the paper's "
               r"normalisation is $C = m / (2rd) = \rho\,(2d - r) / (2d)$. Measured by the "
               r"check, not a proof.")
    return MeasuredCurve(caption, r"$\rho = m / (r(2d - r))$", "fraction exact",
                         tuple(series), not failures, detail, runs)


@claim(
    LABEL_SENSING, "phase_transition", paper_ref=PAPER_REF_SENSING,
    title="The phase transition: the fraction of exact recoveries against m / (r(2d - r))",
    statement=r"\text{for } \rho = m / (r(2d - r)) \in \{\tfrac12, 1, \dots, \tfrac72\}: "
              r"\text{no accepted } \hat W \ne W, \text{ and every trial exact for } \rho "
              r"\text{ at or above the measured ratio (ALS; nuclear norm when cvxpy is "
              r"installed).}",
    route=ROUTE_SENSING_PROGRAM,
)
def _check_phase_transition() -> Outcome:
    curve = phase_transition(PHASE_D, PHASE_RANKS, PHASE_RATIOS, PHASE_TRIALS)
    return Outcome(curve.holds, curve.instances, curve.detail)


@claim(
    LABEL_SENSING, "polish_never_wrong", paper_ref=PAPER_REF_SENSING,
    title="The exact polish never returns a wrong matrix",
    statement=r"m < r(2d - r) \text{ or } \operatorname{rank} W > r:\ \text{the learner raises"
              r" (float estimate and residual attached), it returns no } \hat W \ne W.",
    route=ROUTE_SENSING,
)
def _check_polish() -> Outcome:
    failures, checked = [], 0
    for d, r in ((6, 1), (8, 2)):
        for trial in range(3):
            cases = [(low_rank_head(d, r, seed=trial), sensing_measurements(d, r, 0.6), r),
                     (low_rank_head(d, r + 1, seed=trial), sensing_measurements(d, r, 2), r)]
            for head, m, r_given in cases:
                checked += 1
                try:
                    rec = learn_low_rank(ValueOracle(head), rank=r_given, method="sensing",
                                         measurements=m, seed=trial)
                except InexactRecoveryError as exc:
                    if not (np.isfinite(exc.estimate.relative_residual)
                            and exc.estimate.W.dtype == np.float64):
                        failures.append("the error does not carry a float estimate")
                    continue
                if not _same(rec.W, head.W):
                    failures.append(f"d = {d}, r = {r_given}, m = {m}: a wrong W was returned")
    return first_failure(failures, checked,
                         "below the floor and for rank(W) > r: an error, never a wrong W")


@claim(
    LABEL_SENSING, "certificate_soundness", paper_ref=PAPER_REF_SENSING,
    title="The certificate rejects a sensing recovery one entry off",
    statement=r"\hat W = W + \tfrac17 e_1 e_d^\top \implies \text{some replayed or fresh query "
              r"has } f_{\hat W, v}(X) \ne f_{W, v}(X).",
)
def _check_sensing_certificate() -> Outcome:
    failures, checked = [], 0
    for d, r in ((5, 1), (6, 2)):
        head = low_rank_head(d, r, seed=3)
        oracle = ValueOracle(head)
        rec = learn_low_rank(oracle, rank=r, method="sensing",
                             measurements=sensing_measurements(d, r, 2), seed=3)
        checked += 1
        if not certify(rec, oracle, probes=4).holds:
            failures.append(f"d = {d}: the certificate rejects a correct recovery")
        if certify(_perturbed(rec, EXP(Fraction(1, 7))), oracle, probes=4).holds:
            failures.append(f"d = {d}: the certificate accepts W + 1/7 e_1 e_d^T")
    return first_failure(failures, checked, "correct accepted, perturbed rejected")


# -- low_rank_adaptive ----------------------------------------------------------------
ADAPTIVE_CASES = tuple((d, r) for d in range(1, 8) for r in sorted({0, 1, d // 2, d - 1, d}))


@claim(
    LABEL_ADAPTIVE, "exact_recovery_at_floor", paper_ref=PAPER_REF_ADAPTIVE,
    title="Exact recovery with exactly r(2d - r) + d queries, the floor",
    statement=r"\operatorname{rank} W \le r,\ v \ne 0 \implies (\hat W, \hat v) = (W, v)"
              r" \text{ after exactly } r(2d - r) + d \text{ value queries (oracle counter), in"
              r" EXP, and in QQ for the linear algebra.}",
)
def _check_adaptive() -> Outcome:
    failures, checked = [], 0
    for d, r in ADAPTIVE_CASES:
        head = low_rank_head(d, r, seed=d + r, v_zeros=d // 3)
        for field in (EXP, QQ):
            oracle = ValueOracle(head)
            rec = learn_low_rank(oracle, rank=r, field=field, seed=d)
            checked += 1
            hidden_W = head.W if field == EXP else QQ.array(
                [[EXP.to_rational(x) for x in row] for row in head.W])
            if not _same(rec.W, hidden_W) or rec.field != field:
                failures.append(f"d = {d}, r = {r}, {field.name}: W differs")
            expected = {"v": d, "core": r * r, "WB": r * (d - r), "AW": r * (d - r)}
            if oracle.queries != query_floor(d, r) or rec.queries != oracle.queries or \
                    dict(rec.queries_by_phase) != {k: n for k, n in expected.items() if n}:
                failures.append(f"d = {d}, r = {r}: {oracle.queries} queries "
                                f"{dict(rec.queries_by_phase)}, floor {query_floor(d, r)}")
            if not certify(over_field(rec, EXP), oracle, probes=2, seed=d).holds:
                failures.append(f"d = {d}, r = {r}, {field.name}: certificate fails")
    return first_failure(failures, checked,
                         f"{len(ADAPTIVE_CASES)} (d, r) pairs, d <= 7, r = 0..d; counts "
                         "from the oracle's counter")


@claim(
    LABEL_ADAPTIVE, "cur_identity", paper_ref=PAPER_REF_ADAPTIVE,
    title="W = (W B)(A^T W B)^{-1}(A^T W) when rank(A^T W B) = rank W",
    statement=r"\operatorname{rank}(A^\top W B) = \operatorname{rank} W = r,\ A, B \in "
              r"\mathbb{Q}^{d \times r} \implies W = (W B)(A^\top W B)^{-1}(A^\top W);"
              r"\ \text{with } \operatorname{rank} W > r \text{ the right side has rank } r "
              r"\ne \operatorname{rank} W.",
    route="exact (QQ, flint)",
)
def _check_cur() -> Outcome:
    failures, checked = [], 0
    for d, r in ((3, 1), (4, 2), (6, 3), (8, 2), (8, 8)):
        rng = np.random.default_rng([d, r, 3])
        for true_rank in sorted({r, min(r + 1, d)}):
            W = QQ.array([[EXP.to_rational(x) for x in row]
                          for row in low_rank_head(d, true_rank, seed=d).W])
            A, B = QQ.gaussian(rng, (d, r)), QQ.gaussian(rng, (d, r))
            M = A.T @ W @ B
            checked += 1
            if rank(QQ, M) != r:
                failures.append(f"d = {d}, r = {r}: A^T W B is singular")
                continue
            rhs = (W @ B) @ solve(QQ, M, A.T @ W)
            if _same(rhs, W) != (true_rank == r):
                failures.append(f"d = {d}, r = {r}, rank W = {true_rank}: identity "
                                f"{'fails' if true_rank == r else 'holds'}")
    return first_failure(failures, checked, "equal in QQ exactly when rank W = r")


@claim(
    LABEL_ADAPTIVE, "rank_discovery", paper_ref=PAPER_REF_ADAPTIVE,
    title="Rank not given: discovered exactly with one query over the floor",
    statement=r"\text{rank unknown: } (\hat W, \hat v) = (W, v) \text{ after } r(2d - r) + d"
              r" + [r < d] \text{ queries, } r = \operatorname{rank} W \text{ found exactly.}",
)
def _check_discovery() -> Outcome:
    failures, checked = [], 0
    for d, r in ADAPTIVE_CASES:
        head = low_rank_head(d, r, seed=2 * d + r)
        oracle = ValueOracle(head)
        rec = learn_low_rank(oracle, seed=r)
        checked += 1
        if not _same(rec.W, head.W) or rec.options["rank"] != r:
            failures.append(f"d = {d}, r = {r}: W or the rank differs")
        if oracle.queries != adaptive_query_count(d, r, rank_given=False):
            failures.append(f"d = {d}, r = {r}: {oracle.queries} queries, expected "
                            f"{adaptive_query_count(d, r, rank_given=False)}")
    return first_failure(failures, checked, "rank and W exact; extra cost 1 query (0 if r = d)")


@claim(
    LABEL_ADAPTIVE, "rank_violation_detected", paper_ref=PAPER_REF_ADAPTIVE,
    title="A W of rank larger than r is detected, never returned as a rank-r answer",
    statement=r"\operatorname{rank} W > r:\ \text{the transcript at the floor is consistent "
              r"with the rank-}r\text{ answer, but the certificate (fresh probes) fails and "
              r"\texttt{confirm=1} raises.}",
)
def _check_violation() -> Outcome:
    failures, checked = [], 0
    for d, r in ((3, 1), (4, 2), (6, 1), (6, 4)):
        head = low_rank_head(d, r + 1, seed=d)
        oracle = ValueOracle(head)
        rec = learn_low_rank(oracle, rank=r)
        checked += 1
        if _same(rec.W, head.W):
            failures.append(f"d = {d}, r = {r}: a rank-{r} answer equals W of rank {r + 1}?")
        if not certify(rec, None).holds:
            failures.append(f"d = {d}, r = {r}: the floor transcript is not consistent")
        if certify(rec, oracle, probes=4).holds:
            failures.append(f"d = {d}, r = {r}: the certificate accepts the rank-{r} answer")
        try:
            learn_low_rank(ValueOracle(head), rank=r, confirm=1)
            failures.append(f"d = {d}, r = {r}: confirm=1 did not raise")
        except HypothesisViolatedError:
            pass
    return first_failure(failures, checked,
                         "transcript consistent (as proven), fresh probes and confirm=1 catch it")


@claim(
    LABEL_ADAPTIVE, "certificate_soundness", paper_ref=PAPER_REF_ADAPTIVE,
    title="The certificate rejects an adaptive recovery one entry off",
    statement=r"\hat W = W + \tfrac17 e_1 e_d^\top \implies \text{some replayed or fresh query "
              r"has } f_{\hat W, v}(X) \ne f_{W, v}(X).",
)
def _check_adaptive_certificate() -> Outcome:
    failures, checked = [], 0
    for d, r in ((2, 1), (4, 2), (6, 3)):
        head = low_rank_head(d, r, seed=7)
        oracle = ValueOracle(head)
        rec = learn_low_rank(oracle, rank=r)
        checked += 1
        if certify(_perturbed(rec, EXP(Fraction(1, 7))), oracle, probes=4).holds:
            failures.append(f"d = {d}: the certificate accepts W + 1/7 e_1 e_d^T")
    return first_failure(failures, checked, "every perturbed model rejected")


@claim(
    LABEL_ADAPTIVE, "f64_scale", paper_ref=PAPER_REF_ADAPTIVE,
    title="F64 at scale: the floor r(2d - r) + d with small relative error",
    statement=r"d = 256,\ r = 8:\ 4288 = r(2d - r) + d \text{ queries instead of } d^2 + d ="
              r" 65792;\ \|\hat W - W\|_F \le \text{the first-order bound},\ "
              r"\|\hat W - W\|_F / \|W\|_F < 10^{-9}.",
    route="float64 (tolerance)",
)
def _check_f64() -> Outcome:
    d, r = 256, 8
    head = low_rank_head(d, r, seed=0, field=F64)
    oracle = ValueOracle(head, keep_transcript=False)
    rec = learn_low_rank(oracle, rank=r)
    err = float(np.linalg.norm(rec.W - head.W))
    rel = err / float(np.linalg.norm(head.W))
    failures = []
    if oracle.queries != query_floor(d, r) or rec.status != "float":
        failures.append(f"{oracle.queries} queries (floor {query_floor(d, r)}), status "
                        f"{rec.status}")
    if not (rel < 1e-9 and err <= float(rec.options["W_error_bound"])):
        failures.append(f"relative error {rel:.2e}, bound {rec.options['W_error_bound']:.2e}")
    return first_failure(failures, 1, f"relative Frobenius error {rel:.1e}; "
                                      f"{oracle.queries} queries")

