"""A one-layer Transformer from an FFN learner plus the single-head learner.

Label ``one_layer_reduction``; paper §4.1 (v1 and v2); paper.md §3;
derivation in docs/one_layer.md.

The hidden function is TF(X) = w_o^T ReLU(alpha(X, W)^T X A) with
alpha(X, W) = softmax(X W x_N), A in R^{d x m}, w_o in R^m.

Step 1 (the FFN). On one token alpha = 1, so TF([x^T]) = w_o^T ReLU(A^T x)
= g(x): a bias-free two-layer ReLU network, learned by
:func:`exactattn.learners.relu_ffn.learn_relu_ffn` from length-1 queries
(label ``relu_ffn_exact``; it returns a canonical network (A_hat, w_hat)
function-equivalent to g on all of R^d given its hypotheses: no hidden
cancellation (H), the resolution and genericity of its lines, and its
residual-probe bound; status ``exact_given``). The reduction's result
carries those hypotheses, each prefixed "(FFN)".

Step 2 (attention), the antisymmetrisation identity:

* negation leaves the scores unchanged, (-x_i)^T W (-x_N) = x_i^T W x_N, so
  alpha(-X, W) = alpha(X, W);
* hence the pre-activations flip sign: h(-X) = alpha^T (-X) A = -h(X);
* and ReLU(z) - ReLU(-z) = z for every real z (one side is 0, the other z);
* so VQ~(X) = TF(X) - TF(-X) = w_o^T (ReLU(h) - ReLU(-h)) = w_o^T h
  = alpha(X, W)^T X (A w_o).

VQ~ is an exact single-head oracle with v = A w_o, asked through
:func:`antisymmetrised` (two queries of TF each, both counted);
:func:`~exactattn.learners.single_head.learn_single_head` on it recovers W
and A w_o exactly with d + d^2 antisymmetrised queries.

Residual variant (``residual=True``): y = x_N + sum_i alpha_i V x_i,
TF(X) = w_o^T ReLU(W_1 y). Then TF([x^T]) = g(x) with A = (I + V)^T W_1^T,
y(-X) = -y(X), and VQ~(X) = w_o^T W_1 y = sum_i alpha_i (v . x_i) + u . x_N
with v = V^T W_1^T w_o and u = W_1^T w_o: a head with a skip term, learned
by :func:`~exactattn.learners.skip_head.learn_skip_head` with d^2 + 2d
antisymmetrised queries.

Query count (each antisymmetrised query costs two queries of TF):

    Q = Q_FFN + 2 (d + d^2)           (plain)
    Q = Q_FFN + 2 (2d + d^2)          (residual)

with Q_FFN the FFN learner's own count, read from the oracle's counter.

Consistency check (no query). g(x) - g(-x) = x^T A w_o, so the FFN step
determines A w_o = A_hat w_hat; step 2 measures it independently (v, or
v + u in the residual variant). A mismatch means the oracle is not such a
Transformer: :class:`~exactattn.errors.RecoveryFailedError`.

Hypothesis: A w_o != 0 (residual: v != 0). Otherwise VQ~ does not depend on
W and :class:`~exactattn.errors.NotIdentifiableError` says that W is not
identifiable from these queries.

What is certified. Plain: the whole Transformer is rebuilt from (W, A_hat,
w_hat) and replayed exactly against the original oracle (TF depends on A,
w_o only through g: TF(X) = g(X^T alpha)). Residual: (W, g, v, u) do not
determine TF (docs/one_layer.md gives two residual Transformers with the
same W, g, v, u and different TF), so the recovery's transcript and
certificate are those of the antisymmetrised oracle: verify it with
``verify(rec, antisymmetrised(oracle))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import (
    IncompatibleFieldError,
    NotIdentifiableError,
    RecoveryFailedError,
)
from ..fields import EXP, Array, Field
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery
from .relu_ffn import learn_relu_ffn
from .single_head import Probes, learn_single_head
from .skip_head import learn_skip_head
from .skip_head import query_count as skip_head_query_count

__all__ = ["learn_one_layer", "antisymmetrised", "AntisymmetrisedOracle",
           "attention_query_count", "LABEL", "PAPER_REF"]

LABEL = "one_layer_reduction"
PAPER_REF = "§4.1 (v1), §4.1 (v2, reported)"

#: the phase prefix under which the inner oracle counts antisymmetrised queries
PHASE = "antisymmetrised"


def attention_query_count(d: int, *, residual: bool = False) -> int:
    """Queries of TF spent by step 2: 2 (d + d^2), residual 2 (2d + d^2).

    >>> attention_query_count(4), attention_query_count(4, residual=True)
    (40, 48)
    """
    per = skip_head_query_count(d) if residual else d + d * d
    return 2 * per


class _NegationPair:
    """The target of :class:`AntisymmetrisedOracle`: VQ(X) - VQ(-X) on the inner oracle."""

    def __init__(self, owner: AntisymmetrisedOracle) -> None:
        self.owner = owner

    def __call__(self, X: Array) -> Any:
        inner, phase = self.owner.inner, self.owner.forward_phase
        return inner(X, phase=phase) - inner(-X, phase=phase)

    def batch(self, Xs: Any) -> Array:
        """One inner batch [X_1, -X_1, X_2, -X_2, ...]: each pair adjacent in the transcript."""
        inner, phase = self.owner.inner, self.owner.forward_phase
        if isinstance(Xs, np.ndarray):
            both = np.empty((2 * Xs.shape[0], *Xs.shape[1:]), dtype=Xs.dtype)
            both[0::2] = Xs
            both[1::2] = -Xs
            answers = inner.batch(both, phase=phase)
        else:
            answers = inner.batch([Y for X in Xs for Y in (X, -X)], phase=phase)
        out: Array = answers[0::2] - answers[1::2]
        return out


class AntisymmetrisedOracle(ValueOracle):
    """The oracle VQ~(X) = VQ(X) - VQ(-X) over an inner oracle (label ``one_layer_reduction``).

    Every query asks the inner oracle twice (X, then -X, adjacent in its
    transcript); both are counted there under the phase
    ``"antisymmetrised:<phase>"``, and the inner budget applies. This oracle
    keeps its own counter and transcript of antisymmetrised answers.
    ``fork`` forks the inner oracle (certificates never touch its count).
    """

    def __init__(self, inner: ValueOracle, *, phase: str = PHASE) -> None:
        self.inner = inner
        self.phase_prefix = phase
        self.forward_phase = phase
        super().__init__(_NegationPair(self), field=inner.field, d=inner.d,
                         keep_transcript=inner.keep_transcript,
                         name=f"antisymmetrised({inner.name})")

    def __call__(self, X: Any, *, phase: str = "query") -> Any:
        self.forward_phase = f"{self.phase_prefix}:{phase}"
        try:
            return super().__call__(X, phase=phase)
        finally:
            self.forward_phase = self.phase_prefix

    def batch(self, Xs: Any, *, phase: str = "query") -> Array:
        self.forward_phase = f"{self.phase_prefix}:{phase}"
        try:
            return super().batch(Xs, phase=phase)
        finally:
            self.forward_phase = self.phase_prefix

    def fork(self, name: str) -> ValueOracle:
        return AntisymmetrisedOracle(self.inner.fork(name), phase=self.phase_prefix)


def antisymmetrised(oracle: ValueOracle, *, phase: str = PHASE) -> ValueOracle:
    """A ValueOracle over the same field answering VQ~(X) = VQ(X) - VQ(-X).

    Label ``one_layer_reduction``. For a one-layer Transformer,
    alpha(-X) = alpha(X) and ReLU(z) - ReLU(-z) = z give
    VQ~(X) = alpha(X, W)^T X (A w_o): a single head (module docstring).
    Each query costs two queries of ``oracle``, counted there under
    ``"<phase>:<phase of the call>"``.

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import OneLayerTransformer
    >>> tf = OneLayerTransformer([[1, 0], [0, 1]], [[1, -1], [0, 2]], [1, 1], field=EXP)
    >>> oracle = ValueOracle(tf)
    >>> anti = antisymmetrised(oracle)
    >>> X = EXP.array([[1, 2], [0, 1]])
    >>> anti(X, phase="demo") == tf.attention(X) @ X @ tf.v
    True
    >>> anti.queries, oracle.queries, oracle.queries_by_phase
    (1, 2, {'antisymmetrised:demo': 2})
    """
    return AntisymmetrisedOracle(oracle, phase=phase)


@checked_arguments()
def learn_one_layer(
    oracle: ValueOracle,
    *,
    residual: bool = False,
    seed: int = 0,
    ffn_field: Field | None = None,
    probes: Probes = "deterministic",
) -> Recovery:
    """Recover a one-layer Transformer: the FFN from length-1 queries, W from VQ~.

    Label ``one_layer_reduction`` (paper §4.1, v1 and v2). See the module
    docstring for the reduction, its identity and the query count
    Q_FFN + 2 (d + d^2) (residual: Q_FFN + 2 (2d + d^2)).

    Parameters
    ----------
    oracle : value oracle of TF over EXP (exact) or F64; the FFN learner
        sees it directly and asks length-1 queries only.
    residual : the hidden model has a residual connection around attention.
    seed : seed of every random choice (FFN learner, Gaussian probes).
    ffn_field : the field the FFN learner computes in (default: the
        oracle's); its result is embedded in the oracle's field.
    probes : probes of step 2, ``"deterministic"`` or ``"gaussian"``.

    Returns
    -------
    Recovery with params ``W``; ``A``, ``w`` (the FFN's canonical network,
    TF([x^T]) = w^T ReLU(A^T x)); ``v`` (= A w_o, or V^T W_1^T w_o) and,
    residual, ``u`` (= W_1^T w_o). ``options["ffn_queries"]`` is Q_FFN. The
    status is the FFN learner's (``exact_given`` over exact fields, with its
    hypotheses prefixed "(FFN)"): W and v do not depend on them, A and w do.

    Raises
    ------
    NotIdentifiableError : A w_o = 0 (residual: V^T W_1^T w_o = 0); W is not
        identifiable from these queries. ``recovered`` holds the FFN and v.
    RecoveryFailedError : answers that no such Transformer gives.

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import OneLayerTransformer
    >>> tf = OneLayerTransformer([[1, -2], [3, 0]], [[1, 0], [0, -1]], [2, 1], field=EXP)
    >>> oracle = ValueOracle(tf)
    >>> rec = learn_one_layer(oracle)
    >>> rec.W.tolist(), rec.v.tolist()
    ([[1, -2], [3, 0]], [2, -1])
    >>> rec.queries == oracle.queries == rec.options["ffn_queries"] + 2 * (2 + 4)
    True
    """
    F = oracle.field
    if F.exact and F != EXP:
        raise IncompatibleFieldError(
            f"the oracle is over {F.name}, but softmax answers to queries of two or more "
            "tokens are not in it; give the Transformer and its oracle field=EXP")
    d = oracle.d
    span = QuerySpan.begin(oracle)

    # 1. the FFN from length-1 queries: TF([x^T]) = g(x)
    ffn = learn_relu_ffn(oracle, field=ffn_field, seed=seed)
    ffn_queries = span.queries
    A = _embed(F, ffn.field, ffn.params["A"], "A")
    w = _embed(F, ffn.field, ffn.params["w"], "w")
    Aw = A @ w if A.shape[1] else F.zeros(d)

    # 2. W (and v, u) from the antisymmetrised oracle
    anti = antisymmetrised(oracle)
    what = "V^T W_1^T w_o" if residual else "A w_o"
    try:
        if residual:
            head = learn_skip_head(anti, probes=probes, seed=seed)
        else:
            head = learn_single_head(anti, probes=probes, seed=seed)
    except NotIdentifiableError as exc:
        raise NotIdentifiableError(
            f"{what} = 0, so TF(X) - TF(-X) = "
            + ("W_1^T w_o . x_N" if residual else "0")
            + " for every query X: W is not identifiable from these queries (the FFN was "
            f"learned with {ffn_queries} length-1 queries; {span.queries} "
            "queries in all)",
            recovered={"A": A, "w": w, **exc.recovered},
        ) from None
    params = {"W": head.W, "A": A, "w": w, "v": head.v}
    linear = head.v
    if residual:
        params["u"] = head.params["u"]
        linear = head.v + head.params["u"]
    # consistency (no query): g(x) - g(-x) = x^T (A w_o), measured twice; exact
    # fields only (over F64 the two measurements differ by rounding)
    if F.exact and not all(bool(a == b) for a, b in zip(Aw, linear, strict=True)):
        raise RecoveryFailedError(
            f"the FFN gives A w_o = {Aw.tolist()} but the antisymmetrised queries give "
            f"{'v + u' if residual else 'v'} = {linear.tolist()}; they agree for every "
            f"{'residual ' if residual else ''}one-layer Transformer, so the oracle is not one "
            "(or the FFN learner failed)")
    transcript = anti.transcript[:] if residual else span.transcript()
    return span.recovery(
        hypotheses=tuple(f"(FFN) {h}" for h in ffn.hypotheses),
        label=LABEL,
        paper_ref=PAPER_REF,
        field=F,
        params=params,
        transcript=transcript,
        seed=seed,
        options={
            "model": "residual_antisymmetrised" if residual else "one_layer_transformer",
            "residual": residual,
            "ffn_queries": ffn_queries,
            "ffn_label": ffn.label,
            "ffn_field": ffn.field.name,
            "ffn_hidden_units": int(A.shape[1]),
            "attention_queries": span.queries - ffn_queries,
            "probes": probes,
            "pivot": head.options.get("pivot", -1),
        },
    )


def _embed(F: Field, source: Field, A: Array, name: str) -> Array:
    """The FFN's parameters as an array over F (exact fields: through the rationals)."""
    if source == F:
        return A
    if not (F.exact and source.exact):
        raise IncompatibleFieldError(
            f"the FFN learner returned {name} over {source.name}; it cannot be embedded in "
            f"{F.name} exactly")
    out = np.empty(A.shape, dtype=F.dtype)
    for idx, x in np.ndenumerate(A):
        out[idx] = F.from_rational(source.to_rational(x))
    return out
