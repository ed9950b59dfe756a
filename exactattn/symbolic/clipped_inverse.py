"""The clipped inverse sigmoid (``clipped_inverse``) and the constants of ``noisy_oracle``.

Label ``clipped_inverse``: paper Lemma 6.1 (v1) = Lemma A.1 (v2); the
constants and inequalities of label ``noisy_oracle``: paper Thm 6.2 (v1) =
Thm 6.1 (v2); paper.md §5.

Three routes to a proof, each named in what it returns:

* **symbolic** (SymPy). Identities are checked as in
  :mod:`exactattn.symbolic.single_head` (``simplify(lhs - rhs) == 0``).
  Inequalities are checked as :class:`NonnegStep`: ``lhs = rhs`` is an
  identity *and* ``rhs`` is a quotient of two polynomials with nonnegative
  rational coefficients in variables declared nonnegative (the denominator
  having a monomial in positive variables only), hence ``rhs >= 0``. Each
  case of an inequality is parametrised by independent slack variables, so
  the certificate covers the whole case.
* **interval** (python-flint ``arb``): enclosures of tau_c and L at rising
  precision; a bound holds when the ball lies strictly on its side.
* **exact** (EXP): numbers of the form sum c e^q compared exactly
  (Lindemann–Weierstrass); a logarithm of a rational, which leaves EXP, is an
  ``arb`` ball at rising precision.

When a symbolic certificate is not found, the inequality is evaluated in exact
rational arithmetic on a grid of its free variables and the result says
``grid``; a negative value on the grid is a counterexample. No decision here
uses a float.

The lemma. Let tau_c = sigma(-1/2) = 1/(1 + sqrt(e)), clip(p) =
min(max(p, tau_c), 1 - tau_c) and L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2).
If alpha is in [tau_c, 1 - tau_c], then for every real a

    |logit(clip(a)) - logit(alpha)| <= L |a - alpha|,   L = 4.2552519... <= 5.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from typing import Any

import numpy as np
import sympy as sp
from flint import arb, ctx, fmpq

from ..errors import NotRepresentableError
from ..fields import EXP
from ..fields.rational import sqrt_upper
from ..learners import noisy as _learner
from ..models import SingleHeadAttention
from .steps import IntervalStep, NonnegStep, Step, recorded

__all__ = [
    "LABEL", "PAPER_REF", "NOISY_LABEL", "NOISY_PAPER_REF", "Finding", "NonnegStep",
    "TAU_C_LOWER", "TAU_C_UPPER", "L_LOWER", "L_UPPER", "L_DECIMAL", "TAU_C", "L_EXACT",
    "Clip", "manifestly_nonnegative",
    "constants_derivation", "clip_derivation", "logit_derivative_derivation",
    "mean_value_derivation", "lipschitz_derivation", "check_constants", "check_lipschitz_proof",
    "enclosures", "decide_between", "check_L_upper_bound", "check_constant_bounds",
    "lipschitz_points", "check_lipschitz_on_points",
    "probe_instances", "check_probe_geometry",
    "alpha_error_derivation", "check_alpha_error_bound", "check_tolerance_bound",
    "check_entry_error", "check_frobenius_error", "check_v_error", "error_chain",
    "check_error_chain", "check_error_chain_on_instances",
]

LABEL = "clipped_inverse"
PAPER_REF = "Lemma 6.1 (v1), Lemma A.1 (v2, reported)"
NOISY_LABEL = "noisy_oracle"
NOISY_PAPER_REF = "Thm 6.2 (v1), Thm 6.1 (v2, reported)"

ROUTE_SYMBOLIC = "symbolic (sympy)"
ROUTE_GRID = "grid (exact rationals)"
ROUTE_INTERVAL = "interval (arb)"
ROUTE_EXACT = "exact (EXP) + arb for logarithms of rationals"

#: first and last precision (bits) of the interval decisions
START_PREC = 64
MAX_PREC = 1 << 16

HALF = fmpq(1, 2)


@dataclass(frozen=True)
class Finding:
    """The result of a check: the fields of :class:`exactattn.claims.Outcome` and more.

    ``holds``, ``instances`` and ``detail`` have the meaning of ``Outcome``
    (``Outcome(f.holds, f.instances, f.detail)``); ``route`` says how it was
    decided (symbolic, grid, interval, exact); ``steps`` are the symbolic
    steps behind it, for a LaTeX derivation.
    """

    holds: bool
    instances: int
    detail: str
    route: str = ROUTE_SYMBOLIC
    steps: tuple[Any, ...] = ()


class Clip(sp.Function):  # type: ignore[misc]
    """clip_t(p) = min(max(p, t), 1 - t), kept unevaluated until ``doit()``.

    >>> p, t = sp.symbols("p t")
    >>> Clip(p, t).doit() == sp.Min(sp.Max(p, t), 1 - t)
    True
    """

    nargs = 2

    def doit(self, **hints: Any) -> Any:
        p, t = (arg.doit(**hints) for arg in self.args)
        return sp.Min(sp.Max(p, t), 1 - t)

    def _latex(self, printer: Any) -> str:
        p, t = self.args
        return (f"\\operatorname{{clip}}_{{{printer._print(t)}}}"
                f"\\!\\left({printer._print(p)}\\right)")


# -- symbolic steps ------------------------------------------------------------
Subs = Sequence[tuple[Any, Any]]


def _identity(lhs: Any, rhs: Any, subs: Subs = ()) -> bool:
    diff = sp.sympify(lhs - rhs)
    for old, new in subs:  # in order: later substitutions may refine earlier ones
        diff = diff.subs(old, new)
    return bool(sp.simplify(sp.expand(diff.doit())) == 0)


def _step(lhs: Any, rhs: Any, why: str, subs: Subs = ()) -> Step:
    return Step(lhs, rhs, why, _identity(lhs, rhs, subs))


def _poly_terms(expr: Any) -> tuple[tuple[Any, ...], list[tuple[tuple[int, ...], Any]]] | None:
    """(variables, [(exponents, coefficient)]) of a polynomial expression, or None."""
    variables = tuple(sorted(sp.sympify(expr).free_symbols, key=lambda s: s.name))
    expanded = sp.expand(expr)
    if not variables:
        return ((), [((), expanded)]) if expanded.is_Rational else None
    try:
        poly = sp.Poly(expanded, *variables)
    except sp.PolynomialError:
        return None
    return variables, list(poly.terms())


def manifestly_nonnegative(expr: Any) -> bool:
    """True if ``expr`` is P / Q with P, Q polynomials certifying ``expr >= 0``.

    Every variable must be declared ``nonnegative`` (or ``positive``) in
    SymPy; every coefficient of P and Q must be a nonnegative rational; Q
    must have a monomial with a positive coefficient whose variables are all
    declared ``positive`` (so Q > 0 wherever the variables are allowed).

    Parameters
    ----------
    expr : sympy expression (a rational function of its free symbols)

    Returns
    -------
    bool
        True: ``expr >= 0`` for all allowed values (a certificate). False
        certifies nothing either way.

    >>> x, y = sp.symbols("x y", nonnegative=True)
    >>> c = sp.Symbol("c", positive=True)
    >>> manifestly_nonnegative((x + y)**2 / (c + x)), manifestly_nonnegative(x - y)
    (True, False)
    """
    expr = sp.sympify(expr)
    if not all(s.is_nonnegative for s in expr.free_symbols):
        return False
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    top, bottom = _poly_terms(num), _poly_terms(den)
    if top is None or bottom is None:
        return False
    if not all(c.is_Rational and c >= 0 for _, c in top[1] + bottom[1]):
        return False
    positive = [s.is_positive for s in bottom[0]]
    return any(c > 0 and all(positive[k] for k, e in enumerate(m) if e)
               for m, c in bottom[1])


def _nonneg(lhs: Any, why: str, subs: Subs = (), rhs: Any = None) -> NonnegStep:
    """The step lhs = rhs >= 0, rhs given or computed as the normal form of lhs."""
    concrete = sp.sympify(lhs)
    for old, new in subs:
        concrete = concrete.subs(old, new)
    concrete = concrete.doit()
    if rhs is None:
        num, den = sp.fraction(sp.cancel(sp.together(concrete)))
        rhs = sp.expand(num) / sp.factor(den)
    identity = _identity(lhs, rhs, subs)
    manifest = manifestly_nonnegative(rhs)
    return NonnegStep(lhs, rhs, why, identity and manifest, identity, manifest)


# -- exact rational grids (the fallback when no certificate is found) ------------
GRID_POSITIVE = (fmpq(1, 7), fmpq(1, 2), fmpq(1), fmpq(3), fmpq(40))
GRID_NONNEGATIVE = (fmpq(0), fmpq(1, 5), fmpq(1), fmpq(6))
GRID_INTEGER = (fmpq(0), fmpq(1), fmpq(2), fmpq(9), fmpq(10))
GRID_MAX_POINTS = 4096


def _grid_points(variables: Sequence[Any], seed: int = 0) -> list[tuple[fmpq, ...]]:
    grids = [(GRID_INTEGER[1:] if s.is_positive else GRID_INTEGER[:-1]) if s.is_integer
             else GRID_POSITIVE if s.is_positive else GRID_NONNEGATIVE for s in variables]
    total = math.prod(len(g) for g in grids)
    if total <= GRID_MAX_POINTS:
        return list(product(*grids))
    corners = list(product(*[(g[0], g[-1]) for g in grids]))
    rng = np.random.default_rng(seed)
    sample = [tuple(g[int(rng.integers(len(g)))] for g in grids)
              for _ in range(GRID_MAX_POINTS - len(corners))]
    return corners + sample


def _evaluate(terms: list[tuple[tuple[int, ...], Any]], point: Sequence[fmpq]) -> fmpq:
    total = fmpq(0)
    for monomial, c in terms:
        value = fmpq(int(c.p), int(c.q))
        for x, e in zip(point, monomial, strict=True):
            if e:
                value *= x ** e
        total += value
    return total


def grid_nonnegative(expr: Any, seed: int = 0) -> tuple[bool, int, str]:
    """Evaluate a rational function of nonnegative variables on an exact rational grid.

    The fallback when :func:`manifestly_nonnegative` finds no certificate:
    positive variables range over {1/7, 1/2, 1, 3, 40}, nonnegative ones over
    {0, 1/5, 1, 6}, integer ones over small integers; all in ``fmpq``. Over
    4096 points, the corners plus a seeded sample. Points where the
    denominator vanishes are skipped.

    Parameters
    ----------
    expr : sympy expression whose free symbols are declared nonnegative
    seed : seed of the sample when the full grid is too large

    Returns
    -------
    (bool, int, str)
        No negative value found; points evaluated; a note (the first
        counterexample, if any).
    """
    expr = sp.sympify(expr)
    if not all(s.is_nonnegative for s in expr.free_symbols):
        raise ValueError("every variable must be declared nonnegative or positive")
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    variables = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    if variables:
        top = list(sp.Poly(sp.expand(num), *variables).terms())
        bottom = list(sp.Poly(sp.expand(den), *variables).terms())
    else:
        top, bottom = [((), sp.Rational(num))], [((), sp.Rational(den))]
    checked = 0
    for point in _grid_points(variables, seed):
        q = _evaluate(bottom, point)
        if q == 0:
            continue
        checked += 1
        value = _evaluate(top, point) / q
        if value < 0:
            where = ", ".join(f"{s} = {x}" for s, x in zip(variables, point, strict=True))
            return False, checked, f"negative ({value}) at {where}"
    return True, checked, f"no negative value on {checked} exact rational points"


def _settle(name: str, steps: Sequence[Step], ok_detail: str) -> Finding:
    """A Finding from steps: identities must hold; inequalities by certificate, else grid."""
    route, checked, notes = ROUTE_SYMBOLIC, len(steps), []
    for k, s in enumerate(steps):
        if s.verified:
            continue
        if isinstance(s, NonnegStep) and s.identity:
            ok, points, note = grid_nonnegative(s.rhs)
            checked += points
            route = ROUTE_GRID
            if not ok:
                return Finding(False, checked, f"{name}, step {k + 1} ({s.why}): {note}",
                               route, tuple(steps))
            notes.append(f"step {k + 1}: {note}")
            steps = [*steps[:k], dataclasses.replace(s, grid_points=points), *steps[k + 1:]]
            continue
        return Finding(False, checked, f"{name}, step {k + 1} ({s.why}): the identity "
                       "does not simplify to 0", route, tuple(steps))
    detail = ok_detail if not notes else f"{ok_detail}; no certificate for {'; '.join(notes)}"
    return Finding(True, checked, detail, route, tuple(steps))


# -- the constants, symbolically ---------------------------------------------------
TAU_SYM = sp.Symbol(r"\tau_c", positive=True)
L_SYM = sp.Symbol("L", positive=True)
#: tau_c = sigma(-1/2) and L = 1/(tau_c (1 - tau_c)), as SymPy constants
TAU_C_EXPR = sp.exp(sp.Rational(-1, 2)) / (1 + sp.exp(sp.Rational(-1, 2)))
L_EXPR = 2 + 2 * sp.cosh(sp.Rational(1, 2))


def constants_derivation() -> list[Step]:
    """tau_c = sigma(-1/2) = 1/(1 + sqrt e) and L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2).

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Every step is an identity checked by ``simplify(lhs - rhs) == 0``
    with tau_c replaced by sigma(-1/2).

    Returns
    -------
    list of Step

    >>> all(s.verified for s in constants_derivation())
    True
    """
    half = sp.Rational(1, 2)
    tau = [(TAU_SYM, TAU_C_EXPR)]
    e_half = sp.exp(half)
    return [
        _step(TAU_SYM, 1 / (1 + sp.sqrt(sp.E)),
              r"$\tau_c = \sigma(-\tfrac12)$; multiply by $e^{1/2}$",
              tau),
        _step(1 - TAU_SYM, e_half / (1 + e_half),
              r"$1 - \tau_c = \sigma(\tfrac12)$",
              tau),
        _step(TAU_SYM * (1 - TAU_SYM), sp.sqrt(sp.E) / (1 + sp.sqrt(sp.E)) ** 2,
              r"$\sigma(z)\,(1 - \sigma(z)) = \sigma'(z)$ at $z = -\tfrac12$", tau),
        _step(1 / (TAU_SYM * (1 - TAU_SYM)), L_EXPR,
              r"$L = (1 + \sqrt e)^2/\sqrt e = e^{-1/2} + 2 + e^{1/2}$", tau),
        _step(L_EXPR, 2 + e_half + sp.exp(-half),
              r"$\cosh z = (e^z + e^{-z})/2$, so $L \in$ EXP"),
    ]


# -- the Lipschitz bound, symbolically ---------------------------------------------
def clip_derivation() -> list[Step]:
    """(i) clip is nondecreasing and 1-Lipschitz, maps into [t, 1 - t], fixes [t, 1 - t].

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    For any t <= 1/2 (the lemma uses t = tau_c). Each case a <= b of
    the three regions (below t, in [t, 1 - t], above 1 - t) is parametrised
    by independent nonnegative slacks; ``clip(b) - clip(a)`` and
    ``(b - a) - (clip(b) - clip(a))`` are shown to be sums of slacks. With
    the symmetric case a >= b this gives |clip(b) - clip(a)| <= |b - a|.

    Returns
    -------
    list of Step
        12 :class:`NonnegStep` (6 cases x 2), 6 for the range, 1 identity.

    >>> all(s.verified for s in clip_derivation())
    True
    """
    t = sp.Symbol(r"\tau", real=True)
    a, b = sp.symbols("a b", real=True)
    r, r2, s, s2, u, m, w = sp.symbols(r"r r_2 s s' u m w", nonnegative=True)

    def tw(*parts: Any) -> list[tuple[Any, Any]]:
        """t = (1 - w)/2 with w = 1 - 2t the sum of the given slacks."""
        return [(t, (1 - sum(parts)) / 2)]

    cases: list[tuple[Any, Any, Any, Any, list[tuple[Any, Any]], str]] = [
        # (a, b, clip(b) - clip(a), (b - a) - (clip(b) - clip(a)), subs of tau, the case)
        (t - r - r2, t - r, 0, r2, tw(w), r"$a = \tau - r - r_2 \le b = \tau - r$"),
        (t - r, t + s, s, r, tw(s, s2), r"$a = \tau - r$, $b = \tau + s = 1 - \tau - s'$"),
        (t - r, 1 - t + u, w, r + u, tw(w), r"$a = \tau - r$, $b = 1 - \tau + u$"),
        (t + s, t + s + m, m, 0, tw(s, m, s2), r"$a = \tau + s$, $b = a + m = 1 - \tau - s'$"),
        (t + s, 1 - t + u, s2, u, tw(s, s2), r"$a = \tau + s = 1 - \tau - s'$, $b = 1 - \tau + u$"),
        (1 - t + u, 1 - t + u + m, 0, m, tw(w), r"$a = 1 - \tau + u \le b = a + m$"),
    ]
    gain = _minus(Clip(b, t), Clip(a, t))
    steps: list[Step] = []
    for a_case, b_case, up, loss, subs, what in cases:
        where = [(a, a_case), (b, b_case), *subs]
        steps.append(_nonneg(gain, f"monotone: {what}", where, up))
        steps.append(_nonneg(_minus(_minus(b, a), gain), f"1-Lipschitz: {what}", where, loss))
    for x, low, high, subs, what in (
        (t - r, 0, w, tw(w), r"$a = \tau - r$"),
        (t + s, s, s2, tw(s, s2), r"$a = \tau + s = 1 - \tau - s'$"),
        (1 - t + u, w, 0, tw(w), r"$a = 1 - \tau + u$"),
    ):
        where = [(a, x), *subs]
        steps.append(_nonneg(_minus(Clip(a, t), t), f"range: {what}", where, low))
        steps.append(_nonneg(_minus(1 - t, Clip(a, t)), f"range: {what}", where, high))
    steps.append(_step(Clip(a, t), a, r"clip fixes $a = \tau + s = 1 - \tau - s'$",
                       [(a, t + s), *tw(s, s2)]))
    return steps


def logit_derivative_derivation() -> list[Step]:
    """(ii) logit'(p) = 1/(p(1-p)); its maximum on [t, 1 - t] is 1/(t(1-t)), at the ends.

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    p(1 - p) increases on [t, 1/2] and decreases on [1/2, 1 - t] (its
    derivative 1 - 2p has the sign of 1/2 - p); directly, p(1-p) - t(1-t) =
    s s' for p = t + s, s' = 1 - t - p. So 0 < t(1-t) <= p(1-p) and
    logit'(p) <= 1/(t(1-t)), which is L at t = tau_c (last step).

    Returns
    -------
    list of Step

    >>> all(s.verified for s in logit_derivative_derivation())
    True
    """
    p = sp.Symbol("p", real=True)
    t = sp.Symbol(r"\tau", real=True)
    z, s, s2 = sp.symbols("z s s'", nonnegative=True)
    half = sp.Rational(1, 2)
    g = p * (1 - p)
    return [
        _step(sp.Derivative(sp.log(p / (1 - p)), p), 1 / (p * (1 - p)),
              r"$\operatorname{logit}'$, $0 < p < 1$"),
        _step(sp.Derivative(g, p), 1 - 2 * p, r"$g(p) = p(1-p)$"),
        _nonneg(1 - 2 * p, r"$p = \tfrac12 - z$: $g$ nondecreasing on $[\tau, \tfrac12]$",
                [(p, half - z)], 2 * z),
        _nonneg(2 * p - 1, r"$p = \tfrac12 + z$: $g$ nonincreasing on $[\tfrac12, 1 - \tau]$",
                [(p, half + z)], 2 * z),
        _step(g - t * (1 - t), 0, r"$p = 1 - \tau$: $g(1 - \tau) = g(\tau)$", [(p, 1 - t)]),
        _nonneg(g - t * (1 - t), r"$p = \tau + s = 1 - \tau - s'$: $\min g$ at the ends",
                [(p, t + s), (t, (1 - s - s2) / 2)], s * s2),
        _step(1 / g, L_EXPR, r"at $p = \tau_c$ the maximum $1/g(\tau_c)$ is $L$",
              [(p, TAU_C_EXPR)]),
    ]


def mean_value_derivation() -> list[Step]:
    """(iii) Lp - logit(p) and Lp + logit(p) are nondecreasing on [tau_c, 1 - tau_c].

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Their derivatives are L -+ 1/(p(1-p)) >= 0 there by (ii). By the
    mean value theorem, for x <= y in [tau_c, 1 - tau_c]: 0 <= logit(y) -
    logit(x) <= L (y - x). With x, y = clip(a), alpha and clip(alpha) =
    alpha, (i) gives |logit(clip(a)) - logit(alpha)| <= L |clip(a) -
    clip(alpha)| <= L |a - alpha|. The mean value theorem itself is the one
    step not checked by SymPy.

    Returns
    -------
    list of Step

    >>> all(s.verified for s in mean_value_derivation())
    True
    """
    p = sp.Symbol("p", real=True)
    logit = sp.log(p / (1 - p))
    return [
        _step(sp.Derivative(L_SYM * p - logit, p), L_SYM - 1 / (p * (1 - p)),
              r"$\ge 0$ on $[\tau_c, 1 - \tau_c]$ by (ii)"),
        _step(sp.Derivative(L_SYM * p + logit, p), L_SYM + 1 / (p * (1 - p)),
              r"$> 0$; then the mean value theorem"),
    ]


def lipschitz_derivation() -> list[Step]:
    """All steps of the Lipschitz proof: (i) clip, (ii) logit', (iii) mean value theorem.

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Returns
    -------
    list of Step
    """
    return clip_derivation() + logit_derivative_derivation() + mean_value_derivation()


@recorded
def check_constants() -> Finding:
    """The identities for tau_c and L (SymPy), and L = 2 + e^(1/2) + e^(-1/2) exactly in EXP.

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    steps = constants_derivation()
    found = _settle("constants", steps, "every identity simplifies to 0")
    exact = L_EXACT == 2 + EXP.exp(EXP(HALF)) + EXP.exp(EXP(-HALF))
    if found.holds and not exact:
        return Finding(False, found.instances + 1, "1/(tau_c (1 - tau_c)) != 2 + 2 cosh(1/2) "
                       "in EXP", found.route, found.steps)
    return Finding(found.holds, found.instances + 1,
                   found.detail + "; and 1/(tau_c(1 - tau_c)) == 2 + e^(1/2) + e^(-1/2) in EXP",
                   found.route, found.steps)


@recorded
def check_lipschitz_proof() -> Finding:
    """Every step of (i), (ii), (iii) verified: identities simplify, inequalities certified.

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    return _settle("Lipschitz proof", lipschitz_derivation(),
                   "every identity simplifies to 0 and every right side is a nonnegative "
                   "combination of nonnegative slacks")


# -- interval arithmetic -------------------------------------------------------------
def enclosures(prec: int = 128) -> dict[str, arb]:
    """Balls containing tau_c, 1 - tau_c, L = 2 + 2 cosh(1/2) and 1/(tau_c (1 - tau_c)).

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Computed with python-flint ``arb`` inside ``ctx.workprec`` (the
    global precision is restored on return).

    Parameters
    ----------
    prec : working precision in bits

    Returns
    -------
    dict of str to arb
        Keys ``"tau_c"``, ``"1 - tau_c"``, ``"L"``, ``"1/(tau_c(1 - tau_c))"``.

    >>> str(enclosures(64)["L"])[:10]
    '[4.2552519'
    """
    with ctx.workprec(prec):
        half = arb(HALF)
        tau = 1 / (1 + half.exp())
        return {"tau_c": tau, "1 - tau_c": 1 - tau, "L": 2 + 2 * half.cosh(),
                "1/(tau_c(1 - tau_c))": 1 / (tau * (1 - tau))}


def decide_between(name: str, lo: fmpq | None, hi: fmpq | None) -> tuple[bool | None, arb]:
    """Is lo < x < hi for the constant x = enclosures()[name]?

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Raises the precision from 64 bits (doubling, up to ``MAX_PREC``)
    until the ball lies strictly inside (True) or entirely on the wrong side
    of lo or hi (False). No float is involved.

    Parameters
    ----------
    name : a key of :func:`enclosures`
    lo, hi : rational bounds (``fmpq``), or None for no bound

    Returns
    -------
    (bool or None, arb)
        True or False proven, None if undecided at ``MAX_PREC``; the last ball.
    """
    prec = START_PREC
    while True:
        with ctx.workprec(prec):
            x = enclosures(prec)[name]
            low = arb(lo) if lo is not None else None
            high = arb(hi) if hi is not None else None
            if (low is None or low < x) and (high is None or x < high):
                return True, x
            if (low is not None and x <= low) or (high is not None and x >= high):
                return False, x
        if prec >= MAX_PREC:
            return None, x
        prec *= 2


def _certified(name: str, lo: fmpq, hi: fmpq) -> tuple[fmpq, fmpq]:
    ok, x = decide_between(name, lo, hi)
    if ok is not True:  # pragma: no cover - a proven fact
        raise AssertionError(f"{name} = {x} is not in ({lo}, {hi})")
    return lo, hi


#: proven rational bounds: TAU_C_LOWER < tau_c < TAU_C_UPPER (checked by arb on import)
TAU_C_LOWER, TAU_C_UPPER = _certified("tau_c", fmpq(3775406687, 10**10),
                                      fmpq(3775406688, 10**10))
#: proven rational bounds: L_LOWER < L < L_UPPER <= 5 (checked by arb on import); L_UPPER
#: is the learners' constant (exactattn.learners.noisy.L_UPPER), so the bound certified is
#: the one they use
L_LOWER, L_UPPER = _certified("L", fmpq(42552519304, 10**10), _learner.L_UPPER)
#: L's decimal value to seven places, proven: 4.2552519 < L < 4.2552520
L_DECIMAL = _certified("L", fmpq(42552519, 10**7), fmpq(42552520, 10**7))
#: tau_c = sigma(-1/2) and L = 1/(tau_c (1 - tau_c)) as exact elements of EXP
TAU_C = _learner.TAU_C
L_EXACT = 1 / (TAU_C * (1 - TAU_C))


def check_L_upper_bound(bound: Any = 5) -> Finding:
    """L < bound, proven by interval arithmetic (False, with the ball, if L > bound).

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Parameters
    ----------
    bound : exact rational (int, Fraction, fmpq); the paper's is 5

    Returns
    -------
    Finding
        route ``interval (arb)``.

    >>> check_L_upper_bound(5).holds, check_L_upper_bound(4).holds
    (True, False)
    """
    q = _fmpq(bound)
    ok, x = decide_between("L", None, q)
    if ok is None:
        return Finding(False, 1, f"undecided at {MAX_PREC} bits: L in {x}", ROUTE_INTERVAL)
    relation = "<" if ok else ">"
    return Finding(ok, 1, f"L in {x.str(12)} {relation} {q}", ROUTE_INTERVAL)


@recorded
def check_constant_bounds() -> Finding:
    """The exported rational bounds, L <= 5 and the decimal value of L, by arb.

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Proves 0 < TAU_C_LOWER < tau_c < TAU_C_UPPER < 1/2,
    L_LOWER < L < L_UPPER <= 5, 4.2552519 < L < 4.2552520, and the same
    bounds for 1/(tau_c (1 - tau_c)) computed from tau_c's ball.

    Returns
    -------
    Finding
        route ``interval (arb)``.
    """
    cases = [
        ("tau_c", TAU_C_LOWER, TAU_C_UPPER), ("L", L_LOWER, L_UPPER), ("L", *L_DECIMAL),
        ("L", None, fmpq(5)), ("1/(tau_c(1 - tau_c))", L_LOWER, L_UPPER),
        ("tau_c", fmpq(0), HALF),
    ]
    shown = {"tau_c": r"\tau_c", "L": "L", "1/(tau_c(1 - tau_c))": r"\frac{1}{\tau_c(1 - \tau_c)}"}
    steps = []
    for name, lo, hi in cases:
        ok, x = decide_between(name, lo, hi)
        steps.append(IntervalStep(shown[name], None if lo is None else _decimal(lo),
                                  None if hi is None else _decimal(hi), x.str(12), ok is True))
        if ok is not True:
            return Finding(False, len(cases), f"{name} in {x} is not proven in ({lo}, {hi})",
                           ROUTE_INTERVAL, tuple(steps))
    if not L_UPPER <= 5:
        return Finding(False, len(cases), f"L_UPPER = {L_UPPER} > 5", ROUTE_INTERVAL)
    L = enclosures(128)["L"]
    return Finding(True, len(cases),
                   f"0 < {_decimal(TAU_C_LOWER)} < tau_c < {_decimal(TAU_C_UPPER)} < 1/2; "
                   f"{_decimal(L_DECIMAL[0])} < L < {_decimal(L_DECIMAL[1])}; "
                   f"L in {L.str(15)}; L < L_UPPER = {_decimal(L_UPPER)} <= 5", ROUTE_INTERVAL,
                   tuple(steps))


def _decimal(q: fmpq) -> str:
    """The exact decimal expansion of a rational whose denominator divides a power of 10."""
    for k in range(30):
        scaled = q * 10**k
        if scaled.q == 1:
            digits = str(abs(int(scaled.p))).rjust(k + 1, "0")
            sign = "-" if q < 0 else ""
            return sign + (digits[:-k] + "." + digits[-k:] if k else digits)
    return str(q)


# -- the Lipschitz inequality on exact points -------------------------------------------
Point = tuple[Any, Any]


def _fmpq(x: Any) -> fmpq:
    if isinstance(x, fmpq):
        return x
    if isinstance(x, Fraction):
        return fmpq(x.numerator, x.denominator)
    if isinstance(x, int) and not isinstance(x, bool):
        return fmpq(x)
    raise TypeError(f"expected an exact rational (int, Fraction, fmpq), got {type(x).__name__}")


def _sym(x: Any) -> Any:
    """An exact rational (int, Fraction, fmpq) as a SymPy Rational."""
    q = _fmpq(x)
    return sp.Rational(int(q.p), int(q.q))


def lipschitz_points(seed: int = 0, random_points: int = 300) -> list[tuple[fmpq, fmpq]]:
    """Exact test points (a, q): a rational anywhere, q rational in [-1/2, 1/2].

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    A grid of q (ends included) times a's below, at, inside and above
    the clip interval and next to its ends (the proven bounds of tau_c);
    a rational within 2^-30 of alpha = sigma(q) for each grid q; seeded
    random pairs, two in three with a inside the clip interval.

    Parameters
    ----------
    seed : seed of the random pairs
    random_points : how many random pairs

    Returns
    -------
    list of (fmpq, fmpq)
    """
    qs = [fmpq(k, 8) for k in range(-4, 5)] + [fmpq(-1, 3), fmpq(2, 7)]
    near = [TAU_C_LOWER, TAU_C_UPPER, 1 - TAU_C_LOWER, 1 - TAU_C_UPPER]
    a_s = [fmpq(-3), fmpq(-1, 2), fmpq(0), fmpq(1, 4), fmpq(3775, 10**4), fmpq(38, 100),
           fmpq(2, 5), HALF, fmpq(3, 5), fmpq(62, 100), fmpq(1), fmpq(3, 2), fmpq(7), *near]
    points = [(a, q) for q in qs for a in a_s]
    # right next to alpha = sigma(q): a rational within 2^-30 of sigma(q)
    for q in qs:
        with ctx.workprec(128):
            mid = EXP.sigmoid(EXP(q)).arb(128).mid()
            a = fmpq(int((mid * 2**30).floor().unique_fmpz()), 2**30)
        points.append((a, q))
    rng = np.random.default_rng(seed)
    for k in range(random_points):  # two in three inside the clip interval
        q = fmpq(int(rng.integers(-50, 51)), 100)
        a = fmpq(int(rng.integers(-300, 1301) if k % 3 == 0 else rng.integers(378, 623)), 1000)
        points.append((a, q))
    return points


@recorded
def check_lipschitz_on_points(points: Iterable[Point], constant: Any = None) -> Finding:
    """|logit(clip(a)) - logit(alpha)| <= C |a - alpha| at exact points, alpha = sigma(q).

    Label ``clipped_inverse``, paper Lemma 6.1 (v1) = Lemma A.1 (v2).

    Decisions: clip(a) by exact comparison with tau_c in EXP; when a
    is clipped, logit(clip(a)) = -+1/2 and the inequality is an exact EXP
    comparison; when logit(a) is in EXP (a = 1/2) likewise; otherwise
    logit(a) = log(a/(1 - a)) leaves EXP and the difference
    C|a - alpha| - |logit(a) - q| is an ``arb`` ball at rising precision: a
    pass needs the ball entirely >= 0, a failure entirely < 0.

    Parameters
    ----------
    points : iterable of (a, q)
        Exact rationals (int, Fraction, fmpq); q in [-1/2, 1/2], the lemma's
        hypothesis alpha in [tau_c, 1 - tau_c].
    constant : exact rational or EXP element, optional
        C; the exact L (an element of EXP) by default.

    Returns
    -------
    Finding
        holds False with the first counterexample.

    Raises
    ------
    ValueError
        q outside [-1/2, 1/2].
    TypeError
        an inexact number (a float) among the points.
    """
    C = L_EXACT if constant is None else EXP(constant)
    upper = 1 - TAU_C
    checked = exact = by_ball = max_prec = 0
    for a_raw, q_raw in points:
        a, q = _fmpq(a_raw), _fmpq(q_raw)
        if not -HALF <= q <= HALF:
            raise ValueError(f"q = {q} is outside [-1/2, 1/2]: alpha = sigma(q) would leave "
                             "[tau_c, 1 - tau_c]")
        checked += 1
        A, alpha = EXP(a), EXP.sigmoid(EXP(q))
        rhs = C * abs(A - alpha)  # exact, in EXP
        if A <= TAU_C or A >= upper:  # logit(clip(a)) = -1/2 or 1/2, exactly
            lhs = abs(EXP(-HALF if A <= TAU_C else HALF) - EXP(q))
            exact += 1
            if not lhs <= rhs:
                return Finding(False, checked, f"counterexample a = {a}, q = {q}: "
                               f"|logit(clip a) - q| = {lhs} > C|a - alpha|", ROUTE_EXACT)
            continue
        try:
            lhs = abs(EXP.logit(A) - EXP(q))
            exact += 1
            if not lhs <= rhs:
                return Finding(False, checked, f"counterexample a = {a}, q = {q}", ROUTE_EXACT)
            continue
        except NotRepresentableError:
            pass
        by_ball += 1
        prec = START_PREC
        while True:
            with ctx.workprec(prec):
                gap = EXP.to_arb(rhs, prec) - abs((arb(a) / arb(1 - a)).log() - arb(q))
                if gap >= 0:
                    break
                if gap < 0:
                    return Finding(False, checked, f"counterexample a = {a}, q = {q}: "
                                   f"C|a - alpha| - |logit(a) - q| in {gap.str(10)} < 0",
                                   ROUTE_EXACT)
            if prec >= MAX_PREC:
                raise RuntimeError(f"undecided at {MAX_PREC} bits at a = {a}, q = {q}")
            prec *= 2
        max_prec = max(max_prec, prec)
    return Finding(True, checked, f"{exact} points decided exactly in EXP, {by_ball} by arb "
                   f"balls (at most {max_prec} bits)", ROUTE_EXACT)


# -- the probe geometry of noisy_oracle ------------------------------------------------
#: (name, W_bar, W, v) with exact rational entries
Instance = tuple[str, fmpq, list[list[fmpq]], list[fmpq]]


def _random_rational(rng: np.random.Generator) -> fmpq:
    return fmpq(int(rng.integers(-9, 10)), int(rng.integers(1, 6)))


def probe_instances(seeds: Iterable[int] = range(3), dims: Iterable[int] = (1, 2, 3),
                    wbars: Iterable[Any] = (2, Fraction(5, 2), 7),
                    ) -> list[Instance]:
    """Seeded rational (W, v) with ||W||_F <= W_bar and ||v||_2 <= 1, plus extreme W.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    W is drawn with small rational entries and scaled by W_bar / r
    (times a seeded factor in (0, 1]) with r >= ||W||_F rational; the
    extremes W = +-W_bar e_i e_j^T (||W||_F = W_bar, |W_ij| = W_bar) put the
    score gap at -+1/2, the ends of the clip interval.

    Parameters
    ----------
    seeds, dims, wbars : seeds, dimensions d and bounds W_bar >= 2 to combine

    Returns
    -------
    list of (name, W_bar, W, v)
        Exact rationals (``fmpq``).
    """
    out: list[Instance] = []
    for d in dims:
        for wbar_raw in wbars:
            wbar = _fmpq(wbar_raw)
            for seed in seeds:
                rng = np.random.default_rng([seed, d])
                W = [[_random_rational(rng) for _ in range(d)] for _ in range(d)]
                v = [_random_rational(rng) for _ in range(d)]
                fro2 = sum((x * x for row in W for x in row), fmpq(0))
                if fro2 != 0:
                    shrink = fmpq(int(rng.integers(1, 5)), 4)
                    scale = wbar / sqrt_upper(fro2) * shrink
                    W = [[x * scale for x in row] for row in W]
                v2 = sum((x * x for x in v), fmpq(0))
                if v2 > 1:
                    v = [x / sqrt_upper(v2) for x in v]
                out.append((f"d={d}, W_bar={wbar}, seed={seed}", wbar, W, v))
            i, j = d - 1, 0
            for sign in (1, -1):
                W = [[wbar * sign if (k, l) == (i, j) else fmpq(0) for l in range(d)]
                     for k in range(d)]
                v = [fmpq(1, d + 1) * (k + 1) * (-1) ** k for k in range(d)]
                out.append((f"d={d}, W_bar={wbar}, W = {sign}W_bar e_{i}e_{j}^T", wbar, W, v))
    return out


def _bilinear(x: list[fmpq], W: list[list[fmpq]], y: list[fmpq]) -> fmpq:
    """x^T W y in QQ."""
    d = len(x)
    return sum((x[k] * W[k][l] * y[l] for k in range(d) for l in range(d)), fmpq(0))


@recorded
def check_probe_geometry(instances: Sequence[Instance]
                         | None = None, *, a: Any = HALF, b_scale: Any = 1) -> Finding:
    """The probes of noisy_oracle, exactly: norms, score gap, and the answer formula.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    For every instance (||W||_F <= W_bar checked exactly on squares)
    and every (i, j), i = j included, with b = b_scale / W_bar: the tokens
    x_1 = b e_i + a e_j and x_2 = a e_j have ||x||_2^2 <= 1 (in QQ); the
    score gap x_1^T W x_2 - x_2^T W x_2 equals a b W_ij and lies in
    [-1/2, 1/2]; alpha* = sigma(a b W_ij) lies in [tau_c, 1 - tau_c] (exact
    in EXP); and f(X), evaluated by :class:`SingleHeadAttention` over EXP,
    == a v_j + sigma(a b W_ij) b v_i.

    Parameters
    ----------
    instances : list of (name, W_bar, W, v), optional
        :func:`probe_instances` by default.
    a, b_scale : exact rationals
        The probe scales (1/2 and 1 in the theorem); other values exist to
        show that they break the geometry.

    Returns
    -------
    Finding
        route ``exact (EXP)``; instances = probes checked.
    """
    a_q = _fmpq(a)
    checked = 0
    instances = probe_instances() if instances is None else instances
    for name, wbar, W, v in instances:
        d = len(v)
        if wbar < 2:
            raise ValueError(f"{name}: the theorem needs W_bar >= 2")
        if sum((x * x for row in W for x in row), fmpq(0)) > wbar * wbar:
            return Finding(False, checked, f"{name}: ||W||_F > W_bar", ROUTE_EXACT)
        b = _fmpq(b_scale) / wbar
        model = SingleHeadAttention(W, v, field=EXP)
        for i in range(d):
            for j in range(d):
                checked += 1
                x1 = [fmpq(0)] * d
                x2 = [fmpq(0)] * d
                x1[i] += b
                x1[j] += a_q
                x2[j] += a_q
                where = f"{name}, (i, j) = ({i}, {j})"
                for x in (x1, x2):
                    if sum((c * c for c in x), fmpq(0)) > 1:
                        return Finding(False, checked, f"{where}: a token has norm > 1",
                                       ROUTE_EXACT)
                gap = _bilinear(x1, W, x2) - _bilinear(x2, W, x2)
                if gap != a_q * b * W[i][j]:
                    return Finding(False, checked, f"{where}: gap {gap} != a b W_ij",
                                   ROUTE_EXACT)
                if not -HALF <= gap <= HALF:
                    return Finding(False, checked, f"{where}: gap {gap} outside [-1/2, 1/2]",
                                   ROUTE_EXACT)
                alpha = EXP.sigmoid(EXP(gap))
                if not TAU_C <= alpha <= 1 - TAU_C:  # pragma: no cover - follows from the gap
                    return Finding(False, checked, f"{where}: alpha* outside the clip interval",
                                   ROUTE_EXACT)
                y = model(EXP.array([x1, x2]))
                if y != EXP(a_q * v[j]) + alpha * EXP(b * v[i]):
                    return Finding(False, checked, f"{where}: f(X) != a v_j + sigma(a b W_ij) "
                                   "b v_i", ROUTE_EXACT)
    return Finding(True, checked, f"{len(instances)} instances, every (i, j): norms <= 1, "
                   "gap = a b W_ij in [-1/2, 1/2], f(X) == a v_j + sigma(a b W_ij) b v_i",
                   ROUTE_EXACT)


# -- the error chain of noisy_oracle ----------------------------------------------------
_pos = {"positive": True}
_nn = {"nonnegative": True}
WBAR = sp.Symbol(r"\bar W", **_pos)
MU = sp.Symbol(r"\mu", **_pos)
EPS_W = sp.Symbol(r"\varepsilon_W", **_pos)
EPS_V = sp.Symbol(r"\varepsilon_v", **_pos)
D = sp.Symbol("d", **_pos)
TAU_F = sp.Symbol(r"\tau_f", **_nn)
TAU_V = sp.Symbol(r"\tau_v", **_nn)
A_PROBE, B_PROBE = sp.Rational(1, 2), 1 / WBAR
S_W = sp.Symbol("s", nonnegative=True)
K_D = sp.Symbol("k", integer=True, nonnegative=True)
#: the theorem's domain: W_bar = 2 + s (s >= 0), d = 1 + k (k >= 0 an integer)
DOMAIN = [(WBAR, 2 + S_W), (D, 1 + K_D)]
DOMAIN_NOTE = r"; $\bar W = 2 + s$, $d = 1 + k$, $s, k \ge 0$"


def _minus(x: Any, y: Any) -> Any:
    """x - y, unevaluated (for display)."""
    return sp.Add(x, sp.Mul(-1, y, evaluate=False), evaluate=False)


def _alpha_bound(coefficient_f: Any = 2) -> Any:
    """(c W_bar/mu) tau_f + ((W_bar + 2)/mu) tau_v; the theorem has c = 2."""
    return coefficient_f * WBAR / MU * TAU_F + (WBAR + 2) / MU * TAU_V


def alpha_error_derivation(coefficient_f: Any = 2) -> list[Step]:
    """Step (1): |alpha_hat - alpha*| <= (2 W_bar/mu) tau_f + ((W_bar + 2)/mu) tau_v.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    alpha* = (f - a v_j)/(b v_i), alpha_hat = (y - a v_hat_j)/(b v_hat_i),
    a = 1/2, b = 1/W_bar, |y - f| <= tau_f, |v_hat - v|_inf <= tau_v <= mu/2,
    |v_i| >= mu, |alpha*| <= 1. The key identity alpha_hat - alpha* =
    dN/(b v_hat_i) + alpha* (v_i - v_hat_i)/v_hat_i, then three estimates
    (triangle inequality; each hypothesis a <= b substituted as b = a + slack).

    Parameters
    ----------
    coefficient_f : replaces the 2 of the theorem (to see a wrong bound fail)

    Returns
    -------
    list of Step
    """
    f, y, vi, vj, hi, hj = sp.symbols(r"f y v_i v_j \hat{v}_i \hat{v}_j", real=True)
    a, b = sp.symbols("a b", positive=True)
    alpha, alpha_hat, dN = sp.symbols(r"\alpha \hat{\alpha} \Delta{}N", real=True)
    defs = [(alpha_hat, (y - a * hj) / (b * hi)), (alpha, (f - a * vj) / (b * vi)),
            (dN, (y - a * hj) - (f - a * vj))]
    steps: list[Step] = [
        _step(alpha_hat - alpha, dN / (b * hi) + alpha * (vi - hi) / hi,
              r"the key identity, $\Delta N = (y - a\hat v_j) - (f - a v_j)$", defs),
        _step(dN, (y - f) - a * (hj - vj), r"so $|\Delta N| \le |y - f| + a|\hat v_j - v_j|$",
              defs),
    ]
    r_f, r_i, r_j, r_mu, m = sp.symbols(r"r_f r_i r_j r_\mu m", nonnegative=True)
    r_n, r_v, r_a, del_i = sp.symbols(r"r_N r_V r_\alpha \delta_i", nonnegative=True)
    e_f, d_i, d_j = sp.Abs(y - f), sp.Abs(hi - vi), sp.Abs(hj - vj)
    steps += [
        _nonneg(TAU_F + A_PROBE * TAU_V - (e_f + A_PROBE * d_j),
                r"$|y - f| \le \tau_f$, $|\hat v_j - v_j| \le \tau_v$: "
                r"$|\Delta N| \le \tau_f + \tau_v/2$ ($a = \tfrac12$)",
                [(TAU_F, e_f + r_f), (TAU_V, d_j + r_j)]),
        _nonneg(sp.Abs(vi) - d_i - MU / 2,
                r"$|\hat v_i| \ge |v_i| - |\hat v_i - v_i| \ge \mu/2$: margin $|v_i| \ge \mu$, "
                r"$|\hat v_i - v_i| \le \tau_v \le \mu/2$",
                [(sp.Abs(vi), MU + m), (MU, 2 * TAU_V + r_mu), (TAU_V, d_i + r_i),
                 (d_i, del_i)]),
        _nonneg(_alpha_bound(coefficient_f) - (sp.Abs(dN) / (B_PROBE * sp.Abs(hi))
                                               + sp.Abs(alpha) * d_i / sp.Abs(hi)),
                r"triangle inequality on the identity ($b = 1/\bar W$); $|\Delta N| \le "
                r"\tau_f + \tau_v/2$, $|\hat v_i| \ge \mu/2$, $|\alpha^*| \le 1$, "
                r"$\delta_i = |\hat v_i - v_i| \le \tau_v$",
                [(sp.Abs(dN), TAU_F + TAU_V / 2 - r_n), (sp.Abs(hi), MU / 2 + r_v),
                 (sp.Abs(alpha), 1 - r_a), (TAU_V, d_i + r_i), (d_i, del_i)]),
    ]
    return steps


def check_alpha_error_bound(coefficient_f: Any = 2) -> Finding:
    """Step (1) of the error chain, symbolically, for all positive parameters.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    See :func:`alpha_error_derivation`.

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    return _settle("(1) alpha error", alpha_error_derivation(coefficient_f),
                   "|alpha_hat - alpha*| <= (2 W_bar/mu) tau_f + ((W_bar + 2)/mu) tau_v "
                   "for all positive parameters")


def _tolerance_cap(factor: Any = 1) -> Any:
    """factor * mu eps_W / (80 W_bar^2 d): the theorem's cap on tau_f and tau_v (factor 1)."""
    return _sym(factor) * MU * EPS_W / (80 * WBAR**2 * D)


def check_tolerance_bound(tau_f_factor: Any = 1, tau_v_factor: Any = 1) -> Finding:
    """Step (2): tau_f, tau_v <= mu eps_W/(80 W_bar^2 d), W_bar >= 2 give the bound
    of (1) <= eps_W/(20 W_bar d) <= eps_W/(10 W_bar d).

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    The bound of (1) increases in tau_f and tau_v (coefficients >= 0),
    so the caps are substituted; W_bar = 2 + s, d = 1 + k with s, k >= 0.

    Parameters
    ----------
    tau_f_factor, tau_v_factor : exact rationals multiplying the caps (1 in
        the theorem; other values to see a wrong tolerance fail)

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    bound = _alpha_bound()
    caps = [(TAU_F, _tolerance_cap(tau_f_factor)), (TAU_V, _tolerance_cap(tau_v_factor))]
    steps = [
        _nonneg(sp.Derivative(bound, TAU_F), r"the bound of (1) increases with $\tau_f$"),
        _nonneg(sp.Derivative(bound, TAU_V), r"and with $\tau_v$: substitute the caps"),
        _nonneg(EPS_W / (20 * WBAR * D) - bound,
                r"$\tau_f, \tau_v$ at their caps $\mu\varepsilon_W/(80\bar W^2 d)$"
                + DOMAIN_NOTE, [*caps, *DOMAIN]),
        _nonneg(_minus(EPS_W / (10 * WBAR * D), EPS_W / (20 * WBAR * D)),
                r"the paper's looser $\varepsilon_W/(10 \bar W d)$", DOMAIN),
    ]
    return _settle("(2) tolerances", steps, "bound of (1) <= eps_W/(20 W_bar d) "
                   "<= eps_W/(10 W_bar d) for every W_bar >= 2, mu, eps_W, d > 0")


def check_entry_error(lipschitz_upper: Any = 5) -> Finding:
    """Step (3): |W_hat_ij - W_ij| <= L |alpha_hat - alpha*| / (a b) <= eps_W / d.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    The lemma (alpha* in [tau_c, 1 - tau_c] by the probe geometry)
    gives the first inequality. The paper's route: |alpha error| <=
    eps_W/(10 W_bar d) and L <= ``lipschitz_upper`` (5, proven by arb); the
    tighter route: |alpha error| <= eps_W/(20 W_bar d) gives L eps_W/(10 d)
    <= L_UPPER eps_W/(10 d) < eps_W/d.

    Parameters
    ----------
    lipschitz_upper : exact rational, the upper bound used for L (5 in the paper)

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    E, r_e, r_l = sp.symbols(r"E r_E r_L", nonnegative=True)
    up = _sym(lipschitz_upper)
    interval = check_L_upper_bound(lipschitz_upper)  # the premise L < lipschitz_upper
    l_up = _sym(L_UPPER)
    err = L_SYM * E / (A_PROBE * B_PROBE)
    steps = [
        _step(1 / (A_PROBE * B_PROBE), 2 * WBAR,
              r"$a = \tfrac12$, $b = 1/\bar W$; the lemma ($\alpha^* \in [\tau_c, 1 - \tau_c]$): "
              r"$|\hat W_{ij} - W_{ij}| = |\operatorname{logit}\operatorname{clip}\hat\alpha - "
              r"\operatorname{logit}\alpha^*|/(ab) \le L E/(ab)$"),
        _nonneg(EPS_W / D - err,
                f"$E = |\\hat\\alpha - \\alpha^*| \\le \\varepsilon_W/(10\\bar W d)$, "
                f"$L \\le {sp.latex(up)}$ (interval arithmetic)",
                [(EPS_W, 10 * WBAR * D * (E + r_e)), (L_SYM, up - r_l), *DOMAIN]),
        _nonneg(L_SYM * EPS_W / (10 * D) - err,
                r"tighter: $E \le \varepsilon_W/(20\bar W d)$ gives $L\varepsilon_W/(10d)$",
                [(EPS_W, 20 * WBAR * D * (E + r_e)), *DOMAIN]),
        _nonneg(EPS_W / D - L_SYM * EPS_W / (10 * D),
                f"$L < {sp.latex(l_up)}$ (interval arithmetic)", [(L_SYM, l_up - r_l), *DOMAIN]),
    ]
    found = _settle("(3) entry error", steps, "|W_hat_ij - W_ij| <= eps_W/d "
                    "(in fact <= L eps_W/(10 d))")
    if not interval.holds:
        return Finding(False, found.instances + 1, f"premise L < {up} fails: "
                       f"{interval.detail}", found.route, found.steps)
    return Finding(found.holds, found.instances + 1, f"{found.detail}; {interval.detail}",
                   found.route, found.steps)


def check_frobenius_error(entry_factor: Any = 1) -> Finding:
    """Step (4): d^2 entries each <= eps_W/d give ||W_hat - W||_F <= eps_W.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    Parameters
    ----------
    entry_factor : multiplies the entry bound eps_W/d (to see a wrong one fail)

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    e, r = sp.symbols("e r", nonnegative=True)
    k = _sym(entry_factor)
    steps = [
        _nonneg((k * EPS_W / D) ** 2 - e**2, r"$0 \le e = |\hat W_{ij} - W_{ij}| \le "
                r"\varepsilon_W/d$: squares are monotone on $[0, \infty)$",
                [(EPS_W, D * (e + r) / k), *DOMAIN]),
        _nonneg(_minus(EPS_W**2, sp.Mul(D**2, (k * EPS_W / D) ** 2, evaluate=False)),
                r"sum over the $d^2$ entries; $\sqrt{\cdot}$ is increasing", DOMAIN),
    ]
    return _settle("(4) Frobenius", steps, "||W_hat - W||_F^2 <= d^2 (eps_W/d)^2 = eps_W^2")


def check_v_error(tau_v_factor: Any = 1) -> Finding:
    """Step (5): ||v_hat - v||_2 <= sqrt(d) tau_v <= eps_v when tau_v <= eps_v/sqrt(d).

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    Parameters
    ----------
    tau_v_factor : multiplies the cap eps_v/sqrt(d) (to see a wrong one fail)

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.
    """
    delta, r, T = sp.symbols(r"\delta r T", nonnegative=True)
    k = _sym(tau_v_factor)
    steps = [
        _nonneg(TAU_V**2 - delta**2, r"each $\delta = |\hat v_i - v_i| \le \tau_v$; summing "
                r"$d$ squares, $\|\hat v - v\|_2^2 \le d\tau_v^2$", [(TAU_V, delta + r)]),
        _nonneg(EPS_V**2 - D * TAU_V**2, r"$T = \sqrt d\,\tau_v \le \varepsilon_v$ "
                r"(the cap), so $d\tau_v^2 = T^2 \le \varepsilon_v^2$",
                [(TAU_V, T / sp.sqrt(D)), (EPS_V, (T + r) / k), *DOMAIN]),
    ]
    return _settle("(5) v error", steps, "||v_hat - v||_2^2 <= d tau_v^2 <= eps_v^2")


def error_chain(tau_f_factor: Any = 1, tau_v_factor: Any = 1,
                lipschitz_upper: Any = 5) -> dict[str, Finding]:
    """Steps (1)-(5) of the error chain of noisy_oracle, each a :class:`Finding`.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    Parameters
    ----------
    tau_f_factor, tau_v_factor, lipschitz_upper : see the single steps

    Returns
    -------
    dict of str to Finding
        Keys ``alpha_error``, ``tolerances``, ``entry_error``, ``frobenius``,
        ``v_error``.
    """
    return {
        "alpha_error": check_alpha_error_bound(),
        "tolerances": check_tolerance_bound(tau_f_factor, tau_v_factor),
        "entry_error": check_entry_error(lipschitz_upper),
        "frobenius": check_frobenius_error(),
        "v_error": check_v_error(tau_v_factor),
    }


@recorded
def check_error_chain(tau_f_factor: Any = 1, tau_v_factor: Any = 1,
                      lipschitz_upper: Any = 5) -> Finding:
    """The whole chain (1)-(5): holds iff every step holds.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    The route is ``grid`` if any step needed the grid, else symbolic.

    Parameters
    ----------
    tau_f_factor, tau_v_factor, lipschitz_upper : see the single steps

    Returns
    -------
    Finding
        ``holds``, ``instances``, ``detail`` (as :class:`~exactattn.claims.Outcome`),
        ``route`` and the symbolic ``steps``.

    >>> check_error_chain().holds, check_error_chain(tau_f_factor=10).holds
    (True, False)
    """
    parts = error_chain(tau_f_factor, tau_v_factor, lipschitz_upper)
    instances = sum(f.instances for f in parts.values())
    steps = tuple(s for f in parts.values() for s in f.steps)
    routes = {f.route for f in parts.values()}
    route = ROUTE_GRID if ROUTE_GRID in routes else ROUTE_SYMBOLIC
    for name, f in parts.items():
        if not f.holds:
            return Finding(False, instances, f"{name}: {f.detail}", route, steps)
    return Finding(True, instances, "; ".join(f"{k}: {f.route}" for k, f in parts.items()),
                   route, steps)


# -- the error chain on exact instances --------------------------------------------------
def _noisy_instances(seeds: Iterable[int] = (0, 1), dims: Iterable[int] = (1, 2, 3),
                     ) -> list[Instance]:
    """(name, W_bar, W, v): ||W||_F <= W_bar, ||v||_2 <= 1, v_i != 0 (margin min |v_i|)."""
    out: list[Instance] = []
    for name, wbar, W, _ in probe_instances(seeds, dims, (2, 3)):
        d = len(W)
        rng = np.random.default_rng([len(out), d])
        r = math.isqrt(d - 1) + 1  # r >= sqrt(d), so ||v||_2 <= 1
        v = [fmpq(int(rng.integers(2, 5)), 4 * r) * (1 if rng.integers(2) else -1)
             for _ in range(d)]
        out.append((name, wbar, W, v))
    return out


@recorded
def check_error_chain_on_instances(tau_f_factor: Any = 1, tau_v_factor: Any = 1,
                                   seeds: Iterable[int] = (0,), dims: Iterable[int] = (1, 2, 3),
                                   eps: Sequence[tuple[Any, Any]] = ((1, 1), (Fraction(1, 10),
                                                                             Fraction(1, 2))),
                                   ) -> Finding:
    """The chain on exact instances with adversarial answers, the theorem's tolerances.

    Label ``noisy_oracle``, paper Thm 6.2 (v1) = Thm 6.1 (v2); paper.md §5.

    The algorithm's arithmetic is written again here (alpha_hat, the clip), not
    the shipped learner: no claim uses this; the claim ``noisy_oracle.error_chain``
    runs :func:`exactattn.checks.noisy_oracle.learner_error_chain` on the learner.

    For every instance (margin mu = min |v_i|), tolerances tau_f = mu
    eps_W / (80 W_bar^2 d), tau_v = min(mu/2, tau_f, eps_v/ceil(sqrt d))
    (times the factors), every sign pattern of v_hat = v +- tau_v and every
    sign of y = f +- tau_f (f exact in EXP): |alpha_hat - alpha*| <= the
    bound of (1) and <= eps_W/(20 W_bar d) (exact EXP comparisons);
    |W_hat_ij - W_ij| <= L eps_W/(10 d) and sum_ij max err^2 < eps_W^2
    (arb balls at rising precision for logit(clip(alpha_hat)), which leaves
    EXP); ||v_hat - v||_2^2 <= eps_v^2 (QQ).

    Parameters
    ----------
    tau_f_factor, tau_v_factor : exact rationals multiplying the tolerances
    seeds, dims : the instances
    eps : pairs (eps_W, eps_v)

    Returns
    -------
    Finding
        route ``exact (EXP)``; instances = adversarial answers checked.
    """
    kf, kv = _fmpq(tau_f_factor), _fmpq(tau_v_factor)
    checked = 0
    for name, wbar, W, v in _noisy_instances(seeds, dims):
        d = len(v)
        mu = min(abs(x) for x in v)
        b = 1 / wbar
        for eps_w_raw, eps_v_raw in eps:
            eps_w, eps_v = _fmpq(eps_w_raw), _fmpq(eps_v_raw)
            cap = mu * eps_w / (80 * wbar * wbar * d)
            tau_f = kf * cap
            tau_v = kv * min(mu / 2, cap, eps_v / (math.isqrt(d - 1) + 1))
            where = f"{name}, eps_W = {eps_w}, eps_v = {eps_v}"
            if d * tau_v * tau_v > eps_v * eps_v:
                return Finding(False, checked, f"{where}: ||v_hat - v||_2 > eps_v", ROUTE_EXACT)
            bound = 2 * wbar / mu * tau_f + (wbar + 2) / mu * tau_v
            alpha_cap = eps_w / (20 * wbar * d)
            entry_cap = L_EXACT * EXP(eps_w / (10 * d))
            for signs in product((1, -1), repeat=d):
                v_hat = [x + sg * tau_v for x, sg in zip(v, signs, strict=True)]
                worst: list[arb] = []
                for i in range(d):
                    for j in range(d):
                        alpha = EXP.sigmoid(EXP(HALF * b * W[i][j]))
                        f = EXP(HALF * v[j]) + alpha * EXP(b * v[i])
                        errs = []
                        for sf in (1, -1):
                            checked += 1
                            if v_hat[i] == 0:
                                return Finding(False, checked, f"{where}: v_hat_{i} = 0, "
                                               "alpha_hat undefined", ROUTE_EXACT)
                            y = f + EXP(sf * tau_f)
                            alpha_hat = (y - EXP(HALF * v_hat[j])) / EXP(b * v_hat[i])
                            gap = abs(alpha_hat - alpha)
                            at = f"{where}, v signs {signs}, y sign {sf}, (i, j) = ({i}, {j})"
                            if not gap <= EXP(bound):
                                return Finding(False, checked, f"{at}: |alpha_hat - alpha*| "
                                               "exceeds the bound of (1)", ROUTE_EXACT)
                            if not gap <= EXP(alpha_cap):
                                return Finding(False, checked, f"{at}: |alpha_hat - alpha*| > "
                                               "eps_W/(20 W_bar d)", ROUTE_EXACT)
                            ball = _entry_error_ball(alpha_hat, W[i][j], b, entry_cap)
                            if ball is None:
                                return Finding(False, checked, f"{at}: |W_hat_ij - W_ij| > "
                                               "L eps_W/(10 d)", ROUTE_EXACT)
                            errs.append(ball)
                        worst.append(errs[0].max(errs[1]))
                with ctx.workprec(256):
                    total = sum((x * x for x in worst), arb(0))
                    if not total < arb(eps_w * eps_w):
                        return Finding(False, checked, f"{where}, v signs {signs}: "
                                       f"||W_hat - W||_F^2 in {total.str(8)} not < eps_W^2",
                                       ROUTE_EXACT)
    return Finding(True, checked, "every adversarial answer: alpha, entry, Frobenius and v "
                   "errors within the theorem's bounds", ROUTE_EXACT)


def _entry_error_ball(alpha_hat: Any, w: fmpq, b: fmpq, cap: Any) -> arb | None:
    """A ball for |W_hat_ij - W_ij| proven < cap (EXP), or None if proven > cap."""
    if alpha_hat <= TAU_C or alpha_hat >= 1 - TAU_C:  # logit(clip) = -+1/2, exactly
        w_hat = (-HALF if alpha_hat <= TAU_C else HALF) / (HALF * b)
        exact_err = abs(EXP(w_hat - w))
        return EXP.to_arb(exact_err, START_PREC) if exact_err <= cap else None
    prec = START_PREC
    while prec <= MAX_PREC:
        with ctx.workprec(prec):
            logit = EXP.to_arb(alpha_hat / (1 - alpha_hat), prec).log()
            err = abs(logit / arb(HALF * b) - arb(w))
            margin = EXP.to_arb(cap, prec) - err
            if margin > 0:
                return err
            if margin < 0:
                return None
        prec *= 2
    raise RuntimeError(f"entry error undecided at {MAX_PREC} bits")  # pragma: no cover
