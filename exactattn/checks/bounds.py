"""Claims of the blueprint that no result module held: the output bound and the lower bounds.

* ``noisy_oracle.output_bound``: under the norm hypotheses of the noisy
  theorem (||v||_2 <= 1, every token ||x_i||_2 <= 1), |f(X)| <= 1 (statement
  ``output_bound`` of :mod:`exactattn.blueprint`), symbolically (softmax
  average of 1 -+ v.x_i; Lagrange's identity for Cauchy-Schwarz) and on exact
  instances, with a near miss (||v|| = 101/100) that must exceed 1.
* ``low_rank_adaptive.floor_dimension``: the rank-r matrices have r(2d - r)
  degrees of freedom (exact rank of the differential of (U, V) -> U V^T at
  seeded rational points), so r(2d - r) + d is the floor of
  ``low_rank_floor``, equal to d + d^2 at r = d and to the adaptive learner's
  count.
* ``relu_ffn_exact.hidden_cancellation``: two bias-free ReLU networks that
  differ by a cancelling pair of units are the same function (ReLU by sign
  cases), so every query answers them alike and no learner tells them apart.

The claims are registered under the existing labels (so each label keeps its
test file); :func:`exactattn.blueprint.statement_of` routes them to their
statements by their id prefixes.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from ..claims import Outcome, claim, first_failure
from ..fields import EXP, QQ
from ..instances import random_rational
from ..linalg import rank
from ..models import SingleHeadAttention
from . import low_rank, noisy_oracle, relu_ffn_exact  # noqa: F401  (their results first)

__all__ = ["check_output_bound", "check_floor_dimension", "check_hidden_cancellation"]


def _unit_ball_point(rng: np.random.Generator, d: int) -> list[Fraction]:
    """A seeded rational point with ||x||_2 <= 1 (entries p/q scaled into the ball)."""
    x = [random_rational(rng) for _ in range(d)]
    norm2 = sum(t * t for t in x)
    scale = Fraction(1) if norm2 <= 1 else Fraction(1, int(norm2) + 1)
    return [t * scale for t in x]  # ||scale x||^2 = scale^2 norm2 <= norm2/(int(norm2)+1)^2 < 1


def check_output_bound(v_scale: Fraction = Fraction(1)) -> Outcome:
    """|f(X)| <= 1 for ||v|| <= 1 and tokens in the unit ball, exactly in EXP.

    ``v_scale`` multiplies the tight instance v = x = (3/5, 4/5), where
    f = ||v||^2 = v_scale^2: with ``v_scale = 101/100`` the check fails,
    which shows that it can.

    >>> check_output_bound().holds, check_output_bound(Fraction(101, 100)).holds
    (True, False)
    """
    from ..symbolic.bounds import output_bound_derivation

    steps = output_bound_derivation()
    failures = [f"step {k + 1} ({s.why}) not verified" for k, s in enumerate(steps)
                if not s.verified]
    checked = len(steps)
    for d in (1, 2, 3):
        for seed in range(4):
            rng = np.random.default_rng(1000 * d + seed)
            W = [[random_rational(rng, max_den=3) for _ in range(d)] for _ in range(d)]
            head = SingleHeadAttention(W, _unit_ball_point(rng, d), field=EXP)
            for N in (1, 2, 4):
                X = EXP.array([_unit_ball_point(rng, d) for _ in range(N)])
                y = head(X)
                checked += 1
                if not (-1 <= y <= 1):
                    failures.append(f"d = {d}, seed {seed}, N = {N}: |f(X)| > 1")
    tight = [Fraction(3, 5) * v_scale, Fraction(4, 5) * v_scale]
    head = SingleHeadAttention([[1, -2], [Fraction(1, 3), 5]], tight, field=EXP)
    y = head(EXP.array([tight, tight]))
    checked += 1
    if not (-1 <= y <= 1):
        failures.append(f"v = x = {tight}: f(X) = {y} > 1")
    elif v_scale == 1 and y != 1:
        failures.append(f"v = x = (3/5, 4/5): f(X) = {y}, expected exactly 1")
    return first_failure(failures, checked, "symbolic steps verified; |f(X)| <= 1 with == and "
                         "exact signs in EXP; the bound is attained (f = 1) at v = x = (3/5, 4/5)")


@claim("noisy_oracle", "output_bound", paper_ref="Thm 6.2 (v1), Thm 6.1 (v2): hypotheses",
       title="Under the norm hypotheses the output is at most 1 in absolute value",
       statement=r"\|v\|_2 \le 1,\ \|x_i\|_2 \le 1 \text{ for every token} \implies "
                 r"|f_{W,v}(X)| \le 1 \text{ for every } W.",
       route="symbolic (sympy) and exact (EXP)")
def _check_output_bound() -> Outcome:
    return check_output_bound()


def check_floor_dimension(floor: Callable[[int, int], int] | None = None) -> Outcome:
    """The differential of (U, V) -> U V^T has rank r(2d - r) at seeded rational points.

    ``floor`` (default :func:`exactattn.learners.low_rank.query_floor`) must
    equal that rank plus d, equal d + d^2 at r = d, and equal the adaptive
    learner's count; a wrong floor fails.

    >>> check_floor_dimension().holds
    True
    >>> check_floor_dimension(lambda d, r: 2 * d * r + d).holds
    False
    """
    from ..learners.low_rank import adaptive_query_count, query_floor

    floor = floor or query_floor
    failures, checked = [], 0
    for d, r in ((2, 1), (3, 1), (3, 2), (4, 2), (4, 4), (5, 3)):
        rng = np.random.default_rng(10 * d + r)
        U, V = ([[random_rational(rng, max_num=5, max_den=3) for _ in range(r)]
                 for _ in range(d)] for _ in range(2))
        # d(UV^T)_{ij} = sum_k dU_ik V_jk + U_ik dV_jk: one row per (i, j), one column per
        # entry of U then of V
        rows = []
        for i in range(d):
            for j in range(d):
                row = [Fraction(0)] * (2 * d * r)
                for k in range(r):
                    row[i * r + k] += V[j][k]
                    row[d * r + j * r + k] += U[i][k]
                rows.append(row)
        J = QQ.array(rows)
        checked += 1
        dim = rank(QQ, J)
        if dim + d != floor(d, r):
            failures.append(f"d = {d}, r = {r}: rank of the differential {dim}, plus d = "
                            f"{dim + d} != floor {floor(d, r)}")
        if r == d and floor(d, r) != d + d * d:
            failures.append(f"d = {d}: the full-rank floor {floor(d, r)} != d + d^2")
        if floor(d, r) != adaptive_query_count(d, r):
            failures.append(f"d = {d}, r = {r}: the adaptive learner uses "
                            f"{adaptive_query_count(d, r)} != floor {floor(d, r)}")
    return first_failure(failures, checked, "rank r(2d - r) exactly (flint) at every point; "
                         "floor = d + d^2 at r = d = the adaptive learner's count")


@claim("low_rank_adaptive", "floor_dimension",
       paper_ref="floor of Thm 5.2 (v1), Thm 5.1 (v2)",
       title="The rank-r matrices have r(2d - r) degrees of freedom, so the floor is r(2d - r) + d",
       statement=r"\operatorname{rank} D_{(U,V)}(UV^\top) = r(2d - r) \text{ at generic rational } "
                 r"U, V \in \mathbb{Q}^{d \times r};\ r(2d - r) + d = d + d^2 \text{ at } r = d.",
       route="exact (QQ, flint rank)")
def _check_floor_dimension() -> Outcome:
    return check_floor_dimension()


def check_hidden_cancellation() -> Outcome:
    """Networks differing by cancelling units are one function (ReLU by sign cases).

    The sign-case checker must also reject a pair that does not cancel:
    (a, 1), (-a, 1) is |a.x|, not the linear a.x.

    >>> check_hidden_cancellation().holds
    True
    """
    import sympy as sp

    from ..symbolic.bounds import hidden_cancellation_derivation
    from ..symbolic.one_layer import relu, verified

    steps = hidden_cancellation_derivation()
    failures = [f"step {k + 1} ({s.why}) not verified" for k, s in enumerate(steps)
                if not s.verified]
    ax = sp.Symbol("a_1", real=True) * sp.Symbol("x_1", real=True)
    if verified(relu(ax) + relu(-ax), ax):
        failures.append("the sign cases accepted |a.x| = a.x (a pair that does not cancel)")
    return first_failure(failures, len(steps) + 1, "every step verified by sign cases; the "
                         "non-cancelling pair (a, 1), (-a, 1) rejected")


@claim("relu_ffn_exact", "hidden_cancellation",
       paper_ref=r"lower bound for every FFN learner (exactattn)",
       title="No learner sees a hidden ReLU cancellation",
       statement=r"g_{\theta}(x) = g_{\theta'}(x) \text{ for all } x \text{ when } \theta' "
                 r"\text{ adds units } (a, w), (a, -w) \text{ or replaces } (a, 1), (-a, -1) "
                 r"\text{ by } (b, 1), (-b, -1), (a - b, 1), (b - a, -1).",
       route="symbolic (sympy, ReLU by sign cases)")
def _check_hidden_cancellation() -> Outcome:
    return check_hidden_cancellation()
