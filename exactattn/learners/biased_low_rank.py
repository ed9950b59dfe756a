"""Biased low-rank heads, the heads of real Transformers, at the degrees-of-freedom floor.

Claims under the stable label ``low_rank_adaptive`` (biased variant;
exactattn's own result); recoveries carry the label ``low_rank_biased``
(their model has c and beta, so it has its own certificate builder). The
model is :class:`~exactattn.models.BiasedSingleHeadAttention` with a
low-rank score matrix:

    s_i = x_i^T W x_N + c^T x_i,   f(X) = sum_i softmax(s)_i (v . x_i) + beta,
    rank(W) <= r.

A head of a real layer with head dimension h has W = W_k^T W_q / sqrt(h)
and c = W_k^T b_q / sqrt(h), so [W | c] = W_k^T [W_q | b_q] / sqrt(h) has
rank <= h whatever the weights are (see :mod:`exactattn.checkpoints`).

The biased rank-one measurement
-------------------------------
For X = [(p + x)^T; x^T] the score gap is (p + x)^T (W x + c) - x^T (W x + c)
= p^T (W x + c) and the values are (v . (p + x), v . x), so
y = beta + x^T v + sigma(p^T (W x + c)) p^T v and, when p^T v != 0,

    m(p, x) = logit((y - beta - x^T v) / (p^T v)) = p^T W x + p^T c.      (*)

With x = 0 the query [p^T; 0^T] measures p^T c alone. beta comes from [0^T]
(1 query) and v from [e_i^T] (y = v_i + beta, d queries). Everything below
is built from (*) and the CUR identity of :mod:`exactattn.learners.low_rank`:
for a matrix K of rank r, probes A (rows) and tokens B (columns) with
rank(A^T K B) = r,

    K = (K B) (A^T K B)^{-1} (A^T K).                                   (**)

Two routes (``bias=``)
----------------------
``bias="general"`` (default): hypothesis rank(W) <= r, c arbitrary. Probes
Z (d x d invertible, rows p_l with p_l^T v != 0), tokens Y (d x d
invertible, columns y_j). Measure m(p_l, 0) = p_l^T c for every l (d
queries; c = Z^{-1} t^c) and p_l^T W y_j = m(p_l, y_j) - m(p_l, 0) on the
core (r^2), the rest of Z W B (r(d - r)) and of A^T W Y (r(d - r)); then
(**) with K = W.

**Query count: exactly r(2d - r) + 2d + 1** = 1 (beta) + d (v) + d (c) +
r^2 + 2 r(d - r). This is the number of degrees of freedom of the class:
r(2d - r) for W (the manifold of rank-r d x d matrices, see
:mod:`exactattn.learners.low_rank`), d for c, d for v, 1 for beta. By the
argument of :mod:`exactattn.learners.biased_head` (a learner asking fewer
queries than the dimension of a connected parameter manifold on which the
answers are real-analytic leaves a positive-dimensional set of parameters
with the same transcript), no learner uses fewer: the count is the floor.
(That argument is prose; the claims check the count from the oracle's
counter, not its optimality.)

``bias="column_space"``: hypothesis rank([W | c]) <= r, which every head of
a real layer satisfies with r = h (above). Then K = [W | gamma c] (d x
(d + 1), gamma != 0 a known scale) has rank <= r and

    m(p, x) = p^T [W | gamma c] [x; 1 / gamma],                        (***)

so a query token x is the column [x; 1/gamma] of a (d + 1) x (d + 1)
token matrix T, and (**) runs on K directly: core r^2, rest of Z K B
r(d - r), rest of A^T K T r(d + 1 - r). **Query count: exactly
r(2d + 1 - r) + d + 1** = r(2d - r) + r + d + 1, again the dimension of the
class (rank-r d x (d + 1) matrices: r(d + d + 1 - r); plus v and beta).
It saves d - r queries over the general route (real heads: 704 of 96,897
at d = 768, h = 64). gamma = 1 in exact fields; over F64 gamma = sqrt(d + 1)
/ a makes T a multiple of an orthogonal matrix.

When the hypothesis fails (c outside the column space of a rank-r W, so
rank [W | c] = r + 1), the floor transcript cannot show it: (**)
reproduces every measured value, exactly as for the unbiased learner.
``confirm=k`` (k extra random measurements, exact fields) raises
:class:`~exactattn.errors.HypothesisViolatedError`;
:func:`exactattn.certificates.verify` fails on fresh probes. With the rank
not given, nothing is assumed: the growth below finds r' = rank [W | c]
exactly and recovers [W | c] whatever c is; the recovery then reports
``options["c_in_column_space"]`` (decided exactly) and, when it is False,
the ``extra_queries_vs_general`` the column-space route spent over the
general route's count with discovery (d - r when r + 1 < d, r = rank W).

Rank not given (exact fields)
-----------------------------
As :func:`~exactattn.learners.low_rank.learn_low_rank`: grow A_k, B_k one
pair at a time (the new row, the new column and the corner of A^T K B:
2k + 1 measurements, plus, for the general route, m(a_{k+1}, 0)), test
det = 0 exactly, and stop at the first singular minor; the failing pair
becomes probe and token r + 1. Counts: the floor plus one query if
r < d (the corner of the failing step), the floor if r = d. Hypothesis
(named in the recovery): the seeded draws are generic for K.

Fields
------
EXP (exact, default for an EXP oracle), QQ with an EXP oracle (queries and
logits in EXP, every logit converted to QQ exactly, all linear algebra in
QQ; :func:`~exactattn.learners.low_rank.over_field` re-expresses the
recovery over EXP to certify it), F64 (rank given; orthogonal probes with
equal gains, orthogonal tokens, batched queries; the r probes of the last
block are adapted to the measured column space of K, which removes the
inverse of a random r x r core from (**) at no query cost, see
``_Setup.f64_adaptive``; first-order error estimates in ``options``:
``W_error_bound``, ``c_error_bound``, ``v_error_bound``,
``beta_error_bound``, ``answer_error_factor``: worst-case rounding carried to
first order, not rigorous bounds, and far above the error (about 10^4 to 10^7
times it on the heads of ``tests/theorems/test_low_rank_biased.py``);
never called exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..errors import (
    HypothesisViolatedError,
    InvalidEntryError,
    NotIdentifiableError,
)
from ..fields import UNIT_ROUNDOFF, Array, Field
from ..fields.float64 import higham_gamma
from ..linalg import det
from ..linalg import rank as matrix_rank
from ..oracle import ValueOracle
from .arguments import checked_arguments, checked_scale

# the CUR machinery of the unbiased learner, shared (one implementation of (**))
from .low_rank import (
    PAPER_REF_ADAPTIVE,
    _computing_field,
    _cur,
    _draw_independent,
    _exact_probes,
    _f64_probes_and_tokens,
    _inverse_norm_bound,
    _invertible,
    _orthogonal,
    _solve,
    degrees_of_freedom,
    logit_error_estimates,
    measured_over,
)
from .low_rank import _Measurer as _UnbiasedMeasurer
from .recovery import QuerySpan, Recovery
from .single_head import probe_logits

__all__ = ["learn_biased_low_rank", "biased_degrees_of_freedom",
           "biased_low_rank_query_count", "LABEL", "PAPER_REF", "CLAIM_LABEL", "Bias"]

#: the recovery label (model with c and beta; certificate builder in checks/low_rank_biased)
LABEL = "low_rank_biased"
#: the registry label its claims live under
CLAIM_LABEL = "low_rank_adaptive"
PAPER_REF = f"{PAPER_REF_ADAPTIVE}, extended to biases"

Bias = Literal["general", "column_space"]
MODEL = "biased single-head attention model"


def biased_degrees_of_freedom(d: int, r: int, *, bias: Bias = "general") -> int:
    """Dimension of the class: r(2d - r) + 2d + 1, or r(2d + 1 - r) + d + 1 (column space).

    ``"general"``: rank(W) <= r, c, v, beta free. ``"column_space"``:
    rank [W | c] <= r. Both equal (d + 1)^2 at r = d.

    >>> biased_degrees_of_freedom(384, 32), biased_degrees_of_freedom(384, 32, bias="column_space")
    (24321, 23969)
    >>> biased_degrees_of_freedom(5, 5), biased_degrees_of_freedom(5, 5, bias="column_space")
    (36, 36)
    """
    if bias == "general":
        return degrees_of_freedom(d, r) + 2 * d + 1
    return r * (2 * d + 1 - r) + d + 1


def biased_low_rank_query_count(d: int, r: int, *, bias: Bias = "general",
                                rank_given: bool = True) -> int:
    """Queries of :func:`learn_biased_low_rank`: the floor, plus 1 when r < d is discovered.

    For ``"column_space"`` with the rank discovered, r is rank [W | c].

    >>> biased_low_rank_query_count(16, 2), biased_low_rank_query_count(16, 2, rank_given=False)
    (93, 94)
    """
    return biased_degrees_of_freedom(d, r, bias=bias) + (0 if rank_given or r == d else 1)


# -- measurements --------------------------------------------------------------------
class _Measurer(_UnbiasedMeasurer):
    """beta, v, and the biased rank-one measurements (*) of one oracle.

    Queries are built over the oracle's field O; logits are converted to the
    computing field F (QQ from EXP, exactly). Chunking and grids are the
    unbiased measurer's (``m(P, X, phase)``, ``m.block(P, X, phase)``); only
    the measurement itself (:meth:`ask`, with beta) differs.
    """

    def __init__(self, oracle: ValueOracle, F: Field) -> None:
        self.oracle, self.O, self.F, self.d = oracle, oracle.field, F, oracle.d
        O, d = self.O, self.d
        self.beta_o = oracle.batch(O.zeros((1, 1, d)), phase="beta")[0]
        self.v_o = oracle.batch(O.eye(d)[:, None, :], phase="v") - self.beta_o
        self.v_oracle = self.v_o
        self.v, self.beta = self.to_F(self.v_o), self.to_F(np.array([self.beta_o]))[0]

    def to_F(self, A: Array) -> Array:
        return measured_over(self.F, self.O, A, "a biased head")

    def ask(self, P: Array, X: Array, phase: str) -> Array:
        """One oracle batch: the queries [(p_k + x_k)^T; x_k^T] and their logits (*)."""
        O, d = self.O, self.d
        Xs = np.empty((P.shape[0], 2, d), dtype=O.dtype)
        Xs[:, 0, :] = P + X
        Xs[:, 1, :] = X
        y = self.oracle.batch(Xs, phase=phase)
        t = probe_logits(O, (y - self.beta_o - X @ self.v_o) / (P @ self.v_o),
                         where=f"{phase} measurement", what="(y - beta - x^T v) / (p^T v)",
                         model=MODEL)
        return self.to_F(t) if O.exact else t

    def block(self, P: Array, X: Array, phase: str) -> Array:
        """L[i, j] = m(p_i, x_j) for the rows p_i of P and x_j of X, in row-major order.

        Over F64 the grid goes to the oracle as sums of the rows [P; X]
        (:meth:`~exactattn.oracle.ValueOracle.batch_sums`, query
        [(p_i + x_j)^T; x_j^T]): the same queries, bit for bit, without
        materialising them here, and kept compactly in the transcript.
        """
        if self.O.exact:
            return super().block(P, X, phase)
        n_p, n_t = P.shape[0], X.shape[0]
        if n_p * n_t == 0:
            return self.F.zeros((n_p, n_t))
        ii, jj = np.divmod(np.arange(n_p * n_t, dtype=np.int64), n_t)
        terms = np.empty((n_p * n_t, 2, 2), dtype=np.int64)
        terms[:, 0, 0], terms[:, 0, 1] = ii, n_p + jj
        terms[:, 1, 0], terms[:, 1, 1] = n_p + jj, -1
        y = self.oracle.batch_sums(np.concatenate([P, X]), terms, phase=phase)
        return self.f64_logits(y, (P @ self.v_o)[ii], (X @ self.v_o)[jj], phase
                                ).reshape(n_p, n_t)

    def alone(self, P: Array, phase: str) -> Array:
        """m(p_l, 0) = p_l^T c for the rows of P: the queries [p_l^T; 0^T]."""
        if self.O.exact:
            return self(P, self.O.zeros(P.shape), phase)
        n = P.shape[0]
        terms = np.full((n, 2, 1), -1, dtype=np.int64)
        terms[:, 0, 0] = np.arange(n)
        y = self.oracle.batch_sums(P, terms, phase=phase)
        return self.f64_logits(y, P @ self.v_o, np.zeros(n), phase)

    def f64_logits(self, y: Array, pv: Array, xv: Array, phase: str) -> Array:
        """(*) over F64: logit((y - beta - x^T v) / (p^T v)) per query."""
        t: Array = probe_logits(self.O, (y - self.beta_o - xv) / pv,
                                where=f"{phase} measurement",
                                what="(y - beta - x^T v) / (p^T v)", model=MODEL)
        return t


# -- the learner ---------------------------------------------------------------------
@checked_arguments(counts={"confirm": (0, 10**4)})
def learn_biased_low_rank(
    oracle: ValueOracle,
    *,
    rank: int | None = None,
    bias: Bias = "general",
    confirm: int = 0,
    seed: int = 0,
    field: Field | None = None,
    scale: Any = 1,
    roundoff: float = UNIT_ROUNDOFF,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """Recover (W, c, v, beta) of a biased head with rank(W) <= r at the floor.

    See the module docstring for the measurement (*), both routes, the proof
    of the query counts and why they are the floor.

    Parameters
    ----------
    oracle : the value oracle of the hidden biased head (v != 0).
    rank : the rank bound r (of W for ``"general"``, of [W | c] for
        ``"column_space"``); ``None`` discovers it exactly (exact fields, one
        query over the floor when r < d).
    bias : ``"general"`` (c arbitrary, r(2d - r) + 2d + 1 queries) or
        ``"column_space"`` (rank [W | c] <= r, as in real heads;
        r(2d + 1 - r) + d + 1 queries).
    confirm : exact fields: k extra random measurements compared exactly
        with the reconstruction (rank hypothesis tested, not proved).
    seed : seed of every random probe and token.
    field : EXP or QQ for an EXP oracle (QQ: linear algebra in QQ), F64 for
        an F64 oracle; default the oracle's field.
    scale : probe scale a > 0 multiplying every probe and token (F64: put
        score gaps at O(1) for heads with small W, e.g. sqrt(d) for real
        layers; exact fields: a rational).
    roundoff : F64: the oracle's unit roundoff, for the first-order error estimates.
    progress : called as ``progress(done, total)`` between measurement blocks.

    Returns
    -------
    Recovery
        label ``low_rank_biased``, params ``W``, ``c``, ``v``, ``beta``
        (shape ()), status ``exact_given`` (the rank hypothesis named) or
        ``float``; ``options["rank"]``, ``"bias"``, ``"queries_over_floor"``.

    Raises
    ------
    NotIdentifiableError : v = 0 (then f = beta and W, c are arbitrary).
    HypothesisViolatedError : ``confirm`` found a rank larger than r.
    RecoveryFailedError : an answer no biased head can give, or degenerate draws.

    >>> from fractions import Fraction
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import BiasedSingleHeadAttention
    >>> W = [[1, 2, 0], [2, 4, 0], [Fraction(-1, 2), -1, 0]]       # rank 1
    >>> head = BiasedSingleHeadAttention(W, [1, 0, 3], [1, 0, -1], 2, field=EXP)
    >>> rec = learn_biased_low_rank(ValueOracle(head), rank=1)
    >>> rec.queries == biased_low_rank_query_count(3, 1) == 12, rec.status
    (True, 'exact_given')
    >>> bool((rec.W == head.W).all() and (rec.params["c"] == head.c).all())
    True
    """
    F = _computing_field(oracle, field)
    O, d = oracle.field, oracle.d
    if bias not in ("general", "column_space"):
        raise InvalidEntryError(f"bias must be 'general' or 'column_space', got {bias!r}")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int | np.integer)
                             or not 0 <= rank <= d):
        raise InvalidEntryError(f"rank must be an integer in [0, d] = [0, {d}], got {rank!r}")
    if not O.exact and rank is None:
        raise InvalidEntryError("over F64 give rank=r: discovering the rank needs exact "
                                "singularity tests (use an EXP oracle)")
    if not O.exact and confirm:
        raise InvalidEntryError("confirm= needs an exact field; over F64 certify with "
                                "exactattn.certificates.verify (tolerance certificate)")
    a = checked_scale(O, scale, roundoff)

    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng(seed)
    measure = _Measurer(oracle, F)
    if all(F.sign(x) == 0 for x in measure.v):
        beta_arr = np.empty((), dtype=F.dtype)
        beta_arr[()] = measure.beta
        raise NotIdentifiableError(
            "v = 0, so f(X) = beta for every query X and neither W nor c can be identified "
            f"from value queries; v = 0 and beta were recovered exactly with {span.queries} "
            "queries", recovered={"v": measure.v, "beta": beta_arr})
    setup = _Setup(measure, bias, a, progress)
    setup.roundoff = float(roundoff)
    if rank is None:
        K, options = setup.discover(rng)
    else:
        K, options = setup.given(int(rank), rng)
    r = int(options["rank"])
    W, c = setup.split(K)
    if not F.exact:
        options.update(setup.bounds)
        options["W_error_bound"] = setup.bounds["K_error_bound"]
        options["c_error_bound"] = (setup.bounds["K_error_bound"] if bias == "column_space"
                                    else setup.bounds["c_only_error_bound"]) / setup.gamma_f
    options["queries_over_floor"] = span.queries - biased_degrees_of_freedom(d, r, bias=bias)
    if F.exact:
        rank_W = int(matrix_rank(F, W))
        options["rank_of_W"] = rank_W
        if bias == "column_space" and rank is None:
            in_range = matrix_rank(F, np.concatenate([W, c[:, None]], axis=1)) == rank_W
            options["c_in_column_space"] = bool(in_range)
            if not in_range:
                general = biased_low_rank_query_count(d, rank_W, rank_given=False)
                options["extra_queries_vs_general"] = span.queries - general
    if confirm:
        _confirm(measure, W, c, r, confirm, rng, bias)
    hypotheses = _hypotheses(rank, bias, confirm, options)
    beta_arr = np.empty((), dtype=F.dtype)
    beta_arr[()] = measure.beta
    options.update({"bias": bias, "computing_field": F.name, "scale": O.to_json(a)})
    if not F.exact:
        options["roundoff"] = float(roundoff)
        options.update(_f64_input_bounds(measure, float(roundoff)))
    return span.recovery(
        hypotheses=hypotheses, label=LABEL, paper_ref=PAPER_REF, field=F,
        params={"W": W, "c": c, "v": measure.v, "beta": beta_arr}, seed=seed, options=options)


def _hypotheses(rank_given: int | None, bias: Bias, confirm: int,
                options: dict[str, Any]) -> tuple[str, ...]:
    what = "rank(W)" if bias == "general" else "rank([W | c])"
    if rank_given is None:
        return ("the seeded random probes and tokens are generic for "
                f"{'W' if bias == 'general' else '[W | c]'}: the first singular leading minor "
                f"of A^T K B appears at k = {what} = {options['rank']}",)
    h = f"{what} <= {rank_given}"
    if confirm:
        h += f" (tested, not proved, by {confirm} random measurements)"
    return (h,)


class _Setup:
    """Probes, tokens and the matrix K of one route (K = W, or [W | gamma c])."""

    def __init__(self, measure: _Measurer, bias: Bias, a: Any,
                 progress: Callable[[int, int], None] | None) -> None:
        self.m, self.bias, self.a, self.progress = measure, bias, a, progress
        self.O, self.F, self.d = measure.O, measure.F, measure.d
        self.n = self.d + (1 if bias == "column_space" else 0)   # columns of K
        self.gamma_o: Any = self.O.one()           # K = [W | gamma c]; token = [x; 1/gamma]
        self.gamma_f: Any = self.F.one()
        self.bounds: dict[str, Any] = {}
        self.roundoff = UNIT_ROUNDOFF
        self.tc: Array = self.F.zeros(0)          # m(p_l, 0) = p_l^T c (general route)
        self.c: Array = self.F.zeros(0)

    # -- tokens: K-space vectors (length n) and the query tokens x (length d) --
    def token_queries(self, T: Array) -> Array:
        """Query tokens x of K-space tokens t (rows): t = x (general) or [x; 1/gamma]."""
        return T[:, :self.d]

    def split(self, K: Array) -> tuple[Array, Array]:
        """(W, c) from K: W = K, c measured separately (general), or K = [W | gamma c]."""
        if self.bias == "general":
            return K, self.c
        return np.ascontiguousarray(K[:, :self.d]), K[:, self.d] / self.gamma_f

    def K_grid(self, P: Array, T: Array, pi: Array, phase: str) -> Array:
        """p_i^T K t_j for probes P (rows, over O), tokens T (rows, over O); pi: probe ids."""
        L = self.m.block(P, self.token_queries(T), phase)
        if self.bias == "general":
            L = L - self.tc[pi][:, None]
        return L

    # -- rank given ---------------------------------------------------------------
    def given(self, r: int, rng: np.random.Generator) -> tuple[Array, dict[str, Any]]:
        O, F, d, n = self.O, self.F, self.d, self.n
        a = self.a
        if O.exact:
            Z = _exact_probes(O, self.m.v_o, d, rng) * a
            T = _invertible(O, lambda: self.draw_tokens(rng, n))
        else:
            Zu, Yu = _f64_probes_and_tokens(self.m.v_o, d, r, rng)
            Z = Zu * a
            if self.bias == "general":
                T = Yu.T * a
            else:
                T = _f64_homogeneous_tokens(rng, d, r) * a
                self.gamma_o = self.gamma_f = math.sqrt(n) / float(a)
        self.Z, self.T = Z, T
        if self.bias == "general":
            self.tc = self.m.alone(Z, "c")                     # p_l^T c, d queries
            self.c = _solve(F, self.m.to_F(Z), self.tc)
        ids = np.arange(d)
        total = n * n
        if r == 0:  # K = 0, exact given the rank
            if not F.exact:
                self.bounds = {"K_error_bound": 0.0, "bounds": "first-order float64 estimates"}
                if self.bias == "general":
                    self.bounds["c_only_error_bound"] = self.c_error(self.m.to_F(Z))
            return F.zeros((d, n)), {"rank": 0, "rank_given": True, "rank_of_core": 0}
        M = self.K_grid(Z[:r], T[:r], ids[:r], "core")
        self.tick(r * r, total)
        rows = self.K_grid(Z[r:], T[:r], ids[r:], "WB")
        self.tick(r * d, total)
        if not F.exact:
            return self.f64_adaptive(Z, T, M, rows, r)
        cols = self.K_grid(Z[:r], T[r:], ids[:r], "AW")
        self.tick(total, total)
        Zf, Tf = self.m.to_F(Z), self.m.to_F(T)
        KB = _solve(F, Zf, np.concatenate([M, rows], axis=0))
        AK = _solve(F, Tf, np.concatenate([M, cols], axis=1).T).T
        K, k = _cur(F, KB, M, AK)
        return K, {"rank": r, "rank_given": True, "rank_of_core": k}

    def tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def draw_tokens(self, rng: np.random.Generator, k: int) -> Array:
        """k seeded Gaussian K-space tokens (rows): a x, with [.; 1/gamma] when homogeneous."""
        O, d = self.O, self.d
        X: Array = O.gaussian(rng, (k, d)) * self.a
        if self.bias == "general":
            return X
        ones = np.empty((k, 1), dtype=O.dtype)
        ones[:, 0] = O.one() / self.gamma_o
        return np.concatenate([X, ones], axis=1)

    # -- rank discovered (exact fields) -----------------------------------------------
    def discover(self, rng: np.random.Generator) -> tuple[Array, dict[str, Any]]:
        O, F, d, n = self.O, self.F, self.d, self.n
        vo = self.m.v_o
        probes: list[Array] = []
        tokens: list[Array] = []
        tc: list[Any] = []
        G = F.zeros((d, d))                  # G[i, j] = a_i^T K b_j
        zero = O.zeros((1, d))

        def add_probe(p: Array) -> None:
            probes.append(p)
            if self.bias == "general":
                tc.append(self.m(p[None, :], zero, "c")[0])

        k = 0
        while k < min(d, n):
            p = _draw_independent(O, probes, lambda: O.gaussian(rng, d) * self.a, vo)
            t = _draw_independent(O, tokens, lambda: self.draw_tokens(rng, 1)[0], None)
            add_probe(p)
            P = np.stack([p] * k + probes[:k] + [p])
            Tk = np.stack(tokens + [t] * k + [t]) if k else t[None, :]
            L = self.m(P, self.token_queries(Tk), "grow")
            if self.bias == "general":
                L = L - np.array([tc[k]] * k + tc[:k] + [tc[k]], dtype=F.dtype)
            G[k, :k], G[:k, k], G[k, k] = L[:k], L[k:2 * k], L[2 * k]
            tokens.append(t)
            if F.sign(det(F, G[:k + 1, :k + 1])) == 0:
                break
            k += 1
        r = k
        n_have = len(probes)
        while len(probes) < d:
            add_probe(_draw_independent(O, probes, lambda: O.gaussian(rng, d) * self.a, vo))
        while len(tokens) < n:
            tokens.append(_draw_independent(O, tokens, lambda: self.draw_tokens(rng, 1)[0],
                                            None))
        Z, T = np.stack(probes), np.stack(tokens)
        if self.bias == "general":
            self.tc = np.array(tc, dtype=F.dtype)
            self.c = _solve(F, self.m.to_F(Z), self.tc)
        if r == 0:
            return F.zeros((d, n)), {"rank": 0, "rank_given": False, "rank_of_core": 0,
                                     "rank_tests": 1}
        ids = np.arange(d)
        rows = self.K_grid(Z[n_have:], T[:r], ids[n_have:], "WB")
        cols = self.K_grid(Z[:r], T[n_have:], ids[:r], "AW")
        M = G[:r, :r]
        KB = _solve(F, self.m.to_F(Z), np.concatenate([G[:n_have, :r], rows], axis=0))
        AK = _solve(F, self.m.to_F(T), np.concatenate([G[:r, :n_have], cols], axis=1).T).T
        K, kk = _cur(F, KB, M, AK)
        return K, {"rank": r, "rank_given": False, "rank_of_core": kk,
                   "rank_tests": r + (1 if r < min(d, n) else 0)}

    # -- F64 ------------------------------------------------------------------------
    def f64_adaptive(self, Z: Array, T: Array, M: Array, rows: Array,
                     r: int) -> tuple[Array, dict[str, Any]]:
        """F64, second stage: probes adapted to the measured column space (same count).

        After Z K B (d x r, the core and the rest of Z K B) gives K B, the r
        probes of the second stage are not Z's first rows but an orthonormal
        basis Q of col(K B) = col(K) (SVD), rotated inside that span so that
        every gain p^T v is ||Q^T v|| / sqrt(r), times the scale a. Their
        block P K B = P (K B) is computed, not measured; P K C is measured
        (r(n - r) queries); then P K = [P K B, P K C] T^{-T} and
        K = P^+ (P K) = Q Q^T K. (**) with these probes needs no inverse of a
        random r x r core: with random probes ||K B M^{-1}|| reached 10^4 at
        d = 384, r = 32 and the error 5e-9; see benchmarks/real_heads.py.)
        Falls back to the random probes Z[:r] (plain (**)) if v is nearly
        orthogonal to col(K) (||Q^T v|| < 10^-3 ||v|| sqrt(r / d)).

        First-order estimates: dKB = ||Z^{-1}|| (||d[M; rows]|| + solve rounding);
        the subspace error of Q is sin(theta) <= dKB / (sigma_k(KB) - dKB)
        (Wedin), k = #{sigma_i(KB) > 2 dKB}; dPK = ||T^{-1}|| (||P|| dKB +
        ||dL|| + rounding); dK = dPK / a + sin(theta) ||K|| + rounding.
        """
        d, n, a = self.d, self.n, float(self.a)
        v = np.asarray(self.m.v, dtype=np.float64)
        ids = np.arange(d)
        KB = np.linalg.solve(Z, np.concatenate([M, rows], axis=0))
        eM = self.K_errors(Z[:r], T[:r], M, ids[:r])
        er = self.K_errors(Z[r:], T[:r], rows, ids[r:])
        zinv = _inverse_norm_bound(Z / a) / a
        tinv = _inverse_norm_bound(T / a) / a
        dKB = zinv * (math.hypot(float(np.linalg.norm(eM)), float(np.linalg.norm(er)))
                      + higham_gamma(d) * float(np.linalg.norm(np.abs(Z) @ np.abs(KB))))
        Us, S, _ = np.linalg.svd(KB, full_matrices=False)
        Q = Us[:, :r]
        g = Q.T @ v
        adaptive = float(np.linalg.norm(g)) >= 1e-3 * float(np.linalg.norm(v)) * math.sqrt(r / d)
        if adaptive:
            target = np.full(r, float(np.linalg.norm(g)) / math.sqrt(r))
            w = g - target
            nw = float(w @ w)
            R = np.eye(r) if nw == 0.0 else np.eye(r) - np.outer(w, (2.0 / nw) * w)
            P = (R @ Q.T) * a                 # rows: orthonormal, equal gains, scaled
        else:
            P = Z[:r]
        L = self.m.block(P, self.token_queries(T[r:]), "AW")
        e_sub = np.zeros(0)
        if self.bias == "general":
            Pc = P @ self.c                   # p^T c for the new probes: computed from c
            L = L - Pc[:, None]
            e_sub = a * self.c_error(Z) * np.ones(r)
        eL = self.K_errors(P, T[r:], L, None, Pc if self.bias == "general" else None, e_sub)
        self.tick(self.n * self.n, self.n * self.n)
        PKB = P @ KB
        PK = np.linalg.solve(T, np.concatenate([PKB, L], axis=1).T).T
        norm_P = float(np.linalg.norm(P, 2))
        dPK = tinv * (math.hypot(norm_P * dKB, float(np.linalg.norm(eL)))
                      + higham_gamma(n) * float(np.linalg.norm(np.abs(PK) @ np.abs(T.T))))
        if adaptive:
            K = np.asarray((P.T / (a * a)) @ PK, dtype=np.float64)    # P^+ = P^T / a^2
            k = int(np.sum(S > 2 * dKB))
            sin_theta = (dKB / (S[k - 1] - dKB) if k and S[k - 1] > 2 * dKB else 1.0)
            dK = dPK / a + min(sin_theta, 1.0) * float(np.linalg.norm(K)) \
                + higham_gamma(r) * float(np.linalg.norm(np.abs(P.T) @ np.abs(PK))) / (a * a)
        else:  # pragma: no cover - v nearly orthogonal to col(K): plain (**)
            Us2, S2, Vt2 = np.linalg.svd(M)
            k = int(np.sum(S2 > float(np.linalg.norm(eM))))
            Minv = (Vt2[:k].T / S2[:k]) @ Us2[:, :k].T
            K = np.asarray(KB @ (Minv @ PK), dtype=np.float64)
            nb, na = float(np.linalg.norm(KB @ Minv, 2)), float(np.linalg.norm(Minv @ PK, 2))
            dK = dKB * na + nb * dPK + nb * float(np.linalg.norm(eM)) * na
            sin_theta = float("nan")
        self.bounds = {"K_error_bound": dK, "bounds": "first-order float64 estimates",
                       "adaptive_probes": adaptive,
                       "bound_terms": {"KB": dKB, "PK": dPK, "sin_theta": sin_theta,
                                       "numerical_rank_of_KB": k}}
        if self.bias == "general":
            self.bounds["c_only_error_bound"] = self.c_error(Z)
        return K, {"rank": r, "rank_given": True, "rank_of_core": k}

    def c_error(self, Z: Array) -> float:
        """First-order estimate of ||c_hat - c||, c = Z^{-1} (m(p_l, 0))_l (general route, F64)."""
        a = float(self.a)
        return _inverse_norm_bound(Z / a) / a * (
            float(np.linalg.norm(self.tc_errors()))
            + higham_gamma(self.d) * float(np.linalg.norm(np.abs(Z) @ np.abs(self.c))))

    def tc_errors(self) -> Array:
        """First-order error estimates of the measured m(p_l, 0) = p_l^T c (general, F64)."""
        ctx = _f64_context(self.m, self.roundoff)
        out: Array = _logit_errors(ctx, self.Z, np.zeros((1, self.d)),
                                   np.asarray(self.tc)[:, None])[:, 0]
        return out

    def K_errors(self, P: Array, T: Array, L: Array, pi: Array | None,
                 sub: Array | None = None, e_sub: Array | None = None) -> Array:
        """First-order error estimates of the F64 values L[i, j] = p_i^T K t_j, per entry.

        Column-space route: L is a measured logit. General route: L is a
        logit minus p_i^T c, either measured (probe ids ``pi`` of Z) or
        computed (``sub`` with error estimates ``e_sub``).
        """
        ctx = _f64_context(self.m, self.roundoff)
        X = self.token_queries(T)
        if self.bias == "column_space":
            return _logit_errors(ctx, P, X, L)
        if pi is not None:
            sub, e_sub = np.asarray(self.tc)[pi], self.tc_errors()[pi]
        assert sub is not None and e_sub is not None
        return _logit_errors(ctx, P, X, L + sub[:, None]) + e_sub[:, None]


def _f64_homogeneous_tokens(rng: np.random.Generator, d: int, r: int) -> Array:
    """(d + 1) x (d + 1) orthogonal tokens (rows) whose last coordinates all equal 1/sqrt(d + 1).

    Q = diag(G, 1) H with H the Householder reflection exchanging e_{d+1} and
    1 / sqrt(d + 1) (its last row is constant) and G from
    ``low_rank._orthogonal`` (first r columns
    Haar-random). Token j is column j of Q: [x_j; 1/gamma] with gamma = sqrt(d + 1).
    """
    n = d + 1
    w = -np.full(n, 1.0 / math.sqrt(n))
    w[-1] += 1.0
    H = np.eye(n) - np.outer(w, (2.0 / float(w @ w)) * w)
    Q = H.copy()
    Q[:d] = _orthogonal(rng, d, r) @ H[:d]
    Q[d] = 1.0 / math.sqrt(n)            # exactly constant (H's last row, rounded once)
    return np.ascontiguousarray(Q.T)


def _f64_context(m: _Measurer, roundoff: float) -> dict[str, Any]:
    d = m.d
    v, beta = np.asarray(m.v, dtype=np.float64), float(m.beta)
    g = higham_gamma(4 * d + 16, roundoff)  # biased_f64_error_bounds' factor, at the oracle's u
    v1 = float(np.abs(v).sum())
    e_beta = g * abs(beta)
    e_v = (g * (v1 + abs(beta)) + e_beta) + 2 * UNIT_ROUNDOFF * np.abs(v)
    return {"v": v, "beta": beta, "g": g, "v1": v1, "e_beta": e_beta, "e_v": e_v, "d": d}


def _f64_input_bounds(m: _Measurer, roundoff: float) -> dict[str, Any]:
    ctx = _f64_context(m, roundoff)
    return {"v_error_bound": float(np.linalg.norm(ctx["e_v"])),
            "beta_error_bound": ctx["e_beta"], "answer_error_factor": ctx["g"]}


def _logit_errors(ctx: dict[str, Any], P: Array, X: Array, L: Array) -> Array:
    """First-order estimates of the errors of the logits L[i, j] = m(p_i, x_j) of (*) over F64.

    The rounding model of :func:`exactattn.learners.biased_head.biased_f64_error_bounds`,
    carried by :func:`~exactattn.learners.low_rank.logit_error_estimates`.
    """
    return logit_error_estimates(P, X, L, ctx["v"], ctx["g"], ctx["e_v"], beta=ctx["beta"],
                                 e_beta=ctx["e_beta"])


def _confirm(m: _Measurer, W: Array, c: Array, r: int, k: int, rng: np.random.Generator,
             bias: Bias) -> None:
    """k extra random measurements p^T (W x + c), compared exactly with the reconstruction."""
    O, d = m.O, m.d
    P = np.stack([_draw_independent(O, [], lambda: O.gaussian(rng, d), m.v_o)
                  for _ in range(k)])
    X = O.gaussian(rng, (k, d))
    t = m(P, X, "confirm")
    Pf, Xf = m.to_F(P), m.to_F(X)
    what = "rank(W)" if bias == "general" else "rank([W | c])"
    for j in range(k):
        predicted = Pf[j] @ (W @ Xf[j] + c)
        if t[j] != predicted:
            raise HypothesisViolatedError(
                f"confirmation measurement {j}: p^T (W x + c) = {t[j]} but the {what} <= {r} "
                f"reconstruction gives {predicted}: {what} > {r}, so the hypothesis "
                f"{what} <= {r} is violated; nothing is returned. Run with rank=None to "
                "discover it, or a larger rank", hypothesis=f"{what} <= {r}")
