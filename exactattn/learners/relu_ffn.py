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
G^T p + t G^T q of one cone. Steps are relative to a local width w (1 + |t|,
or less when neighbouring samples are closer): the first step is 2^-B w
(B = ``separation_bits`` = 64), the finest 2^-R w (R = ``resolution_bits``,
at least 1024, raised to 4 b + 4 B when the answers at +-q have b bits). The
raise is a heuristic: large weights make both large answers and close
kinks, but nothing bounds the spacing of g's kinks by the size of two
answers, so the resolution stays a hypothesis (G2 below).

*Straight segments* (used everywhere below). A piece next to a point s0 is
measured from three values f(s0), f(s0 + 2^-R w), f(s0 + 2^-e w): if they are
collinear, f is taken to be linear on [s0, s0 + 2^-e w]; if not, a kink lies
between the two steps, and e grows along 64, 128, 256, 512, 768, 896, 960
(R = 1024; one query each) until they are. A single kink between the steps
always bends them; only several kinks whose slope changes cancel exactly
at the coarse step (G3), or a kink within 2^-R w of s0 (G2), can fool the
test. Bending at every scale is refused with the slope differences
seen (a curved oracle does that). Why the fine point: the point t* where two
outer pieces meet lies structurally close to a kink when weights differ in
size (about 10^-20 from one for the weight ratio 10^10: the old fixed step
2^-64 straddled it, and the old learner refused such networks or, for
ratio 10^20, merged two kinks into one false hyperplane).

1. Ends (8 queries). By positive homogeneity the piece at t -> +oo is that
   of the cone of q: gamma_+ = g(q), alpha_+ = the slope of s -> g(q + s p)
   on a straight segment at s = 0 (3 values); the same at -q. Check:
   g(2q) = 2 g(q), g(-2q) = 2 g(-q) (homogeneity).
2. Kinks. Keep samples: pieces known at positions on the line. For two
   neighbouring samples A < B with different pieces, the only kink one
   hyperplane can make is where the pieces meet, t* = (alpha_A - alpha_B) /
   (gamma_B - gamma_A). Query phi(t*).
   * If phi(t*) != alpha_A + gamma_A t*, there is more than one kink: the
     piece at t* (a straight segment, two more values) becomes a new sample
     (3 queries).
   * Otherwise the straight segments at t* on either side become samples
     (5 queries in all); if they differ, t* is a kink (no other kink lies
     between 2^-R w and 2^-e w of t*, by the segment test).
   * If the pieces are parallel or meet outside (A, B), split at a seeded
     random point (2 queries: the candidates next to it are checked); this
     is a bisection, so two kinks 2^-b apart with opposite slope changes cost
     about 2.4 b splits.
   Neighbours with equal pieces hold no kink (assumption H below), so the
   search ends when every neighbouring pair is equal or a confirmed kink.
3. Gradients ((K + 1)(max(d - 2, 0) + 1) queries). On piece j take x_j
   inside it (the midpoint between its kinks; -q and q at the ends), whose
   value alpha_j + gamma_j tau_j is known. G^T p = alpha_j, G^T q = gamma_j;
   G_i = (g(x_j + eta e_i) - g(x_j)) / eta for i >= 2 (g is linear on the
   cone), eta = 2^-e w with w at most half the piece's length; G_0, G_1 from
   the 2 x 2 system in p, q (p_0 q_1 - p_1 q_0 != 0 by the choice of the
   line). Check: g(x_j + eta v) = g(x_j) + eta G^T v at a random v; a wrong
   G fails it with probability 1 over real v (G3 for the seeded v), and eta
   shrinks along the same scales
   (d - 1 queries each), then the learner refuses with the differences seen.
4. Hyperplanes. J_k = G_k - G_{k-1} = 2 beta_k s_k n_k, s_k = sign(n_k^T q):
   n_k is the primitive integer vector on the line of J_k, J_k = lambda_k n_k,
   beta_k = lambda_k s_k / 2. Then l = G_K - sum_k beta_k s_k n_k.
5. Residual probes (R = ``residual_probes``, default RESIDUAL_PROBES = 1513,
   see below): g(z) at seeded Gaussian z (denominator 2^64) against the
   recovered function, asked in batches 1, 2, 4, ..., 256. A mismatch starts
   a new line through z, whose hyperplanes are merged with the known ones
   (the lines must agree on shared hyperplanes and on l), at most
   ``max_lines`` (default 4) lines; otherwise
   :class:`~exactattn.errors.RecoveryFailedError`.

The returned network has columns n_1..n_K with weights 2 beta_1..2 beta_K,
plus l' and -l' with weights 1, -1 where l' = l - sum_k beta_k n_k (omitted
when l' = 0): m_hat = K + 2 (or K) hidden units.

How likely a wrong network is (the residual probes)
---------------------------------------------------
Let S = {x : g(x) != g_hat(x)} for the network g_hat of a round. Both
functions are positively homogeneous, so S is a cone; let delta be its
angular measure (the fraction of the unit sphere it covers). A Gaussian z
has a uniformly distributed direction, so P(z in S) = delta exactly, and
the R probes of the round, drawn after g_hat is fixed, all miss S with
probability (1 - delta)^R <= exp(-delta R). The learner returns after the
first round whose probes all pass, and at most L = ``max_lines`` rounds end
in probes, so (union bound over the rounds)

    P(return a network that differs from g on a set of measure >= delta)
        <= L (1 - delta)^R.

The argument needs nothing about why g_hat is wrong (H, the resolution or
G1 - G3 below failing); for an oracle that is not positively homogeneous,
read delta as the Gaussian measure of S. The defaults L = 4, R = 1513 are
the least R with 4 (99/100)^R <= 10^-6 (:func:`probes_needed`, decided in
exact rationals; at R = 1512 the bound is 1.0057e-6): a region of 1 % is
missed with probability below 10^-6, one of 3 % below 10^-19.

What the probability is over, and what is idealised (a hypothesis of every
result, not a proved fact): the probes are drawn from the seeded generator
(numpy's PCG64), so the bound is about a seed chosen independently of g, with
the generator's Gaussian draws treated as exact; a fixed seed (the default 0)
and a g chosen after it carry no probability at all. The draws are float64
and are rounded to denominator 2^64, which moves a probe by less than
sqrt(d) 2^-65; that can change the answer "z in S" only for probes that close
to the boundary of S (inside the hyperplanes of g and g_hat, or the zero set
of g - g_hat on one of their common cells), an event estimated, not bounded,
at about sqrt(2 d / pi) 2^-65 per such hyperplane, far below the figures
printed. Why probes and not more lines: a line's end directions +-q
are two correlated directions, the points it samples cluster where its
pieces differ, and it costs (K + 1)(d + 4) queries, where a probe costs one
independent direction. Regions of measure below delta can be missed, by
any learner (see the wedge below).

Query count (one line; the oracle's counter; asserted in the tests)
------------------------------------------------------------------
    Q = 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E
      = (K + 1)(d + 4) + 3 + R + E               for d >= 2,

with E = 5 F_p + 3 F_f + 2 S the queries of the 1-D samples that are not
kinks (F_p windows that found no kink, F_f candidates refused at t*, S
random splits; ``query_terms["extra"]``) plus those of the finer steps (one
per segment retry: ``sample_retries``;
max(d - 2, 0) + 1 per gradient retry: ``gradient_retries``); E = 0 when
every candidate is a kink and no segment bends. E depends on where the kinks fall
on the line (two kinks close together, with slope changes of opposite
signs, need a binary search between them), not on d: measured E / K is
about 3 to 5 (benchmarks/relu_ffn.py). Since K <= m,

    Q <= (m + 1)(d + 4) + 3 + R + E.

The line's part (m + 1)(d + 4) + 3 + E is below the target 2 (m + 1)(d + 1)
once d >= 6 and E is small against (m + 1) d; (K + 1) d numbers have to be
learned. The R = 1513 probes are the price of the miss bound above
(measured on benchmarks/relu_ffn.py's instances, seed 0: 90 -> 1595
queries at (d, m) = (8, 4), 2355 -> 3860 at (64, 32); the line's part is
unchanged). Dead neurons and duplicate directions cost nothing: K counts
distinct hyperplanes. A second line (after a failed residual probe) adds
its own count, plus 2 for the sample at z, and up to R more probes.

Genericity (made to hold by seeded random choices) and how it is checked
-----------------------------------------------------------------------
G1. The line meets every hyperplane (n_k^T q != 0), at distinct points;
    p_0 q_1 - p_1 q_0 != 0 (checked, redrawn).
G2. Resolution: on the line no two kinks, and no kink and a point t* where
    two measured pieces meet, lie within 2^-R w of each other; no hyperplane
    within 2^-R w of a gradient probe's point. Kinks closer than the first
    step are found by the straight-segment test; closer than 2^-R they are
    merged. R grows with the bits of the answers (the heuristic above; each
    line has its own R, and the least is stated); a listed hypothesis of
    every result.
G3. No coincidence between the line and the model: a difference of two
    distinct cone gradients orthogonal to both p and q, or several kinks
    c_i between the two steps h_fine < c_i < h of a straight-segment test
    whose slope changes Delta_i cancel there, sum_i Delta_i (h - c_i) = 0,
    or a gradient check's direction v orthogonal to the error of a wrong
    gradient (probability 0 over real p, q, v; about 2^-20 per event with
    denominators 2^20, an estimate). Not checkable by queries; listed with G2.
Model assumption H (no hidden cancellation): no nonempty set S of canonical
hyperplanes and signs s_k with sum_{k in S} s_k beta_k n_k = 0. It holds for
generic weights and fails for special ones, e.g. ReLU(x_1) + ReLU(x_2) -
ReLU(x_1 + x_2), whose three kinks cancel on every line with q_1 q_2 > 0,
or 10|x_0| + |10 x_0 + x_1| - |20 x_0 + x_1|, zero outside a double wedge of
measure atan(1/10) / pi = 3.2 % (found by the probes on every seed tried).
No learner can do without such an assumption: g = 0 and
g_eps = |n^T x| + |(n + eps u)^T x| - |(2n + eps u)^T x| agree outside the
wedge {(n^T x)((n + eps u)^T x) < 0}, which shrinks to the empty set as
eps -> 0, so a learner asking finitely many (random) queries misses it with
probability -> 1 and answers as for g = 0. What H does not exclude, the
residual probes bound: the result's status is ``exact_given`` with three
hypotheses (:func:`genericity_hypotheses`): H, the resolution with G3, and
the miss bound L (1 - 1/100)^R with the run's figures.

Bad oracles. A function that is not positively homogeneous fails the end
checks; one that is not piecewise linear bends a straight segment at every
scale, or fails a gradient check at every scale (or, failing all,
``MAX_STALL`` + 3 R samples in a row without a confirmed kink, or two
different pieces closer than 2^-R w that do not meet at one kink); answers
that are not rational are refused. Each is a
:class:`~exactattn.errors.RecoveryFailedError` naming the check and the
figures observed (slope differences and the steps they were seen at).

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
from flint import fmpq, fmpq_mat

from ..errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    RecoveryFailedError,
)
from ..fields import Array, Field, rational
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery

__all__ = ["learn_relu_ffn", "query_count", "LABEL", "PAPER_REF", "SEPARATION_BITS",
           "RESOLUTION_BITS", "RESIDUAL_PROBES", "MISS_MEASURE", "MISS_PROBABILITY", "MAX_LINES",
           "miss_probability", "probes_needed", "genericity_hypotheses",
           "F64_STEP", "F64_RTOL", "F64_GRADIENT_STEP", "F64_CHECK_RTOL", "F64_RESIDUAL_RTOL",
           "MAX_STALL"]

LABEL = "relu_ffn_exact"
PAPER_REF = "§4.1 (v1; v2, reported): the FFN learner the reduction needs (exactattn's own)"

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
#: exact route: the finest step, 2^-RESOLUTION_BITS of the local width; kinks closer
#: together than that (relative) are not separated (see the module docstring)
RESOLUTION_BITS = 1024
#: a run of this many 1-D samples without a confirmed kink means "not piecewise linear"
#: (F64; the exact route allows MAX_STALL + 3 R: a random split narrows an interval to at
#: most 3/4, and 2^-R needs R / log2(4/3) < 2.41 R of them)
MAX_STALL = 64
#: the defaults' promise: a set of directions of angular measure >= MISS_MEASURE where
#: the returned network differs from g is missed with probability <= MISS_PROBABILITY
MISS_MEASURE = fmpq(1, 100)
MISS_PROBABILITY = fmpq(1, 10**6)
#: default number of lines (each after the first starts from a failed residual probe, or
#: after the lines disagree); also the number of rounds of residual probes in the bound
MAX_LINES = 4
#: denominator of the residual probes (2^64: the rounding moves a probe by < sqrt(d) 2^-65)
PROBE_DENOMINATOR = 2**64
#: how many random lines to draw before p_0 q_1 - p_1 q_0 != 0 (almost always the first)
MAX_LINE_DRAWS = 32


def miss_probability(delta: Any, residual_probes: int, rounds: int) -> fmpq:
    """The bound rounds (1 - delta)^R on returning a network that differs from g on a set
    of directions of angular measure >= delta (exact rational; see the module docstring).

    delta is the normalised surface measure of the cone {x : g(x) != g_hat(x)} on the
    unit sphere; R the residual probes of a round; ``rounds`` the rounds that end in
    residual probes (at most ``max_lines``).

    >>> miss_probability(fmpq(1, 2), 3, 2)
    1/4
    >>> miss_probability(MISS_MEASURE, RESIDUAL_PROBES, MAX_LINES) <= MISS_PROBABILITY
    True
    """
    d = rational(delta)
    if not 0 < d <= 1:
        raise InvalidEntryError(f"the angular measure delta must lie in (0, 1], got {delta}")
    out: fmpq = rounds * (1 - d) ** residual_probes
    return out


def probes_needed(delta: Any, probability: Any, rounds: int) -> int:
    """The least R with rounds (1 - delta)^R <= probability (decided exactly).

    >>> probes_needed(fmpq(1, 100), fmpq(1, 10**6), 1)
    1375
    >>> probes_needed(MISS_MEASURE, MISS_PROBABILITY, MAX_LINES) == RESIDUAL_PROBES
    True
    """
    d, p = rational(delta), rational(probability)
    if not (0 < d < 1 and 0 < p and isinstance(rounds, int) and rounds >= 1):
        raise InvalidEntryError(
            f"probes_needed takes 0 < delta < 1, probability > 0 and rounds >= 1, got "
            f"{delta}, {probability}, {rounds}")
    # a float first guess, then exact steps to the least R
    R = max(0, math.ceil(math.log(float(p) / rounds) / math.log1p(-float(d))))
    while R > 0 and miss_probability(d, R - 1, rounds) <= p:
        R -= 1
    while miss_probability(d, R, rounds) > p:
        R += 1
    return R


#: R, the default residual probes: the least R with MAX_LINES (1 - 1/100)^R <= 10^-6
RESIDUAL_PROBES = probes_needed(MISS_MEASURE, MISS_PROBABILITY, MAX_LINES)


def query_count(d: int, K: int, *, residual_probes: int = RESIDUAL_PROBES, extra: int = 0,
                exact: bool = True) -> int:
    """Queries of one line, 8 + 5K + (K + 1)(max(d - 2, 0) + 1) + R + E (exact route).

    For d >= 2 this is (K + 1)(d + 4) + 3 + R + E. ``extra`` is E (see the
    module docstring), 0 when every candidate kink is a kink. The F64 route
    measures every 1-D piece with three points (7 queries per kink window) and
    spends d + 2 per piece (all d coordinates, g(x_j) and the check):
    8 + 7K + (K + 1)(d + 2) + R + E.

    >>> query_count(8, 4, residual_probes=8), query_count(8, 4) == (4 + 1) * (8 + 4) + 3 + 1513
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
    resolution: int  # R of this line (exact route; it only grows from line to line)


class _Learner:
    """The state of one run: the oracle, the arithmetic (exact rationals or floats)."""

    def __init__(self, oracle: ValueOracle, field: Field, seed: int, bits: int,
                 residual_probes: int, max_lines: int, max_kinks: int | None,
                 progress: Callable[[int, int], None] | None,
                 resolution_bits: int = RESOLUTION_BITS) -> None:
        self.oracle = oracle
        self.OF = oracle.field
        self.F = field
        self.exact = field.exact
        self.d = oracle.d
        self.rng = np.random.default_rng(seed)
        self.bits = bits
        self.resolution = resolution_bits
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

    def scales(self) -> list[int]:
        """The exponents e of the steps 2^-e (times the local width) the exact route
        tries, coarse to fine: B, 2B, 4B, ... below the resolution R (64, ..., 512 for
        B = 64, R = 1024, then 768, 896, 960). A later step is tried only when the
        earlier one saw a bend.

        >>> L = _Learner.__new__(_Learner); L.bits, L.resolution = 64, 1024
        >>> L.scales()
        [64, 128, 256, 512, 768, 896, 960]
        """
        out, e, R = [self.bits], self.bits, self.resolution
        while 2 * e <= R // 2:  # doubling: 64, 128, 256, 512
            e *= 2
            out.append(e)
        e = (e + R) // 2
        while R - e >= self.bits:  # then halving the gap to R: 768, 896, 960
            out.append(e)
            e = (e + R) // 2
        return out

    def linear_step(self, at: Callable[[Any], Array], y0: Any, width: Any, phase: str,
                    counts: dict[str, int], first: tuple[Any, Any] | None = None,
                    ) -> tuple[Any, Any, list[tuple[int, Any]]]:
        """(h, f(h), bends) with f(s) = g(at(s)) linear on [0, h] (exact route).

        Three values f(0) = y0, f(h_fine) and f(h) with h_fine = 2^-R width (the
        resolution) and h = 2^-e width must be collinear; if not, a kink lies in
        (h_fine, h) and h shrinks along :meth:`scales` (one query per retry, in
        ``retry_queries``). ``first``: (f(h_fine), f(2^-B width)) when already asked.
        Returns h = 0 and the bends seen (e, second difference) when every scale
        bends: a kink within 2^-e_last width of at(0), or curvature.
        """
        fine = self.two_pow(self.resolution) * width
        bends: list[tuple[int, Any]] = []
        y_fine: Any = None
        for k, e in enumerate(self.scales()):
            h = self.two_pow(e) * width
            if k == 0 and first is not None:
                y_fine, y_h = first
            elif k == 0:
                y_fine, y_h = self.ask([at(fine), at(h)], phase)
            else:
                (y_h,) = self.ask([at(h)], phase)
                counts["retry_queries"] += 1
            # collinear: (f(h) - f(0)) / h == (f(fine) - f(0)) / fine
            bend = (y_h - y0) / h - (y_fine - y0) / fine
            if bend == 0:
                return h, y_h, bends
            bends.append((e, bend))
        return 0 * width, None, bends

    def bend_text(self, where: str, bends: list[tuple[int, Any]]) -> str:
        seen = ", ".join(f"2^-{e}: {float(b):.3g}" for e, b in bends)
        return (f"g is not linear on any of the segments next to {where} that the learner "
                f"measured (slope differences between step 2^-{self.resolution} and steps "
                f"{seen}, times the local width): it bends within 2^-{bends[-1][0]} of that "
                f"point. A bias-free ReLU network does so only if one of its kinks lies that "
                f"close (raise resolution_bits above {self.resolution}); otherwise the oracle "
                f"is not piecewise linear")

    def close(self, a: Any, b: Any, scale: Any = 1) -> bool:
        if self.exact:
            return bool(a == b)
        return bool(abs(a - b) <= F64_RTOL * self.scale * (1.0 + abs(float(scale))))

    def draw(self, shape: int | tuple[int, ...], denominator: int = DRAW_DENOMINATOR) -> Array:
        g = self.rng.standard_normal(shape)
        if not self.exact:
            return np.asarray(g, dtype=np.float64)
        out = np.empty(g.shape, dtype=object)
        for idx, x in np.ndenumerate(g):
            out[idx] = fmpq(int(round(x * denominator)), denominator)
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
        lo, hi = self.ends(p, q, counts)
        samples = [lo, hi]
        for t in initial:
            samples.append(self.piece(p, q, t, self.step(t, None, None), 1, "splits", counts,
                                      checked=False))
            counts["random_splits"] += 1
        samples.sort(key=_key)
        kinks: list[tuple[Any, _Sample, _Sample]] = []
        stack = list(zip(samples[:-1], samples[1:], strict=True))
        stall = 0
        max_stall = MAX_STALL if not self.exact else MAX_STALL + 3 * self.resolution
        while stack:
            A, B = stack.pop()
            if self.same(A, B):
                continue
            if stall >= max_stall:
                raise RecoveryFailedError(
                    f"{max_stall} samples on the line in a row without a confirmed kink (each "
                    f"narrows an interval by at least 1/4): the oracle does not look piecewise "
                    f"linear, or it has more kinks closer together than 2^-{self.resolution} "
                    "(1 + |t|) than the learner can separate")
            t = self.candidate(A, B)
            if t is None:
                self.check_width(A, B, A.pos if A.end == 0 else 0 * A.alpha)
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
        return _LineResult(p, q, [t for t, _, _ in kinks], points, terms, normals, counts,
                           self.resolution)

    def ends(self, p: Array, q: Array, counts: dict[str, int]) -> tuple[_Sample, _Sample]:
        """The pieces at t -> -oo and +oo, from the cones of -q and q (homogeneity)."""
        if self.exact:
            return self.ends_exact(p, q, counts)
        eta = self.small()
        yq, yqe, yqe2, ymq, ymqe, ymqe2, y2q, ym2q = self.ask(
            [q, q + eta * p, q + 2 * eta * p, -q, -q + eta * p, -q + 2 * eta * p, 2 * q, -2 * q],
            "ends")
        self.check_homogeneity(yq, ymq, y2q, ym2q)
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

    def ends_exact(self, p: Array, q: Array, counts: dict[str, int]) -> tuple[_Sample, _Sample]:
        """Exact route: g(+-q), g(+-2q), g(+-q + 2^-B p), then (once R is set from the
        size of g(+-q)) g(+-q + 2^-R p): 8 queries in two batches; the slopes along p by
        :meth:`linear_step` (retries only if a kink is that close)."""
        one = self.num(1)
        eta = self.small()
        yq, ymq, y2q, ym2q, yqe, ymqe = self.ask(
            [q, -q, 2 * q, -2 * q, q + eta * p, -q + eta * p], "ends")
        self.check_homogeneity(yq, ymq, y2q, ym2q)
        # large weights put kinks close together: the resolution grows with the size of
        # the answers (the bits of their numerators and denominators; a heuristic, no
        # bound on the kinks' spacing, so the resolution stays a hypothesis)
        size = max(max(int(y.p).bit_length(), int(y.q).bit_length()) for y in (yq, ymq))
        self.resolution = max(self.resolution, 4 * size + 4 * self.bits)
        fine = self.two_pow(self.resolution)
        yqf, ymqf = self.ask([q + fine * p, -q + fine * p], "ends")
        first = [(yqf, yqe), (ymqf, ymqe)]
        slopes = []
        for (name, x, y0), ask_first in zip((("q", q, yq), ("-q", -q, ymq)), first, strict=True):
            def along_p(s: Any, x: Array = x) -> Array:
                out: Array = x + s * p
                return out

            h, yh, bends = self.linear_step(along_p, y0, one, "ends", counts, first=ask_first)
            if yh is None:
                raise RecoveryFailedError(self.bend_text(f"x = {name}, along p", bends))
            slopes.append((yh - y0) / h)
        hi = _Sample(1, None, slopes[0], yq)
        lo = _Sample(-1, None, slopes[1], -ymq)
        self.end_values = (ymq, yq)
        return lo, hi

    def check_homogeneity(self, yq: Any, ymq: Any, y2q: Any, ym2q: Any) -> None:
        for name, y2, y in (("q", y2q, yq), ("-q", ym2q, ymq)):
            if not self.close(y2, 2 * y):
                raise RecoveryFailedError(
                    f"g(2x) != 2 g(x) at x = {name} ({y2} against 2 * {y}): the oracle is not "
                    "positively homogeneous, so it is not a bias-free ReLU network")

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
        """Refuse two different pieces closer than the resolution that do not meet at one
        kink (exact route: 2^-R (1 + |t|); F64: F64_STEP^2 (1 + |t|))."""
        if A.end == 0 and B.end == 0:
            limit = self.two_pow(self.resolution) if self.exact else F64_STEP**2
            if B.pos - A.pos < limit * (1 + abs(t)):
                bound = f"2^-{self.resolution}" if self.exact else "2^-40"
                raise RecoveryFailedError(
                    f"two different pieces of phi, measured at t = {float(A.pos):.6g} and "
                    f"t = {float(B.pos):.6g} ({float(B.pos - A.pos):.3g} apart, below {bound} "
                    f"(1 + |t|)), do not meet at one kink: the oracle is not piecewise linear, "
                    f"or its kinks lie closer than {bound} (1 + |t|) on the line"
                    + (" (raise resolution_bits)" if self.exact else ""))

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

        Exact route, ``checked``: a straight segment from t (:meth:`linear_step`, steps
        2^-R and 2^-e of the width eta / 2^-B, e shrinking while they bend), else
        RecoveryFailedError. The exact route's random splits (``checked=False``) use
        the two points t, t + direction eta only: every later candidate next to them
        is checked, and MAX_STALL + 3 R bounds the rest. F64 always checks: the two
        slopes must agree (within F64_RTOL), otherwise a kink lies within 2 eta of t
        and the step is divided by 16, at most twice (each retry's new queries are
        counted in retry_queries).
        """
        if self.exact and not checked:
            y0, y1 = self.phi(p, q, [t, t + direction * eta], phase)
            return _piece(t, y0, t + direction * eta, y1)
        if y_t is None:
            (y_t,) = self.phi(p, q, [t], phase)
        if self.exact:
            # three collinear values phi(t), phi(t + 2^-R w), phi(t + 2^-e w), e = B, 2B, ...:
            # a kink between the two steps bends them, so the coarse step shrinks until the
            # segment is straight; a curved oracle bends at every scale
            h, yh, bends = self.linear_step(lambda s: p + (t + direction * s) * q, y_t,
                                            eta / self.small(), phase, counts)
            if yh is None:
                side = "right" if direction > 0 else "left"
                raise RecoveryFailedError(self.bend_text(
                    f"t = {float(t):.6g} on the line (to its {side})", bends))
            t1 = t + direction * h
            return _piece(t, y_t, t1, yh) if direction > 0 else _piece(t1, yh, t, y_t)
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
                # the probes stay closer to x than the neighbouring kinks (exact route)
                width = min(1 + abs(tau), (kinks[j] - kinks[j - 1]) / 2) if self.exact \
                    else 1 + abs(tau)
                x, y = p + tau * q, P.at(tau)
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
        misses: list[tuple[int, Any]] = []
        for k, e in enumerate(self.scales()):
            eta = self.two_pow(e) * width
            if k:
                counts["gradient_retries"] += 1
            v = self.draw(d)
            pts = []
            for i in range(2, d):
                u = x.copy()
                u[i] = u[i] + eta
                pts.append(u)
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
            # a hyperplane between x and one of the probes (the step shrinks), or curvature
            misses.append((e, (ys[-1] - predicted) / eta))
        seen = ", ".join(f"2^-{e}: {float(m):.3g}" for e, m in misses)
        raise RecoveryFailedError(
            f"g is not linear near the point x = p + tau q inside a piece: the check "
            f"(g(x + eta v) - g(x)) / eta = G^T v, with G from the coordinate steps, failed at "
            f"every step eta = 2^-e times the local width (e, difference: {seen}). A bias-free "
            f"ReLU network does so only if a hyperplane passes within 2^-{misses[-1][0]} of x "
            f"(raise resolution_bits above {self.resolution}); otherwise the oracle is not a "
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

    def first_mismatch(self, Z: Array, ys: list[Any], l: Array, terms: dict[Any, Any],
                       normals: dict[Any, Array]) -> int | None:
        """The first row z of Z whose answer differs from g_hat(z) = l^T z +
        sum_k beta_k |n_k^T z| (one matrix product Z [N | l]), or None. Exact route:
        ``==``; F64: beyond F64_RESIDUAL_RTOL of the magnitude |l|^T |z| +
        sum_k |beta_k| |n_k^T z| of the evaluation."""
        keys = list(terms)
        K, (n, d) = len(keys), Z.shape
        if self.exact:
            M = fmpq_mat(d, K + 1, [x for i in range(d) for x in
                                    [normals[k][i] for k in keys] + [l[i]]])
            P = fmpq_mat(n, d, list(Z.flat)) * M
            betas = [terms[k] for k in keys]
            for b in range(n):
                value = P[b, K]
                for k in range(K):
                    value += betas[k] * abs(P[b, k])
                if ys[b] != value:
                    return b
            return None
        Zf = np.asarray(Z, dtype=np.float64)
        N = np.array([normals[k] for k in keys], dtype=np.float64).reshape(K, d)
        beta = np.array([terms[k] for k in keys], dtype=np.float64)
        lf = np.asarray(l, dtype=np.float64)
        kinks = np.abs(Zf @ N.T)
        g_hat = Zf @ lf + kinks @ beta
        size = np.abs(Zf) @ np.abs(lf) + kinks @ np.abs(beta)
        # "not within", not "beyond": an evaluation that overflowed to nan fails the probe
        bad = ~(np.abs(np.asarray(ys, dtype=np.float64) - g_hat) <= F64_RESIDUAL_RTOL * size)
        return int(np.argmax(bad)) if bad.any() else None

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
            # residual probes, asked in batches of 1, 2, 4, ..., 256 (fewer oracle calls;
            # a failing round spends at most twice the probes up to its first failure)
            through = None
            asked, batch = 0, 1
            while asked < self.R and through is None:
                Z = self.draw((min(batch, self.R - asked), self.d), PROBE_DENOMINATOR)
                zs = list(Z)
                ys = self.ask(zs, "residual")
                asked += len(zs)
                residual_used += len(zs)
                batch = min(2 * batch, 256)
                bad = self.first_mismatch(Z, ys, l, terms, normals)
                if bad is not None:
                    through = zs[bad]
                    shown = ", ".join(str(v) for v in through[:4]) + (", ..." if self.d > 4
                                                                      else "")
                    failure = ("the recovered network differs from the oracle at a residual "
                               f"probe z = ({shown})")
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


@checked_arguments(counts={"residual_probes": (0, 10**6), "max_lines": (1, 10**4),
                           "max_kinks": (0, 10**9), "separation_bits": (8, 2**20),
                           "resolution_bits": (16, 2**24)})
def learn_relu_ffn(
    oracle: ValueOracle,
    *,
    field: Field | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    residual_probes: int = RESIDUAL_PROBES,
    max_lines: int = MAX_LINES,
    max_kinks: int | None = None,
    separation_bits: int = SEPARATION_BITS,
    resolution_bits: int = RESOLUTION_BITS,
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
    residual_probes : R, random probes of the network of each round (default
        RESIDUAL_PROBES = 1513). With L = ``max_lines`` rounds at most, a
        network that differs from g on a set of directions of angular measure
        >= delta is returned with probability <= L (1 - delta)^R over a seed
        chosen independently of g, the draws idealised as exact Gaussians
        (:func:`miss_probability`; <= 10^-6 at delta = 1/100 for the defaults).
    max_lines : lines tried before giving up (default 4; exact route; F64 uses one).
    max_kinks : refuse functions with more kinks than this (None: no limit).
    separation_bits : B, the first step is 2^-B of the local width (exact route).
    resolution_bits : R_min, the finest step is 2^-R of the local width, R >= R_min
        (raised with the size of the answers); kinks closer than that are merged.

    Returns
    -------
    Recovery with params ``A`` (d x m_hat) and ``w`` (m_hat) such that
    w^T ReLU(A^T x) = g(x) for every x, m_hat = K + 2 or K (canonical shape);
    options: ``canonical_terms`` (K), ``hidden_units``, ``lines``,
    ``query_terms`` (the terms of the count), ``extra_queries`` (E, summed over
    the lines), ``genericity_checks``,
    ``miss_bound`` (delta, R, L and the bound) and more. The status is
    ``exact_given`` (``float`` for F64) with the hypotheses of
    :func:`genericity_hypotheses`: H, the resolution and the miss bound.

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
    # each count's type and range is checked by @checked_arguments; this is their relation
    if resolution_bits < 2 * separation_bits:
        raise InvalidEntryError(f"learn_relu_ffn: resolution_bits must be >= 2 * separation_bits = "
                                f"{2 * separation_bits}, got {resolution_bits}")
    d = oracle.d
    span = QuerySpan.begin(oracle)

    L = _Learner(oracle, F, seed, separation_bits, residual_probes, max_lines, max_kinks,
                 progress, resolution_bits)
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
    # the resolution hypothesis must hold on every line at that line's R: the least R
    # (the first line's) is the one stated
    resolution = min(ln.resolution for ln in lines) if ex else None
    window, grad = (5, max(d - 2, 0) + 1) if ex else (7, d + 2)
    # E of each line: the samples that are not kinks plus the retries at finer steps
    extras = [_extra(c, ex) + c["gradient_retries"] * grad + c["retry_queries"] for c in counts]
    line_queries = [query_count(d, len(ln.kinks), residual_probes=0, exact=ex, extra=E)
                    for ln, E in zip(lines, extras, strict=True)]
    used = span.queries
    bound = miss_probability(MISS_MEASURE, residual_probes, max_lines if ex else 1)
    options: dict[str, Any] = {
        "canonical_terms": K,
        "hidden_units": len(cols),
        "lines": len(lines),
        "kinks_per_line": [len(ln.kinks) for ln in lines],
        "separation_bits": separation_bits if ex else None,
        "resolution_bits": resolution,
        "resolution_bits_per_line": [ln.resolution for ln in lines] if ex else None,
        "miss_bound": {
            "measure": str(MISS_MEASURE), "probes_per_round": residual_probes,
            "rounds": max_lines if ex else 1,
            "probability": f"{max_lines if ex else 1} (1 - {MISS_MEASURE})^{residual_probes}",
            "probability_at_most": float(_ceil_figure(bound)) if bound < 1 else 1.0,
        },
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
        "extra_queries": sum(extras),
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
            "distinct_hyperplanes": True if ex else None,  # checked on the exact route only
            "residual_probes_passed": residual_probes,
        },
        "line": {"p": [str(x) for x in lines[-1].p], "q": [str(x) for x in lines[-1].q],
                 "kinks": [str(t) for t in lines[-1].kinks]},
    }
    if sum(line_queries) + out["residual_used"] != used:  # pragma: no cover - bookkeeping
        raise AssertionError(f"internal error: {used} queries, formula gives "
                             f"{sum(line_queries) + out['residual_used']}")
    return span.recovery(
        hypotheses=genericity_hypotheses(residual_probes, max_lines if ex else 1, resolution),
        label=LABEL,
        paper_ref=PAPER_REF,
        field=F,
        params={"A": A, "w": w},
        seed=seed,
        options=options,
    )


def genericity_hypotheses(residual_probes: int, rounds: int, resolution_bits: int | None
                          ) -> tuple[str, ...]:
    """What an exact result of :func:`learn_relu_ffn` rests on that no query can confirm,
    with the figures of the run (see the module docstring).

    >>> H, res, probes = genericity_hypotheses(RESIDUAL_PROBES, MAX_LINES, 1024)
    >>> H.startswith("assumption H"), "2^-1024" in res
    (True, True)
    >>> probes.split(" over the seed")[0].split("probability ")[1]
    '<= 4 (1 - 1/100)^1513 <= 1e-06'
    """
    bound = miss_probability(MISS_MEASURE, residual_probes, rounds)
    shown = (f"<= {_ceil_figure(bound)}" if bound < 1 else
             f"= {float(bound):.3g}, no guarantee at all (too few probes)")
    out = (
        "assumption H: no nonempty signed subset of the canonical terms cancels "
        "(sum_{k in S} s_k beta_k n_k != 0 for every nonempty S and signs s_k = +-1); with it "
        "one generic line shows every hyperplane of g as a kink",
        f"resolution: on the learner's lines, kinks of g lie at least 2^-{resolution_bits} "
        "(1 + |t|) apart, and as far from every point where two measured pieces meet (R is "
        "raised with the size of the answers, a heuristic that does not bound the kinks' "
        "spacing); and the seeded draws (denominator 2^20) meet none of the coincidences G3 "
        "of probability 0 for real draws: two cone gradients of g differing by a vector "
        "orthogonal to both p and q, kinks cancelling in a straightness test, a gradient "
        "check's direction orthogonal to the error of a wrong gradient",
        f"random probes: whatever makes the result wrong, a set of directions of angular "
        f"measure >= {MISS_MEASURE} on which g differs from the result is missed with "
        f"probability <= {rounds} (1 - {MISS_MEASURE})^{residual_probes} {shown} over the seed, "
        "for a seed chosen independently of g and the generator's draws idealised as exact "
        f"Gaussians ({residual_probes} probes per round, at most {rounds} rounds); a smaller "
        "set can be missed, by any learner",
    )
    if resolution_bits is not None:
        return out
    # F64: no resolution hypothesis (a float result; kinks closer than about 2^-36 are
    # refused, slope changes below F64_RTOL are not seen, and no error bound is claimed:
    # parameter_error measures it), and a probe passes within F64_RESIDUAL_RTOL, so the
    # bound is about larger differences
    return (out[0], out[2].replace("on which g differs from the result",
                                   "on which g differs from the result by more than "
                                   "about F64_RESIDUAL_RTOL (2^-16) of its size (compared in "
                                   "float64)"))


def _ceil_figure(x: fmpq) -> str:
    """x rounded up to two significant digits, as text (exact comparison).

    >>> _ceil_figure(fmpq(123, 100000)), _ceil_figure(fmpq(1, 10**6))
    ('0.0013', '1e-06')
    """
    e = math.floor(math.log10(float(x))) - 1
    m = math.ceil(x / fmpq(10) ** e) if e >= 0 else math.ceil(x * 10 ** (-e))
    while m % 10 == 0:
        m //= 10
        e += 1
    return f"{float(f'{m}e{e}'):.2g}"


def _extra(c: dict[str, int], exact: bool = True) -> int:
    """E = 5 F_p + 3 F_f + 2 S: the queries of samples that are not kinks (F64: 7 F_p, 3 S)."""
    if exact:
        return 5 * c["fooled_windows"] + 3 * c["refused_candidates"] + 2 * c["random_splits"]
    return 7 * c["fooled_windows"] + 3 * c["refused_candidates"] + 3 * c["random_splits"]
