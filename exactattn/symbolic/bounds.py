"""Symbolic steps of the output bound and of the hidden-ReLU-cancellation lower bound.

Statements ``output_bound`` and ``relu_hidden_cancellation`` of
:mod:`exactattn.blueprint`; the claims are in :mod:`exactattn.checks.bounds`.
"""

from __future__ import annotations

from itertools import combinations

import sympy as sp

from .one_layer import relu, verified
from .single_head import softmax_average
from .steps import Step, identity_step, recorded

__all__ = ["output_bound_derivation", "hidden_cancellation_derivation"]


@recorded
def output_bound_derivation(N: int = 3, d: int = 3) -> list[Step]:
    """1 -+ f(X) are softmax averages of 1 -+ v.x_i, and Lagrange's identity (Cauchy-Schwarz).

    With y_i = v.x_i and |y_i| <= ||v|| ||x_i|| <= 1, both averages have
    nonnegative terms, so -1 <= f(X) <= 1.

    >>> all(s.verified for s in output_bound_derivation(2, 2))
    True
    """
    s = [sp.Symbol(f"s_{i + 1}", real=True) for i in range(N)]
    y = [sp.Symbol(f"y_{i + 1}", real=True) for i in range(N)]
    f = softmax_average(s, y)
    steps = [
        identity_step(1 - f, softmax_average(s, [1 - t for t in y]),
                      r"$1 - f(X)$ is the softmax average of $1 - y_i$, $y_i = v^\top x_i$"),
        identity_step(1 + f, softmax_average(s, [1 + t for t in y]),
                      r"$1 + f(X)$ is the softmax average of $1 + y_i$"),
    ]
    v = [sp.Symbol(f"v_{i + 1}", real=True) for i in range(d)]
    x = [sp.Symbol(f"x_{i + 1}", real=True) for i in range(d)]
    lhs = sp.Add(*[t * t for t in v]) * sp.Add(*[t * t for t in x]) \
        - sp.Add(*[a * b for a, b in zip(v, x, strict=True)]) ** 2
    rhs = sp.Add(*[(v[i] * x[j] - v[j] * x[i]) ** 2 for i, j in combinations(range(d), 2)])
    steps.append(identity_step(lhs, rhs, r"Lagrange's identity: a sum of squares, so "
                               r"$(v^\top x)^2 \le \|v\|^2 \|x\|^2 \le 1$ (Cauchy--Schwarz)"))
    return steps


@recorded
def hidden_cancellation_derivation(d: int = 2) -> list[Step]:
    """Units that cancel: (a, w) + (a, -w) = 0, and a pair (a, 1), (-a, -1) splits into two.

    ReLU is checked by sign cases (:func:`exactattn.symbolic.one_layer.verified`).

    >>> all(s.verified for s in hidden_cancellation_derivation(2))
    True
    """
    a = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"a_{i + 1}", real=True))
    b = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"b_{i + 1}", real=True))
    x = sp.Matrix(d, 1, lambda i, _: sp.Symbol(f"x_{i + 1}", real=True))
    w = sp.Symbol("w", real=True)

    def unit(direction: sp.Matrix, weight: sp.Expr) -> sp.Expr:
        return weight * relu((direction.T * x)[0])

    def step(lhs: sp.Expr, rhs: sp.Expr, why: str) -> Step:
        return Step(lhs, rhs, why, verified(lhs, rhs))

    pair = unit(a, 1) + unit(-a, -1)
    return [
        step(unit(a, w) + unit(a, -w), sp.Integer(0),
             r"a unit $(a, w)$ and its copy $(a, -w)$ add nothing"),
        step(pair, (a.T * x)[0], r"a pair $(a, 1), (-a, -1)$ is the linear function $a^\top x$"),
        step(unit(b, 1) + unit(-b, -1) + unit(a - b, 1) + unit(b - a, -1), pair,
             r"so it equals the two pairs for $b$ and $a - b$, for every $b$"),
    ]
