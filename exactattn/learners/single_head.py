"""Exact single-head attention from d + d^2 value queries.

Label ``single_head_exact``; paper Thm 4.1 (v1 and v2); paper.md §2.

Algorithm (written once, for every field):

1. v: query [e_i^T] for i = 1..d. One token gets softmax weight 1, so the
   answer is v_i whatever W is (d queries of length 1).
2. If v = 0 the function is identically 0 and W is not identifiable:
   :class:`~exactattn.errors.NotIdentifiableError`, carrying the exact v.
3. Probes u_1..u_d (rows of Z), linearly independent with every
   c_l = u_l^T v != 0. Deterministic: pick the pivot p with v_p != 0;
   u_l = e_l if v_l != 0, else e_l + e_p, so Z = I + sum e_l e_p^T, det Z = 1.
   Gaussian: seeded draws (rational in exact fields), redrawn until both
   conditions hold (decided exactly; no query is spent on a draw).
4. Column j of W (w_j = W e_j): query X = [(u_l + e_j)^T; e_j^T] for every
   l. Then s_1 - s_2 = u_l^T w_j (the W_jj term cancels) and the answer is
   y = v_j + sigma(u_l^T w_j) c_l, so t_lj = logit((y - v_j) / c_l) = u_l^T w_j
   (d^2 queries of length 2).
5. W = Z^{-1} T: W_lj = t_lj - t_pj where u_l = e_l + e_p (deterministic
   probes, Z^{-1} = I - a e_p^T), one d x d solve for Gaussian probes.

Total: exactly d + d^2 queries. In EXP every step is exact: the logit of
sigma(q) is the rational q (see :mod:`exactattn.fields.exponential`). An
answer that no single head can give (its logit is not of the form above)
raises :class:`~exactattn.errors.RecoveryFailedError`: the learner never
returns a guess.

Over F64 the deterministic probes use a pivot of largest |v_p| and treat
|v_l| < |v_p| / 2 as small, with u_l = e_l + sign(v_l v_p) e_p so that
|c_l| >= |v_p| (still det Z = 1); exact zero tests would make c_l tiny.

Over F64, large logits are re-measured at a scale (rescaling). sigma(t)
rounds to 0 or 1 for |t| > 37, and near there the logit of a rounded sigmoid
is lost. The probe X = [(u_l + s e_j)^T; (s e_j)^T] has score gap s t_lj and
answer y = s v_j + sigma(s t_lj) c_l (paper.md §2's two-token identity with
x = s e_j), so p = (y - s v_j) / c_l = sigma(s t_lj): no 1/s amplifies the
rounding of y, and the W_jj term, now s^2 W_jj, stays small. The scale
s = 2^-k is searched on the exponent k (doubling while sigma saturates, then
the estimate |t| ~ |logit(p)| / s, with bisection as the fallback) until
|s t| lies in [RESCALE_LOW, SAFE_LOGIT], where logit(p) has full relative
accuracy. Each re-ask is one query, counted in phase ``"W rescaled"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import numpy as np
from flint import fmpq

from ..errors import (
    InvalidEntryError,
    NotIdentifiableError,
    NotRepresentableError,
    RecoveryFailedError,
)
from ..fields import EXP, F64, Array, BallField, Field, InsufficientPrecisionError
from ..fields.float64 import higham_gamma
from ..linalg import SingularMatrixError, rank, solve
from ..oracle import ValueOracle
from ..reconstruct import reconstruct_rational
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head", "probe_matrix", "probe_logits", "LABEL", "PAPER_REF",
           "query_count"]

LABEL = "single_head_exact"
PAPER_REF = "Thm 4.1 (v1), Thm 4.1 (v2, reported)"

#: how many Gaussian probe matrices to draw before giving up (each draw is
#: valid with probability 1 over the reals; rational roundings almost always)
MAX_PROBE_DRAWS = 100

Probes = Literal["deterministic", "gaussian"]


def query_count(d: int) -> int:
    """The exact query count of Thm 4.1: d + d^2."""
    return d + d * d


def probe_matrix(
    field: Field, v: Array, probes: Probes = "deterministic", *, seed: int = 0
) -> tuple[Array, int]:
    """The probe matrix Z (rows u_l) for a known v != 0, and the pivot p.

    Every row has u_l^T v != 0 and Z is invertible. For ``"gaussian"`` the
    pivot is -1.

    >>> from exactattn.fields import QQ
    >>> Z, p = probe_matrix(QQ, QQ.array([0, 2, 0]))
    >>> Z.tolist(), p
    ([[1, 1, 0], [0, 1, 0], [0, 1, 1]], 1)
    """
    F = field
    d = v.shape[0]
    if probes == "deterministic":
        Z = F.eye(d)
        if F.exact:
            nonzero = [i for i in range(d) if F.sign(v[i]) != 0]
            p = nonzero[0]
            for l in range(d):
                if F.sign(v[l]) == 0:
                    Z[l, p] = F.one()
        else:
            # floats and balls: pivot on the largest |v_p| (magnitudes are heuristics only)
            mags = np.array([F.magnitude(x) for x in v], dtype=np.float64)
            p = int(np.argmax(mags).item())
            small = mags < mags[p] / 2
            small[p] = False
            for k in np.flatnonzero(small):
                same = F.to_float(v[k]) * F.to_float(v[p]) >= 0
                Z[k, p] = F.one() if same else -F.one()
        return Z, p
    if probes == "gaussian":
        rng = np.random.default_rng(seed)
        for _ in range(MAX_PROBE_DRAWS):
            Z = F.gaussian(rng, (d, d))
            c = Z @ v
            if all(F.sign(x) != 0 for x in c) and rank(F, Z) == d:
                return Z, -1
        raise RecoveryFailedError(  # pragma: no cover - probability ~0
            f"no valid Gaussian probe matrix in {MAX_PROBE_DRAWS} draws"
        )
    raise InvalidEntryError(f"probes must be 'deterministic' or 'gaussian', got {probes!r}")


@checked_arguments()
def learn_single_head(
    oracle: ValueOracle,
    *,
    field: Field | None = None,
    probes: Probes = "deterministic",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    max_denominator: int | None = None,
    rescale: bool = True,
) -> Recovery:
    """Recover (W, v) of a single attention head with exactly d + d^2 queries.

    Label ``single_head_exact`` (paper Thm 4.1). See the module docstring
    for the algorithm and the guarantees.

    Parameters
    ----------
    oracle : the value oracle of the hidden head.
    field : the field to compute in (default: the oracle's; they must agree).
    probes : ``"deterministic"`` (paper.md §2, det Z = 1) or ``"gaussian"``.
    seed : seed of the Gaussian probes.
    progress : called as ``progress(j, d)`` after column j of W is measured.
    rescale : over F64 only: re-ask a probe at a scale s = 2^-k whenever its logit
        is outside the safe range |t| <= SAFE_LOGIT (sigma near 0 or 1 loses the
        logit to rounding), searching k until |s t| is in [RESCALE_LOW, SAFE_LOGIT]
        (module docstring); each re-ask is one more query, in phase
        ``"W rescaled"``. ``False`` gives the plain d + d^2 algorithm.
    max_denominator : over BALL(prec) only: reconstruct every entry as the unique
        rational with denominator <= max_denominator in its ball
        (:mod:`exactattn.reconstruct`) and return an exact recovery over EXP;
        an ambiguous entry raises AmbiguousReconstructionError naming it and
        the precision that would settle it.

    Raises
    ------
    NotIdentifiableError : v = 0 (then f = 0 and W is arbitrary).
    RecoveryFailedError : an answer no single head can give.

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, -2], [3, 0]], [0, 5], field=EXP)
    >>> rec = learn_single_head(ValueOracle(head))
    >>> rec.W.tolist(), rec.v.tolist(), rec.queries
    ([[1, -2], [3, 0]], [0, 5], 6)
    >>> bool((rec.W == head.W).all() and (rec.v == head.v).all())
    True
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    if max_denominator is not None and not isinstance(F, BallField):
        raise InvalidEntryError("max_denominator needs a BALL(prec) oracle: reconstruction "
                                f"relies on rigorous enclosures, and {F.name} has none")
    d = oracle.d
    span = QuerySpan.begin(oracle)

    I = F.eye(d)
    # 1. v from d queries of length 1
    v = oracle.batch(I[:, None, :], phase="v")
    # 2. v = 0: nothing determines W
    if all(F.sign(x) == 0 for x in v):
        raise NotIdentifiableError(
            "v = 0, so f(X) = 0 for every query X and W cannot be identified "
            "from value queries; v = 0 was recovered exactly with "
            f"{span.queries} queries",
            recovered={"v": v},
        )
    # 3. probes
    Z, pivot = probe_matrix(F, v, probes, seed=seed)
    c = Z @ v
    # 4. the logits t_lj = u_l^T w_j, column by column, one batch per column
    T = F.zeros((d, d))
    S = np.ones((d, d))  # probe scales (F64 rescaling; 1 elsewhere)
    Xs = np.empty((d, 2, d), dtype=F.dtype)
    hint = 0  # F64 rescaling: the scale exponent that last worked (entries of one head
    # tend to share a magnitude, so it is the first guess for the next saturated probe)
    for j in range(d):
        Xs[:, 0, :] = Z
        Xs[:, 0, j] = Z[:, j] + 1  # rows u_l + e_j: d additions, not d^2
        Xs[:, 1, :] = I[j]
        y = oracle.batch(Xs, phase="W")
        p = (y - v[j]) / c
        if F == F64 and rescale:
            for l in range(d):
                p[l], k = _rescale_probe(oracle, Z, c, v, j, l, float(p[l]), hint)
                if k:
                    S[l, j], hint = 2.0**-k, k
        t = probe_logits(F, p, where=f"column {j}", what="(y - v_j) / (u_l^T v)",
                         model="single-head attention model",
                         precision_note=_SINGLE_HEAD_PRECISION)
        T[:, j] = t / S[:, j] if F == F64 else t
        if progress is not None:
            progress(j + 1, d)
    # 5. W = Z^{-1} T. Deterministic probes: Z = I + a e_p^T with a_p = 0, so
    # Z^{-1} = I - a e_p^T and W_lj = t_lj - a_l t_pj (paper.md §2) in every field:
    # O(d^2), exact in exact fields, and over BALL the radii the precision bound of
    # exactattn.reconstruct counts (at most twice a logit's), which a general ball
    # solve does not promise. Gaussian probes: one solve.
    if pivot >= 0:
        a = Z[:, pivot].copy()
        a[pivot] = F.zero()
        W = T - np.outer(a, T[pivot])
    else:
        try:
            W = solve(F, Z, T)
        except SingularMatrixError as exc:  # pragma: no cover - Z is invertible by construction
            raise RecoveryFailedError(f"the probe matrix is singular: {exc}") from None
    options: dict[str, object] = {"probes": probes, "pivot": pivot}
    if F == F64:
        options.update(f64_error_bounds(Z, v, c, W, T, pivot=pivot, scales=S))
        options["rescaled_probes"] = int((S != 1).sum())
    out_field: Field = F
    if max_denominator is not None and isinstance(F, BallField):
        W, v, radius = _reconstruct(F, W, v, max_denominator)
        out_field = EXP
        options.update({"reconstructed_from": F.name, "max_denominator": max_denominator,
                        "max_radius": str(radius)})
    hypotheses: tuple[str, ...] = ()
    if max_denominator is not None:
        hypotheses = (f"every entry of W and v is a rational of denominator <= "
                      f"{max_denominator}",)
    return span.recovery(
        hypotheses=hypotheses,
        label=LABEL,
        paper_ref=PAPER_REF,
        field=out_field,
        params={"W": W, "v": v},
        seed=seed,
        options=options,
    )


#: over F64, a logit |t| beyond this is re-measured with a scaled probe: at |t| = 4 the
#: inverse amplifies rounding by 1/(p(1-p)) < 60; at |t| ~ 37 sigma rounds to 1
SAFE_LOGIT = 4.0
#: a rescaled probe is kept once |s t| >= this (below it the logit loses relative
#: accuracy: its absolute error stays ~ u, so the relative one grows like 1/|s t|)
RESCALE_LOW = 1.0
#: |s t| aimed at when the scale is chosen from an estimate (inside the window)
RESCALE_TARGET = 2.0
#: a measured |logit| beyond this is treated as saturated (sigma within a few ulps
#: of 0 or 1: the estimate of t is not trusted, the exponent is doubled instead)
SATURATED_LOGIT = 30.0
#: the smallest scale tried is 2^-MAX_SCALE_EXPONENT (float64 reaches 2^-1074)
MAX_SCALE_EXPONENT = 1000
#: at most this many re-asked queries per probe (doubling ~ 10, then ~ 2 + bisection)
MAX_RESCALE_QUERIES = 40


def _rescale_probe(oracle: ValueOracle, Z: Array, c: Array, v: Array, j: int, l: int,
                   p: float, hint: int = 0) -> tuple[float, int]:
    """F64: (p, k) for probe l of column j, with |logit(p)| = |s t| in the safe window.

    ``p`` is the first measurement (s = 1), kept when |logit(p)| <= SAFE_LOGIT.
    Otherwise the probe is re-asked as X = [(u_l + s e_j)^T; (s e_j)^T] with
    s = 2^-k, whose p = (y - s v_j) / c_l is sigma(s t) (module docstring); k = 0
    when p is kept. The exponent k is searched: k_lo (largest k known to give |s t| > SAFE_LOGIT)
    and k_hi (smallest k known to give |s t| < RESCALE_LOW) bracket it; while
    sigma saturates k is doubled (or first set to ``hint``, the exponent that
    worked for the previous probe, when that is larger), otherwise k jumps to the estimate
    k + log2(|logit(p)| / RESCALE_TARGET), and bisects the bracket when the
    estimate falls outside it. The window spans a factor 4 > 2, so some k in
    the bracket always lands in it for a single head; anything else is a
    RecoveryFailedError with the figures, never a guess.
    """
    d = v.shape[0]
    e_j = np.zeros(d)
    e_j[j] = 1.0
    k = 0
    k_lo, k_hi = 0, MAX_SCALE_EXPONENT + 1
    seen: list[tuple[int, float]] = []
    for _ in range(MAX_RESCALE_QUERIES + 1):
        x = float(F64.logit(p)) if 0.0 < p < 1.0 else (math.inf if p >= 1.0 else -math.inf)
        ax = abs(x)
        seen.append((k, x))
        if ax <= SAFE_LOGIT and (k == 0 or ax >= RESCALE_LOW):
            return p, k
        if ax > SAFE_LOGIT:
            k_lo = k
        else:
            k_hi = k
        if ax > SATURATED_LOGIT:  # sigma saturated: no estimate, double the exponent
            nxt = max(2 * k, k + 5, hint if k == 0 else 0)
        elif ax > 0.0:
            nxt = k + round(math.log2(ax / RESCALE_TARGET))
        else:
            nxt = k_lo  # p = 1/2 exactly: no estimate
        if not k_lo < nxt < k_hi:
            nxt = (k_lo + k_hi) // 2
        if nxt <= k_lo:
            shown = seen if len(seen) <= 6 else [*seen[:3], *seen[-3:]]
            tried = ", ".join(f"|s t| = {abs(xx):.3g} at s = 2^-{kk}" for kk, xx in shown)
            raise RecoveryFailedError(
                f"column {j}, probe {l}: no probe scale s = 2^-k (0 <= k <= "
                f"{MAX_SCALE_EXPONENT}) brings the measured logit s t into "
                f"[{RESCALE_LOW}, {SAFE_LOGIT}] in {len(seen)} queries ({tried}); the oracle "
                "is not a single-head attention model (for one, the logit s t is linear in "
                f"s), or its logit exceeds {SAFE_LOGIT} * 2^{MAX_SCALE_EXPONENT}, beyond float64")
        k = nxt
        s = 2.0**-k
        X = np.stack([Z[l] + s * e_j, s * e_j])
        y = float(oracle(X, phase="W rescaled"))
        p = (y - s * float(v[j])) / float(c[l])
    raise RecoveryFailedError(  # pragma: no cover - the bracket shrinks at every step
        f"column {j}, probe {l}: the probe scale search did not settle in "
        f"{MAX_RESCALE_QUERIES} queries")


def _reconstruct(F: BallField, W: Array, v: Array, Q: int) -> tuple[Array, Array, object]:
    """Every entry as the unique rational of denominator <= Q in its ball, over EXP."""
    d = v.shape[0]
    radius = fmpq(0)
    W_exact = EXP.zeros((d, d))
    v_exact = EXP.zeros(d)
    for i in range(d):
        rec = reconstruct_rational(F, v[i], Q, entry=f"v[{i}]")
        v_exact[i], radius = EXP(rec.value), max(radius, rec.radius)
        for j in range(d):
            rec = reconstruct_rational(F, W[i, j], Q, entry=f"W[{i}][{j}]")
            W_exact[i, j], radius = EXP(rec.value), max(radius, rec.radius)
    return W_exact, v_exact, radius


#: what an undecided BALL logit of ``learn_single_head`` says about the bits that suffice
#: (the bound of exactattn.reconstruct is derived in prose, under its hypotheses (H1)-(H3),
#: for this learner's probes only; H2 is an assumption about the oracle)
_SINGLE_HEAD_PRECISION = (
    "For hidden W, v with |entries| <= M and denominators <= Q, "
    "reconstruct.required_precision(d, M, Q) bits suffice if the oracle's balls have "
    "radius <= ANSWER_RADIUS 2^-prec max(3M, 1) (its hypothesis H2)")


def probe_logits(F: Field, p: Array, *, where: str, what: str, model: str,
                 precision_note: str = "") -> Array:
    """logit(p) elementwise, for the sigmoids a probe measures; shared by the learners.

    For a head of the class ``model`` every entry of ``p`` (named ``what``) is a
    sigmoid: in (0, 1) with an exact logit in exact fields. Anything else is a
    :class:`~exactattn.errors.RecoveryFailedError` naming ``where`` and the probe,
    never a guess. ``precision_note`` is added to an InsufficientPrecisionError (a
    learner with a precision bound derived for its probes names it there).
    """
    why = (f"the oracle is not a {model} (or not exact): for such a head this quantity "
           "is a sigmoid, in (0, 1) with an exact logit")
    if F == F64:
        bad = ~((p > 0) & (p < 1))
        if bad.any():
            l = int(np.flatnonzero(bad)[0])
            raise RecoveryFailedError(
                f"{where}, probe {l}: {what} = {p[l]!r} is outside (0, 1); {why}. In F64 "
                "this also happens when a score gap is so large that sigma rounds to 0 or 1 "
                "(rescale the probes or the instance)")
        out: Array = F.logit(p)
        return out
    out = np.empty(p.shape, dtype=F.dtype)
    for l, pl in enumerate(p):
        try:
            out[l] = F.logit(pl)
        except InsufficientPrecisionError as exc:
            # a finite-precision oracle too coarse for this logit: say where, and the bits
            note = f". {precision_note}" if precision_note else ""
            raise InsufficientPrecisionError(
                f"{where}, probe {l}: {what} is undecided: {exc}{note}", prec=exc.prec,
                needed_prec=exc.needed_prec) from None
        except (NotRepresentableError, ZeroDivisionError) as exc:
            hint = ""
            if not F.exact and hasattr(F, "prec"):
                bits = int(F.prec)
                hint = (f". Over {F.name} p rounds to 0 or 1 once |logit| exceeds about "
                        f"{bits} ln 2 = {bits * math.log(2):.1f}: if the oracle is a head, "
                        "its logits need more bits")
            raise RecoveryFailedError(
                f"{where}, probe {l}: {what} = {pl} has no exact logit ({exc}); {why}{hint}"
            ) from None
    return out


def f64_error_bounds(
    Z: Array, v: Array, c: Array, W: Array, T: Array, *, pivot: int = -1,
    scales: Array | None = None,
) -> dict[str, float]:
    """First-order estimates of the float64 error on the recovered W and v.

    Rounding model: IEEE binary64 with unit roundoff u = 2^-53 and Higham's
    gamma_n = n u / (1 - n u) (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Lemma 3.1) for every length-n chain of roundings.
    Assumption: the oracle evaluates f in float64 by the usual formula
    (scores x_i^T (W x_N), the stable softmax, the weighted sum of x_i^T v), so
    with g = gamma_m, m = 4d + 16:

    * an answer's error is at most g ||v||_1 max|x| from the values and the
      weights' own roundings (max|x| <= max|Z| + s for the probe of scale s),
    * plus the rounding of the score gap, at most g s (|u_l|^T |w_j| + 2 s |W_jj|)
      for X = [(u_l + s e_j)^T; (s e_j)^T] (scores are dot products of length
      2d); it enters the logit s t directly. This term grows with |W|: it is
      what limits large heads (W_jj ~ 1e12 at s = 1 shifts the gap by ~1e-4).

    Propagated to first order through p = (y - s v_j)/c_l (v_j and c_l
    measured), x = logit(p) = s t (derivative 1/(p(1-p))), t = x / s (the
    logit error is divided by s: the point of rescaling) and W = Z^{-1} T
    (||Z^{-1}||_2, plus the rounding of that step: u |W| for the deterministic
    probes' W_lj = t_lj - a_l t_pj, the solve's backward error gamma_d |Z||W|
    for Gaussian probes). The recovered W stands in for the hidden one in the
    |W| terms (first order).
    Returned as ``W_error_bound`` (Frobenius) and ``v_error_bound`` (2-norm),
    labelled first-order: they are estimates of the float error, not proofs (the
    "bound" in these names is kept for the JSON format and the callers).
    """
    d = v.shape[0]
    g = higham_gamma(4 * d + 16)
    scale = float(np.abs(v).sum())
    e_v = g * scale
    absZ, absW = np.abs(Z), np.abs(W)
    e_c = higham_gamma(d) * (absZ @ np.abs(v)) + absZ @ np.full(d, e_v)
    S = np.ones_like(T) if scales is None else scales
    P = 1.0 / (1.0 + np.exp(-S * T))  # p = sigma(s t), recomputed from the logits
    e_y = g * scale * (float(absZ.max()) + S)
    e_gap = g * S * (absZ @ absW + 2.0 * S * np.diag(absW)[None, :])
    abs_c = np.abs(c)[:, None]
    dp = (e_y + S * e_v) / abs_c + P * e_c[:, None] / abs_c
    dT = (dp / (P * (1.0 - P)) + e_gap) / S + higham_gamma(4) * np.abs(T)
    Zinv = probe_inverse_norm(Z, pivot)
    if pivot >= 0:
        # the learner forms W_lj = t_lj - a_l t_pj (a_l in {0, +-1}): one rounding, u |W_lj|
        step_error = higham_gamma(1) * _norm(absW)
    else:
        step_error = Zinv * higham_gamma(d) * _norm(absZ @ absW)  # the solve's backward error
    dW = Zinv * _norm(dT) + step_error
    return {"W_error_bound": dW, "v_error_bound": e_v * np.sqrt(d), "answer_error_factor": g}


def probe_inverse_norm(Z: Array, pivot: int) -> float:
    """||Z^{-1}||_2 for a float64 probe matrix of :func:`probe_matrix`.

    Deterministic probes (``pivot`` >= 0): Z = I + a e_p^T with a_p = 0, so
    Z^{-1} = I - a e_p^T and ||Z^{-1}||_2 <= 1 + ||a||_2 (O(d), no inverse, no
    SVD; an upper bound, as the first-order estimates want). Gaussian probes: the
    2-norm of the inverse.
    """
    if pivot >= 0:
        a = np.array(Z[:, pivot], dtype=np.float64)
        a[pivot] = 0.0
        return 1.0 + float(np.linalg.norm(a))
    return float(np.linalg.norm(np.linalg.inv(Z), 2))


def _norm(A: Array) -> float:
    """The Frobenius norm without overflow of the squares (heads up to ~1e300)."""
    m = float(np.abs(A).max()) if A.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * float(np.linalg.norm(A / m))

