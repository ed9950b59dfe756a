"""Claims of ``multihead_canonical``, float variant (exactattn's own; cf. arXiv 2608.03294).

:func:`exactattn.learners.multihead_float.learn_multihead_float` learns the
canonical heads from a float64 oracle with first-order error estimates per
entry. The checks here run it on built-in float64 instances and compare with
the hidden canonical heads; they are float checks (route "float64
(tolerance)"), never called exact. This module also registers the float64
tolerance with which :func:`exactattn.certificates.verify` certifies a float
multi-head recovery (the model builder of the label is registered in
:mod:`exactattn.checks.multihead`). The claim ``ball_enclosure`` runs the
BALL route (enclosing oracles, :func:`ball_oracle`): every hidden parameter in
its Krawczyk ball, decided by arb, and a moved ball rejected.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from flint import arb, ctx

from ..certificates import FLOAT_TOLERANCES
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure
from ..errors import IllConditionedError, RecoveryFailedError
from ..fields import BALL, EXP, F64, Array
from ..learners.multihead import PAPER_REF
from ..learners.multihead_float import (
    LABEL,
    MIN_MARGIN,
    f64_multihead_tolerance,
    float_query_count,
    learn_multihead_float,
)
from ..learners.recovery import Recovery
from ..models.multihead import MultiHeadAttention, canonical
from ..oracle import ValueOracle, enclosing_oracle

ROUTE = "float64 (tolerance)"
TOLERANCE_TEXT = ("first-order float64 estimate: the recovery's per-entry error estimates "
                  "(W_h, v_h) propagated to the query head by head, plus the rounding of both "
                  "evaluations (Higham gamma_{4d+16})")

# the model builder of the label is already registered; the float tolerance is added here
FLOAT_TOLERANCES.setdefault(LABEL, (f64_multihead_tolerance, TOLERANCE_TEXT))

#: (H, d, seed) of the built-in float64 instances (small: each check runs in seconds)
FLOAT_INSTANCES = ((1, 3, 0), (2, 3, 1), (2, 4, 2))


def random_float_multihead(H: int, d: int, seed: int) -> MultiHeadAttention:
    """A seeded float64 H-head model: W_h entries N(0, 1/d), v_h entries N(0, 1).

    >>> random_float_multihead(2, 3, 0).H
    2
    """
    rng = np.random.default_rng([seed, H, d, 64])
    return MultiHeadAttention([(rng.standard_normal((d, d)) / np.sqrt(d), rng.standard_normal(d))
                               for _ in range(H)], field=F64, d=d)


def recovery_errors(rec: Recovery, model: MultiHeadAttention) -> tuple[Array, Array, float]:
    """|W_hat - W|, |v_hat - v| per entry against canonical(model) (heads paired by
    nearest W) and the largest error relative to the largest entry of the hidden head."""
    W, v = rec.params["W"], rec.params["v"]
    model = canonical(model)
    eW = np.zeros_like(W)
    ev = np.zeros_like(v)
    rel = 0.0
    for Wt, vt in zip(model.Ws, model.vs, strict=True):
        k = int(np.argmin([np.abs(W[k] - Wt).max() for k in range(W.shape[0])]))
        eW[k] = np.abs(W[k] - Wt)
        ev[k] = np.abs(v[k] - vt)
        rel = max(rel, float(eW[k].max() / np.abs(Wt).max()),
                  float(ev[k].max() / np.abs(vt).max()))
    return eW, ev, rel


def within_bounds(rec: Recovery, model: MultiHeadAttention) -> bool:
    """Every recovered entry lies within its first-order error estimate of the hidden one."""
    eW, ev, _ = recovery_errors(rec, model)
    return bool((eW <= rec.params["W_error_bound"]).all()
                and (ev <= rec.params["v_error_bound"]).all())


def float_recovery_failures(name: str, rec: Recovery, oracle: ValueOracle, count: int,
                            seed: int) -> list[str]:
    """The failures of a float recovery's common checks: ``count`` queries (on the
    recovery and the oracle), status "float", and the float certificate holding on 8
    probes (seeded with ``seed``)."""
    failures = []
    if not rec.queries == oracle.queries == count:
        failures.append(f"{name}: {rec.queries} queries, closed form {count}")
    if rec.status != "float":
        failures.append(f"{name}: status {rec.status}, expected float")
    if not certify(rec, oracle, probes=8, seed=seed).holds:
        failures.append(f"{name}: the float certificate fails")
    return failures


@claim(LABEL, "float_recovery", paper_ref=PAPER_REF,
       title="From a float64 oracle: the canonical heads within their first-order estimates",
       statement=r"|\hat W_h - W_h| \le \epsilon_{W_h},\ |\hat v_h - v_h| \le \epsilon_{v_h} "
                 r"\text{ entrywise (first-order estimates), with } Q = 1 + 2Hfd + [m \ge 2](d-1) "
                 r"+ (d + 1) K_W \text{ queries}",
       route=ROUTE)
def _check_float_recovery() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in FLOAT_INSTANCES:
        model = random_float_multihead(H, d, seed)
        oracle = ValueOracle(model)
        rec = learn_multihead_float(oracle, heads=H, seed=seed)
        checked += 1
        if rec.options["m"] != H or not within_bounds(rec, model):
            failures.append(f"H={H}, d={d}: a recovered entry is outside its estimate")
        failures += float_recovery_failures(f"H={H}, d={d}", rec, oracle,
                                            float_query_count(H, d), seed)
    return first_failure(failures, checked, "within estimates; query count derived (prose), "
                         f"equal to the counter on {checked} instances; certificate holds")


@claim(LABEL, "float_head_count", paper_ref=PAPER_REF,
       title="The number of canonical heads, decided from float answers with a margin",
       statement=r"m = \max\{\operatorname{rank}_\tau L_k\} \text{ decided by} \ge "
                 r"\text{MIN\_MARGIN decades; a zero-}v\text{ head and a split head are not "
                 r"counted}", route=ROUTE)
def _check_head_count() -> Outcome:
    failures, checked = [], 0
    d = 3
    rng = np.random.default_rng(81)
    W1, W2 = (rng.standard_normal((d, d)) / np.sqrt(d) for _ in range(2))
    v1, v2 = rng.standard_normal(d), rng.standard_normal(d)
    cases = (
        ("two heads, heads=3", [(W1, v1), (W2, v2)], 2),
        ("a zero-v head added", [(W1, v1), (W2, v2), (rng.standard_normal((d, d)), 0 * v1)], 2),
        ("head 1 split 0.3 / 0.7", [(W1, 0.3 * v1), (W2, v2), (W1, 0.7 * v1)], 2),
        ("one head, heads=3", [(W1, v1)], 1),
    )
    for name, heads, m in cases:
        model = MultiHeadAttention(heads, field=F64, d=d)
        rec = learn_multihead_float(ValueOracle(model), heads=3)
        checked += 1
        report = rec.options["head_count"]
        if rec.options["m"] != m or report["margin_decades"] < MIN_MARGIN:
            failures.append(f"{name}: m = {rec.options['m']} (expected {m}), margin "
                            f"{report['margin_decades']:.2f} decades")
    return first_failure(failures, checked, "the canonical count, each by >= 1 decade")


@claim(LABEL, "float_ill_conditioning", paper_ref=PAPER_REF,
       title="Nearly equal heads get a measured ill-conditioning report, never a silent merge",
       statement=r"\|W_1 - W_2\| = 10^{-6} \implies \text{IllConditionedError with the "
                 r"measured residual, rounding estimate and head-count margin}", route=ROUTE)
def _check_ill_conditioning() -> Outcome:
    failures, checked = [], 0
    for d, seed in ((3, 0), (4, 1)):
        base = random_float_multihead(2, d, seed)
        W1, v1 = base.Ws[0], base.vs[0]
        near = W1 + 1e-6 * np.eye(d)
        model = MultiHeadAttention([(W1, v1), (near, base.vs[1]), (base.Ws[1], v1 - base.vs[1])],
                                   field=F64, d=d)
        checked += 1
        try:
            rec = learn_multihead_float(ValueOracle(model), heads=3, seed=seed)
        except IllConditionedError as exc:
            # the report names the measured figures: the misfit (residual against the
            # rounding estimate) or the relative error estimates
            if not ({"residual", "noise_bound", "margin_decades"} <= set(exc.report)
                    or "max_relative_bound" in exc.report):
                failures.append(f"d={d}: IllConditionedError without the figures "
                                f"({sorted(exc.report)})")
            continue
        except RecoveryFailedError as exc:
            failures.append(f"d={d}: refused without an ill-conditioning report: {exc}")
            continue
        if rec.options["m"] != 3 or not within_bounds(rec, model):
            failures.append(f"d={d}: a recovery of {rec.options['m']} heads returned outside "
                            "its estimates (a silent wrong merge)")
    return first_failure(failures, checked,
                         "refused with the measured figures, or within estimates")


@claim(LABEL, "float_certificate_soundness", paper_ref=PAPER_REF,
       title="The float certificate rejects a recovery one entry off by 1e-6, or by 1000 "
             "times its head's error estimate",
       statement=r"\hat W_1 + 10^{-6} e_1 e_1^\top,\ \hat W_1 + 10^3 \|\epsilon_{W_1}\|_F "
                 r"e_1 e_1^\top \text{ rejected (tolerance certificate)}",
       route=ROUTE)
def _check_soundness() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in FLOAT_INSTANCES[1:]:
        model = random_float_multihead(H, d, seed)
        oracle = ValueOracle(model)
        rec = learn_multihead_float(oracle, heads=H, seed=seed)
        # 1e-6, and 1000 x the estimates (~1e-11 here): the tolerance is not vacuous
        for shift in (1e-6, 1000 * float(np.linalg.norm(rec.params["W_error_bound"][0]))):
            W = rec.params["W"].copy()
            W[0, 0, 0] += shift
            bad = dataclasses.replace(rec, params={**rec.params, "W": W})
            checked += 1
            if certify(bad, oracle, probes=8).holds:
                failures.append(f"H={H}, d={d}: recovery off by {shift:.1e} accepted")
    return first_failure(failures, checked, "rejected")


#: (H, d, seed, prec) of the built-in BALL instances (enclosing oracles of float64 models)
BALL_INSTANCES = ((1, 3, 4, 64), (2, 3, 0, 80))


def ball_oracle(model: MultiHeadAttention, prec: int) -> ValueOracle:
    """An enclosing BALL(prec) oracle of a float64 model: its binary64 entries are exact
    rationals, so the model is evaluated exactly in EXP and each answer enclosed.

    >>> ball_oracle(random_float_multihead(1, 2, 0), 64).field.name
    'BALL(64)'
    """
    exact = MultiHeadAttention(
        [(EXP.array([[EXP(Fraction(float(x))) for x in row] for row in W]),
          EXP.array([EXP(Fraction(float(x))) for x in v]))
         for W, v in zip(model.Ws, model.vs, strict=True)], field=EXP, d=model.d)
    return enclosing_oracle(exact, BALL(prec))


def balls_contain(rec: Recovery, model: MultiHeadAttention) -> bool:
    """Every hidden canonical head lies in the balls of exactly one recovered head
    (decided by arb's ``contains``, no tolerance)."""
    W, v = rec.params["W"], rec.params["v"]
    hidden = canonical(model)
    for Wt, vt in zip(hidden.Ws, hidden.vs, strict=True):
        hits = [k for k in range(W.shape[0])
                if all(b.value.contains(arb(float(t)))
                       for b, t in zip([*W[k].flat, *v[k]], [*Wt.flat, *vt], strict=True))]
        if len(hits) != 1:
            return False
    return bool(W.shape[0] == hidden.H)


@claim(LABEL, "ball_enclosure", paper_ref=PAPER_REF,
       title="From a BALL oracle: every canonical parameter in a rigorous ball (Krawczyk)",
       statement=r"K(\Theta) \subset \operatorname{int} \Theta \implies "
                 r"\theta^* \in K \text{ for } \theta^* \in \Theta; \text{ a ball moved by 4 "
                 r"radii misses the hidden parameter}",
       route="float64 solve, Krawczyk enclosure in arb (BALL)")
def _check_ball_enclosure() -> Outcome:
    failures, checked = [], 0
    for H, d, seed, prec in BALL_INSTANCES:
        model = random_float_multihead(H, d, seed)
        oracle = ball_oracle(model, prec)
        rec = learn_multihead_float(oracle, heads=H, seed=seed)
        checked += 1
        if rec.status != "approximate" or not rec.options["enclosure"]["contained"]:
            failures.append(f"H={H}, d={d}: status {rec.status}, enclosure "
                            f"{rec.options['enclosure']}")
        if not balls_contain(rec, model):
            failures.append(f"H={H}, d={d}, BALL({prec}): a hidden parameter outside its ball")
        if not rec.queries == oracle.queries == float_query_count(H, d):
            failures.append(f"H={H}, d={d}: {rec.queries} queries, closed form "
                            f"{float_query_count(H, d)}")
        # the balls are not vacuous: moved by 4 radii, a hidden parameter falls outside
        W = rec.params["W"].copy()
        ball = W[0, 0, 0]
        with ctx.workprec(ball.field.prec):                    # at the ball's precision
            moved = ball.value + 4 * ball.value.rad()
        W[0, 0, 0] = type(ball)(moved, ball.field)
        checked += 1
        if balls_contain(dataclasses.replace(rec, params={**rec.params, "W": W}), model):
            failures.append(f"H={H}, d={d}: a ball moved by 4 radii still contains W_1[0, 0]")
    return first_failure(failures, checked, "every hidden parameter in its ball; moved balls "
                         "rejected")
