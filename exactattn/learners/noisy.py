"""Single-head attention from approximate value queries: the clipped inverse.

Label ``noisy_oracle``; paper Thm 6.2 (v1) = Thm 6.1 (v2), with the lemma
``clipped_inverse`` (Lemma 6.1 v1 = Lemma A.1 v2); paper.md §5.

Hypotheses: ||W||_F <= W_bound with W_bound >= 2 known; ||v||_2 <= 1; every
query token has norm <= 1; margin min_i |v_i| >= mu > 0. The oracle answers
AVQ(X; tau) within tau of f(X), adversarially and deterministically.

Algorithm (exactly d + d^2 queries):

1. v_hat_i = AVQ([e_i^T]; tau_v), i = 1..d.
2. For every (i, j), i = j included, with a = 1/2, b = 1/W_bound:
   X = [(b e_i + a e_j)^T; (a e_j)^T]. Both tokens have norm <= b + a <= 1;
   the score gap is a b W_ij in [-1/2, 1/2], so alpha* = sigma(a b W_ij) lies
   in [tau_c, 1 - tau_c] with tau_c = sigma(-1/2); f = a v_j + alpha* b v_i.
3. alpha_hat = (y - a v_hat_j) / (b v_hat_i); W_hat_ij = logit(clip(alpha_hat)) / (a b),
   clip(p) = min(max(p, tau_c), 1 - tau_c).

Tolerances (computed here as exact rationals): tau_f = mu eps_W / (80 W_bound^2 d);
tau_v = min(mu/2, tau_f, eps_v / r) with r = ceil(sqrt d) >= sqrt d (a rational
stand-in for sqrt d that only makes tau_v smaller). Guarantees:

    |alpha_hat - alpha*| <= (2 W_bound/mu) tau_f + ((W_bound + 2)/mu) tau_v
                         <= eps_W / (20 W_bound d),
    |W_hat_ij - W_ij| <= L |alpha_hat - alpha*| / (a b) <= eps_W / d   (L <= 5),
    ||W_hat - W||_F <= eps_W,   ||v_hat - v||_2 <= sqrt(d) tau_v <= eps_v.

Arithmetic: alpha_hat is an exact rational; the comparison with tau_c (an
element of EXP) is exact; the logarithm is a rigorous ``arb`` ball at
``prec`` bits, returned as its rational midpoint, with the ball radius added
to the reported bound. Nothing goes through float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import arb, ctx, fmpq

from ..errors import HypothesisViolatedError, InvalidEntryError
from ..fields import EXP, QQ, Array, rational
from ..fields.precision import arf_to_fmpq
from ..oracle import NoisyOracle
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head_noisy", "naive_inverse", "theorem_tolerances", "NoisyBounds",
           "LABEL", "PAPER_REF", "L_UPPER", "TAU_C", "ceil_sqrt", "positive_rational",
           "logit_ball"]

LABEL = "noisy_oracle"
PAPER_REF = "Thm 6.2 (v1), Thm 6.1 (v2)"

#: tau_c = sigma(-1/2) = 1/(1 + sqrt(e)), an exact element of EXP
TAU_C = EXP.sigmoid(EXP(fmpq(-1, 2)))
#: a proven rational upper bound on L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2)
#: (checked exactly in EXP when this module is imported)
L_UPPER = fmpq(42553, 10000)
if not 1 / (TAU_C * (1 - TAU_C)) < EXP(L_UPPER):  # pragma: no cover - a proven fact
    raise AssertionError("L_UPPER is not an upper bound of L")

#: hypotheses the learner checks itself, and those it must assume
CHECKED = ("W_bound >= 2", "margin > 0", "query tokens have norm <= 1",
           "min |v_i| >= margin (up to tau_v)", "||v|| <= 1 (up to sqrt(d) tau_v)",
           "||W||_F <= W_bound (up to eps_W, from the estimate)")
ASSUMED = ("the oracle answers within the tolerance asked for",)


@dataclass(frozen=True)
class NoisyBounds:
    """The theorem's tolerances and the guaranteed error bounds (exact rationals)."""

    tau_f: fmpq
    tau_v: fmpq
    alpha: fmpq  # bound on |alpha_hat - alpha*|
    W_entry: fmpq  # bound on |W_hat_ij - W_ij| (before the log's ball radius)
    W_frobenius: fmpq  # d * W_entry
    v_2: fmpq  # bound on ||v_hat - v||_2 (r tau_v, r = ceil(sqrt d))

    def to_json(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in
                ("tau_f", "tau_v", "alpha", "W_entry", "W_frobenius", "v_2")}


def ceil_sqrt(d: int) -> int:
    """r = ceil(sqrt d), a rational stand-in for sqrt d (r >= sqrt d)."""
    r = math.isqrt(d)
    return r if r * r == d else r + 1


def theorem_tolerances(d: int, *, epsilon_W: Any, epsilon_v: Any, W_bound: Any,
                       margin: Any) -> NoisyBounds:
    """The tolerances of the theorem and the bounds they guarantee, exactly.

    >>> b = theorem_tolerances(4, epsilon_W=1, epsilon_v=1, W_bound=2, margin=1)
    >>> b.tau_f, b.tau_v, b.alpha <= fmpq(1, 20 * 2 * 4), b.W_entry <= fmpq(1, 4)
    (1/1280, 1/1280, True, True)
    """
    eps_W, eps_v, Wb, mu = (positive_rational(x, n) for x, n in
                            ((epsilon_W, "epsilon_W"), (epsilon_v, "epsilon_v"),
                             (W_bound, "W_bound"), (margin, "margin")))
    if Wb < 2:
        raise HypothesisViolatedError(f"W_bound = {Wb} < 2: the theorem needs W_bound >= 2",
                                      hypothesis="W_bound >= 2")
    r = ceil_sqrt(d)
    tau_f = mu * eps_W / (80 * Wb * Wb * d)
    tau_v = min(mu / 2, tau_f, eps_v / r)
    alpha = (2 * Wb / mu) * tau_f + ((Wb + 2) / mu) * tau_v
    entry = L_UPPER * alpha * 2 * Wb  # / (a b) with a b = 1 / (2 W_bound)
    return NoisyBounds(tau_f, tau_v, alpha, entry, entry * d, r * tau_v)


def positive_rational(x: Any, name: str) -> fmpq:
    """``x`` as a rational > 0, or HypothesisViolatedError naming ``name``."""
    try:
        q = rational(x)
    except InvalidEntryError as exc:
        raise InvalidEntryError(f"{name}: {exc}") from None
    if q <= 0:
        raise HypothesisViolatedError(f"{name} = {q} must be positive", hypothesis=f"{name} > 0")
    return q


def logit_ball(p: fmpq, prec: int) -> arb:
    """logit(p) as a rigorous arb ball at ``prec`` bits (0 < p < 1)."""
    with ctx.workprec(prec):
        return (arb(p) / (1 - arb(p))).log()


#: the probe scale a of the query token (paper.md §5)
PROBE_A = fmpq(1, 2)


@dataclass(frozen=True)
class ClippedLogits:
    """logit(clip(alpha_hat_lj)) for every probe row l and column j (before / (a b))."""

    T: list[list[fmpq]]
    clipped: int  # how many estimates were clipped at tau_c or 1 - tau_c
    radius: fmpq  # the largest radius of the logarithm's arb balls


def clipped_logits(oracle: NoisyOracle, rows: Array, gains: Any, v: Any, *, W_bound: fmpq,
                   tau_f: fmpq, alpha_bound: fmpq, prec: int,
                   progress: Callable[[int, int], None] | None = None) -> ClippedLogits:
    """Measure the scaled probes of every column and invert them with the clipped logit.

    For probe rows u_l (``rows``, norm <= 1) with gains c_l = u_l . v_hat
    (``gains``) and column j: ask X = [(b u_l + a e_j)^T; (a e_j)^T] at tolerance
    tau_f (a = 1/2, b = 1/W_bound), set alpha_hat = (y - a v_hat_j) / (b c_l) and
    t = logit(clip(alpha_hat)). Under the hypotheses alpha* = sigma(a b u_l^T w_j)
    lies in [tau_c, 1 - tau_c] and |alpha_hat - alpha*| <= ``alpha_bound``, so an
    alpha_hat farther out proves ||W||_F > W_bound: HypothesisViolatedError.
    Shared by the paper's learner (rows = I) and the adapted one.
    """
    d = oracle.d
    a, b = PROBE_A, 1 / W_bound
    I = QQ.eye(d)
    lo, hi = TAU_C - EXP(alpha_bound), 1 - TAU_C + EXP(alpha_bound)
    T: list[list[Any]] = [[None] * d for _ in range(d)]
    clipped = 0
    radius = fmpq(0)
    for j in range(d):
        Xs = np.empty((d, 2, d), dtype=object)
        Xs[:, 0, :] = b * rows + a * I[j]
        Xs[:, 1, :] = a * I[j]
        for l in range(d):
            for row in Xs[l]:
                if sum(x * x for x in row) > 1:  # pragma: no cover - the callers' rows ensure it
                    raise HypothesisViolatedError("a probe token has norm > 1",
                                                  hypothesis="query tokens have norm <= 1")
        y = oracle.batch(Xs, phase="W", tolerance=tau_f)
        for l in range(d):
            alpha = (y[l] - a * v[j]) / (b * gains[l])
            if not lo <= EXP(alpha) <= hi:
                raise HypothesisViolatedError(
                    f"||W||_F <= W_bound = {W_bound} is violated: alpha_hat = {alpha} for probe "
                    f"{l}, column {j} is farther than the guaranteed bound from "
                    "[tau_c, 1 - tau_c], so |a b u_l^T w_j| > 1/2 (or the oracle exceeded its "
                    "tolerance)", hypothesis="||W||_F <= W_bound")
            # clip at tau_c, exactly (tau_c is an element of EXP), then log
            if EXP(alpha) <= TAU_C:
                T[l][j], clipped = fmpq(-1, 2), clipped + 1
            elif EXP(alpha) >= 1 - TAU_C:
                T[l][j], clipped = fmpq(1, 2), clipped + 1
            else:
                ball = logit_ball(alpha, prec)
                T[l][j] = arf_to_fmpq(ball.mid())
                radius = max(radius, arf_to_fmpq(ball.rad()))
        if progress is not None:
            progress(j + 1, d)
    return ClippedLogits(T, clipped, radius)


def learn_single_head_noisy(
    oracle: NoisyOracle,
    *,
    epsilon_W: Any,
    epsilon_v: Any,
    W_bound: Any,
    margin: Any,
    prec: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """(W, v) within (epsilon_W, epsilon_v) from d + d^2 approximate queries.

    Label ``noisy_oracle`` (paper Thm 6.2 v1 / 6.1 v2); see the module
    docstring. The recovery is over QQ with ``approximate=True``; its options
    hold the tolerances asked for, the guaranteed bounds, the hypotheses
    checked and those assumed.

    Raises
    ------
    HypothesisViolatedError : naming the hypothesis (W_bound >= 2, margin, ...).

    >>> from fractions import Fraction as Fr
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, -1], [Fr(1, 2), 0]], [Fr(1, 2), Fr(-1, 2)], field=EXP)
    >>> oracle = NoisyOracle(head, tolerance=0, adversary="worst")
    >>> rec = learn_single_head_noisy(oracle, epsilon_W=Fr(1, 10), epsilon_v=Fr(1, 10),
    ...                               W_bound=2, margin=Fr(1, 2))
    >>> rec.queries, rec.status
    (6, 'approximate')
    >>> err = max(abs(EXP(rec.W[i, j]) - head.W[i, j]) for i in range(2) for j in range(2))
    >>> err <= EXP(Fr(rec.options["W_entry_bound"])) <= EXP(Fr(1, 10)) / 2
    True
    """
    if not isinstance(oracle, NoisyOracle):
        raise InvalidEntryError("learn_single_head_noisy needs an approximate-value oracle "
                                "(NoisyOracle), which takes a tolerance per query")
    d = oracle.d
    bounds = theorem_tolerances(d, epsilon_W=epsilon_W, epsilon_v=epsilon_v, W_bound=W_bound,
                                margin=margin)
    Wb, mu = rational(W_bound), rational(margin)
    span = QuerySpan.begin(oracle)

    # 1. v within tau_v
    I = QQ.eye(d)
    v = oracle.batch(I[:, None, :], phase="v", tolerance=bounds.tau_v)
    low = [i for i in range(d) if abs(v[i]) < mu - bounds.tau_v]
    if low:
        raise HypothesisViolatedError(
            f"min |v_i| >= margin = {mu} is violated: |v_hat_{low[0]}| = {abs(v[low[0]])} "
            f"< margin - tau_v = {mu - bounds.tau_v} (the paper's algorithm needs every "
            "coordinate of v bounded away from 0)", hypothesis="min |v_i| >= margin")
    if sum(x * x for x in v) > (1 + bounds.v_2) ** 2:
        raise HypothesisViolatedError(
            f"||v|| <= 1 is violated: ||v_hat||^2 = {sum(x * x for x in v)}",
            hypothesis="||v|| <= 1")

    # 2. the scaled probes [(b e_i + a e_j)^T; (a e_j)^T], clipped logits
    a, b = PROBE_A, 1 / Wb
    m = clipped_logits(oracle, QQ.eye(d), v, v, W_bound=Wb, tau_f=bounds.tau_f,
                       alpha_bound=bounds.alpha, prec=prec, progress=progress)
    T, clipped, radius = m.T, m.clipped, m.radius
    scale = 1 / (a * b)
    W = QQ.array([[T[i][j] * scale for j in range(d)] for i in range(d)])
    log_error = radius * scale
    frob_sq = sum(x * x for x in W.flat)
    if frob_sq > (Wb + bounds.W_frobenius + d * log_error) ** 2:
        raise HypothesisViolatedError(
            f"||W||_F <= W_bound = {Wb} is violated: the estimate has ||W_hat||_F^2 = "
            f"{frob_sq}, more than (W_bound + eps_W)^2", hypothesis="||W||_F <= W_bound")
    return span.recovery(
        label=LABEL,
        paper_ref=PAPER_REF,
        field=QQ,
        params={"W": W, "v": v},
        seed=0,
        options={
            "bounds": bounds.to_json(),
            "W_entry_bound": str(bounds.W_entry + log_error),
            "W_frobenius_bound": str(bounds.W_frobenius + d * log_error),
            "v_bound": str(bounds.v_2),
            "log_ball_radius": str(log_error),
            "clipped": clipped,
            "prec": prec,
            "W_bound": str(Wb), "margin": str(mu),
            "epsilon_W": str(rational(epsilon_W)), "epsilon_v": str(rational(epsilon_v)),
            "hypotheses_checked": list(CHECKED),
            "hypotheses_assumed": list(ASSUMED),
        },
        approximate=True,
    )


@dataclass(frozen=True)
class NaiveOutcome:
    """What the naive (unclipped, unscaled) inverse produced on an oracle."""

    W: Array  # float estimates, NaN where the inverse failed
    failures: int  # entries with alpha_hat outside (0, 1): no logit at all
    queries: int


def naive_inverse(oracle: NoisyOracle, *, tolerance: Any) -> NaiveOutcome:
    """The inverse the theorem improves on: probes [e_i + e_j; e_j], no clipping.

    alpha_hat = (y - v_hat_j) / v_hat_i and W_ij = logit(alpha_hat), which is
    undefined when alpha_hat is outside (0, 1), as a small tolerance can make it.
    Float estimates (this is the baseline being measured, not a result).
    """
    d = oracle.d
    tau = rational(tolerance)
    I = QQ.eye(d)
    v = oracle.batch(I[:, None, :], phase="naive v", tolerance=tau)
    W = np.full((d, d), np.nan)
    failures = 0
    for j in range(d):
        Xs = np.empty((d, 2, d), dtype=object)
        Xs[:, 0, :] = I + I[j]
        Xs[:, 1, :] = I[j]
        y = oracle.batch(Xs, phase="naive W", tolerance=tau)
        for i in range(d):
            if v[i] == 0:
                failures += 1
                continue
            alpha = (y[i] - v[j]) / v[i]
            if not 0 < alpha < 1:
                failures += 1
                continue
            W[i, j] = float(arf_to_fmpq(logit_ball(alpha, 64).mid()))
    return NaiveOutcome(W, failures, d + d * d)
