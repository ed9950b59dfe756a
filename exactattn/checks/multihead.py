"""Claims of ``multihead_nonidentifiable`` (paper Prop 7.1, v1 and v2; paper.md §6)
and ``multihead_canonical`` (exactattn's own; cf. arXiv 2608.03294).

Every numerical check runs in the exponential field and compares with ``==``;
the symbolic ones use SymPy on symbolic tokens and parameters. The model
builders of both labels are registered here (learners may not import the
models).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import register_model_builder
from ..certificates import verify as certify
from ..claims import Outcome, claim, first_failure, register_result
from ..errors import InvalidEntryError, RecoveryFailedError
from ..fields import EXP
from ..learners.multihead import (
    LABEL,
    ORTHOGONAL_LABEL,
    ORTHOGONAL_REF,
    PAPER_REF,
    learn_multihead,
    learn_orthogonal_heads,
    orthogonal_query_count,
    published_bound,
    query_count,
)
from ..learners.recovery import Recovery
from ..models.multihead import (
    ConcatenatedMultiHeadAttention,
    MultiHeadAttention,
    canonical,
    equivalent,
    random_multihead,
    same_heads,
)
from ..oracle import ValueOracle

NONID = ORTHOGONAL_LABEL  # "multihead_nonidentifiable"
NONID_REF = ORTHOGONAL_REF


def recovered_model(rec: Recovery) -> MultiHeadAttention:
    """The multi-head model of a recovery (head first: ``W`` (m, d, d), ``v`` (m, d))."""
    W, v = rec.params["W"], rec.params["v"]
    if W.ndim != 3 or W.shape[1] != W.shape[2] or v.shape != W.shape[:2]:
        raise InvalidEntryError(
            f"the parameters W {W.shape} and v {v.shape} do not describe a multi-head "
            "recovery: expected W of shape (m, d, d) and v of shape (m, d), head first")
    return MultiHeadAttention.from_arrays(W, v, field=rec.field)


register_model_builder(LABEL, recovered_model)
register_model_builder(NONID, recovered_model)


register_result(NONID, paper_ref=NONID_REF,
                title="Multi-head attention is not identifiable; its canonical form is")
register_result(LABEL, paper_ref=PAPER_REF,
                title=r"Exact canonical multi-head attention with "
                      r"$1 + 2Hd + [H \ge 2](d-1) + (d-1)(Hd + (H-1)^2)$ queries")

#: (H, d, seed) of the built-in instances
INSTANCES = ((1, 2, 0), (2, 2, 0), (2, 3, 1), (3, 2, 2), (3, 3, 0), (2, 4, 3))


def _queries(rng: np.random.Generator, d: int, count: int = 4) -> list[Any]:
    out = []
    for _ in range(count):
        N = int(rng.integers(1, 5))
        out.append(EXP.array([[Fraction(int(rng.integers(-6, 7)), int(rng.integers(1, 4)))
                               for _ in range(d)] for _ in range(N)]))
    return out


def _split(model: MultiHeadAttention, rng: np.random.Generator) -> MultiHeadAttention:
    """Prop 7.1 applied to every head: split (lambda, 1 - lambda), add a zero head, permute."""
    heads: list[tuple[Any, Any]] = []
    for W, v in zip(model.Ws, model.vs, strict=True):
        lam = EXP(Fraction(int(rng.integers(-9, 10)), 7))  # any sign
        heads += [(W, lam * v), (W, (1 - lam) * v)]
    heads.append((EXP.array(rng.integers(-3, 4, size=(model.d, model.d)).tolist()),
                  EXP.zeros(model.d)))
    order = rng.permutation(len(heads))
    return MultiHeadAttention([heads[int(k)] for k in order], d=model.d)


# -- multihead_nonidentifiable -----------------------------------------------
@claim(NONID, "symmetries_exact", paper_ref=NONID_REF,
       title="Split, zero-v and permuted heads compute the same function (exact, EXP)",
       statement=r"\sum_h \alpha(X, A)^\top X (\lambda_h b) + \alpha(X, U)^\top X\, 0 = "
                 r"\alpha(X, A)^\top X b \quad (\textstyle\sum_h \lambda_h = 1)")
def _check_symmetries_exact() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in INSTANCES:
        rng = np.random.default_rng([seed, 71])
        m = random_multihead(H, d, seed)
        s = _split(m, rng)
        for X in _queries(rng, d):
            checked += 1
            if m(X) != s(X):
                failures.append(f"H={H}, d={d}: split model differs at X = {X.tolist()}")
    return first_failure(failures, checked, "equal as elements of EXP")


@claim(NONID, "symmetries_symbolic", paper_ref=NONID_REF,
       title="The three families are identities in symbolic tokens and parameters",
       statement=r"\text{shared-}W\text{ split, head permutation, zero-}v\text{ head: each "
                 r"simplifies to } 0 = 0 \text{ in SymPy}", route="symbolic (sympy)")
def _check_symmetries_symbolic() -> Outcome:
    from ..symbolic.multihead import nonidentifiable_families

    steps = nonidentifiable_families(2, 2, 3) + nonidentifiable_families(3, 1, 2)
    failures = [f"{s.why}: not verified" for s in steps if not s.verified]
    return first_failure(failures, len(steps), "every family verified")


@claim(NONID, "derivation_all_pairs", paper_ref=NONID_REF,
       title="H = 2, d = 1 and d = 2: every equal-function pair is a canonical symmetry",
       statement=r"f_\theta = f_{\theta'} \iff \operatorname{canon}(\theta) = "
                 r"\operatorname{canon}(\theta') \text{ for } H = 2,\ d \in \{1, 2\} "
                 r"\text{ (15 cases of equal } W\text{, solved in SymPy)}",
       route="symbolic (sympy: generic solve, the E_j independent symbols) + prose "
             "(Lindemann–Weierstrass: why that is valid at rational tokens)")
def _check_derivation() -> Outcome:
    from ..symbolic.multihead import derive_equal_functions

    failures, checked = [], 0
    for d in (1, 2):
        der = derive_equal_functions(d)
        checked += len(der.cases)
        failures += [f"d = {d}, equal W {c.blocks}: solution set != canonical symmetries"
                     for c in der.cases if not c.matches_canonical]
        if len(der.cases) != 15:
            failures.append(f"d = {d}: {len(der.cases)} cases, expected 15")
    return first_failure(failures, checked, "all 15 cases, d = 1 and d = 2")


@claim(NONID, "canonical_form", paper_ref=NONID_REF,
       title="The canonical form is idempotent and invariant under the symmetries",
       statement=r"\operatorname{canon}(\operatorname{canon}(\theta)) = "
                 r"\operatorname{canon}(\theta) = \operatorname{canon}(\sigma\theta)")
def _check_canonical() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in INSTANCES:
        rng = np.random.default_rng([seed, 72])
        m = random_multihead(H, d, seed)
        c = canonical(m)
        checked += 1
        if not same_heads(canonical(c), c):
            failures.append(f"H={H}, d={d}: not idempotent")
        if not same_heads(canonical(_split(m, rng)), c):
            failures.append(f"H={H}, d={d}: changed by a symmetry")
    return first_failure(failures, checked, "idempotent and invariant (exact ==)")


@claim(NONID, "orthogonal_heads", paper_ref=NONID_REF,
       title="Known orthogonal head subspaces: single_head_exact head by head",
       statement=r"U_h \perp U_g \implies \text{exact } (W_h, v_h) \text{ with } "
                 r"\sum_h (d_h + d_h^2) \text{ queries}")
def _check_orthogonal() -> Outcome:
    failures, checked = [], 0
    for dims, seed in (((1, 1), 0), ((2, 1), 1), ((2, 2), 2)):
        d = sum(dims)
        rng = np.random.default_rng([seed, 73])
        bases, heads, offset = [], [], 0
        for k in dims:
            Bh = np.zeros((d, k), dtype=object)
            for i in range(k):
                Bh[offset + i, i] = 1
            Bh = EXP.array(Bh.tolist())
            M = EXP.array(rng.integers(-4, 5, size=(k, k)).tolist())
            vh = EXP.array((rng.integers(1, 5, size=k)).tolist())
            heads.append((Bh @ M @ Bh.T, Bh @ vh))
            bases.append(Bh)
            offset += k
        model = MultiHeadAttention(heads, d=d)
        oracle = ValueOracle(model)
        rec = learn_orthogonal_heads(oracle, bases)
        checked += 1
        got = recovered_model(rec)
        if not same_heads(canonical(got), canonical(model)):
            failures.append(f"dims {dims}: recovered heads differ")
        if rec.queries != orthogonal_query_count(dims):
            failures.append(f"dims {dims}: {rec.queries} queries")
        if not certify(rec, oracle, probes=4).holds:
            failures.append(f"dims {dims}: certificate fails")
    return first_failure(failures, checked, "exact, with sum_h (d_h + d_h^2) queries")


# -- multihead_canonical -------------------------------------------------------
@claim(LABEL, "concatenation_form", paper_ref=PAPER_REF,
       title="The merged form equals the concatenation form exactly",
       statement=r"w_o^\top [o_1; \dots; o_H] = \sum_h \alpha(X, K_h^\top Q_h)^\top X "
                 r"(V_h^\top w_{o,h})")
def _check_concatenation() -> Outcome:
    failures, checked = [], 0
    for H, dh, d, seed in ((2, 1, 2, 0), (2, 2, 3, 1), (3, 1, 3, 2)):
        rng = np.random.default_rng([seed, 74])

        Q, K, V = ([rng.integers(-3, 4, size=(dh, d)).tolist() for _ in range(H)]
                   for _ in range(3))
        w_o = rng.integers(-3, 4, size=H * dh).tolist()
        cat = ConcatenatedMultiHeadAttention(Q, K, V, w_o)
        merged = MultiHeadAttention.from_projections(Q, K, V, w_o)
        for X in _queries(rng, d):
            checked += 1
            if cat(X) != merged(X):
                failures.append(f"H={H}, d_h={dh}: forms differ at {X.tolist()}")
    return first_failure(failures, checked, "equal in EXP")


@claim(LABEL, "exact_recovery", paper_ref=PAPER_REF,
       title="The canonical heads, exactly, with the closed-form number of queries",
       statement=r"\hat\theta = \operatorname{canon}(\theta) \text{ (up to order) after } "
                 r"1 + 2Hd + [m \ge 2](d-1) + (d-1)K \le 4Hd^2 - 2H + 1 \text{ queries}")
def _check_recovery() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in INSTANCES:
        model = random_multihead(H, d, seed)
        oracle = ValueOracle(model)
        rec = learn_multihead(oracle, heads=H, seed=seed)
        checked += 1
        if not same_heads(recovered_model(rec), canonical(model)):
            failures.append(f"H={H}, d={d}: recovered heads differ from the canonical form")
        expected = query_count(H, d, m=rec.options["m"], plan=rec.options["plan"])
        if not rec.queries == oracle.queries == expected <= published_bound(H, d):
            failures.append(f"H={H}, d={d}: {rec.queries} queries, expected {expected}")
        if not certify(rec, oracle, probes=4, seed=seed).holds:
            failures.append(f"H={H}, d={d}: certificate fails")
    return first_failure(failures, checked, "equal to canonical(model) with ==; query count "
                         f"derived (prose), equal to the counter on {checked} instances")


@claim(LABEL, "equivalence", paper_ref=PAPER_REF,
       title="Functional equivalence is decided, with an exact witness when False",
       statement=r"f_\theta = f_{\theta'} \iff \operatorname{canon}(\theta) = "
                 r"\operatorname{canon}(\theta');\ \text{else } f_\theta(X) \ne "
                 r"f_{\theta'}(X) \text{ at a returned } X")
def _check_equivalence() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in INSTANCES:
        rng = np.random.default_rng([seed, 75])
        m = random_multihead(H, d, seed)
        checked += 2
        if not equivalent(m, _split(m, rng)):
            failures.append(f"H={H}, d={d}: a symmetric pair judged different")
        heads = list(zip(m.Ws, m.vs, strict=True))
        W = heads[0][0].copy()
        W[0, 0] = W[0, 0] + EXP(Fraction(1, 97))
        near = MultiHeadAttention([(W, heads[0][1]), *heads[1:]], d=d)
        res = equivalent(m, near)
        if res or res.witness is None or m(res.witness) == near(res.witness):
            failures.append(f"H={H}, d={d}: a near miss (1/97) not separated by a witness")
    return first_failure(failures, checked, "True pairs by canonical forms, False with witnesses")


@claim(LABEL, "certificate_soundness", paper_ref=PAPER_REF,
       title="The certificate rejects a recovery one entry off, and too few heads fail",
       statement=r"\hat W_1 + \tfrac17 e_1 e_1^\top \text{ rejected};\ "
                 r"\text{heads} < m \implies \text{RecoveryFailedError}")
def _check_soundness() -> Outcome:
    failures, checked = [], 0
    for H, d, seed in INSTANCES[1:4]:
        model = random_multihead(H, d, seed)
        oracle = ValueOracle(model)
        rec = learn_multihead(oracle, heads=H, seed=seed)
        W = rec.params["W"].copy()
        W[0, 0, 0] = W[0, 0, 0] + EXP(Fraction(1, 7))
        bad = dataclasses.replace(rec, params={"W": W, "v": rec.params["v"].copy()})
        checked += 2
        if certify(bad, oracle, probes=4).holds:
            failures.append(f"H={H}, d={d}: perturbed recovery accepted")
        try:
            learn_multihead(ValueOracle(model), heads=H - 1, seed=seed, max_prec=512)
            failures.append(f"H={H}, d={d}: heads={H - 1} returned a model")
        except RecoveryFailedError:
            pass
    return first_failure(failures, checked, "rejected; too few heads is a clear error")
