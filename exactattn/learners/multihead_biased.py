"""Canonical multi-head attention with biases (and low-rank heads) from a float64 oracle.

Label ``multihead_canonical`` (float variant, biased heads; issue 15 §2).
The hidden function is

    f(X) = beta + sum_h softmax(X (W_h x_N + c_h))^T X v_h,

the heads of a real attention layer read out by a vector (see
:class:`~exactattn.models.BiasedMultiHeadAttention`). Only the canonical form
is identifiable (heads with equal (W_h, c_h) merged, zero v dropped).

Reduction to the unbiased learner. At a query position b the head h scores
token x_i by x_i . u_h(b) with u_h(b) = W_h b + c_h: a biased head at base b
is an unbiased head whose column "W_h b" is the affine u_h(b). So the steps
of :func:`~exactattn.learners.learn_multihead_float` (its functions are
imported, not copied) run unchanged on the answers minus beta, at the bases

    b_0 = 0 (u_h(0) = c_h),   b_1, ..., b_d (rows of a random orthogonal B),

and W_h = [u_h(b_1) - c_h, ..., u_h(b_d) - c_h] B, c_h = u_h(b_0).

Steps
-----
0. Phase ``beta``: f([0]) = beta (one token 0: every head's value is 0).
1. Phase ``v`` and ``match`` at b_1, exactly as the float learner: head
   count m from the Loewner ranks of copy families (with its margin), v_h and
   u_h(b_1) from the fitted poles and residues (a constant S absorbs beta).
2. Phase ``W``: at every *full* base the float learner's isolating and pair
   design (K_W = m (d - m + 1) + 3 P m (m - 1) / 2 queries); b_1 is done at
   the scales ``REFINE_SCALES`` (phase ``refine``), which pins v down.
   Without ``rank`` the full bases are b_0, b_2, ..., b_d. Then damped
   Gauss-Newton on v and every u_.(b_j) (variable projection, the float
   learner's ``_refine``).
3. With ``rank=r`` (r <= d - m): the full bases are b_0, ..., b_r only.
   Every u_h(b) = W_h b + c_h lies in the column space of [W_h | c_h], of
   dimension <= r + 1, which the r + 1 vectors u_h(b_0), ..., u_h(b_r) span;
   C_h is an orthonormal basis of their span (numpy ``svd``; its dimension
   s_h is r + 1, or r when c_h lies in the column space of W_h, decided
   with a margin, :func:`_spans`). At each other base (phase
   ``W_low_rank``) r + 2 isolating two-token queries per head (directions
   p_h + t P_perp C_h g_k: they see head h only) give u_h(b) = C_h z_h(b)
   by least squares, polished by Gauss-Newton steps on that base. One
   query more than the s_h <= r + 1 coordinates: a u_h(b) outside the span
   (a head of rank above r) leaves a residual and is refused, never fitted
   exactly.

Query count (derived in prose; the sum below is checked as a polynomial by
the claim ``multihead_canonical.query_count_closed_form``). Every query is
asked in one of the batches above, of a
fixed size once m is known, so the count is :func:`biased_query_count`:

    Q = 1 + (1 + 2 H f d) + [m >= 2] (d - 1) + (n_full + |REFINE_SCALES|) K_W
        + n_low (r + 2) m,

n_full = d, n_low = 0 without a rank (or when r > d - m); n_full = r,
n_low = d - r with it. The tests assert it equals the oracle's counter.
Per head the low-rank part costs (d - r)(r + 2) queries, within d of the
(d - r) r entries that W_h's other columns add to the degrees of freedom
r(2d - r) + 2d of (W_h, c_h, v_h). The full bases (the copy families and
the pair design, which separate the heads) are what the multi-head case
pays above the single-head floor.

Error estimates (first order, not proved bounds; the status is ``float``).
As in the float learner, with two additions: beta is read from one answer,
so its error is that answer's rounding u |beta| and it shifts every other
answer; and the oracle's final addition of beta rounds, u |f(X)| per answer.
The reduced bases add the error of v and of the span C_h (a perturbation
||E_h|| / sigma_r of the span, Wedin) times |u_h(b)|.

Hypotheses: at most H canonical heads, m <= d with linearly independent
v_h (the isolating plan); with ``rank`` given, rank [W_h | c_h] <= r + 1
(implied by rank(W_h) <= r; this is all the low-rank bases use, so a head
of rank r + 1 whose c_h lies in its column space is learned, correctly);
and the float64 rounding model of the estimates.

Limits (measured, see docs/multihead_biased.md). The copy families fit m
poles from 2H ratios in float64; beyond about H = 6 too few families show
all heads decisively (H = 8, d = 64: 15 of 1280 families), and the learner
refuses with IllConditionedError and that report.

>>> from exactattn.models.multihead_biased import random_biased_multihead
>>> from exactattn.oracle import ValueOracle
>>> model = random_biased_multihead(2, 6, rank=2, seed=0)
>>> oracle = ValueOracle(model)
>>> rec = learn_multihead_biased(oracle, heads=2, rank=2)
>>> rec.status, rec.queries == biased_query_count(2, 6, rank=2) == oracle.queries
('float', True)
>>> bool(abs(rec.params["beta"] - model.beta) <= rec.params["beta_error_bound"])
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import (
    IllConditionedError,
    InvalidEntryError,
    RecoveryFailedError,
)
from ..fields import F64, UNIT_ROUNDOFF, Array, Field
from ..fields.float64 import higham_gamma
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .multihead import PAPER_REF
from .multihead_float import (
    DIRECTION_SCALE,
    FAMILIES_PER_DIMENSION,
    MAX_OPTION_COUNT,
    MAX_RELATIVE_BOUND,
    REFINE_SCALES,
    _Base,
    _copy_families,
    _error_maps,
    _evaluate,
    _isolating_design,
    _pack,
    _phase_match,
    _phase_w_base,
    _refine,
    _sized,
)
from .recovery import QuerySpan, Recovery

__all__ = ["learn_multihead_biased", "biased_query_count", "low_rank_applies", "LABEL",
           "CLAIM_LABEL", "f64_biased_multihead_tolerance"]

#: the recovery's label: its certificate rebuilds a biased multi-head model
#: (registered in :mod:`exactattn.checks.multihead_biased`)
LABEL = "multihead_biased"
#: the registry label its claims live under (the canonical multi-head result)
CLAIM_LABEL = "multihead_canonical"
U = UNIT_ROUNDOFF
#: Newton steps on each low-rank base's square system (2 or 3 are typical)
LOW_RANK_STEPS = 8
#: two-pole families per pair of heads and base (the float learner's P); with one, a badly
#: separated pair leaves the refinement at a wrong point about once in ten bases at
#: H = 4, d = 32 (measured; the residual check then refuses), with two never in our runs
PAIR_DIRECTIONS = 2
#: size of the null-space part of the low-rank isolating directions, relative to p_h
LOW_RANK_SPREAD = 1.0


def low_rank_applies(d: int, m: int, rank: int | None) -> bool:
    """Whether the low-rank bases are used: a rank is given and r <= d - m (then the
    isolating directions of a head, a space of dimension d - m + 1, can pin r + 1
    coordinates).

    >>> low_rank_applies(64, 8, 8), low_rank_applies(8, 4, 6), low_rank_applies(8, 4, None)
    (True, False, False)
    """
    return rank is not None and 1 <= rank <= d - m


def biased_query_count(H: int, d: int, *, rank: int | None = None, m: int | None = None,
                       families_per_dimension: int = FAMILIES_PER_DIMENSION,
                       pair_directions: int = PAIR_DIRECTIONS) -> int:
    """The exact query count of :func:`learn_multihead_biased` (module docstring).

    >>> biased_query_count(2, 6, rank=2), biased_query_count(2, 6)
    (151, 183)
    >>> biased_query_count(8, 64, rank=8), biased_query_count(8, 64)
    (12833, 43297)
    """
    m = H if m is None else m
    total = 1 + 1 + 2 * H * families_per_dimension * d
    if m == 0:
        return total
    if m >= 2:
        total += d - 1
    K_W = m * (d - m + 1) + 3 * pair_directions * (m * (m - 1) // 2)
    if low_rank_applies(d, m, rank):
        assert rank is not None
        return total + (rank + len(REFINE_SCALES)) * K_W + (d - rank) * (rank + 2) * m
    return total + (d + len(REFINE_SCALES)) * K_W


@checked_arguments(counts={"heads": (1, 1024), "rank": (1, 1 << 20),
                           "families_per_dimension": (1, MAX_OPTION_COUNT),
                           "pair_directions": (1, MAX_OPTION_COUNT)})
def learn_multihead_biased(
    oracle: ValueOracle,
    *,
    heads: int,
    rank: int | None = None,
    field: Field | None = None,
    seed: int = 0,
    max_relative_bound: float = MAX_RELATIVE_BOUND,
    direction_scale: float = DIRECTION_SCALE,
    families_per_dimension: int = FAMILIES_PER_DIMENSION,
    pair_directions: int = PAIR_DIRECTIONS,
    scale: float = 1.0,
    refine_families: bool = True,
) -> Recovery:
    """Recover the canonical biased heads (W_h, c_h, v_h) and beta from a float64 oracle.

    Label ``multihead_canonical`` (float variant, biased heads); see the module
    docstring for the steps, the estimates and the derived count
    :func:`biased_query_count`.

    Parameters
    ----------
    oracle : value oracle over F64.
    heads : H, an upper bound on the number of canonical heads.
    rank : r, a bound on rank(W_h) of every head (the head dimension of a real
        layer); used when r <= d - m (:func:`low_rank_applies`). A hypothesis.
    seed : seed of the random bases and directions.
    max_relative_bound : refuse (IllConditionedError) when an entry's first-order
        error estimate, relative to the largest entry of its head's W, c or v,
        exceeds this.
    direction_scale, families_per_dimension, pair_directions : as in
        :func:`~exactattn.learners.learn_multihead_float`.
    scale : the norm of the bases b_1, ..., b_d (the query positions). Heads with small
        W (a real layer: entries about 0.05) give score gaps W_h b of order scale x
        ||W_h||; a larger scale separates the heads' poles and sharpens the logits.
    refine_families : whether the phase-v copy families and match queries (up to
        2 ``MAX_COPIES`` tokens each) enter the final refinement with the rest. False
        keeps the refinement's memory at (queries x 3 x d) floats: at d = 384 the
        families alone are 3073 queries of 128 tokens (1.2 GB of float64, twice that
        in the extended-precision residual); v is then pinned by the isolating queries.

    Returns
    -------
    Recovery over F64, status ``float``: ``params["W"]`` (m, d, d), ``"c"`` (m, d),
    ``"v"`` (m, d) (row h is head h), ``"beta"`` (a float), sorted by (W_h, c_h)
    row-major, and ``*_error_bound`` of the same shapes (first-order estimates,
    not proved bounds). ``options``: ``m``, ``rank``, ``low_rank``,
    ``head_count`` (its margin in decades), ``conditioning``, ``residual``,
    ``noise_bound``, ``iterations``.

    Raises
    ------
    InvalidEntryError : not an F64 oracle, or a bad argument (before any query).
    IllConditionedError : the head count is undecided, or an estimate exceeds
        ``max_relative_bound``; the report names the measured figures.
    HypothesisViolatedError : more canonical heads than d, or dependent v_h.
    RecoveryFailedError : the answers are not those of <= H biased heads
        (of rank <= r when given) in float64.
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    if F != F64:
        raise InvalidEntryError(
            f"learn_multihead_biased runs over F64, not {F.name} (a float64 oracle)")
    for name, val in (("max_relative_bound", max_relative_bound),
                      ("direction_scale", direction_scale), ("scale", scale)):
        if not isinstance(val, int | float) or isinstance(val, bool) or not (
                math.isfinite(val) and val > 0):
            raise InvalidEntryError(f"{name} must be a positive finite number, got {val!r}")
    if not isinstance(refine_families, bool):
        raise InvalidEntryError(f"refine_families must be True or False, got "
                                f"{refine_families!r}")
    H, d = heads, oracle.d
    if rank is not None and rank > d:
        raise InvalidEntryError(f"rank = {rank} exceeds d = {d}")
    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng([seed, d, H, 15])
    B = np.linalg.qr(rng.standard_normal((d, d)))[0]       # rows b_1..b_d, orthonormal
    # index j: b_0 = 0, b_j = scale B[j - 1] (u_h(b) is affine in b: W_h = (U_h - c_h) B / scale)
    bases_b = np.concatenate([np.zeros((1, d)), scale * B])
    n_fam = families_per_dimension * d
    Cand = rng.standard_normal((n_fam, d)) * (direction_scale / math.sqrt(d))
    b1 = bases_b[1]
    base_queries: list[list[Array]] = [[] for _ in range(d + 1)]
    base_answers: list[list[float]] = [[] for _ in range(d + 1)]

    # 0. beta -------------------------------------------------------------------------
    y0 = float(oracle.batch([np.zeros((1, d))], phase="beta")[0])
    beta = y0

    def ask(Xs: list[Array], j: int, phase: str) -> Array:
        """Answers minus beta: an unbiased multi-head oracle with columns u_h(b_j)."""
        ys = np.asarray(oracle.batch(Xs, phase=phase), dtype=np.float64) - beta
        if refine_families or phase not in ("v", "match"):
            base_queries[j].extend(Xs)
            base_answers[j].extend(float(y) for y in ys)
        return ys

    # 1. phase v and match at b_1 (the float learner's functions) ------------------------
    fam = _copy_families(ask, 1, b1, Cand, H, d)
    m, count_report = fam.m, fam.report
    common = {"F": F, "span": span, "d": d, "seed": seed, "H": H, "rank": rank, "scale": scale,
              "refine_families": refine_families,
              "count_report": count_report, "beta": beta, "y0": y0}
    if m == 0:
        return _finish(common, [], [], [], [], [], [], {}, 0.0, 0.0, 0, False,
                       max_relative_bound)
    V, U1, match_margin = _phase_match(
        ask, 1, b1, Cand, fam, d, learner="the learner", ranks_shown=40,
        why=f"Fitting {m} poles from {2 * H} copy ratios in float64 is at its limit (some "
            "poles nearly coincide along most directions, or there are too many heads); "
            "raise families_per_dimension or direction_scale")

    # 2. phase W at the full bases -------------------------------------------------------
    P, singles, pairs, pair_dirs = _isolating_design(V, pair_directions, rng)
    low = low_rank_applies(d, m, rank)
    full = [0] + list(range(2, (rank + 1) if low and rank is not None else d + 1))
    first: dict[int, Array] = {1: U1}   # u_h(b_1) from phase v
    for j in full:
        first[j] = _phase_w_base(ask, j, bases_b[j], V, singles, pairs, pair_dirs, 1.0, "W")
    for refine_scale in REFINE_SCALES:
        _phase_w_base(ask, 1, b1, V, singles, pairs, pair_dirs, refine_scale, "refine")
    full_idx = sorted(full + [1])
    # the first estimates (logits of the isolating queries), then the joint refinement
    packed = [_pack(base_queries[j], base_answers[j]) for j in full_idx]
    V, Ucols, iterations = _refine(packed, V, [first[j] for j in full_idx])
    bound_v, bound_U, residual2, noise2, conds = _bounds(packed, V, Ucols, beta)
    u_of = {j: Ucols[i] for i, j in enumerate(full_idx)}
    bu_of = {j: bound_U[i] for i, j in enumerate(full_idx)}

    # 3. low-rank bases ----------------------------------------------------------------
    if low:
        assert rank is not None
        spans, span_err, span_margin = _spans(u_of, bu_of, full_idx, m)
        conds["span_perturbation_max"] = max(span_err)
        conds["span_dimensions"] = [int(C.shape[1]) for C in spans]
        conds["span_margin_decades"] = min(span_margin)
        N = P[:, m:]
        dirs = []
        for h in range(m):
            Pc = N @ (N.T @ spans[h])
            Pc = Pc / np.maximum(np.linalg.norm(Pc, axis=0), 1e-300)
            # r + 2 directions (a fixed count): at least one more than the s_h <= r + 1
            # coordinates, so that a u_h(b) outside the span (a rank above r) leaves a
            # residual instead of being fitted exactly
            mix = np.concatenate([np.eye(Pc.shape[1]), rng.standard_normal(
                (rank + 2 - Pc.shape[1], Pc.shape[1])) / math.sqrt(Pc.shape[1])])
            dirs.append(np.stack([_sized(P[:, h] + LOW_RANK_SPREAD * Pc @ mix[k])
                                  for k in range(rank + 2)]))
        cond_low = 0.0
        for j in range(rank + 1, d + 1):
            Uj, bUj, res2, noise2_j, cz = _low_rank_base(ask, j, bases_b[j], V, bound_v,
                                                         spans, span_err, dirs, beta,
                                                         base_queries, base_answers)
            u_of[j], bu_of[j] = Uj, bUj
            residual2 += res2
            noise2 += noise2_j
            cond_low = max(cond_low, cz)
        conds["cond_low_rank_max"] = cond_low
    conds["match_margin"] = match_margin
    # 4. the affine solve: c_h = u_h(b_0), W_h = [u_h(b_j) - c_h]_j B -------------------
    Ws, cs, vs, bW, bc, bv = [], [], [], [], [], []
    for h in range(m):
        c = u_of[0][:, h]
        bcv = bu_of[0][:, h]
        Uh = np.stack([u_of[j][:, h] for j in range(1, d + 1)], axis=1) - c[:, None]
        bUh = np.stack([bu_of[j][:, h] for j in range(1, d + 1)], axis=1) + bcv[:, None]
        W = Uh @ B / scale
        Ws.append(W)
        bW.append(bUh @ np.abs(B) / scale + 2 * U * np.abs(W))
        cs.append(c)
        bc.append(bcv + 2 * U * np.abs(c))
        vs.append(V[:, h])
        bv.append(bound_v[:, h] + 2 * U * np.abs(V[:, h]))
    return _finish(common, Ws, cs, vs, bW, bc, bv, conds, math.sqrt(residual2),
                   math.sqrt(noise2), iterations, low, max_relative_bound)


def _beta_error(beta: float, d: int) -> float:
    """The rounding estimate of the answer f([0]) = beta: the oracle computes beta from
    its own parameters (for a layer, rho^T (W_o b_v + b_o), a sum over d terms); with the
    answers' factor gamma_{4d+16} |beta| (a first-order estimate, not a bound)."""
    return higham_gamma(4 * d + 16) * abs(beta)


def _noise(base: _Base, V: Array, Uj: Array, beta: float) -> tuple[Array, Array, Array, Array]:
    """f, df/dv, df/du and the per-answer noise estimate of one base (float learner's
    ``_evaluate`` plus the rounding of beta's addition and the error of beta itself)."""
    f, Jv, Ju, eta = _evaluate(base, V, Uj)
    d = base.X.shape[2]
    noise = 2 * eta + 2 * U * np.abs(f + beta) + _beta_error(beta, d)
    return f, Jv, Ju, noise


def _bounds(bases: list[_Base], V: Array, Ucols: list[Array], beta: float
            ) -> tuple[Array, list[Array], float, float, dict[str, Any]]:
    """First-order estimates |L| noise of v and every u_.(b_j) over the full bases, as
    the float learner's ``_bounds`` with the biased noise model (:func:`_noise`)."""
    d, m = V.shape
    noises, parts, Gs = [], [], []
    residual2 = 0.0
    for j, base in enumerate(bases):
        f, Jv, Ju, noise = _noise(base, V, Ucols[j], beta)
        residual2 += float(((base.y - f) ** 2).sum())
        noises.append(noise)
        A = Jv.reshape(len(f), m * d)
        C = Ju.reshape(len(f), m * d)
        Q, R = np.linalg.qr(C)
        Gs.append(A - Q @ (Q.T @ A))
        parts.append((A, Q, R))
    bound_v, bound_U, eta_all, conds = _error_maps(
        noises, parts, Gs, m, d, pseudo_inverse=lambda Q, R: np.linalg.solve(R, Q.T))
    return bound_v, bound_U, residual2, float((eta_all ** 2).sum()), conds


def _spans(u_of: dict[int, Array], bu_of: dict[int, Array], full_idx: list[int], m: int
           ) -> tuple[list[Array], list[float], list[float]]:
    """Per head an orthonormal basis C_h of span{u_h(b_j): j full} (numpy svd), the
    first-order perturbation of that span (||E_h||_F / sigma_s, Wedin) and the margin
    of the rank decision in decades.

    The r + 1 vectors span col [W_h | c_h]: dimension r + 1, or r when c_h lies in the
    column space of W_h (as in real layers). The dimension s_h kept is the number of
    singular values above the geometric mean of sigma_1 and the error estimate ||E_h||_F:
    a noise direction kept would make the low-rank bases' systems ill-conditioned."""
    spans, errs, margins = [], [], []
    for h in range(m):
        M = np.stack([u_of[j][:, h] for j in full_idx], axis=1)
        E = float(np.linalg.norm(np.stack([bu_of[j][:, h] for j in full_idx], axis=1)))
        Y, s, _ = np.linalg.svd(M, full_matrices=False)
        tau = math.sqrt(max(E, 1e-300) * float(s[0]))
        k = max(1, int((s > tau).sum()))
        spans.append(Y[:, :k])
        errs.append(E / float(s[k - 1]))
        below = float(s[k]) if k < s.size else 0.0
        margins.append(math.log10(min(float(s[k - 1]) / tau, tau / below if below > 0
                                      else math.inf)))
    return spans, errs, margins


def _low_rank_base(ask: Any, j: int, b: Array, V: Array, bound_v: Array, spans: list[Array],
                   span_err: list[float], dirs: list[Array], beta: float,
                   base_queries: list[list[Array]], base_answers: list[list[float]]
                   ) -> tuple[Array, Array, float, float, float]:
    """u_h(b) = C_h z_h at one low-rank base: (r + 2) m isolating queries, logits, Gauss-Newton."""
    d, m = V.shape
    Xs = [np.stack([b + delta, b]) for h in range(m) for delta in dirs[h]]
    ys = ask(Xs, j, "W_low_rank")
    base = _pack(base_queries[j], base_answers[j])
    gb = float(V.sum(axis=1) @ b)
    n = dirs[0].shape[0]
    z = []
    for h in range(m):
        D = dirs[h]
        size = D @ V[:, h]
        yh = ys[h * n:(h + 1) * n]
        p = np.clip((yh - gb) / size, 1e-12, 1 - 1e-12)
        z.append(np.linalg.lstsq(D @ spans[h], np.log(p / (1 - p)), rcond=None)[0])
    sizes = np.cumsum([0] + [C.shape[1] for C in spans])

    def columns(zz: Array) -> Array:
        return np.stack([spans[h] @ zz[sizes[h]:sizes[h + 1]] for h in range(m)], axis=1)

    Z = np.concatenate(z)
    for _ in range(LOW_RANK_STEPS):
        f, _, Ju, _ = _evaluate(base, V, columns(Z))
        J = np.concatenate([Ju[:, h, :] @ spans[h] for h in range(m)], axis=1)
        step = np.linalg.lstsq(J, base.y - f, rcond=None)[0]
        Z = Z + step
        if np.abs(step).max() <= 4 * U * max(1.0, float(np.abs(Z).max())):
            break
    Uj = columns(Z)
    f, Jv, Ju, noise = _noise(base, V, Uj, beta)
    J = np.concatenate([Ju[:, h, :] @ spans[h] for h in range(m)], axis=1)
    Jinv = np.linalg.pinv(J)
    # answer noise and the error of v (first order), then the span's error per head
    total = noise + np.abs(Jv.reshape(len(f), m * d)) @ bound_v.T.reshape(m * d)
    bz = np.abs(Jinv) @ total
    bU = np.stack([np.abs(spans[h]) @ bz[sizes[h]:sizes[h + 1]]
                   + span_err[h] * float(np.linalg.norm(Uj[:, h])) for h in range(m)], axis=1)
    # the misfit this base may show: the answers' noise and, v being held at its estimate
    # here (not refitted), v's error propagated to first order
    return (Uj, bU, float(((base.y - f) ** 2).sum()), float((total ** 2).sum()),
            float(np.linalg.cond(J)))


def stack_biased_heads(Ws: list[Array], cs: list[Array], vs: list[Array], bW: list[Array],
                       bc: list[Array], bv: list[Array], d: int, beta: float
                       ) -> tuple[dict[str, Any], list[float]]:
    """The recovered heads in canonical order (sorted by (W_h, c_h) row-major), head first,
    with their estimates and beta's, as the params of a recovery; and per head the largest
    estimate relative to the head's largest entry of W, of max(c, W), of v. A zero block
    (W_h = 0 is a valid head) is exact only when its estimate is 0 too; nan (a degenerate
    solve) counts as infinite."""
    m = len(Ws)
    order = sorted(range(m), key=lambda h: tuple(Ws[h].flat) + tuple(cs[h]))
    W, c, v = np.zeros((m, d, d)), np.zeros((m, d)), np.zeros((m, d))
    eW, ec, ev = np.zeros((m, d, d)), np.zeros((m, d)), np.zeros((m, d))
    for k, h in enumerate(order):
        W[k], c[k], v[k], eW[k], ec[k], ev[k] = Ws[h], cs[h], vs[h], bW[h], bc[h], bv[h]

    def ratio(err: float, size: float) -> float:
        out = err / size if size > 0 else (math.inf if err > 0 else 0.0)
        return out if math.isfinite(out) else math.inf

    rel = [max(ratio(float(eW[h].max()), float(np.abs(W[h]).max())),
               ratio(float(ec[h].max()), max(float(np.abs(c[h]).max()),
                                              float(np.abs(W[h]).max()))),
               ratio(float(ev[h].max()), float(np.abs(v[h]).max()))) for h in range(m)]
    recovered = {"W": W, "c": c, "v": v, "beta": np.array(beta), "W_error_bound": eW,
                 "c_error_bound": ec, "v_error_bound": ev,
                 "beta_error_bound": np.array(_beta_error(beta, d))}
    return recovered, rel


def _finish(common: dict[str, Any], Ws: list[Array], cs: list[Array], vs: list[Array],
            bW: list[Array], bc: list[Array], bv: list[Array], conds: dict[str, Any],
            residual: float, noise: float, iterations: int, low: bool,
            max_relative_bound: float) -> Recovery:
    F, d, H, rank = common["F"], common["d"], common["H"], common["rank"]
    span: QuerySpan = common["span"]
    beta = common["beta"]
    m = len(Ws)
    recovered, rel = stack_biased_heads(Ws, cs, vs, bW, bc, bv, d, beta)
    report = dict(conds)
    report.update({"relative_bound_per_head": rel, "max_relative_bound": max(rel, default=0.0)})
    if m and residual > 2 * noise:
        raise RecoveryFailedError(
            f"after refinement the {m}-head biased model leaves a residual ||y - f_hat||_2 = "
            f"{residual:.3e} > 2 x the answers' rounding estimate {noise:.3e}: the answers are "
            f"not those of {m} canonical biased heads"
            + (f" with rank [W_h | c_h] <= r + 1 = {rank + 1}" if low and rank else "")
            + " in float64 (a head of larger rank than declared, more heads than heads=, "
            "two nearly equal heads, or not multi-head attention)")
    if m and report["max_relative_bound"] > max_relative_bound:
        raise IllConditionedError(
            f"the recovery is ill-conditioned: first-order relative error estimate "
            f"{report['max_relative_bound']:.3e} > {max_relative_bound:.1e} (per head "
            f"{[f'{x:.1e}' for x in rel]}); conditioning {conds}. Pass a larger "
            "max_relative_bound to accept these estimates", report=report, recovered=recovered)
    report = {k: (None if isinstance(x, float) and math.isinf(x) else x)
              for k, x in report.items()}
    hypotheses = [f"f has at most H = {H} canonical heads, m <= d, with linearly "
                  "independent v_h"]
    if low:
        hypotheses.append(f"rank [W_h | c_h] <= r + 1 = {rank + 1} for every head (implied by "
                          f"rank(W_h) <= r = {rank})")
    hypotheses.append("the oracle evaluates f in float64 by the usual formula (rounding model "
                      "of the error estimates); the estimates are first order, not proved "
                      "bounds")
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=F, params=recovered, seed=common["seed"],
        options={"m": m, "plan": "biased" if m else "none", "heads": H, "rank": rank,
                 "scale": common["scale"], "refine_families": common["refine_families"],
                 "low_rank": low, "route": "float64",
                 "head_count": dict(common["count_report"]), "conditioning": report,
                 "residual": residual, "noise_bound": noise, "iterations": iterations,
                 "answer_error_factor": higham_gamma(4 * d + 16)},
        hypotheses=tuple(hypotheses))


def f64_biased_multihead_tolerance(rec: Recovery, Xs: Array) -> Array:
    """A first-order estimate of |f_hat(X) - f(X)| per query of a (B, N, d) batch.

    Per head: ||dW_h||_F max_i ||x_i|| ||x_N|| + ||dc_h|| max_i ||x_i||, times the
    spread of the values x_i . v_h, plus ||dv_h|| max_i ||x_i||; plus the error of
    beta and the rounding of both evaluations, 2 gamma_{4d+16} (||v_h||_1 max|x| + |beta|).
    """
    W, v = rec.params["W"], rec.params["v"]
    eW, ec, ev = rec.params["W_error_bound"], rec.params["c_error_bound"], \
        rec.params["v_error_bound"]
    g = float(rec.options["answer_error_factor"])
    beta = float(rec.params["beta"])
    norms = np.linalg.norm(Xs, axis=2)
    out = np.full(Xs.shape[0], float(rec.params["beta_error_bound"]) + 2 * g * abs(beta))
    for h in range(W.shape[0]):
        vals = Xs @ v[h]
        spread = vals.max(axis=1) - vals.min(axis=1)
        out += ((float(np.linalg.norm(eW[h])) * norms[:, -1] + float(np.linalg.norm(ec[h])))
                * norms.max(axis=1) * spread
                + float(np.linalg.norm(ev[h])) * norms.max(axis=1)
                + 2 * g * float(np.abs(v[h]).sum()) * np.abs(Xs).max(axis=(1, 2)))
    return out
