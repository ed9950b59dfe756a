"""Claims of ``single_head_exact`` (paper Thm 4.1, v1 and v2; paper.md §2).

Each check runs on the built-in seeded instances (d = 1..8, rational entries,
zero coordinates in v) in the exponential field and compares with ``==``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure, register_result
from ..errors import NotIdentifiableError
from ..fields import EXP
from ..instances import builtin_single_head_instances, single_head_instance
from ..learners import learn_single_head
from ..learners.recovery import Recovery
from ..learners.single_head import PAPER_REF as SINGLE_HEAD_REF
from ..learners.single_head import probe_matrix, query_count
from ..linalg import det
from ..models import SingleHeadAttention
from ..oracle import ValueOracle

register_result(
    "single_head_exact", paper_ref=SINGLE_HEAD_REF,
    title="Exact recovery of a single head with $d + d^2$ queries",
)


def _rational_vector(rng: np.random.Generator, d: int) -> np.ndarray[Any, Any]:
    return EXP.array([Fraction(int(rng.integers(-6, 7)), int(rng.integers(1, 5)))
                      for _ in range(d)])


@claim(
    "single_head_exact", "length_one",
    paper_ref=SINGLE_HEAD_REF, title="A length-1 query returns v . x, whatever W is",
    statement=r"f_{W,v}([x^\top]) = v^\top x \quad\text{for all } x \in \mathbb{R}^d,"
              r"\ \text{in particular } f_{W,v}([e_i^\top]) = v_i.",
)
def _check_length_one() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        rng = np.random.default_rng(inst.seed)
        m = inst.model
        probes = [EXP.eye(inst.d)[i] for i in range(inst.d)] + [
            _rational_vector(rng, inst.d) for _ in range(4)]
        for x in probes:
            checked += 1
            if m(x[None, :]) != x @ m.v:
                failures.append(f"{inst.name}: f([x]) != v . x at x = {x.tolist()}")
    return first_failure(failures, checked, "all length-1 answers equal v . x exactly")


@claim(
    "single_head_exact", "two_token_identity",
    paper_ref=SINGLE_HEAD_REF, title="The two-token identity",
    statement=r"f([u^\top; x^\top]) = x^\top v + \sigma(u^\top W x - x^\top W x)\,"
              r"(u^\top v - x^\top v).",
)
def _check_two_token_identity() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        rng = np.random.default_rng(100 + inst.seed)
        m = inst.model
        for _ in range(4):
            u, x = _rational_vector(rng, inst.d), _rational_vector(rng, inst.d)
            lhs = m(np.stack([u, x]))
            rhs = x @ m.v + EXP.sigmoid(u @ m.W @ x - x @ m.W @ x) * (u @ m.v - x @ m.v)
            checked += 1
            if lhs != rhs:
                failures.append(f"{inst.name}: fails at u = {u.tolist()}, x = {x.tolist()}")
    return first_failure(failures, checked, "equal as elements of EXP (coefficient comparison)")


@claim(
    "single_head_exact", "two_token_inversion",
    paper_ref=SINGLE_HEAD_REF, title="Inverting the two-token identity gives the score gap",
    statement=r"u^\top v \ne x^\top v \implies \operatorname{logit}\!\left("
              r"\frac{f([u^\top; x^\top]) - x^\top v}{u^\top v - x^\top v}\right)"
              r" = u^\top W x - x^\top W x;\ \text{with } u \to u + e_j,\ x = e_j:\ "
              r"= u^\top w_j.",
)
def _check_two_token_inversion() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        rng = np.random.default_rng(200 + inst.seed)
        m = inst.model
        I = EXP.eye(inst.d)
        cases = [(I[i] + _rational_vector(rng, inst.d), I[j])
                 for i in range(inst.d) for j in range(inst.d)][:6]
        cases += [(_rational_vector(rng, inst.d), _rational_vector(rng, inst.d)) for _ in range(3)]
        for u, x in cases:
            gap = u @ m.v - x @ m.v
            if gap == 0:
                continue
            y = m(np.stack([u, x]))
            t = EXP.logit((y - x @ m.v) / gap)
            checked += 1
            if t != u @ m.W @ x - x @ m.W @ x:
                failures.append(f"{inst.name}: logit gives {t}, expected u^T W x - x^T W x")
    return first_failure(failures, checked, "the exact logit is the rational score gap")


@claim(
    "single_head_exact", "exact_recovery",
    paper_ref=SINGLE_HEAD_REF, title="Exact recovery of (W, v) with exactly d + d squared queries",
    statement=r"v \ne 0 \implies \text{the learner returns } (\hat W, \hat v) = (W, v)"
              r" \text{ after exactly } d + d^2 \text{ value queries } (d \text{ of length 1, }"
              r"d^2 \text{ of length 2}).",
)
def _check_exact_recovery() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        d = inst.d
        for probes in ("deterministic", "gaussian"):
            oracle = ValueOracle(inst.model)
            rec = learn_single_head(oracle, probes=probes, seed=inst.seed)
            checked += 1
            if not ((rec.W == inst.model.W).all() and (rec.v == inst.model.v).all()):
                failures.append(f"{inst.name}, {probes} probes: recovered parameters differ")
            if rec.queries != query_count(d) or dict(rec.queries_by_phase) != {"v": d, "W": d * d}:
                failures.append(f"{inst.name}, {probes}: {dict(rec.queries_by_phase)} queries")
            cert = certify(rec, oracle, probes=4, seed=inst.seed)
            if not cert.holds:
                failures.append(f"{inst.name}, {probes}: certificate fails: {cert}")
    zeros = sum(1 for inst in builtin_single_head_instances(EXP)
                if any(x == 0 for x in inst.model.v))
    return first_failure(failures, checked,
                          f"W, v equal (==); {zeros} instances with zero coordinates in v")


@claim(
    "single_head_exact", "probe_determinant",
    paper_ref=SINGLE_HEAD_REF, title="The deterministic probes have det Z = 1 and nonzero gains",
    statement=r"Z = I + \sum_{l:\, v_l = 0} e_l e_p^\top,\ v_p \ne 0 \implies \det Z = 1"
              r"\ \text{and}\ u_l^\top v \in \{v_l, v_p\} \setminus \{0\}.",
)
def _check_probe_determinant() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        Z, p = probe_matrix(EXP, inst.model.v)
        checked += 1
        if det(EXP, Z) != 1:
            failures.append(f"{inst.name}: det Z = {det(EXP, Z)}")
        if any(c == 0 for c in Z @ inst.model.v):
            failures.append(f"{inst.name}: some u_l^T v = 0")
    return first_failure(failures, checked, "det Z == 1 exactly (flint)")


@claim(
    "single_head_exact", "v_zero_nonidentifiable",
    paper_ref=SINGLE_HEAD_REF, title="With v = 0, f = 0 and W is not identifiable",
    statement=r"v = 0 \implies f_{W,0} \equiv 0 = f_{W',0} \text{ for all } W, W'.",
)
def _check_v_zero() -> Outcome:
    failures, checked = [], 0
    for d in (1, 3, 6):
        a = single_head_instance(d, 0, field=EXP, v_zero=True).model
        b = SingleHeadAttention(a.W + EXP.eye(d) + 1, a.v, field=EXP)  # every entry differs
        rng = np.random.default_rng(d)
        for N in (1, 2, 5):
            X = np.stack([_rational_vector(rng, d) for _ in range(N)])
            checked += 1
            if not (a(X) == 0 and b(X) == 0):
                failures.append(f"d = {d}: f_W,0 is not 0")
        try:
            learn_single_head(ValueOracle(a))
            failures.append(f"d = {d}: the learner returned a W for v = 0")
        except NotIdentifiableError as exc:
            if not all(x == 0 for x in exc.recovered["v"]):
                failures.append(f"d = {d}: the error does not carry v = 0")
    return first_failure(failures, checked,
                          "answers all 0 for different W; the learner raises NotIdentifiableError")


@claim(
    "single_head_exact", "certificate_soundness",
    paper_ref=SINGLE_HEAD_REF, title="The certificate rejects a model one entry off",
    statement=r"\hat W = W + \tfrac17 e_a e_b^\top \implies \text{some replayed or fresh query}"
              r" \text{ has } f_{\hat W, v}(X) \ne f_{W,v}(X).",
)
def _check_certificate_soundness() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        if all(x == 0 for x in inst.model.v):
            continue
        oracle = ValueOracle(inst.model)
        rec = learn_single_head(oracle)
        rng = np.random.default_rng(inst.seed)
        a, b = (int(i) for i in rng.integers(0, inst.d, size=2))
        W = np.array(rec.W)
        W[a, b] = W[a, b] + EXP(Fraction(1, 7))
        wrong = Recovery(rec.label, rec.paper_ref, rec.field, {"W": W, "v": rec.v}, rec.queries,
                         rec.queries_by_phase, rec.transcript, rec.seed, rec.options)
        checked += 1
        cert = certify(wrong, oracle, probes=8, seed=inst.seed)
        if cert.holds:
            failures.append(f"{inst.name}: the certificate accepted W + 1/7 e_{a} e_{b}^T")
    return first_failure(failures, checked, "every perturbed model rejected")


@claim(
    "single_head_exact", "symbolic_derivation",
    paper_ref=SINGLE_HEAD_REF, title="The derivation behind the learner, symbolically",
    statement=r"\text{For symbolic } W, v, u, x \in \mathbb{R}^{3}: \text{ each step of the "
              r"derivation in this section simplifies to } 0 = 0 \text{ in SymPy.}",
    route="symbolic (sympy)",
)
def _check_symbolic_derivation() -> Outcome:
    from ..symbolic.single_head import derivation

    steps = derivation(3)
    failures = [f"step {k + 1} ({s.why}) does not simplify to 0"
                for k, s in enumerate(steps) if not s.verified]
    return first_failure(failures, len(steps), "every step simplifies to 0 = 0")


@claim(
    "single_head_exact", "ball_reconstruction",
    paper_ref=SINGLE_HEAD_REF,
    title="From rigorous balls at the computed precision to the exact parameters",
    statement=r"\text{answers known only as balls of } p = \mathrm{required\_precision}(d, M, Q)"
              r"\text{ bits} \implies \text{every entry is the unique rational of denominator}"
              r" \le Q \text{ in its ball, and equals } (W, v).",
    route="enclosure -> exact (BALL, reconstruction, then == in EXP)",
)
def _check_ball_reconstruction() -> Outcome:
    from ..fields import BALL
    from ..oracle import enclosing_oracle
    from ..reconstruct import required_precision

    failures, checked = [], 0
    for inst in builtin_single_head_instances(EXP):
        prec = required_precision(inst.d, 9, 8)  # built-in entries: |p/q| <= 9, q <= 8
        rec = learn_single_head(enclosing_oracle(inst.model, BALL(prec)), max_denominator=8)
        checked += 1
        if not ((rec.W == inst.model.W).all() and (rec.v == inst.model.v).all()):
            failures.append(f"{inst.name}: reconstruction differs from the hidden model")
        cert = certify(rec, ValueOracle(inst.model), probes=4, seed=inst.seed)
        if not (cert.holds and cert.kind == "exact"):
            failures.append(f"{inst.name}: exact certificate: {cert}")
    return first_failure(failures, checked, "reconstructed exactly; exact certificates hold")
