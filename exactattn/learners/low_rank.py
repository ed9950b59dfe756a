"""Low-rank attention heads: rank-one sensing, and an adaptive learner at the floor.

Labels ``low_rank_sensing`` (paper Thm 5.2 v1 = Thm 5.1 v2; paper.md §4) and
``low_rank_adaptive`` (exactattn's own result). Hypotheses of both:
v != 0 and rank(W) <= r.

The rank-one measurement
------------------------
For the query X = [(u + x)^T; x^T] the score gap is
s_1 - s_2 = (u + x)^T W x - x^T W x = u^T W x, so the two-token identity
(paper.md §2) gives y = x^T v + sigma(u^T W x) (u^T v), and, when u^T v != 0,

    logit((y - x^T v) / (u^T v)) = u^T W x = <u x^T, W>.            (*)

With v known (d length-1 queries [e_i^T]) every such query measures one
bilinear value of W exactly: in EXP the logit of sigma(q) is the rational q.
Both routes below are built from (*) only.

Degrees of freedom and the floor
--------------------------------
The d x d matrices of rank r form a manifold of dimension r(2d - r) (choose
the column space, a point of the Grassmannian of dimension r(d - r), and an
r x d matrix of coefficients: r(d - r) + rd = r(2d - r)). With v (d numbers)
a rank-r head has r(2d - r) + d degrees of freedom, and every answer is one
real number. A learner whose queries depend continuously (or piecewise
analytically) on earlier answers, as every learner here does, defines an
injective map from an open set of that manifold into R^(number of queries),
continuous on a piece with interior; by invariance of domain that needs at
least r(2d - r) + d queries. This *floor* is :func:`query_floor`.

``low_rank_sensing`` (the paper's route)
----------------------------------------
v from d queries, then m non-adaptive measurements t_k = a_k^T W b_k with
seeded random a_k, b_k (rational in exact fields, each a_k redrawn until
a_k^T v != 0; redraws cost no query), then a float solver:

* ``solver="nuclear"``: min ||W||_* subject to the measurements (Cai & Zhang
  2015), with cvxpy (optional extra ``sensing``); SCS first, Clarabel as the
  fallback (SCS was 1.8 to 13.5 times faster at d = 10 to 40 in
  ``benchmarks/low_rank.py``, and Clarabel stopped with a numerical error on
  a problem with m close to d^2 that SCS solved).
* ``solver="als"``: alternating least squares on W = U V^T (numpy, always
  available): spectral start (1/m) sum t_k a_k b_k^T, whose mean is W for
  Gaussian a_k, b_k, then seeded random restarts.

The solvers are float, so the result is finished by an *exact polish*
(:func:`exact_polish`): rank-r truncation, a few float refinement sweeps
(accepted only if they move the estimate by at most ``POLISH_GATE``
relative), rational reconstruction entry by entry
(``fractions.Fraction.limit_denominator``, bounds 1, 2, 4, ..., 2^30), and
acceptance only if the rational matrix has rank <= r **and** satisfies every
measurement t_k = a_k^T W b_k exactly (flint). Otherwise the learner raises
:class:`InexactRecoveryError` carrying the float estimate and its residual,
labelled as float; it never returns an unverified matrix.

Acceptance proves consistency with the m measurements, not uniqueness: with
m <= r(2d - r) a different rank-r matrix can fit them; run
:func:`exactattn.certificates.verify` (fresh probes), as for every result.

``low_rank_adaptive`` (exactattn)
---------------------------------
Choose probes Z (d x d invertible, rows u_l, every u_l^T v != 0) whose first r
rows are A^T, and tokens Y = [B, C] (d x d invertible, B its first r
columns). Measure with (*):

* the core M = A^T W B: r^2 queries (pairs u_i, b_j with i, j < r);
* the rest of Z W B: rows u_l^T W B for l >= r: r(d - r) queries;
* the rest of A^T W Y: A^T W C: r(d - r) queries.

Then W B = Z^{-1} [M; rest] and A^T W = [M, A^T W C] Y^{-1}, and

    W = (W B) M^{-1} (A^T W).                                       (**)

Proof of (**): if rank W = r = rank M, write W = P Q^T with P, Q of full
column rank r; M = (A^T P)(Q^T B) is invertible, so both r x r factors are,
and W B M^{-1} A^T W = P (Q^T B)(Q^T B)^{-1}(A^T P)^{-1}(A^T P) Q^T = W. If
rank W = k < r, take k independent rows I and columns J of M (then M[I, J]
is invertible) and apply the same argument to A_I, B_J.

**Query count, rank given: exactly r(2d - r) + d**: d (v) + r^2 (core) +
r(d - r) (W B) + r(d - r) (A^T W) = d + 2rd - r^2 = r(2d - r) + d, the floor.
The overlap A^T W B is measured once: it is both the first r rows of Z W B
and the first r columns of A^T W Y.

**Rank not given: exactly r(2d - r) + d + 1 queries if r < d, r(2d - r) + d
if r = d** (one query over the floor; the target was d + r + 1). Grow
A_k, B_k one pair at a time (a_{k+1} independent of A_k with a^T v != 0,
b_{k+1} independent of B_k; no query spent on a draw): measure the new row
a_{k+1}^T W B_k (k queries), the new column A_k^T W b_{k+1} (k) and the
corner (1), and test det M_{k+1} = 0 exactly. For Gaussian draws, rank
M_k = min(k, rank W) with probability 1, so the first singular M_{k+1}
reveals r = k; growing costs sum_{k=0}^{r} (2k + 1) = (r + 1)^2 queries
(r^2 if r = d: no failing step). The wasted-looking row and column of the
failing step are not wasted: a_{r+1} becomes probe r + 1 of Z (its row
a_{r+1}^T W B_r is part of Z W B) and b_{r+1} token r + 1 of Y (its column
part of A^T W C). Only the corner is extra: total
d + (r + 1)^2 + 2 r (d - r - 1) = r(2d - r) + d + 1.

Random draws: over the reals a degenerate probe or token set is a
measure-zero event; in exact fields the draws are Gaussians rounded to
denominator 1024, so it is possible but rare. With the rank given it is
detected (rank A^T W B below rank W B or rank A^T W: RecoveryFailedError, try
another seed); during rank discovery it would stop the growth early, which
the certificate's fresh probes expose. Nothing here relies on luck silently.

A rank larger than the given r cannot be seen at the floor: (**) reproduces
every measured value (W_hat B = W B and A^T W_hat = A^T W), so every
transcript is consistent with a rank-r head. It is detected by a query
beyond the floor: ``confirm=k`` spends k extra random measurements and
raises :class:`~exactattn.errors.HypothesisViolatedError` on a mismatch;
:func:`exactattn.certificates.verify` spends fresh probes and fails.

Fields
------
``field=EXP`` (exact; the default for an EXP oracle): everything in EXP.
``field=QQ`` with an EXP oracle: the queries and the logit step (*) happen in
the oracle's field EXP, where each measured logit is a rational; it is
converted to QQ exactly (:meth:`Field.to_rational`; a non-rational logit is
a :class:`~exactattn.errors.RecoveryFailedError`), and from then on every
matrix (Z, Y, M, W B, A^T W, W, v) and all linear algebra is over QQ. The
returned W, v are QQ arrays; :func:`over_field` re-expresses the recovery
over EXP to certify it against the oracle. ``field=F64`` (float64 oracle;
adaptive only, rank given): orthogonal Z with equal gains u_l^T v and
orthogonal Y (well conditioned), batched queries, first-order error
estimates in ``options`` (``W_error_bound``, ...: worst-case rounding carried
to first order, not rigorous bounds, and far above the error; never called
exact).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from ..errors import (
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    NotRepresentableError,
    RecoveryFailedError,
)
from ..fields import EXP, QQ, Array, Field
from ..fields.float64 import higham_gamma
from ..linalg import SingularMatrixError, det, rank, solve, to_fmpq_mat
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery
from .single_head import probe_logits

__all__ = [
    "learn_low_rank", "exact_polish", "als_estimate", "nuclear_norm_estimate",
    "SensingEstimate", "InexactRecoveryError", "over_field", "rank_one_query",
    "degrees_of_freedom", "query_floor", "adaptive_query_count", "sensing_query_count",
    "paper_constant",
    "LABEL_SENSING", "LABEL_ADAPTIVE", "PAPER_REF_SENSING", "PAPER_REF_ADAPTIVE",
    "POLISH_GATE", "SDP_SOLVERS",
]

LABEL_SENSING = "low_rank_sensing"
PAPER_REF_SENSING = "Thm 5.2 (v1), Thm 5.1 (v2, reported)"
LABEL_ADAPTIVE = "low_rank_adaptive"
PAPER_REF_ADAPTIVE = "exactattn's own (cf. Thm 5.2 (v1), Thm 5.1 (v2, reported))"

#: cvxpy solvers tried in this order by ``solver="nuclear"`` (SCS 1.8 to 13.5
#: times faster than Clarabel at d = 10 to 40, benchmarks/low_rank.py)
SDP_SOLVERS = ("SCS", "CLARABEL")
#: the exact polish refines a float estimate only if it is numerically of rank
#: r (sigma_{r+1} <= POLISH_GATE sigma_1) and the refinement moves it by at most
#: POLISH_GATE (relative, Frobenius): a local correction, never a new solve
POLISH_GATE = 1e-4
#: rational reconstruction tries denominator bounds 2^0 .. 2^MAX_DENOMINATOR_BITS
MAX_DENOMINATOR_BITS = 30
#: seeded redraws of a random probe or token before giving up (each is valid
#: with probability 1 over the reals, and almost always for rational roundings)
MAX_DRAWS = 100
#: measurements per oracle batch over F64 (a (B, 2, d) float64 array)
F64_CHUNK = 1024

Method = Literal["adaptive", "sensing"]
Solver = Literal["als", "nuclear"]


# -- counts ----------------------------------------------------------------------
def degrees_of_freedom(d: int, r: int) -> int:
    """r(2d - r): the dimension of the d x d matrices of rank r.

    >>> degrees_of_freedom(1024, 16), degrees_of_freedom(4, 4) == 4 * 4
    (32512, True)
    """
    return r * (2 * d - r)


def query_floor(d: int, r: int) -> int:
    """r(2d - r) + d: no learner of a rank-r head uses fewer value queries.

    >>> query_floor(1024, 16), query_floor(1024, 1024) == 1024 + 1024**2
    (33536, True)
    """
    return degrees_of_freedom(d, r) + d


def adaptive_query_count(d: int, r: int, *, rank_given: bool = True) -> int:
    """Queries of ``method="adaptive"``: the floor, plus 1 when r < d is discovered.

    >>> adaptive_query_count(16, 2), adaptive_query_count(16, 2, rank_given=False)
    (76, 77)
    """
    return query_floor(d, r) + (0 if rank_given or r == d else 1)


def paper_constant(d: int, r: int, m: int) -> Fraction:
    """C = m / (2rd): the paper's normalisation m = C r (2d) of m measurements, exactly.

    Our ratio is m / (r(2d - r)) (to the degrees of freedom); the paper's C is
    smaller by the factor (2d - r) / (2d).

    >>> paper_constant(10, 2, 126), Fraction(126, degrees_of_freedom(10, 2))
    (Fraction(63, 20), Fraction(7, 2))
    """
    return Fraction(m, 2 * r * d)


def sensing_query_count(d: int, m: int) -> int:
    """Queries of ``method="sensing"``: d for v plus m measurements.

    >>> sensing_query_count(40, 456) == 40 + 456
    True
    """
    return d + m


# -- results of the float solvers ---------------------------------------------------
@dataclass(frozen=True, eq=False)
class SensingEstimate:
    """A float estimate of W from a float solver, labelled as such (never exact).

    Attributes
    ----------
    W : float64 d x d estimate (after the polish's rank-r refinement when it ran).
    relative_residual : ||(a_k^T W b_k)_k - t||_2 / ||t||_2 in float64.
    solver : ``"als"`` or ``"nuclear (SCS)"`` / ``"nuclear (CLARABEL)"``.
    seconds : time spent in the solver.
    reason : why the exact polish did not accept (empty when it did).
    """

    W: Array
    relative_residual: float
    solver: str
    seconds: float
    reason: str = ""
    kind: str = "float64 estimate (not exact)"

    def __str__(self) -> str:
        return (f"{self.kind} from {self.solver}: relative residual "
                f"{self.relative_residual:.3e} on the measurements")


class InexactRecoveryError(RecoveryFailedError):
    """The exact polish rejected a float solver's estimate.

    ``estimate`` (:class:`SensingEstimate`) holds the float estimate and its
    residual, labelled as float; nothing exact was recovered for W.
    ``recovered`` holds what was recovered exactly (``v``).
    """

    def __init__(self, message: str, *, estimate: SensingEstimate, v: Array) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.recovered = {"v": v}


# -- the rank-one measurement ---------------------------------------------------------
def rank_one_query(u: Array, x: Array) -> Array:
    """The query [(u + x)^T; x^T], whose logit measures u^T W x (see (*) above).

    >>> from exactattn.fields import QQ
    >>> rank_one_query(QQ.array([1, 0]), QQ.array([0, 1])).tolist()
    [[1, 1], [0, 1]]
    """
    return np.stack([u + x, x])


class _Measurer:
    """Asks rank-one queries of the oracle and returns their logits u^T W x.

    Queries are built in the oracle's field O; the logits are converted to the
    computing field F (QQ from EXP: exactly, see the module docstring).
    """

    def __init__(self, oracle: ValueOracle, F: Field) -> None:
        self.oracle = oracle
        self.O = oracle.field
        self.F = F
        self.d = oracle.d
        I = self.O.eye(self.d)
        # v from d queries of length 1
        self.v_oracle = oracle.batch(I[:, None, :], phase="v")

    def to_F(self, A: Array) -> Array:
        """An array over O as an array over F (identity unless O = EXP, F = QQ)."""
        return measured_over(self.F, self.O, A, "a single head")

    def __call__(self, U: Array, X: Array, phase: str) -> Array:
        """t_k = u_k^T W x_k for the rows u_k of U and x_k of X (over O): one query each."""
        n = U.shape[0]
        if n == 0:
            return self.F.zeros(0)
        if self.O.exact:
            return self.ask(U, X, phase)
        return self.block_f64(lambda s, e: (U[s:e], X[s:e]), n, phase)

    def block(self, P: Array, T: Array, phase: str) -> Array:
        """L[i, j] = p_i^T W t_j for the rows p_i of P and t_j of T, in row-major order."""
        n_p, n_t = P.shape[0], T.shape[0]
        if n_p * n_t == 0:
            return self.F.zeros((n_p, n_t))
        if self.O.exact:
            ii, jj = _grid(n_p, n_t)
            return self.ask(P[ii], T[jj], phase).reshape(n_p, n_t)

        def pairs(s: int, e: int) -> tuple[Array, Array]:
            ii, jj = np.divmod(np.arange(s, e), n_t)
            return P[ii], T[jj]

        return self.block_f64(pairs, n_p * n_t, phase).reshape(n_p, n_t)

    def block_f64(self, pairs: Callable[[int, int], tuple[Array, Array]], n: int,
                  phase: str) -> Array:
        """Float64 measurements in chunks of F64_CHUNK queries: one (B, 2, d) batch each."""
        out = np.empty(n, dtype=np.float64)
        for s in range(0, n, F64_CHUNK):
            e = min(n, s + F64_CHUNK)
            U, X = pairs(s, e)
            out[s:e] = self.ask(U, X, phase)
        return out

    def ask(self, U: Array, X: Array, phase: str) -> Array:
        """One oracle batch: the queries [(u_k + x_k)^T; x_k^T] and their logits (*)."""
        O, d = self.O, self.d
        v = self.v_oracle
        Xs = np.empty((U.shape[0], 2, d), dtype=O.dtype)
        Xs[:, 0, :] = U + X
        Xs[:, 1, :] = X
        y = self.oracle.batch(Xs, phase=phase)
        t = probe_logits(O, (y - X @ v) / (U @ v), where=f"{phase} measurement",
                             what="(y - x^T v) / (u^T v)", model="single-head attention model")
        return self.to_F(t) if O.exact else t


# -- the learner --------------------------------------------------------------------
@checked_arguments(counts={"confirm": (0, 10**4)})
def learn_low_rank(
    oracle: ValueOracle,
    *,
    rank: int | None = None,
    method: Method = "adaptive",
    measurements: int | None = None,
    solver: Solver = "als",
    seed: int = 0,
    field: Field | None = None,
    confirm: int = 0,
    sdp_solvers: tuple[str, ...] = SDP_SOLVERS,
) -> Recovery:
    """Recover a single head whose W has rank <= r, exactly.

    Labels ``low_rank_adaptive`` (``method="adaptive"``, exactattn's result)
    and ``low_rank_sensing`` (``method="sensing"``, paper Thm 5.2 v1 = Thm 5.1
    v2). See the module docstring for both algorithms, the proof of (**) and
    of the query counts.

    Parameters
    ----------
    oracle : the value oracle of the hidden head (v != 0, rank W <= r).
    rank : the rank bound r. Required for ``"sensing"`` and over F64;
        ``None`` with ``"adaptive"`` discovers it exactly (one extra query).
    method : ``"adaptive"`` (r(2d - r) + d queries, the floor) or ``"sensing"``
        (d + m queries, non-adaptive measurements, float solver + exact polish).
    measurements : m for ``"sensing"`` (required).
    solver : ``"als"`` (numpy) or ``"nuclear"`` (cvxpy; extra ``sensing``).
    seed : seed of every random draw (probes, tokens, measurements, restarts).
    field : EXP or QQ for an EXP oracle (QQ: the linear algebra runs in QQ),
        F64 for an F64 oracle; default the oracle's field.
    confirm : adaptive, exact fields: spend this many extra random
        measurements to test the rank hypothesis (0: stay at the floor).
    sdp_solvers : cvxpy solvers tried in order by ``solver="nuclear"``.

    Raises
    ------
    NotIdentifiableError : v = 0 (W is then not identifiable at all).
    HypothesisViolatedError : ``confirm`` found a rank larger than r.
    InexactRecoveryError : sensing; the polish rejected the float estimate
        (the estimate and its residual ride on the error, labelled float).
    RecoveryFailedError : an answer no single head can give.

    >>> from fractions import Fraction
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> W = [[1, 2, 0], [2, 4, 0], [Fraction(-1, 2), -1, 0]]       # rank 1
    >>> head = SingleHeadAttention(W, [1, 0, -1], field=EXP)
    >>> rec = learn_low_rank(ValueOracle(head), rank=1)
    >>> rec.queries == query_floor(3, 1) == 8
    True
    >>> bool((rec.W == head.W).all() and (rec.v == head.v).all())
    True
    """
    F = _computing_field(oracle, field)
    d = oracle.d
    if method not in ("adaptive", "sensing"):
        raise InvalidEntryError(f"method must be 'adaptive' or 'sensing', got {method!r}")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int | np.integer)
                             or not 0 <= rank <= d):
        raise InvalidEntryError(f"rank must be an integer in [0, d] = [0, {d}], got {rank!r}")
    if method == "sensing":
        if rank is None:
            raise InvalidEntryError("method='sensing' needs rank=r (the nuclear-norm and ALS "
                                    "routes are set up for a known rank bound)")
        if not F.exact:
            raise IncompatibleFieldError(
                "method='sensing' ends with an exact polish and needs an exact oracle (EXP); "
                "over F64 use method='adaptive'")
        if isinstance(measurements, bool) or not isinstance(measurements, int) \
                or measurements < 1:
            raise InvalidEntryError(
                f"method='sensing' needs measurements=m, a positive integer, got "
                f"{measurements!r} (the floor is r(2d - r) = {degrees_of_freedom(d, rank)})")
        if solver not in ("als", "nuclear"):
            raise InvalidEntryError(f"solver must be 'als' or 'nuclear', got {solver!r}")
    elif rank is None and not F.exact:
        raise InvalidEntryError("over F64 give rank=r: discovering the rank needs exact "
                                "singularity tests (use an EXP oracle)")
    if confirm and not F.exact:
        raise InvalidEntryError("confirm= needs an exact field; over F64 certify with "
                                "exactattn.certificates.verify (tolerance certificate)")

    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng(seed)
    measure = _Measurer(oracle, F)
    v = measure.to_F(measure.v_oracle)
    if all(F.sign(x) == 0 for x in v):
        raise NotIdentifiableError(
            "v = 0, so f(X) = 0 for every query X and W cannot be identified from value "
            f"queries; v = 0 was recovered exactly with {span.queries} "
            "queries", recovered={"v": v})

    options: dict[str, Any]
    if method == "sensing":
        assert rank is not None and measurements is not None
        W, options = _sensing(measure, v, rank, measurements, solver, sdp_solvers, rng)
        label, ref = LABEL_SENSING, PAPER_REF_SENSING
    else:
        if rank is None:
            W, options = _adaptive_discover(measure, v, rng)
        else:
            W, options = _adaptive_given(measure, v, int(rank), rng)
        label, ref = LABEL_ADAPTIVE, PAPER_REF_ADAPTIVE
        r_used = int(options["rank"])
        options["queries_over_floor"] = (span.queries) - query_floor(d, r_used)
        if confirm:
            _confirm(measure, v, W, r_used, confirm, rng)
            options["rank_hypothesis"] = f"tested by {confirm} extra random measurements"
        else:
            options["rank_hypothesis"] = (
                "assumed: at the floor every transcript is consistent with a rank-r head; "
                "certify with exactattn.certificates.verify (fresh probes) or confirm=k")
    options["method"] = method
    options["computing_field"] = F.name
    hypotheses: tuple[str, ...]
    if rank is None:
        hypotheses = (
            "the seeded random probes and tokens are generic for W: the first singular "
            f"leading minor of A^T W B appears at k = rank(W) = {options['rank']}",)
    elif confirm and method == "adaptive":
        hypotheses = (f"rank(W) <= {rank} (tested, not proved, by {confirm} random "
                      "measurements)",)
    else:
        hypotheses = (f"rank(W) <= {rank}",)
    return span.recovery(
        hypotheses=hypotheses,
        label=label,
        paper_ref=ref,
        field=F,
        params={"W": W, "v": v},
        seed=seed,
        options=options,
    )


def measured_over(F: Field, O: Field, A: Array, model: str) -> Array:
    """Measured values over the oracle's field O as an array over F (identity if F = O).

    Over EXP with F = QQ every measured logit of ``model`` with rational parameters is
    rational; an irrational one proves the oracle is not such a model.
    """
    if F == O:
        return A
    out = np.empty(A.shape, dtype=F.dtype)
    for idx, x in np.ndenumerate(A):
        try:
            out[idx] = F(O.to_rational(x))
        except NotRepresentableError as exc:
            raise RecoveryFailedError(
                f"a measured value {x} is not rational ({exc}); for {model} with "
                "rational parameters every measured logit is rational") from None
    return out


def _computing_field(oracle: ValueOracle, field: Field | None) -> Field:
    O = oracle.field
    if field is None or field == O:
        return O
    if field == QQ and O == EXP:
        return QQ
    raise IncompatibleFieldError(
        f"the oracle is over {O.name}; compute in {O.name}"
        + (" or QQ" if O == EXP else "") + f", not {field.name}")


def over_field(recovery: Recovery, field: Field) -> Recovery:
    """The same exact recovery with W and v re-expressed over another exact field.

    Used to certify a QQ recovery against its EXP oracle: the rationals are
    the same numbers, embedded exactly (QQ -> EXP) or read back (EXP -> QQ).

    >>> from exactattn.fields import QQ
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[2, 4], [1, 2]], [1, 1], field=EXP)
    >>> rec = learn_low_rank(ValueOracle(head), rank=1, field=QQ)
    >>> rec.field, over_field(rec, EXP).field, over_field(rec, EXP).W.tolist()
    (QQ, EXP, [[2, 4], [1, 2]])
    """
    src = recovery.field
    if not (src.exact and field.exact):
        raise IncompatibleFieldError("over_field converts between exact fields only")
    params = {}
    for k, A in recovery.params.items():
        out = np.empty(A.shape, dtype=field.dtype)
        for idx, x in np.ndenumerate(A):
            out[idx] = field.from_rational(src.to_rational(x))
        params[k] = out
    options = dict(recovery.options)
    options["converted_from"] = src.name
    return dataclasses.replace(recovery, field=field, params=params, options=options)


# -- adaptive, rank given -------------------------------------------------------------
def _adaptive_given(measure: _Measurer, v: Array, r: int,
                    rng: np.random.Generator) -> tuple[Array, dict[str, Any]]:
    """(**) with the probes Z (rows; A^T = Z[:r]) and tokens Y = [B, C] (columns)."""
    O, F, d = measure.O, measure.F, measure.d
    if r == 0:
        zero: dict[str, Any] = {"rank": 0, "rank_given": True, "rank_of_core": 0}
        if not O.exact:  # W = 0 is exact given the rank; v carries the answers' rounding
            zero.update({"W_error_bound": 0.0, **_f64_v_bounds(measure.v_oracle)})
        return F.zeros((d, d)), zero
    if O.exact:
        Zo = _exact_probes(O, measure.v_oracle, d, rng)
        Yo = _invertible(O, lambda: O.gaussian(rng, (d, d)))   # tokens (columns)
    else:
        Zo, Yo = _f64_probes_and_tokens(measure.v_oracle, d, r, rng)
    # core M[i, j] = u_i^T W y_j, i, j < r (r^2 queries)
    M = measure.block(Zo[:r], Yo[:, :r].T, "core")
    # the rest of Z W B: rows l >= r (r(d - r) queries)
    rows = measure.block(Zo[r:], Yo[:, :r].T, "WB")
    # the rest of A^T W Y: A^T W C, columns j >= r (r(d - r) queries)
    cols = measure.block(Zo[:r], Yo[:, r:].T, "AW")
    Z, Y = measure.to_F(Zo), measure.to_F(Yo)
    WB = _solve(F, Z, np.concatenate([M, rows], axis=0))           # Z^{-1} (Z W B)
    AW = _solve(F, Y.T, np.concatenate([M, cols], axis=1).T).T      # (A^T W Y) Y^{-1}
    if F.exact:
        W, k = _cur(F, WB, M, AW)
        bounds: dict[str, Any] = {}
    else:
        W, k, bounds = _f64_recover(Z, Y, measure.v_oracle, M, rows, cols, WB, AW, r)
    options: dict[str, Any] = {"rank": r, "rank_given": True, "rank_of_core": k}
    options.update(bounds)
    return W, options


def _grid(n_rows: int, n_cols: int) -> tuple[Array, Array]:
    """Row and column indices of an n_rows x n_cols block in row-major order."""
    ii, jj = np.divmod(np.arange(n_rows * n_cols), max(n_cols, 1))
    return ii, jj


def _solve(F: Field, A: Array, B: Array) -> Array:
    try:
        return solve(F, A, B)
    except SingularMatrixError as exc:  # pragma: no cover - invertible by construction
        raise RecoveryFailedError(f"a probe or token matrix is singular: {exc}") from None


def _cur(F: Field, WB: Array, M: Array, AW: Array) -> tuple[Array, int]:
    """W = (W B) M^{-1} (A^T W) over an exact field (see (**)).

    If rank M = k < r: on an invertible k x k submatrix M[I, J], I and J
    chosen greedily by exact rank tests; a degenerate draw (rank W B or
    rank A^T W above k) is an error, not a wrong answer.
    """
    r = M.shape[0]
    k = rank(F, M)
    if k < r and (rank(F, WB) != k or rank(F, AW) != k):
        raise RecoveryFailedError(
            f"rank(A^T W B) = {k} < rank(W B) or rank(A^T W): the seeded random probes or "
            "tokens are degenerate for this W (a measure-zero event for real Gaussian draws, "
            "rare for their rational roundings); run again with another seed")
    if k == 0:
        return F.zeros((WB.shape[0], AW.shape[1])), 0
    if k == r:
        I, J = list(range(r)), list(range(r))
    else:
        J = _independent(F, [M[:, j] for j in range(r)])
        I = _independent(F, [M[i, :] for i in range(r)])
    X = _solve(F, M[np.ix_(I, J)], AW[I, :])
    return WB[:, J] @ X, k


def _independent(F: Field, vectors: list[Array]) -> list[int]:
    """Indices of a maximal linearly independent subset (greedy, exact rank tests)."""
    chosen: list[int] = []
    for k, x in enumerate(vectors):
        if rank(F, np.stack([vectors[c] for c in chosen] + [x])) == len(chosen) + 1:
            chosen.append(k)
    return chosen


def _gain_ok(F: Field, u: Array, v: Array) -> bool:
    return F.sign(u @ v) != 0


def _exact_probes(F: Field, v: Array, d: int, rng: np.random.Generator) -> Array:
    """d x d seeded Gaussian rational probes (rows), invertible, every u_l^T v != 0."""
    for _ in range(MAX_DRAWS):
        Z = F.gaussian(rng, (d, d))
        for l in range(d):
            for _ in range(MAX_DRAWS):
                if _gain_ok(F, Z[l], v):
                    break
                Z[l] = F.gaussian(rng, d)
        if all(_gain_ok(F, Z[l], v) for l in range(d)) and rank(F, Z) == d:
            return Z
    raise RecoveryFailedError(  # pragma: no cover - probability ~0
        f"no valid probe matrix in {MAX_DRAWS} draws")


def _invertible(F: Field, draw: Callable[[], Array]) -> Array:
    """The first invertible square matrix ``draw()`` gives (seeded tokens; exact rank test)."""
    for _ in range(MAX_DRAWS):
        Y = draw()
        if rank(F, Y) == Y.shape[0]:
            return Y
    raise RecoveryFailedError(  # pragma: no cover - probability ~0
        f"no invertible token matrix in {MAX_DRAWS} draws")


def _orthogonal(rng: np.random.Generator, d: int, r: int) -> Array:
    """A seeded d x d orthogonal matrix whose first r columns are Haar-random orthonormal.

    The complete Q factor (positive diagonal R) of a d x r Gaussian matrix:
    the product of r Householder reflections, O(d^2 r) work. The last d - r
    columns complete the basis; only the first r need to be generic (they
    are A and B of (**)), and orthogonality makes every solve perfectly
    conditioned. (A full Haar matrix, QR of a d x d Gaussian, took 2 to 17 s
    for d = 1024 on a busy 2-core machine, for no gain in accuracy.)
    """
    Q, R = np.linalg.qr(rng.standard_normal((d, max(r, 1))), mode="complete")
    signs = np.ones(d)
    signs[:max(r, 1)] = np.sign(np.diag(R))
    signs[signs == 0] = 1.0
    return np.asarray(Q * signs[None, :], dtype=np.float64)


def _f64_probes_and_tokens(v: Array, d: int, r: int,
                           rng: np.random.Generator) -> tuple[Array, Array]:
    """Orthogonal probes with equal gains u_l^T v = ||v|| / sqrt(d), orthogonal tokens.

    Z = H G^T with G from :func:`_orthogonal` and H the Householder reflection
    taking g = G^T v to (||v|| / sqrt d)(1, ..., 1): Z v = H g has equal
    entries, so no probe has a tiny gain, and ||Z^{-1}||_2 = 1. Y from
    :func:`_orthogonal`: B (its first r columns) is Haar-random orthonormal.
    """
    Gt = _orthogonal(rng, d, r).T
    g = Gt @ v
    target = np.full(d, np.linalg.norm(v) / np.sqrt(d))
    w = g - target
    nw = float(w @ w)
    Z = Gt if nw == 0.0 else Gt - np.outer(w, (2.0 / nw) * (w @ Gt))
    return Z, _orthogonal(rng, d, r)


# -- adaptive, rank discovered --------------------------------------------------------
def _adaptive_discover(measure: _Measurer, v: Array,
                       rng: np.random.Generator) -> tuple[Array, dict[str, Any]]:
    """Grow A_k, B_k until det(A_{k+1}^T W B_{k+1}) = 0 (exact); then finish as (**)."""
    O, F, d = measure.O, measure.F, measure.d
    vo = measure.v_oracle
    probes: list[Array] = []   # rows a_1, a_2, ... over O
    tokens: list[Array] = []   # columns b_1, b_2, ... over O
    G = F.zeros((d, d))        # G[i, j] = a_i^T W b_j for the measured block
    k = 0
    while k < d:
        a = _draw_independent(O, probes, lambda: O.gaussian(rng, d), vo)
        b = _draw_independent(O, tokens, lambda: O.gaussian(rng, d), None)
        U = np.stack([a] * k + list(probes) + [a]) if k else a[None, :]
        X = np.stack(list(tokens) + [b] * k + [b]) if k else b[None, :]
        t = measure(U, X, "grow")
        G[k, :k] = t[:k]          # new row a^T W B_k
        G[:k, k] = t[k:2 * k]     # new column A_k^T W b
        G[k, k] = t[2 * k]        # corner
        probes.append(a)
        tokens.append(b)
        if F.sign(det(F, G[:k + 1, :k + 1])) == 0:
            break                 # rank W = k (with probability 1 over the draws)
        k += 1
    r = k
    if r == 0:
        return F.zeros((d, d)), {"rank": 0, "rank_given": False, "rank_of_core": 0,
                                 "rank_tests": 1}
    # complete the probes (rows) and tokens (columns); no query is spent on a draw
    n_have = len(probes)  # r + 1 if r < d, else d
    while len(probes) < d:
        probes.append(_draw_independent(O, probes, lambda: O.gaussian(rng, d), vo))
    while len(tokens) < d:
        tokens.append(_draw_independent(O, tokens, lambda: O.gaussian(rng, d), None))
    Zo, Yo = np.stack(probes), np.stack(tokens).T
    rows = measure.block(Zo[n_have:], Yo[:, :r].T, "WB")
    cols = measure.block(Zo[:r], Yo[:, n_have:].T, "AW")
    M = G[:r, :r]
    ZWB = np.concatenate([G[:n_have, :r], rows], axis=0)
    AWY = np.concatenate([G[:r, :n_have], cols], axis=1)
    Z, Y = measure.to_F(Zo), measure.to_F(Yo)
    WB = _solve(F, Z, ZWB)
    AW = _solve(F, Y.T, AWY.T).T
    W, kk = _cur(F, WB, M, AW)
    return W, {"rank": r, "rank_given": False, "rank_of_core": kk,
               "rank_tests": r + (1 if r < d else 0)}


def _draw_independent(F: Field, have: list[Array], draw: Callable[[], Array],
                      v: Array | None) -> Array:
    """A seeded vector ``draw()`` independent of ``have`` (with x^T v != 0 if v is given)."""
    for _ in range(MAX_DRAWS):
        x = draw()
        if v is not None and not _gain_ok(F, x, v):
            continue
        if have and rank(F, np.stack(have + [x])) < len(have) + 1:
            continue
        return x
    raise RecoveryFailedError(  # pragma: no cover - probability ~0
        f"no independent random vector in {MAX_DRAWS} draws")


def _confirm(measure: _Measurer, v: Array, W: Array, r: int, n: int,
             rng: np.random.Generator) -> None:
    """n extra random measurements a^T W b compared exactly with a^T W_hat b."""
    O, d = measure.O, measure.d
    A = np.stack([_draw_independent(O, [], lambda: O.gaussian(rng, d), measure.v_oracle)
                  for _ in range(n)])
    B = O.gaussian(rng, (n, d))
    t = measure(A, B, "confirm")
    Af, Bf = measure.to_F(A), measure.to_F(B)
    for k in range(n):
        if t[k] != Af[k] @ W @ Bf[k]:
            raise HypothesisViolatedError(
                f"confirmation measurement {k}: a^T W b = {t[k]} but the rank-{r} "
                f"reconstruction gives {Af[k] @ W @ Bf[k]}: rank(W) > {r}, so the "
                "hypothesis rank(W) <= r is violated; nothing is returned",
                hypothesis="rank(W) <= r")


# -- F64 error bounds -----------------------------------------------------------------
def _inverse_norm_bound(Q: Array) -> float:
    """||Q^{-1}||_2 <= 1 / (1 - ||Q^T Q - I||_F) for a nearly orthogonal Q."""
    e = float(np.linalg.norm(Q.T @ Q - np.eye(Q.shape[0])))
    if e >= 0.5:  # pragma: no cover - Q is orthogonal up to rounding here
        return float(np.linalg.norm(np.linalg.inv(Q), 2))
    return 1.0 / (1.0 - e)


def _f64_v_bounds(v: Array) -> dict[str, Any]:
    """First-order estimates for v over F64: each v_i = f([e_i^T]) is off by g ||v||_1.

    g = gamma_{4d+16} is the rounding factor of one answer
    (:func:`exactattn.learners.single_head.f64_error_bounds`).
    """
    d = v.shape[0]
    g = higham_gamma(4 * d + 16)
    return {"v_error_bound": g * float(np.abs(v).sum()) * math.sqrt(d),
            "answer_error_factor": g, "bounds": "first-order float64 estimates"}


def logit_error_estimates(P: Array, X: Array, L: Array, v: Array, g: float, e_v: Any, *,
                          beta: float = 0.0, e_beta: float = 0.0) -> Array:
    """First-order estimates of the errors of F64 logits L[i, j] = m(p_i, x_j), per entry.

    The measurement of a logit from the query [(p + x)^T; x^T] (unbiased:
    beta = 0): an answer is off by at most g (||v||_1 max|x| + |beta|)
    (g = gamma_{4d+16} times the oracle's roundoff over 2^-53); with the
    errors e_beta of beta and e_v of v (a number or one per coordinate) it is
    carried through p = (y - beta - x^T v) / (p^T v) and t = logit(p)
    (derivative 1 / (p (1 - p))), to first order. Shared by
    :func:`learn_low_rank` and :mod:`exactattn.learners.biased_low_rank`.
    """
    d = v.shape[0]
    v1 = float(np.abs(v).sum())
    e_vi = np.broadcast_to(np.asarray(e_v, dtype=np.float64), (d,))
    px = np.abs(P).max(axis=1)[:, None] + np.abs(X).max(axis=1)[None, :]
    e_y = g * (v1 * px + abs(beta)) + e_beta
    e_base = np.abs(X) @ e_vi + higham_gamma(d) * (np.abs(X) @ np.abs(v))
    gains = np.abs(P @ v)[:, None]
    e_gain = (np.abs(P) @ e_vi + higham_gamma(d) * (np.abs(P) @ np.abs(v)))[:, None]
    p = 1.0 / (1.0 + np.exp(-L))
    dp = (e_y + e_base[None, :]) / gains + p * e_gain / gains
    out: Array = dp / (p * (1.0 - p)) + higham_gamma(4) * np.abs(L)
    return out


def _f64_recover(Z: Array, Y: Array, v: Array, M: Array, rows: Array, cols: Array,
                 WB: Array, AW: Array, r: int) -> tuple[Array, int, dict[str, Any]]:
    """(**) over F64, with first-order error estimates (not rigorous bounds).

    Rounding model as :func:`exactattn.learners.single_head.f64_error_bounds`:
    every answer is off by at most gamma_{4d+16} ||v||_1 max|x|; that error
    and the errors of x^T v and u^T v are carried through p = (y - x^T v) /
    (u^T v) and t = logit(p) (derivative 1 / (p(1 - p))), giving an estimate
    e_M of ||dM||_F and likewise for the other logits. Numerical rank: by
    Weyl's inequality a singular value of the measured M at most ||dM||_2 may
    be 0 in the exact M, so k = #{sigma_i(M) > e_M} (e_M in place of ||dM||)
    and M^{-1} is replaced by the rank-k truncated pseudo-inverse M_k^+
    (W = W B M^+ A^T W holds when rank M = rank W). The estimates go through
    the two solves (||Z^{-1}||_2, ||Y^{-1}||_2 <= 1 / (1 - ||Q^T Q - I||_F))
    and (**) to first order.
    """
    d = v.shape[0]
    v_bounds = _f64_v_bounds(v)
    g = v_bounds["answer_error_factor"]
    e_v = g * float(np.abs(v).sum())

    def logit_errors(P: Array, T: Array, L: Array) -> float:
        """Frobenius norm of the estimates for the logits L[i, j] = p_i^T W t_j."""
        return float(np.linalg.norm(logit_error_estimates(P, T, L, v, g, e_v)))

    nM = logit_errors(Z[:r], Y[:, :r].T, M)
    nrows = logit_errors(Z[r:], Y[:, :r].T, rows)
    ncols = logit_errors(Z[:r], Y[:, r:].T, cols)
    Us, S, Vt = np.linalg.svd(M)
    k = int(np.sum(S > nM))
    Minv = (Vt[:k].T / S[:k]) @ Us[:, :k].T
    Minv_AW = Minv @ AW
    W = np.asarray(WB @ Minv_AW, dtype=np.float64)
    zinv, yinv = _inverse_norm_bound(Z), _inverse_norm_bound(Y)
    dWB = zinv * (math.hypot(nM, nrows)
                  + higham_gamma(d) * float(np.linalg.norm(np.abs(Z) @ np.abs(WB))))
    dAW = yinv * (math.hypot(nM, ncols)
                  + higham_gamma(d) * float(np.linalg.norm(np.abs(AW) @ np.abs(Y.T))))
    a = float(np.linalg.norm(Minv_AW, 2))
    b = float(np.linalg.norm(WB @ Minv, 2))
    rounding = higham_gamma(2 * r) * float(np.linalg.norm(np.abs(WB) @ np.abs(Minv_AW)))
    dW = dWB * a + b * dAW + b * nM * a + rounding
    return W, k, {"W_error_bound": dW, **v_bounds,
                  "bound_terms": {"logits_M": nM, "logits_WB": nrows, "logits_AW": ncols,
                                  "norm_Minv_AW": a, "norm_WB_Minv": b}}


# -- sensing --------------------------------------------------------------------------
def _sensing(
    measure: _Measurer, v: Array, r: int, m: int, solver: Solver,
    sdp_solvers: tuple[str, ...], rng: np.random.Generator,
) -> tuple[Array, dict[str, Any]]:
    O, F, d = measure.O, measure.F, measure.d
    vo = measure.v_oracle
    A = O.gaussian(rng, (m, d))
    for k in range(m):  # redraw a_k until a_k^T v != 0 (no query is spent)
        for _ in range(MAX_DRAWS):
            if _gain_ok(O, A[k], vo):
                break
            A[k] = O.gaussian(rng, d)
    B = O.gaussian(rng, (m, d))
    t = measure(A, B, "measurements")
    Aq, Bq = measure.to_F(A), measure.to_F(B)
    Af = np.array([[F.to_float(x) for x in row] for row in Aq], dtype=np.float64)
    Bf = np.array([[F.to_float(x) for x in row] for row in Bq], dtype=np.float64)
    tf = np.array([F.to_float(x) for x in t], dtype=np.float64)
    seed = int(rng.integers(0, 2**31))
    start = time.perf_counter()
    if solver == "als":
        W0 = als_estimate(Af, Bf, tf, r, seed=seed)
        name = "als"
    else:
        W0, name = nuclear_norm_estimate(Af, Bf, tf, solvers=sdp_solvers)
    seconds = time.perf_counter() - start
    W, info = exact_polish(F, W0, Aq, Bq, t, r, A_float=Af, B_float=Bf, t_float=tf)
    options: dict[str, Any] = {
        "rank": r, "measurements": m, "solver": name, "solver_seconds": round(seconds, 6),
        "ratio_to_degrees_of_freedom": m / degrees_of_freedom(d, r) if r else None,
        # the paper's normalisation m = C r (2d), exactly (a rational, as a string)
        "C_paper": str(paper_constant(d, r, m)) if r else None,
        "float_relative_residual": info["relative_residual"],
        "solver_output": "float64 (estimate; labelled, not exact)",
    }
    if W is None:
        est = SensingEstimate(np.asarray(info["estimate"]), float(info["relative_residual"]),
                              name, seconds, str(info["reason"]))
        raise InexactRecoveryError(
            f"the exact polish rejected the {name} estimate from m = {m} measurements "
            f"({info['reason']}); {est}. Nothing exact was recovered for W: more "
            "measurements, another seed, or method='adaptive' (r(2d - r) + d queries)",
            estimate=est, v=v)
    options["polish_relative_change"] = info["relative_change"]
    options["polish_max_denominator"] = info["max_denominator"]
    options["polish"] = "rank <= r and every measurement checked exactly (flint)"
    return W, options


def _residual(Af: Array, Bf: Array, tf: Array, W: Array) -> float:
    """||(a_k^T W b_k)_k - t|| / ||t|| (absolute when t = 0)."""
    res = float(np.linalg.norm(np.einsum("kd,kd->k", Af @ W, Bf) - tf))
    scale = float(np.linalg.norm(tf))
    return res / scale if scale > 0 else res


def _least_squares(D: Array, t: Array, normal: bool) -> Array:
    """argmin ||D x - t||: normal equations (fast, for the solver's sweeps) or SVD (polish)."""
    if normal:
        try:
            return np.asarray(np.linalg.solve(D.T @ D, D.T @ t), dtype=np.float64)
        except np.linalg.LinAlgError:
            pass  # singular normal equations: fall back to the SVD solution
    return np.asarray(np.linalg.lstsq(D, t, rcond=None)[0], dtype=np.float64)


def _als_sweeps(Af: Array, Bf: Array, tf: Array, U: Array, V: Array, sweeps: int,
                tol: float, *, normal: bool = True) -> tuple[Array, Array, float]:
    """Alternating least squares on t_k = a_k^T U V^T b_k; stops at residual <= tol."""
    m, d = Af.shape
    r = U.shape[1]
    res = _residual(Af, Bf, tf, U @ V.T)
    history = [res]
    for _ in range(sweeps):
        if res <= tol:
            break
        # fix V: t_k = <U, a_k (V^T b_k)^T>, linear in U (row-major vec: kron(a_k, g_k))
        G = Bf @ V
        U = _least_squares((Af[:, :, None] * G[:, None, :]).reshape(m, d * r), tf,
                           normal).reshape(d, r)
        H = Af @ U
        V = _least_squares((Bf[:, :, None] * H[:, None, :]).reshape(m, d * r), tf,
                           normal).reshape(d, r)
        res = _residual(Af, Bf, tf, U @ V.T)
        history.append(res)
        if len(history) > 25 and res > 0.98 * history[-26]:
            break  # stagnation: a spurious stationary point, or too few measurements
    return U, V, res


def als_estimate(Af: Array, Bf: Array, tf: Array, r: int, *, seed: int = 0,
                 restarts: int = 4, sweeps: int = 400, tol: float = 1e-13) -> Array:
    """A float64 rank-r W with a_k^T W b_k ~ t_k: alternating least squares, numpy.

    Starts: the spectral estimate (1/m) sum_k t_k a_k b_k^T truncated to rank
    r (for Gaussian a_k, b_k its mean is W), then ``restarts`` seeded Gaussian
    starts; returns the estimate with the smallest residual. Float output:
    finish with :func:`exact_polish`.

    >>> rng = np.random.default_rng(1)
    >>> W = np.outer(rng.standard_normal(6), rng.standard_normal(6))
    >>> A, B = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    >>> t = np.einsum("kd,de,ke->k", A, W, B)
    >>> bool(np.linalg.norm(als_estimate(A, B, t, 1) - W) < 1e-9 * np.linalg.norm(W))
    True
    """
    m, d = Af.shape
    if r == 0:
        return np.zeros((d, d))
    rng = np.random.default_rng(seed)
    Y = (Af * tf[:, None]).T @ Bf / m
    Us, S, Vt = np.linalg.svd(Y)
    root = np.sqrt(S[:r])
    starts = [(Us[:, :r] * root, Vt[:r].T * root)]
    scale = math.sqrt(float(np.linalg.norm(Y)) / r) if np.linalg.norm(Y) > 0 else 1.0
    starts += [(rng.standard_normal((d, r)) * scale / math.sqrt(d),
                rng.standard_normal((d, r)) * scale / math.sqrt(d)) for _ in range(restarts)]
    best: tuple[float, Array] | None = None
    for U0, V0 in starts:
        U, V, res = _als_sweeps(Af, Bf, tf, U0, V0, sweeps, tol)
        if best is None or res < best[0]:
            best = (res, U @ V.T)
        if res <= tol:
            break
    assert best is not None
    return best[1]


def nuclear_norm_estimate(Af: Array, Bf: Array, tf: Array, *,
                          solvers: tuple[str, ...] = SDP_SOLVERS) -> tuple[Array, str]:
    """min ||W||_* subject to a_k^T W b_k = t_k, with cvxpy (float64; optional extra).

    Tries ``solvers`` in order (SCS first, see :data:`SDP_SOLVERS`); returns
    the estimate and
    ``"nuclear (<solver>)"``. Raises ImportError when cvxpy is absent
    (``pip install 'exactattn[sensing]'``).
    """
    try:
        import cvxpy as cp  # optional extra 'sensing'
    except ImportError as exc:
        raise ImportError("solver='nuclear' needs cvxpy and an SDP solver: "
                          "pip install 'exactattn[sensing]' (about 460 MB); "
                          "solver='als' needs only numpy") from exc
    d = Af.shape[1]
    errors = []
    for name in solvers:
        if name not in cp.installed_solvers():
            errors.append(f"{name}: not installed")
            continue
        X = cp.Variable((d, d))
        problem = cp.Problem(cp.Minimize(cp.normNuc(X)),
                             [cp.sum(cp.multiply(Af @ X, Bf), axis=1) == tf])
        kwargs: dict[str, Any] = ({"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000}
                                  if name == "SCS" else {})
        try:
            problem.solve(solver=name, **kwargs)
        except cp.error.SolverError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if problem.status in ("optimal", "optimal_inaccurate") and X.value is not None:
            return np.asarray(X.value, dtype=np.float64), f"nuclear ({name})"
        errors.append(f"{name}: status {problem.status}")
    raise RecoveryFailedError("no SDP solver solved the nuclear-norm problem: "
                              + "; ".join(errors))


# -- the exact polish -----------------------------------------------------------------
def exact_polish(
    F: Field, W_float: Array, A: Array, B: Array, t: Array, r: int, *,
    A_float: Array | None = None, B_float: Array | None = None, t_float: Array | None = None,
    sweeps: int = 8,
) -> tuple[Array | None, dict[str, Any]]:
    """Turn a float estimate into an exact rank-<= r matrix that fits every measurement.

    Steps: (1) rank-r truncation by SVD, refused unless sigma_{r+1} <=
    ``POLISH_GATE`` sigma_1; (2) at most ``sweeps`` float ALS sweeps from that
    factorisation, refused if they move the estimate by more than
    ``POLISH_GATE`` (relative): the polish corrects rounding, it does not
    solve; (3) rational reconstruction of every entry with
    ``Fraction.limit_denominator(Q)``, Q = 1, 2, 4, ..., 2^30; (4) the first
    candidate with rank <= r (exact, flint) and a_k^T W b_k = t_k for every k
    (exact, flint) is returned as an array over ``F``.

    Returns ``(W, info)``; W is None when nothing was accepted, and then
    ``info["estimate"]`` is the float estimate, ``info["reason"]`` why.
    A, B (m x d, rows a_k, b_k) and t are over the exact field ``F``.

    >>> from exactattn.fields import QQ
    >>> A, B = QQ.array([[1, 0], [0, 1], [1, 1]]), QQ.array([[1, 0], [1, 1], [0, 1]])
    >>> W_true = QQ.array([[1, 2], [3, 6]])                          # rank 1
    >>> t = np.array([a @ W_true @ b for a, b in zip(A, B)], dtype=object)
    >>> W, info = exact_polish(QQ, np.array([[1 + 1e-12, 2.0], [3.0, 6.0]]), A, B, t, 1)
    >>> W.tolist(), info["max_denominator"]
    ([[1, 2], [3, 6]], 1)
    """
    d = W_float.shape[0]
    Af = A_float if A_float is not None else _float_array(F, A)
    Bf = B_float if B_float is not None else _float_array(F, B)
    tf = t_float if t_float is not None else np.array([F.to_float(x) for x in t])
    info: dict[str, Any] = {"estimate": W_float, "relative_change": None,
                            "max_denominator": None,
                            "relative_residual": _residual(Af, Bf, tf, W_float)}
    Us, S, Vt = np.linalg.svd(W_float)
    if r < d and S[r] > POLISH_GATE * max(S[0], np.finfo(float).tiny):
        info["reason"] = (f"the float estimate is not numerically of rank <= {r}: "
                          f"sigma_{r + 1} / sigma_1 = {S[r] / S[0]:.2e} > {POLISH_GATE}")
        return None, info
    if r == 0 or S[0] == 0:
        W_ref = np.zeros((d, d))
    else:
        root = np.sqrt(S[:r])
        U, V, _ = _als_sweeps(Af, Bf, tf, Us[:, :r] * root, Vt[:r].T * root, sweeps, 1e-14,
                               normal=False)
        W_ref = U @ V.T
    norm = float(np.linalg.norm(W_float))
    change = float(np.linalg.norm(W_ref - W_float)) / norm if norm > 0 else 0.0
    info["relative_change"] = change
    if change > POLISH_GATE:
        info["reason"] = (f"the refinement moved the estimate by {change:.2e} > {POLISH_GATE} "
                          "(relative): the float solver had not found a fitting rank-r matrix")
        return None, info
    info["estimate"] = W_ref
    info["relative_residual"] = _residual(Af, Bf, tf, W_ref)
    Aq, Bq = to_fmpq_mat(F, A), to_fmpq_mat(F, B)
    tq = [F.to_rational(x) for x in t]
    exact_entries = [Fraction(float(x)) for x in W_ref.flat]
    previous: list[Fraction] | None = None
    for bits in range(MAX_DENOMINATOR_BITS + 1):
        Q = 1 << bits
        cand = [x.limit_denominator(Q) for x in exact_entries]
        if cand == previous:
            continue
        previous = cand
        Wc = np.array([float(x) for x in cand]).reshape(d, d)
        if _residual(Af, Bf, tf, Wc) > 1e-9:
            continue  # not even close in floats: skip the exact test
        Wq = F.array(np.array(cand, dtype=object).reshape(d, d))
        if rank(F, Wq) > r:
            continue
        if _fits_exactly(to_fmpq_mat(F, Wq), Aq, Bq, tq):
            info["max_denominator"] = Q
            info["reason"] = ""
            return Wq, info
    info["reason"] = ("no rational reconstruction (denominators up to "
                      f"2^{MAX_DENOMINATOR_BITS}) has rank <= {r} and fits every "
                      "measurement exactly")
    return None, info


def _float_array(F: Field, A: Array) -> Array:
    return np.array([F.to_float(x) for x in A.flat], dtype=np.float64).reshape(A.shape)


def _fits_exactly(Wq: Any, Aq: Any, Bq: Any, tq: list[Any]) -> bool:
    """a_k^T W b_k == t_k for every k, in exact rationals (flint fmpq_mat)."""
    AW = Aq * Wq
    d = Wq.ncols()
    for k, tk in enumerate(tq):
        if sum((AW[k, j] * Bq[k, j] for j in range(d)), 0 * tk) != tk:
            return False
    return True
