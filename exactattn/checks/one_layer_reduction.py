"""Claims of ``one_layer_reduction`` (paper §4.1, v1 and v2; paper.md §3; docs/one_layer.md).

Every check runs on seeded rational instances (d = 1..4, m = 1..4) in the
exponential field and compares with ``==``. This module also registers the
certificate builder of the label (:func:`build_model`): a plain recovery is
rebuilt as the whole Transformer (W, A_hat, w_hat) and replayed against the
original oracle; a residual (or skip-head) recovery is rebuilt as the head
with a skip term and replayed against the antisymmetrised oracle.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure, register_result
from ..errors import InvalidEntryError, NotIdentifiableError, RecoveryFailedError
from ..fields import EXP, Array
from ..instances import MAX_REDRAWS, check_size, random_rational
from ..learners.one_layer import PAPER_REF, antisymmetrised, learn_one_layer
from ..learners.recovery import Recovery
from ..learners.skip_head import learn_skip_head
from ..learners.skip_head import query_count as skip_head_query_count
from ..models import (
    OneLayerTransformer,
    ResidualOneLayerTransformer,
    SkipHeadAttention,
)
from ..models.relu import ReluFFN, equivalent
from ..oracle import ValueOracle

__all__ = ["one_layer_instance", "residual_instance", "skip_head_instance",
           "builtin_instances", "build_model", "expected_queries", "random_query"]

LABEL = "one_layer_reduction"

#: (d, m, seed) of the built-in instances
BUILTIN = ((1, 1, 0), (1, 3, 1), (2, 1, 0), (2, 2, 1), (3, 2, 0), (3, 4, 1), (4, 3, 0),
           (4, 4, 1))


# -- instances ------------------------------------------------------------------
def _rationals(rng: np.random.Generator, *shape: int) -> list[Any]:
    if len(shape) == 1:
        return [random_rational(rng, max_num=5, max_den=4) for _ in range(shape[0])]
    return [_rationals(rng, *shape[1:]) for _ in range(shape[0])]


def one_layer_instance(d: int, m: int, seed: int) -> OneLayerTransformer:
    """A seeded OneLayerTransformer over EXP with small rational entries and A w_o != 0.

    >>> tf = one_layer_instance(3, 2, 0)
    >>> (tf.d, tf.m, any(x != 0 for x in tf.v))
    (3, 2, True)
    """
    _check_sizes(d, m, seed)
    rng = np.random.default_rng([seed, d, m, 41])
    for _ in range(MAX_REDRAWS):
        W, A, w = _rationals(rng, d, d), _rationals(rng, d, m), _rationals(rng, m)
        tf = OneLayerTransformer(W, A, w, field=EXP)
        if any(x != 0 for x in tf.v):
            return tf
    raise RecoveryFailedError(_no_draw(d, m, seed))  # pragma: no cover - v != 0 is generic


def residual_instance(d: int, m: int, seed: int) -> ResidualOneLayerTransformer:
    """A seeded ResidualOneLayerTransformer over EXP with v = V^T W_1^T w_o != 0."""
    _check_sizes(d, m, seed)
    rng = np.random.default_rng([seed, d, m, 42])
    for _ in range(MAX_REDRAWS):
        W, V = _rationals(rng, d, d), _rationals(rng, d, d)
        W1, w = _rationals(rng, m, d), _rationals(rng, m)
        tf = ResidualOneLayerTransformer(W, V, W1, w, field=EXP)
        if any(x != 0 for x in tf.v):
            return tf
    raise RecoveryFailedError(_no_draw(d, m, seed))  # pragma: no cover - v != 0 is generic


def _check_sizes(d: int, m: int, seed: int) -> None:
    check_size("d", d, low=1)
    check_size("m", m, low=1, why="the hidden width of the feed-forward layer")
    check_size("seed", seed)


def _no_draw(d: int, m: int, seed: int) -> str:
    return (f"no draw with v = A w_o != 0 in {MAX_REDRAWS} draws (d = {d}, m = {m}, "
            f"seed = {seed}); try another seed")


def skip_head_instance(d: int, seed: int, *, zeros_in_v: int = 0) -> SkipHeadAttention:
    """A seeded SkipHeadAttention over EXP; ``zeros_in_v`` coordinates of v are 0 (< d)."""
    check_size("d", d, low=1)
    check_size("seed", seed)
    check_size("zeros_in_v", zeros_in_v)
    rng = np.random.default_rng([seed, d, 43])
    W, v, u = _rationals(rng, d, d), _rationals(rng, d), _rationals(rng, d)
    v = [x if x != 0 else Fraction(1, 2) for x in v]
    for i in rng.permutation(d)[: min(zeros_in_v, d - 1)]:
        v[int(i)] = Fraction(0)
    return SkipHeadAttention(W, v, u, field=EXP)


def builtin_instances() -> list[tuple[str, OneLayerTransformer]]:
    return [(f"one_layer(d={d}, m={m}, seed={s})", one_layer_instance(d, m, s))
            for d, m, s in BUILTIN]


def builtin_residual_instances() -> list[tuple[str, ResidualOneLayerTransformer]]:
    return [(f"residual(d={d}, m={m}, seed={s})", residual_instance(d, m, s))
            for d, m, s in BUILTIN[::2]]


def random_query(rng: np.random.Generator, d: int, N: int | None = None) -> Array:
    """A query of N (default 1..5) tokens with small rational entries, over EXP."""
    n = int(rng.integers(1, 6)) if N is None else N
    return EXP.array(_rationals(rng, n, d))


def expected_queries(ffn_queries: int, d: int, *, residual: bool = False) -> int:
    """Q_FFN + 2 (d + d^2), residual Q_FFN + 2 (2d + d^2)."""
    return ffn_queries + 2 * (skip_head_query_count(d) if residual else d + d * d)


# -- the certificate builder ------------------------------------------------------
def build_model(r: Recovery) -> Any:
    """The model a ``one_layer_reduction`` recovery describes (for :func:`verify`).

    * plain Transformer: OneLayerTransformer(W, A_hat, w_hat), the whole TF;
      certify against the original oracle;
    * residual variant and skip head: SkipHeadAttention(W, v, u), the
      antisymmetrised function; certify against ``antisymmetrised(oracle)``
      (resp. the skip head's own oracle).
    """
    if not r.field.exact:
        raise InvalidEntryError(
            f"no certificate for {LABEL} recoveries over {r.field.name}: only exact "
            "recoveries are certified (they compare with ==)")
    kind = r.options.get("model")
    p = r.params
    if kind == "one_layer_transformer":
        return OneLayerTransformer(p["W"], p["A"], p["w"], field=r.field)
    if kind in ("skip_head", "residual_antisymmetrised"):
        return SkipHeadAttention(p["W"], p["v"], p["u"], field=r.field)
    raise InvalidEntryError(f"unknown {LABEL} recovery kind {kind!r}")


register_model_builder(LABEL, build_model)


# -- the result and its claims ------------------------------------------------------
register_result(
    LABEL, paper_ref=PAPER_REF,
    title="A one-layer Transformer: the FFN learner plus the single-head learner",
)


def _same(A: Any, B: Any) -> bool:
    A, B = np.asarray(A, dtype=object), np.asarray(B, dtype=object)
    return A.shape == B.shape and all(bool(a == b) for a, b in zip(A.flat, B.flat, strict=True))


@claim(
    LABEL, "length_one",
    paper_ref=PAPER_REF, title="A length-1 query of TF is the FFN g",
    statement=r"TF([x^\top]) = g(x) = w_o^\top \mathrm{ReLU}(A^\top x);\ \text{residual: }"
              r"A = (I + V)^\top W_1^\top.",
)
def _check_length_one() -> Outcome:
    failures, checked = [], 0
    models: list[tuple[str, Any]] = [*builtin_instances(), *builtin_residual_instances()]
    for name, tf in models:
        rng = np.random.default_rng(tf.d * 10 + tf.m)
        g = ReluFFN(*tf.length_one_ffn, field=EXP)
        for _ in range(6):
            X = random_query(rng, tf.d, 1)
            checked += 1
            if tf(X) != g(X):
                failures.append(f"{name}: TF([x]) != g(x) at x = {X[0].tolist()}")
    return first_failure(failures, checked, "equal exactly (rational answers)")


@claim(
    LABEL, "negation_invariance",
    paper_ref=PAPER_REF, title="Negating every token leaves the scores and the weights unchanged",
    statement=r"(-x_i)^\top W (-x_N) = x_i^\top W x_N \implies \alpha(-X, W) = \alpha(X, W).",
)
def _check_negation_invariance() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_instances():
        rng = np.random.default_rng(tf.d * 20 + tf.m)
        for _ in range(4):
            X = random_query(rng, tf.d)
            checked += 1
            s, s_neg = X @ tf.W @ X[-1], (-X) @ tf.W @ (-X[-1])
            if not (_same(s, s_neg) and _same(tf.attention(-X), tf.attention(X))):
                failures.append(f"{name}: alpha(-X) != alpha(X) at X = {X.tolist()}")
    return first_failure(failures, checked, "scores and weights equal exactly")


@claim(
    LABEL, "antisymmetrised_identity",
    paper_ref=PAPER_REF, title="The antisymmetrised query is a single head with v = A w_o",
    statement=r"TF(X) - TF(-X) = \alpha(X, W)^\top X\,(A w_o)"
              r"\quad(\mathrm{ReLU}(z) - \mathrm{ReLU}(-z) = z).",
)
def _check_antisymmetrised_identity() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_instances():
        rng = np.random.default_rng(tf.d * 30 + tf.m)
        anti = antisymmetrised(ValueOracle(tf))
        for _ in range(5):
            X = random_query(rng, tf.d)
            rhs = tf.attention(X) @ X @ tf.v
            checked += 1
            if not (tf(X) - tf(-X) == rhs and anti(X) == rhs):
                failures.append(f"{name}: TF(X) - TF(-X) != alpha^T X A w_o at {X.tolist()}")
    return first_failure(failures, checked, "equal as elements of EXP (coefficient comparison)")


@claim(
    LABEL, "residual_identity",
    paper_ref=PAPER_REF, title="The residual variant: an attention term plus a skip term",
    statement=r"y = x_N + \textstyle\sum_i \alpha_i V x_i:\ TF(X) - TF(-X) = "
              r"\textstyle\sum_i \alpha_i\, v^\top x_i + u^\top x_N,\ v = V^\top W_1^\top w_o,"
              r"\ u = W_1^\top w_o.",
)
def _check_residual_identity() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_residual_instances():
        rng = np.random.default_rng(tf.d * 40 + tf.m)
        skip = SkipHeadAttention(tf.W, tf.v, tf.u, field=EXP)
        for _ in range(5):
            X = random_query(rng, tf.d)
            checked += 1
            if tf(X) - tf(-X) != skip(X):
                failures.append(f"{name}: the identity fails at {X.tolist()}")
    return first_failure(failures, checked, "equal as elements of EXP")


@claim(
    LABEL, "exact_recovery",
    paper_ref=PAPER_REF, title="Exact recovery of W, A w_o and the FFN with the stated count",
    statement=r"A w_o \ne 0 \implies \hat W = W,\ \hat v = A w_o,\ \hat g \equiv g,\ "
              r"\text{after exactly } Q_{\mathrm{FFN}} + 2(d + d^2) \text{ value queries}.",
)
def _check_exact_recovery() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_instances():
        oracle = ValueOracle(tf)
        rec = learn_one_layer(oracle, seed=tf.d)
        checked += 1
        q_ffn = int(rec.options["ffn_queries"])
        if not (_same(rec.W, tf.W) and _same(rec.v, tf.v)):
            failures.append(f"{name}: W or A w_o differs")
        if not equivalent(ReluFFN(rec.params["A"], rec.params["w"], field=EXP),
                          ReluFFN(tf.A, tf.w_o, field=EXP)):
            failures.append(f"{name}: the recovered FFN is not equivalent to g")
        if not rec.queries == oracle.queries == expected_queries(q_ffn, tf.d):
            failures.append(f"{name}: {rec.queries} queries, expected "
                            f"{expected_queries(q_ffn, tf.d)}")
        cert = certify(rec, oracle, probes=4, seed=tf.d)
        if not cert.holds:
            failures.append(f"{name}: certificate fails: {cert}")
    return first_failure(failures, checked, "W, A w_o equal (==), FFN equivalent, count exact, "
                                            "whole-TF certificate holds")


@claim(
    LABEL, "residual_recovery",
    paper_ref=PAPER_REF, title="The residual variant: exact W, v, u with the stated count",
    statement=r"v \ne 0 \implies (\hat W, \hat v, \hat u) = (W, V^\top W_1^\top w_o, "
              r"W_1^\top w_o);\ Q = Q_{\mathrm{FFN}} + 2(2d + d^2);"
              r"\ \text{skip head alone: } d^2 + 2d.",
)
def _check_residual_recovery() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_residual_instances():
        oracle = ValueOracle(tf)
        rec = learn_one_layer(oracle, residual=True, seed=tf.d)
        checked += 1
        q_ffn = int(rec.options["ffn_queries"])
        if not (_same(rec.W, tf.W) and _same(rec.v, tf.v) and _same(rec.params["u"], tf.u)):
            failures.append(f"{name}: W, v or u differs")
        if rec.queries != expected_queries(q_ffn, tf.d, residual=True):
            failures.append(f"{name}: {rec.queries} queries")
        cert = certify(rec, antisymmetrised(oracle), probes=4, seed=tf.d)
        if not cert.holds:
            failures.append(f"{name}: certificate fails: {cert}")
    for d in (1, 2, 3, 4):
        head = skip_head_instance(d, d, zeros_in_v=d // 2)
        oracle = ValueOracle(head)
        rec = learn_skip_head(oracle)
        checked += 1
        if not (_same(rec.W, head.W) and _same(rec.v, head.v)
                and _same(rec.params["u"], head.u)):
            failures.append(f"skip head d = {d}: W, v or u differs")
        if rec.queries != skip_head_query_count(d) or not certify(rec, oracle, probes=2).holds:
            failures.append(f"skip head d = {d}: count or certificate")
    return first_failure(failures, checked, "W, v, u equal (==); counts exact")


@claim(
    LABEL, "not_identifiable",
    paper_ref=PAPER_REF, title="With A w_o = 0 the antisymmetrised queries do not see W",
    statement=r"A w_o = 0 \implies TF_W(X) - TF_W(-X) = 0 \text{ for all } W, X;\ "
              r"\text{the learner raises NotIdentifiableError.}",
)
def _check_not_identifiable() -> Outcome:
    failures, checked = [], 0
    for d in (1, 2, 3):
        rng = np.random.default_rng(d)
        a = _rationals(rng, d)
        A = [[x, -x] for x in a]  # g(x) = |a . x|, A w_o = a - a = 0
        tfs = [OneLayerTransformer(_rationals(rng, d, d), A, [1, 1], field=EXP)
               for _ in range(2)]
        for _ in range(3):
            X = random_query(rng, d)
            checked += 1
            if any(tf(X) - tf(-X) != 0 for tf in tfs):
                failures.append(f"d = {d}: an antisymmetrised answer is not 0")
        try:
            learn_one_layer(ValueOracle(tfs[0]))
            failures.append(f"d = {d}: the learner returned a W with A w_o = 0")
        except NotIdentifiableError as exc:
            if "not identifiable" not in str(exc):
                failures.append(f"d = {d}: unclear message {exc}")
    return first_failure(failures, checked, "answers all 0; NotIdentifiableError raised")


@claim(
    LABEL, "certificate_soundness",
    paper_ref=PAPER_REF, title="The certificate rejects a Transformer one entry off",
    statement=r"\hat W = W + \tfrac17 e_a e_b^\top \text{ or } \hat w = w + \tfrac17 e_k"
              r" \implies \text{some replayed or fresh query has } \widehat{TF}(X) \ne TF(X).",
)
def _check_certificate_soundness() -> Outcome:
    failures, checked = [], 0
    for name, tf in builtin_instances()[2:]:
        oracle = ValueOracle(tf)
        rec = learn_one_layer(oracle)
        rng = np.random.default_rng(tf.d)
        a, b = (int(i) for i in rng.integers(0, tf.d, size=2))
        W = np.array(rec.W)
        W[a, b] = W[a, b] + EXP(Fraction(1, 7))
        w = np.array(rec.params["w"])
        w[0] = w[0] + EXP(Fraction(1, 7))
        for what, params in (("W", {**rec.params, "W": W}), ("w", {**rec.params, "w": w})):
            checked += 1
            wrong = dataclasses.replace(rec, params=params)
            if certify(wrong, oracle, probes=8, seed=tf.d).holds:
                failures.append(f"{name}: the certificate accepted a perturbed {what}")
    return first_failure(failures, checked, "every perturbed model rejected")


@claim(
    LABEL, "symbolic_derivation",
    paper_ref=PAPER_REF, title="The derivation behind the reduction, symbolically",
    statement=r"\text{symbolic } x_1, x_2 \in \mathbb{R}^2,\ m = 2:\ \text{each step"
              r" simplifies to } 0 = 0 \text{ (ReLU by sign cases)}.",
    route="symbolic (sympy)",
)
def _check_symbolic_derivation() -> Outcome:
    from ..symbolic.one_layer import derivation

    steps = derivation(2, 2)
    failures = [f"step {k + 1} ({s.why}) does not simplify to 0"
                for k, s in enumerate(steps) if not s.verified]
    return first_failure(failures, len(steps), "every step simplifies to 0 = 0")
