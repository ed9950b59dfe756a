r"""The proof of the adapted noisy learner's bound, as checked steps (SymPy + exact rationals).

Label ``noisy_oracle``, variant ``"adapted"`` (beyond paper Thm 6.2 v1 / 6.1
v2; the learner is :mod:`exactattn.learners.noisy_adapted`, whose docstring
states the theorem). Three kinds of step:

* :class:`~exactattn.symbolic.single_head.Step`: an identity ``lhs = rhs``
  between SymPy expressions in symbolic parameters, checked by
  ``cancel``/``simplify`` of the difference to 0.
* :class:`Bound`: an inequality ``lhs <= rhs``. Every hypothesis ``x <= X``
  is written as a substitution ``x = X / (1 + h)`` and every ``x >= X`` as
  ``x = X (1 + h)`` with a new symbol ``h >= 0``, so all remaining symbols
  range over the positive (or nonnegative) reals. The slack ``rhs - lhs`` is
  then brought to one fraction P / Q; if P and Q are polynomials with only
  nonnegative coefficients and Q has a monomial in the positive symbols alone,
  the slack is >= 0 everywhere: a proof (``method = "symbolic"``). Only if
  that certificate fails is the slack evaluated on an exact rational grid
  (``method = "grid"``: evidence, not a proof; reported as such). In the
  shipped proof every inequality is certified symbolically.
* two facts decided exactly outside SymPy: L = 1/(tau_c (1 - tau_c)) <= L_UPPER
  in the exponential field EXP (``method = "exact (EXP)"``), and
  18 L_UPPER <= 80 in QQ.

Outside the steps, :func:`check_adapted_bound` also checks the implementation
on exact rational instances: the tolerances of
:func:`~exactattn.learners.noisy_adapted.adapted_tolerances` on a grid of
(d, W_bound, nu, eps_w, eps_v) meet the guarantees, and the probes of
:func:`~exactattn.learners.noisy_adapted.adapted_probes` (sparse and dense
v_hat) satisfy ||u_l|| <= 2/3, u_l . v_hat >= ||v_hat||^2 / (3 rho), the
explicit Sherman–Morrison inverse, its row norms <= 9/2 and
||Z^{-1}||_2 < K_d (K_d^2 I - Z^{-T} Z^{-1} positive definite, by exact
leading principal minors).

Facts used but not re-derived here (standard): the triangle and
Cauchy–Schwarz inequalities; ||x y^T||_2 = ||x|| ||y||; ||A B||_F <=
||A||_2 ||B||_F; the clipped-inverse lemma ``clipped_inverse`` (whose
derivative bound is the step ``p (1 - p) - tau_c (1 - tau_c) = (p - tau_c)
(1 - tau_c - p)`` below).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import sympy as sp
from flint import fmpq, fmpq_mat

from ..fields import EXP, rational
from ..learners.noisy import L_UPPER, TAU_C
from ..learners.noisy_adapted import (
    RHO_FACTOR,
    ROW_BOUND,
    TAU_F_DENOMINATOR,
    adapted_error_bounds,
    adapted_probes,
    adapted_tolerances,
    ceil_sqrt,
    probe_inverse,
    z_inverse_bound,
)
from .steps import NOT_VERIFIED, NamedStep, Step, recorded

__all__ = ["Bound", "identities", "bounds", "derivation", "nonnegative_certificate",
           "grid_nonnegative", "check_adapted_bound", "probe_instances", "check_probes"]


@dataclass(frozen=True)
class Bound:
    """One checked inequality ``lhs <= rhs`` under the substitutions of its hypotheses."""

    lhs: sp.Expr
    rhs: sp.Expr
    why: str  # LaTeX text mode, math in $...$
    method: str  # "symbolic" (a proof), "grid" (exact rational samples), "exact (EXP)"
    verified: bool

    relation = "<="

    @property
    def status(self) -> str:
        if not self.verified:
            return NOT_VERIFIED
        return "symbolic" if self.method == "symbolic" else "exact instances"

    def latex(self) -> str:
        return f"{sp.latex(self.lhs)} &\\le {sp.latex(self.rhs)}"


def _pos(name: str) -> sp.Symbol:
    return sp.Symbol(name, positive=True)


def _h(k: int) -> sp.Symbol:
    return sp.Symbol(f"h_{k}", nonnegative=True)


def _identity(lhs: Any, rhs: Any, why: str) -> Step:
    """An identity (scalar or matrix), checked entrywise by cancel, then simplify."""
    L, R = sp.Matrix([lhs]) if not isinstance(lhs, sp.MatrixBase) else lhs, \
        sp.Matrix([rhs]) if not isinstance(rhs, sp.MatrixBase) else rhs
    ok = L.shape == R.shape
    if ok:
        for x, y in zip(L, R, strict=True):
            diff = sp.cancel(sp.expand(x - y))
            if diff != 0 and sp.simplify(diff) != 0:
                ok = False
                break
    return Step(lhs, rhs, why, ok)


def nonnegative_certificate(expr: Any, positive: Sequence[sp.Symbol],
                            nonnegative: Sequence[sp.Symbol]) -> bool:
    """True if ``expr`` = P/Q with P, Q of nonnegative coefficients, Q > 0 (a proof of >= 0).

    The free symbols of ``expr`` must be among ``positive`` (> 0) and
    ``nonnegative`` (>= 0). Q > 0 needs a monomial of Q in the positive
    symbols alone (a positive constant counts). Signs of P and Q are flipped
    together if both have only nonpositive coefficients.

    >>> x, h = sp.Symbol("x", positive=True), sp.Symbol("h", nonnegative=True)
    >>> nonnegative_certificate(x - h, [x], [h])      # true for h <= x only: no certificate
    False
    >>> nonnegative_certificate(x / (x + h) - x / (x + 2 * h), [x], [h])
    True
    """
    gens = [*positive, *nonnegative]
    if not sp.sympify(expr).free_symbols <= set(gens):
        return False
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    if num == 0:
        return True
    try:
        P = sp.Poly(sp.expand(num), *gens, domain="QQ")
        Q = sp.Poly(sp.expand(den), *gens, domain="QQ")
    except (sp.PolynomialError, sp.CoercionFailed):
        return False
    pc, qc = [sp.Rational(c) for c in P.coeffs()], [sp.Rational(c) for c in Q.coeffs()]
    if all(c <= 0 for c in qc):
        pc, qc = [-c for c in pc], [-c for c in qc]
    if not all(c >= 0 for c in qc) or not all(c >= 0 for c in pc):
        return False
    npos = len(positive)
    return any(c > 0 and all(e == 0 for e in mono[npos:])
               for mono, c in zip(Q.monoms(), qc, strict=True))


#: the values of the exact rational grid (fallback only)
GRID_POSITIVE = (Fraction(1, 7), Fraction(1, 2), Fraction(1), Fraction(3), Fraction(50))
GRID_NONNEGATIVE = (Fraction(0), Fraction(1, 3), Fraction(2), Fraction(40))
GRID_SAMPLES = 400


def grid_nonnegative(expr: Any, positive: Sequence[sp.Symbol],
                     nonnegative: Sequence[sp.Symbol]) -> tuple[bool, int]:
    """(slack >= 0 at every point, points): exact rational evaluation on a grid.

    The full product grid when it has at most GRID_SAMPLES points, else the
    corner with every nonnegative symbol 0 for each positive value, plus a
    seeded sample. Evidence, not a proof.
    """
    gens = [*positive, *nonnegative]
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    P = sp.Poly(sp.expand(num), *gens, domain="QQ")
    Q = sp.Poly(sp.expand(den), *gens, domain="QQ")
    terms_p = [(m, Fraction(int(c.p), int(c.q))) for m, c in P.terms()]
    terms_q = [(m, Fraction(int(c.p), int(c.q))) for m, c in Q.terms()]

    def ev(terms: list[tuple[tuple[int, ...], Fraction]], point: Sequence[Fraction]) -> Fraction:
        total = Fraction(0)
        for mono, c in terms:
            term = c
            for x, e in zip(point, mono, strict=True):
                term *= x**e
            total += term
        return total

    choices = [GRID_POSITIVE] * len(positive) + [GRID_NONNEGATIVE] * len(nonnegative)
    size = 1
    for c in choices:
        size *= len(c)
    points: list[tuple[Fraction, ...]]
    if size <= GRID_SAMPLES:
        points = list(itertools.product(*choices))
    else:
        rng = random.Random(0)
        points = [tuple([p] * len(positive) + [Fraction(0)] * len(nonnegative))
                  for p in GRID_POSITIVE]
        points += [tuple(rng.choice(c) for c in choices) for _ in range(GRID_SAMPLES)]
    for point in points:
        q = ev(terms_q, point)
        if q == 0 or ev(terms_p, point) / q < 0:
            return False, len(points)
    return True, len(points)


def _bound(lhs: Any, rhs: Any, subs: dict[sp.Symbol, Any], why: str) -> Bound:
    """``lhs <= rhs`` after the substitutions (hypotheses, applied in order), certified or
    grid-checked."""
    slack = sp.sympify(rhs - lhs)
    for old, new in subs.items():  # in order: a substitution may introduce a later symbol
        slack = slack.subs(old, new)
    free = sorted(slack.free_symbols, key=lambda s: s.name)
    positive = [s for s in free if s.is_positive]
    nonnegative = [s for s in free if not s.is_positive]
    if nonnegative_certificate(slack, positive, nonnegative):
        return Bound(lhs, rhs, why + r" (symbolic: slack $= P/Q$, nonnegative coefficients)",
                     "symbolic", True)
    ok, points = grid_nonnegative(slack, positive, nonnegative)
    return Bound(lhs, rhs, why + f" (grid: {points} exact rational points, not a proof)",
                 "grid", ok)


# -- the symbols of the proof -----------------------------------------------------
a, b = _pos("a"), _pos("b")
Wb = _pos(r"\bar{W}")
nu, eps_w, eps_v = _pos(r"\nu"), _pos(r"\varepsilon_W"), _pos(r"\varepsilon_v")
tau_f, tau_v = _pos(r"\tau_f"), _pos(r"\tau_v")
delta, rho, q, S = _pos(r"\delta"), _pos(r"\rho"), _pos(r"\|\hat v\|"), _pos("S")
d, r, K, L = _pos("d"), _pos("r"), _pos("K_d"), _pos("L")
n_u, n_w, n_1 = _pos(r"\|u_l\|"), _pos(r"\|w\|"), _pos(r"\|w\|_1")
alpha, c, c_hat, eta = _pos(r"\alpha^*"), _pos("c"), _pos(r"\hat c"), sp.Symbol(r"\eta", real=True)
ROW_BOUND_SYM = sp.Rational(int(ROW_BOUND.p), int(ROW_BOUND.q))


@recorded
@lru_cache(maxsize=4)
def identities(dim: int = 3) -> tuple[Step, ...]:
    """The identities of the proof, for symbolic parameters in dimension ``dim``.

    >>> all(s.verified for s in identities(2))
    True
    """
    steps: list[Step] = []
    Wm = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"W_{{{i + 1}{j + 1}}}", real=True))
    v = sp.Matrix(dim, 1, lambda i, _: sp.Symbol(f"v_{i + 1}", real=True))
    u = sp.Matrix(dim, 1, lambda i, _: sp.Symbol(f"u_{i + 1}", real=True))
    A, vj, vhj = sp.symbols(r"A v_j \hat{v}_j", real=True)
    # the probe X = [(b u + a e_j)^T; (a e_j)^T]: score gap and answer
    for j in range(dim):
        e = sp.Matrix(dim, 1, lambda i, _, j=j: 1 if i == j else 0)
        x1, x2 = b * u + a * e, a * e
        steps.append(_identity((x1.T * Wm * x2)[0] - (x2.T * Wm * x2)[0],
                               a * b * (u.T * Wm[:, j])[0],
                               f"score gap of $[(b u + a e_{j + 1})^\\top; (a e_{j + 1})^\\top]$"
                               f" is $a b\\, u^\\top W e_{j + 1}$"))
        steps.append(_identity((x2.T * v)[0] + A * ((x1.T * v)[0] - (x2.T * v)[0]),
                               a * v[j] + A * b * (u.T * v)[0],
                               r"answer $x_2^\top v + \alpha^* (x_1^\top v - x_2^\top v)$ "
                               r"$= a v_j + \alpha^* b\, u^\top v$"))
    # the error of alpha_hat, exactly
    ans = a * vj + alpha * c + eta
    steps.append(_identity((ans - a * vhj) / c_hat - alpha,
                           (alpha * (c - c_hat) + eta + a * (vj - vhj)) / c_hat,
                           r"$\hat\alpha - \alpha^*$ with $y = a v_j + \alpha^* c + \eta$, "
                           r"$c = b u_l^\top v$, $\hat c = b u_l^\top \hat v$"))
    # the probes: u_l . v_hat, and Z^{-1} by Sherman-Morrison for every sign pattern
    vh = sp.Matrix(dim, 1, lambda i, _: sp.Symbol(f"\\hat v_{i + 1}", real=True))
    s_l = sp.Symbol("s_l", real=True)
    for l in range(dim):
        e = sp.Matrix(dim, 1, lambda i, _, l=l: 1 if i == l else 0)
        ul = (vh / rho + s_l * e) / 3
        steps.append(_identity((ul.T * vh)[0], ((vh.T * vh)[0] / rho + s_l * vh[l]) / 3,
                               f"$u_{l + 1}^\\top \\hat v = (\\|\\hat v\\|^2/\\rho + "
                               f"s_{l + 1} \\hat v_{l + 1})/3$, and $s_{l + 1} \\hat v_{l + 1} = "
                               f"|\\hat v_{l + 1}| \\ge 0$"))
    m = [sp.Symbol(f"m_{k + 1}", nonnegative=True) for k in range(dim)]  # |w_k|
    for signs in itertools.product((1, -1), repeat=dim):
        D = sp.diag(*signs)
        w = sp.Matrix(dim, 1, lambda k, _, signs=signs: signs[k] * m[k])
        one = sp.ones(dim, 1)
        absw = sp.Matrix(dim, 1, lambda k, _: m[k])
        s = sp.Matrix(dim, 1, lambda k, _, signs=signs: signs[k])
        Z = (D + one * w.T) / 3
        Zinv = 3 * (D - s * absw.T / (1 + sum(m)))
        checked = _identity(Z * Zinv, sp.eye(dim),
                            f"Sherman--Morrison, $s = {list(signs)}$: "
                            r"$Z^{-1} = 3(\mathrm{diag}(s) - s|w|^\top/(1 + \|w\|_1))$")
        Zs, Zis = sp.MatrixSymbol("Z", dim, dim), sp.MatrixSymbol("Y", dim, dim)
        steps.append(NamedStep(checked.lhs, checked.rhs, checked.why, checked.verified,
                               sp.MatMul(Zs, Zis), sp.Identity(dim), ((Zs, Z), (Zis, Zinv))))
    # the clipped inverse: logit' = 1/(p (1 - p)), and p(1-p) >= tau_c (1 - tau_c) inside
    p, tc = sp.symbols(r"p \tau_c", positive=True)
    steps.append(_identity(sp.diff(sp.log(p / (1 - p)), p), 1 / (p * (1 - p)),
                           r"$\mathrm{logit}'(p) = 1/(p(1-p))$"))
    steps.append(_identity(p * (1 - p) - tc * (1 - tc), (p - tc) * (1 - tc - p),
                           r"on $[\tau_c, 1 - \tau_c]$ both factors are $\ge 0$, so "
                           r"$\mathrm{logit}' \le L = 1/(\tau_c(1 - \tau_c))$ "
                           r"(\texttt{clipped\_inverse})"))
    # algebra of the bound
    E_pre = (sp.Rational(2, 3) * b * delta + tau_f + a * tau_v) * 3 * rho / (b * S)
    steps.append(_identity(E_pre.subs({a: sp.Rational(1, 2), b: 1 / Wb}),
                           (2 * delta + 3 * Wb * tau_f + sp.Rational(3, 2) * Wb * tau_v) * rho / S,
                           r"$(\tfrac23 b\delta + \tau_f + a\tau_v)\,3\rho/(b\|\hat v\|^2)$ "
                           r"with $a = 1/2$, $b = 1/\bar W$, $S = \|\hat v\|^2$"))
    steps.append(_identity((2 * r + sp.Rational(3, 2) * Wb) * 6 * Wb * tau_f / (4 * r + 3 * Wb),
                           3 * Wb * tau_f,
                           r"the third term of $\tau_v$: $(2r + \tfrac32 \bar W)\tau_v \le "
                           r"3 \bar W \tau_f$"))
    return tuple(steps)


@recorded
def bounds(tau_f_factor: Any = 1, tau_v_factor: Any = 1) -> tuple[Bound, ...]:
    """The inequalities of the proof, each under its hypotheses as substitutions.

    ``tau_f_factor`` and ``tau_v_factor`` multiply the theorem's tolerances
    (1 = the theorem); a factor that is too large makes a step fail, which
    shows that the steps can fail.

    >>> sorted({s.method for s in bounds()}), all(s.verified for s in bounds())
    (['exact (EXP)', 'exact (QQ)', 'symbolic'], True)
    >>> [s.verified for s in bounds(tau_f_factor=2)].count(False)
    1
    """
    cf, cv = sp.Rational(str(rational(tau_f_factor))), sp.Rational(str(rational(tau_v_factor)))
    h = [_h(k) for k in range(8)]
    half, third = sp.Rational(1, 2), sp.Rational(1, 3)
    LU = sp.Rational(int(L_UPPER.p), int(L_UPPER.q))
    sd = _pos(r"\sqrt d")
    Wf = _pos(r"\|W e_j\|")
    ev, m_l = _pos(r"\|v - \hat v\|"), sp.Symbol(r"|\hat v_l|", nonnegative=True)
    N, Dn = _pos("N"), _pos("D")
    dc, dv, abs_eta = _pos(r"|c - \hat c|"), _pos(r"|v_j - \hat v_j|"), _pos(r"|\eta|")
    R = _pos(r"\rho/S")
    out = [
        _bound((n_w + 1) / 3, sp.Rational(2, 3), {n_w: 1 / (1 + h[0])},
               r"$\|u_l\| \le (\|w\| + 1)/3$, $\|w\| = \|\hat v\|/\rho \le 1$"),
        _bound(b * n_u + a, 1, {b: 1 / (2 + h[0]), n_u: sp.Rational(2, 3) / (1 + h[1]), a: half},
               r"token norm $\le b\|u_l\| + a$ with $\bar W = 2 + h_0 \ge 2$, $a = 1/2$"),
        _bound(a * b * n_u * Wf, third,
               {a: half, b: 1 / Wb, n_u: sp.Rational(2, 3) / (1 + h[0]), Wf: Wb / (1 + h[1])},
               r"$|a b\, u_l^\top W e_j| \le a b \|u_l\| \|W\|_F \le 1/3 < 1/2$, so "
               r"$\alpha^* \in [\tau_c, 1 - \tau_c]$"),
        _bound(sd * tau_v, eps_v, {sd: r / (1 + h[0]), tau_v: cv * eps_v / r / (1 + h[1])},
               r"$\|\hat v - v\|_2 \le \sqrt d\, \tau_v \le r \tau_v \le \varepsilon_v$"),
        _bound(r * tau_v, nu / 4, {tau_v: cv * nu / (4 * r) / (1 + h[0])},
               r"$\delta := r\tau_v \le \nu/4$"),
        _bound(b * n_u * ev, sp.Rational(2, 3) * b * delta,
               {n_u: sp.Rational(2, 3) / (1 + h[0]), ev: delta / (1 + h[1])},
               r"$|c - \hat c| = b |u_l^\top (v - \hat v)| \le b\|u_l\|\|v - \hat v\|$ "
               r"(Cauchy--Schwarz)"),
        _bound(b * S / (3 * rho), b * (S / rho + m_l) / 3, {},
               r"$\hat c = b(\|\hat v\|^2/\rho + |\hat v_l|)/3$"),
        _bound(alpha * dc + abs_eta + a * dv, sp.Rational(2, 3) * b * delta + tau_f + a * tau_v,
               {alpha: 1 / (1 + h[0]), dc: sp.Rational(2, 3) * b * delta / (1 + h[1]),
                abs_eta: tau_f / (1 + h[2]), dv: tau_v / (1 + h[3])},
               r"numerator (triangle inequality): $\alpha^* \le 1$, "
               r"$|c - \hat c| \le \tfrac23 b\delta$, $|\eta| \le \tau_f$, "
               r"$|v_j - \hat v_j| \le \tau_v$"),
        _bound(N / Dn, (sp.Rational(2, 3) * b * delta + tau_f + a * tau_v) * 3 * rho / (b * S),
               {N: (sp.Rational(2, 3) * b * delta + tau_f + a * tau_v) / (1 + h[0]),
                Dn: b * S / (3 * rho) * (1 + h[1])},
               r"$|\hat\alpha - \alpha^*| \le$ numerator bound / denominator bound"),
        _bound(3 * nu / 4, q, {q: (nu - delta) * (1 + h[0]), delta: nu / 4 / (1 + h[1])},
               r"checked: $\|\hat v\| \ge \nu - \delta$; and $\delta \le \nu/4$"),
        _bound(rho / S, 3 / (2 * nu),
               {S: q**2, rho: sp.Rational(9, 8) * q / (1 + h[0]), q: 3 * nu / 4 * (1 + h[1])},
               r"$\|\hat v\| \le \rho \le \tfrac98\|\hat v\|$ and $\|\hat v\| \ge 3\nu/4$"),
        _bound((2 * delta + 3 * Wb * tau_f + sp.Rational(3, 2) * Wb * tau_v) * R,
               3 / (2 * nu) * (2 * r * tau_v + 3 * Wb * tau_f + sp.Rational(3, 2) * Wb * tau_v),
               {R: 3 / (2 * nu) / (1 + h[0]), delta: r * tau_v / (1 + h[1])},
               r"$|\hat\alpha - \alpha^*| \le E_\alpha$"),
        _bound(3 / (2 * nu) * (2 * r * tau_v + 3 * Wb * tau_f + sp.Rational(3, 2) * Wb * tau_v),
               9 * Wb * tau_f / nu,
               {tau_v: cv * 6 * Wb * tau_f / (4 * r + 3 * Wb) / (1 + h[0])},
               r"$E_\alpha \le 9\bar W\tau_f/\nu$ by the third term of $\tau_v$"),
        _bound(3 * (1 + sd * n_w / (1 + n_1)), 3 + sp.Rational(3, 2) * r,
               {sd: r / (1 + h[0]), n_1: n_w * (1 + h[1]), n_w: 1 / (1 + h[2])},
               r"$\|Z^{-1}\|_2 \le 3(\|\mathrm{diag}(s)\| + \|s\|\,\|w\|/(1 + \|w\|_1)) "
               r"\le K_d$ ($\|w\|_1 \ge \|w\| \le 1$, $\sqrt d \le r$)"),
        _bound(3 * (1 + n_w / (1 + n_1)), ROW_BOUND_SYM,
               {n_1: n_w * (1 + h[0]), n_w: 1 / (1 + h[1])},
               r"every row of $Z^{-1}$ has norm $\le 3(1 + \|w\|/(1 + \|w\|_1)) \le 9/2$"),
        _bound(K * d * 2 * Wb * L * 9 * Wb * tau_f / nu, eps_w,
               {tau_f: cf * nu * eps_w / (TAU_F_DENOMINATOR * K * d * Wb**2),
                L: LU / (1 + h[0])},
               r"$\|\hat W - W\|_F \le K_d\, d\, e_t$, $e_t = 2\bar W L E_\alpha$; the "
               r"choice of $\tau_f$ and $L \le L_{\mathrm{upper}}$"),
    ]
    exact_L = bool(1 / (TAU_C * (1 - TAU_C)) <= EXP(L_UPPER))
    out.append(Bound(L, LU, r"$L = 1/(\tau_c(1 - \tau_c))$, decided exactly in EXP",
                     "exact (EXP)", exact_L))
    out.append(Bound(18 * LU, sp.Integer(TAU_F_DENOMINATOR), "rational comparison",
                     "exact (QQ)", bool(18 * L_UPPER <= TAU_F_DENOMINATOR)))
    return tuple(out)



def derivation(dim: int = 3) -> list[Step | Bound]:
    """Every step of the proof: the identities, then the inequalities."""
    return [*identities(dim), *bounds()]


# -- exact rational instances -----------------------------------------------------
def probe_instances() -> list[list[fmpq]]:
    """Estimates v_hat for the probe checks: sparse, dense, signed, tiny, d = 1..5."""
    out: list[list[fmpq]] = []
    for dim in range(1, 6):
        e1 = [fmpq(0)] * dim
        e1[0] = fmpq(1, 2)
        out.append(e1)
        out.append([fmpq((-1) ** k * (k + 1), 7) for k in range(dim)])
        tiny = [fmpq(0)] * dim
        tiny[-1] = fmpq(-1, 1000)
        out.append(tiny)
        out.append([fmpq(1, dim + 1)] * dim)
        if dim > 1:
            mixed = [fmpq(0)] * dim
            mixed[0], mixed[1] = fmpq(3, 5), fmpq(-4, 5)
            out.append(mixed)
    return out


def _positive_definite(M: fmpq_mat) -> bool:
    n = M.nrows()
    for k in range(1, n + 1):
        minor = fmpq_mat(k, k, [M[i, j] for i in range(k) for j in range(k)])
        if not minor.det() > 0:
            return False
    return True


def check_probes(v_hat: Sequence[Any]) -> str | None:
    """None if the adapted probes of ``v_hat`` (nonzero) have every proven property, else why not.

    rho in [||v_hat||, 9/8 ||v_hat||]; ||u_l|| <= 2/3; u_l . v_hat >= ||v_hat||^2 / (3 rho);
    Z times the Sherman–Morrison inverse is I; rows of Z^{-1} of norm <= 9/2;
    K_d^2 I - Z^{-T} Z^{-1} positive definite (so ||Z^{-1}||_2 < K_d). All exact.

    >>> check_probes([fmpq(1, 2), 0, 0]) is None
    True
    """
    v_hat = [rational(x) for x in v_hat]
    dim = len(v_hat)
    rho, s, U = adapted_probes(v_hat)
    S = sum((x * x for x in v_hat), fmpq(0))
    if not (rho * rho >= S and rho * rho <= RHO_FACTOR * RHO_FACTOR * S):
        return f"v_hat = {v_hat}: rho = {rho} is not in [||v_hat||, 9/8 ||v_hat||]"
    for l in range(dim):
        if sum(x * x for x in U[l]) > fmpq(4, 9):
            return f"v_hat = {v_hat}: ||u_{l}|| > 2/3"
        if sum((x * y for x, y in zip(U[l], v_hat, strict=True)), fmpq(0)) < S / (3 * rho):
            return f"v_hat = {v_hat}: u_{l} . v_hat < ||v_hat||^2 / (3 rho)"
    Z = fmpq_mat(dim, dim, [x for row in U for x in row])
    Zi = probe_inverse(v_hat, rho, s)
    Zinv = fmpq_mat(dim, dim, [x for row in Zi for x in row])
    if Z * Zinv != fmpq_mat(dim, dim, [int(i == j) for i in range(dim) for j in range(dim)]):
        return f"v_hat = {v_hat}: the Sherman-Morrison inverse is wrong"
    for i in range(dim):
        if sum(x * x for x in Zi[i]) > ROW_BOUND * ROW_BOUND:
            return f"v_hat = {v_hat}: row {i} of Z^-1 has norm > 9/2"
    K = z_inverse_bound(dim)
    G = Zinv.transpose() * Zinv
    eye = fmpq_mat(dim, dim, [int(i == j) for i in range(dim) for j in range(dim)])
    if not _positive_definite(eye * (K * K) - G):
        return f"v_hat = {v_hat}: ||Z^-1||_2 >= K_d = {K}"
    return None


def _grid_tolerances(tau_f_factor: fmpq, tau_v_factor: fmpq) -> tuple[list[str], int]:
    failures: list[str] = []
    checked = 0
    for dim in (1, 2, 3, 4, 5, 9, 16, 100):
        for Wbar in (fmpq(2), fmpq(5, 2), fmpq(10), fmpq(1000)):
            for nu_ in (fmpq(1, 1000), fmpq(1, 10), fmpq(1, 2), fmpq(1)):
                for eW, ev in ((fmpq(1), fmpq(1)), (fmpq(1, 100), fmpq(1, 3)),
                               (fmpq(1, 3), fmpq(1, 10**6))):
                    checked += 1
                    tol = adapted_tolerances(dim, epsilon_W=eW, epsilon_v=ev, W_bound=Wbar,
                                             norm_lower=nu_)
                    where = f"d={dim}, W_bound={Wbar}, nu={nu_}, eps=({eW}, {ev})"
                    try:
                        got = adapted_error_bounds(dim, W_bound=Wbar, norm_lower=nu_,
                                                   tau_f=tol.tau_f * tau_f_factor,
                                                   tau_v=tol.tau_v * tau_v_factor)
                    except ValueError as exc:
                        failures.append(f"{where}: {exc}")
                        continue
                    rr = ceil_sqrt(dim)
                    if not got.W_frobenius <= eW:
                        failures.append(f"{where}: ||W_hat - W||_F bound {got.W_frobenius} > "
                                        f"eps_w")
                    elif not got.v_2 <= ev:
                        failures.append(f"{where}: ||v_hat - v|| bound {got.v_2} > eps_v")
                    elif not got.W_entry <= got.W_frobenius:
                        failures.append(f"{where}: entry bound above the Frobenius bound")
                    elif not (2 * rr + fmpq(3, 2) * Wbar) * got.tau_v <= 3 * Wbar * got.tau_f:
                        failures.append(f"{where}: (2r + 3W/2) tau_v > 3 W tau_f")
    return failures, checked


def check_adapted_bound(tau_f_factor: Any = 1, tau_v_factor: Any = 1) -> tuple[bool, int, str]:
    """(holds, instances, detail) for the registry: every step and every instance checks.

    Runs the identities (d = 3), the inequalities (with the theorem's
    tolerances multiplied by the factors; 1 = the theorem), the exact
    rational grid of tolerances and the probe instances. A factor that is too
    large (for example ``tau_f_factor=2``) makes the check fail.
    """
    cf, cv = rational(tau_f_factor), rational(tau_v_factor)
    steps = identities(3)
    ineqs = bounds(cf, cv)
    failures = [f"identity '{s.why}' does not simplify to 0" for s in steps if not s.verified]
    failures += [f"inequality '{s.why}' does not hold ({s.method})" for s in ineqs
                 if not s.verified]
    grid_fail, grid_n = _grid_tolerances(cf, cv)
    failures += grid_fail
    instances = probe_instances()
    failures += [msg for msg in (check_probes(v) for v in instances) if msg is not None]
    total = len(steps) + len(ineqs) + grid_n + len(instances)
    if failures:
        return False, total, failures[0]
    methods = sorted({s.method for s in ineqs})
    return True, total, (f"{len(steps)} identities, {len(ineqs)} inequalities "
                         f"({', '.join(methods)}), {grid_n} tolerance grid points, "
                         f"{len(instances)} probe instances: all hold")
