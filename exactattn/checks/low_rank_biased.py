"""Claims ``low_rank_adaptive.biased_*``: biased low-rank heads (real heads) at the floor.

The learner is :func:`~exactattn.learners.biased_low_rank.learn_biased_low_rank`
(module docstring: the measurement, both routes, the derivations of the counts).
The claims live under the stable label ``low_rank_adaptive`` (the registry's
labels are fixed; the result itself is registered in
:mod:`exactattn.checks.low_rank`); recoveries carry the label
``low_rank_biased``, whose certificate builder is registered here (a
biased head, replayed as :class:`~exactattn.models.BiasedSingleHeadAttention`).

Instances: seeded rank-r rational heads (:func:`biased_low_rank_head`) with
seeded rational c (arbitrary, or in the column space of W) and beta; every
comparison of parameters is ``==`` in EXP or QQ, except the F64 claim
(tolerance: the learner's first-order error estimates, named).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..checkpoints import random_layer
from ..claims import Outcome, claim, first_failure
from ..errors import HypothesisViolatedError
from ..fields import EXP, QQ, Field
from ..instances import random_rational
from ..learners.biased_low_rank import (
    CLAIM_LABEL,
    LABEL,
    PAPER_REF,
    Bias,
    biased_degrees_of_freedom,
    biased_low_rank_query_count,
    learn_biased_low_rank,
)
from ..learners.low_rank import over_field
from ..learners.recovery import Recovery
from ..linalg import rank
from ..models import BiasedSingleHeadAttention
from ..oracle import ValueOracle
from .low_rank import low_rank_head
from .single_head_biased import _same as _same_biased
from .single_head_biased import rebuild_biased

__all__ = ["biased_low_rank_head"]

register_model_builder(LABEL, rebuild_biased)


def biased_low_rank_head(d: int, r: int, seed: int, *, c_in_column_space: bool = False,
                         field: Field = EXP) -> BiasedSingleHeadAttention:
    """A seeded biased head with rank(W) = r (W, v from :func:`low_rank_head`).

    c is a seeded rational vector, or W g for a seeded rational g when
    ``c_in_column_space`` (as in real heads); beta a seeded rational.

    >>> head = biased_low_rank_head(4, 2, 0, c_in_column_space=True)
    >>> rank(EXP, head.W), rank(EXP, np.concatenate([head.W, head.c[:, None]], axis=1))
    (2, 2)
    """
    base = low_rank_head(d, r, seed)
    rng = np.random.default_rng([seed, d, r, 17])
    g = EXP.array([random_rational(rng, max_num=4, max_den=3) for _ in range(d)])
    c = base.W @ g if c_in_column_space else g
    beta = random_rational(rng, max_num=4, max_den=3)
    return BiasedSingleHeadAttention(base.W, c, base.v, beta, field=field)


def _same(rec: Recovery, m: BiasedSingleHeadAttention) -> bool:
    """(W, c, v, beta) of an EXP or QQ recovery == the head's, compared in EXP."""
    return _same_biased(over_field(rec, EXP), m)


BIASES: tuple[Bias, ...] = ("general", "column_space")
CASES = ((1, 0), (1, 1), (2, 1), (3, 1), (4, 2), (5, 0), (5, 3), (5, 5), (6, 2))


@claim(
    CLAIM_LABEL, "biased_measurement_identity", paper_ref=PAPER_REF,
    title="Biases: a two-token query measures p^T (W x + c) exactly",
    statement=r"p^\top v \ne 0 \implies \operatorname{logit}\!\left(\frac{f([(p + x)^\top;"
              r" x^\top]) - \beta - x^\top v}{p^\top v}\right) = p^\top W x + p^\top c;\ "
              r"f([0^\top]) = \beta,\ f([e_i^\top]) = v_i + \beta.",
)
def _check_identity() -> Outcome:
    failures, checked = [], 0
    for d, r in CASES:
        head = biased_low_rank_head(d, r, seed=d)
        rng = np.random.default_rng([d, r, 23])
        for x in (EXP.gaussian(rng, d), EXP.zeros(d)):
            p = EXP.gaussian(rng, d)
            if p @ head.v == 0:
                continue
            checked += 1
            t = EXP.logit((head(np.stack([p + x, x])) - head.beta - x @ head.v) / (p @ head.v))
            if t != p @ head.W @ x + p @ head.c:
                failures.append(f"d = {d}, r = {r}: logit {t} != p^T (W x + c)")
    return first_failure(failures, checked, "equal as elements of EXP; every logit rational")


@claim(
    CLAIM_LABEL, "biased_exact_recovery_at_floor", paper_ref=PAPER_REF,
    title="Biases: exact (W, c, v, beta) with exactly as many queries as degrees of freedom",
    statement=r"\operatorname{rank} W \le r,\ v \ne 0 \implies (\hat W, \hat c, \hat v, "
              r"\hat\beta) = (W, c, v, \beta) \text{ after exactly } r(2d - r) + 2d + 1 "
              r"\text{ queries; if } \operatorname{rank}[W \mid c] \le r \text{ (real heads), "
              r"after } r(2d + 1 - r) + d + 1.",
)
def _check_recovery() -> Outcome:
    failures, checked = [], 0
    for d, r in CASES:
        head = biased_low_rank_head(d, r, seed=d + r, c_in_column_space=True)
        for bias in BIASES:
            for field in (EXP, QQ):
                oracle = ValueOracle(head)
                rec = learn_biased_low_rank(oracle, rank=r, bias=bias, field=field, seed=d)
                checked += 1
                if not _same(rec, head):
                    failures.append(f"d = {d}, r = {r}, {bias}, {field.name}: parameters differ")
                if not (oracle.queries == rec.queries
                        == biased_degrees_of_freedom(d, r, bias=bias)):
                    failures.append(f"d = {d}, r = {r}, {bias}: {oracle.queries} queries")
                if not certify(over_field(rec, EXP), oracle, probes=2, seed=d).holds:
                    failures.append(f"d = {d}, r = {r}, {bias}, {field.name}: certificate fails")
    return first_failure(failures, checked, f"{len(CASES)} (d, r) pairs x 2 routes x EXP, QQ; "
                                            "counts from the oracle's counter")


@claim(
    CLAIM_LABEL, "biased_rank_discovery", paper_ref=PAPER_REF,
    title="Biases: the rank discovered exactly, one query over the floor",
    statement=r"\text{rank unknown: exact recovery after the floor} + [r < d] \text{ queries; "
              r"column-space route: } r = \operatorname{rank}[W \mid c] \text{, whatever } c"
              r" \text{ is, and whether } c \in \operatorname{col} W \text{ is decided exactly.}",
)
def _check_discovery() -> Outcome:
    failures, checked = [], 0
    for d, r in CASES:
        for in_col in (True, False):
            head = biased_low_rank_head(d, r, seed=2 * d + r, c_in_column_space=in_col)
            Wc = np.concatenate([head.W, head.c[:, None]], axis=1)
            for bias in BIASES:
                oracle = ValueOracle(head)
                rec = learn_biased_low_rank(oracle, bias=bias, seed=r)
                checked += 1
                true_rank = rank(EXP, head.W if bias == "general" else Wc)
                if not _same(rec, head) or rec.options["rank"] != true_rank:
                    failures.append(f"d = {d}, r = {r}, {bias}: parameters or rank differ")
                if oracle.queries != biased_low_rank_query_count(
                        d, true_rank, bias=bias, rank_given=False):
                    failures.append(f"d = {d}, r = {r}, {bias}: {oracle.queries} queries")
                if bias == "column_space" and rec.options["c_in_column_space"] != (
                        true_rank == rank(EXP, head.W)):
                    failures.append(f"d = {d}, r = {r}: c_in_column_space misreported")
    return first_failure(failures, checked, "rank, parameters and counts exact")


@claim(
    CLAIM_LABEL, "biased_violation_detected", paper_ref=PAPER_REF,
    title="Biases: a rank above the declared one, or c outside the column space, is caught",
    statement=r"\operatorname{rank} W > r \text{ or } \operatorname{rank}[W \mid c] > r:\ "
              r"\text{the floor transcript is consistent, the certificate's fresh probes fail"
              r" and \texttt{confirm=1} raises.}",
)
def _check_violation() -> Outcome:
    failures, checked = [], 0
    cases: list[tuple[Bias, BiasedSingleHeadAttention, int]] = []
    for d, r in ((3, 1), (4, 2), (6, 3)):
        cases.append(("general", biased_low_rank_head(d, r + 1, seed=d), r))
        cases.append(("column_space", biased_low_rank_head(d, r, seed=d), r))  # c outside
    for bias, head, r in cases:
        oracle = ValueOracle(head)
        rec = learn_biased_low_rank(oracle, rank=r, bias=bias)
        checked += 1
        if _same(rec, head):
            failures.append(f"{bias}, d = {head.d}: a wrong-rank answer equals the head?")
        if not certify(rec, None).holds:
            failures.append(f"{bias}, d = {head.d}: the floor transcript is not consistent")
        if certify(rec, oracle, probes=4).holds:
            failures.append(f"{bias}, d = {head.d}: the certificate accepts it")
        try:
            learn_biased_low_rank(ValueOracle(head), rank=r, bias=bias,
                                  confirm=1)
            failures.append(f"{bias}, d = {head.d}: confirm=1 did not raise")
        except HypothesisViolatedError:
            pass
    return first_failure(failures, checked, "consistent at the floor; fresh probes and "
                                            "confirm=1 catch every violation")


@claim(
    CLAIM_LABEL, "biased_certificate_soundness", paper_ref=PAPER_REF,
    title="Biases: the certificate rejects a recovery with W or c one entry off",
    statement=r"\hat W = W + \tfrac17 e_1 e_1^\top \text{ or } \hat c = c + \tfrac17 e_1 "
              r"\implies \text{some replayed or fresh query has } \hat f(X) \ne f(X).",
)
def _check_certificate() -> Outcome:
    failures, checked = [], 0
    for d, r in ((2, 1), (4, 2), (5, 3)):
        head = biased_low_rank_head(d, r, seed=7, c_in_column_space=True)
        oracle = ValueOracle(head)
        rec = learn_biased_low_rank(oracle, rank=r, bias="column_space")
        for name in ("W", "c"):
            params = {k: np.array(A) for k, A in rec.params.items()}
            params[name].flat[0] = params[name].flat[0] + EXP(Fraction(1, 7))
            checked += 1
            if certify(dataclasses.replace(rec, params=params), oracle, probes=4).holds:
                failures.append(f"d = {d}: the certificate accepts {name} + 1/7")
    return first_failure(failures, checked, "every perturbed model rejected")


#: the random layer of the F64 claim: d and the number of heads
F64_D, F64_HEADS = 64, 8


@claim(
    CLAIM_LABEL, "biased_real_heads_f64", paper_ref=PAPER_REF,
    title=f"Biases, F64: every head of a random layer (d = {F64_D}, {F64_HEADS} heads) from "
          "its factors",
    statement=rf"d = {F64_D},\ h = {F64_D // F64_HEADS}:\ h(2d + 1 - h) + d + 1 = "
              + f"{biased_low_rank_query_count(F64_D, F64_D // F64_HEADS, bias='column_space')}"
              + r" \text{ queries per head instead of } (d + 1)^2 = " + f"{(F64_D + 1) ** 2}"
              + r";\ \text{relative errors on } W, c, v < 10^{-9} \text{ and within the "
              r"first-order error estimates.}",
    route="float64 (tolerance)",
)
def _check_f64() -> Outcome:
    d, H = F64_D, F64_HEADS
    layer = random_layer(d, H, seed=0)
    failures, worst = [], 0.0
    for j in range(H):
        target = layer.head(j)
        p = target.merged()
        oracle = target.oracle(keep_transcript=False)
        rec = learn_biased_low_rank(oracle, rank=layer.head_dim, bias="column_space", scale=8)
        if oracle.queries != biased_low_rank_query_count(d, layer.head_dim,
                                                         bias="column_space"):
            failures.append(f"head {j}: {oracle.queries} queries")
        for name, truth, bound in (("W", p.W, "W_error_bound"), ("c", p.c, "c_error_bound"),
                                   ("v", p.v, "v_error_bound")):
            err = float(np.linalg.norm(rec.params[name] - truth))
            rel = err / float(np.linalg.norm(truth))
            worst = max(worst, rel)
            if not (rel < 1e-9 and err <= float(rec.options[bound])):
                failures.append(f"head {j}, {name}: relative error {rel:.2e}, error {err:.2e},"
                                f" bound {rec.options[bound]:.2e}")
    return first_failure(failures, H, f"worst relative error {worst:.1e} over W, c, v")
