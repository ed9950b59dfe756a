"""Symbolic derivations for ``single_head_exact`` (paper.md §2), in SymPy.

Each step is an identity between SymPy expressions in symbolic tokens and
symbolic parameters (not sampled values); :func:`derivation` checks every
step (``simplify(lhs - rhs) == 0``) and returns it with its LaTeX, which the
proof companion prints. A step that does not simplify to 0 is reported as
unverified, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["Step", "derivation"]


@dataclass(frozen=True)
class Step:
    """One verified step ``lhs = rhs`` of a derivation, with its justification."""

    lhs: sp.Expr
    rhs: sp.Expr
    why: str  # LaTeX text mode, math in $...$
    verified: bool

    def latex(self) -> str:
        return f"{sp.latex(self.lhs)} &= {sp.latex(self.rhs)}"


def _step(lhs: sp.Expr, rhs: sp.Expr, why: str) -> Step:
    diff = sp.simplify(sp.expand((lhs - rhs).doit()))
    return Step(lhs, rhs, why, bool(diff == 0))


def derivation(d: int = 3) -> list[Step]:
    """The derivation behind the learner, for symbolic tokens in dimension ``d``.

    1. The length-1 answer is v . x (the softmax of one score is 1).
    2. Two tokens: the softmax average is x^T v + sigma(s_1 - s_2)(u^T v - x^T v).
    3. With u -> u + e_j and x = e_j the score gap is u^T w_j (W_jj cancels).
    4. Hence logit((y - v_j) / (u^T v)) = u^T w_j.

    >>> all(step.verified for step in derivation(2))
    True
    """
    W = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"W_{{{i + 1}{j + 1}}}", real=True))
    v = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"v_{i + 1}", real=True))
    u = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"u_{i + 1}", real=True))
    x = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"x_{i + 1}", real=True))
    s1, s2, a, b = sp.symbols("s_1 s_2 a b", real=True)

    def sig(z: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    steps = []
    # 1. one token
    s = (x.T * W * x)[0]
    weight = sp.exp(s)
    one = sp.Mul(weight, (v.T * x)[0], sp.Pow(weight, -1, evaluate=False), evaluate=False)
    steps.append(_step(one, (v.T * x)[0], r"the softmax of a single score is $1$"))
    # 2. two tokens, scalar form: weights e^{s_1}, e^{s_2} on values a, b
    avg = (sp.exp(s1) * a + sp.exp(s2) * b) / (sp.exp(s1) + sp.exp(s2))
    steps.append(_step(avg, b + sig(s1 - s2) * (a - b),
                       r"divide by $e^{s_2}$; $\sigma(z) = 1/(1 + e^{-z})$"))
    # 3. the score gap of the learner's query [(u + e_j)^T; e_j^T]
    for j in range(d):
        e = sp.Matrix(d, 1, lambda i, _, j=j: 1 if i == j else 0)
        gap = ((u + e).T * W * e)[0] - (e.T * W * e)[0]
        steps.append(_step(gap, (u.T * W[:, j])[0],
                           f"$W_{{{j + 1}{j + 1}}}$ cancels: the score gap of "
                           f"$[(u + e_{j + 1})^\\top; e_{j + 1}^\\top]$ is $u^\\top w_{j + 1}$"))
    # 4. inversion: y = v_j + sigma(t)(u^T v)  =>  logit((y - v_j)/(u^T v)) = t
    t, c, vj = sp.symbols("t c v_j", real=True)
    y = vj + sig(t) * c
    p = sp.simplify((y - vj) / c)
    steps.append(_step(sp.log(p / (1 - p)).rewrite(sp.exp), t,
                       r"logit inverts $\sigma$ ($c = u^\top v \ne 0$)"))
    return steps
