"""Symbolic derivations for ``one_layer_reduction`` (paper §4.1; docs/one_layer.md), in SymPy.

Symbolic tokens x_1, x_2 in R^d (N = 2; the last is the query position),
symbolic W, A, w_o (and V, W_1 for the residual variant); d = 2, m = 2 by
default. ReLU is ``Max(z, 0)``. A step whose difference still holds ``Max``
after simplification is checked by cases: the arguments of the ``Max``
atoms are grouped into pre-activations h_k up to sign (the argument of
ReLU(-h_k) is recognised as -h_k by expansion) and, for each of the 2^m
sign patterns of (h_1, ..., h_m), ReLU(+-h_k) is replaced by its value
(h_k or 0 on h_k >= 0; 0 or -h_k on h_k <= 0) and the difference must
simplify to 0. The patterns cover R^m, so the step holds everywhere.
"""

from __future__ import annotations

from functools import cache
from itertools import product

import sympy as sp

from .single_head import sigma
from .steps import (
    ROW_WIDTH,
    Step,
    auto_names,
    is_zero,
    named_step,
    recorded,
    symbol_matrix,
    symbol_vector,
    visible_width,
)

__all__ = ["derivation", "verified", "relu"]


def relu(z: sp.Expr) -> sp.Expr:
    """ReLU(z) = max(z, 0)."""
    return sp.Max(z, 0)


def _cases(diff: sp.Expr) -> list[dict[sp.Expr, sp.Expr]]:
    """The substitutions of every sign case of the ``Max(a, 0)`` atoms of ``diff``."""
    atoms = sorted(diff.atoms(sp.Max), key=sp.default_sort_key)
    bases: list[sp.Expr] = []
    signed: list[tuple[sp.Expr, sp.Expr, int, int]] = []  # (atom, arg, base index, sign)
    for atom in atoms:
        args = [a for a in atom.args if a != 0]
        if len(args) != 1 or len(atom.args) != 2:
            raise ValueError(f"{atom} is not of the form Max(a, 0)")
        a = args[0]
        for k, b in enumerate(bases):
            if sp.expand(a - b) == 0:
                signed.append((atom, a, k, 1))
                break
            if sp.expand(a + b) == 0:
                signed.append((atom, a, k, -1))
                break
        else:
            bases.append(a)
            signed.append((atom, a, len(bases) - 1, 1))
    out = []
    for pattern in product((1, -1), repeat=len(bases)):
        # on base_k >= 0 (pattern +1): Max(base, 0) = base, Max(-base, 0) = 0; and conversely
        out.append({atom: (a if pattern[k] * s > 0 else sp.Integer(0))
                    for atom, a, k, s in signed})
    return out


def verified(lhs: sp.Expr, rhs: sp.Expr) -> bool:
    """True when lhs - rhs simplifies to 0, by cases on the signs of the ReLU arguments.

    >>> z = sp.Symbol("z", real=True)
    >>> verified(relu(z) - relu(-z), z), verified(relu(z), z)
    (True, False)
    """
    diff = sp.expand((lhs - rhs).doit())
    if not diff.atoms(sp.Max):
        return is_zero(diff)
    return all(is_zero(diff.xreplace(case)) for case in _cases(diff))


def _step(lhs: sp.Expr, rhs: sp.Expr, why: str) -> Step:
    """Checked by sign cases on the full objects; printed with the scores and the
    pre-activations named when the equation is too long for a line."""
    if visible_width(sp.latex(lhs)) + visible_width(sp.latex(rhs)) <= ROW_WIDTH:
        return Step(lhs, rhs, why, verified(lhs, rhs))
    return named_step(lhs, rhs, why, auto_names(lhs, rhs), verify=verified)


def _alpha(W: sp.Matrix, tokens: list[sp.Matrix]) -> list[sp.Expr]:
    """softmax(x_i^T W x_N) as SymPy expressions."""
    scores = [(x.T * W * tokens[-1])[0] for x in tokens]
    den = sp.Add(*[sp.exp(s) for s in scores])
    return [sp.exp(s) / den for s in scores]


def _plain_tf(A: sp.Matrix, w: sp.Matrix, tokens: list[sp.Matrix],
              alpha: list[sp.Expr]) -> sp.Expr:
    """w_o^T ReLU(A^T sum_i alpha_i x_i)."""
    z = sum((a * x for a, x in zip(alpha, tokens, strict=True)), sp.zeros(A.rows, 1))
    h = A.T * z
    return sp.Add(*[w[k] * relu(h[k]) for k in range(A.cols)])


def _residual_tf(V: sp.Matrix, W1: sp.Matrix, w: sp.Matrix, tokens: list[sp.Matrix],
                 alpha: list[sp.Expr]) -> sp.Expr:
    """w_o^T ReLU(W_1 (x_N + sum_i alpha_i V x_i))."""
    y = tokens[-1] + sum((a * (V * x) for a, x in zip(alpha, tokens, strict=True)),
                         sp.zeros(V.rows, 1))
    h = W1 * y
    return sp.Add(*[w[k] * relu(h[k]) for k in range(W1.rows)])


@recorded
@cache
def derivation(d: int = 2, m: int = 2) -> tuple[Step, ...]:
    """The derivation of the reduction, for symbolic tokens x_1, x_2 in R^d and m units.

    1. Negation leaves each score unchanged: (-x_i)^T W (-x_N) = x_i^T W x_N.
    2. Hence the weights: alpha_i(-X) = alpha_i(X).
    3. ReLU(z) - ReLU(-z) = z.
    4. One token: TF([x^T]) = w_o^T ReLU(A^T x) = g(x).
    5. TF(X) - TF(-X) = alpha^T X (A w_o).
    6. Residual, one token: TF([x^T]) = w_o^T ReLU(W_1 (I + V) x).
    7. Residual: TF(X) - TF(-X) = alpha^T X v + u^T x_N, v = V^T W_1^T w_o, u = W_1^T w_o.
    8. Skip head, query [e_j^T; 0^T]: f = v_j / 2 (both scores 0).
    9. Skip head, query [(z + e_j)^T; e_j^T]: f = v_j + u_j + sigma(z^T w_j) (z . v).

    Cached: the steps are immutable and d = m = 2 takes a few seconds.

    >>> all(step.verified for step in derivation(2, 2))
    True
    """
    W = symbol_matrix("W", d)
    A = symbol_matrix("A", d, m)
    V = symbol_matrix("V", d)
    W1 = symbol_matrix("W^{(1)}", m, d)
    w = symbol_vector("w", m)
    x1, x2 = symbol_vector("x", d), symbol_vector("y", d)  # x_1 = x, x_2 = y (the query token)
    tokens = [x1, x2]
    negated = [-x1, -x2]
    steps: list[Step] = []

    # 1-2. negation invariance
    for k, (x, nx) in enumerate(zip(tokens, negated, strict=True)):
        steps.append(_step((nx.T * W * negated[-1])[0], (x.T * W * x2)[0],
                           f"the score of token {k + 1} under $X \\to -X$: the two signs cancel"))
    for i, (a_neg, a) in enumerate(zip(_alpha(W, negated), _alpha(W, tokens), strict=True)):
        steps.append(_step(a_neg, a, f"hence the softmax weight of token {i + 1} agrees"))
    # 3. the ReLU identity
    z = sp.Symbol("z", real=True)
    steps.append(_step(relu(z) - relu(-z), z,
                       r"$z \ge 0$: $z - 0$; $z \le 0$: $0 - (-z)$"))
    # 4. one token
    steps.append(_step(_plain_tf(A, w, [x1], _alpha(W, [x1])),
                       sp.Add(*[w[k] * relu((A.T * x1)[k]) for k in range(m)]),
                       r"one token: $\alpha = 1$"))
    # 5. the antisymmetrised query is a single head with v = A w_o. By steps 1-2
    # both X and -X have the weights alpha_i (named, not expanded: the
    # expansion of exp(s_i) would only slow SymPy down)
    alpha = list(sp.symbols("alpha_1 alpha_2", positive=True))
    attention = sum((a * (x.T * A * w)[0] for a, x in zip(alpha, tokens, strict=True)),
                    sp.Integer(0))
    steps.append(_step(_plain_tf(A, w, tokens, alpha) - _plain_tf(A, w, negated, alpha),
                       attention,
                       r"$h(-X) = -h(X)$; $\mathrm{ReLU}(z) - \mathrm{ReLU}(-z) = z$"))
    # 6-7. residual variant
    eye = sp.eye(d)
    steps.append(_step(_residual_tf(V, W1, w, [x1], _alpha(W, [x1])),
                       sp.Add(*[w[k] * relu((W1 * (eye + V) * x1)[k]) for k in range(m)]),
                       r"residual, one token: $y = (I + V) x$"))
    v = V.T * W1.T * w
    u = W1.T * w
    skip = sum((a * (x.T * v)[0] for a, x in zip(alpha, tokens, strict=True)),
               sp.Integer(0)) + (x2.T * u)[0]
    steps.append(_step(_residual_tf(V, W1, w, tokens, alpha)
                       - _residual_tf(V, W1, w, negated, alpha), skip,
                       r"residual; $v = V^\top W_1^\top w_o$, $u = W_1^\top w_o$"))
    # 8-9. the skip head's queries
    vs, us, zs = symbol_vector("v", d), symbol_vector("u", d), symbol_vector("z", d)

    def skip_head(X: list[sp.Matrix]) -> sp.Expr:
        a = _alpha(W, X)
        return sum((ai * (x.T * vs)[0] for ai, x in zip(a, X, strict=True)),
                   sp.Integer(0)) + (X[-1].T * us)[0]

    for j in range(d):
        e = sp.Matrix(d, 1, lambda i, _, j=j: 1 if i == j else 0)
        steps.append(_step(skip_head([e, sp.zeros(d, 1)]), vs[j] / 2,
                           "both scores are $0$"))
        steps.append(_step(skip_head([zs + e, e]),
                           vs[j] + us[j] + sigma((zs.T * W[:, j])[0]) * (zs.T * vs)[0],
                           f"score gap $z^\\top w_{j + 1}$"))
    return tuple(steps)
