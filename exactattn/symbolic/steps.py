"""The shared machinery of checked proof steps, and the recorder behind the proof companion.

A *step* is one checkable line of a proof: an identity ``lhs = rhs``
(:class:`Step`, checked by SymPy), an inequality ``lhs = rhs >= 0``
(:class:`NonnegStep`, certified by nonnegative coefficients or, failing
that, evaluated on an exact rational grid), or ``lo < quantity < hi`` decided
by ball arithmetic (:class:`IntervalStep`); the prose between them is the
blueprint's (:mod:`exactattn.blueprint`). Every step knows its *status* (one
of :data:`STEP_STATUSES`) and its LaTeX, and the LaTeX is printed from the very
SymPy objects that were compared, never from a retyped string.

The recorder ties the proof companion to the checks: while a claim of
:mod:`exactattn.claims` runs, every call of a function decorated with
:func:`recorded` (the derivations of this package) appends what it returned,
with the function's name and arguments, to the claim's evidence. The LaTeX
companion prints that evidence, so a printed derivation is the one the check
ran (same dimension, same objects), and a step that did not verify is printed
as NOT VERIFIED.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from .recorder import NOT_VERIFIED, Recorded, collecting, recorded, status_of_step

__all__ = ["Step", "NamedStep", "NonnegStep", "IntervalStep", "Recorded",
           "STEP_STATUSES", "NOT_VERIFIED", "recorded", "collecting", "status_of_step",
           "equation_rows", "identity_step", "named_step", "auto_names", "is_zero",
           "symbol_vector", "symbol_matrix",
           "step_rows"]

#: the status of a proof step, each with one meaning (the PDF prints the key)
STEP_STATUSES: dict[str, str] = {
    "symbolic": "an identity or inequality between SymPy expressions in symbolic "
                "variables, verified by SymPy (difference simplifies to 0; or a quotient of "
                "polynomials with nonnegative coefficients in nonnegative variables), in the "
                "dimension of the call printed with the evidence",
    "interval": "a strict inequality between real numbers decided by rigorous ball "
                "arithmetic (arb) at a stated precision",
    "exact instances": "checked with == in an exact field (EXP, QQ) on the stated number "
                       "of built-in seeded instances or rational points: evidence, not a proof "
                       "for all inputs",
    "float": "checked in floating point against a named bound",
    "prose": "an argument written out for the reader and not machine-checked",
}


@dataclass(frozen=True)
class Step:
    """One checked identity ``lhs = rhs`` of a derivation, with its justification.

    ``verified`` is the outcome of the check that built the step
    (:func:`identity_step`); :meth:`latex` prints ``lhs`` and ``rhs``
    themselves.
    """

    lhs: Any
    rhs: Any
    why: str  # LaTeX text mode, math in $...$
    verified: bool

    relation = "="

    def latex(self) -> str:
        """``lhs &= rhs`` for an ``align*`` row (the checked objects, printed by SymPy)."""
        return f"{sp.latex(self.lhs)} &= {sp.latex(self.rhs)}"

    @property
    def status(self) -> str:
        return "symbolic" if self.verified else NOT_VERIFIED


@dataclass(frozen=True)
class NonnegStep(Step):
    """A step ``lhs = rhs >= 0``: an identity whose right side is manifestly nonnegative.

    ``identity`` says whether ``lhs - rhs`` simplified to 0 (after the
    substitutions that define the parametrisation), ``manifest`` whether a
    nonnegativity certificate for ``rhs`` was found; ``verified`` is both.
    ``grid_points`` > 0 records that, with no certificate, ``rhs >= 0`` held on
    that many exact rational points (evidence, not a proof).
    """

    identity: bool = False
    manifest: bool = False
    grid_points: int = 0

    def latex(self) -> str:
        lhs = sp.latex(self.lhs, order="none")  # as written: clip(b) - clip(a), ...
        return f"{lhs} &= {sp.latex(self.rhs)} \\geq 0"

    @property
    def status(self) -> str:
        if self.verified:
            return "symbolic"
        if self.identity and self.grid_points > 0:
            return "exact instances"
        return NOT_VERIFIED


@dataclass(frozen=True)
class NamedStep(Step):
    """A checked identity shown with named subexpressions.

    ``lhs`` and ``rhs`` are the full expressions that were compared;
    ``shown_lhs``/``shown_rhs`` are the same expressions with each
    subexpression of ``defs`` replaced by its name, and
    :func:`identity_step` checks that substituting ``defs`` back gives
    ``lhs`` and ``rhs`` exactly, so the printed equation and its ``where``
    lines are the checked objects.
    """

    shown_lhs: Any = None
    shown_rhs: Any = None
    defs: tuple[tuple[Any, Any], ...] = ()

    @property
    def faithful(self) -> bool:
        """The shown equation with its definitions substituted is ``lhs = rhs`` (checked at
        printing time: a step whose ``lhs``/``rhs`` changed is printed in full instead)."""
        return (_same(_substitute(sp.sympify(self.shown_lhs), self.defs), self.lhs)
                and _same(_substitute(sp.sympify(self.shown_rhs), self.defs), self.rhs))


@dataclass(frozen=True)
class IntervalStep:
    """``lo < quantity < hi`` decided by rigorous ball arithmetic: the ball lies strictly inside.

    ``lo``/``hi`` are LaTeX (``None``: no bound on that side); ``ball`` is the
    arb enclosure that decided it, as printed by arb.
    """

    quantity: str  # LaTeX
    lo: str | None
    hi: str | None
    ball: str
    verified: bool

    @property
    def status(self) -> str:
        return "interval" if self.verified else NOT_VERIFIED

    def latex(self) -> str:
        lo = f"{self.lo} < " if self.lo is not None else ""
        hi = f" < {self.hi}" if self.hi is not None else ""
        return rf"{lo}{self.quantity}{hi} &\quad \text{{ball }} {_ball_latex(self.ball)}"


def _ball_latex(ball: str) -> str:
    """arb's ``[m +/- r]`` as LaTeX."""
    text = re.sub(r"e([+-]?\d+)", r"\\cdot 10^{\1}", ball)
    return text.replace("+/-", r"\pm").replace("[", r"\left[").replace("]", r"\right]")


def symbol_vector(name: str, n: int) -> sp.Matrix:
    """The column (name_{1}, ..., name_{n}) of real symbols."""
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}_{{{i + 1}}}", real=True))


def symbol_matrix(name: str, rows: int, cols: int | None = None) -> sp.Matrix:
    """The matrix of real symbols name_{ij} (square unless ``cols`` is given).

    >>> symbol_matrix("W", 2)
    Matrix([
    [W_{11}, W_{12}],
    [W_{21}, W_{22}]])
    """
    return sp.Matrix(rows, rows if cols is None else cols,
                     lambda i, j: sp.Symbol(f"{name}_{{{i + 1}{j + 1}}}", real=True))


def is_zero(expr: Any) -> bool:
    """``expr`` is 0: after ``doit`` and expansion (where most steps cancel), else simplified.

    >>> x = sp.Symbol("x")
    >>> is_zero((x + 1)**2 - x**2 - 2*x - 1), is_zero(sp.sin(x)**2 + sp.cos(x)**2 - 1)
    (True, True)
    """
    diff = sp.expand(sp.sympify(expr).doit())
    return diff == 0 or bool(sp.simplify(diff) == 0)


def identity_step(lhs: Any, rhs: Any, why: str,
                  defs: Sequence[tuple[Any, Any]] = ()) -> Step:
    """The step ``lhs = rhs``, verified when ``expand(lhs - rhs)`` simplifies to 0.

    ``defs`` names subexpressions: a sequence of (symbol, expression). Then
    ``lhs`` and ``rhs`` are written with the symbols, the compared objects
    are ``lhs`` and ``rhs`` with every symbol replaced by its expression, and
    the printed step is ``lhs = rhs`` followed by one ``where`` line per
    definition (a :class:`NamedStep`).

    >>> x, s = sp.Symbol("x"), sp.Symbol("s")
    >>> identity_step((x + 1)**2, x**2 + 2*x + 1, "square").verified
    True
    >>> identity_step((x + 1)**2, x**2 + 3*x + 1, "a coefficient off").status
    'NOT VERIFIED'
    >>> named = identity_step(sp.exp(s) * sp.exp(-s), 1, "", [(s, x**2 + 1)])
    >>> named.verified, named.lhs, named.shown_lhs
    (True, 1, 1)
    """
    if defs:
        table = dict(defs)
        full_lhs, full_rhs = sp.sympify(lhs).xreplace(table), sp.sympify(rhs).xreplace(table)
    else:
        full_lhs, full_rhs = lhs, rhs
    verified = is_zero(sp.sympify(full_lhs) - sp.sympify(full_rhs))
    if defs:
        return NamedStep(full_lhs, full_rhs, why, verified, lhs, rhs, tuple(defs))
    return Step(lhs, rhs, why, verified)


def named_step(lhs: Any, rhs: Any, why: str, names: Sequence[tuple[Any, Any]],
               verify: Callable[[Any, Any], bool] | None = None) -> Step:
    """The step ``lhs = rhs`` checked on the full objects, printed with named subexpressions.

    ``names`` is a sequence of (subexpression, symbol); each occurrence of a
    subexpression in ``lhs``/``rhs`` is printed as its symbol, with a
    ``where`` line. The naming is used only when substituting the
    subexpressions back gives ``lhs`` and ``rhs`` exactly (structurally), so
    the printed step and its ``where`` lines are the checked objects.
    ``verify`` decides the identity (default: the difference simplifies to 0).

    >>> x, s = sp.Symbol("x"), sp.Symbol("s")
    >>> st = named_step(sp.exp(x**2 + 1) * 2, 2 * sp.exp(1 + x**2), "", [(x**2 + 1, s)])
    >>> st.verified, st.shown_lhs, st.defs
    (True, 2*exp(s), ((s, x**2 + 1),))
    """
    ok = is_zero(sp.sympify(lhs) - sp.sympify(rhs)) if verify is None else verify(lhs, rhs)
    forward = {expr: name for expr, name in names}
    shown_lhs = sp.sympify(lhs).xreplace(forward)
    shown_rhs = sp.sympify(rhs).xreplace(forward)
    # a definition may use the names defined before it (a score inside a pre-activation)
    defs = [(name, expr.xreplace({e: n for e, n in forward.items() if e != expr}))
            for expr, name in names]
    if not (_same(_substitute(shown_lhs, defs), lhs) and _same(_substitute(shown_rhs, defs), rhs)):
        return Step(lhs, rhs, why, ok)
    used: set[Any] = set()
    todo = shown_lhs.free_symbols | shown_rhs.free_symbols
    table = dict(defs)
    while todo:
        sym = todo.pop()
        if sym in table and sym not in used:
            used.add(sym)
            todo |= table[sym].free_symbols
    kept = tuple((name, value) for name, value in defs if name in used)
    return NamedStep(lhs, rhs, why, ok, shown_lhs, shown_rhs, kept)


def _substitute(expr: Any, defs: Sequence[tuple[Any, Any]]) -> Any:
    """Replace every name by its definition until none is left."""
    table = dict(defs)
    for _ in range(len(defs) + 1):
        new = expr.xreplace(table)
        if new == expr:
            break
        expr = new
    return expr


def _same(a: Any, b: Any) -> bool:
    """The same object, or the same after SymPy's own evaluation (an unevaluated sum or
    matrix product)."""
    if a == b:
        return True
    if isinstance(a, (sp.MatrixBase, sp.MatrixExpr)) or isinstance(b, (sp.MatrixBase,
                                                                      sp.MatrixExpr)):
        A, B = sp.Matrix(a.doit()), sp.Matrix(b.doit())
        return A.shape == B.shape and all(sp.cancel(x - y) == 0
                                          for x, y in zip(A, B, strict=True))
    return bool(sp.expand(a - b) == 0)


def auto_names(*exprs: Any) -> list[tuple[Any, Any]]:
    """Names for the long arguments of ``exp`` (s_1, s_2, ...) and of ``Max`` (h_1, ...).

    For :func:`named_step`: the scores and the pre-activations are what a
    reader names in the paper, and they are what makes the expanded
    expressions long.

    >>> x, y = sp.symbols("x y")
    >>> auto_names(sp.exp(x * y + x) + sp.Max(x - y, 0))
    [(x*y + x, s_1), (x - y, h_1)]
    """
    names: dict[Any, Any] = {}
    for kind, prefix in ((sp.exp, "s"), (sp.Max, "h")):
        count = 0
        for e in exprs:
            for atom in sorted(sp.sympify(e).atoms(kind), key=sp.default_sort_key):
                for arg in atom.args:
                    if arg.is_Atom or arg in names or (kind is sp.Max and arg == 0):
                        continue
                    count += 1
                    names[arg] = sp.Symbol(f"{prefix}_{count}", real=True)
    return list(names.items())


# -- layout: long expressions -----------------------------------------------------------
#: visible width of one display row, in characters of rendered maths (a rough measure)
ROW_WIDTH = 62


def visible_width(latex: str) -> int:
    """A rough count of the characters a LaTeX formula shows (commands count as one).

    >>> visible_width(r"\\frac{a}{b} + \\alpha_{1}")  # x, a, b, +, x, 1
    6
    """
    text = re.sub(r"\\(left|right|operatorname|mathrm|text|quad|qquad|,|;|!)", "", latex)
    text = re.sub(r"\\[a-zA-Z]+", "x", text)
    return len(re.sub(r"[{}^_&\s]", "", text))


def split_sum(expr: Any, width: int) -> list[str]:
    """The LaTeX of ``expr`` in rows of at most ``width``, split between the terms of a sum."""
    full = sp.latex(expr)
    if visible_width(full) <= width or not isinstance(expr, sp.Add):
        return [full]
    rows: list[str] = []
    current = ""
    for term in sp.Add.make_args(expr):
        t = sp.latex(term)
        piece = t if not current else (f"- {t[1:]}" if t.startswith("-") else f"+ {t}")
        if current and visible_width(current + piece) > width:
            rows.append(current)
            current = f"{t}" if t.startswith("-") else f"+ {t}"
        else:
            current = f"{current} {piece}".strip()
    rows.append(current)
    return rows


def equation_rows(lhs: Any, rhs: Any, relation: str = "=", suffix: str = "",
                  width: int = ROW_WIDTH) -> list[str]:
    """``align*`` rows printing ``lhs relation rhs`` from the objects themselves.

    When a side is too long for one row, the pair is rewritten with named
    common subexpressions (``sympy.cse``: substituting them back gives the
    very same expressions) listed after the equation, and long sums are
    split between their terms.

    >>> x, y = sp.symbols("x y")
    >>> equation_rows(x + y, y + x)
    ['x + y &= x + y']
    """
    if not isinstance(lhs, sp.Basic) or not isinstance(rhs, sp.Basic):
        return [f"{sp.latex(lhs)} &{relation} {sp.latex(rhs)}{suffix}"]
    one_row = f"{sp.latex(lhs)} &{relation} {sp.latex(rhs)}"
    if visible_width(one_row) <= width:
        return [one_row + suffix]
    defs: list[tuple[Any, Any]] = []
    left, right = split_sum(lhs, width), split_sum(rhs, width)
    if max(visible_width(row) for row in left + right) > width + width // 6:
        # a single term too long for a row: name common subexpressions (sympy.cse;
        # substituting them back gives the same expressions)
        names = sp.numbered_symbols(r"\kappa_")
        defs, (lhs, rhs) = sp.cse([lhs, rhs], symbols=names)
        left, right = split_sum(lhs, width), split_sum(rhs, width)
    rows = [f"&{left[0]}"] + [f"&\\quad {row}" for row in left[1:]]
    rows += [f"&{relation} {right[0]}"] + [f"&\\quad {row}" for row in right[1:]]
    rows[-1] += suffix
    return rows + where_rows(defs, width)


def where_rows(defs: Sequence[tuple[Any, Any]], width: int = ROW_WIDTH) -> list[str]:
    """One ``where name = value`` row per definition, long values split between terms."""
    rows: list[str] = []
    for name, value in defs:
        parts = split_sum(value, width - 14)
        rows.append(f"&\\text{{where }} {sp.latex(name)} = {parts[0]}")
        rows += [f"&\\quad {row}" for row in parts[1:]]
    return rows


def step_rows(step: Any) -> list[str]:
    """The ``align*`` rows of a step-like object (``lhs``, ``rhs``, optional ``relation``)."""
    if isinstance(step, NonnegStep):
        return equation_rows(step.lhs, step.rhs, suffix=r" \geq 0")
    if isinstance(step, NamedStep) and step.faithful:
        return equation_rows(step.shown_lhs, step.shown_rhs) + where_rows(step.defs)
    relation = getattr(step, "relation", "=")
    rel = {"<=": r"\le", "=": "="}.get(relation, relation)
    return equation_rows(step.lhs, step.rhs, rel)

