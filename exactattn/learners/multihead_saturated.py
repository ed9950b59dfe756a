"""Biased multi-head attention from a float64 oracle, heads separated by saturation.

Label ``multihead_canonical`` (float variant, biased heads; exactattn's own).
:func:`~exactattn.learners.learn_multihead_biased` separates the heads with
copy families: m poles fitted from 2H copy ratios, which float64 cannot do
beyond about six heads. This learner never fits a pole. It uses one fact of
softmax: a head whose score gap is large attends to one token only, up to
e^-gap, and that is below float64's resolution once the gap exceeds about 37.

Model (as :mod:`exactattn.learners.multihead_biased`). At a query position b,
head h scores token x by x . u_h(b), u_h(b) = W_h b + c_h, so that

    g_b(delta) = f([b + delta; b]) - f([b]) = sum_h sigma(delta . u_h(b)) delta . v_h.

Steps
-----
1. ``beta`` = f([0]).
2. Phase ``path`` (the head count and first v_h, at b_1). Along a half
   circle n(theta) = R (cos theta a + sin theta a'), theta in [t0, t0 + pi],
   every head's score n . u_h changes sign exactly once. Where every head is
   saturated (|n . u_h| large), g is affine near n:
   g(n + e) = (n + e) . z_S, z_S = sum_{h in S} v_h, S = {h : n . u_h > 0},
   so y(theta, R) = (g(n + p) - g(n)) / |p| is p^ . z_S, the same at R and
   2R: that equality (within ``SATURATION_TOLERANCE``) is the saturation
   test (p = ``PATH_STEP`` R p^ while the scale R1 is searched, then p =
   ``PATH_STEP`` R1 p^ at every R, so that a probe next to a crossing
   changes with R). The scalar is piecewise constant in theta; bisection (to
   ``PATH_RESOLUTION`` radians) finds every change. At a point of each
   plateau z_S is measured by d + 1 queries (an affine fit), and consecutive
   plateaus differ by +- v_h of the head that crossed: m = the number of
   crossings, v_h = +- the jumps, the signs from z_start = -sum over the
   heads that leave of their jumps (a linear solve whose coefficients must
   be 0 or -1: the margin is reported). The head count's margin
   (``options["path"]["head_count_margin_decades"]``) is the smallest change
   of the scalar across a crossing over the tolerance within which two
   plateaus count as one.
3. Phase ``isolate`` at b_1 (first estimates, with the path's v): with p_h =
   (V^T)^+ e_h (p_h . v_g = [g = h]) and N an orthonormal basis of
   null(V^T), the d - m + 1 queries [b + s p^_h; b] and [b + s (p^_h + n_i)
   / sqrt 2; b] see head h's value only, so their answers are sigma(logit) x
   value: a logit each (repeated with a rescaled s_h until the logits have a
   median size between LOGIT / 4 and 4 LOGIT, at most ``ISOLATE_PASSES``
   passes). Then phase W's design (step 5) at b_1 with the path's v gives
   the whole u_h(b_1).
4. Phase ``v`` at b_1 (v to float64 precision): for each head h a token n in
   null(V^T) with n . u_h = +(``SATURATION`` + 4), n . u_g = -(``SATURATION`` + 4)
   (g != h): near n only head h attends to the new token, so
   g(n + t e_i) - g(n) = t v_h[i] up to e^-SATURATION, with t moving every
   score by about 4: d + 1 queries per head, no fit. The try (steps 2 to 4)
   passes when this v agrees with the path's to ``PATH_AGREEMENT`` (1e-6)
   and every token's gap is at least ``MIN_MARGIN``; a path that saw two
   heads cross together (one jump for two heads) fails it, and the steps
   are tried again on a new random plane, at most ``PATH_TRIES`` times.
5. Phase ``W`` at the full bases (b_0 = ``scale`` w, b_j = b_0 + ``scale`` B_j,
   w a random unit vector, so that no base has u_h(b) = c_h = 0): the
   isolating queries of step 3 (scaled per head so that logits are about
   ``LOGIT``), then 2 (m - 1) muting queries per head: n_h in null(V^T) with
   n_h . u_g <= -``SATURATION`` for g != h mutes the other heads, so
   [b + n_h + s (p^_h +- p^_g) / sqrt 2; b] gives head h's logit along p_g.
   Per head a weighted linear least-squares solve of d + m - 1 logits for the
   d entries of u_h(b): no Gauss-Newton, no joint refinement. A query whose
   |logit| exceeds ``RESCALE_LOGIT`` (its logit is imprecise) is asked again
   with its step scaled by LOGIT / |logit|, at most ``RESCALE_ROUNDS`` times
   (counted in ``options["conditioning"]["rescaled_queries"]``).
6. Phase ``W_low_rank`` (with ``rank`` r, r <= d - m): only b_0..b_r are full
   bases; u_h(b) lies in col [W_h | c_h], spanned by the r + 1 measured
   columns M = [u_h(b_0) .. u_h(b_r)] (all kept: a weak singular direction of
   a real W_h must not be read as noise); at every other base r + 2
   isolating queries per head (one more than the span's dimension, so that a
   larger rank leaves a residual) give its coordinates.
7. W_h = [u_h(b_j) - u_h(b_0)]_j B / scale, c_h = u_h(b_0) - W_h b_0.

Every muting and saturation margin is checked afterwards at the recovered
parameters (``options["conditioning"]["muting_margin_min"]``,
``"saturation_margin_min"``); a margin below ``MIN_MARGIN`` raises
RecoveryFailedError. The residuals of the answers of steps 5 and 6 against
the recovered model (in numpy ``longdouble``), as one 2-norm over all of
them, must be at most twice the 2-norm of the answers' noise estimates (an
aggregate test: one answer may exceed its own estimate, and measured on
clean models at H = 2 to 8 some do, by 170 to 3,300 times), else
RecoveryFailedError, or IllConditionedError
when m < H (heads that crossed the path together). The test is coarser than
the certificate: an oracle 1e-10 tanh(x_1 . a) off attention (seed 0,
H = 3, d = 12) passes it, and :func:`exactattn.certificates.verify` rejects
the recovery; a recovery is checked by the certificate, not by this test.

Error estimates (first order, computed per answer, named ``*_error_bound``):
the oracle's rounding, eta = gamma_{4d+16} sum_h sum_i alpha_ih |x_i|.|v_h| +
gamma_{2d} sum_h sum_i alpha_ih |c_ih - f_h| |x_i|.|u_h| (Higham's gamma_n,
the dot products' own bound, at the recovered parameters), plus 2u |f|,
plus the error of beta, plus v's error propagated to the answer (the
isolating queries see v only through it); then through the logit transform
and the per-head least squares, the rows' errors combined as independent
(root sum of squares of the pseudo-inverse times them). At a low-rank base
the span's own error adds |dM a| per entry (u_h(b) = M a, dM the columns'
estimates), and W_h = U_h B / scale combines its columns the same way.
These are estimates, not proved bounds: the status is ``float``; measured,
the largest is 4e3 to 9e5 times the largest actual error
(benchmarks/multihead_saturated.py; docs/multihead_saturated.md).

Query count (measured, and a formula given the adaptive parts). Steps 1
and 3 to 7 have fixed sizes once m, the isolate passes p and the rows asked
again at a smaller step (``options["conditioning"]["rescaled_queries"]``) are
known: 2 + p m (d - m + 1) + K_full + m (d + 1) + n_full K_full
+ n_low (1 + m (r + 2)) + the rows asked again, K_full = 1 + m (d - m + 1)
+ 2 m (m - 1) (the K_full after p m (d - m + 1) is step 3's full design at
b_1), with n_full = d + 1 and n_low = 0 without a rank, n_full = r + 1 and
n_low = d - r with it (:func:`saturated_query_count`; the claim's statement
prints the same sum); with no crossing (m = 0), 1 + the path + d +
2, the last d + 2 a check that unit-size queries all answer beta (a head the
path could not resolve is refused, never returned as no head). The path
(and any failed try, whole) is adaptive: its count is
``options["path"]["queries"]``; the tests assert that the total equals the
oracle's counter. Measured: 15,498 to 16,345 queries at
H = 8, d = 64, r = 8 (of which 3,837 to 4,225 the path), against the 8,705
degrees of freedom (docs/multihead_saturated.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import (
    HypothesisViolatedError,
    IllConditionedError,
    InvalidEntryError,
    RecoveryFailedError,
)
from ..fields import F64, UNIT_ROUNDOFF, Array, Field
from ..fields.float64 import higham_gamma
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .multihead import PAPER_REF
from .multihead_biased import LABEL, _beta_error, _spans, stack_biased_heads
from .multihead_float import _Base, _heads, _pack, _residual_extended
from .recovery import QuerySpan, Recovery

__all__ = ["learn_multihead_saturated", "saturated_query_count"]

U = UNIT_ROUNDOFF
#: default refusal threshold of the largest relative error estimate: the estimates (worst-case
#: rounding per answer, combined as independent errors) are 4e3 to 9e5 times the measured
#: errors (benchmarks/multihead_saturated.py), so 1e-4 refuses only what is ill-conditioned
MAX_RELATIVE_BOUND = 1e-4
#: the score gap of a saturated (or muted) head: e^-40 = 4.2e-18, below float64's 2^-53
SATURATION = 40.0
#: phase v's steps t B_i move a score by about this much (its tokens' gap is SATURATION + it)
V_STEP_LOGIT = 4.0
#: the least saturation or muting gap accepted at the recovered parameters (e^-36 = 2.3e-16)
MIN_MARGIN = 36.0
#: |p| / R and t / R of the path's probes and plateau measurements
PATH_STEP = 1e-3
#: two probes agree (saturated) when they differ by at most this, relative to the scalar's scale
SATURATION_TOLERANCE = 1e-7
#: the path's bisection stops at crossings this close (radians)
PATH_RESOLUTION = 1e-7
#: random angles of the scale search, and its steps (R grows 4-fold per step)
SEARCH_ANGLES = 16
MAX_SCALE_STEPS = 30
#: a probe that is not saturated is retried at 4 R and 16 R
SCALE_RETRIES = 2
#: the isolating queries are scaled so that head h's logits have about this size
LOGIT = 2.0
#: the hypothesis on the number of heads that muting needs
HEAD_ROOM = "2 m <= d (room in null(V^T) to mute m heads)"
#: tries of phases path, isolate and v (each on a new random plane) before refusing
PATH_TRIES = 3
#: phase v's v_h and the path's must agree this closely (relative), else the try failed
PATH_AGREEMENT = 1e-6
#: the most passes of phase isolate (each rescales a head's directions)
ISOLATE_PASSES = 4
#: a row whose |logit| exceeds this is asked again, its step scaled by LOGIT / |logit|
RESCALE_LOGIT = 8.0
#: the most times a row is asked again
RESCALE_ROUNDS = 2
#: the sign coefficients of the path (0 or -1) must be within this of an integer
SIGN_MARGIN = 0.1


def saturated_query_count(m: int, d: int, *, rank: int | None = None, path: int = 0,
                          isolate_passes: int = 1, rescaled: int = 0) -> int:
    """The query count of :func:`learn_multihead_saturated` for m heads, given the
    path's (adaptive) count ``path``, the passes of phase isolate and the rows asked again at
    a smaller step (``options["conditioning"]["rescaled_queries"]``; module docstring).

    >>> saturated_query_count(8, 64, rank=8, path=0)
    11204
    """
    if m == 0:
        return 1 + path + d + 2     # beta, the path, the zero check
    low = rank is not None and rank <= d - m
    n_full = (rank + 1) if low and rank is not None else d + 1
    n_low = d - rank if low and rank is not None else 0
    per_full = 1 + m * (d - m + 1) + 2 * m * (m - 1)
    fixed = 2 + isolate_passes * m * (d - m + 1) + per_full + m * (d + 1)
    per_low = 1 + m * ((rank or 0) + 2)
    return fixed + path + rescaled + n_full * per_full + n_low * per_low


class _TooManyHeadsError(RecoveryFailedError):
    """A path saw more crossings than heads (raised as RecoveryFailedError when every try
    saw it: the answers are not those of at most H heads)."""


@dataclass
class _Probe:
    theta: float
    R: float
    value: float       # y(theta, R) = (g(n + p) - g(n)) / |p|
    saturated: bool
    noise: float       # the rounding estimate of value


class _Path:
    """The path of phase ``path`` at base b (module docstring, step 2)."""

    def __init__(self, ask: Callable[[list[Array], str], Array], b: Array,
                 rng: np.random.Generator) -> None:
        d = b.size
        self.ask, self.b, self.d = ask, b, d
        # the plane of the path (at d = 1 a line: every head crosses at pi / 2, so only
        # one head can be separated) and the probes' direction p^ (any unit vector)
        Q = np.linalg.qr(rng.standard_normal((d, min(d, 2))))[0]
        self.a = Q[:, 0]
        self.a2 = Q[:, 1] if d >= 2 else np.zeros(d)
        p = rng.standard_normal(d)
        self.p = p / np.linalg.norm(p)
        self.queries = 0
        self.p_size: float | None = None
        self.scale_y = 0.0        # the scalar's scale, for the saturation tolerance

    def n(self, theta: float, R: float) -> Array:
        out: Array = R * (math.cos(theta) * self.a + math.sin(theta) * self.a2)
        return out

    def differences(self, pts: list[tuple[float, float]]) -> tuple[Array, Array]:
        """y = (g(n + p) - g(n)) / |p| at (theta, R) and its noise estimate, 2 queries per
        point; |p| = ``PATH_STEP`` R during the scale search, then fixed (``p_size``): a
        fixed p makes a probe near a crossing (where n and n + p see different heads)
        change with R, so that the saturation test refuses it."""
        Xs = []
        sizes = []
        for theta, R in pts:
            n = self.n(theta, R)
            size = PATH_STEP * R if self.p_size is None else self.p_size
            sizes.append(size)
            Xs.append(np.stack([self.b + n + size * self.p, self.b]))
            Xs.append(np.stack([self.b + n, self.b]))
        ys = self.ask(Xs, "path")
        self.queries += len(Xs)
        sz = np.array(sizes)
        vals = (ys[0::2] - ys[1::2]) / sz
        noise = 64 * U * (np.abs(ys[0::2]) + np.abs(ys[1::2])) / sz
        return vals, noise

    def probe(self, pts: list[tuple[float, float]]) -> list[_Probe]:
        """y at R and 2R for each point; saturated when they agree (4 queries a point)."""
        both = [q for theta, R in pts for q in ((theta, R), (theta, 2 * R))]
        vals, noise = self.differences(both)
        v1, v2 = vals[0::2], vals[1::2]
        # the scalar's scale: fixed from the grid's saturated plateaus once known (a probe
        # next to a crossing can be huge), the batch's median during the scale search
        scale_y = self.scale_y if self.scale_y > 0 else float(np.median(np.abs(v1)))
        tol = SATURATION_TOLERANCE * scale_y + noise[0::2] + noise[1::2]
        return [_Probe(theta, R, float(v1[i]), bool(abs(v1[i] - v2[i]) <= tol[i]),
                       float(noise[0::2][i]))
                for i, (theta, R) in enumerate(pts)]

    def probe_saturated(self, theta: float, R: float) -> _Probe:
        """A probe at theta, retried at 4 R and 16 R when not saturated."""
        pr = self.probe([(theta, R)])[0]
        for _ in range(SCALE_RETRIES):
            if pr.saturated:
                break
            pr = self.probe([(theta, pr.R * 4)])[0]
        return pr

    def z(self, theta: float, R: float, B: Array) -> Array:
        """z_S at n(theta, R): the affine fit g(n + t B_i) - g(n) = t B_i . z (d + 1 queries)."""
        n = self.n(theta, R)
        # the probes' own step (fixed once the scale is known): it kept this point saturated
        t = PATH_STEP * R if self.p_size is None else self.p_size
        Xs = [np.stack([self.b + n, self.b])] + [np.stack([self.b + n + t * B[i], self.b])
                                                  for i in range(self.d)]
        ys = self.ask(Xs, "path")
        self.queries += len(Xs)
        out: Array = B.T @ ((ys[1:] - ys[0]) / t)
        return out


def _same(a: _Probe, b: _Probe, path: _Path) -> bool:
    """Two saturated probes on one plateau: their scalars agree within 1e3 times the
    saturation tolerance, or within 4 times their rounding estimates (answers far larger
    than the probe's step, e.g. bases of a huge norm, leave only that)."""
    return abs(a.value - b.value) <= max(1e3 * SATURATION_TOLERANCE * path.scale_y,
                                         4 * (a.noise + b.noise))


def _bootstrap(path: _Path, H: int, B: Array, rng: np.random.Generator
               ) -> tuple[Array, dict[str, Any], float]:
    """Phase ``path``: V (d x m, first estimates), the report and the scale R1 at which
    three quarters of the search angles were saturated."""
    # the scale: R grows 4-fold until 3/4 of SEARCH_ANGLES random angles are saturated
    angles = list(rng.uniform(0, math.pi, SEARCH_ANGLES))
    R = 1e-3
    for _ in range(MAX_SCALE_STEPS):
        prs = path.probe([(t, R) for t in angles])
        if sum(p.saturated for p in prs) >= 0.75 * len(prs):
            break
        R *= 4
    else:
        raise IllConditionedError(
            f"phase path: the heads never saturate along the path (R up to {R:.3e}): a head "
            "with u_h(b) = W_h b + c_h = 0 at the base, or scores too small against the "
            "values' rounding", report={"R": R})
    R1 = R
    R_path = 4 * H * R1
    path.p_size = PATH_STEP * R1
    K = 16 * H + 16
    t0 = float(rng.uniform(0, math.pi))
    grid = path.probe([(t0 + math.pi * k / K, R_path) for k in range(K + 1)])
    for end in (0, K):
        if not grid[end].saturated:
            grid[end] = path.probe_saturated(grid[end].theta, R_path)
            if not grid[end].saturated:
                raise IllConditionedError(
                    "phase path: an end of the path is not saturated at 16 x its scale "
                    f"(theta = {grid[end].theta:.6f}, R = {grid[end].R:.3e})",
                    report={"R_path": R_path})
    sat = [p for p in grid if p.saturated]
    path.scale_y = max(abs(p.value) for p in sat)
    regions: list[tuple[_Probe, _Probe]] = []

    def bisect(lo: _Probe, hi: _Probe) -> None:
        """The crossings between two saturated probes of different plateaus: a saturated
        probe inside (the middle first, then the quarters and eighths: a probe next to
        another crossing is not saturated) splits the interval, down to PATH_RESOLUTION."""
        while hi.theta - lo.theta > PATH_RESOLUTION:
            mid = None
            for frac in (0.5, 0.25, 0.75, 0.125, 0.375, 0.625, 0.875):
                pr = path.probe_saturated(lo.theta + frac * (hi.theta - lo.theta), R_path)
                if pr.saturated:
                    mid = pr
                    break
            if mid is None:
                break      # no saturated probe inside: the region is [lo, hi]
            if len(regions) > H:
                break      # more crossings than heads already: refused below, no more work
            if _same(mid, lo, path):
                lo = mid
            elif _same(mid, hi, path):
                hi = mid
            else:
                bisect(lo, mid)
                lo = mid
        regions.append((lo, hi))

    for lo, hi in zip(sat, sat[1:], strict=False):
        if len(regions) > H:
            break          # more crossings than heads: refused below, no more probes
        if not _same(lo, hi, path):
            bisect(lo, hi)
    regions.sort(key=lambda r: r[0].theta)
    m = len(regions)
    report: dict[str, Any] = {"crossings": m, "R_search": R1, "R_path": R_path,
                              "grid_angles": K + 1,
                              "unsaturated_grid_points": K + 1 - len(sat)}
    if m == 0:
        # no crossing: f is beta alone only if the scalar is 0 everywhere (z_S = 0); a head
        # whose jumps drown in the answers' rounding (bases of a huge norm) must not read
        # as no head at all
        loud = [p for p in sat if abs(p.value) > 4 * p.noise]
        if loud:
            raise IllConditionedError(
                f"phase path: no crossing was resolved, yet the path's scalar is "
                f"{loud[0].value:.3e} (rounding estimate {loud[0].noise:.3e}) at theta = "
                f"{loud[0].theta:.6f}: heads are present whose changes drown in the answers' "
                "rounding; use bases of a smaller norm (scale)", report=report)
        report["queries"] = path.queries
        return np.zeros((path.d, 0)), report, R1
    if m > H:
        raise _TooManyHeadsError(
            f"phase path: {m} heads crossed the path, more than heads = {H}: not multi-head "
            f"attention with at most {H} heads")
    widths = [hi.theta - lo.theta for lo, hi in regions]
    gaps = [regions[k + 1][0].theta - regions[k][1].theta for k in range(m - 1)]
    # one point per plateau: the middle of the gap between consecutive crossings
    ends = [grid[0]] + [regions[k][1] for k in range(m)]
    nexts = [regions[k][0] for k in range(m)] + [grid[K]]
    zs, pts = [], []
    for lo, hi in zip(ends, nexts, strict=True):
        mid = path.probe_saturated(0.5 * (lo.theta + hi.theta), max(lo.R, hi.R))
        pt = mid if mid.saturated and (_same(mid, lo, path)) else lo
        z = path.z(pt.theta, pt.R, B)
        # the plateau's scalar must be p^ . z (the fit and the probe agree)
        if abs(float(path.p @ z) - pt.value) > 1e4 * SATURATION_TOLERANCE * \
                max(path.scale_y, abs(pt.value)):
            raise RecoveryFailedError(
                f"phase path: the plateau at theta = {pt.theta:.6f} is not affine (its scalar "
                f"{pt.value:.6e} against the fit's {float(path.p @ z):.6e}): not "
                "saturated softmax heads")
        zs.append(z)
        pts.append(pt)
    Z = np.stack(zs, axis=1)
    J = Z[:, 1:] - Z[:, :-1]
    sv = np.linalg.svd(J, compute_uv=False)
    report.update({"crossing_widths_max": max(widths), "gap_min": min(gaps, default=math.pi),
                   "jump_norms": [float(x) for x in np.linalg.norm(J, axis=0)],
                   "jump_condition": float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf,
                   # the head count's margin: the smallest change of the scalar across a
                   # crossing over the tolerance by which _same counts two plateaus as one
                   # (decades), at the plateaus' own probes
                   "head_count_margin_decades": min(math.log10(
                       max(abs(b_.value - a_.value), 1e-300)
                       / max(1e3 * SATURATION_TOLERANCE * path.scale_y, 4 * (a_.noise + b_.noise)))
                       for a_, b_ in zip(pts, pts[1:], strict=False))})
    if not sv[-1] > 1e-8 * sv[0]:
        raise HypothesisViolatedError(
            f"phase path: the {m} jumps v_h are linearly dependent (condition "
            f"{report['jump_condition']:.3e}); the learner needs independent v_h",
            hypothesis="linearly independent v_h")
    coef = np.linalg.lstsq(J, Z[:, 0], rcond=None)[0]
    off = np.abs(coef - np.round(coef))
    report["sign_margin"] = float(off.max())
    if off.max() > SIGN_MARGIN or np.any(np.round(coef) > 0) or np.any(np.round(coef) < -1):
        raise IllConditionedError(
            f"phase path: the first plateau is not a sum of the heads that leave (coefficients "
            f"{np.round(coef, 3).tolist()}, expected 0 or -1): two crossings too close to "
            "separate (nearly equal heads) or a head that is not saturated", report=report)
    signs = np.where(np.round(coef) < 0, -1.0, 1.0)
    report["queries"] = path.queries
    return J * signs[None, :], report, R1


# -- per-base measurement ----------------------------------------------------------------
def _isolating_rows(P: Array, N: Array, h: int) -> Array:
    """Head h's d - m + 1 unit isolating directions: p^_h and (p^_h + n_i) / sqrt 2 (p^_h is
    orthogonal to null(V^T)); they see head h's value only."""
    out: Array = np.concatenate([P[:, h:h + 1], (P[:, h:h + 1] + N) / math.sqrt(2)], axis=1).T
    return out


def _design(V: Array) -> tuple[Array, Array]:
    """P (d x m): p_h = (V^T)^+ e_h normalised; N (d x (d - m)): a basis of null(V^T)."""
    d, m = V.shape
    P = np.linalg.pinv(V.T)
    P = P / np.linalg.norm(P, axis=0)
    N = np.linalg.svd(V.T)[2][m:].T
    return P, N


def _eta(base: _Base, V: Array, Uj: Array, beta: float) -> tuple[Array, Array, Array]:
    """f (answers minus beta), df/dv (n, m, d) and the rounding estimate of each answer."""
    X = base.X
    a, c, fh = _heads(base, V, Uj)
    f = fh.sum(axis=1)
    Jv = np.einsum("nih,nid->nhd", a, X)
    d = X.shape[2]
    values = np.einsum("nih,nih->n", a, np.einsum("nid,dh->nih", np.abs(X), np.abs(V)))
    dev = np.abs(a * (c - fh[:, None, :]))
    scores = np.einsum("nih,nih->n", dev, np.einsum("nid,dh->nih", np.abs(X), np.abs(Uj)))
    eta = (higham_gamma(4 * d + 16) * values + higham_gamma(2 * d) * scores
           + 2 * U * np.abs(f + beta) + _beta_error(beta, d))
    return f, Jv, eta


def _answer_errors(base: _Base, V: Array, Uj: Array, bound_v: Array, beta: float) -> Array:
    """Each answer's error estimate at (V, Uj) (module docstring): the oracle's rounding,
    the error of beta, and v's estimates ``bound_v`` propagated through df/dv."""
    f, Jv, eta = _eta(base, V, Uj, 0.0)
    out: Array = eta + _beta_error(beta, V.shape[0]) + \
        np.abs(Jv.reshape(len(f), -1)) @ bound_v.T.reshape(-1)
    return out


def _logit_solve(rows: Array, values: Array, y: Array, err: Array, basis: Array | None
                 ) -> tuple[Array, Array, float]:
    """u (or its coordinates in ``basis``) from sigma(rows . u) values = y, weighted least
    squares on the logits; the first-order estimate (the pseudo-inverse applied to the
    logits' errors, combined as independent: root sum of squares), and the condition of
    the weighted system."""
    ell = _logits(y, values)
    q = 1 / (1 + np.exp(-ell))
    sig = err / (np.abs(values) * q * (1 - q))
    A = rows if basis is None else rows @ basis
    w = 1 / sig
    Aw = A * w[:, None]
    # one SVD (numpy) gives the solution, the pseudo-inverse's row norms and the condition
    Y, S, Zt = np.linalg.svd(Aw, full_matrices=False)
    if not S[-1] > S[0] * Aw.shape[0] * U:
        raise RecoveryFailedError(
            f"a head's logit system is singular (singular values {S[0]:.3e} .. {S[-1]:.3e}): "
            "the isolating directions do not determine u_h(b)")
    sol: Array = Zt.T @ ((Y.T @ (ell * w)) / S)
    # the rows' errors (each at most its sig, first order) combined as independent:
    # sqrt(pinv^2 @ (w sig)^2) = sqrt(pinv^2 @ 1), pinv = Z S^-1 Y^T, rows of Y^T orthonormal
    bound: Array = np.sqrt(((Zt.T / S) ** 2).sum(axis=1))
    return sol, bound, float(S[0] / S[-1])


@dataclass
class _BaseResult:
    U: Array          # (d, m) u_h(b), column h
    bound: Array      # (d, m) first-order estimates
    residual2: float
    noise2: float
    cond: float
    muting_margin: float
    rescaled: int     # rows asked again at a smaller step (their logit was too large)


def _ask_rows(ask: Callable[[list[Array], str], Array], b: Array, gb: float, fixed: Array,
              steps: Array, owners: Array, V: Array, phase: str
              ) -> tuple[Array, Array, Array, int]:
    """Ask [b + fixed_k + steps_k; b] and read head owners_k's logit from each answer; a row
    whose |logit| exceeds ``RESCALE_LOGIT`` (sigma' small: its logit is imprecise) is asked
    again with its step scaled by LOGIT / |logit| (the fixed part, a muting token with
    n . u_h = 0, stays), at most ``RESCALE_ROUNDS`` times. Returns every asked row (deltas),
    its answer minus gb, its owner, and the number of re-asked rows."""
    new = fixed + steps
    cur_steps, cur_fixed, cur_owner = steps, fixed, owners
    all_d, all_y, all_w = [], [], []
    extra = 0
    for round_ in range(RESCALE_ROUNDS + 1):
        if new.shape[0] == 0:
            break
        ys = ask([np.stack([b + delta, b]) for delta in new], phase) - gb
        all_d.append(new)
        all_y.append(ys)
        all_w.append(cur_owner)
        if round_ > 0:
            extra += new.shape[0]
        vals = np.einsum("kd,dk->k", new, V[:, cur_owner])
        ell = np.abs(_logits(ys, vals))
        bad = ell > RESCALE_LOGIT
        if round_ == RESCALE_ROUNDS or not bad.any():
            break
        cur_steps = cur_steps[bad] * (LOGIT / ell[bad])[:, None]
        cur_fixed, cur_owner = cur_fixed[bad], cur_owner[bad]
        new = cur_fixed + cur_steps
    deltas = np.concatenate(all_d) if all_d else np.zeros((0, b.size))
    ys = np.concatenate(all_y) if all_y else np.zeros(0)
    who = np.concatenate(all_w) if all_w else np.zeros(0, dtype=int)
    return deltas, ys, who, extra


def _solve_base(b: Array, gb: float, V: Array, bound_v: Array, beta: float, rows: Array,
                y: Array, who: Array, Uj: Array, bases: list[Array] | None,
                span_err: list[tuple[Array, Array]] | None
                ) -> tuple[Array, Array, float, float, float]:
    """Per head the weighted logit solve (twice: the second with the noise model at the
    first solution), u_h(b) = C_h z when ``bases`` C_h are given; the estimates, the
    condition, and the squared residual (extended precision) and noise estimate of the
    base's answers at the solution."""
    d, m = V.shape
    base = _pack([np.stack([b + delta, b]) for delta in rows], list(y + gb))
    bound = np.zeros((d, m))
    cond = 0.0
    for _ in range(2):
        err = _answer_errors(base, V, Uj, bound_v, beta)
        for h in range(m):
            sel = who == h
            C = None if bases is None else bases[h]
            sol, bz, c = _logit_solve(rows[sel], rows[sel] @ V[:, h], y[sel], err[sel], C)
            if C is None:
                Uj[:, h], bound[:, h] = sol, bz
            else:
                assert span_err is not None
                Uj[:, h] = C @ sol
                # the span's error: C spans the r + 1 measured columns M^ = M + dM exactly,
                # and u_h(b) = M a, so u_h(b) leaves col C by (I - C C^T) dM a: at most
                # |dM a| per entry, a = M^+ u_h(b) (first order; the columns' estimates
                # combined as independent errors, as everywhere here)
                pinv_M, bM = span_err[h]
                a = pinv_M @ Uj[:, h]
                bound[:, h] = np.sqrt(C ** 2 @ bz ** 2) + np.sqrt(bM ** 2 @ a ** 2)
            cond = max(cond, c)
    res = _residual_extended(base, V, Uj)
    err = _answer_errors(base, V, Uj, bound_v, beta)
    return Uj, bound, cond, float((res ** 2).sum()), float((err ** 2).sum())


def _full_base(ask: Callable[[list[Array], str], Array], b: Array, V: Array, bound_v: Array,
               P: Array, N: Array, s: Array, u_scale: Array, beta: float, phase: str
               ) -> _BaseResult:
    """Phase ``W`` at one base: isolating, then muting queries; per-head logit solves."""
    d, m = V.shape
    gb = float(ask([b[None, :]], phase)[0])
    # isolating queries: head h's value only (p^_h . v_g = 0 for g != h, N . v_g = 0)
    iso = np.concatenate([_isolating_rows(P, N, h) * s[h] for h in range(m)])
    k = d - m + 1
    owners = np.repeat(np.arange(m), k)
    rows_i, y_i, who_i, extra = _ask_rows(ask, b, gb, np.zeros_like(iso), iso, owners, V,
                                          phase)
    Ut = np.zeros((d, m))
    for h in range(m):
        sel = who_i == h
        Ut[:, h] = np.linalg.lstsq(rows_i[sel], _logits(y_i[sel], rows_i[sel] @ V[:, h]),
                                   rcond=None)[0]
    # muting queries: n_h in null(V^T) with n_h . u_g = -gap_g (g != h), n_h . u_h = 0
    NtU = N.T @ Ut                          # (d - m, m): exact from the isolating queries
    # |delta' . u_g| <= s_h |u_g| for the step delta' = s_h (p^_h +- p^_g) / sqrt 2; |u_g| at
    # this base is not known yet (Ut lacks the components along the other p^): 3 x the
    # larger of |u_g(b_1)| and |Ut_g|, checked afterwards (muting_margin_min)
    reach = 3 * np.maximum(u_scale, np.linalg.norm(Ut, axis=0))
    fixed, steps, owner = [], [], []
    for h in range(m):
        target = np.array([0.0 if g == h else -(SATURATION + s[h] * reach[g])
                           for g in range(m)])
        n_h = N @ np.linalg.lstsq(NtU.T, target, rcond=None)[0]
        for g in range(m):
            if g != h:
                for sign in (1.0, -1.0):
                    fixed.append(n_h)
                    steps.append(s[h] * (P[:, h] + sign * P[:, g]) / math.sqrt(2))
                    owner.append(h)
    rows_m, y_m, who_m, extra_m = _ask_rows(
        ask, b, gb, np.array(fixed).reshape(-1, d), np.array(steps).reshape(-1, d),
        np.array(owner, dtype=int), V, phase)
    rows = np.concatenate([rows_i, rows_m])
    who = np.concatenate([who_i, who_m])
    y = np.concatenate([y_i, y_m])
    Uj, bound, cond, res2, noise2 = _solve_base(b, gb, V, bound_v, beta, rows, y, who,
                                                Ut.copy(), None, None)
    return _BaseResult(Uj, bound, res2, noise2, cond, _muting_margin(rows_m, who_m, Uj),
                       extra + extra_m)


def _logits(y: Array, values: Array) -> Array:
    q = np.clip(y / values, 1e-15, 1 - 1e-15)
    out: Array = np.log(q / (1 - q))
    return out


def _muting_margin(rows: Array, who: Array, Uj: Array) -> float:
    """The least gap -delta . u_g over the muting queries (rows, owner head ``who``) and
    their muted heads g != who (inf if there are none)."""
    m = Uj.shape[1]
    if m < 2 or rows.shape[0] == 0:
        return math.inf
    scores = rows @ Uj                       # (n, m)
    scores[np.arange(rows.shape[0]), who] = -math.inf
    return float(-scores.max(axis=1).max())


def _low_base(ask: Callable[[list[Array], str], Array], b: Array, V: Array, bound_v: Array,
              spans: list[Array], span_err: list[tuple[Array, Array]], dirs: list[Array],
              beta: float) -> _BaseResult:
    """Phase ``W_low_rank`` at one base: r + 2 isolating queries per head, u_h(b) = C_h z."""
    d, m = V.shape
    gb = float(ask([b[None, :]], "W_low_rank")[0])
    steps = np.concatenate(dirs)
    owners = np.repeat(np.arange(m), dirs[0].shape[0])
    rows, y, who, extra = _ask_rows(ask, b, gb, np.zeros_like(steps), steps, owners, V,
                                    "W_low_rank")
    Uj = np.zeros((d, m))
    for h in range(m):
        sel = who == h
        z = np.linalg.lstsq(rows[sel] @ spans[h], _logits(y[sel], rows[sel] @ V[:, h]),
                            rcond=None)[0]
        Uj[:, h] = spans[h] @ z
    Uj, bound, cond, res2, noise2 = _solve_base(b, gb, V, bound_v, beta, rows, y, who, Uj,
                                                spans, span_err)
    return _BaseResult(Uj, bound, res2, noise2, cond, math.inf, extra)


def _isolate_first(ask: Callable[[list[Array], str], Array], b: Array, gb: float, V: Array,
                   P: Array, N: Array, s0: float) -> tuple[Array, int]:
    """Phase ``isolate``: first estimates of u_h(b) restricted to span(p^_h) + null(V^T)
    (min-norm least squares), the scale s_h of head h's directions adjusted until the
    median |logit| lies in [LOGIT / 4, 4 LOGIT] (at most ``ISOLATE_PASSES`` passes of
    m (d - m + 1) queries); returns the estimates and the number of passes."""
    d, m = V.shape
    k = d - m + 1
    s = np.full(m, s0)
    Ut = np.zeros((d, m))
    for passes in range(1, ISOLATE_PASSES + 1):
        iso = [_isolating_rows(P, N, h) * s[h] for h in range(m)]
        ys = ask([np.stack([b + delta, b]) for h in range(m) for delta in iso[h]],
                 "isolate") - gb
        ok = True
        for h in range(m):
            ell = _logits(ys[h * k:(h + 1) * k], iso[h] @ V[:, h])
            Ut[:, h] = np.linalg.lstsq(iso[h], ell, rcond=None)[0]
            med = float(np.median(np.abs(ell)))
            if not LOGIT / 4 <= med <= 4 * LOGIT:
                ok = False
                s[h] *= LOGIT / max(med, 1e-3)
        if ok:
            return Ut, passes
    return Ut, ISOLATE_PASSES


def _measure_v(ask: Callable[[list[Array], str], Array], b: Array, V: Array,
               N: Array, Ut: Array, beta: float
               ) -> tuple[Array, Array, list[Array]]:
    """Phase ``v``: v_h from the saturated tokens n (only head h attends to them), the
    first-order estimates, and per head the tokens' deltas (to check the saturation gaps
    at the recovered parameters)."""
    d, m = V.shape
    NtU = N.T @ Ut
    Vn = np.zeros((d, m))
    bv = np.zeros((d, m))
    deltas = []
    gap = SATURATION + V_STEP_LOGIT
    # t: the steps t e_i move every score by about V_STEP_LOGIT at most
    t = V_STEP_LOGIT / max(float(np.abs(Ut).max()), 1e-300)
    for h in range(m):
        target = np.array([gap if g == h else -gap for g in range(m)])
        n = N @ np.linalg.lstsq(NtU.T, target, rcond=None)[0]
        Xs = [np.stack([b + n, b])] + [np.stack([b + n + t * e, b]) for e in np.eye(d)]
        ys = ask(Xs, "v")
        Vn[:, h] = (ys[1:] - ys[0]) / t
        base = _pack(Xs, list(ys))
        V2 = V.copy()
        V2[:, h] = Vn[:, h]
        _, _, eta = _eta(base, V2, Ut, beta)
        # per coordinate i: two answers' errors over t, and head h's own weight 1 - e^-gap
        bv[:, h] = (eta[1:] + eta[0]) / t + math.exp(-MIN_MARGIN) * np.abs(Vn[:, h])
        deltas.append(np.stack([n] + [n + t * e for e in np.eye(d)]))
    return Vn, bv, deltas


def _saturation_gap(deltas: list[Array], Uj: Array) -> float:
    """The least gap of phase v's tokens at u(b_1) = Uj: head h's score above 0, the
    others' below 0."""
    out = math.inf
    for h, D in enumerate(deltas):
        scores = D @ Uj
        out = min(out, float(scores[:, h].min()))
        if Uj.shape[1] > 1:
            out = min(out, float(-np.delete(scores, h, axis=1).max()))
    return out


_First = tuple[Array, dict[str, Any], Array, Array, Array, Array, Array, list[Array]]


def _first_try(ask: Callable[[list[Array], str], Array], b1: Array, H: int, d: int,
               B: Array, beta: float, rng: np.random.Generator) -> _First | None:
    """One try of phases path, isolate and v at b_1 on a new plane: (V0, the path's
    report, V, its estimates, u(b_1) with V0, the scales s_h, |u_h|), or None when the
    try's checks fail (phase v's V differs from the path's by more than PATH_AGREEMENT,
    or phase v's tokens have gaps below MIN_MARGIN at u(b_1)); a path that sees two heads
    cross together reads them as one jump, and this is how that shows."""
    path = _Path(ask, b1, rng)
    V0, path_report, R1 = _bootstrap(path, H, B, rng)
    m = V0.shape[1]
    if m == 0:
        path_report["isolate_passes"] = 0
        empty = np.zeros((d, 0))
        return V0, path_report, empty, empty, empty, np.zeros(0), np.zeros(0), []
    if 2 * m > d:
        raise HypothesisViolatedError(
            f"the path found m = {m} heads at d = {d}: muting needs tokens in null(V^T) (of "
            f"dimension d - m = {d - m}) that give {m} heads prescribed scores, so 2 m <= d; "
            "use learn_multihead_float or learn_multihead_biased (copy families) for so many "
            "heads in so few dimensions", hypothesis=HEAD_ROOM)
    # phase isolate at b_1 with the path's V (first estimates of u_h(b_1))
    P, N = _design(V0)
    gb1 = float(ask([b1[None, :]], "isolate")[0])
    Ut, passes = _isolate_first(ask, b1, gb1, V0, P, N, R1 / 8)
    path_report["isolate_passes"] = passes
    u_scale = np.linalg.norm(Ut, axis=0)
    s = LOGIT * math.sqrt(d) / np.maximum(u_scale, 1e-300)
    # the whole u_h(b_1) with the path's V (phase W's design at b_1, asked as "isolate"),
    # so that phase v's tokens have the gaps they are built for
    at_b1 = _full_base(ask, b1, V0, np.zeros_like(V0), P, N, s, u_scale, beta, "isolate")
    Ut = at_b1.U
    path_report["isolate_rescaled"] = at_b1.rescaled
    u_scale = np.linalg.norm(Ut, axis=0)
    s = LOGIT * math.sqrt(d) / np.maximum(u_scale, 1e-300)
    # phase v: v_h to float64 precision from saturated tokens
    V, bound_v, v_deltas = _measure_v(ask, b1, V0, N, Ut, beta)
    change = float(np.abs(V - V0).max() / np.abs(V).max())
    path_report["v_change_from_path"] = change
    if not change <= PATH_AGREEMENT or _saturation_gap(v_deltas, Ut) < MIN_MARGIN:
        return None
    return V0, path_report, V, bound_v, Ut, s, u_scale, v_deltas


@checked_arguments(counts={"heads": (1, 1024)})
def learn_multihead_saturated(
    oracle: ValueOracle,
    *,
    heads: int,
    rank: int | None = None,
    field: Field | None = None,
    seed: int = 0,
    scale: float = 1.0,
    max_relative_bound: float = MAX_RELATIVE_BOUND,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """Recover canonical biased heads (W_h, c_h, v_h) and beta, heads told apart by saturation.

    The steps, the estimates and the query count are in the module docstring.

    Parameters
    ----------
    oracle : value oracle over F64.
    heads : H, an upper bound on the number of canonical heads.
    rank : r, a bound on rank(W_h) (a hypothesis); used when r <= d - m.
    seed : seed of the bases and directions.
    scale : the norm of the bases' steps (a real layer's small W wants 4 or more).
    max_relative_bound : refuse (IllConditionedError) when an estimate, relative to the
        largest entry of its head's W, c or v, exceeds this.
    progress : called as ``progress(done, total)`` after each base.

    Returns
    -------
    Recovery over F64, status ``float``, params as
    :func:`~exactattn.learners.learn_multihead_biased` (head first, sorted by (W_h, c_h)).

    Raises
    ------
    InvalidEntryError : not an F64 oracle, or a bad argument (before any query).
    IllConditionedError : the heads do not saturate, two crossings cannot be separated,
        or an estimate exceeds ``max_relative_bound``.
    HypothesisViolatedError : dependent v_h.
    RecoveryFailedError : the answers are not those of <= H biased heads in float64 (a
        misfit, a muting or saturation gap below ``MIN_MARGIN``, more than H heads).
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    if F != F64:
        raise InvalidEntryError(
            f"learn_multihead_saturated runs over F64, not {F.name} (a float64 oracle)")
    for name, val in (("max_relative_bound", max_relative_bound), ("scale", scale)):
        ok = isinstance(val, int | float) and not isinstance(val, bool) and val > 0
        try:
            ok = ok and math.isfinite(float(val)) and float(val) > 0
        except OverflowError:       # an int beyond float64
            ok = False
        if not ok:
            raise InvalidEntryError(f"{name} must be a positive finite number (as a float64), "
                                    f"got {str(val)[:40]}")
    H, d = heads, oracle.d
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)
                             or not 1 <= rank <= d):
        raise InvalidEntryError(f"rank must be an integer in [1, d = {d}], got {rank!r}")
    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng([seed, d, H, 16])
    B = np.linalg.qr(rng.standard_normal((d, d)))[0]
    w = np.linalg.qr(rng.standard_normal((d, 1)))[0][:, 0]
    b0 = scale * w

    beta = float(oracle.batch([np.zeros((1, d))], phase="beta")[0])

    def ask(Xs: list[Array], phase: str) -> Array:
        return np.asarray(oracle.batch(Xs, phase=phase), dtype=np.float64) - beta

    b1 = b0 + scale * B[0]
    # phases path, isolate and v, on a new random plane when a try fails its checks
    failures: list[str] = []
    spent = 0
    too_many = 0        # tries whose path saw more crossings than heads
    for _ in range(PATH_TRIES):
        before = oracle.queries
        try:
            first = _first_try(ask, b1, H, d, B, beta, rng)
        except (RecoveryFailedError, HypothesisViolatedError) as exc:
            if isinstance(exc, HypothesisViolatedError) and exc.hypothesis == HEAD_ROOM:
                raise
            failures.append(str(exc)[:200])
            too_many += isinstance(exc, _TooManyHeadsError)
            spent += oracle.queries - before
            continue
        if first is not None:
            break
        failures.append("the path's jumps are not single heads (phase v disagrees with them, "
                        "or its tokens' gaps are short)")
        spent += oracle.queries - before
    else:
        if too_many == PATH_TRIES:
            raise RecoveryFailedError(
                f"every path of {PATH_TRIES} saw more crossings than heads = {H}: not "
                f"multi-head attention with at most {H} heads ({failures})")
        raise IllConditionedError(
            f"no path of {PATH_TRIES} separated the heads: {failures}. Two heads cross "
            "every plane almost together (nearly equal or proportional (W_h, c_h)), or a "
            "head is too weak to saturate", report={"failures": failures})
    V0, path_report, V, bound_v, Ut, s, u_scale, v_deltas = first
    path_report["queries"] += spent
    path_report["failed_tries"] = failures
    m = V0.shape[1]
    conds: dict[str, Any] = {"path": path_report}
    if m == 0:
        # f = beta, or heads the path could not see: d + 2 queries of unit-size tokens (one
        # token e_i: beta + e_i . sum_h v_h; two random tokens) must all answer beta
        probe_rng = np.random.default_rng([seed, d, 17])
        Xs = [np.eye(d)[i][None, :] for i in range(d)] + [
            probe_rng.standard_normal((2, d)) / math.sqrt(d) for _ in range(2)]
        off = np.abs(ask(Xs, "zero_check"))
        tol = 64 * higham_gamma(4 * d + 16) * max(1.0, abs(beta))
        conds["zero_check_max"] = float(off.max())
        if off.max() > tol:
            raise IllConditionedError(
                f"the path saw no head, yet a unit-size query answers beta + {off.max():.3e} "
                f"(rounding allows {tol:.1e}): heads are present that the path could not "
                "resolve (scores or values drowned in the rounding of answers at this scale); "
                "use bases of a smaller norm (scale)", report=conds)
        return _result(span, F, d, seed, H, rank, scale, beta, [], [], [], [], [], [],
                       conds, 0.0, 0.0, False, max_relative_bound, path_report)
    low = rank is not None and rank <= d - m
    full_steps = list(range(1, (rank + 1) if low and rank is not None else d + 1))
    conds["v_change_from_path"] = path_report.pop("v_change_from_path")
    P, N = _design(V)
    bases = {0: b0, **{j: b0 + scale * B[j - 1] for j in range(1, d + 1)}}
    full_idx = [0] + full_steps
    u_of: dict[int, Array] = {}
    bu_of: dict[int, Array] = {}
    residual2 = noise2 = 0.0
    cond_full = 0.0
    muting = math.inf
    rescaled = path_report["isolate_rescaled"]
    total = d + 1
    for count, j in enumerate(full_idx):
        r_ = _full_base(ask, bases[j], V, bound_v, P, N, s, u_scale, beta, "W")
        u_of[j], bu_of[j] = r_.U, r_.bound
        residual2 += r_.residual2
        noise2 += r_.noise2
        cond_full = max(cond_full, r_.cond)
        muting = min(muting, r_.muting_margin)
        rescaled += r_.rescaled
        if progress is not None:
            progress(count + 1, total)
    sat_gap = _saturation_gap(v_deltas, u_of[1])
    conds.update({"cond_full_max": cond_full, "muting_margin_min": muting,
                  "saturation_margin_min": sat_gap})
    if low:
        assert rank is not None
        # the span's error estimate (Wedin) at the dimension the singular values show;
        # the basis kept is all r + 1 directions: a direction of noise kept costs one
        # unknown, a direction of the span dropped (a small singular value of a real W_h
        # read as noise) would leave a residual at every low-rank base
        shown, span_err, span_margin = _spans(u_of, bu_of, full_idx, m)
        Ms = [np.stack([u_of[j][:, h] for j in full_idx], axis=1) for h in range(m)]
        spans = [np.linalg.svd(M, full_matrices=False)[0] for M in Ms]
        # per head M^+ and the columns' estimates: the span's error at each low base
        span_terms = [(np.linalg.pinv(Ms[h]),
                       np.stack([bu_of[j][:, h] for j in full_idx], axis=1)) for h in range(m)]
        conds["span_perturbation_max"] = max(span_err)
        conds["span_dimensions_shown"] = [int(C.shape[1]) for C in shown]
        conds["span_margin_decades"] = min(span_margin)
        dirs = []
        for h in range(m):
            # r + 2 directions in span(p^_h) + null(V^T), spread over the span's dual
            Pc = N @ (N.T @ spans[h])
            Pc = Pc / np.maximum(np.linalg.norm(Pc, axis=0), 1e-300)
            mix = np.concatenate([np.eye(Pc.shape[1]), rng.standard_normal(
                (rank + 2 - Pc.shape[1], Pc.shape[1])) / math.sqrt(Pc.shape[1])])
            D = np.stack([P[:, h] + Pc @ mix[i] for i in range(rank + 2)])
            D = D / np.linalg.norm(D, axis=1, keepdims=True)
            dirs.append(D * (LOGIT * math.sqrt(rank + 1) / max(u_scale[h], 1e-300)))
        cond_low = 0.0
        for count, j in enumerate(range(rank + 1, d + 1)):
            r_ = _low_base(ask, bases[j], V, bound_v, spans, span_terms, dirs, beta)
            u_of[j], bu_of[j] = r_.U, r_.bound
            residual2 += r_.residual2
            noise2 += r_.noise2
            cond_low = max(cond_low, r_.cond)
            rescaled += r_.rescaled
            if progress is not None:
                progress(len(full_idx) + count + 1, total)
        conds["cond_low_rank_max"] = cond_low
    conds["rescaled_queries"] = rescaled
    for name, gap in (("saturation", sat_gap), ("muting", muting)):
        if gap < MIN_MARGIN:
            raise RecoveryFailedError(
                f"the {name} gap at the recovered parameters is {gap:.2f} < {MIN_MARGIN}: a "
                "head meant to be silent was not (the first estimates were too far off), so "
                f"the answers do not isolate one head (conditioning {conds})")
    Ws, cs, vs, bW, bc, bv = [], [], [], [], [], []
    for h in range(m):
        u0, e0 = u_of[0][:, h], bu_of[0][:, h]
        Uh = np.stack([u_of[j][:, h] for j in range(1, d + 1)], axis=1) - u0[:, None]
        bUh = np.stack([bu_of[j][:, h] for j in range(1, d + 1)], axis=1) + e0[:, None]
        W = Uh @ B / scale
        eW = np.sqrt(bUh ** 2 @ B ** 2) / scale + 2 * U * np.abs(W)
        c = u0 - W @ b0
        Ws.append(W)
        bW.append(eW)
        cs.append(c)
        bc.append(e0 + np.sqrt(eW ** 2 @ b0 ** 2) + 2 * U * np.abs(c))
        vs.append(V[:, h])
        bv.append(bound_v[:, h] + 2 * U * np.abs(V[:, h]))
    return _result(span, F, d, seed, H, rank, scale, beta, Ws, cs, vs, bW, bc, bv, conds,
                   math.sqrt(residual2), math.sqrt(noise2), low, max_relative_bound,
                   path_report)


def _result(span: QuerySpan, F: Field, d: int, seed: int, H: int, rank: int | None,
            scale: float, beta: float, Ws: list[Array], cs: list[Array], vs: list[Array],
            bW: list[Array], bc: list[Array], bv: list[Array], conds: dict[str, Any],
            residual: float, noise: float, low: bool, max_relative_bound: float,
            path_report: dict[str, Any]) -> Recovery:
    m = len(Ws)
    recovered, rel = stack_biased_heads(Ws, cs, vs, bW, bc, bv, d, beta)
    report = dict(conds)
    report.update({"relative_bound_per_head": rel, "max_relative_bound": max(rel, default=0.0)})
    if m and residual > 2 * noise:
        text = (f"the {m}-head biased model leaves a residual ||y - f_hat||_2 = {residual:.3e} "
                f"> 2 x the answers' noise estimate {noise:.3e}: the answers are not those of "
                f"{m} canonical biased heads"
                + (f" with rank [W_h | c_h] <= r + 1 = {rank + 1}" if low and rank else "")
                + " in float64")
        if m < H:
            raise IllConditionedError(
                text + f" (of at most H = {H}): heads whose score vectors u_h(b_1) are nearly "
                "parallel cross the path together and read as one (nearly equal heads, or "
                "heads with proportional (W_h, c_h)); they are not separable by saturation",
                report={**report, "residual": residual, "noise_bound": noise})
        raise RecoveryFailedError(text)
    if m and report["max_relative_bound"] > max_relative_bound:
        raise IllConditionedError(
            f"the recovery is ill-conditioned: first-order relative error estimate "
            f"{report['max_relative_bound']:.3e} > {max_relative_bound:.1e} (per head "
            f"{[f'{x:.1e}' for x in rel]}). Pass a larger max_relative_bound to accept these "
            "estimates", report=report, recovered=recovered)
    hypotheses = [f"f has at most H = {H} canonical heads, 2 m <= d, with linearly "
                  "independent v_h and u_h(b_1) != 0 for every head (the path sees each "
                  "head cross once)",
                  # measured: a third head with v_3 = 1e-11 v of seed 0 (H = 3, d = 12) is
                  # returned as m = 2, its share of the answers within the residual test
                  "every head's share of the answers exceeds their noise estimate: a head "
                  "within it is not counted in m, and the residual test cannot see it"]
    if low:
        hypotheses.append(f"rank [W_h | c_h] <= r + 1 = {(rank or 0) + 1} for every head "
                          f"(implied by rank(W_h) <= r = {rank})")
    hypotheses.append("the oracle evaluates f in float64 by the usual formula (rounding model "
                      "of the error estimates); the estimates are first order, not proved "
                      "bounds")
    report = {k: (None if isinstance(x, float) and math.isinf(x) else x)
              for k, x in report.items()}
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=F, params=recovered, seed=seed,
        options={"m": m, "plan": "saturated" if m else "none", "heads": H, "rank": rank,
                 "scale": scale, "low_rank": low, "route": "float64",
                 "path": dict(path_report), "conditioning": report,
                 "residual": residual, "noise_bound": noise,
                 "answer_error_factor": higham_gamma(4 * d + 16)},
        hypotheses=tuple(hypotheses))
