"""Claims of ``membership_queries``: a single head from sign labels (ours; Part II).

The paper's v2 adds an appendix on membership queries whose statement is
unknown to us (paper.md), so this is our own result on that question:
identifiability (what labels can and cannot determine, symbolically in
SymPy and on exact instances), the exact learner with its closed-form query
count, the counting lower bound, and certificates that hold on the recovered
head and reject one off by 1/Q in one entry. Labels are computed in EXP, so
each is exact.

The instances (:func:`membership_instance`) have zeros in v (the pivot is
not always the first coordinate), negative and positive entries, a hidden
scale |v_p| != 1, and large heights (Q = 10^6, M = 1000).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure, register_result
from ..errors import InvalidEntryError, NotIdentifiableError
from ..fields import EXP, Array
from ..instances import check_size
from ..learners.membership import (
    LABEL,
    PAPER_REF,
    bisection_steps,
    height_class_size,
    learn_single_head_membership,
    lower_bound,
    query_count,
)
from ..learners.recovery import Recovery
from ..models import SingleHeadAttention
from ..oracle import SignOracle

__all__ = ["SignModel", "MembershipInstance", "membership_instance",
           "builtin_membership_instances", "off_by_one_unit"]

ROUTE = "exact (EXP labels, rational bisection with a continued-fraction certificate)"
SYMBOLIC = "symbolic (sympy)"


class SignModel:
    """The labels sign(f(X)) of a head, as a model: what a membership recovery is replayed as.

    >>> m = SignModel(SingleHeadAttention([[0]], [-2], field=EXP))
    >>> m([[3]]), m([[0]])
    (-1, 0)
    """

    def __init__(self, head: SingleHeadAttention) -> None:
        self.head = head
        self.field = head.field
        self.d = head.d

    def __call__(self, X: Any) -> Any:
        return self.field(self.field.sign(self.head(X)))


def _sign_model(rec: Recovery) -> SignModel:
    if rec.approximate:
        raise InvalidEntryError(
            "an approximate membership recovery (intervals of width <= epsilon) is not "
            "certified by replaying labels: its midpoints need not reproduce labels near a "
            "cut. Its guarantee is the intervals in options['W_intervals'] and "
            "options['v_intervals']")
    return SignModel(SingleHeadAttention(rec.W, rec.v, field=EXP))


register_model_builder(LABEL, _sign_model)

register_result(
    LABEL, paper_ref=PAPER_REF,
    title=r"A single head from membership (label) queries: $W$ exactly, $v$ up to a "
          r"positive scale",
)


@dataclass(frozen=True)
class MembershipInstance:
    """A seeded head of height (M, Q): W entries and ratios v_i / v_p of that height."""

    name: str
    d: int
    seed: int
    max_abs: int
    max_denominator: int
    model: SingleHeadAttention
    pivot: int


def _height_rational(rng: np.random.Generator, M: int, Q: int) -> Fraction:
    q = int(rng.integers(1, Q + 1))
    return Fraction(int(rng.integers(-M * q, M * q + 1)), q)


def membership_instance(d: int, seed: int, *, max_abs: int = 9, max_denominator: int = 8,
                        zeros_in_v: int = 0, v_zero: bool = False) -> MembershipInstance:
    """A seeded instance: W of height (M, Q), v = s (r_1, ..., r_d), r of height (M, Q).

    The first ``zeros_in_v`` coordinates of v are 0 (so the pivot p = zeros_in_v,
    capped at d - 1); r_p = 1 and the hidden scale s is a rational of height
    (M, Q), s != 0, usually |s| != 1: the learner can only return v / |v_p|.

    >>> inst = membership_instance(3, 0, zeros_in_v=1)
    >>> inst.pivot, inst.model.v[0] == 0, inst.model.v[1] != 0
    (1, True, True)
    """
    check_size("d", d, low=1)
    check_size("seed", seed)
    check_size("max_abs", max_abs, low=1)
    check_size("max_denominator", max_denominator, low=1)
    check_size("zeros_in_v", zeros_in_v)
    rng = np.random.default_rng([seed, d, max_abs, max_denominator])
    M, Q = max_abs, max_denominator
    W = [[_height_rational(rng, M, Q) for _ in range(d)] for _ in range(d)]
    p = min(zeros_in_v, d - 1)
    scale = _height_rational(rng, M, Q) or Fraction(-3, 2)
    r = [Fraction(0)] * p + [Fraction(1)] + [_height_rational(rng, M, Q)
                                             for _ in range(d - p - 1)]
    v = [Fraction(0)] * d if v_zero else [scale * x for x in r]
    name = f"membership(d={d}, seed={seed}, M={M}, Q={Q}, zeros={p})"
    return MembershipInstance(name, d, seed, M, Q, SingleHeadAttention(W, v, field=EXP), p)


def builtin_membership_instances() -> list[MembershipInstance]:
    """d = 1..4 (with and without zeros in v), and large heights (Q = 10^6, M = 1000)."""
    out = [membership_instance(d, seed, zeros_in_v=zeros)
           for d in (1, 2, 3, 4) for seed, zeros in ((0, 0), (1, d // 2))]
    out.append(membership_instance(3, 2, max_abs=7, max_denominator=10**6, zeros_in_v=1))
    out.append(membership_instance(2, 3, max_abs=1000, max_denominator=12))
    return out


_LEARNED: dict[str, tuple[Recovery, SignOracle]] = {}


def _learn(inst: MembershipInstance) -> tuple[Recovery, SignOracle]:
    """The recovery of a built-in instance (learned once per process: four claims use it)."""
    if inst.name not in _LEARNED:
        oracle = SignOracle(inst.model)
        rec = learn_single_head_membership(oracle, max_abs=inst.max_abs,
                                           max_denominator=inst.max_denominator)
        _LEARNED[inst.name] = (rec, oracle)
    return _LEARNED[inst.name]


def _rational_vector(rng: np.random.Generator, d: int) -> Array:
    return EXP.array([Fraction(int(rng.integers(-6, 7)), int(rng.integers(1, 5)))
                      for _ in range(d)])


def off_by_one_unit(rec: Recovery, entry: tuple[str, int, int], Q: int, M: int) -> Recovery:
    """The recovery with one entry (``("W", i, j)`` or ``("v", i, 0)``) moved by 1/Q.

    The move is +1/Q, or -1/Q where +1/Q would leave [-M, M]: the wrong head
    stays in the class of height (M, Q), so no hypothesis excludes it.
    """
    name, i, j = entry
    params = {k: np.array(A) for k, A in rec.params.items()}
    A = params[name]
    where = (i, j) if name == "W" else (i,)
    step = EXP(Fraction(1, Q))
    A[where] = A[where] + step if A[where] + step <= M else A[where] - step
    return dataclasses.replace(rec, params=params)


# -- identifiability ---------------------------------------------------------------------------
@claim(
    LABEL, "scale_invariance", paper_ref=PAPER_REF,
    title="Labels are invariant under a positive scale of v",
    statement=r"f_{W, \lambda v}(X) = \lambda f_{W, v}(X) \text{ for all } X, \text{ so } "
              r"\lambda > 0 \implies \operatorname{sign} f_{W,\lambda v} = "
              r"\operatorname{sign} f_{W,v}: v \text{ is at best known up to a positive scale.}",
    route=f"{SYMBOLIC}; exact instances (EXP)",
)
def _check_scale_invariance() -> Outcome:
    import sympy as sp

    failures, checked = [], 0
    # symbolic: N = 3 tokens in d = 2, symbolic W, v, tokens and lambda
    d, N = 2, 3
    W = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"W_{i}{j}", real=True))
    v = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"v_{i}", real=True))
    lam = sp.Symbol("lambda", positive=True)
    X = [sp.Matrix(d, 1, lambda i, _, n=n: sp.Symbol(f"x_{n}{i}", real=True)) for n in range(N)]
    checked += 1
    if sp.simplify(_sym_head(X, W, lam * v) - lam * _sym_head(X, W, v)) != 0:
        failures.append("sympy: f_{W, lambda v} - lambda f_{W, v} does not simplify to 0")
    # exact instances: the labels of v and of lambda v agree on random queries
    for inst in builtin_membership_instances()[:6]:
        rng = np.random.default_rng(inst.seed)
        scaled = SignOracle(SingleHeadAttention(inst.model.W, EXP(Fraction(7, 3)) * inst.model.v,
                                                field=EXP))
        plain = SignOracle(inst.model)
        for _ in range(6):
            Xq = np.stack([_rational_vector(rng, inst.d) for _ in range(int(rng.integers(1, 4)))])
            checked += 1
            if plain(Xq) != scaled(Xq):
                failures.append(f"{inst.name}: labels of v and 7/3 v differ")
    return first_failure(failures, checked, "0 = 0 in SymPy; equal labels (==) on instances")


def _sym_head(X: list[Any], W: Any, v: Any) -> Any:
    import sympy as sp

    xN = X[-1]
    weights = [sp.exp((x.T * W * xN)[0]) for x in X]
    return sp.Add(*[w * (v.T * x)[0] for w, x in zip(weights, X, strict=True)]) / sp.Add(*weights)


@claim(
    LABEL, "two_token_sign", paper_ref=PAPER_REF,
    title="The label of a two-token query compares the score gap with a log-ratio",
    statement=r"g = (y - x)^\top W x \implies (1 + e^{g}) f([y^\top; x^\top]) = x^\top v + "
              r"e^{g}\, y^\top v;\ \text{with } x = \lambda u,\ y = \lambda u + z/\lambda,\ "
              r"A = \lambda^2 |u^\top v| / |z^\top v| < 1,\ (u^\top v)(z^\top v) < 0:\ "
              r"\operatorname{sign} f = \operatorname{sign}(u^\top v)\,"
              r"\operatorname{sign}(\operatorname{logit} A - z^\top W u).",
    route=f"{SYMBOLIC}; exact instances (EXP)",
)
def _check_two_token_sign() -> Outcome:
    import sympy as sp

    failures, checked = [], 0
    d = 2
    W = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"W_{i}{j}", real=True))
    v = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"v_{i}", real=True))
    y = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"y_{i}", real=True))
    x = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"x_{i}", real=True))
    g = ((y - x).T * W * x)[0]
    checked += 1
    lhs = (1 + sp.exp(g)) * _sym_head([y, x], W, v)
    if sp.simplify(lhs - ((x.T * v)[0] + sp.exp(g) * (y.T * v)[0])) != 0:
        failures.append("sympy: (1 + e^g) f != x.v + e^g y.v")
    # the probe: with c = u.v > 0 > z.v = -c/A * lambda^2 ... in closed form:
    lam, c, A, t = sp.symbols("lambda c A t", positive=True)
    cz = -lam**2 * c / A  # z.v, so that A = lambda^2 |u.v| / |z.v|
    # (1 + e^g) f with x.v = lambda c, y.v = lambda c + cz / lambda, e^g = t
    expr = lam * c + t * (lam * c + cz / lam)
    target = (lam * c / A) * (1 - A) * (A / (1 - A) - t)  # positive iff t < A / (1 - A)
    checked += 1
    if sp.simplify(expr - target) != 0:
        failures.append("sympy: the probe identity does not simplify to 0")
    # exact instances: the label equals sign(u.v) sign(logit(A) - g), decided in EXP
    for inst in builtin_membership_instances()[:8]:
        m = inst.model
        rng = np.random.default_rng(300 + inst.seed)
        for _ in range(4):
            u, z = _rational_vector(rng, inst.d), _rational_vector(rng, inst.d)
            cu, cz_ = u @ m.v, z @ m.v
            if cu * cz_ >= 0:
                continue
            lam_q = EXP(Fraction(int(rng.integers(1, 9)), 8))
            A = lam_q * lam_q * abs(cu) / abs(cz_)
            if not A < 1 or A == Fraction(1, 2):
                continue
            Xq = np.stack([lam_q * u + z / lam_q, lam_q * u])
            label = EXP.sign(m(Xq))
            gap = z @ m.W @ u
            # logit(A) > g  <=>  A / (1 - A) > e^g, decided exactly in EXP
            expected = EXP.sign(cu) * EXP.sign(A / (1 - A) - EXP.exp(gap))
            checked += 1
            if label != expected:
                failures.append(f"{inst.name}: label {label}, expected {expected}")
    return first_failure(failures, checked, "both identities 0 = 0; labels as predicted (==)")


@claim(
    LABEL, "v_ray_identifiable", paper_ref=PAPER_REF,
    title="Length-1 labels determine exactly the ray of v",
    statement=r"v' \notin \{\lambda v : \lambda > 0\} \implies x = (v^\top v') v - "
              r"|v|^2 v' \text{ has } \operatorname{sign}(v^\top x) \ne "
              r"\operatorname{sign}(v'^\top x) \text{ (or } x = v \text{ if } v' = -\lambda v);"
              r"\ v' = \lambda v,\ \lambda > 0 \implies \text{equal labels.}",
)
def _check_v_ray() -> Outcome:
    failures, checked = [], 0
    rng = np.random.default_rng(11)
    for d in (1, 2, 3, 5):
        for _ in range(8):
            v = _rational_vector(rng, d)
            if all(t == 0 for t in v):
                continue
            for w in (_rational_vector(rng, d), EXP(-2) * v, EXP(Fraction(5, 2)) * v):
                proportional = _positive_multiple(v, w)
                if proportional:
                    checked += 1
                    if any(EXP.sign(v @ x) != EXP.sign(w @ x)
                           for x in (_rational_vector(rng, d) for _ in range(4))):
                        failures.append(f"d = {d}: positive multiples with different labels")
                    continue
                vw, vv = v @ w, v @ v
                x = (vw * v - vv * w) if any(t != 0 for t in vw * v - vv * w) else v
                checked += 1
                if EXP.sign(v @ x) == EXP.sign(w @ x):
                    failures.append(f"d = {d}: the witness does not separate {v.tolist()}, "
                                    f"{w.tolist()}")
    return first_failure(failures, checked, "every non-multiple separated by its witness (==)")


def _positive_multiple(v: Array, w: Array) -> bool:
    k = next(i for i in range(v.shape[0]) if v[i] != 0)
    lam = w[k] / v[k]
    return bool(lam > 0 and all(w[i] == lam * v[i] for i in range(v.shape[0])))


@claim(
    LABEL, "v_zero_nonidentifiable", paper_ref=PAPER_REF,
    title="With v = 0 every label is 0 and nothing is identifiable",
    statement=r"v = 0 \implies \operatorname{sign} f_{W,0}(X) = 0 \text{ for all } W, X;"
              r"\ \text{the learner raises NotIdentifiableError after } d \text{ labels.}",
)
def _check_v_zero() -> Outcome:
    failures, checked = [], 0
    for d in (1, 3):
        inst = membership_instance(d, 0, v_zero=True)
        other = SingleHeadAttention(inst.model.W + 1, inst.model.v, field=EXP)
        rng = np.random.default_rng(d)
        for N in (1, 2, 4):
            Xq = np.stack([_rational_vector(rng, d) for _ in range(N)])
            checked += 1
            if not (SignOracle(inst.model)(Xq) == 0 == SignOracle(other)(Xq)):
                failures.append(f"d = {d}: a nonzero label with v = 0")
        oracle = SignOracle(inst.model)
        try:
            learn_single_head_membership(oracle, max_abs=9, max_denominator=8)
            failures.append(f"d = {d}: the learner returned a head for v = 0")
        except NotIdentifiableError:
            if oracle.queries != d:
                failures.append(f"d = {d}: {oracle.queries} labels spent, expected {d}")
    return first_failure(failures, checked, "all labels 0; NotIdentifiableError after d labels")


# -- the learner ----------------------------------------------------------------------------
@claim(
    LABEL, "exact_recovery", paper_ref=PAPER_REF,
    title="Exact recovery of W and of v up to a positive scale",
    statement=r"v \ne 0,\ W_{ij},\ v_i/v_p \in \mathbb{Q} \text{ of height } (M, Q) \implies "
              r"\hat W = W,\ \hat v = v / |v_p| \ (p \text{ the first } i \text{ with } "
              r"v_i \ne 0), \text{ status exact\_given (the height bound and the scale).}",
    route=ROUTE,
)
def _check_exact_recovery() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_membership_instances():
        rec, oracle = _learn(inst)
        m = inst.model
        p = inst.pivot
        checked += 1
        if not (rec.W == m.W).all():
            failures.append(f"{inst.name}: W differs")
        if not (rec.v == m.v / abs(m.v[p])).all() or rec.options["pivot"] != p:
            failures.append(f"{inst.name}: v / |v_p| differs (pivot {rec.options['pivot']})")
        if rec.status != "exact_given" or len(rec.hypotheses) != 3:
            failures.append(f"{inst.name}: status {rec.status_text()}")
        cert = certify(rec, oracle, probes=6, seed=inst.seed)
        if not (cert.holds and cert.kind == "exact"):
            failures.append(f"{inst.name}: certificate {cert}")
    return first_failure(failures, checked,
                         "W == W, v == v/|v_p| on every instance; certificates (replayed and "
                         "fresh labels) hold")


@claim(
    LABEL, "query_count", paper_ref=PAPER_REF,
    title="The query count in closed form",
    statement=r"\#\text{labels} = d + (n_v - 1) L(M) + d^2 L(2M),\ L(w) = "
              r"\lfloor \log_2(512\, w Q^2 / 511) \rfloor + 1 = \min\{L : w 2^{-L} + "
              r"2\eta < Q^{-2}\},\ \eta = 1/(1024 Q^2);\ O(d^2 \log(MQ)).",
    route=ROUTE,
)
def _check_query_count() -> Outcome:
    failures, checked = [], 0
    # L(w) is the least L with w 2^-L + 2 eta < 1/Q^2 (brute force, exact rationals)
    for Q in (1, 2, 7, 1000, 10**6):
        for w in (1, 2, 9, 18, 1000, 2000):
            L = 0
            while Fraction(w, 2**L) + Fraction(2, 1024 * Q * Q) >= Fraction(1, Q * Q):
                L += 1
            checked += 1
            if bisection_steps(w, Q) != L:
                failures.append(f"L({w}) at Q = {Q}: closed form {bisection_steps(w, Q)}, "
                                f"least {L}")
    for inst in builtin_membership_instances():
        rec, _ = _learn(inst)
        n_v = sum(1 for t in inst.model.v if t != 0)
        expected = query_count(inst.d, n_v, inst.max_abs, inst.max_denominator)
        checked += 1
        if rec.queries != expected:
            failures.append(f"{inst.name}: {rec.queries} labels, closed form {expected}")
        if rec.queries_by_phase.get("W") != inst.d**2 * bisection_steps(
                2 * inst.max_abs, inst.max_denominator):
            failures.append(f"{inst.name}: W phase {dict(rec.queries_by_phase)}")
    return first_failure(failures, checked, "measured == closed form on every instance")


@claim(
    LABEL, "lower_bound", paper_ref=PAPER_REF,
    title="The counting lower bound",
    statement=r"\text{every learner needs } \ge \lceil (d^2 + d - 1) \log_3 F(M, Q) \rceil "
              r"\text{ sign labels},\ F(M, Q) = \#\{r \in \mathbb{Q} : |r| \le M,\ "
              r"\operatorname{den} r \le Q\} = 2M \textstyle\sum_{q \le Q} \varphi(q) + 1.",
    route="exact (integer counting, enumeration; distinct label functions on whole small "
          "classes; the decision-tree count answers^q >= #class is a prose step)",
)
def _check_lower_bound() -> Outcome:
    failures, checked = [], 0
    # the premise: the F^(d^2) F^(d-1) heads (W, v = (1, r_2, ..., r_d)) have pairwise
    # different label functions. On whole small classes the (deterministic) learner
    # returns every head exactly, so no two share their labels on the queries it asks.
    sizes = []
    for d, M, Q in ((1, 2, 2), (2, 1, 1)):
        heights = sorted({Fraction(a, q) for q in range(1, Q + 1)
                          for a in range(-M * q, M * q + 1)})
        transcripts = set()
        for entries in itertools.product(heights, repeat=d * d + d - 1):
            W = [list(entries[i * d:(i + 1) * d]) for i in range(d)]
            v = [Fraction(1), *entries[d * d:]]
            oracle = SignOracle(SingleHeadAttention(W, v, field=EXP))
            rec = learn_single_head_membership(oracle, max_abs=M, max_denominator=Q)
            checked += 1
            if not ((rec.W == EXP.array(W)).all() and (rec.v == EXP.array(v)).all()):
                failures.append(f"d = {d}, (M, Q) = ({M}, {Q}): head {W}, {v} not recovered")
            transcripts.add(tuple(int(EXP.to_rational(e.answer)) for e in rec.transcript))
        if len(transcripts) != height_class_size(M, Q) ** (d * d + d - 1):
            failures.append(f"d = {d}, (M, Q) = ({M}, {Q}): {len(transcripts)} distinct label "
                            f"sequences for F^(d^2 + d - 1) heads")
        sizes.append(len(transcripts))
    for M in (1, 2, 3):
        for Q in (1, 2, 5, 12):
            brute = len({Fraction(p, q) for q in range(1, Q + 1) for p in range(-M * q, M * q + 1)})
            checked += 1
            if height_class_size(M, Q) != brute:
                failures.append(f"F({M}, {Q}) = {height_class_size(M, Q)}, enumeration {brute}")
    ratios = []
    for inst in builtin_membership_instances():
        rec, _ = _learn(inst)
        bound = lower_bound(inst.d, inst.max_abs, inst.max_denominator)
        checked += 1
        if not bound <= rec.queries:
            failures.append(f"{inst.name}: {rec.queries} labels below the bound {bound}")
        ratios.append(rec.queries / bound)
    return first_failure(failures, checked,
                         f"every head of two whole classes ({' and '.join(map(str, sizes))} "
                         f"heads) recovered, with distinct labels; F by the totient sum == "
                         f"enumeration; measured / bound in [{min(ratios):.2f}, "
                         f"{max(ratios):.2f}]")


@claim(
    LABEL, "certificate_soundness", paper_ref=PAPER_REF,
    title="The label certificate rejects a head one unit of 1/Q off",
    statement=r"\hat W = W \pm \tfrac1Q e_a e_b^\top \text{ or } \hat v = v/|v_p| \pm \tfrac1Q e_a "
              r"\implies \text{some transcribed label differs:}\ \operatorname{sign} "
              r"f_{\hat W, \hat v}(X) \ne \operatorname{sign} f_{W, v}(X).",
    route=ROUTE,
)
def _check_certificate_soundness() -> Outcome:
    failures, checked = [], 0
    for inst in builtin_membership_instances():
        rec, oracle = _learn(inst)
        Q = inst.max_denominator
        entries = [("W", a, b) for a in range(inst.d) for b in range(inst.d)]
        entries += [("v", a, 0) for a in range(inst.d)
                    if a != inst.pivot and inst.model.v[a] != 0]
        for entry in entries:
            checked += 1
            cert = certify(off_by_one_unit(rec, entry, Q, inst.max_abs), oracle, probes=0)
            if cert.holds:
                failures.append(f"{inst.name}: {entry} + 1/{Q} accepted")
    return first_failure(failures, checked, "every entry moved by 1/Q is rejected by a "
                                            "transcribed label")


def _huge_height(rng: np.random.Generator, seed: int) -> Fraction:
    """|x| <= 2 with a denominator about 10^30: no useful height bound."""
    return Fraction(int(rng.integers(-2 * 10**6, 2 * 10**6)), 10**6) + Fraction(1, 10**30 + seed)


@claim(
    LABEL, "interval_route", paper_ref=PAPER_REF,
    title="Without a height bound: every entry in an interval of width at most epsilon",
    statement=r"|W_{ij}|,\ |v_i / v_p| \le M \implies W_{ij} \in [\ell_{ij}, h_{ij}],\ "
              r"h_{ij} - \ell_{ij} \le \varepsilon, \text{ after } d^2 \lceil \log_2(64 M / "
              r"\varepsilon) \rceil \text{ labels for } W \text{ (status approximate; "
              r"over float64 labels only given the named float-error model of the "
              r"oracle, a first-order assumption, not a proved bound).}",
    route="enclosure over EXP labels (arb balls for the cuts; rational intervals compared "
          "exactly); over F64 labels, given the first-order float-error model",
)
def _check_interval_route() -> Outcome:
    from ..learners.membership import interval_steps

    failures, checked = [], 0
    eps = Fraction(1, 1000)
    for d, seed in ((1, 0), (2, 1), (3, 2)):
        rng = np.random.default_rng(seed)
        W = [[_huge_height(rng, seed) for _ in range(d)] for _ in range(d)]
        v = [Fraction(-7, 5)] + [Fraction(-7, 5) * _huge_height(rng, seed) for _ in range(d - 1)]
        rec = learn_single_head_membership(SignOracle(SingleHeadAttention(W, v, field=EXP)),
                                           max_abs=3, epsilon=eps)
        checked += 1
        if rec.status != "approximate" or rec.queries_by_phase["W"] != d * d * interval_steps(
                3, eps):
            failures.append(f"d = {d}: status {rec.status}, {dict(rec.queries_by_phase)}")
        for i in range(d):
            for j in range(d):
                lo, hi = (Fraction(t) for t in rec.options["W_intervals"][i][j])
                if not (lo <= W[i][j] <= hi and hi - lo <= eps):
                    failures.append(f"d = {d}: W[{i}][{j}] = {W[i][j]} not in [{lo}, {hi}]")
            lo, hi = (Fraction(t) for t in rec.options["v_intervals"][i])
            if not lo <= v[i] / abs(v[0]) <= hi:
                failures.append(f"d = {d}: v_{i} / |v_0| not in [{lo}, {hi}]")
    # float64 labels (the float error assumption is a named hypothesis of the result)
    from ..fields import F64

    for d, seed in ((2, 5), (4, 6)):
        rng = np.random.default_rng(seed)
        Wf, vf = rng.uniform(-2, 2, (d, d)), rng.uniform(-2, 2, d)
        vf[0] = 0.9
        rec = learn_single_head_membership(SignOracle(SingleHeadAttention(Wf, vf, field=F64)),
                                           max_abs=3, epsilon=eps)
        checked += 1
        if rec.options["labels"] != "F64" or not rec.hypotheses[-1].startswith("float64"):
            failures.append(f"F64 d = {d}: the float-label hypothesis is not named")
        if rec.queries_by_phase["W"] != d * d * interval_steps(3, eps):
            failures.append(f"F64 d = {d}: {dict(rec.queries_by_phase)}")
        for i in range(d):
            for j in range(d):
                lo, hi = (Fraction(t) for t in rec.options["W_intervals"][i][j])
                if not (lo <= Fraction(Wf[i, j]) <= hi and hi - lo <= eps):
                    failures.append(f"F64 d = {d}: W[{i}][{j}] not in [{lo}, {hi}]")
            lo, hi = (Fraction(t) for t in rec.options["v_intervals"][i])
            if not lo <= Fraction(vf[i]) / Fraction(vf[0]) <= hi:
                failures.append(f"F64 d = {d}: v_{i} / |v_0| not in [{lo}, {hi}]")
    return first_failure(failures, checked, "every hidden entry inside its interval, widths "
                                            "<= 1/1000 (== on rationals); EXP and F64 labels")
