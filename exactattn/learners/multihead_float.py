"""Canonical multi-head attention from a float64 oracle, with first-order error estimates.

Label ``multihead_canonical`` (float variant; exactattn's own, cf. arXiv
2608.03294). The exact learner (:mod:`exactattn.learners.multihead`) decides
everything with ``==`` in EXP. A real oracle answers in float64, and there the
exact learner's copy families (c = 1..2H copies) are hopelessly
ill-conditioned beyond H = 3: the Loewner matrix of six real poles sampled at
c = 0..12 has sigma_6 / sigma_1 ~ 1e-16 (measured). This learner keeps the
structure and changes what float64 needs changed.

Model. f(X) = sum_h alpha(X, W_h)^T X v_h; only the canonical heads (equal W
merged, zero v dropped) are identifiable. Bases b_1..b_d are the rows of a
random orthogonal B; u_hj = W_h b_j, so W_h = U_h B.

Steps
-----
1. Phase ``v`` (base b_1): f([b_1]) and, for each of ``f d`` candidate
   directions delta (f = ``families_per_dimension``), the copy family
   [b_1 + delta (c copies); b_1 (K copies)] at 2H ratios r = c / K
   log-spaced in e^[-4, 4] (:func:`ratio_grid`, c, K <= 64):
   g(r) = S - sum_h rho_h / (1 + r t_h). **Head count**: k(r) =
   (g(r) - g(0)) / r = sum_h rho_h / (r + 1/t_h) is strictly proper of
   McMillan degree m, so its Loewner matrix has rank m (Mayo and Antoulas
   2007). Per family, the rank is the number of singular values above the
   noise level tau (an estimate: the answers' rounding estimate propagated
   to L, below); its margin is min(sigma_k / tau, tau / sigma_{k+1}) in
   decades. In exact arithmetic a family never shows more heads than there
   are; in float64 only the margin guards that (tau is not a proved bound),
   so m = the largest rank decided by ``MIN_MARGIN`` decades; the d
   families of rank m with the best margins and independent directions are
   used (IllConditionedError if there are not d). Per family: poles from
   the compressed Loewner pencil (numpy ``svd``, ``eigvals``), residues by
   ``lstsq``, Gauss-Newton on (l_h, rho_h, S).
2. Phase ``match`` (m >= 2): one query [b_1 + delta_1; b_1 + delta_k; b_1]
   per k >= 2 picks the pairing of heads with the smallest residual (the
   ratio of the second smallest to it is ``match_margin``). Then v_h and u_h1.
3. Phase ``W`` (bases b_2..b_d): with p_h = (V^T)^+ e_h (sees head h only)
   and an orthonormal basis n_i of the null space of V^T (sees no head):
   d - m + 1 isolating two-token queries per head (a logit each, as in
   ``single_head_exact``) and, per pair of heads, a copy family of two poles
   with known residues along alpha p_h + beta p_g (+ null part), 3 ratios,
   P = ``pair_directions`` of them per pair:
   K_W = m (d - m + 1) + 3 P m (m - 1) / 2 queries per base.
4. Phase ``refine`` (base b_1): the phase-W design at the scales
   ``REFINE_SCALES`` = (1, 2). Off the estimate, an isolating query sees the
   other heads' leaks delta . v_g, differently at each scale: this pins v
   down where the copy families alone are ill-conditioned (measured on
   H = 3, d = 8: condition of the projected v system 1.5e5 -> 6e2).
5. Damped Gauss-Newton on all m (d^2 + d) parameters (v and every u_.j)
   against all answers. A query at base b_j depends on v and u_.j only, so
   each step eliminates u_.j by a QR per base and solves for v in the
   projected system (variable projection); numpy ``qr`` and ``lstsq``. Each
   answer is weighted by 1 / eta (its rounding estimate, below), and the
   residuals y - f_hat are evaluated in numpy ``longdouble`` (64-bit
   significand on x86-64): the answers are exact binary64 numbers and only
   the oracle's rounding is noise, so a float64 evaluation of f_hat would add
   a second noise as large (measured at H = 6, d = 8: error 2^-44.8 ->
   2^-47.3 from the extended residual, and a seed at 2^-43.9 -> 2^-46.3 from
   the weights).
   Phase ``polish`` (option ``polish_queries`` = n, default 0): n random
   two-token queries [b_j + delta_k; b_j], delta_k ~ N(0, s_k^2 I) with s_k =
   ``POLISH_LOGIT`` / ||u_hj||, h = k mod m (first estimates: the logit of
   head h has standard deviation ``POLISH_LOGIT`` = 3 in its share of the
   queries, whatever the scale of each W_h), at each base b_2..b_d, for this
   step only. Diagnosis at H = 6, d = 8: the
   error was in W (1e-12; v 3e-14), from the W blocks of bases b_2..b_d,
   condition up to 3e3 (isolating and pair queries have logits of order 1),
   while b_1's block, with its copy families, had condition 38; the
   first-order map L applied to the measured answer errors predicted the
   measured error within a factor 3. Random directions with logits of
   standard deviation 3 bring the blocks to condition about 50 (64 queries
   per base; measured over seeds 0 to 9: error 2^-48.2 to 2^-49.1, against
   2^-46.3 to 2^-47.5 at standard deviation about 1, failures of the
   Gauss-Newton at 7, and one seed at 2^-38.4 when one s for all heads was
   set by the largest ||u_hj||).

Error estimates (first order, computed; named ``*_error_bound`` in the
params). Rounding model: IEEE binary64, unit roundoff u = 2^-53, Higham's
gamma_n = n u / (1 - n u); if the oracle evaluates f by the usual formula,
an answer is off by at most
eta = gamma_{4d+16} sum_h sum_i alpha_ih |x_i . v_h| (values and weights)
+ gamma_{2d} sum_h sum_i alpha_ih |c_ih - f_h| |x_i|^T |u_hj| (scores),
here evaluated at the recovered parameters, not the hidden ones (so eta is
itself an estimate). The learner's own residual adds 2^-11 eta (extended
precision; eta again where longdouble is binary64): ``OWN_ROUNDING`` eta per
answer. To first order the polished parameters are a linear image of the
answer errors, theta_hat - theta = L e (L from the weighted projected solves;
any positive weights give a valid L), so entry p is estimated by
sum_q |L_pq| OWN_ROUNDING eta_q, plus 2u |p|; W_h = U_h B adds
|.| |B| (triangle inequality). These are first-order estimates of the float
error, not proofs (the second-order terms are dropped); the status is
``float``. The residual ||y - f_hat||_2 must be at most twice the norm of
the noise estimate, else the answers are not those of m heads in float64
(for example two nearly equal heads read as one) and the learner refuses:
IllConditionedError with the measured residual, noise and head-count margin
when m < H (room for heads the families did not separate), else
RecoveryFailedError (more heads than H, or not attention).

BALL route (a ``BALL(p)`` oracle, p >= 53; status ``approximate``). The
float solve above runs on the balls' midpoints; then Krawczyk's test
(:func:`_krawczyk`) on the square system A (f(theta) - y) = 0, A the
weighted least-squares map at the float solve (fixed numbers), evaluated in
arb at p bits over a box theta~ +- 4 x the first-order estimates (widened
16-fold, at most 3 times): K inside the box proves, for every y in the
oracle's balls, exactly one solution in the box, and that it lies in K. The
test is run again on K itself (every solution in K lies in K', and K' is
narrower), the parameters are the balls K cap K' (W_h from U_h by an arb
solve with B). f over K must meet every answer's ball (arb's ``overlaps``),
else no m-head parameters in K answer like the oracle and the learner
refuses (IllConditionedError when m < H: this refutes the merge of two heads
closer than float64 resolves, which the float route cannot see, measured at
1e-12 and 1e-14). The hypotheses name what no query confirms: at most H
heads, the balls contain f, and the hidden parameters lie in the box (local
uniqueness is proved, global is not). Measured at H = 6, d = 8, BALL(80):
every ball contains the hidden parameter, radius <= 4.7e-18.

Ill-conditioning. Near-equal heads (close W) or a head with tiny v make the
poles or residues hard to separate: the Loewner margins drop, the projected
systems' condition numbers grow, so do the estimates. Every figure is in
``options["conditioning"]`` and ``options["head_count"]``; when the largest
relative estimate exceeds ``max_relative_bound`` the learner raises
IllConditionedError with that report, never a silent poor estimate.

Query count (derived in prose; the sum below is checked as a polynomial by
the claim ``multihead_canonical.query_count_closed_form``). Every query is
asked in one of the batches above, each
of a fixed size once m is known: 1 + 2H f d (phase v) + [m >= 2](d - 1)
(match) + (d - 1) K_W (phase W) + (|REFINE_SCALES| + (d - 1) e) K_W (refine,
e = ``len(extra_scales)``) + (d - 1) n (polish), which is
:func:`float_query_count`; the tests assert it equals the oracle's counter.
The bound below is for e = 0, P = 1, n = 0.
Against the published 4 H d^2 - 2 H + 1 (f = 2, m <= H <= d, d >= 3): K_W =
md + m(m - 1)/2 <= 3Hd/2, so Q <= 1 + 4Hd + d - 1 + (d + 1) 3Hd/2 and the
gap is >= 5Hd^2/2 - 11Hd/2 - d - 2H + 1 >= 4H - 2 > 0 at d = 3, increasing
in d. With n <= Hd polish queries per base the gap less (d - 1) Hd is
>= 3Hd^2/2 - 9Hd/2 - d - 2H + 1 >= 4H - 3 > 0 for d >= 4 (increasing in d).
The H = 6, d = 8 benchmark (f = 4, n = 64): 1 + 384 + 7 + 9 x 63 + 7 x 64 =
1407 < 1525. Requires m <= d with independent v_h (HypothesisViolatedError).

>>> import numpy as np
>>> from exactattn.fields import F64
>>> from exactattn.oracle import ValueOracle
>>> Ws = [np.array([[0.5, -0.3], [0.2, 0.4]]), np.array([[-0.6, 0.1], [0.3, -0.2]])]
>>> vs = [np.array([1.0, -0.5]), np.array([0.3, 0.8])]
>>> def f(X):  # a float64 two-head oracle (numbers only)
...     out = 0.0
...     for W, v in zip(Ws, vs):
...         s = X @ (W @ X[-1]); a = np.exp(s - s.max()); out += (a / a.sum()) @ (X @ v)
...     return out
>>> oracle = ValueOracle(f, field=F64, d=2)
>>> rec = learn_multihead_float(oracle, heads=2)
>>> rec.status, rec.options["m"], rec.queries == float_query_count(2, 2) == oracle.queries
('float', 2, True)
>>> err = max(abs(rec.params["W"][1] - Ws[0]).max(), abs(rec.params["W"][0] - Ws[1]).max())
>>> bool(err <= rec.params["W_error_bound"].max() < 1e-10)
True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
from flint import arb, arb_mat, ctx

from ..errors import (
    HypothesisViolatedError,
    IllConditionedError,
    InvalidEntryError,
    RecoveryFailedError,
)
from ..fields import F64, UNIT_ROUNDOFF, Array, BallField, Field, PrecisionElement
from ..fields.float64 import higham_gamma
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .multihead import LABEL, PAPER_REF, published_bound
from .recovery import QuerySpan, Recovery

__all__ = ["learn_multihead_float", "float_query_count", "f64_multihead_tolerance",
           "ratio_grid", "published_bound", "MIN_MARGIN", "MAX_RELATIVE_BOUND", "LABEL"]

#: the head-count decision needs sigma_m and sigma_{m+1} this many decades away from tau
MIN_MARGIN = 1.0
#: default refusal threshold: the largest relative error estimate of a returned recovery
MAX_RELATIVE_BOUND = 1e-6
#: Gauss-Newton iterations (each one a projected solve; 3 to 6 are typical)
MAX_ITERATIONS = 30
#: default size of the phase-v directions (standard deviation sqrt(DIRECTION_SCALE^2 / d)
#: per entry): large enough that the heads' poles t_h = e^{l_h} spread out
DIRECTION_SCALE = 3.0
#: the copy ratios c / K of a family span e^[-RATIO_SPAN, RATIO_SPAN], with c, K <= MAX_COPIES
RATIO_SPAN = 4.0
#: norm of the isolating and pair directions of phase W (logits of order 1: sigma' not small)
ISOLATING_SCALE = 1.0
#: scales of the refinement queries at b_1 (the phase-W design repeated, module docstring)
REFINE_SCALES = (1.0, 2.0)
#: candidate copy families per dimension in phase v (the d best-conditioned are used)
FAMILIES_PER_DIMENSION = 2
#: standard deviation of the logits delta . u_hj of the phase-``polish`` queries
#: [b_j + delta; b_j] (at most): logits of this order condition the W blocks far better
#: than the isolating design's order 1 (measured at H = 6, d = 8: condition 3e3 -> 50)
POLISH_LOGIT = 3.0
MAX_COPIES = 64
#: the largest families_per_dimension and pair_directions accepted (each multiplies queries)
MAX_OPTION_COUNT = 64
#: the BALL route: the Krawczyk box is theta~ +- KRAWCZYK_INFLATION x the first-order
#: estimates, widened 16-fold after each failed test, at most KRAWCZYK_TRIES tests
KRAWCZYK_INFLATION = 4.0
KRAWCZYK_TRIES = 3
#: the least precision of a BALL oracle (its midpoints are read as float64)
MIN_BALL_PREC = 53
#: the largest polish_queries accepted (per base)
MAX_POLISH_QUERIES = 4096
U = UNIT_ROUNDOFF
#: a learner's ask(queries, base index, phase): the answers as float64
_Ask = Callable[[list[Array], int, str], Array]
#: significand bits of the polish's residuals (numpy longdouble: 64 on x86-64 Linux)
POLISH_BITS = int(np.finfo(np.longdouble).nmant) + 1
#: eta per answer in the estimates: the oracle's rounding plus the learner's own
#: evaluation of the residual at POLISH_BITS bits (1 + 2^-11 on x86-64, 2 in float64)
OWN_ROUNDING = 1.0 + 2.0 ** (53 - POLISH_BITS)


def float_query_count(H: int, d: int, *, m: int | None = None,
                      families_per_dimension: int = FAMILIES_PER_DIMENSION,
                      extra_scales: int = 0, pair_directions: int = 1,
                      polish_queries: int = 0) -> int:
    """The exact query count of :func:`learn_multihead_float` (module docstring);
    ``extra_scales`` is the number of extra scales of phase W (``len(extra_scales)``),
    ``polish_queries`` the number of phase-``polish`` queries per base b_2..b_d.

    >>> float_query_count(6, 8, families_per_dimension=4), published_bound(6, 8)
    (959, 1525)
    >>> float_query_count(6, 8, families_per_dimension=4, extra_scales=1)
    1400
    >>> float_query_count(4, 32), published_bound(4, 32)
    (4966, 16377)
    """
    m = H if m is None else m
    total = 1 + 2 * H * families_per_dimension * d
    if m == 0:
        return total
    if m >= 2:
        total += d - 1
    per_base = m * (d - m + 1) + 3 * pair_directions * (m * (m - 1) // 2)
    return (total + ((d - 1) * (1 + extra_scales) + len(REFINE_SCALES)) * per_base
            + (d - 1) * polish_queries)



# -- the model of one batch of queries at one base ------------------------------------
@dataclass
class _Base:
    """All queries at base b_j, padded to one length (mask marks the real tokens)."""

    X: Array      # (n, N, d)
    mask: Array   # (n, N) bool
    y: Array      # (n,)


def _pack(queries: list[Array], answers: list[float]) -> _Base:
    N = max(X.shape[0] for X in queries)
    d = queries[0].shape[1]
    X = np.zeros((len(queries), N, d))
    mask = np.zeros((len(queries), N), dtype=bool)
    for k, Q in enumerate(queries):
        # the query token x_N stays last; padding goes in front (it is masked out)
        X[k, N - Q.shape[0]:] = Q
        mask[k, N - Q.shape[0]:] = True
    return _Base(X, mask, np.asarray(answers, dtype=np.float64))


def _heads(base: _Base, V: Array, Uj: Array) -> tuple[Array, Array, Array]:
    """Weights alpha_ih, values c_ih and head outputs f_h (n, m) at one base.

    Scores s_ih = x_i . u_hj (u_hj = W_h b_j, b_j = x_N), values c_ih = x_i . v_h.
    """
    X, mask = base.X, base.mask
    s = np.einsum("nid,dh->nih", X, Uj)
    s = np.where(mask[:, :, None], s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    a = np.exp(s)
    a = a / a.sum(axis=1, keepdims=True)
    c = np.einsum("nid,dh->nih", X, V)
    fh = np.einsum("nih,nih->nh", a, c)
    return a, c, fh


def _residual_extended(base: _Base, V: Array, Uj: Array) -> Array:
    """y - f_hat at one base, evaluated in numpy ``longdouble`` (``POLISH_BITS`` bits).

    The answers y are exact binary64 numbers; only the oracle's rounding is noise. A
    float64 evaluation of f_hat would add its own rounding, about as large, to every
    residual; in extended precision it is 2^-11 of that on x86-64 (64-bit significand;
    where longdouble is binary64 this is the float64 residual).
    """
    X = base.X.astype(np.longdouble)
    s = np.einsum("nid,dh->nih", X, Uj.astype(np.longdouble))
    s = np.where(base.mask[:, :, None], s, -np.inf)
    s = s - s.max(axis=1, keepdims=True)
    a = np.exp(s)
    a = a / a.sum(axis=1, keepdims=True)
    c = np.einsum("nid,dh->nih", X, V.astype(np.longdouble))
    f = np.einsum("nih,nih->n", a, c)
    out: Array = (base.y.astype(np.longdouble) - f).astype(np.float64)
    return out


def _evaluate(base: _Base, V: Array, Uj: Array) -> tuple[Array, Array, Array, Array]:
    """f, df/dv (n, m, d), df/du (n, m, d) and the noise estimate eta (n,) at one base."""
    X = base.X
    a, c, fh = _heads(base, V, Uj)
    f = fh.sum(axis=1)
    Jv = np.einsum("nih,nid->nhd", a, X)
    dev = a * (c - fh[:, None, :])
    Ju = np.einsum("nih,nid->nhd", dev, X)
    d = X.shape[2]
    # rounding estimate of one float64 evaluation (module docstring)
    values = np.einsum("nih,nih->n", a, np.abs(c))
    score_scale = np.einsum("nid,dh->nih", np.abs(X), np.abs(Uj))
    scores = np.einsum("nih,nih->n", np.abs(dev), score_scale)
    eta = higham_gamma(4 * d + 16) * values + higham_gamma(2 * d) * scores
    return f, Jv, Ju, eta


# -- one copy family -------------------------------------------------------------------
def ratio_grid(n: int, span: float = RATIO_SPAN, max_copies: int = MAX_COPIES
               ) -> list[tuple[int, int]]:
    """n pairs (c, K): c copies of a, K copies of b, ratios c / K log-spaced in e^[-span, span].

    The ratios are distinct, increasing, and c, K <= ``max_copies``.

    >>> ratio_grid(3, 1.0, 8)
    [(3, 8), (1, 1), (8, 3)]
    """
    out: list[tuple[int, int]] = []
    for x in np.linspace(-span, span, n):
        small = Fraction(math.exp(-abs(float(x)))).limit_denominator(max_copies)
        fr = small if x <= 0 else 1 / small  # numerator and denominator <= max_copies
        c, K = fr.numerator, fr.denominator
        if out and Fraction(c, K) <= Fraction(*out[-1]):
            raise InvalidEntryError(f"ratio_grid({n}, {span}, {max_copies}): two ratios "
                                    "coincide; raise max_copies or lower n")
        out.append((c, K))
    return out


def _family_queries(a: Array, b: Array, grid: list[tuple[int, int]]) -> list[Array]:
    """[a (c copies); b (K copies)]: head h weighs a by c t_h / (c t_h + K), a function of c / K."""
    return [np.stack([a] * c + [b] * K) for c, K in grid]


def _loewner(r: Array, g: Array) -> tuple[Array, Array, Array]:
    """Loewner and shifted Loewner matrices of k(r) = (g(r) - g(0)) / r, and k's error scale.

    k(r) = sum_h rho_h t_h / (1 + r t_h) = sum_h rho_h / (r + 1/t_h) is strictly proper
    of McMillan degree m (the constant S is gone), so L has rank m and the poles
    -1/t_h are the eigenvalues of the pencil (Ls, L) compressed to rank m
    (Mayo and Antoulas 2007). Points interlaced: mu = r[1::2], lambda = r[2::2].
    """
    k = (g[1:] - g[0]) / r[1:]
    mu, lam = r[1:][0::2], r[1:][1::2]
    km, kl = k[0::2], k[1::2]
    den = mu[:, None] - lam[None, :]
    L = (km[:, None] - kl[None, :]) / den
    Ls = (mu[:, None] * km[:, None] - lam[None, :] * kl[None, :]) / den
    # |error of k_i| <= 2 eta / r_i: the entry (i, j) of L moves by at most
    # (2 / mu_i + 2 / lambda_j) eta / |mu_i - lambda_j|; its Frobenius norm per unit eta
    E = (2 / mu[:, None] + 2 / lam[None, :]) / np.abs(den)
    return L, Ls, E


def _loewner_poles(r: Array, g: Array, m: int, what: str) -> Array:
    """t_h: the m poles -1/t_h of the compressed Loewner pencil (numpy svd and eig)."""
    L, Ls, _ = _loewner(r, g)
    Y, _, Xt = np.linalg.svd(np.concatenate([L, Ls], axis=1))
    Y2, _, X2t = np.linalg.svd(np.concatenate([L, Ls], axis=0))
    Ym, Xm = Y[:, :m], X2t[:m].T
    poles = np.linalg.eigvals(np.linalg.solve(Ym.T @ L @ Xm, Ym.T @ Ls @ Xm))
    if np.any(np.abs(poles.imag) > 1e-6 * np.abs(poles)) or np.any(poles.real >= 0):
        raise RecoveryFailedError(
            f"{what}: the fitted poles {[complex(np.round(z, 6)) for z in poles]} are not all "
            "real and negative (a copy family of softmax heads has poles -1/t_h < 0): not "
            f"multi-head attention with {m} heads, or the family is too ill-conditioned")
    t: Array = -1 / poles.real
    return t


def _family_residual(theta: Array, g: Array, cs: Array) -> Array:
    m = (theta.size - 1) // 2
    ell, rho, S = theta[:m], theta[m:2 * m], theta[-1]
    t = np.exp(ell)
    pred = S - (rho[None, :] / (1 + cs[:, None] * t[None, :])).sum(axis=1)
    out: Array = g - pred
    return out


def _family_jacobian(theta: Array, cs: Array) -> Array:
    m = (theta.size - 1) // 2
    ell, rho = theta[:m], theta[m:2 * m]
    t = np.exp(ell)
    den = 1 + cs[:, None] * t[None, :]
    d_ell = rho[None, :] * cs[:, None] * t[None, :] / den**2  # d pred / d ell
    d_rho = -1 / den
    return np.concatenate([d_ell, d_rho, np.ones((cs.size, 1))], axis=1)


def _gauss_newton_family(theta: Array, g: Array, cs: Array) -> Array:
    for _ in range(MAX_ITERATIONS):
        r = _family_residual(theta, g, cs)
        step = np.linalg.lstsq(_family_jacobian(theta, cs), r, rcond=None)[0]
        theta = theta + step
        if np.abs(step).max() <= 4 * U * max(1.0, float(np.abs(theta).max())):
            break
    return theta


def _poles(q: Array, scale: float, what: str) -> Array:
    """t_h from Q(z) = 1 + sum_i q_i z^i = prod_h (1 + z scale t_h) (roots -1/(scale t_h)).

    Only a first estimate for the refinement: a complex pair (two nearly equal poles
    pushed off the axis by rounding) is replaced by its real part.
    """
    roots = np.roots(np.concatenate([q[::-1], [1.0]])) * scale
    if np.any(roots.real >= 0):
        raise RecoveryFailedError(
            f"{what}: the fitted poles {[complex(np.round(z, 6)) for z in roots]} are not all "
            "real and negative (a copy family of softmax heads has poles -1/t_h < 0): not "
            "multi-head attention with this many heads, or the family is too ill-conditioned")
    t: Array = -1 / roots.real
    return t


def _fit_family(r: Array, g: Array, m: int, what: str) -> tuple[Array, Array, float]:
    """Logits l_h, residues rho_h and S of g at the ratios r (r[0] = 0), m heads (float64)."""
    t = _loewner_poles(r, g, m, what)
    rows = np.concatenate([np.ones((r.size, 1)), -1 / (1 + r[:, None] * t[None, :])], axis=1)
    sol2 = np.linalg.lstsq(rows, g, rcond=None)[0]
    theta = np.concatenate([np.log(t), sol2[1:], sol2[:1]])
    theta = _gauss_newton_family(theta, g, r)
    return theta[:m], theta[m:2 * m], float(theta[-1])


def _known_family(r: Array, g: Array, g0: float, S: float, rho: Array, what: str) -> Array:
    """Labelled logits of a family at ratios r (no 0) whose S, g(0), rho_h are known."""
    m = rho.size
    scale = float(r.max())
    z = r / scale
    # P(z) = g0 + sum_{i<m} p_i z^i + S q_m z^m, Q(z) = 1 + sum_{i<=m} q_i z^i
    p_pow = z[:, None] ** np.arange(1, m)[None, :]
    A = np.concatenate([p_pow, -g[:, None] * p_pow, ((S - g) * z**m)[:, None]], axis=1)
    sol = np.linalg.lstsq(A, g - g0, rcond=None)[0]
    t = _poles(np.concatenate([sol[m - 1:2 * m - 2], sol[-1:]]), scale, what)
    # residues of the fitted poles, matched to the known rho_h
    r0 = np.concatenate([[0.0], r])
    gg = np.concatenate([[g0], g])
    fit = np.linalg.lstsq(-1 / (1 + r0[:, None] * t[None, :]), gg - S, rcond=None)[0]
    # the labelling: the permutation of the poles whose residues best match rho (m = 2 here)
    perm = min(itertools.permutations(range(m)),
               key=lambda p: float(np.abs(fit[list(p)] - rho).sum()))
    ell: Array = np.log(t[list(perm)])
    return ell


# -- the learner ---------------------------------------------------------------------
@checked_arguments(counts={"heads": (1, 1024), "families_per_dimension": (1, MAX_OPTION_COUNT),
                           "pair_directions": (1, MAX_OPTION_COUNT),
                           "polish_queries": (0, MAX_POLISH_QUERIES)})
def learn_multihead_float(
    oracle: ValueOracle,
    *,
    heads: int,
    field: Field | None = None,
    seed: int = 0,
    max_relative_bound: float = MAX_RELATIVE_BOUND,
    direction_scale: float = DIRECTION_SCALE,
    families_per_dimension: int = FAMILIES_PER_DIMENSION,
    extra_scales: tuple[float, ...] = (),
    pair_directions: int = 1,
    polish_queries: int = 0,
) -> Recovery:
    """Recover the canonical heads from a float64 oracle, with first-order error estimates.

    Label ``multihead_canonical`` (float variant); see the module docstring
    for the steps, the rounding model, the estimates and the derived count
    :func:`float_query_count`, which is below 4 H d^2 - 2 H + 1 when d >= 3
    with f = 2, P = 1 and no extra scales (at d = 2 it can exceed it: 33 > 29
    at H = 2).

    Parameters
    ----------
    oracle : value oracle over F64.
    heads : H, an upper bound on the number of canonical heads.
    seed : seed of the random bases and directions.
    max_relative_bound : refuse (IllConditionedError) when an entry's error
        estimate, relative to the largest entry of its head's W or v, exceeds this.
    direction_scale : size of the phase-v directions (spreads the poles).
    families_per_dimension : f, candidate copy families per dimension in phase v
        (1 to ``MAX_OPTION_COUNT`` = 64, like P).
    extra_scales : scales at which the phase-W design is repeated at every base
        (phase ``refine``; each adds (d - 1) K_W queries and conditions the W blocks).
    pair_directions : P, two-pole families per pair of heads and base (K_W grows
        by 3 m (m - 1) / 2 per extra one): one of them is well separated more often.
    polish_queries : n, random two-token queries [b_j + delta; b_j] (logits of standard
        deviation up to ``POLISH_LOGIT``) at each base b_2..b_d, used by the final polish only
        (0 to ``MAX_POLISH_QUERIES``; (d - 1) n queries; better-conditioned W blocks).

    Returns
    -------
    Recovery over F64, status ``float``: ``params["W"]`` (m, d, d),
    ``params["v"]`` (m, d) (head first: row h is v_h), sorted by W row-major, and
    ``params["W_error_bound"]``, ``params["v_error_bound"]`` of the same
    shapes (first-order error estimates per entry, not proved bounds). ``options``: ``m``,
    ``head_count`` (singular values, tau, margin in decades),
    ``conditioning`` (condition numbers, head separation, relative estimates),
    ``residual`` and ``noise_bound`` (2-norms; the latter a rounding estimate),
    ``iterations``. Over BALL(p): status ``approximate``, ``params["W"]`` and
    ``params["v"]`` object arrays of BALL(p) balls (the Krawczyk enclosure, module
    docstring), ``options["enclosure"]`` (radii, equations, ``answers_missed``), and
    the hypotheses the enclosure rests on.

    Raises
    ------
    InvalidEntryError : not an F64 or BALL(p >= 53) oracle, or a bad argument (before
        any query).
    IllConditionedError : the head count is undecided, an estimate exceeds
        ``max_relative_bound``, the residual shows heads the families did not separate
        (m < H), or over BALL the Krawczyk test fails or the enclosure misses an
        answer's ball (m < H); the report names the measured figures.
    HypothesisViolatedError : more canonical heads than d, or dependent v_h.
    RecoveryFailedError : the answers are not those of <= H heads in float64.
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    ball = isinstance(F, BallField)
    if F != F64 and not ball:
        raise InvalidEntryError(
            f"learn_multihead_float runs over F64 or BALL(prec), not {F.name}; over EXP use "
            "learn_multihead")
    if isinstance(F, BallField) and F.prec < MIN_BALL_PREC:
        raise InvalidEntryError(
            f"learn_multihead_float over {F.name}: the float solve reads the balls' midpoints "
            f"as float64, so the oracle needs at least {MIN_BALL_PREC} bits; use "
            f"BALL({MIN_BALL_PREC}) or more")
    for name, val in (("max_relative_bound", max_relative_bound),
                      ("direction_scale", direction_scale)):
        if not isinstance(val, int | float) or isinstance(val, bool) or not (
                math.isfinite(val) and val > 0):
            raise InvalidEntryError(f"{name} must be a positive finite number, got {val!r}")
    if not isinstance(extra_scales, tuple) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0
            for x in extra_scales):
        raise InvalidEntryError(f"extra_scales must be a tuple of positive finite numbers, got "
                                f"{extra_scales!r}")
    H, d = heads, oracle.d
    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng([seed, d, H, 64])
    B = np.linalg.qr(rng.standard_normal((d, d)))[0]          # rows b_j, orthonormal
    n_fam = families_per_dimension * d
    Cand = rng.standard_normal((n_fam, d)) * (direction_scale / math.sqrt(d))
    b1 = B[0]
    base_queries: list[list[Array]] = [[] for _ in range(d)]
    base_answers: list[list[float]] = [[] for _ in range(d)]
    base_balls: list[list[Any]] = [[] for _ in range(d)]   # over BALL: the answers' balls

    def ask(Xs: list[Array], j: int, phase: str) -> Array:
        raw = oracle.batch(Xs, phase=phase)
        if ball:  # the float solve reads the midpoints; the enclosure uses the balls
            base_balls[j].extend(F(y).value for y in raw)
            ys = np.array([F.to_float(y) for y in raw], dtype=np.float64)
        else:
            ys = np.asarray(raw, dtype=np.float64)
        base_queries[j].extend(Xs)
        base_answers[j].extend(float(y) for y in ys)
        return ys

    # 1. phase v ----------------------------------------------------------------------
    fam = _copy_families(ask, 0, b1, Cand, H, d)
    m, count_report = fam.m, fam.report
    if m == 0:
        return _finish(F, span, [], [], [], [], d, seed, H, count_report, {}, 0.0, 0.0, 0)
    # 2. phase match -------------------------------------------------------------------
    V, U1, match_margin = _phase_match(
        ask, 0, b1, Cand, fam, d, learner="the float learner", ranks_shown=None,
        why="Some heads' poles nearly coincide along most directions (nearly equal heads); "
            "raise families_per_dimension or learn over EXP")
    Ucols = [U1]                              # base 1: column h is W_h b_1

    # 3. phase W -------------------------------------------------------------------------
    _, singles, pairs, pair_dirs = _isolating_design(V, pair_directions, rng)
    for j in range(1, d):
        Ucols.append(_phase_w_base(ask, j, B[j], V, singles, pairs, pair_dirs, 1.0, "W"))
        for scale in extra_scales:  # the same design at more scales: better W blocks
            _phase_w_base(ask, j, B[j], V, singles, pairs, pair_dirs, scale, "refine")
    # refinement queries at b_1: the phase-W design at two scales. Off the estimate the
    # isolating queries see the other heads' leaks delta . v_g, differently at each
    # scale: this pins v down, where the copy families alone are ill-conditioned
    for scale in REFINE_SCALES:
        _phase_w_base(ask, 0, b1, V, singles, pairs, pair_dirs, scale, "refine")
    # polish queries: random two-token queries whose logits delta . u_hj have standard
    # deviation up to POLISH_LOGIT (by the first estimates), for the final Gauss-Newton only
    if polish_queries:
        for j in range(1, d):
            norms = np.maximum(np.linalg.norm(Ucols[j], axis=0), U)   # ||u_hj||, per head
            size = POLISH_LOGIT / norms[np.arange(polish_queries) % m]  # query k: head k mod m
            deltas = rng.standard_normal((polish_queries, d)) * size[:, None]
            ask([np.stack([B[j] + delta, B[j]]) for delta in deltas], j, "polish")

    # 4. refinement and bounds -----------------------------------------------------------
    bases = [_pack(base_queries[j], base_answers[j]) for j in range(d)]
    V, Ucols, iterations = _refine(bases, V, Ucols)
    bound_v, bound_U, residual, noise, conds = _bounds(bases, V, Ucols)
    Uh = [np.stack([Ucols[j][:, h] for j in range(d)], axis=1) for h in range(m)]
    Ws = [Uh[h] @ B for h in range(m)]              # W_h B^T = U_h, B orthogonal
    bW = [np.stack([bound_U[j][:, h] for j in range(d)], axis=1) @ np.abs(B)
          + 2 * U * np.abs(Ws[h]) for h in range(m)]
    vs = [V[:, h] for h in range(m)]
    bv = [bound_v[:, h] + 2 * U * np.abs(vs[h]) for h in range(m)]
    conds["match_margin"] = match_margin
    rec = _finish(F, span, Ws, vs, bW, bv, d, seed, H, count_report, conds, residual, noise,
                  iterations, max_relative_bound=max_relative_bound)
    if not ball:
        return rec
    assert isinstance(F, BallField)
    # first a box around the float solve (inflated until Krawczyk's test passes), then
    # the test again on the enclosure K itself: every solution in K lies in the new K',
    # so K and K' intersected still hold the hidden parameters, and K' is narrower
    # (its width is quadratic in K's, plus the balls' own radii times the conditioning)
    theta = _flat(V, Ucols)
    rho = _flat(bound_v, bound_U) * KRAWCZYK_INFLATION + 2.0**-60
    for _ in range(KRAWCZYK_TRIES):
        with ctx.workprec(F.prec):
            box = [arb(float(x), float(e)) for x, e in zip(theta, rho, strict=True)]
        K, figures = _krawczyk(F, bases, base_balls, V, Ucols, box)
        if figures["contained"]:
            break
        rho = rho * 16
    else:
        raise IllConditionedError(
            f"the Krawczyk test failed {KRAWCZYK_TRIES} times (last box radius up to "
            f"{float(rho.max()):.3e}, last enclosure radius {figures['max_radius']:.3e}): no "
            f"rigorous enclosure at {F.name} around the float solve. The system is too "
            "ill-conditioned for these balls; raise the oracle's precision or use F64 "
            "(first-order estimates)", report=figures)
    first = [K[i, 0] for i in range(K.nrows())]
    K2, again = _krawczyk(F, bases, base_balls, V, Ucols, first)
    if again["answers_missed"]:
        # no m-head parameters in K answer like the oracle (rigorous): the answers are
        # not those of m heads, e.g. two heads closer than float64 resolves read as one
        text = (f"over {F.name}, the {m}-head enclosure K misses {again['answers_missed']} of "
                f"the {again['equations']} answers' balls (f over K and the ball are disjoint, "
                f"decided by arb): the answers are not those of {m} canonical heads")
        if m < H:
            raise IllConditionedError(
                text + f" (of at most H = {H}): two heads closer than float64 resolves look "
                "like one to the float solve; learn over EXP", report=again)
        raise RecoveryFailedError(text + f" = H; not multi-head attention with {H} heads")
    with ctx.workprec(F.prec):
        K = arb_mat(len(first), 1, [b.intersection(K2[i, 0]) for i, b in enumerate(first)])
    figures.update({"first_max_radius": figures["max_radius"],
                    "max_radius": max(float(K[i, 0].rad()) for i in range(K.nrows())),
                    "second_contained": again["contained"]})
    return _ball_recovery(F, rec, K, B, Ws, vs, rho, figures, H)


class _CopyFamilies(NamedTuple):
    """Phase v's copy families at one base (:func:`_copy_families`)."""
    r: Array                      # the ratio grid, 0 first
    g0: float                     # the answer at [b]
    fams: list[Array]             # one family's answers per candidate direction, g0 first
    m: int                        # the head count (:func:`_head_count`)
    usable: list[int]             # the families that show all m heads, best margin first
    report: dict[str, Any]        # the head-count report


def _copy_families(ask: _Ask, j: int, b: Array, Cand: Array, H: int, d: int
                   ) -> _CopyFamilies:
    """Phase v: the answer at [b], a copy family at b per candidate direction (the rows of
    ``Cand``, asked as base ``j``), and the head count from their Loewner ranks."""
    grid = ratio_grid(2 * H)
    r = np.array([0.0] + [c / K for c, K in grid])
    g0 = float(ask([b[None, :]], j, "v")[0])
    fams = []
    for k in range(len(Cand)):
        ys = ask(_family_queries(b + Cand[k], b, grid), j, "v")
        fams.append(np.concatenate([[g0], ys]))
    m, usable, report = _head_count(r, fams, H, d)
    return _CopyFamilies(r, g0, fams, m, usable, report)


def _phase_match(ask: _Ask, j: int, b: Array, Cand: Array, fam: _CopyFamilies, d: int, *,
                 learner: str, why: str, ranks_shown: int | None
                 ) -> tuple[Array, Array, float]:
    """Phases v (end) and match at b, for m >= 1 heads: d families that show all m heads,
    with independent directions, fitted; their poles and residues matched across families
    (d - 1 three-token queries when m >= 2, asked as base ``j``); then v_h and u_h(b) = W_h b
    (columns h of the two arrays returned, with the least match margin).

    ``learner`` names the learner in the refusals, ``why`` ends the refusal for too few
    independent families, and ``ranks_shown`` cuts its list of the families' ranks (None:
    all of them)."""
    m, usable, count_report = fam.m, fam.usable, fam.report
    if m > d:
        raise HypothesisViolatedError(
            f"the copy families show m = {m} canonical heads > d = {d}: {learner} "
            "isolates heads by directions orthogonal to the other v_h, which needs m <= d",
            hypothesis="m <= d and linearly independent v_h")
    # d families that show all m heads, best margin first, with independent directions
    chosen: list[int] = []
    for i in usable:
        if np.linalg.matrix_rank(Cand[chosen + [i]], tol=1e-8) == len(chosen) + 1:
            chosen.append(i)
        if len(chosen) == d:
            break
    if len(chosen) < d:
        per_family = count_report["per_family"]
        ranks = per_family if ranks_shown is None else f"{per_family[:ranks_shown]}..."
        raise IllConditionedError(
            f"only {len(usable)} of {len(Cand)} copy families show all m = {m} heads "
            f"decisively (ranks {ranks}): {d} independent ones are needed. {why}",
            report=count_report)
    Delta = Cand[chosen]
    count_report["chosen_families"] = chosen
    fitted = [_fit_family(fam.r, fam.fams[i], m, f"family {i + 1} at b_1") for i in chosen]

    # phase match: the order of the heads in family k, by a query mixing families 1 and k
    ell = np.empty((d, m))
    rho = np.empty((d, m))
    ell[0], rho[0] = fitted[0][0], fitted[0][1]
    match_margin = math.inf
    if m >= 2:
        Xs = [np.stack([b + Delta[0], b + Delta[k], b]) for k in range(1, d)]
        ys = ask(Xs, j, "match")
        for k in range(1, d):
            perm, margin = _match(fitted[0], fitted[k], fam.g0, float(ys[k - 1]))
            match_margin = min(match_margin, margin)
            ell[k], rho[k] = fitted[k][0][perm], fitted[k][1][perm]
    else:
        for k in range(1, d):
            ell[k], rho[k] = fitted[k][0], fitted[k][1]
    V = np.linalg.solve(Delta, rho)          # column h: v_h
    if np.linalg.matrix_rank(V) < m:
        raise HypothesisViolatedError(
            f"the estimated v_h (condition number {np.linalg.cond(V):.3e}) are linearly "
            f"dependent: {learner} needs independent v_h (isolating plan)",
            hypothesis="m <= d and linearly independent v_h")
    return V, np.linalg.solve(Delta, ell), match_margin


def _sized(x: Array) -> Array:
    """x scaled to norm ``ISOLATING_SCALE`` (moderate logits)."""
    return x * (ISOLATING_SCALE / float(np.linalg.norm(x)))


def _isolating_design(V: Array, pair_directions: int, rng: np.random.Generator
                      ) -> tuple[Array, list[list[Array]], list[tuple[int, int]], list[Array]]:
    """Phase W's directions from the estimated v_h (the columns of V, d x m): P, the
    isolating directions of every head, the pairs of heads (each ``pair_directions``
    times) and their pair directions (drawn from ``rng``)."""
    d, m = V.shape
    # isolating directions: p_h = V (V^T V)^{-1} e_h sees head h only (p_h . v_g = [g = h]),
    # the n_i (an orthonormal basis of the null space of V^T) see no head
    P = np.concatenate([np.linalg.pinv(V.T), np.linalg.svd(V.T)[2][m:].T], axis=1)
    singles = [[_sized(P[:, h])] + [_sized(P[:, h] + P[:, i]) for i in range(m, d)]
               for h in range(m)]
    # pair directions: heads h and g only, residues alpha != beta (a family of two poles)
    pairs = [(h, g) for g in range(m) for h in range(g)] * pair_directions
    pair_dirs = []
    for h, g in pairs:
        alpha, beta = rng.uniform(0.5, 1.5, size=2) * np.array([1.0, -1.0])
        pair_dirs.append(_sized(alpha * P[:, h] + beta * P[:, g]
                                + P[:, m:] @ rng.standard_normal(d - m) * 0.5))
    return P, singles, pairs, pair_dirs


def _phase_w_base(ask: Any, j: int, b: Array, V: Array, singles: list[list[Array]],
                  pairs: list[tuple[int, int]], pair_dirs: list[Array], scale: float,
                  phase: str) -> Array:
    """The isolating and pair queries at base b (directions times ``scale``); first
    estimates of u_hj = W_h b, column h (refined later)."""
    d, m = V.shape
    gb = float(V.sum(axis=1) @ b)
    Xs = [np.stack([b + scale * delta, b]) for h in range(m) for delta in singles[h]]
    ys = ask(Xs, j, phase)
    size = np.array([scale * delta @ V[:, h] for h in range(m) for delta in singles[h]])
    p = np.clip((ys - gb) / size, 1e-12, 1 - 1e-12)  # a first estimate: refined below
    single_logits = np.log(p / (1 - p)).reshape(m, d - m + 1) / scale
    pair_grid = ratio_grid(3)
    pair_r = np.array([c / K for c, K in pair_grid])
    pair_logits = []
    for (h, g), gamma in zip(pairs, pair_dirs, strict=True):
        ys = ask(_family_queries(b + scale * gamma, b, pair_grid), j, phase)
        rhos = scale * gamma @ V[:, [h, g]]
        S = gb + float(rhos.sum())
        pair_logits.append(_known_family(pair_r, ys, gb, S, rhos, f"base {j + 1}") / scale)
    Uj = np.empty((d, m))
    for h in range(m):
        rows = list(singles[h])
        rhs = list(single_logits[h])
        for (a_, b_), gamma, pl in zip(pairs, pair_dirs, pair_logits, strict=True):
            if h in (a_, b_):
                rows.append(gamma)
                rhs.append(pl[0] if h == a_ else pl[1])
        Uj[:, h] = np.linalg.lstsq(np.stack(rows), np.asarray(rhs), rcond=None)[0]
    return Uj


def _head_count(r: Array, fams: list[Array], H: int, d: int
                ) -> tuple[int, list[int], dict[str, Any]]:
    """m from the Loewner ranks of the families, the families that show all m heads
    decisively (best margin first), and the report (module docstring)."""
    ms, margins, svs, taus = [], [], [], []
    for g in fams:
        L, _, E = _loewner(r, g)
        sv = np.linalg.svd(L, compute_uv=False)
        # noise estimate: every answer off by about eta = gamma_{4d+16} (H + 1) max|g| (a
        # heuristic: the heads' terms assumed to cancel by at most a factor H + 1); tau = the
        # Frobenius norm of the entrywise estimate of the perturbation of L (:func:`_loewner`)
        eta = higham_gamma(4 * d + 16) * (H + 1) * float(np.abs(g).max())
        tau = eta * float(np.linalg.norm(E))
        k = int((sv > tau).sum())
        above = sv[k - 1] / tau if k >= 1 else math.inf
        below = tau / sv[k] if k < sv.size and sv[k] > 0 else math.inf
        ms.append(k)
        margins.append(math.log10(min(above, below)))
        svs.append([float(x) for x in sv])
        taus.append(tau)
    # a family never shows more heads than there are (beyond the noise, which the margin
    # excludes): m is the largest rank decided by MIN_MARGIN decades
    decisive = [k for k, mg in zip(ms, margins, strict=True) if mg >= MIN_MARGIN]
    m = max(decisive, default=-1)
    usable = sorted((i for i in range(len(fams)) if ms[i] == m and margins[i] >= MIN_MARGIN),
                    key=lambda i: -margins[i])
    best = usable[0] if usable else int(np.argmax(margins))
    report = {"m": m, "per_family": ms, "margins_decades": margins,
              "singular_values": svs[best], "tau": taus[best],
              "margin_decades": margins[best], "usable_families": len(usable)}
    if m < 0:
        raise IllConditionedError(
            f"the head count is undecided: no copy family decides its Loewner rank by "
            f"{MIN_MARGIN} decade (ranks {ms}, margins {[round(x, 2) for x in margins]}); "
            "two heads may be nearly equal or a head's v nearly 0, so the canonical heads "
            "are not separable in float64 from these queries", report=report)
    return m, usable, report


def _match(fam1: tuple[Array, Array, float], famk: tuple[Array, Array, float], g0: float,
           y: float) -> tuple[Array, float]:
    t1, r1 = np.exp(fam1[0]), fam1[1]
    tk, rk = np.exp(famk[0]), famk[1]
    m = t1.size
    best: list[tuple[float, tuple[int, ...]]] = []
    for perm in itertools.permutations(range(m)):
        p = np.asarray(perm)
        pred = g0 + float(((t1 * r1 + tk[p] * rk[p]) / (t1 + tk[p] + 1)).sum())
        best.append((abs(pred - y), perm))
    best.sort()
    margin = best[1][0] / max(best[0][0], U * max(1.0, abs(y)))
    return np.asarray(best[0][1]), margin


def _weights(eta: Array) -> Array:
    """Row weights 1 / eta of the weighted Gauss-Newton (eta floored at 2^-30 of its
    largest entry: any positive weights give a valid first-order estimate, they
    only change how well the answers are used)."""
    w: Array = 1 / np.maximum(eta, float(eta.max()) * 2.0**-30)
    return w


def _residual_norm(bases: list[_Base], V: Array, Ucols: list[Array],
                   weights: list[Array] | None = None) -> float:
    total = 0.0
    for j, base in enumerate(bases):
        r = _residual_extended(base, V, Ucols[j])
        total += float(((r if weights is None else r * weights[j]) ** 2).sum())
    return math.sqrt(total) if math.isfinite(total) else math.inf


def _refine(bases: list[_Base], V: Array, Ucols: list[Array]
            ) -> tuple[Array, list[Array], int]:
    """Damped Gauss-Newton, the u_.j eliminated per base by QR (variable projection),
    each answer weighted by 1 / eta (its rounding estimate at the current iterate),
    the residuals evaluated in extended precision (:func:`_residual_extended`).

    A step is halved until the weighted residual decreases (at most 30 times); the
    iteration stops when the relative step is below 4u or no shorter step decreases it.
    """
    d, m = V.shape
    Ucols = [u.copy() for u in Ucols]
    for it in range(1, MAX_ITERATIONS + 1):
        Gs, rs, parts, ws = [], [], [], []
        for j, base in enumerate(bases):
            _, Jv, Ju, eta = _evaluate(base, V, Ucols[j])
            w = _weights(eta)
            ws.append(w)
            r = _residual_extended(base, V, Ucols[j]) * w
            A = Jv.reshape(len(r), m * d) * w[:, None]
            C = Ju.reshape(len(r), m * d) * w[:, None]
            Q, R = np.linalg.qr(C)
            Gs.append(A - Q @ (Q.T @ A))
            rs.append(r - Q @ (Q.T @ r))
            parts.append((A, Q, R, r))
        if not all(np.isfinite(G).all() for G in Gs):
            raise RecoveryFailedError("the refinement met a non-finite Jacobian: the first "
                                      "estimates are too far off (try another seed)")
        res = _residual_norm(bases, V, Ucols, ws)
        dv = np.linalg.lstsq(np.concatenate(Gs), np.concatenate(rs), rcond=None)[0]
        dus = [np.linalg.lstsq(R, Q.T @ (r - A @ dv), rcond=None)[0] for A, Q, R, r in parts]
        biggest = max([float(np.abs(dv).max()) / max(1.0, float(np.abs(V).max()))]
                      + [float(np.abs(du).max()) / max(1.0, float(np.abs(Ucols[j]).max()))
                         for j, du in enumerate(dus)])
        lam = 1.0
        for _ in range(30):
            V_new = V + lam * dv.reshape(m, d).T
            U_new = [Ucols[j] + lam * du.reshape(m, d).T for j, du in enumerate(dus)]
            res_new = _residual_norm(bases, V_new, U_new, ws)
            if res_new < res or (res_new == res and lam == 1.0):
                break
            lam /= 2
        else:
            return V, Ucols, it
        V, Ucols = V_new, U_new
        if biggest <= 4 * U:
            return V, Ucols, it
    return V, Ucols, MAX_ITERATIONS


def _bounds(bases: list[_Base], V: Array, Ucols: list[Array]
            ) -> tuple[Array, list[Array], float, float, dict[str, Any]]:
    """First-order error estimates |L| (OWN_ROUNDING eta) of v and every u_.j, L the
    weighted solve's map from the answers' errors (module docstring)."""
    d, m = V.shape
    etas, parts, Gs, noise2 = [], [], [], 0.0
    residual2 = 0.0
    for j, base in enumerate(bases):
        f, Jv, Ju, eta = _evaluate(base, V, Ucols[j])
        residual2 += float((_residual_extended(base, V, Ucols[j]) ** 2).sum())
        noise2 += float(((OWN_ROUNDING * eta) ** 2).sum())
        # the oracle's rounding eta plus the learner's own (extended-precision) residual,
        # in the weighted rows: w eta
        w = _weights(eta)
        etas.append(OWN_ROUNDING * eta * w)
        A = Jv.reshape(len(f), m * d) * w[:, None]
        C = Ju.reshape(len(f), m * d) * w[:, None]
        Q, R = np.linalg.qr(C)
        Gs.append(A - Q @ (Q.T @ A))
        parts.append((A, Q, R))
    bound_v, bound_U, _, conds = _error_maps(etas, parts, Gs, m, d,
                                             pseudo_inverse=lambda Q, R: np.linalg.inv(R) @ Q.T)
    return bound_v, bound_U, math.sqrt(residual2), math.sqrt(noise2), conds


def _error_maps(etas: list[Array], parts: list[tuple[Array, Array, Array]], Gs: list[Array],
                m: int, d: int, *, pseudo_inverse: Callable[[Array, Array], Array]
                ) -> tuple[Array, list[Array], Array, dict[str, Any]]:
    """The first-order estimates |L| eta of v and of every base's u_.j from the per-base
    answer errors ``etas``, the blocks (A_j, Q_j, R_j) (df/dv and C_j = Q_j R_j = df/du_.j)
    and G_j = (I - Q_j Q_j^T) A_j; ``pseudo_inverse(Q_j, R_j)`` computes C_j^+. Also
    returns all the etas (concatenated) and the condition numbers."""
    eta_all = np.concatenate(etas)
    G = np.concatenate(Gs)
    Gp = np.linalg.pinv(G)                       # (md, n)
    offsets = np.cumsum([0] + [len(e) for e in etas])
    # M_v = G^+ blockdiag(I - Q_j Q_j^T): dv = M_v e
    Mv = Gp.copy()
    for j, (_, Q, _) in enumerate(parts):
        sl = slice(offsets[j], offsets[j + 1])
        Mv[:, sl] -= (Gp[:, sl] @ Q) @ Q.T
    bound_v = (np.abs(Mv) @ eta_all).reshape(m, d).T
    bound_U = []
    cond_C = 0.0
    for j, (A, Q, R) in enumerate(parts):
        sl = slice(offsets[j], offsets[j + 1])
        cond_C = max(cond_C, float(np.linalg.cond(R)))
        Cp = pseudo_inverse(Q, R)                  # C_j^+
        L = -(Cp @ A) @ Mv
        L[:, sl] += Cp
        bound_U.append((np.abs(L) @ eta_all).reshape(m, d).T)
    conds = {"cond_projected_v": float(np.linalg.cond(G)), "cond_W_blocks_max": cond_C}
    return bound_v, bound_U, eta_all, conds


def _finish(F: Field, span: QuerySpan, Ws: list[Array], vs: list[Array], bW: list[Array],
            bv: list[Array], d: int, seed: int, H: int, count_report: dict[str, Any],
            conds: dict[str, Any], residual: float, noise: float, iterations: int, *,
            max_relative_bound: float = MAX_RELATIVE_BOUND) -> Recovery:
    m = len(Ws)
    order = _canonical_order(Ws, vs)
    W = np.zeros((m, d, d))
    v = np.zeros((m, d))                    # head first: row h is v_h
    eW = np.zeros((m, d, d))
    ev = np.zeros((m, d))
    for k, h in enumerate(order):
        W[k], v[k], eW[k], ev[k] = Ws[h], vs[h], bW[h], bv[h]
    rel = [max(float(eW[h].max()) / float(np.abs(W[h]).max()),
               float(ev[h].max()) / float(np.abs(v[h]).max())) for h in range(m)]
    sep = [float(np.linalg.norm(W[g] - W[h]) / max(np.linalg.norm(W[g]), np.linalg.norm(W[h])))
           for g in range(m) for h in range(g)]
    report = dict(conds)
    report.update({
        "relative_bound_per_head": rel,
        "max_relative_bound": max(rel, default=0.0),
        "min_head_separation": min(sep, default=math.inf),
        "min_v_norm_ratio": (float(min(np.linalg.norm(v, axis=0)) / np.linalg.norm(v, axis=0).max())
                             if m else math.inf),
    })
    if m and residual > 2 * noise:
        misfit = {"m": m, "heads": H, "residual": residual, "noise_bound": noise,
                  "residual_over_noise": residual / noise if noise else math.inf,
                  "margin_decades": count_report["margin_decades"],
                  "singular_values": count_report["singular_values"],
                  "tau": count_report["tau"]}
        text = (f"after refinement the {m}-head model leaves a residual ||y - f_hat||_2 = "
                f"{residual:.3e} > 2 x the answers' rounding estimate {noise:.3e} "
                f"(ratio {misfit['residual_over_noise']:.1e}): the answers are not those of "
                f"{m} canonical heads in float64. The copy families showed m = {m} (margin "
                f"{count_report['margin_decades']:.2f} decades)")
        if m < H:  # room for heads the families did not resolve: nearly equal heads
            raise IllConditionedError(
                text + f" of the at most H = {H} allowed: two nearly equal heads look like one "
                "head to them (their poles differ by less than float64 resolves), and then no "
                f"{m}-head model fits. The heads are not separable in float64 from these "
                "queries (learn over EXP, or over BALL at a higher precision); otherwise the "
                "oracle is not multi-head attention", report=misfit)
        raise RecoveryFailedError(
            text + f" = H: the oracle has more heads than heads={H} or is not multi-head "
            "attention")
    if m and report["max_relative_bound"] > max_relative_bound:
        raise IllConditionedError(
            f"the recovery is ill-conditioned: first-order relative error estimate "
            f"{report['max_relative_bound']:.3e} > {max_relative_bound:.1e} (per head "
            f"{[f'{r:.1e}' for r in rel]}); condition of the projected v system "
            f"{report['cond_projected_v']:.3e}, of the W blocks {report['cond_W_blocks_max']:.3e}"
            f", closest heads {report['min_head_separation']:.3e} apart (relative), smallest "
            f"||v_h|| / max ||v|| = {report['min_v_norm_ratio']:.3e}. Pass a larger "
            "max_relative_bound to accept these estimates", report=report,
            recovered={"W": W, "v": v, "W_error_bound": eW, "v_error_bound": ev})
    report = {k: (None if isinstance(x, float) and math.isinf(x) else x)
              for k, x in report.items()}
    count = dict(count_report)
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=F,
        params={"W": W, "v": v, "W_error_bound": eW, "v_error_bound": ev},
        seed=seed,
        options={"m": m, "plan": "isolating" if m else "none", "heads": H, "route": "float64",
                 "head_count": count, "conditioning": report, "residual": residual,
                 "noise_bound": noise, "iterations": iterations,
                 "answer_error_factor": higham_gamma(4 * d + 16)},
        hypotheses=(f"f has at most H = {H} canonical heads",
                    "the oracle evaluates f in float64 by the usual formula (rounding "
                    "model of the error estimates); the estimates are first order, not "
                    "proved bounds",
                    "no two hidden heads are closer than float64 resolves: heads whose W "
                    "differ by about 1e-12 answer within rounding of one merged head and are "
                    "returned as one (measured at H = 3, d = 3 and H = 4, d = 8; 1e-10 is "
                    "refused); over BALL such a merge is refuted by the balls"))


# -- the BALL route: a rigorous enclosure around the float solve ------------------------
def _flat(V: Array, Ucols: list[Array]) -> Array:
    """theta = (v_1, ..., v_m, u_.1, ..., u_.d), each block head by head (h d + i)."""
    return np.concatenate([V.T.reshape(-1)] + [u.T.reshape(-1) for u in Ucols])


def _ball_base(X: Array, mask: Array, Vb: arb_mat, Ub: arb_mat, m: int
               ) -> tuple[list[arb], list[list[arb]], list[list[arb]]]:
    """Ball values f and gradients (d f / d v, d f / d u_.j, each m d, head by head) of
    the queries at one base, for parameter balls Vb, Ub (d x m arb_mat, current context).

    Repeated tokens are merged (weight k_i e^{s_i}: a copy family has two distinct
    tokens); the scores are shifted by the midpoint of the largest (softmax unchanged).
    Every entry of X is a binary64 number, so arb holds it exactly.
    """
    d = X.shape[2]
    fs, gvs, gus = [], [], []
    for k in range(X.shape[0]):
        toks, counts = np.unique(X[k][mask[k]], axis=0, return_counts=True)
        N = toks.shape[0]
        Xb = arb_mat(N, d, [float(x) for x in toks.flat])
        XT = Xb.transpose()
        S, C = Xb * Ub, Xb * Vb
        f, gv, gu = arb(0), [], []
        for h in range(m):
            s = [S[i, h] for i in range(N)]
            top = max(float(x.mid()) for x in s)
            a = [int(counts[i]) * (s[i] - top).exp() for i in range(N)]
            Z = sum(a, arb(0))
            alpha = [x / Z for x in a]
            fh = sum((alpha[i] * C[i, h] for i in range(N)), arb(0))
            f += fh
            g1 = XT * arb_mat(N, 1, alpha)
            g2 = XT * arb_mat(N, 1, [alpha[i] * (C[i, h] - fh) for i in range(N)])
            gv += [g1[i, 0] for i in range(d)]
            gu += [g2[i, 0] for i in range(d)]
        fs.append(f)
        gvs.append(gv)
        gus.append(gu)
    return fs, gvs, gus


def _blocks(vals: list[arb], j: int, d: int, m: int) -> tuple[arb_mat, arb_mat]:
    """V and u_.j (d x m arb_mat, column h for head h) from theta's balls (:func:`_flat`)."""
    md = m * d
    Vb = arb_mat(d, m, [vals[h * d + i] for i in range(d) for h in range(m)])
    Ub = arb_mat(d, m, [vals[md * (1 + j) + h * d + i] for i in range(d) for h in range(m)])
    return Vb, Ub


def _krawczyk(F: BallField, bases: list[_Base], balls: list[list[Any]], V: Array,
              Ucols: list[Array], box: list[arb]) -> tuple[arb_mat, dict[str, Any]]:
    """Krawczyk's test on the box ``box`` (P balls, theta's layout :func:`_flat`).

    A = (J~^T Omega J~)^{-1} J~^T Omega (float64, then exact: Omega the 1/eta weights,
    J~ the Jacobian at the float solve V, Ucols) is a fixed P x n matrix, so
    Phi(theta; y) = A (f(theta) - y) is a square system whose Jacobian A J(theta) needs
    first derivatives only; the hidden parameters solve it for the exact answers
    y* (every oracle ball contains its y*). With c the box's midpoint, Krawczyk's
    operator for every y in the balls Y,
        K = c - A (f(c) - Y) + (I - A J(Theta)) (Theta - c),
    is evaluated in arb. Every solution in Theta lies in K; if moreover K lies in the
    interior of Theta, the system has exactly one solution in Theta for every y in Y
    (Krawczyk 1969, Moore 1977; Rump 2010, Acta Numerica 19, section 13). Returns
    K (a P x 1 arb_mat) and the figures (``contained``: K inside Theta).
    """
    d, m = V.shape
    md = m * d
    P = md * (d + 1)
    rows, ws = [], []
    for j, base in enumerate(bases):
        _, Jv, Ju, eta = _evaluate(base, V, Ucols[j])
        Jj = np.zeros((base.y.size, P))
        Jj[:, :md] = Jv.reshape(-1, md)
        Jj[:, md * (1 + j):md * (2 + j)] = Ju.reshape(-1, md)
        rows.append(Jj)
        ws.append(_weights(eta))
    Jt, w = np.concatenate(rows), np.concatenate(ws)
    A = np.linalg.pinv(Jt * w[:, None]) * w[None, :]
    n = Jt.shape[0]

    def work() -> tuple[arb_mat, dict[str, Any]]:
        Am = arb_mat(P, n, [float(x) for x in A.flat])
        centre = [arb(b.mid()) for b in box]
        resid, Jbox, misfits = [], [], 0
        for j, base in enumerate(bases):
            fs, _, _ = _ball_base(base.X, base.mask, *_blocks(centre, j, d, m), m)
            fbox, gvs, gus = _ball_base(base.X, base.mask, *_blocks(box, j, d, m), m)
            for k, y in enumerate(balls[j]):
                resid.append(fs[k] - y)
                # f over the box must meet the answer's ball, or no parameters in the
                # box answer like the oracle (decided by arb: rigorous)
                misfits += not fbox[k].overlaps(y)
                row = [arb(0)] * P
                row[:md] = gvs[k]
                row[md * (1 + j):md * (2 + j)] = gus[k]
                Jbox.append(row)
        Jm = arb_mat(n, P, [x for row in Jbox for x in row])
        Mm = Am * Jm
        for i in range(P):
            Mm[i, i] = Mm[i, i] - 1                 # A J(Theta) - I
        delta = arb_mat(P, 1, [b - c for b, c in zip(box, centre, strict=True)])
        K = arb_mat(P, 1, centre) - Am * arb_mat(n, 1, resid) - Mm * delta
        inside = all(box[i].contains_interior(K[i, 0]) for i in range(P))
        widest = max(float(K[i, 0].rad()) for i in range(P))
        return K, {"parameters": P, "equations": n, "contained": inside,
                   "max_radius": widest, "answers_missed": misfits}

    with ctx.workprec(F.prec):                 # the field's precision, locally
        return work()


def _canonical_order(Ws: list[Array], vs: list[Array]) -> list[int]:
    """The heads sorted by W row-major, then v (the order of the returned parameters)."""
    return sorted(range(len(Ws)), key=lambda h: tuple(Ws[h].flat) + tuple(vs[h]))


def _ball_recovery(F: BallField, rec: Recovery, K: arb_mat, B: Array, Ws: list[Array],
                   vs: list[Array], rho: Array, figures: dict[str, Any], H: int) -> Recovery:
    """The BALL recovery: W_h, v_h as the balls of the Krawczyk enclosure K.

    u_hj = W_h b_j, so U_h = W_h B^T and W_h^T = B^{-1} U_h^T, solved in arb (B is a
    float64 matrix, exact in arb, nearly orthogonal): every W_h ball contains W_h of
    every parameter vector in K.
    """
    m, d = len(Ws), B.shape[0]
    md = m * d

    def work() -> tuple[Array, Array]:
        Bm = arb_mat(d, d, [float(x) for x in B.flat])
        W = np.empty((m, d, d), dtype=object)
        v = np.empty((m, d), dtype=object)
        for k, h in enumerate(_canonical_order(Ws, vs)):
            UhT = arb_mat(d, d, [K[md * (1 + j) + h * d + i, 0] for j in range(d)
                                 for i in range(d)])          # row j: u_hj
            WhT = Bm.solve(UhT)
            for i in range(d):
                v[k, i] = PrecisionElement(K[h * d + i, 0], F)
                for j in range(d):
                    W[k, i, j] = PrecisionElement(WhT[j, i], F)
        return W, v

    with ctx.workprec(F.prec):
        W, v = work()
    radius = max(float(x.value.rad()) for x in [*W.flat, *v.flat])
    enclosure = dict(figures)
    enclosure.update({"box_radius_max": float(rho.max()), "max_parameter_radius": radius,
                      "precision": F.prec})
    options = dict(rec.options)
    options.update({"route": f"float64 solve, Krawczyk enclosure at {F.name}",
                    "enclosure": enclosure})
    return dataclasses.replace(
        rec, params={"W": W, "v": v}, options=options, approximate=True,
        hypotheses=(f"f has at most H = {H} canonical heads",
                    "the oracle's balls contain the exact values f(X)",
                    "the hidden canonical parameters lie in the Krawczyk box (the float solve "
                    "+- options['enclosure']['box_radius_max']): the test proves exactly one "
                    "solution of the answers' projected equations there, not that none "
                    "exists elsewhere"))


def f64_multihead_tolerance(rec: Recovery, Xs: Array) -> Array:
    """A first-order estimate of |f_hat(X) - f(X)| per query of a (B, N, d) batch.

    Per head, as for a single head: ||dW_h||_F max_i ||x_i|| ||x_N|| (spread of the
    c_i = x_i . v_h) + ||dv_h||_2 max_i ||x_i||, with the recovery's per-entry
    estimates; plus the rounding of both evaluations, 2 gamma_{4d+16} ||v_h||_1 max|x|.
    """
    W, v = rec.params["W"], rec.params["v"]
    eW, ev = rec.params["W_error_bound"], rec.params["v_error_bound"]
    g = float(rec.options["answer_error_factor"])
    norms = np.linalg.norm(Xs, axis=2)
    out = np.zeros(Xs.shape[0])
    for h in range(W.shape[0]):
        c = Xs @ v[h]
        spread = c.max(axis=1) - c.min(axis=1)
        out += (float(np.linalg.norm(eW[h])) * norms.max(axis=1) * norms[:, -1] * spread
                + float(np.linalg.norm(ev[h])) * norms.max(axis=1)
                + 2 * g * float(np.abs(v[h]).sum()) * np.abs(Xs).max(axis=(1, 2)))
    return out
