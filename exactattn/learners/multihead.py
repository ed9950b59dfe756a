"""Canonical multi-head attention from value queries, exactly.

Label ``multihead_canonical`` (exactattn's own; cf. arXiv 2608.03294, which
recovers the canonical heads with 4 H d^2 - 2 H + 1 queries and publishes no
code); the non-identifiability it works around is ``multihead_nonidentifiable``
(paper Prop 7.1; paper.md §6). Also :func:`learn_orthogonal_heads`, the
paper's structural assumption (heads in known, mutually orthogonal
subspaces), head by head with ``single_head_exact``.

The hidden function is f(X) = sum_h alpha(X, W_h)^T X v_h. Only its
*canonical* heads are identifiable (equal W merged, zero v dropped); the
learner returns them, sorted like ``exactattn.models.multihead.canonical``.

The copy family
---------------
For tokens a, b let X(c) = [a (c copies); b]. Head h puts weight c t_h on
the copies and 1 on b, t_h = exp((a - b)^T W_h b), so

    g(c) := f(X(c)) = sum_h (c t_h A_h + B_h) / (c t_h + 1)
          = S - sum_h rho_h / (1 + c t_h),                          (*)

A_h = v_h . a, B_h = v_h . b, S = sum_h A_h, rho_h = v_h . (a - b) = v_h . delta.
g is a rational function of c of degree (m, m), m canonical heads, with
g(0) = f([b]). Its poles -1/t_h give the logits l_h = delta^T W_h b (t_h = e^l,
l rational), its residues the rho_h.

How a family is solved, exactly. The answers are real numbers; the learner
uses only field arithmetic, comparisons, ``exp``/``log`` and rigorous balls
``EXP.to_arb(answer, prec)``. (1) In ball arithmetic, fit P/Q (Q(0) = 1) to
the values (a linear system), take the roots -t_h of the reversed Q
(``acb_poly.roots``), l_h = log t_h. (2) Rational reconstruction: the
rational of smallest denominator in the ball (continued fractions; unique
when the ball is narrower than 1/(2 q^2)). (3) t_h := EXP.exp(l_h) exactly,
then S, rho_h from a ball solve, reconstructed likewise. (4) Exact check in
EXP: (*) must hold with ``==`` at every c asked. If it fails the precision
is doubled (up to ``max_prec`` bits), then RecoveryFailedError: no
unverified answer is ever returned.

Why the check proves the answer (given that f has at most H canonical heads):
a fitted function of degree (m', m'), m' <= H, equal to g at c = 0..2H,
differs from g by a rational function whose numerator has degree <= 2H and
2H + 1 zeros: it is g. Partial fractions are unique, so the t_h, rho_h, S
are g's. When the rho_h and S are already known (phase W below), the
fitted and true functions agree at c = 0 and at infinity by construction;
the numerator of the difference then has degree <= 2m - 1 and vanishes at
c = 0..2m - 1: 2m - 1 queries suffice.

Algorithm and query count
-------------------------
Draw seeded rational bases b_1..b_d (invertible) and directions
delta_1..delta_d (invertible). m is the number of canonical heads (found).

1. Phase ``v`` (base b_1): f([b_1]) (1 query); for each delta_k the copy
   family c = 1..2H (2H queries): m, and per family the set of pairs
   (l_h, rho_h) = (delta_k^T W_h b_1, delta_k^T v_h), unlabelled.
   1 + 2 H d queries.
2. Phase ``match`` (only if m >= 2): for k = 2..d one query
   [b_1 + delta_1; b_1 + delta_k; b_1], whose answer is
   f([b_1]) + sum_h (t_1h rho_1h + t_kh rho_kh) / (t_1h + t_kh + 1); the one
   pairing of the heads of family 1 and family k that reproduces it exactly
   (``==`` over the m! pairings, pre-filtered with balls) labels family k.
   d - 1 queries. Now v_h and W_h b_1 follow by two exact solves.
3. Phase ``W`` (bases b_2..b_d); v_h known, so f([b_j]) = sum_h v_h . b_j
   and the residues are known: no query for them.
   * If v_1..v_m are linearly independent (plan ``"isolating"``): for each
     head h, d - m + 1 directions delta with delta . v_h = 1 and
     delta . v_g = 0 (g != h) (from one exact inverse). Only head h sees the
     difference of the two tokens, so the single query [b_j + delta; b_j]
     answers f([b_j]) + sigma(delta^T W_h b_j): the logit is exact, as in
     ``single_head_exact``. The missing m - 1 directions per head come from
     m - 1 shared generic directions gamma, each a copy family with known
     residues: 2m - 1 queries. Per base: m (d - m + 1) + (m - 1)(2m - 1)
     = m d + (m - 1)^2 queries.
   * Otherwise (plan ``"families"``, e.g. m > d): d copy families with known
     residues, 2m - 1 queries each, heads labelled by their residues
     delta . v_h (needs pairwise distinct v_h). Per base: d (2m - 1).
   Then W_h b_j for every head by one exact solve, and W_h from the d columns.

Total (derived in prose from the count above; the sum is checked as a
polynomial by the claim ``multihead_canonical.query_count_closed_form``, and equals the
oracle's counter in the tests), with [m >= 2] = 1 if m >= 2 else 0:

    Q = 1 + 2 H d + [m >= 2] (d - 1) + (d - 1) K,
    K = m d + (m - 1)^2   (isolating),    K = d (2m - 1)   (families).

For m = H <= d with independent v_h: Q = 1 + 2Hd + [H >= 2](d - 1)
+ (d - 1)(Hd + (H - 1)^2) ~ H d^2 + (H + 1)^2 d; H = 1 gives d^2 + d + 1.
Claim Q <= 4 H d^2 - 2 H + 1 for all H >= 1, d >= 1, m <= H. Proof:
isolating: m <= d in this plan (independent v_h) and m <= H, so
K = m d + (m - 1)^2 <= 2 m d <= 2 H d (H may exceed d), Q <= 1 + 2Hd +
(d - 1)(1 + 2Hd) and 4Hd^2 - 2H + 1 - Q >= (d - 1)(2H(d + 1) - 1) >= 0. Families: with
2m - 1 <= 2H - 1, Q <= 1 + 2Hd + (d - 1)(1 + d(2H - 1)) and the gap is
2H(d^2 - 1) + (d - 1)^2 >= 0. (The isolating plan is never worse: the
families count minus it is (m - 1)(d - m + 1) >= 0.) The information floor
is H (d^2 + d) numbers, one per query.

Genericity: every random choice works with probability 1; the choices that
can be checked before querying (invertibility, distinct nonzero residues
of the directions in phase W) are checked exactly and redrawn; the others
(distinct t_h in phase v) are detected by the exact checks and reported as
RecoveryFailedError (try another seed). Limitation: two canonical heads
with the *same* v (and v's linearly dependent) are not separated by plan
``"families"``: HypothesisViolatedError.

>>> from exactattn.fields import EXP
>>> from exactattn.models import MultiHeadAttention
>>> from exactattn.oracle import ValueOracle
>>> f = MultiHeadAttention([([[1, 0], [0, 2]], [1, 0]), ([[0, 1], [-1, 0]], [1, 1])])
>>> oracle = ValueOracle(f)
>>> rec = learn_multihead(oracle, heads=2)
>>> rec.queries == query_count(2, 2) == oracle.queries == 15
True
>>> [W.tolist() for W in rec.params["W"]]
[[[0, 1], [-1, 0]], [[1, 0], [0, 2]]]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from flint import acb_poly, arb, arb_mat, ctx, fmpq

from ..errors import (
    HypothesisViolatedError,
    InvalidEntryError,
    NotRepresentableError,
    RecoveryFailedError,
)
from ..fields import EXP, Array, Field
from ..linalg import SingularMatrixError, rank, solve
from ..oracle import ValueOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery
from .single_head import learn_single_head

__all__ = ["learn_multihead", "learn_orthogonal_heads", "query_count", "published_bound",
           "orthogonal_query_count", "LABEL", "PAPER_REF", "ORTHOGONAL_LABEL"]

LABEL = "multihead_canonical"
PAPER_REF = "exactattn's own; cf. arXiv 2608.03294"
ORTHOGONAL_LABEL = "multihead_nonidentifiable"
ORTHOGONAL_REF = "Prop 7.1 (v1), Prop 7.1 (v2, reported)"

#: first and last working precision (bits) of the ball fits
START_PREC = 128
MAX_PREC = 1 << 13
#: the largest ``max_prec`` accepted (bits): beyond it a refusal would take hours, not an answer
MAX_PREC_LIMIT = 1 << 20
#: redraws of the directions of phase W before giving up
MAX_DRAWS = 100
#: random bases have entries k / 256, |k| <= 256 (in [-1, 1]); random directions
#: k / 1024, |k| <= 256 (in [-1/4, 1/4]): small directions keep the logits
#: delta^T W b moderate, hence the ball fits cheap; many values per entry make
#: coincidences (equal logits or residues) rare
BASE_DRAW, DIRECTION_DRAW = (256, 256), (1024, 256)


def published_bound(H: int, d: int) -> int:
    """The query count of arXiv 2608.03294: 4 H d^2 - 2 H + 1."""
    return 4 * H * d * d - 2 * H + 1


def query_count(H: int, d: int, *, m: int | None = None, plan: str = "auto") -> int:
    """The exact query count of :func:`learn_multihead` (module docstring).

    ``m`` is the number of canonical heads (default H); ``plan`` is
    ``"isolating"`` (v_h independent), ``"families"`` or ``"auto"``
    (isolating when m <= d, the generic case).

    >>> [query_count(1, d) for d in (1, 2, 3)], query_count(4, 8), published_bound(4, 8)
    ([3, 7, 13], 359, 1017)
    """
    m = H if m is None else m
    if plan == "auto":
        plan = "isolating" if m <= d else "families"
    total = 1 + 2 * H * d
    if m == 0:
        return total
    if m >= 2:
        total += d - 1
    per_base = m * d + (m - 1) ** 2 if plan == "isolating" else d * (2 * m - 1)
    return total + (d - 1) * per_base


def orthogonal_query_count(dims: Sequence[int]) -> int:
    """sum_h (d_h + d_h^2): ``single_head_exact`` on each head's subspace."""
    return sum(k + k * k for k in dims)


# -- numbers ----------------------------------------------------------------
def _random_rationals(rng: np.random.Generator, shape: tuple[int, ...],
                      draw: tuple[int, int] = DIRECTION_DRAW) -> Array:
    den, span = draw
    out = np.empty(shape, dtype=object)
    out.flat[:] = [EXP(Fraction(int(k), den))
                   for k in rng.integers(-span, span + 1, size=shape).flat]
    return out


def _invertible_draw(rng: np.random.Generator, d: int, draw: tuple[int, int]) -> Array:
    for _ in range(MAX_DRAWS):
        M = _random_rationals(rng, (d, d), draw)
        if rank(EXP, M) == d:
            return M
    raise RecoveryFailedError("no invertible random matrix drawn")  # pragma: no cover


def _to_fraction(x: arb) -> Fraction:
    """The exact value of an exact (dyadic) arb, as a Fraction."""
    raw_man, raw_exp = x.man_exp()
    man, exp = int(raw_man), int(raw_exp)
    return Fraction(man * 2**exp) if exp >= 0 else Fraction(man, 2**-exp)


def _rational_in(ball: arb) -> fmpq | None:
    """The rational of smallest denominator in ``ball`` if the ball pins it down.

    With radius r, two rationals of denominator <= M = floor(1/sqrt(2 r)) are
    more than 2 r apart, so at most one lies in the ball; the candidate is
    the best approximation of the midpoint with denominator <= M, kept only
    if it lies in the ball. A wrong answer is still possible (the true value
    may have a larger denominator): the exact check in EXP decides.
    """
    if not ball.is_finite():
        return None
    mid = _to_fraction(ball.mid())
    rad = _to_fraction(ball.rad())
    bound = 1 << 4000 if rad == 0 else math.isqrt(int(1 / (2 * rad)))
    if bound < 1:
        return None
    cand = mid.limit_denominator(bound)
    if abs(cand - mid) > rad:
        return None
    return fmpq(cand.numerator, cand.denominator)


def _ball(x: Any, prec: int) -> arb:
    return EXP.to_arb(x, prec)


def _pole_logits(q: list[Any], m: int, prec: int) -> list[Any] | None:
    """The exact logits log t_h of the poles: roots z_h = -t_h of the reversed
    denominator z^m + q_1 z^(m-1) + ... + q_m, each reconstructed as a rational.

    None when a root's ball does not single out a rational (raise the precision).
    """
    roots = _poly_roots([q[m - 1 - i] for i in range(m)] + [arb(1)], prec)
    if roots is None:
        return None
    logits = []
    for z in roots:
        lb = _logit_ball(-z)
        l = None if lb is None else _rational_in(lb)
        if l is None:
            return None
        logits.append(l)
    return logits


def _poly_roots(coeffs: list[arb], prec: int) -> list[arb] | None:
    """Real parts of the roots of sum coeffs[i] z^i if all are real (balls), else None."""
    # the tightest tolerance the coefficient balls allow (an unattainable one raises)
    for bits in (prec, 3 * prec // 4, prec // 2, prec // 4):
        try:
            roots = acb_poly(coeffs).roots(tol=arb(2) ** (-bits), maxprec=4 * prec)
            break
        except ValueError:
            continue
    else:
        return None
    out = []
    for z in roots:
        if not z.imag.contains(0):
            return None
        out.append(z.real)
    return out


def _logit_ball(t: arb) -> arb | None:
    """log t for a ball t > 0."""
    if not t > 0:
        return None
    return t.log()


# -- one copy family ---------------------------------------------------------------
@dataclass(frozen=True)
class _Heads:
    """Per-head exact data of one copy family: logits l_h, residues rho_h, and S."""

    logits: list[fmpq]
    rhos: list[fmpq]
    S: fmpq


def _predict(fam: _Heads, c: int) -> Any:
    """S - sum_h rho_h / (1 + c e^{l_h}) in EXP (formula (*))."""
    total = EXP(fam.S)
    for l, r in zip(fam.logits, fam.rhos, strict=True):
        total = total - EXP(r) / (1 + c * EXP.exp(EXP(l)))
    return total


def _exact_check(fam: _Heads, values: Sequence[Any], cs: Sequence[int]) -> bool:
    return all(_predict(fam, c) == y for c, y in zip(cs, values, strict=True))


def _solve_balls(rows: list[list[arb]], rhs: list[arb]) -> list[arb] | None:
    try:
        sol = arb_mat(rows).solve(arb_mat([[r] for r in rhs]))
    except (ZeroDivisionError, ValueError):
        return None
    return [sol[i, 0] for i in range(len(rhs))]


def _fit_free(values: list[Any], m: int, prec: int) -> _Heads | None:
    """Candidate m-head data for g(0..n) = values (unknown S, rho, t), or None."""
    n = len(values) - 1
    cs = list(range(n + 1))
    if m == 0:
        fam = _Heads([], [], fmpq(0))
        return fam if _exact_check(fam, values, cs) else None
    with ctx.workprec(prec):
        g = [_ball(y, prec) for y in values]
        # sum_i p_i c^i - g(c) sum_i q_i c^i = g(c) - g(0), c = 1..2m
        rows = [[arb(c) ** i for i in range(1, m + 1)] + [-g[c] * arb(c) ** i
                for i in range(1, m + 1)] for c in range(1, 2 * m + 1)]
        sol = _solve_balls(rows, [g[c] - g[0] for c in range(1, 2 * m + 1)])
        if sol is None:
            return None
        q = sol[m:]
        # reversed Q: z^m + q_1 z^(m-1) + ... + q_m, roots z_h = -t_h
        logits = _pole_logits(q, m, prec)
        if logits is None:
            return None
        if len(set(logits)) < m:
            return None
        t = [EXP.to_arb(EXP.exp(EXP(l)), prec) for l in logits]
        # g(c) = S - sum_h rho_h / (1 + c t_h), c = 0..m: solve for S, rho
        rows2 = [[arb(1)] + [-1 / (1 + c * th) for th in t] for c in range(m + 1)]
        sol2 = _solve_balls(rows2, g[: m + 1])
        if sol2 is None:
            return None
        rats = [_rational_in(x) for x in sol2]
    if any(r is None for r in rats) or any(r == 0 for r in rats[1:]):
        return None
    fam = _Heads(logits, [r for r in rats[1:] if r is not None], rats[0] or fmpq(0))
    return fam if _exact_check(fam, values, cs) else None


def _solve_free_family(values: list[Any], H: int, max_prec: int, what: str) -> _Heads:
    """The exact family data from g(0..2H) (degree <= H), or RecoveryFailedError."""
    prec = START_PREC
    while prec <= max_prec:
        for m in range(H + 1):
            fam = _fit_free(values, m, prec)
            if fam is not None:
                return fam
        prec *= 2
    raise RecoveryFailedError(
        f"{what}: the answers to [a (c copies); b], c = 0..{2 * H}, are not those of "
        f"multi-head attention with at most {H} canonical heads (no fit of degree <= {H} "
        f"passes the exact check up to {max_prec} bits). The oracle has more heads than "
        "heads=, or is not multi-head attention, or the random draw was degenerate "
        "(try another seed)")


def _fit_known(values: list[Any], g0: Any, S: Any, rhos: list[Any], prec: int
               ) -> list[fmpq] | None:
    """Labelled logits l_h from g(1..2m-1) when S, g(0) and the rho_h are known."""
    m = len(rhos)
    cs = list(range(1, 2 * m))
    with ctx.workprec(prec):
        g = [_ball(y, prec) for y in values]
        Sb, g0b = _ball(S, prec), _ball(g0, prec)
        # unknowns p_1..p_{m-1}, q_1..q_{m-1}, q_m  (p_0 = g0, p_m = S q_m)
        rows = []
        for k, c in enumerate(cs):
            cb = arb(c)
            rows.append([cb ** i for i in range(1, m)] + [-g[k] * cb ** i for i in range(1, m)]
                        + [(Sb - g[k]) * cb ** m])
        sol = _solve_balls(rows, [g[k] - g0b for k in range(len(cs))])
        if sol is None:
            return None
        q = sol[m - 1: 2 * m - 2] + [sol[-1]]
        logits = _pole_logits(q, m, prec)
        if logits is None:
            return None
    S_q = EXP(S)
    rho_q = [EXP(r) for r in rhos]
    # label: the pairing of roots and residues that reproduces the answers exactly
    for perm in itertools.permutations(range(m)):
        ok = True
        for c, y in zip(cs, values, strict=True):
            pred = S_q
            for h in range(m):
                pred = pred - rho_q[h] / (1 + c * EXP.exp(EXP(logits[perm[h]])))
            if pred != y:
                ok = False
                break
        if ok:
            return [logits[perm[h]] for h in range(m)]
    return None


# -- the learner -----------------------------------------------------------------
@checked_arguments(counts={"heads": (1, 1024), "max_prec": (START_PREC, MAX_PREC_LIMIT)})
def learn_multihead(
    oracle: ValueOracle,
    *,
    heads: int,
    field: Field | None = None,
    seed: int = 0,
    max_prec: int = MAX_PREC,
) -> Recovery:
    """Recover the canonical heads of multi-head attention, exactly, up to order.

    Label ``multihead_canonical`` (cf. arXiv 2608.03294); see the module
    docstring for the algorithm, the exactness argument and the derived count
    ``query_count(heads, d, m=m, plan=plan)`` <= 4 H d^2 - 2 H + 1.

    Parameters
    ----------
    oracle : value oracle over EXP of the hidden function.
    heads : H, an upper bound on the number of canonical heads.
    seed : seed of the random bases and directions.
    max_prec : largest precision (bits) of the ball fits before giving up, an
        integer from ``START_PREC`` = 128 to ``MAX_PREC_LIMIT`` = 2^20; checked
        before any query is spent.

    Returns
    -------
    Recovery with ``params["W"]`` of shape (m, d, d) and ``params["v"]`` of
    shape (m, d): head first, row h of each is head h (W_h, v_h), heads sorted
    by (W row-major, v); ``options["m"]``, ``options["plan"]``.

    Raises
    ------
    InvalidEntryError : ``heads`` or ``max_prec`` out of range (before any query).
    RecoveryFailedError : the answers are not those of multi-head attention
        with at most ``heads`` canonical heads (or a degenerate random draw).
    HypothesisViolatedError : plan ``"families"`` with two heads of equal v.

    >>> from exactattn.models import MultiHeadAttention
    >>> f = MultiHeadAttention([([[1]], [2]), ([[-1]], [3])])
    >>> rec = learn_multihead(ValueOracle(f), heads=2)
    >>> [W.tolist() for W in rec.params["W"]], rec.params["v"].tolist(), rec.queries
    ([[[-1]], [[1]]], [[3], [2]], 5)
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    if F != EXP:
        raise InvalidEntryError(f"learn_multihead runs over EXP (exact route), not {F.name}")
    H, d = heads, oracle.d
    span = QuerySpan.begin(oracle)
    rng = np.random.default_rng([seed, d, H])
    B = _invertible_draw(rng, d, BASE_DRAW)          # rows b_1..b_d
    Delta = _invertible_draw(rng, d, DIRECTION_DRAW)  # rows delta_1..delta_d
    b1 = B[0]

    # 1. phase v: f([b_1]) and d copy families at base b_1
    g0 = oracle(b1[None, :], phase="v")
    families: list[_Heads] = []
    for k in range(d):
        a = b1 + Delta[k]
        Xs = [np.stack([a] * c + [b1]) for c in range(1, 2 * H + 1)]
        ys = list(oracle.batch(Xs, phase="v"))
        families.append(_solve_free_family([g0, *ys], H, max_prec, f"family {k + 1} at b_1"))
    shown = [len(f.logits) for f in families]
    m = shown[0]
    if any(k != m for k in shown):
        # the family of direction delta_k shows the heads with delta_k . v_h != 0 and
        # distinct logits delta_k^T W_h b_1: fewer poles mean a zero residue or a shared logit
        fewer = [k + 1 for k, n in enumerate(shown) if n < max(shown)]
        raise RecoveryFailedError(
            f"the copy families at b_1 show {shown} heads: along delta_k for k in {fewer} a "
            "head has residue delta_k . v_h = 0 or two heads share the logit "
            "delta_k^T W_h b_1, so fewer poles show. A degenerate random draw (each such "
            f"equation holds with probability at most 1/{2 * DIRECTION_DRAW[1] + 1} per head, "
            "or pair of heads, and direction) or not multi-head attention (try another seed)")
    if m == 0:
        return _recovery(F, span, [], [], d, seed,
                         {"m": 0, "plan": "none", "heads": H})

    # 2. phase match: label every family like family 1
    order = [list(range(m)) for _ in range(d)]
    for k in range(1, d if m >= 2 else 1):
        X = np.stack([b1 + Delta[0], b1 + Delta[k], b1])
        y = oracle(X, phase="match")
        order[k] = _match(families[0], families[k], g0, y, k)
    rho = F.zeros((d, m))
    ell = F.zeros((d, m))
    for k in range(d):
        for h in range(m):
            rho[k, h] = EXP(families[k].rhos[order[k][h]])
            ell[k, h] = EXP(families[k].logits[order[k][h]])
    V = solve(F, Delta, rho)                  # column h: v_h
    WB = [solve(F, Delta, ell[:, h]) for h in range(m)]  # W_h b_1
    columns: list[list[Array]] = [[w] for w in WB]

    # 3. phase W: bases b_2..b_d
    plan = "isolating" if rank(F, V) == m else "families"
    if plan == "isolating":
        dirs, singles = _isolating_directions(rng, V)
    else:
        if any(bool((V[:, g] == V[:, h]).all()) for g in range(m) for h in range(g)):
            raise HypothesisViolatedError(
                "two canonical heads have the same v and the v_h are linearly dependent: "
                "this learner labels heads by their residues delta . v_h, which cannot "
                "separate them", hypothesis="pairwise distinct v_h when rank(V) < m")
        dirs, singles = _family_directions(rng, V), []
    for j in range(1, d):
        b = B[j]
        gb = sum((V[:, h] @ b for h in range(m)), F.zero())
        # isolating single queries: one head sees the difference of the two tokens
        single_logits: list[list[Any]] = [[] for _ in range(m)]
        if singles:
            Xs = [np.stack([b + delta, b]) for h in range(m) for delta in singles[h]]
            it = iter(oracle.batch(Xs, phase="W"))
            for h in range(m):
                for _ in singles[h]:
                    single_logits[h].append(_exact_logit(next(it) - gb, j, h))
        family_logits = []
        for gamma in dirs:
            a = b + gamma
            Xs = [np.stack([a] * c + [b]) for c in range(1, 2 * m)]
            ys = list(oracle.batch(Xs, phase="W"))
            S = sum((V[:, h] @ a for h in range(m)), F.zero())
            rhos = [V[:, h] @ gamma for h in range(m)]
            family_logits.append(_solve_known_family(ys, gb, S, rhos, max_prec, j))
        for h in range(m):
            D = np.stack(list(singles[h]) + list(dirs)) if singles else np.stack(list(dirs))
            rhs = F.array(single_logits[h] + [fl[h] for fl in family_logits])
            columns[h].append(solve(F, D, rhs))
    Ws = []
    for h in range(m):
        WBh = np.stack(columns[h], axis=1)      # columns W_h b_j
        Ws.append(solve(F, B, WBh.T).T)        # W_h B^T = WBh
    vs = [V[:, h] for h in range(m)]
    return _recovery(F, span, Ws, vs, d, seed,
                     {"m": m, "plan": plan, "heads": H})


def _stacked(F: Field, d: int, heads: list[tuple[Array, Array]]) -> tuple[Array, Array]:
    """The heads (W_h, v_h) stacked head first: W of shape (m, d, d), v of shape (m, d),
    row h being head h (the layout of every multi-head recovery)."""
    W, v = F.zeros((len(heads), d, d)), F.zeros((len(heads), d))
    for h, (Wh, vh) in enumerate(heads):
        W[h], v[h] = Wh, vh
    return W, v


def _recovery(F: Field, span: QuerySpan, Ws: list[Array], vs: list[Array], d: int,
              seed: int, options: dict[str, Any]) -> Recovery:
    pairs = sorted(zip(Ws, vs, strict=True), key=lambda p: tuple(p[0].flat) + tuple(p[1]))
    W, v = _stacked(F, d, pairs)
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=F, params={"W": W, "v": v},
        seed=seed, options=options,
        hypotheses=(f"f has at most H = {options['heads']} canonical heads",))


def _exact_logit(p: Any, j: int, h: int) -> Any:
    try:
        return EXP.logit(p)
    except (NotRepresentableError, ZeroDivisionError) as exc:
        raise RecoveryFailedError(
            f"base {j + 1}, head {h + 1}: an isolating query gave sigma(l) = {p} with no "
            f"exact logit ({exc}); the oracle is not multi-head attention with the heads "
            "found at b_1") from None


def _solve_known_family(ys: list[Any], g0: Any, S: Any, rhos: list[Any], max_prec: int,
                        j: int) -> list[Any]:
    prec = START_PREC
    while prec <= max_prec:
        logits = _fit_known(ys, g0, S, rhos, prec)
        if logits is not None:
            return [EXP(l) for l in logits]
        prec *= 2
    raise RecoveryFailedError(
        f"base {j + 1}: a copy family with known residues has no exact fit with "
        f"{len(rhos)} heads up to {max_prec} bits: not multi-head attention with the heads "
        "found at b_1")


def _match(fam1: _Heads, famk: _Heads, g0: Any, y: Any, k: int) -> list[int]:
    """The pairing pi (head h of family 1 <-> head pi[h] of family k) that gives y."""
    m = len(fam1.logits)
    t1 = [EXP.exp(EXP(l)) for l in fam1.logits]
    tk = [EXP.exp(EXP(l)) for l in famk.logits]
    r1 = [EXP(r) for r in fam1.rhos]
    rk = [EXP(r) for r in famk.rhos]
    prec = START_PREC
    with ctx.workprec(prec):
        yb = _ball(y - g0, prec)
        term = [[_ball((t1[h] * r1[h] + tk[g] * rk[g]) / (t1[h] + tk[g] + 1), prec)
                 for g in range(m)] for h in range(m)]
        candidates = [p for p in itertools.permutations(range(m))
                      if (sum((term[h][p[h]] for h in range(m)), arb(0)) - yb).contains(0)]
    found = [list(p) for p in candidates
             if sum(((t1[h] * r1[h] + tk[p[h]] * rk[p[h]]) / (t1[h] + tk[p[h]] + 1)
                     for h in range(m)), EXP(0)) == y - g0]
    if len(found) != 1:
        raise RecoveryFailedError(
            f"matching family {k + 1} to family 1: {len(found)} pairings of the heads "
            "reproduce the matching query exactly (expected 1): a degenerate draw or not "
            "multi-head attention (try another seed)")
    return found[0]


def _isolating_directions(rng: np.random.Generator, V: Array
                          ) -> tuple[list[Array], list[list[Array]]]:
    """Shared directions gamma_1..gamma_{m-1} and, per head, d - m + 1 isolating ones."""
    d, m = V.shape
    F = EXP
    for _ in range(MAX_DRAWS):
        G = np.concatenate([V.T, _random_rationals(rng, (d - m, d))]) if d > m else V.T.copy()
        if rank(F, G) < d:
            continue
        P = solve(F, G, F.eye(d))  # G P = I: columns p_h (h < m), n_i (i >= m)
        singles = [[P[:, h]] + [P[:, h] + P[:, i] for i in range(m, d)] for h in range(m)]
        for _ in range(MAX_DRAWS):
            gammas = [_random_rationals(rng, (d,)) for _ in range(m - 1)]
            if gammas and not _good_residues(V, gammas):
                continue
            try:
                for h in range(m):
                    solve(F, np.stack(singles[h] + gammas), F.zeros(d))
            except SingularMatrixError:
                continue
            return gammas, singles
    raise RecoveryFailedError("no isolating directions drawn")  # pragma: no cover


def _family_directions(rng: np.random.Generator, V: Array) -> list[Array]:
    d = V.shape[0]
    for _ in range(MAX_DRAWS):
        D = _random_rationals(rng, (d, d))
        rows = [D[k] for k in range(d)]
        if rank(EXP, D) == d and _good_residues(V, rows):
            return rows
    raise RecoveryFailedError("no directions with distinct residues drawn")  # pragma: no cover


def _good_residues(V: Array, directions: list[Array]) -> bool:
    """Every direction has pairwise distinct, nonzero residues delta . v_h."""
    for delta in directions:
        r = list(delta @ V)
        if any(x == 0 for x in r) or any(r[i] == r[k] for i in range(len(r))
                                         for k in range(i)):
            return False
    return True


# -- orthogonal heads ----------------------------------------------------------
@checked_arguments()
def learn_orthogonal_heads(
    oracle: ValueOracle, bases: Sequence[Any], *, field: Field | None = None
) -> Recovery:
    """Heads in known, mutually orthogonal subspaces: ``single_head_exact`` per head.

    Paper Prop 7.1's remark (v1; paper.md §6): if head h lives in the
    subspace U_h = span(columns of bases[h]) (d x d_h, rational), i.e.
    W_h = P_h W_h P_h and v_h in U_h with P_h the orthogonal projector onto
    U_h, and the U_h are mutually orthogonal, then for tokens x_i = B_h z_i
    every other head g has scores W_g x = 0 (uniform weights) and values
    v_g . x = 0, so f(B_h Z) is the single head with W' = B_h^T W_h B_h,
    v' = B_h^T v_h in dimension d_h. ``learn_single_head`` on that oracle,
    then W_h = B_h G^{-1} W' G^{-1} B_h^T, v_h = B_h G^{-1} v' with
    G = B_h^T B_h. Queries: sum_h (d_h + d_h^2) (:func:`orthogonal_query_count`),
    d + d^2 / H for equal blocks. Returned with label
    ``multihead_nonidentifiable`` (the paper's structural remark) in the same
    parameter layout as :func:`learn_multihead` (heads in the given order).

    >>> from exactattn.models import MultiHeadAttention
    >>> f = MultiHeadAttention([([[2, 0], [0, 0]], [1, 0]), ([[0, 0], [0, -1]], [0, 3])])
    >>> rec = learn_orthogonal_heads(ValueOracle(f), [[[1], [0]], [[0], [1]]])
    >>> [W.tolist() for W in rec.params["W"]], rec.queries
    ([[[2, 0], [0, 0]], [[0, 0], [0, -1]]], 4)
    """
    F = oracle.field if field is None else field
    F.require_same(oracle.field, "the oracle")
    d = oracle.d
    sized = isinstance(bases, list | tuple) or (isinstance(bases, np.ndarray) and bases.ndim)
    if not sized or not 1 <= len(bases) <= d:
        got = f"{len(bases)} matrices" if sized else type(bases).__name__
        raise InvalidEntryError(
            f"bases must be a list of 1 to d = {d} matrices (one d x d_h basis per head; "
            f"mutually orthogonal subspaces of R^{d} are at most {d}), got {got}")
    Bs = [F.array(Bh, name=f"bases[{h}]") for h, Bh in enumerate(bases)]
    for h, Bh in enumerate(Bs):
        if Bh.ndim != 2 or Bh.shape[0] != d or rank(F, Bh) != Bh.shape[1]:
            raise HypothesisViolatedError(
                f"bases[{h}] must be a d x d_h matrix of rank d_h, got shape {Bh.shape}",
                hypothesis="known head subspaces")
        for g in range(h):
            if any(F.sign(x) != 0 for x in (Bs[g].T @ Bh).flat):
                raise HypothesisViolatedError(
                    f"the subspaces of heads {g} and {h} are not orthogonal",
                    hypothesis="mutually orthogonal head subspaces")
    span = QuerySpan.begin(oracle)
    Ws, vs = [], []
    for h, Bh in enumerate(Bs):
        dh = Bh.shape[1]
        def restricted(Z: Array, Bh: Array = Bh, h: int = h) -> Any:
            return oracle(Z @ Bh.T, phase=f"head {h + 1}")

        inner = ValueOracle(restricted, field=F, d=dh)
        rec = learn_single_head(inner)
        Ginv = solve(F, Bh.T @ Bh, F.eye(dh))
        Ws.append(Bh @ Ginv @ rec.W @ Ginv @ Bh.T)
        vs.append(Bh @ (Ginv @ rec.v))
    W, v = _stacked(F, d, list(zip(Ws, vs, strict=True)))
    return span.recovery(
        label=ORTHOGONAL_LABEL, paper_ref=ORTHOGONAL_REF, field=F, params={"W": W, "v": v},
        seed=0,
        options={"dims": [int(Bh.shape[1]) for Bh in Bs]},
        hypotheses=("head h reads and writes only the given subspace B_h, and the "
                    "subspaces are mutually orthogonal",))
