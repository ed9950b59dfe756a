"""Symbolic derivations for ``single_head_exact`` (paper.md §2), in SymPy.

Each step is an identity between SymPy expressions in symbolic tokens and
symbolic parameters (not sampled values), built from the definition of the
head (:func:`attention`); :func:`derivation` checks every step and returns it
(:class:`~exactattn.symbolic.steps.Step`, with its LaTeX printed from the
compared objects). A step that does not simplify to 0 is reported as
NOT VERIFIED, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import sympy as sp

from .steps import Step, identity_step, recorded

__all__ = ["Step", "derivation", "attention", "softmax_average", "sigma"]


def sigma(z: sp.Expr) -> sp.Expr:
    """The logistic function 1 / (1 + e^(-z))."""
    return 1 / (1 + sp.exp(-z))


def softmax_average(scores: Sequence[sp.Expr], values: Sequence[sp.Expr]) -> sp.Expr:
    """sum_i e^(s_i) y_i / sum_i e^(s_i), kept as a quotient (not simplified)."""
    weights = [sp.exp(s) for s in scores]
    num = sp.Add(*[w * y for w, y in zip(weights, values, strict=True)])
    return sp.Mul(num, sp.Pow(sp.Add(*weights), -1, evaluate=False), evaluate=False)


def attention(tokens: Sequence[sp.Matrix], W: sp.Matrix, v: sp.Matrix) -> sp.Expr:
    """f_{W,v}(X) = sum_i softmax(s)_i v.x_i with s_i = x_i^T W x_N (the last token queries).

    >>> x = sp.Matrix([sp.Symbol("x")]); W = sp.Matrix([[sp.Symbol("w")]])
    >>> sp.simplify(attention([x], W, sp.Matrix([3])) - 3 * x[0])
    0
    """
    xN = tokens[-1]
    return softmax_average([(x.T * W * xN)[0] for x in tokens], [(v.T * x)[0] for x in tokens])


def _vector(name: str, d: int) -> sp.Matrix:
    return sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"{name}_{i + 1}", real=True))


@recorded
def derivation(d: int = 3) -> list[Step]:
    """The derivation behind the learner, for symbolic tokens and parameters in dimension ``d``.

    1. One token: f([x^T]) = v . x (the definition with N = 1).
    2. Two tokens: f([u^T; x^T]) = x^T v + sigma(u^T W x - x^T W x)(u^T v - x^T v).
       The left sides of 1 and 2, printed with the scores and values named, must
       equal :func:`attention` of the tokens once written out, or the step is not verified.
    3. With u -> u + e_j and x = e_j the score gap is u^T w_j (W_jj cancels), one step per j.
    4. Hence logit((y - v_j) / (u^T v)) = u^T w_j when u^T v != 0.

    >>> all(step.verified for step in derivation(2))
    True
    """
    W = sp.Matrix(d, d, lambda i, j: sp.Symbol(f"W_{{{i + 1}{j + 1}}}", real=True))
    v, u, x = _vector("v", d), _vector("u", d), _vector("x", d)
    s_x, s_u, a, b = sp.symbols("s_x s_u a b", real=True)

    def bilinear(p: sp.Matrix, q: sp.Matrix) -> sp.Expr:
        return (p.T * W * q)[0]

    # the definition, with the scores and values named (substituted back before checking)
    names = [(s_u, bilinear(u, x)), (s_x, bilinear(x, x)), (a, (u.T * v)[0]), (b, (x.T * v)[0])]
    steps = [identity_step(softmax_average([s_x], [b]), b,
                           r"the definition with $N = 1$: one weight, $\alpha_1 = 1$",
                           names[1::2])]
    steps.append(identity_step(
        softmax_average([s_u, s_x], [a, b]), b + sigma(s_u - s_x) * (a - b),
        r"the definition with $N = 2$ (the last token queries); divide by $e^{s_x}$, "
        r"$\sigma(z) = 1/(1 + e^{-z})$", names))
    # the named left sides, written out, are the head itself: f([x^T]) and f([u^T; x^T])
    for k, tokens in ((0, [x]), (1, [u, x])):
        if sp.expand(steps[k].lhs - attention(tokens, W, v)) != 0:
            steps[k] = replace(steps[k], verified=False)
    for j in range(d):
        e = sp.Matrix(d, 1, lambda i, _, j=j: 1 if i == j else 0)
        steps.append(identity_step(bilinear(u + e, e) - bilinear(e, e), (u.T * W[:, j])[0],
                                   f"$W_{{{j + 1}{j + 1}}}$ cancels: the score gap of "
                                   f"$[(u + e_{j + 1})^\\top; e_{j + 1}^\\top]$"))
    t, c, vj = sp.symbols("t c v_j", real=True)
    y = vj + sigma(t) * c
    p = (y - vj) / c
    steps.append(identity_step(sp.log(p / (1 - p)).rewrite(sp.exp), t,
                               r"logit inverts $\sigma$: $y = v_j + \sigma(t)\,c$, "
                               r"$c = u^\top v \ne 0$"))
    return steps
