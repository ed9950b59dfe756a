"""Exact single-head attention with biases from (d + 1)^2 value queries.

Claims ``single_head_exact.biased_*`` (an extension of paper Thm 4.1 to the
biases of real attention modules); recoveries carry the label
``single_head_biased`` (their model, with c and beta, is rebuilt by its own
certificate builder). The model (:class:`~exactattn.models.BiasedSingleHeadAttention`):

    s_i = x_i^T W x_N + c^T x_i,   f(X) = sum_i softmax(s)_i (v . x_i) + beta.

Algorithm (written once, for every field; all queries have length 1 or 2):

Every token below is multiplied by the probe scale a > 0 (``scale=``,
default 1; see "Scale" below), written out where it matters.

1. beta: query [0^T]. One token gets weight 1 and v . 0 = 0: the answer is
   beta (1 query).
2. v: query [a e_i^T]; the answer is a v_i + beta, so v_i = (y_i - beta) / a
   (d queries).
3. If v = 0 then f = beta on every query and (W, c) is not identifiable:
   :class:`~exactattn.errors.NotIdentifiableError`, carrying the exact v, beta.
4. Probes u_1..u_d (rows of Z), linearly independent with every gain
   g_l = u_l^T v != 0: :func:`~exactattn.learners.single_head.probe_matrix`,
   the same probes as the unbiased learner (deterministic, det Z = 1, or
   seeded Gaussian).
5. c: query [a u_l^T; 0^T]. The scores are (a c^T u_l, 0) (the W terms
   carry a factor x_N = 0), the values (a g_l, 0), so
   y = beta + sigma(a u_l^T c) a g_l and
   t^c_l = logit((y - beta) / (a g_l)) = a u_l^T c (d queries).
6. W, column j: query [a (u_l + e_j)^T; a e_j^T]. The score gap is
   a^2 u_l^T W e_j + a c^T u_l (the terms in e_j alone cancel), so
   y = beta + a v_j + sigma(a u_l^T (a w_j + c)) a g_l and
   t_lj = logit((y - beta - a v_j) / (a g_l)) = a u_l^T (a w_j + c)
   (d^2 queries).
7. One solve with d + 1 right-hand sides: Z S = [t^c | T] gives
   S = a [c | a W + c 1^T], so c = S_0 / a and W = (S_W / a - c 1^T) / a.

Total: exactly 1 + d + d + d^2 = (d + 1)^2 queries, phases
``{"beta": 1, "v": d, "c": d, "W": d^2}``.

Optimality: (d + 1)^2 = d^2 + d + d + 1 is the number of real unknowns
(W, c, v, beta), and no learner can do with fewer. Precisely: let
n = d^2 + 2d + 1 and let L be any deterministic learner (for a randomised
one, fix its seed) that asks at most m < n value queries, each chosen from
the answers so far, possibly discontinuously, and then outputs parameters.
Let M_0 be a connected component of the open set of real parameters
theta = (W, c, v, beta) in R^n with v != 0 (an n-manifold). For every fixed
query X, theta -> f_theta(X) is real-analytic (scores and values are
polynomial in theta, softmax is analytic). Induction: suppose M_k is a
connected k'-dimensional submanifold of M_0, k' >= n - k, on which the first
k answers are constant. Then the (k + 1)-th query is one fixed X on all of
M_k, and g = f_theta(X) is smooth on M_k. Either g is constant on M_k (set
M_{k+1} = M_k), or dg != 0 at some point p of M_k (a function whose
differential vanishes on a connected manifold is constant), and by the
implicit function theorem a connected neighbourhood of p in the level set
{g = g(p)} is a submanifold of dimension k' - 1 >= n - k - 1: take it as
M_{k+1}. After at most m steps M_m has
dimension >= n - m >= 1, so it holds uncountably many distinct theta on
which L asks the same queries, gets the same answers, stops at the same time
and outputs the same parameters: it is wrong on all of them but at most one.
Hence every exact learner for real parameters needs >= n = (d + 1)^2
queries on some instance, and this learner, which always spends exactly n,
is optimal. (The same argument shows that Thm 4.1's d + d^2 is optimal
for the unbiased head. It is about real parameters and answers used as real
numbers; a learner that parses the exponents of an EXP answer, which a real
oracle does not expose, is outside it.) Identifiability, which makes exact
recovery possible at all, is proved by the learner itself: for v != 0 the
function determines (W, c, v, beta).

Scale. The paper's probes are unit tokens (a = 1). Real modules are built
for tokens of norm about sqrt(d) (LayerNorm outputs have entries of unit
variance), and torch's default initialisation gives W entries of size about
1/d, so unit tokens give score gaps of about 1/d: the sigmoid is read near
1/2, where float rounding of the answer costs a factor ~ 1/gap in the
logit. ``scale=sqrt(d)`` (a = 4, 8, 16 for d = 16, 64, 256: powers of two,
no rounding) puts the gaps at O(1) and gains about a factor a^2 in relative
accuracy over F64; it changes neither the count nor exactness (in EXP, a
must be rational).

Arithmetic. In EXP every step is exact: the logit of sigma(q) is the
rational q. An answer that no biased head can give raises
:class:`~exactattn.errors.RecoveryFailedError`, never a guess. Over F64 the
recovery carries first-order error estimates (:func:`biased_f64_error_bounds`)
for an oracle that rounds with unit roundoff ``roundoff`` (2^-53 for float64,
2^-24 for a float32 module).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import (
    NotIdentifiableError,
    RecoveryFailedError,
)
from ..fields import F64, UNIT_ROUNDOFF, Array, Field
from ..fields.float64 import higham_gamma
from ..linalg import SingularMatrixError, solve
from ..oracle import ValueOracle
from .arguments import checked_arguments, checked_scale
from .recovery import QuerySpan, Recovery
from .single_head import PAPER_REF as SINGLE_HEAD_REF
from .single_head import Probes, probe_inverse_norm, probe_logits, probe_matrix

__all__ = ["learn_biased_head", "biased_query_count", "biased_f64_error_bounds", "LABEL",
           "PAPER_REF"]

#: the recovery label (its model has c and beta, so it has its own certificate builder)
LABEL = "single_head_biased"
PAPER_REF = f"{SINGLE_HEAD_REF}, extended to biases"


#: the class named in errors when an answer is impossible for it
MODEL = "biased single-head attention model"


def biased_query_count(d: int) -> int:
    """The exact (and optimal) query count: d^2 + 2d + 1 = (d + 1)^2.

    >>> [biased_query_count(d) for d in (1, 2, 16)]
    [4, 9, 289]
    """
    return d * d + 2 * d + 1


@checked_arguments()
def learn_biased_head(
    oracle: ValueOracle,
    *,
    field: Field | None = None,
    probes: Probes = "deterministic",
    seed: int = 0,
    scale: Any = 1,
    roundoff: float = UNIT_ROUNDOFF,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """Recover (W, c, v, beta) of a biased head with exactly (d + 1)^2 queries.

    See the module docstring for the algorithm and the proof that no learner
    can use fewer queries.

    Parameters
    ----------
    oracle : the value oracle of the hidden head.
    field : the field to compute in (default: the oracle's; they must agree).
    probes : ``"deterministic"`` (det Z = 1) or ``"gaussian"`` (seeded).
    seed : seed of the Gaussian probes.
    scale : the probe scale a > 0 multiplying every token (default 1, the
        paper's unit probes); an element of the field (a rational in EXP).
        Over F64 with real modules, ``sqrt(d)`` (module docstring, "Scale").
    roundoff : F64 only: the unit roundoff of the oracle's arithmetic, used
        for the error bounds (default 2^-53; pass 2^-24 for a float32 module).
    progress : called as ``progress(j, d)`` after column j of W is measured.

    Returns
    -------
    Recovery
        label ``single_head_biased``, params ``W``, ``c``, ``v`` and ``beta``
        (an array of shape ()), phases ``beta``, ``v``, ``c``, ``W``; over F64
        the options hold ``W_error_bound``, ``c_error_bound``,
        ``v_error_bound``, ``beta_error_bound`` and ``answer_error_factor``.

    Raises
    ------
    NotIdentifiableError : v = 0 (then f = beta and W, c are arbitrary).
    RecoveryFailedError : an answer no biased head can give.

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import BiasedSingleHeadAttention
    >>> head = BiasedSingleHeadAttention([[1, -2], [3, 0]], [1, 0], [0, 5], -1, field=EXP)
    >>> rec = learn_biased_head(ValueOracle(head))
    >>> rec.W.tolist(), rec.params["c"].tolist(), rec.v.tolist(), rec.params["beta"][()]
    ([[1, -2], [3, 0]], [1, 0], [0, 5], -1)
    >>> rec.queries, dict(rec.queries_by_phase)
    (9, {'beta': 1, 'v': 2, 'c': 2, 'W': 4})
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    a = checked_scale(F, scale, roundoff)
    d = oracle.d
    span = QuerySpan.begin(oracle)

    I = F.eye(d)
    aI = I * a  # the scaled basis tokens a e_j
    zero = F.zeros((1, 1, d))
    # 1. beta from the query [0^T]
    beta = oracle.batch(zero, phase="beta")[0]
    # 2. v from d queries of length 1: a v_i + beta
    v = (oracle.batch(aI[:, None, :], phase="v") - beta) / a
    # 3. v = 0: nothing determines W or c
    if all(F.sign(x) == 0 for x in v):
        raise NotIdentifiableError(
            "v = 0, so f(X) = beta for every query X and neither W nor c can be "
            "identified from value queries; v = 0 and beta were recovered exactly with "
            f"{span.queries} queries",
            recovered={"v": v, "beta": beta},
        )
    # 4. probes, as for the unbiased head
    Z, pivot = probe_matrix(F, v, probes, seed=seed)
    g = Z @ v
    aZ = Z * a  # the scaled probes a u_l
    ag = g * a
    # 5. c: [a u_l^T; 0^T] answers beta + sigma(a u_l^T c) a g_l
    Xs = np.empty((d, 2, d), dtype=F.dtype)
    Xs[:, 0, :] = aZ
    Xs[:, 1, :] = F.zeros(d)
    y = oracle.batch(Xs, phase="c")
    R = F.zeros((d, d + 1))  # the logits [t^c | T]
    R[:, 0] = probe_logits(F, (y - beta) / ag, where="c", what="(y - beta) / (a u_l^T v)",
                           model=MODEL)
    # 6. a W + c 1^T, column by column: [a (u_l + e_j)^T; a e_j^T]
    for j in range(d):
        Xs[:, 0, :] = aZ
        Xs[:, 0, j] = aZ[:, j] + a  # rows a (u_l + e_j)
        Xs[:, 1, :] = aI[j]
        y = oracle.batch(Xs, phase="W")
        R[:, j + 1] = probe_logits(F, (y - beta - a * v[j]) / ag, where=f"W column {j}",
                                   what="(y - beta - a v_j) / (a u_l^T v)", model=MODEL)
        if progress is not None:
            progress(j + 1, d)
    # 7. one solve with d + 1 right-hand sides: S = a [c | a W + c 1^T]
    try:
        S = solve(F, Z, R)
    except SingularMatrixError as exc:  # pragma: no cover - Z is invertible by construction
        raise RecoveryFailedError(f"the probe matrix is singular: {exc}") from None
    c = S[:, 0] / a
    W = (S[:, 1:] / a - c[:, None]) / a
    beta_arr = np.empty((), dtype=F.dtype)
    beta_arr[()] = beta
    options: dict[str, object] = {"probes": probes, "pivot": pivot, "variant": "biased",
                                  "scale": F.to_json(a)}
    if F == F64:  # the estimates model float64 arithmetic (BALL/MP results are not float64)
        options["roundoff"] = float(roundoff)
        options.update(biased_f64_error_bounds(Z, v, float(beta), c, W, R, pivot=pivot,
                                               scale=float(a), roundoff=float(roundoff)))
    return span.recovery(
        label=LABEL,
        paper_ref=PAPER_REF,
        field=F,
        params={"W": W, "c": c, "v": v, "beta": beta_arr},
        seed=seed,
        options=options,
    )


def biased_f64_error_bounds(
    Z: Array, v: Array, beta: float, c: Array, W: Array, R: Array, *, pivot: int = -1,
    scale: float = 1.0, roundoff: float = UNIT_ROUNDOFF,
) -> dict[str, float]:
    """First-order estimates of the F64 error on the recovered (W, c, v, beta).

    Rounding model: unit roundoff u (``roundoff``: 2^-53 for IEEE 754
    binary64, 2^-24 for binary32) and Higham's gamma_n = n u / (1 - n u)
    (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed.,
    Lemma 3.1) for every length-n chain of roundings. Assumption about the
    oracle: it evaluates f by the usual formula with unit roundoff u, so an
    answer's error is at most g (||v||_1 max|x| + |beta|) with
    g = gamma_{4d+16}(u) (scores, softmax, weighted sum, bias). The learner's
    own arithmetic is float64. Propagated to first order through beta = y_0,
    v_i = (y_i - beta) / a, p = (y - beta [- a v_j]) / (a g_l), t = logit(p)
    (derivative 1/(p(1 - p))), the solve (||Z^{-1}||_2 and its backward
    error) and c = S_0 / a, W = (S_W / a - c 1^T) / a, with a = ``scale``.

    Returned: ``W_error_bound`` (Frobenius), ``c_error_bound`` and
    ``v_error_bound`` (2-norms), ``beta_error_bound``, ``answer_error_factor``
    (g). First-order estimates of the float error under the stated model, not
    proofs. A real module rounds its unmerged intermediate values, which the
    learner cannot see: beta = rho^T (W_o b_v + b_o), for one, may be a small
    difference of large terms and carry more rounding than g |beta|.
    """
    d = v.shape[0]
    a = float(scale)
    g = higham_gamma(4 * d + 16, roundoff)
    u64 = UNIT_ROUNDOFF
    v1 = float(np.abs(v).sum())
    e_beta = g * abs(beta)
    e_v = (g * (a * v1 + abs(beta)) + e_beta) / a + 2 * u64 * np.abs(v)  # per coordinate
    zmax = float(np.abs(Z).max())
    e_gain = higham_gamma(d, u64) * (np.abs(Z) @ np.abs(v)) + np.abs(Z) @ e_v
    gains = np.abs(Z @ v)
    P = 1.0 / (1.0 + np.exp(-R))  # p = sigma(t), recomputed from the logits
    # answer errors: c queries have max|x| = a zmax, W queries max|x| <= a (zmax + 1)
    e_y = np.empty_like(R)
    e_y[:, 0] = g * (a * v1 * zmax + abs(beta)) + e_beta
    e_y[:, 1:] = g * (a * v1 * (zmax + 1.0) + abs(beta)) + e_beta + a * e_v[None, :]
    dp = e_y / (a * gains[:, None]) + P * (e_gain / gains)[:, None]
    dR = dp / (P * (1.0 - P)) + higham_gamma(4, u64) * np.abs(R)
    Zinv = probe_inverse_norm(Z, pivot)
    S = a * np.concatenate([c[:, None], a * W + c[:, None]], axis=1)
    solve_error = higham_gamma(d, u64) * np.linalg.norm(np.abs(Z) @ np.abs(S), axis=0)
    dS = Zinv * (np.linalg.norm(dR, axis=0) + solve_error)  # per right-hand side
    dc = float(dS[0]) / a
    dW = (float(np.sqrt(np.sum(dS[1:] ** 2))) / a + float(np.sqrt(d)) * dc) / a
    return {"W_error_bound": dW, "c_error_bound": dc,
            "v_error_bound": float(np.linalg.norm(e_v)), "beta_error_bound": e_beta,
            "answer_error_factor": g}

