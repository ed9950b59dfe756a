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
5. W = Z^{-1} T: one d x d solve with d right-hand sides.

Total: exactly d + d^2 queries. In EXP every step is exact: the logit of
sigma(q) is the rational q (see :mod:`exactattn.fields.exponential`). An
answer that no single head can give (its logit is not of the form above)
raises :class:`~exactattn.errors.RecoveryFailedError`: the learner never
returns a guess.

Over F64 the deterministic probes use a pivot of largest |v_p| and treat
|v_l| < |v_p| / 2 as small, with u_l = e_l + sign(v_l v_p) e_p so that
|c_l| >= |v_p| (still det Z = 1); exact zero tests would make c_l tiny.
"""

from __future__ import annotations

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
from ..linalg import SingularMatrixError, rank, solve
from ..oracle import ValueOracle
from ..reconstruct import reconstruct_rational
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head", "probe_matrix", "probe_logits", "LABEL", "PAPER_REF",
           "query_count"]

LABEL = "single_head_exact"
PAPER_REF = "Thm 4.1 (v1), Thm 4.1 (v2)"

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
    rescale : over F64 only: re-ask a probe scaled by 2^-k whenever its logit is
        outside the safe range |t| <= SAFE_LOGIT (sigma near 0 or 1 loses the
        logit to rounding); each re-ask is one more query, in phase
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
    for j in range(d):
        Xs[:, 0, :] = Z
        Xs[:, 0, j] = Z[:, j] + 1  # rows u_l + e_j: d additions, not d^2
        Xs[:, 1, :] = I[j]
        y = oracle.batch(Xs, phase="W")
        p = (y - v[j]) / c
        if F == F64 and rescale:
            _rescale_column(oracle, Z, c, v, j, p, S[:, j])
        t = probe_logits(F, p, where=f"column {j}", what="(y - v_j) / (u_l^T v)",
                         model="single-head attention model")
        T[:, j] = t / S[:, j] if F == F64 else t
        if progress is not None:
            progress(j + 1, d)
    # 5. one solve
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


#: over F64, logits beyond this are re-measured with a scaled probe: at |t| = 4
#: the inverse amplifies rounding by 1/(p(1-p)) < 60, at |t| = 36 sigma rounds to 1
SAFE_LOGIT = 4.0
#: give up rescaling a probe after this many halvings (2^-60 ~ 1e-18)
MAX_RESCALE_STEPS = 60


def _rescale_column(oracle: ValueOracle, Z: Array, c: Array, v: Array, j: int, p: Array,
                    scales: Array) -> None:
    """F64: re-ask the probes of column j whose logit is unsafe, with u_l -> s u_l.

    For X = [(s u_l + e_j)^T; e_j^T] the score gap is s u_l^T w_j and the answer
    y = v_j + sigma(s t) s c_l. The scale s = 2^-k is chosen from the first
    estimate when it is finite (|s t| <= SAFE_LOGIT), by halving otherwise.
    Updates ``p`` (to the scaled probabilities) and ``scales`` in place.
    """
    d = v.shape[0]
    e_j = np.zeros(d)
    e_j[j] = 1.0
    for l in range(d):
        steps = 0
        while True:
            pl, s = p[l], scales[l]
            if 0 < pl < 1 and abs(np.log(pl) - np.log1p(-pl)) <= SAFE_LOGIT:
                break
            if steps >= MAX_RESCALE_STEPS:
                raise RecoveryFailedError(
                    f"column {j}, probe {l}: no probe scale down to 2^-{MAX_RESCALE_STEPS} "
                    "brings the logit into the safe range (p = (y - v_j)/(s u_l^T v) = "
                    f"{pl!r}); the oracle is not a single-head attention model")
            if 0 < pl < 1:  # finite but large: jump to a safe scale at once
                t = abs(np.log(pl) - np.log1p(-pl)) / s
                k = max(1, int(np.ceil(np.log2(t / SAFE_LOGIT * s))))
            else:  # saturated: shrink the scale exponentially fast (2^-1, 2^-3, 2^-7, ...)
                k = steps + 1
            s = s / 2.0**k
            steps += k
            X = np.stack([s * Z[l] + e_j, e_j])
            y = oracle(X, phase="W rescaled")
            p[l] = (y - v[j]) / (s * c[l])
            scales[l] = s


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


def probe_logits(F: Field, p: Array, *, where: str, what: str, model: str) -> Array:
    """logit(p) elementwise, for the sigmoids a probe measures; shared by the learners.

    For a head of the class ``model`` every entry of ``p`` (named ``what``) is a
    sigmoid: in (0, 1) with an exact logit in exact fields. Anything else is a
    :class:`~exactattn.errors.RecoveryFailedError` naming ``where`` and the probe,
    never a guess.
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
            raise InsufficientPrecisionError(
                f"{where}, probe {l}: {what} is undecided: {exc}. For hidden W, v with "
                "|entries| <= M and denominators <= Q, reconstruct.required_precision(d, M, Q) "
                "bits provably suffice", prec=exc.prec, needed_prec=exc.needed_prec) from None
        except (NotRepresentableError, ZeroDivisionError) as exc:
            raise RecoveryFailedError(
                f"{where}, probe {l}: {what} = {pl} has no exact logit ({exc}); {why}"
            ) from None
    return out


def f64_error_bounds(
    Z: Array, v: Array, c: Array, W: Array, T: Array, *, pivot: int = -1,
    scales: Array | None = None,
) -> dict[str, float]:
    """First-order float64 error bounds on the recovered W and v.

    Rounding model: IEEE binary64 with unit roundoff u = 2^-53 and Higham's
    gamma_n = n u / (1 - n u) (Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed., Lemma 3.1) for every length-n chain of roundings.
    Assumption: the oracle evaluates f in float64 by the usual formula, so an
    answer's error is at most gamma_m ||v||_1 max|x| with m = 4d + 16 (scores,
    softmax, weighted sum). Propagated to first order through
    p = (y - v_j)/c_l, t = logit(p) (derivative 1/(p(1-p))) and the solve
    (||Z^{-1}||_2, plus the solve's backward error gamma_d |Z||W|).
    A probe rescaled by s measures s t: its logit error is divided by s.
    Returned as ``W_error_bound`` (Frobenius) and ``v_error_bound`` (2-norm),
    labelled first-order: they are estimates of the float error, not proofs.
    """
    d = v.shape[0]
    g = _gamma(4 * d + 16)
    scale = float(np.abs(v).sum())
    e_v = g * scale
    e_y = g * scale * (1.0 + float(np.abs(Z).max()))
    e_c = _gamma(d) * (np.abs(Z) @ np.abs(v)) + np.abs(Z) @ np.full(d, e_v)
    S = np.ones_like(T) if scales is None else scales
    P = 1.0 / (1.0 + np.exp(-S * T))  # p = sigma(s t), recomputed from the logits
    abs_c = np.abs(c)[:, None] * S
    dp = (e_y + e_v) / abs_c + P * e_c[:, None] / abs_c
    dT = dp / (P * (1.0 - P)) / S + _gamma(4) * np.abs(T)
    if pivot >= 0:
        # deterministic probes: Z = I + a e_p^T with a_p = 0, so Z^{-1} = I - a e_p^T
        # and ||Z^{-1}||_2 <= 1 + ||a||_2 (O(d) instead of an inverse and an SVD)
        a = Z[:, pivot].copy()
        a[pivot] = 0.0
        Zinv = 1.0 + float(np.linalg.norm(a))
    else:
        Zinv = float(np.linalg.norm(np.linalg.inv(Z), 2))
    solve_error = _gamma(d) * float(np.linalg.norm(np.abs(Z) @ np.abs(W)))
    dW = Zinv * (float(np.linalg.norm(dT)) + solve_error)
    return {"W_error_bound": dW, "v_error_bound": e_v * np.sqrt(d), "answer_error_factor": g}


def _gamma(n: int) -> float:
    u = 2.0**-53
    return n * u / (1 - n * u)
