"""Single-head attention from approximate value queries: the clipped inverse.

Label ``noisy_oracle``; paper Thm 6.2 (v1) = Thm 6.1 (v2), with the lemma
``clipped_inverse`` (Lemma 6.1 v1 = Lemma A.1 v2); paper.md §5.

Hypotheses: ||W||_F <= W_bound with W_bound >= 2 known; ||v||_2 <= 1; every
query token has norm <= 1; margin min_i |v_i| >= mu > 0. The oracle answers
AVQ(X; tau) within tau of f(X), adversarially and deterministically.

Algorithm (exactly d + d^2 queries):

1. v_hat_i = AVQ([e_i^T]; tau_v), i = 1..d.
2. For every (i, j), i = j included, with a = 1/2, b = 1/W_bound:
   X = [(b e_i + a e_j)^T; (a e_j)^T]. Both tokens have norm <= b + a <= 1;
   the score gap is a b W_ij in [-1/2, 1/2], so alpha* = sigma(a b W_ij) lies
   in [tau_c, 1 - tau_c] with tau_c = sigma(-1/2); f = a v_j + alpha* b v_i.
3. alpha_hat = (y - a v_hat_j) / (b v_hat_i); W_hat_ij = logit(clip(alpha_hat)) / (a b),
   clip(p) = min(max(p, tau_c), 1 - tau_c).

Tolerances (computed here as exact rationals): tau_f = mu eps_W / (80 W_bound^2 d);
tau_v = min(mu/2, tau_f, eps_v / r) with r = ceil(sqrt d) >= sqrt d (a rational
stand-in for sqrt d that only makes tau_v smaller). Guarantees:

    |alpha_hat - alpha*| <= (2 W_bound/mu) tau_f + ((W_bound + 2)/mu) tau_v
                         <= eps_W / (20 W_bound d),
    |W_hat_ij - W_ij| <= L |alpha_hat - alpha*| / (a b) <= eps_W / d   (L <= 5),
    ||W_hat - W||_F <= eps_W,   ||v_hat - v||_2 <= sqrt(d) tau_v <= eps_v.

Which hypotheses the answers can decide. Whatever W and v are, an answer
within its tolerance pins the softmax weight of every probe: with
c_hat = u_l . v_hat (u_l = e_i here),

    alpha* = sigma(a b u_l^T W e_j)  lies in  alpha_hat +- e_l,
    e_l = (tau_f + a tau_v + b tau_v ||u_l||_1) / (b |c_hat|)

(from alpha_hat - alpha* = (alpha* b (c - c_hat) + (y - f) + a (v_j - v_hat_j)) / (b c_hat),
c = u_l . v, |c - c_hat| <= tau_v ||u_l||_1, 0 < alpha* < 1), and v lies in the box
v_hat +- tau_v. Under
||W||_F <= W_bound every logit a b u_l^T W e_j has |.| <= ||u_l|| / 2 and their
squares sum to at most ||Z||_2^2 / 4 (Z the probe rows). The learner proves a
hypothesis false, and raises HypothesisViolatedError with the figures, when
no parameters consistent with the answers satisfy it: one enclosure outside
[sigma(-||u_l||/2), sigma(||u_l||/2)] (decided exactly in EXP), or the sum of
the smallest squared logits the enclosures allow above ||Z||_2^2 / 4 (arb
lower bounds of the logarithms, compared as rationals); for v, the box
outside the unit ball, or some |v_i| < margin on the whole box. The
Frobenius test treats the probes' enclosures as independent (they share v),
so it is sound but may miss a violation that only the shared v proves. A
hypothesis the answers confirm (the box inside the unit ball, every
|v_i| >= margin on the box, or the largest logits the enclosures allow
summing to at most 1/4) is recorded in ``options["hypotheses_confirmed"]``;
every other one is listed in ``Recovery.hypotheses``: the bound is then
conditional on it. The oracle contract (every answer within the tolerance
asked for) is always listed: no query can confirm it.

Arithmetic: alpha_hat is an exact rational; the comparison with tau_c (an
element of EXP) is exact; the logarithm is a rigorous ``arb`` ball, returned
as its rational midpoint, with the ball radius added to the reported bound.
The precision ``prec`` is validated before any query (see
:func:`minimum_prec`): the radius must stay below half the slack between the
theorem's entry bound and eps_W / d, and an entry whose ball is wider is
re-evaluated at doubled precision (no query), so the reported bounds stay
within (eps_W, eps_v). Nothing goes through float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import arb, ctx, fmpq

from ..errors import HypothesisViolatedError, InvalidEntryError
from ..fields import EXP, QQ, Array, rational
from ..fields.precision import arf_to_fmpq
from ..fields.rational import sqrt_upper
from ..oracle import NoisyOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head_noisy", "naive_inverse", "theorem_tolerances", "NoisyBounds",
           "LABEL", "PAPER_REF", "L_UPPER", "TAU_C", "ceil_sqrt", "positive_rational",
           "logit_ball", "logit_enclosure", "clipped_logit", "clipped_logits", "ClippedLogits",
           "minimum_prec", "checked_prec", "log_radius_budget", "v_hypotheses", "ORACLE_HYPOTHESIS",
           "TAU_F_DENOMINATOR", "MAX_PREC", "DEFAULT_PREC", "PROBE_A"]

LABEL = "noisy_oracle"
PAPER_REF = "Thm 6.2 (v1), Thm 6.1 (v2, reported)"

#: tau_c = sigma(-1/2) = 1/(1 + sqrt(e)), an exact element of EXP
TAU_C = EXP.sigmoid(EXP(fmpq(-1, 2)))
#: a proven rational upper bound on L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2)
#: (checked exactly in EXP when this module is imported)
L_UPPER = fmpq(42553, 10000)
if not 1 / (TAU_C * (1 - TAU_C)) < EXP(L_UPPER):  # pragma: no cover - a proven fact
    raise AssertionError("L_UPPER is not an upper bound of L")

#: the constant of the theorem's tolerance tau_f = mu eps_W / (TAU_F_DENOMINATOR W_bound^2 d)
TAU_F_DENOMINATOR = 80
#: the hypotheses the learner checks before it asks anything (it raises otherwise)
CHECKED = ("W_bound >= 2", "margin > 0", "epsilon_W > 0", "epsilon_v > 0",
           "query tokens have norm <= 1", "minimum_prec <= prec <= MAX_PREC")
#: the oracle's contract: no query can confirm it, every bound rests on it
ORACLE_HYPOTHESIS = "every answer is within the tolerance the learner asked for"
#: the largest working precision accepted (bits), and the default floor
MAX_PREC = 1 << 16
DEFAULT_PREC = 128


@dataclass(frozen=True)
class NoisyBounds:
    """The theorem's tolerances and the error bounds it gives under its hypotheses (rationals)."""

    tau_f: fmpq
    tau_v: fmpq
    alpha: fmpq  # bound on |alpha_hat - alpha*|
    W_entry: fmpq  # bound on |W_hat_ij - W_ij| (before the log's ball radius)
    W_frobenius: fmpq  # d * W_entry
    v_2: fmpq  # bound on ||v_hat - v||_2 (r tau_v, r = ceil(sqrt d))

    def to_json(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in
                ("tau_f", "tau_v", "alpha", "W_entry", "W_frobenius", "v_2")}


def ceil_sqrt(d: int) -> int:
    """r = ceil(sqrt d), a rational stand-in for sqrt d (r >= sqrt d)."""
    r = math.isqrt(d)
    return r if r * r == d else r + 1


def theorem_tolerances(d: int, *, epsilon_W: Any, epsilon_v: Any, W_bound: Any,
                       margin: Any) -> NoisyBounds:
    """The tolerances of the theorem and the bounds they give under its hypotheses, exactly.

    >>> b = theorem_tolerances(4, epsilon_W=1, epsilon_v=1, W_bound=2, margin=1)
    >>> b.tau_f, b.tau_v, b.alpha <= fmpq(1, 20 * 2 * 4), b.W_entry <= fmpq(1, 4)
    (1/1280, 1/1280, True, True)
    """
    eps_W, eps_v, Wb, mu = (positive_rational(x, n) for x, n in
                            ((epsilon_W, "epsilon_W"), (epsilon_v, "epsilon_v"),
                             (W_bound, "W_bound"), (margin, "margin")))
    if Wb < 2:
        raise HypothesisViolatedError(f"W_bound = {Wb} < 2: the theorem needs W_bound >= 2",
                                      hypothesis="W_bound >= 2")
    check_epsilon_W(eps_W, (d + 2) * Wb, "(d + 2) W_bound",
                    "every clipped estimate has |W_hat_ij| <= W_bound plus the logarithm's "
                    "ball radius, far below W_bound")
    r = ceil_sqrt(d)
    tau_f = mu * eps_W / (TAU_F_DENOMINATOR * Wb * Wb * d)
    tau_v = min(mu / 2, tau_f, eps_v / r)
    alpha = (2 * Wb / mu) * tau_f + ((Wb + 2) / mu) * tau_v
    entry = L_UPPER * alpha * 2 * Wb  # / (a b) with a b = 1 / (2 W_bound)
    return NoisyBounds(tau_f, tau_v, alpha, entry, entry * d, r * tau_v)


def check_epsilon_W(eps_W: fmpq, limit: fmpq, limit_text: str, why: str) -> None:
    """Refuse an accuracy ``eps_W`` above ``limit``, where it is met whatever the answers.

    Above the limit the requirement ||W_hat - W||_F <= eps_W is vacuous (``why``:
    ||W_hat||_F + ||W||_F <= limit for every estimate the learner can return), and
    the tolerance it would ask of the oracle grows without bound (10**400 overflowed
    the oracle's float step): it is refused before any query, with the limit.

    >>> check_epsilon_W(fmpq(10**400), fmpq(8), "(d + 2) W_bound", "a reason")
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: epsilon_W = 1.000e+400 exceeds (d + 2) W_bound = 8: ...
    """
    if eps_W > limit:
        raise InvalidEntryError(
            f"epsilon_W = {_sci(eps_W)} exceeds {limit_text} = {limit}: above it "
            f"||W_hat - W||_F <= epsilon_W holds whatever the answers ({why}, and "
            f"||W||_F <= W_bound), so the requirement is vacuous; ask for epsilon_W <= {limit}")


def _sci(q: fmpq) -> str:
    """A positive rational in scientific notation without float overflow (messages only)."""
    if q <= 10**15:
        return f"{float(q):.4g}"
    n = int(q.p // q.q)
    e = len(str(n)) - 1
    return f"{int(str(n)[:4]) / 1000:.3f}e+{e}"


def positive_rational(x: Any, name: str) -> fmpq:
    """``x`` as a rational > 0, or HypothesisViolatedError naming ``name``."""
    try:
        q = rational(x)
    except InvalidEntryError as exc:
        raise InvalidEntryError(f"{name}: {exc}") from None
    if q <= 0:
        raise HypothesisViolatedError(f"{name} = {q} must be positive", hypothesis=f"{name} > 0")
    return q


def logit_ball(p: fmpq, prec: int) -> arb:
    """logit(p) as a rigorous arb ball at ``prec`` bits (0 < p < 1)."""
    with ctx.workprec(prec):
        return (arb(p) / (1 - arb(p))).log()


#: the probe scale a of the query token (paper.md §5)
PROBE_A = fmpq(1, 2)


def _dec(q: Any) -> str:
    """A rational (or EXP element) as a short decimal, for messages only."""
    return f"{float(q):.6g}"


def log_radius_budget(entry_bound: fmpq, *, d: int, epsilon_W: Any, W_bound: Any,
                      entry_target: Any = None) -> fmpq:
    """The largest radius of a logarithm's ball that keeps the entry bound within target.

    The reported entry bound is ``entry_bound + radius / (a b)`` with
    1 / (a b) = 2 W_bound; half the slack to ``entry_target`` (eps_W / d by
    default) is allowed, so the bound stays strictly inside it.

    >>> b = theorem_tolerances(2, epsilon_W=fmpq(1, 10), epsilon_v=1, W_bound=2, margin=1)
    >>> r = log_radius_budget(b.W_entry, d=2, epsilon_W=fmpq(1, 10), W_bound=2)
    >>> b.W_entry + 4 * r < fmpq(1, 20)
    True
    """
    eps_W, Wb = rational(epsilon_W), rational(W_bound)
    target = eps_W / d if entry_target is None else rational(entry_target)
    slack = target - entry_bound
    if slack <= 0:  # pragma: no cover - the theorem's tolerances leave a slack
        raise AssertionError("the theorem's entry bound leaves no slack for the logarithm")
    return slack / (2 * 2 * Wb)


def minimum_prec(bounds: NoisyBounds, *, d: int, epsilon_W: Any, W_bound: Any) -> int:
    """The smallest working precision (bits) whose logarithm radius fits the budget.

    An estimate, not a bound: for p in [tau_c, 1 - tau_c], arb evaluates
    logit(p) = log(p / (1 - p)) from a p rounded to ``prec`` bits (relative
    error about 2^-prec for p, 3 * 2^-prec for 1 - p), so to first order the
    quotient carries a relative error of about 2^(2 - prec) and its
    logarithm an absolute one of the same size, plus the rounding of log
    itself; 2^(3 - prec) is taken as the radius. arb's actual radius is not
    derived here: measured on rationals with 30-digit denominators it is at
    most 6.4 * 2^-prec at 8 to 10 bits and 6.14 * 2^-prec from 12 to 128 bits
    (tests/theorems/test_noisy_oracle.py checks it stays below 2^(3 - prec)).
    The minimum is the smallest prec with 2^(3 - prec) <= the budget of
    :func:`log_radius_budget` (at least 8). Soundness does not rest on it:
    :func:`clipped_logit` checks every ball and re-evaluates a wider one at
    doubled precision, so a wrong estimate costs time, never the bound.

    >>> b = theorem_tolerances(2, epsilon_W=fmpq(1, 10), epsilon_v=1, W_bound=2, margin=1)
    >>> minimum_prec(b, d=2, epsilon_W=fmpq(1, 10), W_bound=2)
    12
    """
    budget = log_radius_budget(bounds.W_entry, d=d, epsilon_W=epsilon_W, W_bound=W_bound)
    return _bits_for(budget)


def _bits_for(budget: fmpq) -> int:
    """The smallest prec >= 8 with 2^(3 - prec) <= budget."""
    prec = 8
    while fmpq(8, 2**prec) > budget:
        prec += 1
    return prec


def checked_prec(prec: Any, minimum: int, *, name: str = "prec") -> int:
    """``prec`` validated against [minimum, MAX_PREC]; None gives max(DEFAULT_PREC, minimum).

    Raises InvalidEntryError naming the minimum (before any query is spent).

    >>> checked_prec(None, 12), checked_prec(20, 12)
    (128, 20)
    """
    if minimum > MAX_PREC:
        raise InvalidEntryError(
            f"{name}: these tolerances need at least {minimum} bits for the logarithms, more "
            f"than the maximum {MAX_PREC}; ask for a larger epsilon_W")
    if prec is None:
        return max(DEFAULT_PREC, minimum)
    if isinstance(prec, bool) or not isinstance(prec, (int, np.integer)):
        raise InvalidEntryError(f"{name} = {prec!r} must be an integer number of bits, at "
                                f"least {minimum} (or None for {max(DEFAULT_PREC, minimum)})")
    if prec < minimum:
        raise InvalidEntryError(
            f"{name} = {prec} bits is too low: the logarithm's ball radius must stay below half "
            f"the slack between the theorem's entry bound and eps_W / d, which takes at least "
            f"{minimum} bits here by the estimate 2^(3 - {name}) of the radius; pass "
            f"{name} >= {minimum} (or omit it)")
    if prec > MAX_PREC:
        raise InvalidEntryError(f"{name} = {prec} bits exceeds the maximum {MAX_PREC}; "
                                f"{minimum} bits suffice here")
    return int(prec)


def clipped_logit(alpha: fmpq, prec: int, budget: fmpq) -> tuple[fmpq, fmpq, bool]:
    """logit(clip(alpha)) as (rational value, radius, clipped?), clip at tau_c exactly.

    The clip decision compares alpha with tau_c = sigma(-1/2) in EXP (exact).
    Inside, the logarithm is an arb ball at ``prec`` bits, re-evaluated at
    doubled precision until its radius is <= ``budget`` (this check, not
    :func:`minimum_prec`'s estimate, keeps the reported bound); its midpoint
    is returned with the radius.

    >>> clipped_logit(fmpq(1, 10), 64, fmpq(1, 2**40))
    (-1/2, 0, True)
    >>> t, r, c = clipped_logit(fmpq(1, 2), 64, fmpq(1, 2**40)); (t, r, c)
    (0, 0, False)
    """
    if EXP(alpha) <= TAU_C:
        return fmpq(-1, 2), fmpq(0), True
    if EXP(alpha) >= 1 - TAU_C:
        return fmpq(1, 2), fmpq(0), True
    p = prec
    while True:
        ball = logit_ball(alpha, p)
        radius = arf_to_fmpq(ball.rad())
        if radius <= budget:
            return arf_to_fmpq(ball.mid()), radius, False
        if p > MAX_PREC:  # pragma: no cover - arb's logarithm converges
            raise AssertionError(f"logit({alpha}) not within {budget} at {p} bits")
        p *= 2


def logit_enclosure(lo: fmpq, hi: fmpq, prec: int) -> tuple[fmpq | None, fmpq | None]:
    """Rational bounds (low, high) with logit(p) in [low, high] for every p in [lo, hi] ∩ (0, 1).

    logit is increasing: low is a lower bound of logit(lo) (None, i.e. -inf, when
    lo <= 0), high an upper bound of logit(hi) (None, +inf, when hi >= 1); from
    arb balls at ``prec`` bits.

    >>> logit_enclosure(fmpq(1, 2), fmpq(1, 2), 64) == (0, 0)
    True
    >>> low, high = logit_enclosure(fmpq(-1, 10), fmpq(1, 4), 64)   # logit(1/4) = -log 3
    >>> low is None, fmpq(-10987, 10000) < high < fmpq(-10986, 10000)
    (True, True)
    """
    low = high = None
    if lo > 0:
        b = logit_ball(lo, prec)
        low = arf_to_fmpq(b.mid()) - arf_to_fmpq(b.rad())
    if hi < 1:
        b = logit_ball(hi, prec)
        high = arf_to_fmpq(b.mid()) + arf_to_fmpq(b.rad())
    return low, high


@dataclass(frozen=True)
class ClippedLogits:
    """logit(clip(alpha_hat_lj)) for every probe row l and column j (before / (a b)).

    Attributes
    ----------
    T : the clipped logits (rationals).
    clipped : how many estimates were clipped at tau_c or 1 - tau_c.
    radius : the largest radius of the logarithm's arb balls.
    W_bound_confirmed : True when the answers prove ||W||_F <= W_bound (given
        the oracle contract), so that it need not be listed as a hypothesis.
    spread_sq : an upper bound on sum_lj (logit(alpha*_lj) - T_lj)^2 that holds
        whatever W is (from the enclosures), or None when an enclosure reaches 0 or 1.
    """

    T: list[list[fmpq]]
    clipped: int
    radius: fmpq
    W_bound_confirmed: bool
    spread_sq: fmpq | None


def clipped_logits(oracle: NoisyOracle, rows: Array, gains: Any, v: Any, *, W_bound: fmpq,
                   tau_f: fmpq, tau_v: fmpq, prec: int, radius_budget: fmpq,
                   row_gain_sq: Any = 1, inverse_gain_sq: Any = 1,
                   progress: Callable[[int, int], None] | None = None) -> ClippedLogits:
    """Measure the scaled probes of every column and invert them with the clipped logit.

    For probe rows u_l (``rows``, norm <= 1) with gains c_l = u_l . v_hat
    (``gains``, nonzero) and column j: ask X = [(b u_l + a e_j)^T; (a e_j)^T] at
    tolerance tau_f (a = 1/2, b = 1/W_bound), set alpha_hat = (y - a v_hat_j) / (b c_l)
    and t = logit(clip(alpha_hat)). Shared by the paper's learner (rows = I) and
    the adapted one.

    Whatever W is, alpha* = sigma(a b u_l^T W e_j) lies within
    e_l = (tau_f + a tau_v + b tau_v ||u_l||_1) / (b |c_l|) of alpha_hat (module
    docstring). HypothesisViolatedError (``||W||_F <= W_bound``) when the
    answers prove the hypothesis false: an enclosure misses
    [sigma(-h_l), sigma(h_l)], h_l >= ||u_l|| / 2 (exact, in EXP), or the
    smallest squared logits the enclosures allow sum to more than
    ``row_gain_sq`` / 4 (``row_gain_sq`` >= ||Z||_2^2). The hypothesis is
    confirmed when the largest squared logits sum to at most
    1 / (4 ``inverse_gain_sq``) (``inverse_gain_sq`` >= ||Z^{-1}||_2^2).
    """
    d = oracle.d
    a, b = PROBE_A, 1 / W_bound
    row_gain_sq, inverse_gain_sq = rational(row_gain_sq), rational(inverse_gain_sq)
    I = QQ.eye(d)
    rows_q = [[rational(x) for x in rows[l]] for l in range(d)]
    half_norms = [sqrt_upper(sum((x * x for x in u), fmpq(0))) / 2 for u in rows_q]
    spans = [(tau_f + a * tau_v + b * tau_v * sum((abs(x) for x in u), fmpq(0)))
             for u in rows_q]
    T: list[list[Any]] = [[None] * d for _ in range(d)]
    low_sq, high_sq, spread_sq, unbounded = fmpq(0), fmpq(0), fmpq(0), False
    clipped = 0
    radius = fmpq(0)
    for j in range(d):
        Xs = np.empty((d, 2, d), dtype=object)
        Xs[:, 0, :] = b * rows + a * I[j]
        Xs[:, 1, :] = a * I[j]
        for l in range(d):
            for row in Xs[l]:
                if sum(x * x for x in row) > 1:  # pragma: no cover - the callers' rows ensure it
                    raise HypothesisViolatedError("a probe token has norm > 1",
                                                  hypothesis="query tokens have norm <= 1")
        y = oracle.batch(Xs, phase="W", tolerance=tau_f)
        for l in range(d):
            c = rational(gains[l])
            if c == 0:  # pragma: no cover - the callers' gains are bounded away from 0
                raise AssertionError("internal error: a probe with u_l . v_hat = 0")
            alpha = (rational(y[l]) - a * rational(v[j])) / (b * c)
            e = spans[l] / (b * abs(c))
            lo, hi = alpha - e, alpha + e
            where = f"probe ({l}, {j}) (row u_{l}, column {j})"
            if hi <= 0 or lo >= 1:
                raise HypothesisViolatedError(
                    f"the oracle broke its tolerance: at {where} the answers put the softmax "
                    f"weight alpha* in [{_dec(lo)}, {_dec(hi)}], outside (0, 1) (alpha_hat = "
                    f"{_dec(alpha)}, tau_f = {tau_f}, tau_v = {tau_v}); no single head gives "
                    "these answers", hypothesis=ORACLE_HYPOTHESIS)
            h = half_norms[l]
            s_lo = EXP.sigmoid(EXP(-h))
            s_hi = 1 - s_lo
            if EXP(hi) < s_lo or EXP(lo) > s_hi:
                raise HypothesisViolatedError(
                    f"||W||_F <= W_bound = {W_bound} is violated: at {where} the answers put "
                    f"alpha* = sigma(a b u_{l}^T W e_{j}) in [{_dec(lo)}, {_dec(hi)}] "
                    f"(alpha_hat = {_dec(alpha)} +- {_dec(e)} from tau_f = {tau_f}, tau_v = "
                    f"{tau_v}), while ||W||_F <= {W_bound} needs it in [sigma(-{h}), "
                    f"sigma({h})] = [{_dec(s_lo)}, {_dec(s_hi)}]: |u_{l}^T W e_{j}| > "
                    f"{W_bound} ||u_{l}||. Pass a W_bound that holds (or check the oracle's "
                    "tolerance)", hypothesis="||W||_F <= W_bound")
            t, rad, was_clipped = clipped_logit(alpha, prec, radius_budget)
            T[l][j] = t
            clipped += was_clipped
            radius = max(radius, rad)
            low, high = logit_enclosure(lo, hi, prec)
            if low is not None and low > 0:
                low_sq += low * low
            elif high is not None and high < 0:
                low_sq += high * high
            if low is None or high is None:
                unbounded = True
            else:
                high_sq += max(low * low, high * high)
                spread = max(t - low, high - t)
                spread_sq += spread * spread
        if progress is not None:
            progress(j + 1, d)
    if low_sq > row_gain_sq / 4:
        raise HypothesisViolatedError(
            f"||W||_F <= W_bound = {W_bound} is violated: the answers bound every logit "
            f"a b u_l^T W e_j from below, and the sum of squares of these lower bounds is "
            f"{_dec(low_sq)} > ||Z||_2^2 (a b W_bound)^2 <= {_dec(row_gain_sq / 4)}, so "
            f"||W||_F >= 2 W_bound sqrt({_dec(low_sq)} / {_dec(row_gain_sq)}) > W_bound. Pass a "
            "W_bound that holds (or check the oracle's tolerance)",
            hypothesis="||W||_F <= W_bound")
    confirmed = not unbounded and 4 * inverse_gain_sq * high_sq <= 1
    return ClippedLogits(T, clipped, radius, confirmed, None if unbounded else spread_sq)


def v_hypotheses(v_hat: Any, tau_v: fmpq) -> tuple[fmpq, fmpq]:
    """(smallest, largest) ||v||^2 over the box v_hat +- tau_v that the answers allow.

    Raises HypothesisViolatedError (``||v|| <= 1``) when the smallest is above 1:
    no v consistent with the answers is in the unit ball. Shared by both learners.

    >>> v_hypotheses([fmpq(1, 2), fmpq(-1, 4)], fmpq(1, 4))
    (1/16, 13/16)
    >>> try:
    ...     v_hypotheses([fmpq(3, 4), fmpq(3, 4)], fmpq(1, 100))
    ... except HypothesisViolatedError as exc:
    ...     print(exc.hypothesis, str(exc).endswith("||v||^2 >= 1.0952 > 1"))
    ||v|| <= 1 True
    """
    vq = [abs(rational(x)) for x in v_hat]
    low = sum((max(x - tau_v, fmpq(0)) ** 2 for x in vq), fmpq(0))
    high = sum(((x + tau_v) ** 2 for x in vq), fmpq(0))
    if low > 1:
        raise HypothesisViolatedError(
            f"||v|| <= 1 is violated: every v within tau_v = {tau_v} of the answers has "
            f"||v||^2 >= {_dec(low)} > 1", hypothesis="||v|| <= 1")
    return low, high


@checked_arguments()
def learn_single_head_noisy(
    oracle: NoisyOracle,
    *,
    epsilon_W: Any,
    epsilon_v: Any,
    W_bound: Any,
    margin: Any,
    prec: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """(W, v) within (epsilon_W, epsilon_v) from d + d^2 approximate queries.

    Label ``noisy_oracle`` (paper Thm 6.2 v1 / 6.1 v2); see the module
    docstring. The recovery is over QQ with status ``approximate``; its
    ``hypotheses`` name every hypothesis of the theorem that the answers did
    not confirm (the bounds are conditional on them) and the oracle contract;
    its options hold the tolerances asked for, the bounds (which hold given
    those hypotheses) and the hypotheses checked or confirmed.

    Parameters
    ----------
    prec : bits for the logarithms (arb); None for max(128, :func:`minimum_prec`).
        Validated before any query: below the minimum, above ``MAX_PREC`` or
        not an integer raises InvalidEntryError naming the minimum.

    Raises
    ------
    HypothesisViolatedError : naming the hypothesis (W_bound >= 2, margin,
        ||v|| <= 1, ||W||_F <= W_bound), when the parameters or the answers
        prove it false; the message gives the figures.
    InvalidEntryError : a bad ``prec`` or a non-noisy oracle.

    >>> from fractions import Fraction as Fr
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, -1], [Fr(1, 2), 0]], [Fr(1, 2), Fr(-1, 2)], field=EXP)
    >>> oracle = NoisyOracle(head, tolerance=0, adversary="worst")
    >>> rec = learn_single_head_noisy(oracle, epsilon_W=Fr(1, 10), epsilon_v=Fr(1, 10),
    ...                               W_bound=2, margin=Fr(1, 2))
    >>> rec.queries, rec.status, rec.hypotheses[0]
    (6, 'approximate', 'min |v_i| >= margin = 1/2')
    >>> err = max(abs(EXP(rec.W[i, j]) - head.W[i, j]) for i in range(2) for j in range(2))
    >>> err <= EXP(Fr(rec.options["W_entry_bound"])) <= EXP(Fr(1, 10)) / 2
    True
    """
    if not isinstance(oracle, NoisyOracle):
        raise InvalidEntryError("learn_single_head_noisy needs an approximate-value oracle "
                                "(NoisyOracle), which takes a tolerance per query")
    d = oracle.d
    bounds = theorem_tolerances(d, epsilon_W=epsilon_W, epsilon_v=epsilon_v, W_bound=W_bound,
                                margin=margin)
    Wb, mu = rational(W_bound), rational(margin)
    budget = log_radius_budget(bounds.W_entry, d=d, epsilon_W=epsilon_W, W_bound=Wb)
    prec = checked_prec(prec, _bits_for(budget))
    span = QuerySpan.begin(oracle)
    tau_v = bounds.tau_v
    confirmed: list[str] = []
    unconfirmed: list[str] = []

    # 1. v within tau_v: v lies in the box v_hat +- tau_v
    I = QQ.eye(d)
    v = oracle.batch(I[:, None, :], phase="v", tolerance=tau_v)
    low = [i for i in range(d) if abs(v[i]) + tau_v < mu]
    if low:
        i = low[0]
        raise HypothesisViolatedError(
            f"min |v_i| >= margin = {mu} is violated: |v_hat_{i}| = {_dec(abs(v[i]))} is "
            f"within tau_v = {tau_v} of v_{i}, so |v_{i}| <= {_dec(abs(v[i]) + tau_v)} < margin "
            "(the paper's algorithm needs every coordinate of v bounded away from 0; the "
            "adapted variant needs only ||v|| >= norm_lower)", hypothesis="min |v_i| >= margin")
    _, v_high = v_hypotheses(v, tau_v)
    (confirmed if v_high <= 1 else unconfirmed).append("||v|| <= 1")
    (confirmed if all(abs(x) - tau_v >= mu for x in v) else unconfirmed).append(
        f"min |v_i| >= margin = {mu}")

    # 2. the scaled probes [(b e_i + a e_j)^T; (a e_j)^T], clipped logits
    a, b = PROBE_A, 1 / Wb
    m = clipped_logits(oracle, QQ.eye(d), v, v, W_bound=Wb, tau_f=bounds.tau_f, tau_v=tau_v,
                       prec=prec, radius_budget=budget, progress=progress)
    (confirmed if m.W_bound_confirmed else unconfirmed).insert(0, f"||W||_F <= W_bound = {Wb}")
    scale = 1 / (a * b)
    W = QQ.array([[m.T[i][j] * scale for j in range(d)] for i in range(d)])
    log_error = m.radius * scale
    return span.recovery(
        label=LABEL,
        paper_ref=PAPER_REF,
        field=QQ,
        params={"W": W, "v": v},
        seed=0,
        options={
            "bounds": bounds.to_json(),
            "W_entry_bound": str(bounds.W_entry + log_error),
            "W_frobenius_bound": str(bounds.W_frobenius + d * log_error),
            "v_bound": str(bounds.v_2),
            "log_ball_radius": str(log_error),
            "clipped": m.clipped,
            "prec": prec,
            "W_bound": str(Wb), "margin": str(mu),
            "epsilon_W": str(rational(epsilon_W)), "epsilon_v": str(rational(epsilon_v)),
            "hypotheses_checked": list(CHECKED),
            "hypotheses_confirmed": confirmed,
        },
        approximate=True,
        hypotheses=(*unconfirmed, ORACLE_HYPOTHESIS),
    )


@dataclass(frozen=True)
class NaiveOutcome:
    """What the naive (unclipped, unscaled) inverse produced on an oracle."""

    W: Array  # float estimates, NaN where the inverse failed
    failures: int  # entries with alpha_hat outside (0, 1): no logit at all
    queries: int


def naive_inverse(oracle: NoisyOracle, *, tolerance: Any) -> NaiveOutcome:
    """The inverse the theorem improves on: probes [e_i + e_j; e_j], no clipping.

    alpha_hat = (y - v_hat_j) / v_hat_i and W_ij = logit(alpha_hat), which is
    undefined when alpha_hat is outside (0, 1), as a small tolerance can make it.
    Float estimates (this is the baseline being measured, not a result).
    """
    d = oracle.d
    tau = rational(tolerance)
    I = QQ.eye(d)
    v = oracle.batch(I[:, None, :], phase="naive v", tolerance=tau)
    W = np.full((d, d), np.nan)
    failures = 0
    for j in range(d):
        Xs = np.empty((d, 2, d), dtype=object)
        Xs[:, 0, :] = I + I[j]
        Xs[:, 1, :] = I[j]
        y = oracle.batch(Xs, phase="naive W", tolerance=tau)
        for i in range(d):
            if v[i] == 0:
                failures += 1
                continue
            alpha = (y[i] - v[j]) / v[i]
            if not 0 < alpha < 1:
                failures += 1
                continue
            W[i, j] = float(arf_to_fmpq(logit_ball(alpha, 64).mid()))
    return NaiveOutcome(W, failures, d + d * d)
