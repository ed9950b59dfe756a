"""Exact learning of a bias-free two-layer ReLU network from value queries.

Label ``relu_ffn_exact``; the FFN learner that the one-layer reduction of
paper §4.1 (v1, v2) needs and the paper does not supply (paper.md §3).

The hidden function is g(x) = w^T ReLU(A^T x), A in Q^{d x m}, m unknown. A
query is one token [x^T]; the answer is g(x). Write (models/relu.py)

    g(x) = l^T x + sum_{k=1..K} beta_k |n_k^T x|,      K <= m,

with distinct hyperplanes H_k = {n_k^T x = 0} and beta_k != 0 (the canonical
form). g is linear on every cone of the arrangement of the H_k, with gradient
G(x) = l + sum_k beta_k sign(n_k^T x) n_k; crossing H_k in the direction of
n_k changes it by 2 beta_k n_k.

Algorithm (one seeded random line; exact rational arithmetic)
-------------------------------------------------------------
Draw p, q in Q^d (Gaussian, denominator 2^20). On x(t) = p + t q,
phi(t) = g(x(t)) is piecewise linear with one kink t_k = -n_k^T p / n_k^T q
per hyperplane. A *piece* is the affine function alpha + gamma t =
G^T p + t G^T q of one cone. eta is 2^-64 times the local scale.

1. Ends (8 queries). By positive homogeneity the piece at t -> +oo is that
   of the cone of q: gamma_+ = g(q), alpha_+ = (g(q + eta p) - g(q)) / eta;
   the same at -q. Checks: g(q + 2 eta p) continues the line (linearity),
   and g(2q) = 2 g(q), g(-2q) = 2 g(-q) (homogeneity).
2. Kinks. Keep samples: pieces known at positions on the line, each from
   three collinear values phi(t), phi(t + eta), phi(t + 2 eta) (a
   non-collinear triple means the oracle is not piecewise linear: a ReLU
   network has a kink that close with probability about 2^-64). For two
   neighbouring samples A < B with different pieces, the only kink one
   hyperplane can make is where the pieces meet, t* = (alpha_A - alpha_B) /
   (gamma_B - gamma_A). Query phi(t*).
   * If phi(t*) != alpha_A + gamma_A t*, there is more than one kink: the
     piece at t* (two more values) becomes a new sample (3 queries).
   * Otherwise the pieces through t*, t* -+ eta, t* -+ 2 eta on either side
     become samples (5 queries in all); if they differ, t* is a kink. Why:
     if no other kink lies within 2 eta of t*, the values on the two pieces
     force phi to follow them on the whole window, so phi has a kink exactly
     at t* with these one-sided pieces; a second kink that close has
     probability O(K 2^-64).
   * If the pieces are parallel or meet outside (A, B), split at a seeded
     random point (2 queries: the candidates next to it are checked).
   Neighbours with equal pieces hold no kink (assumption H below), so the
   search ends when every neighbouring pair is equal or a confirmed kink.
3. Gradients ((K + 1)(max(d - 2, 0) + 1) queries). On piece j take x_j
   inside it (the midpoint between its kinks; -q and q at the ends), whose
   value alpha_j + gamma_j tau_j is known. G^T p = alpha_j, G^T q = gamma_j;
   G_i = (g(x_j + eta e_i) - g(x_j)) / eta for i >= 2 (g is linear on the
   cone); G_0, G_1 from the 2 x 2 system in p, q (p_0 q_1 - p_1 q_0 != 0 by
   the choice of the line). Check: g(x_j + eta v) = g(x_j) + eta G^T v at a
   random v; a wrong G fails it with probability 1 (retried once with a step
   2^-64 smaller, then refused).
4. Hyperplanes. J_k = G_k - G_{k-1} = 2 beta_k s_k n_k, s_k = sign(n_k^T q):
   n_k is the primitive integer vector on the line of J_k, J_k = lambda_k n_k,
   beta_k = lambda_k s_k / 2. Then l = G_K - sum_k beta_k s_k n_k.
5. Residual probes (R = 8 by default): g(z) at seeded random z against the
   recovered function. A mismatch starts a new line through z, whose
   hyperplanes are merged with the known ones (the lines must agree on
   shared hyperplanes and on l), at most ``max_lines`` lines; otherwise
   :class:`~exactattn.errors.RecoveryFailedError`.

The returned network has columns n_1..n_K with weights 2 beta_1..2 beta_K,
plus l' and -l' with weights 1, -1 where l' = l - sum_k beta_k n_k (omitted
when l' = 0): m_hat = K + 2 (or K) hidden units.

Query count (one line; the oracle's counter; asserted in the tests)
------------------------------------------------------------------
    Q = 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E
      = (K + 1)(d + 4) + 3 + R + E               for d >= 2,

with E = 5 F_p + 3 F_f + 2 S the queries of the 1-D samples that are not
kinks (F_p windows that found no kink, F_f candidates refused at t*, S
random splits); E = 0 when every candidate is a kink. E depends on where
the kinks fall on the line (two kinks close together, with slope changes of
opposite signs, need a binary search between them), not on d: measured
E / K is about 3 to 5 (benchmarks/relu_ffn.py). Since K <= m,

    Q <= (m + 1)(d + 4) + 3 + R + E,

below the target 2 (m + 1)(d + 1) once d >= 6 and E, R are small against
(m + 1) d; (K + 1) d numbers have to be learned. Dead neurons and duplicate
directions cost nothing: K counts distinct hyperplanes. A second line
(after a failed residual probe) adds its own count, plus 2 for the sample
at z.

Genericity (made to hold by seeded random choices) and how it is checked
-----------------------------------------------------------------------
G1. The line meets every hyperplane (n_k^T q != 0), at distinct points;
    p_0 q_1 - p_1 q_0 != 0 (checked, redrawn).
G2. No kink within eta of a sample's second point or of a candidate t*
    (other than t* itself), no hyperplane within eta of a gradient probe:
    probability O(K 2^-64) each. A violated gradient probe fails its check.
G3. No coincidence between the line and the model: a difference of two
    distinct cone gradients orthogonal to both p and q (probability 0 over
    real p, q; about 2^-20 per event with denominators 2^20).
Model assumption H (no hidden cancellation): no nonempty set S of canonical
hyperplanes and signs s_k with sum_{k in S} s_k beta_k n_k = 0. It holds for
generic weights and fails for special ones, e.g. ReLU(x_1) + ReLU(x_2) -
ReLU(x_1 + x_2), whose three kinks cancel on every line with q_1 q_2 > 0.
No learner can do without such an assumption: g = 0 and
g_eps = |n^T x| + |(n + eps u)^T x| - |(2n + eps u)^T x| agree outside the
wedge {(n^T x)((n + eps u)^T x) < 0}, which shrinks to the empty set as
eps -> 0, so a learner asking finitely many (random) queries misses it with
probability -> 1 and answers as for g = 0. The residual probes and the
extra lines catch most violations of H (each probe with the probability of
landing where the cancellation fails); what they miss, no learner sees.

Bad oracles. A function that is not positively homogeneous fails the end
checks; one that is not piecewise linear fails an end linearity check, the
linearity check at a refused candidate, or a gradient check (or, failing
all, ``MAX_STALL`` samples without a confirmed kink, or two pieces closer
than 2^-128 that do not meet at one kink); answers that are not rational
are refused. Each is a :class:`~exactattn.errors.RecoveryFailedError`
naming the check.

Fields. Exact oracles (QQ, or EXP answering rationals, as a Transformer's
one-token answers are) are handled in exact rational arithmetic through the
fields' public conversions (``to_rational``, ``from_rational``); the
recovery is over ``field`` (default: the oracle's).

F64 route (approximate, never called exact). The same algorithm with the
step ``F64_STEP`` = 2^-20 (relative to 1 + |t|) on the line and
``F64_GRADIENT_STEP`` = 2^-24 for gradients, pieces compared within
``F64_RTOL`` = 2^-24 of the answers' scale. Why these: the rounding of a
difference quotient is about (d + m) u |g| / step (u = 2^-53), i.e.
2^-33 |g| on the line and 2^-19 .. 2^-29 in the gradients, well below
F64_RTOL for a slope and far above it for a kink of a unit-scale network.
Every 1-D piece is measured with three points whose two slopes must agree
(a kink within the step is then caught; the step is divided by 16, at most
twice); a kink window has its pieces on (t* - 3 eta, t* - eta) and
(t* + eta, t* + 3 eta) (t* carries rounding error); gradients use forward
differences in all d coordinates (no 2 x 2 solve, whose conditioning
depends on p, q) and a check point 2^8 steps out, compared within
``F64_CHECK_RTOL`` scale (1 + 2^8 sqrt d). Count:
8 + 7K + (K + 1)(d + 2) + R + E with E = 7 F_p + 3 F_f + 3 S (+ retries).
Its samples are three points like the exact route's; its windows measure
the two pieces away from t*, as said.
Kinks closer than about 2^-36 (1 + |t|) are refused as beyond float64, and
a neuron whose slope change is below F64_RTOL of the scale (|beta| under
about 2^-24 of the answers) is invisible: it is missing from the result,
which ``parameter_error`` then counts at its full size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import fmpq

from ..errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    RecoveryFailedError,
)
from ..fields import Array, Field
from ..oracle import ValueOracle
from .recovery import QuerySpan, Recovery

__all__ = ["learn_relu_ffn", "query_count", "LABEL", "PAPER_REF", "SEPARATION_BITS",
           "F64_STEP", "F64_RTOL", "F64_GRADIENT_STEP", "F64_CHECK_RTOL", "F64_RESIDUAL_RTOL",
           "MAX_STALL"]

LABEL = "relu_ffn_exact"
PAPER_REF = "§4.1 (v1, v2): the FFN learner the reduction needs (exactattn's own)"

#: exact route: steps are 2^-SEPARATION_BITS of the local scale
SEPARATION_BITS = 64
#: denominator of the seeded Gaussian draws of p, q, v, z (exact route)
DRAW_DENOMINATOR = 2**20
#: F64 route: relative step and relative comparison tolerance
F64_STEP = 2.0**-20
F64_RTOL = 2.0**-24
#: F64 route: relative step of the gradient differences (smaller than F64_STEP: a
#: gradient probe moves off the line, where hyperplanes may pass closer), and the
#: tolerance of the gradient's check point, 2^8 steps out, in units of
#: scale (1 + 2^8 sqrt(d)): the rounding noise of G seen by the check
F64_GRADIENT_STEP = 2.0**-24
F64_CHECK_RTOL = 2.0**-47
#: F64 route: residual probes compare within this fraction of the evaluation's
#: magnitude (the recovered parameters carry errors of 2^-28 to 2^-22 relative,
#: which add up over the K terms)
F64_RESIDUAL_RTOL = 2.0**-16
#: a run of this many 1-D samples without a confirmed kink means "not piecewise linear"
MAX_STALL = 64
#: how many random lines to draw before p_0 q_1 - p_1 q_0 != 0 (almost always the first)
MAX_LINE_DRAWS = 32


def query_count(d: int, K: int, *, residual_probes: int = 8, extra: int = 0,
                exact: bool = True) -> int:
    """Queries of one line, 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E (exact route).

    For d >= 2 this is (K + 1)(d + 4) + 3 + R + E. ``extra`` is E (see the
    module docstring), 0 when every candidate kink is a kink. The F64 route
    measures every 1-D piece with three points (7 queries per kink window) and
    spends d + 2 per piece (all d coordinates, g(x_j) and the check):
    8 + 7K + (K + 1)(d + 2) + R + E.

    >>> query_count(8, 4), query_count(8, 4) == (4 + 1) * (8 + 4) + 3 + 8
    (71, True)
    """
    window, per_piece = (5, max(d - 2, 0) + 1) if exact else (7, d + 2)
    return 8 + window * K + (K + 1) * per_piece + residual_probes + extra


@dataclass
class _Sample:
    """A piece alpha + gamma t of phi, known valid at ``pos`` (end -1/+1: t -> -oo/+oo)."""

    end: int
    pos: Any
    alpha: Any
    gamma: Any

    def at(self, t: Any) -> Any:
        return self.alpha + self.gamma * t


@dataclass
class _LineResult:
    p: Array
    q: Array
    kinks: list[Any]
    points: list[tuple[Array, Any, Array]]  # (x_j, g(x_j), G_j) per piece
    terms: list[tuple[Any, Any]]  # (normal key, beta)
    normals: list[Array]  # normals as arrays (for sign computations)
    counts: dict[str, int]


class _Learner:
    """The state of one run: the oracle, the arithmetic (exact rationals or floats)."""

    def __init__(self, oracle: ValueOracle, field: Field, seed: int, bits: int,
                 residual_probes: int, max_lines: int, max_kinks: int | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.oracle = oracle
        self.OF = oracle.field
        self.F = field
        self.exact = field.exact
        self.d = oracle.d
        self.rng = np.random.default_rng(seed)
        self.bits = bits
        self.R = residual_probes
        self.max_lines = max_lines
        self.max_kinks = max_kinks
        self.progress = progress
        self.scale = 1.0  # F64: magnitude of the answers seen so far

    # -- arithmetic ---------------------------------------------------------
    def num(self, x: Any) -> Any:
        return fmpq(x) if self.exact else float(x)

    def two_pow(self, k: int) -> Any:
        """2^-k as an exact rational (exact route) or F64_STEP-like float."""
        return fmpq(1, 2**k) if self.exact else 2.0**-k

    def small(self) -> Any:
        """The relative step: 2^-bits (exact) or F64_STEP."""
        return self.two_pow(self.bits) if self.exact else F64_STEP

    def close(self, a: Any, b: Any, scale: Any = 1) -> bool:
        if self.exact:
            return bool(a == b)
        return bool(abs(a - b) <= F64_RTOL * self.scale * (1.0 + abs(float(scale))))

    def draw(self, shape: int | tuple[int, ...]) -> Array:
        g = self.rng.standard_normal(shape)
        if not self.exact:
            return np.asarray(g, dtype=np.float64)
        out = np.empty(g.shape, dtype=object)
        for idx, x in np.ndenumerate(g):
            out[idx] = fmpq(int(round(x * DRAW_DENOMINATOR)), DRAW_DENOMINATOR)
        return out

    def sign(self, x: Any) -> int:
        return int(x > 0) - int(x < 0)

    # -- queries --------------------------------------------------------------
    def ask(self, points: list[Array], phase: str) -> list[Any]:
        """g at each point (one oracle batch, one query each), in the compute arithmetic."""
        d = self.d
        if not self.exact:
            Xs = np.asarray(np.stack(points), dtype=np.float64).reshape(len(points), 1, d)
            ys = self.oracle.batch(Xs, phase=phase)
            out = [float(y) for y in ys]
            self.scale = max(self.scale, *(abs(y) for y in out))
            return out
        OF = self.OF
        conv = OF.from_rational
        Xs = np.empty((len(points), 1, d), dtype=object)
        for b, x in enumerate(points):
            for i in range(d):
                Xs[b, 0, i] = conv(x[i])
        answers = self.oracle.batch(Xs, phase=phase)
        out = []
        for y in answers:
            try:
                out.append(OF.to_rational(y))
            except NotRepresentableError as exc:
                raise RecoveryFailedError(
                    f"the oracle answered {y}, which is not a rational number: a ReLU network "
                    f"with rational weights answers rationals to rational queries ({exc})"
                ) from None
        return out

    def phi(self, p: Array, q: Array, ts: list[Any], phase: str) -> list[Any]:
        return self.ask([p + t * q for t in ts], phase)

    # -- one line -----------------------------------------------------------
    def draw_line(self, through: Array | None) -> tuple[Array, Array]:
        for _ in range(MAX_LINE_DRAWS):
            p = self.draw(self.d) if through is None else through
            q = self.draw(self.d)
            if self.d == 1:
                if q[0] != 0:
                    return p, q
                continue
            det = p[0] * q[1] - p[1] * q[0]
            if (det != 0) if self.exact else abs(det) > 1e-3:
                return p, q
        raise RecoveryFailedError(  # pragma: no cover - probability ~0
            f"no line with p_0 q_1 - p_1 q_0 != 0 in {MAX_LINE_DRAWS} draws")

    def run_line(self, p: Array, q: Array, initial: list[Any]) -> _LineResult:
        counts = {"fooled_windows": 0, "refused_candidates": 0, "random_splits": 0,
                  "windows": 0, "gradient_retries": 0, "retry_queries": 0}
        lo, hi = self.ends(p, q)
        samples = [lo, hi]
        for t in initial:
            samples.append(self.piece(p, q, t, self.step(t, None, None), 1, "splits", counts,
                                      checked=False))
            counts["random_splits"] += 1
        samples.sort(key=_key)
        kinks: list[tuple[Any, _Sample, _Sample]] = []
        stack = list(zip(samples[:-1], samples[1:], strict=True))
        stall = 0
        while stack:
            A, B = stack.pop()
            if self.same(A, B):
                continue
            if stall >= MAX_STALL:
                raise RecoveryFailedError(
                    f"{MAX_STALL} samples on the line without a confirmed kink: the oracle does "
                    "not look piecewise linear (or its kinks are extremely close together)")
            t = self.candidate(A, B)
            if t is None:
                tau = self.split_point(A, B)
                P = self.piece(p, q, tau, self.step(tau, A, B), 1, "splits", counts,
                               checked=False)
                counts["random_splits"] += 1
                stall += 1
                stack += [(A, P), (P, B)]
                continue
            eta = self.step(t, A, B)
            (y0,) = self.phi(p, q, [t], "kinks")
            if not self.close(y0, A.at(t), t):
                self.check_width(A, B, t)
                P = self.piece(p, q, t, eta, 1, "splits", counts, y0)
                counts["refused_candidates"] += 1
                stall += 1
                stack += [(A, P), (P, B)]
                continue
            counts["windows"] += 1
            if self.exact:
                PL = self.piece(p, q, t, eta, -1, "kinks", counts, y0)
                PR = self.piece(p, q, t, eta, 1, "kinks", counts, y0)
            else:
                # F64: t* carries rounding error, so the two pieces are measured away
                # from it, from t* - eta leftwards and from t* + eta rightwards
                PL = self.piece(p, q, t - eta, eta, -1, "kinks", counts)
                PR = self.piece(p, q, t + eta, eta, 1, "kinks", counts)
                if not self.same(PL, PR):
                    t_in = self.candidate(PL, PR)
                    if t_in is None:
                        # the pieces do not meet inside the window: not one kink; the
                        # window's pieces become ordinary samples
                        counts["fooled_windows"] += 1
                        stall += 1
                        stack += [(A, PL), (PL, PR), (PR, B)]
                        continue
                    t = t_in
            if self.same(PL, PR):
                counts["fooled_windows"] += 1
                stall += 1
            else:
                kinks.append((t, PL, PR))
                stall = 0
                if self.max_kinks is not None and len(kinks) > self.max_kinks:
                    raise RecoveryFailedError(
                        f"more than max_kinks = {self.max_kinks} kinks on the line: the oracle "
                        "has more hyperplanes than allowed (or is not piecewise linear)")
            stack += [(A, PL), (PR, B)]
        kinks.sort(key=lambda k: k[0])
        # the pieces between consecutive kinks (each settled pair is equal)
        pieces = [lo] + [R for _, _, R in kinks]
        for k, (_, L, _) in enumerate(kinks):
            if not self.same(pieces[k], L):  # pragma: no cover - guaranteed by the search
                raise RecoveryFailedError("internal error: pieces around a kink disagree")
        points = self.gradients(p, q, [t for t, _, _ in kinks], pieces, counts)
        terms, normals = self.hyperplanes(q, points)
        return _LineResult(p, q, [t for t, _, _ in kinks], points, terms, normals, counts)

    def ends(self, p: Array, q: Array) -> tuple[_Sample, _Sample]:
        """The pieces at t -> -oo and +oo, from the cones of -q and q (homogeneity)."""
        eta = self.small()
        yq, yqe, yqe2, ymq, ymqe, ymqe2, y2q, ym2q = self.ask(
            [q, q + eta * p, q + 2 * eta * p, -q, -q + eta * p, -q + 2 * eta * p, 2 * q, -2 * q],
            "ends")
        for name, y2, y in (("q", y2q, yq), ("-q", ym2q, ymq)):
            if not self.close(y2, 2 * y):
                raise RecoveryFailedError(
                    f"g(2x) != 2 g(x) at x = {name} ({y2} against 2 * {y}): the oracle is not "
                    "positively homogeneous, so it is not a bias-free ReLU network")
        for name, y0, y1, y2 in (("q", yq, yqe, yqe2), ("-q", ymq, ymqe, ymqe2)):
            if not self.close(y2 - y1, y1 - y0, 1):
                raise RecoveryFailedError(
                    f"g is not linear on the segment x + s p, 0 <= s <= 2 eta, at x = {name}: "
                    "the oracle is not piecewise linear (a ReLU network is linear on every "
                    "cone, and a kink that close has probability about 2^-64)")
        hi = _Sample(1, None, (yqe - yq) / eta, yq)
        lo = _Sample(-1, None, (ymqe - ymq) / eta, -ymq)
        self.end_values = (ymq, yq)
        return lo, hi

    def same(self, A: _Sample, B: _Sample) -> bool:
        ref = A.pos if A.pos is not None else (B.pos if B.pos is not None else 0)
        return self.close(A.gamma, B.gamma, 0) and self.close(A.at(ref), B.at(ref), ref)

    def candidate(self, A: _Sample, B: _Sample) -> Any:
        """Where the two pieces meet, if strictly between A and B; else None."""
        dg = B.gamma - A.gamma
        if self.close(dg, 0 * dg, 0):
            return None
        t = (A.alpha - B.alpha) / dg
        if A.end == 0 and not t > A.pos:
            return None
        if B.end == 0 and not t < B.pos:
            return None
        return t

    def step(self, t: Any, A: _Sample | None, B: _Sample | None) -> Any:
        """eta = 2^-bits min(1 + |t|, distances to the neighbours)."""
        width = 1 + abs(t)
        if A is not None and A.end == 0:
            width = min(width, t - A.pos)
        if B is not None and B.end == 0:
            width = min(width, B.pos - t)
        if self.exact:
            return self.small() * width
        # F64: the step is relative to 1 + |t| only (the rounding error of a difference
        # quotient grows as the step shrinks); it shrinks only when a neighbouring sample
        # is closer than three steps, and not below 2^-36 (1 + |t|)
        eta = F64_STEP * (1 + abs(t))
        if width < 3 * eta:
            eta = width / 3
            if eta < 2.0**-36 * (1 + abs(t)):
                raise RecoveryFailedError(
                    f"two kinks of the oracle lie about {float(width):.1e} apart on the line: "
                    "closer than float64 differences can separate (use an exact oracle)")
        return eta

    def check_width(self, A: _Sample, B: _Sample, t: Any) -> None:
        if A.end == 0 and B.end == 0:
            limit = self.two_pow(2 * self.bits) if self.exact else F64_STEP**2
            if B.pos - A.pos < limit * (1 + abs(t)):
                raise RecoveryFailedError(
                    f"two pieces {float(B.pos - A.pos):.3g} apart on the line do not meet at one "
                    "kink: the oracle is not piecewise linear (two kinks of a ReLU network are "
                    "that close with probability about 2^-128)")

    def split_point(self, A: _Sample, B: _Sample) -> Any:
        r = self.num(int(self.rng.integers(256, 769))) / 1024  # in [1/4, 3/4]
        if A.end == 0 and B.end == 0:
            return A.pos + (B.pos - A.pos) * r
        if A.end == 0:  # (a, +oo)
            return A.pos + (1 + abs(A.pos)) * (1 + 4 * r)
        if B.end == 0:  # (-oo, b)
            return B.pos - (1 + abs(B.pos)) * (1 + 4 * r)
        return 4 * r - 2  # (-oo, +oo)

    def piece(self, p: Array, q: Array, t: Any, eta: Any, direction: int, phase: str,
              counts: dict[str, int], y_t: Any = None, checked: bool = True) -> _Sample:
        """The piece of phi at t, from t and t + direction eta (``y_t``: phi(t) if known).

        ``checked``: a third point t + 2 direction eta must be collinear (exact route:
        else RecoveryFailedError). The exact route's random splits skip it: every
        later candidate next to them is checked, and MAX_STALL bounds the rest. F64
        always checks: the two slopes must agree (within F64_RTOL), otherwise a kink
        lies within 2 eta of t and the step is divided by 16, at most twice (each
        retry's new queries are counted in retry_queries).
        """
        if self.exact and not checked:
            y0, y1 = self.phi(p, q, [t, t + direction * eta], phase)
            return _piece(t, y0, t + direction * eta, y1)
        if y_t is None:
            (y_t,) = self.phi(p, q, [t], phase)
        if self.exact:
            # three collinear values: a non-piecewise-linear oracle fails at the first
            # sample where it is curved (a kink within 2 eta has probability ~2^-64)
            h = direction * eta
            y1, y2 = self.phi(p, q, [t + h, t + 2 * h], phase)
            if y2 - y1 != y1 - y_t:
                raise RecoveryFailedError(
                    f"phi is not linear on the 2 eta next to t = {float(t):.6g} (eta = "
                    f"{float(eta):.2g}): the oracle is not piecewise linear (for a ReLU network "
                    "a kink that close has probability about 2^-64)")
            lo, hi = sorted((t, t + 2 * h))
            return _piece(lo, y_t if h > 0 else y2, hi, y2 if h > 0 else y_t)
        for attempt in range(3):
            h = direction * eta
            y1, y2 = self.phi(p, q, [t + h, t + 2 * h], phase)
            if attempt:
                counts["retry_queries"] += 2
            s1, s2 = (y1 - y_t) / h, (y2 - y1) / h
            if self.close(s1, s2, 0):
                lo, hi = sorted((t, t + 2 * h))
                return _piece(lo, y_t if h > 0 else y2, hi, y2 if h > 0 else y_t)
            eta = eta / 16
        raise RecoveryFailedError(
            f"a kink lies within {float(2 * eta * 16):.1e} of t = {float(t):.6g} on the line at "
            "three step sizes: closer than float64 differences resolve (use an exact oracle)")

    # -- gradients ----------------------------------------------------------
    def gradients(self, p: Array, q: Array, kinks: list[Any], pieces: list[_Sample],
                  counts: dict[str, int]) -> list[tuple[Array, Any, Array]]:
        K = len(kinks)
        ymq, yq = self.end_values
        out = []
        for j, P in enumerate(pieces):
            if j == K:
                x, y, width = q, yq, self.num(1)
            elif j == 0:
                x, y, width = -q, ymq, self.num(1)
            else:
                tau = (kinks[j - 1] + kinks[j]) / 2
                x, y, width = p + tau * q, P.at(tau), 1 + abs(tau)
            G = self.gradient(p, q, P, x, y, width, counts)
            out.append((x, y, G))
            if self.progress is not None:
                self.progress(j + 1, K + 1)
        return out

    def gradient(self, p: Array, q: Array, P: _Sample, x: Array, y: Any, width: Any,
                 counts: dict[str, int]) -> Array:
        """The gradient of the cone containing x (whose value y is known, exact route)."""
        if not self.exact:
            return self.gradient_f64(x, width, counts)
        d = self.d
        eta = self.small() * width
        for _ in range(2):
            v = self.draw(d)
            pts = []
            for i in range(2, d):
                e = x.copy()
                e[i] = e[i] + eta
                pts.append(e)
            pts.append(x + eta * v)
            ys = self.ask(pts, "gradients")
            G = np.empty(d, dtype=object)
            for i in range(2, d):
                G[i] = (ys[i - 2] - y) / eta
            if d == 1:
                G[0] = P.gamma / q[0]
                consistent = G[0] * p[0] == P.alpha
            else:
                # G^T p = alpha and G^T q = gamma fix coordinates 0 and 1
                ra, rg = P.alpha, P.gamma
                for i in range(2, d):
                    ra = ra - p[i] * G[i]
                    rg = rg - q[i] * G[i]
                det = p[0] * q[1] - p[1] * q[0]
                G[0] = (ra * q[1] - rg * p[1]) / det
                G[1] = (p[0] * rg - q[0] * ra) / det
                consistent = True
            predicted = y + eta * sum((gi * vi for gi, vi in zip(G, v, strict=True)), 0 * y)
            if consistent and ys[-1] == predicted:
                return G
            counts["gradient_retries"] += 1
            eta = eta * self.small()
        raise RecoveryFailedError(
            "g is not linear near a point inside a piece (the check query g(x + eta v) = "
            "g(x) + eta G^T v failed twice, at two step sizes): the oracle is not a "
            "piecewise-linear, positively homogeneous function")

    def gradient_f64(self, x: Array, width: Any, counts: dict[str, int]) -> Array:
        """F64: forward differences in every coordinate (no 2 x 2 solve: p, q may be
        ill-conditioned) and a check point 2^8 times farther out, compared within
        F64_CHECK_RTOL; d + 2 queries."""
        d = self.d
        eta = F64_GRADIENT_STEP * float(width)
        for _ in range(2):
            v = self.draw(d)
            far = eta * 2.0**8
            pts = [x] + [x + eta * e for e in np.eye(d)] + [x + far * v]
            ys = np.asarray(self.ask(pts, "gradients"))
            G = (ys[1:d + 1] - ys[0]) / eta
            predicted = ys[0] + far * float(G @ v)
            # the check sees the rounding noise of G (about 2^-50 scale / eta per
            # coordinate) times 2^8 eta sqrt(d), plus that of the answers
            scale = float(np.abs(ys).max()) + self.scale * float(width)
            if abs(ys[-1] - predicted) <= F64_CHECK_RTOL * scale * (1 + 2**8 * math.sqrt(d)):
                return np.asarray(G, dtype=np.float64)
            counts["gradient_retries"] += 1
            eta = eta * 2.0**-6
        raise RecoveryFailedError(
            "g is not linear near a point inside a piece (the check query failed twice, at "
            "two step sizes, beyond F64_CHECK_RTOL): the oracle is not piecewise linear at "
            "float64 precision, or a hyperplane passes within about 2^-24 of the point")

    # -- hyperplanes --------------------------------------------------------
    def hyperplanes(self, q: Array, points: list[tuple[Array, Any, Array]]
                    ) -> tuple[list[tuple[Any, Any]], list[Array]]:
        terms: list[tuple[Any, Any]] = []
        normals: list[Array] = []
        for (_, _, G0), (_, _, G1) in zip(points[:-1], points[1:], strict=True):
            J = G1 - G0
            key, n, lam = self.normalise(J)
            s = self.sign(sum((a * b for a, b in zip(n, q, strict=True)), 0 * lam))
            if s == 0:
                raise RecoveryFailedError(
                    "a gradient jump is orthogonal to the line's direction q: no hyperplane "
                    "of a ReLU network crosses the line like that (genericity G1 or a bad oracle)")
            terms.append((key, lam * s / 2))
            normals.append(n)
        keys = [k for k, _ in terms]
        if self.exact and len(set(keys)) != len(keys):
            raise RecoveryFailedError(
                "the line met the same hyperplane twice: a hyperplane through the origin meets "
                "a line at most once, so the oracle is not a bias-free ReLU network")
        return terms, normals

    def normalise(self, J: Array) -> tuple[Any, Array, Any]:
        """(key, n, lambda) with J = lambda n; exact: n primitive integer, first entry > 0."""
        if self.exact:
            nz = [x for x in J if x != 0]
            if not nz:
                raise RecoveryFailedError("two neighbouring pieces have the same gradient")
            lcm = 1
            for x in nz:
                den = int(x.q)
                lcm = lcm * den // math.gcd(lcm, den)
            ints = [int(x.p) * (lcm // int(x.q)) for x in J]
            g = 0
            for v in ints:
                g = math.gcd(g, v)
            first = next(v for v in ints if v != 0)
            sgn = 1 if first > 0 else -1
            key = tuple(sgn * v // g for v in ints)
            lead = next(i for i, v in enumerate(key) if v != 0)
            n = np.array([fmpq(v) for v in key], dtype=object)
            return key, n, J[lead] / key[lead]
        norm = float(np.linalg.norm(J))
        if norm == 0:
            raise RecoveryFailedError("two neighbouring pieces have the same gradient")
        n = J / norm
        lam = norm
        if n[int(np.argmax(np.abs(n)))] < 0:
            n, lam = -n, -norm
        return tuple(float(x) for x in n), n, lam

    # -- the whole run ------------------------------------------------------
    def linear_part(self, x: Array, G: Array, terms: dict[Any, Any],
                    normals: dict[Any, Array]) -> Array:
        l = G.copy()
        for key, beta in terms.items():
            n = normals[key]
            s = self.sign(sum((a * b for a, b in zip(n, x, strict=True)), 0 * beta))
            l = l - (beta * s) * n
        return l

    def evaluate(self, x: Array, l: Array, terms: dict[Any, Any],
                 normals: dict[Any, Array]) -> Any:
        total = sum((a * b for a, b in zip(l, x, strict=True)), 0 * x[0])
        for key, beta in terms.items():
            z = sum((a * b for a, b in zip(normals[key], x, strict=True)), 0 * x[0])
            total = total + beta * abs(z)
        return total

    def residual_ok(self, y: Any, z: Array, l: Array, terms: dict[Any, Any],
                    normals: dict[Any, Array]) -> bool:
        """Exact: g(z) == g_hat(z). F64: within F64_RESIDUAL_RTOL of the magnitude
        |l|^T |z| + sum_k |beta_k| |n_k^T z| of the evaluation."""
        value = self.evaluate(z, l, terms, normals)
        if self.exact:
            return bool(y == value)
        size = float(np.abs(l) @ np.abs(z)) + sum(
            abs(beta) * abs(float(normals[key] @ z)) for key, beta in terms.items())
        return bool(abs(y - value) <= F64_RESIDUAL_RTOL * size)

    def run(self) -> dict[str, Any]:
        terms: dict[Any, Any] = {}
        normals: dict[Any, Array] = {}
        lines: list[_LineResult] = []
        through: Array | None = None
        residual_used = 0
        failure = ""
        for _ in range(self.max_lines if self.exact else 1):
            p, q = self.draw_line(through)
            line = self.run_line(p, q, [] if through is None else [self.num(0)])
            lines.append(line)
            for (key, beta), n in zip(line.terms, line.normals, strict=True):
                if key in terms and not self.close(terms[key], beta):
                    raise RecoveryFailedError(
                        f"two lines measured different slope jumps on the same hyperplane "
                        f"({terms[key]} and {beta}): the oracle is not a ReLU network")
                terms[key] = beta
                normals[key] = n
            # the linear part, from one piece of every line: equal iff no hyperplane is missing
            ls = [self.linear_part(x, G, terms, normals) for x, _, G in
                  (ln.points[-1] for ln in lines)]
            l = ls[0]
            if not all(all(self.close(a, b) for a, b in zip(l, m, strict=True)) for m in ls):
                failure = ("the lines disagree on the linear part: a hyperplane was missed "
                           "(hidden cancellation, assumption H)")
                through = None
                continue
            # residual probes
            through = None
            for _ in range(self.R):
                z = self.draw(self.d)
                (y,) = self.ask([z], "residual")
                residual_used += 1
                if not self.residual_ok(y, z, l, terms, normals):
                    through = z
                    shown = ", ".join(str(v) for v in z[:4]) + (", ..." if self.d > 4 else "")
                    failure = ("the recovered network differs from the oracle at a residual "
                               f"probe z = ({shown})")
                    break
            if through is None:
                return {"terms": terms, "normals": normals, "l": l, "lines": lines,
                        "residual_used": residual_used}
        raise RecoveryFailedError(
            f"{failure}; after {len(lines)} line(s) the oracle still disagrees with every "
            "bias-free ReLU network found. Either it is not such a network, or its hyperplanes "
            "cancel on the chosen lines (assumption H, which no learner can do without; try "
            "another seed or more lines)")


def _key(S: _Sample) -> tuple[int, Any]:
    return (S.end, S.pos if S.end == 0 else 0)


def _piece(t0: Any, y0: Any, t1: Any, y1: Any) -> _Sample:
    gamma = (y1 - y0) / (t1 - t0)
    return _Sample(0, (t0 + t1) / 2, y0 - t0 * gamma, gamma)


def learn_relu_ffn(
    oracle: ValueOracle,
    *,
    field: Field | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    residual_probes: int = 8,
    max_lines: int = 3,
    max_kinks: int | None = None,
    separation_bits: int = SEPARATION_BITS,
) -> Recovery:
    """Learn a network function-equivalent to g(x) = w^T ReLU(A^T x) from queries [x^T].

    Label ``relu_ffn_exact`` (paper §4.1 needs it; see the module docstring
    for the algorithm, the query count and the genericity assumptions).
    Only one-token queries are asked, so a one-layer Transformer's oracle can
    be passed directly (its one-token answers are g(x)).

    Parameters
    ----------
    oracle : value oracle over QQ, EXP (answers rational) or F64.
    field : the field of the recovered parameters (default: the oracle's;
        exact fields convert to each other through the rationals).
    seed : seed of the random line(s), check directions and residual probes.
    progress : called as ``progress(j, K + 1)`` after the gradient of piece j.
    residual_probes : R, random probes of the final network (per line).
    max_lines : lines tried before giving up (exact route; F64 uses one).
    max_kinks : refuse functions with more kinks than this (None: no limit).
    separation_bits : B, steps are 2^-B of the local scale (exact route).

    Returns
    -------
    Recovery with params ``A`` (d x m_hat) and ``w`` (m_hat) such that
    w^T ReLU(A^T x) = g(x) for every x, m_hat = K + 2 or K (canonical shape);
    options: ``canonical_terms`` (K), ``hidden_units``, ``lines``,
    ``query_terms`` (the terms of the count), ``genericity_checks`` and more.

    Raises
    ------
    RecoveryFailedError : a check failed (see the module docstring).

    >>> from exactattn.fields import QQ
    >>> from exactattn.models.relu import ReluFFN, equivalent
    >>> g = ReluFFN([[1, -1, 2], [0, 3, 2]], [2, -1, 1], field=QQ)
    >>> rec = learn_relu_ffn(ValueOracle(g))
    >>> rec.options["canonical_terms"], rec.params["A"].shape[0]
    (3, 2)
    >>> equivalent(ReluFFN(rec.params["A"], rec.params["w"]), g)
    True
    """
    OF = oracle.field
    F = OF if field is None else field
    if F != OF and not (F.exact and OF.exact):
        raise IncompatibleFieldError(
            f"the oracle is over {OF.name}, the learner over {F.name}: only exact fields "
            "convert into each other (through the rationals)")
    for name, value, least in (("residual_probes", residual_probes, 0), ("max_lines", max_lines, 1),
                               ("separation_bits", separation_bits, 8)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise InvalidEntryError(f"{name} must be an integer >= {least}, got {value!r}")
    d = oracle.d
    span = QuerySpan.begin(oracle)

    L = _Learner(oracle, F, seed, separation_bits, residual_probes, max_lines, max_kinks,
                 progress)
    out = L.run()
    terms: dict[Any, Any] = out["terms"]
    normals: dict[Any, Array] = out["normals"]
    l: Array = out["l"]
    lines: list[_LineResult] = out["lines"]
    K = len(terms)

    # the network: columns n_k (weights 2 beta_k), then l' and -l' (weights 1, -1)
    lp = l.copy()
    cols: list[Array] = []
    weights: list[Any] = []
    for key in sorted(terms):
        beta, n = terms[key], normals[key]
        cols.append(n)
        weights.append(2 * beta)
        lp = lp - beta * n
    if not all(L.close(x, 0 * x) for x in lp):
        cols += [lp, -lp]
        weights += [L.num(1), L.num(-1)]
    A = F.zeros((d, len(cols)))
    w = F.zeros(len(cols))
    conv = F.from_rational if F.exact else float
    for k, col in enumerate(cols):
        for i in range(d):
            A[i, k] = conv(col[i])
        w[k] = conv(weights[k])

    counts = [ln.counts for ln in lines]
    ex = F.exact
    window, grad = (5, max(d - 2, 0) + 1) if ex else (7, d + 2)
    line_queries = [query_count(d, len(ln.kinks), residual_probes=0, exact=ex,
                                extra=_extra(c, ex) + c["gradient_retries"] * grad
                                + c["retry_queries"])
                    for ln, c in zip(lines, counts, strict=True)]
    used = span.queries
    options: dict[str, Any] = {
        "canonical_terms": K,
        "hidden_units": len(cols),
        "lines": len(lines),
        "kinks_per_line": [len(ln.kinks) for ln in lines],
        "separation_bits": separation_bits if ex else None,
        "step": None if ex else F64_STEP,
        "gradient_step": None if ex else F64_GRADIENT_STEP,
        "rtol": None if ex else F64_RTOL,
        "residual_probes": residual_probes,
        "query_terms": {
            "ends": 8 * len(lines),
            "kinks": sum(window * len(ln.kinks) for ln in lines),
            "extra": sum(_extra(c, ex) for c in counts),
            "gradients": sum((len(ln.kinks) + 1) * grad for ln in lines),
            "gradient_retries": sum(c["gradient_retries"] * grad for c in counts),
            "sample_retries": sum(c["retry_queries"] for c in counts),
            "residual": out["residual_used"],
        },
        "query_formula": ("per line: 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E" if ex else
                          "per line: 8 + 7K + (K + 1)(d + 2) + R + E"),
        "line_queries": line_queries,
        "extra_samples": {k: sum(c[k] for c in counts)
                          for k in ("fooled_windows", "refused_candidates", "random_splits")},
        "genericity_checks": {
            "homogeneity": 2 * len(lines),
            "end_linearity": 2 * len(lines),
            "line_det_nonzero": len(lines),
            "kink_windows": sum(c["windows"] for c in counts),
            "confirmed_kinks": sum(len(ln.kinks) for ln in lines),
            "gradient_checks": sum(len(ln.points) for ln in lines),
            "gradient_retries": sum(c["gradient_retries"] for c in counts),
            "distinct_hyperplanes": True,
            "residual_probes_passed": residual_probes,
        },
        "line": {"p": [str(x) for x in lines[-1].p], "q": [str(x) for x in lines[-1].q],
                 "kinks": [str(t) for t in lines[-1].kinks]},
    }
    if sum(line_queries) + out["residual_used"] != used:  # pragma: no cover - bookkeeping
        raise AssertionError(f"internal error: {used} queries, formula gives "
                             f"{sum(line_queries) + out['residual_used']}")
    return span.recovery(
        hypotheses=GENERICITY_HYPOTHESES,
        label=LABEL,
        paper_ref=PAPER_REF,
        field=F,
        params={"A": A, "w": w},
        seed=seed,
        options=options,
    )


#: what the result rests on that no query can confirm (see the module docstring)
GENERICITY_HYPOTHESES = (
    "assumption H: no signed subset of the kinks cancels (the network is generic), so "
    "every nonzero piece of g is met on the learner's lines",
)


def _extra(c: dict[str, int], exact: bool = True) -> int:
    """E = 5 F_p + 3 F_f + 2 S: the queries of samples that are not kinks (F64: 7 F_p, 3 S)."""
    if exact:
        return 5 * c["fooled_windows"] + 3 * c["refused_candidates"] + 2 * c["random_splits"]
    return 7 * c["fooled_windows"] + 3 * c["refused_candidates"] + 3 * c["random_splits"]
