"""Symbolic derivations for ``multihead_nonidentifiable`` (paper Prop 7.1; paper.md §6).

Two parts, both in SymPy with symbolic tokens and symbolic parameters (never
sampled values):

1. :func:`nonidentifiable_families` verifies each family of Prop 7.1 as an
   identity: the shared-W split v_h = lambda_h b with sum lambda_h = 1
   (lambda of any sign), head permutation, and a zero-v head with an
   arbitrary W. Each is a :class:`~exactattn.symbolic.single_head.Step`
   whose two sides simplify to the same expression, with its LaTeX.
2. :func:`derive_equal_functions` *derives* every pair of 2-head parameter
   sets theta = ((W_1, v_1), (W_2, v_2)), theta' = ((W_1', v_1'), (W_2', v_2'))
   with f_theta = f_theta', for d = 1 and d = 2. Method: on the queries
   X(c) = [a (c copies); b] (the copy family of ``multihead_canonical``),
   a head contributes (c E v.a + v.b) / (c E + 1) with
   E = exp((a - b)^T W b). Case split over which of the four W are equal
   (the 15 set partitions); in each case write f_theta - f_theta' over the
   common denominator prod_j (1 + c E_j) (one factor per distinct W): the
   numerator is a polynomial in c whose coefficients are exponential
   polynomials in the token values. It vanishes for every c (infinitely many
   integers) iff every coefficient of c^i vanishes; for rational tokens a
   coefficient sum_k kappa_k e^{lambda_k} (distinct rational lambda_k,
   algebraic kappa_k) vanishes iff every kappa_k does, by the
   Lindemann–Weierstrass theorem (Baker's form), so matching coefficients is
   valid at rational tokens, which are all the queries of exactattn. SymPy
   solves the coefficient equations (linear in the v's) for generic tokens
   (E_j pairwise distinct, as they are for distinct W and generic a, b:
   (a - b)^T (W_i - W_j) b is a nonzero polynomial), and the solution set is
   compared with the canonical-form condition (for each group of equal W,
   the merged v of theta equals that of theta'), both inclusions checked.

Result: in every case the two sets coincide, i.e. the functions agree iff
the canonical forms agree: the symmetries of Prop 7.1 are all there is.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import sympy as sp
from sympy.utilities.iterables import multiset_partitions

from .steps import (
    NOT_VERIFIED,
    ROW_WIDTH,
    Step,
    auto_names,
    named_step,
    recorded,
    split_sum,
    symbol_matrix,
    symbol_vector,
)

__all__ = ["nonidentifiable_families", "derive_equal_functions", "CaseResult",
           "Derivation", "derivation_latex"]


def _head(X: list[sp.Matrix], W: sp.Matrix, v: sp.Matrix) -> sp.Expr:
    """alpha(X, W)^T X v for symbolic tokens (x_N = X[-1] is the query position)."""
    xN = X[-1]
    weights = [sp.exp((x.T * W * xN)[0]) for x in X]
    num = sp.Add(*[w * (v.T * x)[0] for w, x in zip(weights, X, strict=True)])
    return num / sp.Add(*weights)


def _verified(lhs: sp.Expr, rhs: sp.Expr, why: str) -> Step:
    """Checked on the full objects; printed with the scores named (s_1, s_2, ...)."""

    def zero(a: sp.Expr, b: sp.Expr) -> bool:
        return bool(sp.simplify(sp.together(sp.expand(a - b))) == 0)

    return named_step(lhs, rhs, why, auto_names(lhs, rhs), verify=zero)


@recorded
def nonidentifiable_families(N: int = 2, d: int = 2, H: int = 3) -> list[Step]:
    """The three families of Prop 7.1 as identities in symbolic tokens x_1..x_N in R^d.

    >>> all(s.verified for s in nonidentifiable_families(2, 2, 3))
    True
    """
    X = [symbol_vector(f"x{i + 1}", d) for i in range(N)]
    A, b = symbol_matrix("A", d), symbol_vector("b", d)
    lam = [sp.Symbol(f"lambda_{h + 1}", real=True) for h in range(H - 1)]
    lam.append(1 - sp.Add(*lam))
    split = sp.Add(*[_head(X, A, lam_h * b) for lam_h in lam])
    steps = [_verified(split, _head(X, A, b),
                       rf"shared $W_h = A$, $v_h = \lambda_h b$, $\sum_h \lambda_h = 1$ "
                       rf"($H = {H}$, $\lambda$ of any sign): one head $(A, b)$")]
    Ws = [symbol_matrix(f"W{h + 1}", d) for h in range(2)]
    vs = [symbol_vector(f"v{h + 1}", d) for h in range(2)]
    f12 = _head(X, Ws[0], vs[0]) + _head(X, Ws[1], vs[1])
    f21 = sp.Add(_head(X, Ws[1], vs[1]), _head(X, Ws[0], vs[0]), evaluate=False)
    steps.append(_verified(f21, f12, "head permutation: the sum does not depend on the order"))
    # a head (U, 0) is 0 as soon as it is built (its values v.x_i are 0), whatever U: the
    # step is immediate, and its printed sides coincide
    zero_head = _head(X, symbol_matrix("U", d), sp.zeros(d, 1))
    steps.append(_verified(sp.Add(_head(X, Ws[0], vs[0]), zero_head, evaluate=False),
                           _head(X, Ws[0], vs[0]),
                           r"a head with $v = 0$ adds $0$, whatever its $W = U$: its values "
                           r"$v^\top x_i$ vanish, so SymPy builds it as $0$ (immediate)"))
    return steps


@dataclass(frozen=True)
class CaseResult:
    """One case of the derivation: which W coincide, and what SymPy found."""

    blocks: tuple[tuple[str, ...], ...]  # heads with equal W, e.g. (("1", "1'"), ("2",), ("2'",))
    equations: tuple[sp.Expr, ...]  # coefficients of c^i (each must vanish)
    solution: tuple[sp.Expr, ...]  # the net merged v per block, after solving (all 0)
    matches_canonical: bool  # solution set == canonical-form condition (both inclusions)

    def latex(self) -> str:
        groups = ", ".join("\\{" + ", ".join(b) + "\\}" for b in self.blocks)
        verdict = "= canonical symmetries" if self.matches_canonical else "MISMATCH"
        return rf"\text{{equal }}W: {groups} \;\Rightarrow\; \text{{{verdict}}}"


@dataclass(frozen=True)
class Derivation:
    """All cases for one d, with the time SymPy took."""

    d: int
    cases: tuple[CaseResult, ...]
    seconds: float

    @property
    def complete(self) -> bool:
        return len(self.cases) == 15 and all(c.matches_canonical for c in self.cases)

    @property
    def verified(self) -> bool:
        return self.complete

    @property
    def status(self) -> str:
        return "symbolic" if self.complete else NOT_VERIFIED

    def latex(self) -> str:
        return derivation_latex(self)


HEADS = ("1", "2", "1'", "2'")


def _case(blocks: list[list[str]], d: int) -> CaseResult:
    c = sp.Symbol("c", positive=True)
    b = symbol_vector("b", d)
    v = {h: symbol_vector(f"v^{{({h})}}", d) for h in HEADS}
    sign = {"1": 1, "2": 1, "1'": -1, "2'": -1}
    block_of = {h: j for j, blk in enumerate(blocks) for h in blk}
    equations: list[sp.Expr] = []
    # one copy family per direction a_k - b (k = 1..d): a family sees only the
    # residues (a_k - b) . v, so d of them are needed in dimension d
    for k in range(d):
        a = symbol_vector(f"a{k + 1}" if d > 1 else "a", d)
        E = [sp.Symbol(f"E_{{{k + 1}{j + 1}}}" if d > 1 else f"E_{j + 1}", positive=True)
             for j in range(len(blocks))]
        # f_theta - f_theta' on X(c) = [a (c copies); b]; head h in block j has E_j and
        # contributes (c E_j v.a + v.b) / (c E_j + 1); times prod_j (c E_j + 1):
        numer = sp.expand(sp.Add(*[
            sign[h] * (c * E[block_of[h]] * (v[h].T * a)[0] + (v[h].T * b)[0])
            * sp.Mul(*[c * Ej + 1 for j, Ej in enumerate(E) if j != block_of[h]])
            for h in HEADS]))
        equations.extend(sp.Poly(numer, c).all_coeffs())
    unknowns = [x for h in HEADS for x in v[h]]
    net = [sp.Add(*[sign[h] * v[h] for h in blk]) for blk in blocks]
    net_entries = [x for n in net for x in n]
    (sol,) = sp.linsolve(list(equations), unknowns)
    subs = dict(zip(unknowns, sol, strict=True))
    # inclusion 1: every solution of the coefficient equations has net v = 0 per block
    after = tuple(sp.cancel(x.subs(subs)) for x in net_entries)
    forward = all(x == 0 for x in after)
    # inclusion 2: the canonical condition (net v = 0 per block) solves every equation
    (canon,) = sp.linsolve(net_entries, unknowns)
    csubs = dict(zip(unknowns, canon, strict=True))
    backward = all(sp.expand(eq.subs(csubs)) == 0 for eq in equations)
    return CaseResult(tuple(tuple(blk) for blk in blocks), tuple(equations), after,
                      forward and backward)


@recorded
@functools.lru_cache(maxsize=4)
def derive_equal_functions(d: int = 1) -> Derivation:
    """Every pair of 2-head parameter sets with the same function, for tokens in R^d.

    Returns the 15 cases (which W coincide), each with the coefficient
    equations, the solved net v per group of equal W and whether the
    solution set equals the canonical-form condition (module docstring).

    >>> der = derive_equal_functions(1)
    >>> der.complete, len(der.cases)
    (True, 15)
    """
    start = time.perf_counter()
    cases = tuple(_case([list(blk) for blk in p], d) for p in multiset_partitions(list(HEADS)))
    return Derivation(d, cases, time.perf_counter() - start)


def derivation_latex(der: Derivation) -> str:
    """LaTeX of a derivation: one line per case, plus the coefficient equations of one case."""
    lines = [rf"\paragraph{{All equal-function pairs, $H = 2$, $d = {der.d}$.}} On "
             r"$X(c) = [a\,(c\text{ copies}); b]$ a head contributes "
             r"$\frac{c E\, v\cdot a + v\cdot b}{c E + 1}$, $E = e^{(a-b)^\top W b}$. Over the "
             r"common denominator $\prod_j (1 + c E_j)$ the numerator is a polynomial in $c$; "
             r"it vanishes for infinitely many $c$ iff each coefficient of $c^i$ vanishes. "
             r"SymPy then solves these coefficient equations for the $v$'s as a \emph{generic} "
             r"linear solve in which the $E_j$ are independent symbols (symbolic). That the "
             r"$E_j$ may be treated so is the prose step: for distinct $W_j$ and generic "
             r"rational tokens the exponents $(a-b)^\top W_j b$ are distinct rationals, and by "
             r"the Lindemann--Weierstrass theorem distinct $e^{q_j}$ are linearly independent "
             r"over the algebraic numbers (not machine-checked). Case by case "
             rf"({len(der.cases)} cases, {der.seconds:.1f} s):", r"\begin{align*}"]
    for k, case in enumerate(der.cases):
        end = r" \\" if k < len(der.cases) - 1 else ""
        lines.append(f"&{case.latex()}{end}")
    lines.append(r"\end{align*}")
    generic = der.cases[-1]
    lines.append(r"For instance, all four $W$ distinct: the coefficients of $c^i$ are")
    lines.append(r"\begin{align*}")
    rows: list[str] = []
    for eq in generic.equations:
        parts = split_sum(sp.expand(eq), ROW_WIDTH)
        rows += [f"&{parts[0]}"] + [f"&\\quad {row}" for row in parts[1:]]
        rows[-1] += " = 0"
    lines.append(" \\\\\n".join(rows))
    lines.append(r"\end{align*}")
    return "\n".join(lines)
