"""A single head with a skip term, exactly, from d^2 + 2d value queries.

Label ``one_layer_reduction`` (paper §4.1, v1 and v2; docs/one_layer.md):
the antisymmetrised query of a one-layer Transformer with a residual
connection around attention is exactly a function of this class,

    f(X) = sum_i alpha_i (v . x_i) + u . x_N,   alpha = softmax(X W x_N),

with v = V^T W_1^T w_o and u = W_1^T w_o. The learner is a step of that
result, so it carries its label.

Algorithm (written once, for every field; e_i is the i-th basis vector):

1. s = v + u: query [e_i^T] for i = 1..d. One token has weight 1 and is the
   query token, so the answer is v_i + u_i (d queries of length 1).
2. v: query [e_i^T; 0^T]. The query token is 0, so both scores are
   x_i^T W 0 = 0 and alpha = (1/2, 1/2); the answer is v_i / 2 (d queries
   of length 2). Then u = s - v.
3. v = 0: f(X) = u . x_N does not depend on W, which is therefore not
   identifiable: :class:`~exactattn.errors.NotIdentifiableError`, carrying
   the exact v and u.
4. Probes u_l (rows of Z, :func:`~exactattn.learners.single_head.probe_matrix`:
   invertible, every c_l = z_l . v != 0). Column j of W: query
   X = [(z_l + e_j)^T; e_j^T]. The score gap is z_l^T w_j (W_jj cancels), so
   alpha_1 = sigma(z_l^T w_j) and the answer is
   y = alpha_1 v . (z_l + e_j) + alpha_2 v_j + u_j = s_j + alpha_1 c_l, whence
   t_lj = logit((y - s_j) / c_l) = z_l^T w_j (d^2 queries of length 2).
5. W = Z^{-1} T: one solve (:func:`exactattn.linalg.solve`).

Query count. Exactly d + d + d^2 = d^2 + 2d, the number of unknowns (W in
F^{dxd}, v, u in F^d). The count, derived in prose: steps 1, 2 and 4 ask d,
d and d * d queries and nothing else is asked (the sum is checked
symbolically, the per-phase counters on instances). Proof (prose, not
machine-checked) that it cannot be lowered by a learner whose queries depend
continuously on earlier answers (as this one does on the open dense set
where every v_i != 0, where Z = I): on the open set {v != 0} of R^{d^2 + 2d}
the parameters are identifiable (this algorithm recovers them), so the map
from parameters to the k answers is continuous and injective there; by
Brouwer's invariance of domain an injective continuous map from an open
subset of R^n into R^k needs k >= n = d^2 + 2d.

In EXP every step is exact (the logit of sigma(q) is the rational q). An
answer that no such head gives (a non-rational step-1/2 answer, a quotient
(y - s_j) / c_l outside (0, 1) or without an exact logit) raises
:class:`~exactattn.errors.RecoveryFailedError`: never a guess.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import NotIdentifiableError, NotRepresentableError, RecoveryFailedError
from ..fields import Array, Field
from ..linalg import SingularMatrixError, solve
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery
from .single_head import Probes, probe_logits, probe_matrix

__all__ = ["learn_skip_head", "query_count", "LABEL", "PAPER_REF"]

LABEL = "one_layer_reduction"
PAPER_REF = "§4.1 (v1), §4.1 (v2, reported)"


def query_count(d: int) -> int:
    """The exact query count of :func:`learn_skip_head`: d^2 + 2d (= the number of unknowns).

    >>> [query_count(d) for d in (1, 2, 3)]
    [3, 8, 15]
    """
    return d * d + 2 * d


@checked_arguments()
def learn_skip_head(
    oracle: ValueOracle,
    *,
    field: Field | None = None,
    probes: Probes = "deterministic",
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """Recover (W, v, u) of f(X) = sum_i alpha_i (v . x_i) + u . x_N with d^2 + 2d queries.

    Label ``one_layer_reduction`` (paper §4.1; the residual variant). See the
    module docstring for the algorithm, the count and its optimality.

    Parameters
    ----------
    oracle : the value oracle of the hidden function.
    field : the field to compute in (default: the oracle's; they must agree).
    probes : ``"deterministic"`` (det Z = 1) or ``"gaussian"`` (seeded).
    seed : seed of the Gaussian probes.
    progress : called as ``progress(j, d)`` after column j of W is measured.

    Returns
    -------
    Recovery with params ``W``, ``v``, ``u``; phases ``"v+u"`` (d), ``"v"``
    (d) and ``"W"`` (d^2).

    Raises
    ------
    NotIdentifiableError : v = 0 (then f(X) = u . x_N and W is arbitrary).
    RecoveryFailedError : an answer no such function can give.

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SkipHeadAttention
    >>> hidden = SkipHeadAttention([[1, -2], [3, 0]], [0, 5], [1, -1], field=EXP)
    >>> rec = learn_skip_head(ValueOracle(hidden))
    >>> rec.W.tolist(), rec.v.tolist(), rec.params["u"].tolist(), dict(rec.queries_by_phase)
    ([[1, -2], [3, 0]], [0, 5], [1, -1], {'v+u': 2, 'v': 2, 'W': 4})
    >>> bool((rec.W == hidden.W).all()) and rec.queries == query_count(2) == 8
    True
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    d = oracle.d
    span = QuerySpan.begin(oracle)

    I = F.eye(d)
    # 1. s = v + u from d one-token queries
    s = oracle.batch(I[:, None, :], phase="v+u")
    # 2. v / 2 from [e_i^T; 0^T]: the query token 0 makes every score 0
    Xs = np.empty((d, 2, d), dtype=F.dtype)
    Xs[:, 0, :] = I
    Xs[:, 1, :] = F.zeros(d)
    v = oracle.batch(Xs, phase="v") * 2
    u = s - v
    if F.exact:
        _require_rational(F, s, "[e_i^T]", "v_i + u_i")
        _require_rational(F, v, "[e_i^T; 0^T]", "v_i / 2")
    # 3. v = 0: f(X) = u . x_N, nothing determines W
    if all(F.sign(x) == 0 for x in v):
        raise NotIdentifiableError(
            "v = 0, so f(X) = u . x_N for every query X and W cannot be identified "
            f"from value queries; v = 0 and u were recovered exactly with "
            f"{span.queries} queries",
            recovered={"v": v, "u": u},
        )
    # 4. probes and the logits t_lj = z_l^T w_j, one batch per column
    Z, pivot = probe_matrix(F, v, probes, seed=seed)
    c = Z @ v
    T = F.zeros((d, d))
    Xs = np.empty((d, 2, d), dtype=F.dtype)
    for j in range(d):
        Xs[:, 0, :] = Z
        Xs[:, 0, j] = Z[:, j] + 1
        Xs[:, 1, :] = I[j]
        y = oracle.batch(Xs, phase="W")
        T[:, j] = probe_logits(F, (y - s[j]) / c, where=f"column {j}",
                               what="(y - (v + u)_j) / (z_l . v)",
                               model="skip-term single-head attention model")
        if progress is not None:
            progress(j + 1, d)
    # 5. one solve
    try:
        W = solve(F, Z, T)
    except SingularMatrixError as exc:  # pragma: no cover - Z is invertible by construction
        raise RecoveryFailedError(f"the probe matrix is singular: {exc}") from None
    return span.recovery(
        label=LABEL,
        paper_ref=PAPER_REF,
        field=F,
        params={"W": W, "v": v, "u": u},
        seed=seed,
        options={"model": "skip_head", "probes": probes, "pivot": pivot},
    )


def _require_rational(F: Field, a: Array, query: str, what: str) -> None:
    """In an exact field the answers of steps 1-2 are rational for every such function."""
    for i, x in enumerate(a):
        try:
            F.to_rational(x)
        except NotRepresentableError:
            raise RecoveryFailedError(
                f"the answer to {query} with i = {i} gives {what} = {x}, which is not "
                "rational: the oracle is not a skip-term head with rational parameters"
            ) from None
