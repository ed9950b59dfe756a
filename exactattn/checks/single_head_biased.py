"""Claims ``single_head_exact.biased_*``: the single head with biases of real modules.

The extension of paper Thm 4.1 (v1 and v2) to s_i = x_i^T W x_N + c^T x_i
and f = sum_i alpha_i (v . x_i) + beta
(:class:`~exactattn.models.BiasedSingleHeadAttention`, learned by
:func:`~exactattn.learners.biased_head.learn_biased_head` with exactly
(d + 1)^2 queries, which is optimal). The claims live under the stable label
``single_head_exact`` (the registry's labels are fixed); recoveries carry the
label ``single_head_biased``, whose certificate builder is registered here.

Every check runs on the built-in seeded instances (d = 1..8, zeros in v)
with seeded rational c and beta, in the exponential field, compared with ``==``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure
from ..errors import NotIdentifiableError
from ..fields import EXP
from ..instances import builtin_single_head_instances, random_rational
from ..learners.biased_head import LABEL, biased_query_count, learn_biased_head
from ..learners.recovery import Recovery
from ..learners.single_head import PAPER_REF as SINGLE_HEAD_REF
from ..learners.single_head import learn_single_head
from ..models import BiasedSingleHeadAttention
from ..oracle import ValueOracle

__all__ = ["biased_instances", "rebuild_biased"]

PAPER_REF = f"{SINGLE_HEAD_REF}, extended to biases"


def rebuild_biased(r: Recovery) -> BiasedSingleHeadAttention:
    """The model of a ``single_head_biased`` recovery, for certificates."""
    return BiasedSingleHeadAttention(r.W, r.params["c"], r.v, r.params["beta"][()],
                                     field=r.field)


register_model_builder(LABEL, rebuild_biased)


def biased_instances(*, per_d: int = 2) -> list[tuple[str, BiasedSingleHeadAttention]]:
    """The built-in single-head instances (d = 1..8) with seeded rational c and beta."""
    out = []
    for inst in builtin_single_head_instances(EXP, per_d=per_d):
        rng = np.random.default_rng([inst.seed, inst.d, 11])
        c = [random_rational(rng) for _ in range(inst.d)]
        beta = random_rational(rng)
        model = BiasedSingleHeadAttention(inst.model.W, c, inst.model.v, beta, field=EXP)
        out.append((f"biased_head(d={inst.d}, seed={inst.seed})", model))
    return out


def _vector(rng: np.random.Generator, d: int) -> np.ndarray[Any, Any]:
    return EXP.array([random_rational(rng, max_num=6, max_den=4) for _ in range(d)])


def _same(rec: Recovery, m: BiasedSingleHeadAttention) -> bool:
    return bool((rec.W == m.W).all() and (rec.params["c"] == m.c).all()
                and (rec.v == m.v).all() and rec.params["beta"][()] == m.beta)


@claim(
    "single_head_exact", "biased_length_one", paper_ref=PAPER_REF,
    title="Biases: a length-1 query returns v . x + beta, whatever W and c are",
    statement=r"f_{W,c,v,\beta}([x^\top]) = v^\top x + \beta\ \text{for all } x;\ "
              r"f([0^\top]) = \beta,\ f([e_i^\top]) = v_i + \beta.",
)
def _check_length_one() -> Outcome:
    failures, checked = [], 0
    for name, m in biased_instances():
        rng = np.random.default_rng(m.d)
        I = EXP.eye(m.d)
        for x in [EXP.zeros(m.d), *I, *(_vector(rng, m.d) for _ in range(3))]:
            checked += 1
            if m(x[None, :]) != x @ m.v + m.beta:
                failures.append(f"{name}: f([x]) != v . x + beta at x = {x.tolist()}")
    return first_failure(failures, checked, "all length-1 answers equal v . x + beta exactly")


@claim(
    "single_head_exact", "biased_two_token_identity", paper_ref=PAPER_REF,
    title="Biases: the two-token identity (terms in x_N alone cancel)",
    statement=r"f([u^\top; x^\top]) = \beta + x^\top v + \sigma\big(u^\top W x - x^\top W x"
              r" + c^\top (u - x)\big)\,(u^\top v - x^\top v);\ \text{with } x = 0:\ "
              r"\beta + \sigma(c^\top u)\, u^\top v.",
)
def _check_two_token_identity() -> Outcome:
    failures, checked = [], 0
    for name, m in biased_instances():
        rng = np.random.default_rng(100 + m.d)
        cases = [(_vector(rng, m.d), _vector(rng, m.d)) for _ in range(3)]
        cases.append((_vector(rng, m.d), EXP.zeros(m.d)))
        for u, x in cases:
            gap = u @ m.W @ x - x @ m.W @ x + m.c @ (u - x)
            rhs = m.beta + x @ m.v + EXP.sigmoid(gap) * (u @ m.v - x @ m.v)
            checked += 1
            if m(np.stack([u, x])) != rhs:
                failures.append(f"{name}: fails at u = {u.tolist()}, x = {x.tolist()}")
    return first_failure(failures, checked, "equal as elements of EXP (coefficient comparison)")


@claim(
    "single_head_exact", "biased_exact_recovery", paper_ref=PAPER_REF,
    title="Biases: exact recovery of (W, c, v, beta) with exactly (d + 1) squared queries",
    statement=r"v \ne 0 \implies (\hat W, \hat c, \hat v, \hat\beta) = (W, c, v, \beta)"
              r" \text{ after exactly } (d + 1)^2 \text{ queries, the number of unknowns.}",
)
def _check_exact_recovery() -> Outcome:
    failures, checked = [], 0
    for name, m in biased_instances():
        d = m.d
        for probes in ("deterministic", "gaussian"):
            oracle = ValueOracle(m)
            rec = learn_biased_head(oracle, probes=probes, seed=d)
            checked += 1
            if not _same(rec, m):
                failures.append(f"{name}, {probes} probes: recovered parameters differ")
            if rec.queries != biased_query_count(d) or dict(rec.queries_by_phase) != {
                    "beta": 1, "v": d, "c": d, "W": d * d}:
                failures.append(f"{name}, {probes}: {dict(rec.queries_by_phase)} queries")
            cert = certify(rec, oracle, probes=4, seed=d)
            if not cert.holds:
                failures.append(f"{name}, {probes}: certificate fails: {cert}")
    return first_failure(failures, checked,
                         "W, c, v, beta equal (==); (d + 1) squared queries each")


@claim(
    "single_head_exact", "biased_reduces_to_unbiased", paper_ref=PAPER_REF,
    title="Biases: with c = 0 and beta = 0 the biased head is the paper's head",
    statement=r"f_{W,0,v,0} = f_{W,v},\ \text{and the biased learner returns } \hat c = 0,\ "
              r"\hat\beta = 0 \text{ and the } (\hat W, \hat v) \text{ of Thm 4.1.}",
)
def _check_reduces() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP, per_d=1):
        d, plain = inst.d, inst.model
        biased = BiasedSingleHeadAttention(plain.W, [0] * d, plain.v, 0, field=EXP)
        rng = np.random.default_rng(200 + d)
        for N in (1, 2, 4):
            X = np.stack([_vector(rng, d) for _ in range(N)])
            checked += 1
            if biased(X) != plain(X):
                failures.append(f"{inst.name}: the two models differ at N = {N}")
        rec = learn_biased_head(ValueOracle(biased))
        ref = learn_single_head(ValueOracle(plain))
        checked += 1
        if not ((rec.W == ref.W).all() and (rec.v == ref.v).all()
                and all(x == 0 for x in rec.params["c"]) and rec.params["beta"][()] == 0):
            failures.append(f"{inst.name}: the biased learner disagrees with Thm 4.1's")
    return first_failure(failures, checked, "equal models; equal recoveries, c = 0, beta = 0")


@claim(
    "single_head_exact", "biased_v_zero_nonidentifiable", paper_ref=PAPER_REF,
    title="Biases: with v = 0 the head is the constant beta; W and c are not identifiable",
    statement=r"v = 0 \implies f_{W,c,0,\beta} \equiv \beta = f_{W',c',0,\beta}"
              r" \text{ for all } W, W', c, c'.",
)
def _check_v_zero() -> Outcome:
    failures, checked = [], 0
    for d in (1, 3, 5):
        rng = np.random.default_rng(300 + d)
        beta = Fraction(-5, 3)
        W = [[random_rational(rng) for _ in range(d)] for _ in range(d)]
        a = BiasedSingleHeadAttention(W, _vector(rng, d), [0] * d, beta, field=EXP)
        b = BiasedSingleHeadAttention(a.W + 1, a.c + 2, [0] * d, beta, field=EXP)
        for N in (1, 2, 5):
            X = np.stack([_vector(rng, d) for _ in range(N)])
            checked += 1
            if not a(X) == b(X) == beta:
                failures.append(f"d = {d}: f is not the constant beta")
        try:
            learn_biased_head(ValueOracle(a))
            failures.append(f"d = {d}: the learner returned (W, c) for v = 0")
        except NotIdentifiableError as exc:
            if not (all(x == 0 for x in exc.recovered["v"]) and exc.recovered["beta"] == beta):
                failures.append(f"d = {d}: the error does not carry v = 0 and beta")
    return first_failure(failures, checked,
                         "constant answers for different (W, c); NotIdentifiableError with v, beta")


@claim(
    "single_head_exact", "biased_certificate_soundness", paper_ref=PAPER_REF,
    title="Biases: the certificate rejects a model one entry of W or c, or beta, off",
    statement=r"\hat W = W + \tfrac17 e_a e_b^\top \text{ or } \hat c = c + \tfrac17 e_a"
              r" \text{ or } \hat\beta = \beta + \tfrac17 \implies \exists X:\ "
              r"\hat f(X) \ne f(X).",
)
def _check_certificate_soundness() -> Outcome:
    failures, checked = [], 0
    seventh = EXP(Fraction(1, 7))
    for name, m in biased_instances(per_d=1):
        oracle = ValueOracle(m)
        rec = learn_biased_head(oracle)
        rng = np.random.default_rng(400 + m.d)
        a, b = (int(i) for i in rng.integers(0, m.d, size=2))
        W, c, beta = np.array(rec.W), np.array(rec.params["c"]), np.array(rec.params["beta"])
        W[a, b] = W[a, b] + seventh
        c[a] = c[a] + seventh
        beta[()] = beta[()] + seventh
        for what, params in (("W", {"W": W}), ("c", {"c": c}), ("beta", {"beta": beta})):
            wrong = dataclasses.replace(rec, params={**rec.params, **params})
            checked += 1
            if certify(wrong, oracle, probes=8, seed=m.d).holds:
                failures.append(f"{name}: the certificate accepted {what} moved by 1/7")
    return first_failure(failures, checked, "every perturbed model rejected")
