"""A single head from membership (label) queries: sign(f(X)), exactly where possible.

Label ``membership_queries``; our own result on the question of the paper's
v2 appendix (membership queries), whose statement is unknown to us
(paper.md): Part II of the companion.

What labels can and cannot determine (checked symbolically and on
instances in :mod:`exactattn.checks.membership_queries`):

* ``sign f_{W, lambda v} = sign f_{W, v}`` for every lambda > 0, so v is at
  best known up to a positive scale. Length-1 labels sign(v . x) determine
  exactly the ray of v (for v, v' not positive multiples of each other,
  x = (v . v') v - |v|^2 v' separates them).
* For two tokens [y; x] (x last) and g = (y - x)^T W x,
  (1 + e^g) f = x . v + e^g (y . v). With x . v > 0 > y . v the label is +1
  exactly when g < log(-x . v / y . v): labels compare the score gap g with
  logarithms of ratios that the learner controls, so W is determined
  completely whenever v != 0; with v = 0 every label is 0 and nothing is.

The learner (exact route, rationals of bounded height (M, Q)):

1. ``v signs``: labels of [e_i] give sign(v_i) (d queries). All 0: v = 0,
   :class:`~exactattn.errors.NotIdentifiableError`. Else the pivot p is the
   first i with a nonzero label.
2. ``v ratios``: for each other i with v_i != 0, r_i = v_i / v_p lies in
   (0, M] or [-M, 0) (its sign is known); the label of [e_i - c e_p] is
   sign(v_p) sign(r_i - c). Bisection with cuts c of denominator 2D > Q
   (never equal to r_i) until the interval is narrower than 1/Q^2.
3. ``W``: probes u_j = e_j (v_j != 0) or e_j + e_p, and z_i = +-e_i or
   +-(e_i + e_p), the sign chosen so that z_i . v and u_j . v have opposite
   signs. The query X = [(lambda u_j + z_i / lambda)^T; (lambda u_j)^T] has
   g = z_i^T W u_j = sigma W_ij + kappa, where kappa involves only entries
   learned before (W_ip, W_pj, W_pp; entries with v_i v_j != 0 first), and
   its label says whether g < logit(A), A = lambda^2 |u_j . v| / |z_i . v|.
   The rational lambda is chosen (python-flint ``arb``, rigorous) so that the
   cut sigma (logit(A) - kappa) is within eta = 1 / (1024 Q^2) of the middle
   of the current interval. Each cut is irrational (log of a rational
   != 1), so a label 0 cannot come from a head with rational W.
4. Each entry's final interval is narrower than 1/Q^2, so it holds at most
   one rational of denominator <= Q (two such differ by >= 1/Q^2); the
   continued-fraction best approximation of its midpoint
   (``fractions.Fraction.limit_denominator``, the Stern–Brocot descent) is
   that rational, and it is checked to lie in the interval. None there: a
   :class:`~exactattn.errors.RecoveryFailedError` naming the entry, the
   interval and its queries.

Without a height bound (``epsilon=``, only |W_ij|, |v_i / v_p| <= M): the
same probes, every cut an ``arb`` ball, and each entry returned with an
interval of width <= epsilon after ceil(log2(64 M / epsilon)) labels
(status ``approximate``; :func:`_learn_intervals` explains the sizing). Over
EXP labels the intervals are enclosures (arb balls, exact comparisons).
Over float64 (interval route only) the cuts are computed from the float
tokens actually sent and widened by the band where a float label can be
wrong under an assumed float error of the oracle (the rounding model of
``f64_error_bounds``, a first-order estimate, not a proved bound): the
intervals hold given that named hypothesis, not rigorously.

Query count (closed form, :func:`query_count`): with
L(w) = min{L : w 2^-L + 2 eta < 1/Q^2} = floor(log2(512 w Q^2 / 511)) + 1
bisection steps for an initial width w, the learner asks exactly
d + (n_v - 1) L(M) + d^2 L(2M) labels, n_v the number of nonzero v_i. The
counting lower bound (:func:`lower_bound`) is (d^2 + d - 1) log_3 F(M, Q)
for any learner, with F(M, Q) = 2M sum_{q <= Q} phi(q) + 1 rationals of
height (M, Q).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from flint import arb, ctx, fmpq

from ..errors import (
    HypothesisViolatedError,
    IncompatibleFieldError,
    InvalidEntryError,
    NotIdentifiableError,
    RecoveryFailedError,
)
from ..fields import EXP, F64, Array
from ..fields.float64 import higham_gamma
from ..fields.precision import arf_to_fmpq
from ..oracle import SignOracle
from .arguments import checked_arguments
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head_membership", "query_count", "bisection_steps", "height_class_size",
           "lower_bound", "LABEL", "PAPER_REF", "ETA_FACTOR"]

LABEL = "membership_queries"
PAPER_REF = "ours (cf. v2 appendix (reported) on membership queries, statement unknown)"

#: every cut is within eta = 1 / (ETA_FACTOR Q^2) of the middle of its interval
ETA_FACTOR = 1024


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidEntryError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_rational(name: str, value: Any) -> fmpq:
    from ..fields.rational import rational

    try:
        q = rational(value)
    except InvalidEntryError as exc:
        raise InvalidEntryError(f"{name} must be a positive rational: {exc}") from None
    if q <= 0:
        raise InvalidEntryError(f"{name} must be a positive rational, got {q}")
    return q


#: the most bits of one cut point: :func:`_cut_point` evaluates sigmoid(a) at about
#: 64 + 3 |a| + 2 log2(1 / eta) bits, and |a| reaches M (W_ij in [-M, M]); M = 10^9 asked
#: for cut points of 3e9 bits (hours, gigabytes)
MAX_CUT_BITS = 2**17
#: the most labels x bits per cut point of one run: a bound on the work, checked before
#: any label is asked (benchmarks/membership.py's largest size, d = 32 with Q = 10^6, is
#: about 2^23; Q = 10^400 at d = 2, about 12 s, is above it)
MAX_LABEL_BITS = 2**25


def _check_work(d: int, M: int, eta: fmpq, labels: int, what: str, instead: str) -> None:
    """Refuse, before any label, a run whose cut points or total work exceed the bounds.

    ``what`` names the arguments that set the resolution eta, ``instead`` what to
    do. The figures: bits = 64 + 3M + 2 log2(1/eta), the precision of the cut
    points at logit M; work = labels x bits.

    >>> _check_work(2, 10**9, fmpq(1, 4096), 100, "max_abs", "lower max_abs")
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: max_abs = 1000000000: a cut point at logit M ...
    """
    bits = 64 + 3 * M + 2 * int(eta.q).bit_length()
    if bits > MAX_CUT_BITS:
        raise InvalidEntryError(
            f"max_abs = {M}: a cut point at logit M needs about {bits} bits, above "
            f"MAX_CUT_BITS = {MAX_CUT_BITS}; {instead}")
    if labels * bits > MAX_LABEL_BITS:
        raise InvalidEntryError(
            f"{what} (d = {d}, max_abs = {M}): {labels} labels at about {bits} bits each "
            f"({labels * bits:.3e} label-bits) exceed the work bound MAX_LABEL_BITS = "
            f"{MAX_LABEL_BITS}, checked before any label; {instead}")


def _short(n: int) -> str:
    """An integer for a message: in full up to 30 digits, else its leading digits and length."""
    text = str(n)
    return text if len(text) <= 30 else f"{text[:4]}... ({len(text)} digits)"


def _eta(Q: int) -> fmpq:
    return fmpq(1, ETA_FACTOR * Q * Q)


def _interval_eta(eps: fmpq) -> fmpq:
    """The resolution of the interval route's cut points (``epsilon=``): epsilon / 256."""
    return eps / 256


def bisection_steps(width: Any, max_denominator: int) -> int:
    """L(w): the fewest halvings, each cut within eta of the middle, to width < 1/Q^2.

    An interval of width w_k cut within eta = 1/(1024 Q^2) of its middle
    leaves at most w_k / 2 + eta, so after L steps w_L < w 2^-L + 2 eta, which is
    < 1/Q^2 exactly when 2^L > 512 w Q^2 / 511:
    L = floor(log2(512 w Q^2 / 511)) + 1 (0 when that is below 1).

    >>> bisection_steps(1, 1), bisection_steps(2, 1000), bisection_steps(20, 1000)
    (1, 21, 25)
    """
    Q = _positive_int("max_denominator", max_denominator)
    w = Fraction(width)
    half = ETA_FACTOR // 2  # 2 eta = 1 / (half Q^2)
    X = Fraction(half) * w * Q * Q / (half - 1)
    if X < 1:
        return 0
    L = (X.numerator // X.denominator).bit_length()  # floor(log2 X) + 1
    assert w / 2**L + 2 * Fraction(1, ETA_FACTOR * Q * Q) < Fraction(1, Q * Q)
    return L


def query_count(d: int, nonzero_v: int, max_abs: int, max_denominator: int, *,
                ratio_bound: tuple[int, int] | None = None) -> int:
    """The exact number of labels the learner asks: d + (n_v - 1) L(M_r) + d^2 L(2M).

    L(M_r) uses the ratio bound (M_r, Q_r) (default (M, Q)), L(2M) the bound Q.

    >>> query_count(4, 3, 10, 1000)       # 4 + 2 * 24 + 16 * 25
    452
    >>> L = bisection_steps
    >>> query_count(4, 3, 10, 1000) == 4 + 2 * L(10, 1000) + 16 * L(20, 1000)
    True
    """
    M, Q = _positive_int("max_abs", max_abs), _positive_int("max_denominator", max_denominator)
    Mr, Qr = _ratio_bound(ratio_bound, M, Q)
    if not 1 <= nonzero_v <= d:
        raise InvalidEntryError(f"nonzero_v must be in [1, d = {d}], got {nonzero_v}")
    return d + (nonzero_v - 1) * bisection_steps(Mr, Qr) + d * d * bisection_steps(2 * M, Q)


def _ratio_bound(ratio_bound: Any, M: int, Q: int) -> tuple[int, int]:
    if ratio_bound is None:
        return M, Q
    if not isinstance(ratio_bound, tuple | list) or len(ratio_bound) != 2:
        raise InvalidEntryError(f"ratio_bound must be a pair (M_r, Q_r), got {ratio_bound!r}")
    return (_positive_int("ratio_bound[0] (M_r)", ratio_bound[0]),
            _positive_int("ratio_bound[1] (Q_r)", ratio_bound[1]))


@lru_cache(maxsize=16)
def height_class_size(max_abs: int, max_denominator: int) -> int:
    """F(M, Q): the number of rationals r with |r| <= M and denominator <= Q.

    For each q <= Q the numerators p in (-Mq, Mq] coprime to q are 2M phi(q)
    (2M full blocks of q consecutive integers), plus p = 0 for q = 1:
    F = 2M sum_{q <= Q} phi(q) + 1 (sympy's totient sieve).

    >>> height_class_size(1, 2)     # -1, -1/2, 0, 1/2, 1
    5
    """
    from sympy import sieve

    M, Q = _positive_int("max_abs", max_abs), _positive_int("max_denominator", max_denominator)
    return 2 * M * sum(int(t) for t in sieve.totientrange(1, Q + 1)) + 1


def lower_bound(d: int, max_abs: int, max_denominator: int, *, answers: int = 3) -> int:
    """Labels any learner needs in the worst case: ceil((d^2 + d - 1) log_answers F(M, Q)).

    The class holds F^(d^2) matrices W times F^(d - 1) rays v = (1, r_2, ..., r_d),
    every pair with different label functions (W and the ray of v are determined
    by the labels when v != 0: the identifiability argument of the module
    docstring, checked on whole small classes by the claim ``lower_bound``). A
    learner that asks q queries with ``answers`` possible labels each (3 for
    sign labels) is a decision tree with at most answers^q leaves, one output
    per leaf (a prose step). The result is the least q with answers^q >= F^k,
    found in integers (the float logarithm only picks where to start).

    >>> lower_bound(1, 1, 1)        # F(1, 1) = 3 matrices [-1], [0], [1]: one ternary label
    1
    >>> lower_bound(1, 1, 1, answers=2)
    2
    """
    if answers < 2:
        raise InvalidEntryError(f"answers must be >= 2, got {answers}")
    k = d * d + d - 1
    F = height_class_size(max_abs, max_denominator)
    N = F**k
    q = max(0, math.floor(k * math.log(F) / math.log(answers)) - 2)
    while answers**q < N:
        q += 1
    while q > 0 and answers ** (q - 1) >= N:  # a float start above the least q
        q -= 1
    return q


def _cut_point(mid: fmpq, sigma: int, kappa: fmpq, ratio: fmpq, eta: fmpq,
               where: str) -> tuple[fmpq, fmpq]:
    """lambda and A = lambda^2 ratio with sigma (logit(A) - kappa) within eta of ``mid``.

    ``ratio`` = |u . v| / |z . v|. Rigorous: the distance is bounded with
    python-flint ``arb`` at rising precision; lambda is a dyadic rational.
    """
    a = sigma * mid + kappa  # the logit we want: A* = sigmoid(a)
    prec = 64 + int(abs(float(a)) * 3) + 2 * max(1, eta.q.bit_length())
    for _ in range(12):
        with ctx.workprec(prec):
            target = 1 / (1 + (-arb(a)).exp())
            lam_ball = (target / arb(ratio)).sqrt()
            lam = arf_to_fmpq(lam_ball.mid())
            A = lam * lam * ratio
            if A == fmpq(1, 2):  # logit(A) = 0 is rational: nudge lambda off it
                lam += fmpq(1, 1 << prec)
                A = lam * lam * ratio
            if 0 < A < 1:
                cut = sigma * ((arb(A) / arb(1 - A)).log() - arb(kappa))
                if lam > 0 and bool(abs(cut - arb(mid)) < arb(eta)):
                    return lam, A
        prec *= 2
    raise RecoveryFailedError(  # pragma: no cover - arb converges long before
        f"{where}: no cut within {eta} of {mid} at {prec} bits")


def _odd_dyadic_near(mid: fmpq, eta: fmpq) -> fmpq:
    """A rational within eta of ``mid`` whose denominator (a power of 2) exceeds 1/(2 eta)."""
    D = 1 << (eta.q // eta.p).bit_length()  # D >= 1/eta
    m = (mid.p * D) // mid.q  # floor(mid D)
    return fmpq(2 * m + 1, 2 * D)


def _certified_rational(lo: fmpq, hi: fmpq, Q: int, entry: str, first: int, last: int,
                        hypothesis: str) -> fmpq:
    """The unique rational of denominator <= Q in [lo, hi] (width < 1/Q^2), or an error."""
    assert hi - lo < fmpq(1, Q * Q)
    mid = (lo + hi) / 2
    best = Fraction(int(mid.p), int(mid.q)).limit_denominator(Q)
    r = fmpq(best.numerator, best.denominator)
    if lo <= r <= hi:
        return r
    raise RecoveryFailedError(
        f"{entry}: the labels of queries #{first}..#{last} put it in [{lo}, {hi}] "
        f"(width {float(hi - lo):.3e} < 1/Q^2 = {1 / Q**2:.3e}), which holds no rational of "
        f"denominator <= {Q} (the nearest is {r}): the hypothesis '{hypothesis}' fails or "
        "the oracle is not a single head; raise max_abs / max_denominator or check the oracle")


@checked_arguments()
def learn_single_head_membership(
    oracle: SignOracle,
    *,
    max_abs: int,
    max_denominator: int | None = None,
    ratio_bound: tuple[int, int] | None = None,
    epsilon: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """Recover W exactly and v up to a positive scale from sign labels.

    Label ``membership_queries`` (ours; see the module docstring for the
    algorithm, the identifiability and the query count).

    Parameters
    ----------
    oracle : a :class:`~exactattn.oracle.SignOracle` with threshold 0 over EXP
        (over F64 only with ``epsilon=``).
    max_abs, max_denominator : the height bound (M, Q): every entry of W, and every
        ratio v_i / v_p for the pivot p, is a rational with |.| <= M and
        denominator <= Q. No label can confirm it: the result is ``exact_given``.
    ratio_bound : (M_r, Q_r), a separate height bound for the ratios v_i / v_p
        (default (M, Q)); entries of v of height (M, Q) give ratios of height
        (M Q, Q^2).
    epsilon : instead of ``max_denominator``: no height bound, only |W_ij| <= M and
        |v_i / v_p| <= M; every entry is returned with an interval of width
        <= epsilon (status ``approximate``; see :func:`_learn_intervals`): an
        enclosure over EXP labels, over F64 one given the assumed float error.
    progress : called as ``progress(k, d*d)`` after the k-th entry of W.

    Returns
    -------
    Recovery with ``W`` (exact) and ``v`` = v / |v_p| (the hidden v up to a
    positive scale, p = ``options["pivot"]``), after exactly
    :func:`query_count` labels.

    Raises
    ------
    NotIdentifiableError : every length-1 label is 0, so v = 0 and labels are all 0.
    RecoveryFailedError : labels no head of height (M, Q) gives, naming the queries.

    >>> from fractions import Fraction
    >>> from exactattn.models import SingleHeadAttention
    >>> head = SingleHeadAttention([[1, Fraction(-1, 2)], [0, 3]], [2, -4], field=EXP)
    >>> rec = learn_single_head_membership(SignOracle(head), max_abs=4, max_denominator=2)
    >>> rec.W.tolist(), rec.v.tolist(), rec.status
    ([[1, -1/2], [0, 3]], [1, -2], 'exact_given')
    >>> rec.queries == query_count(2, 2, 4, 2)
    True
    """
    if not isinstance(oracle, SignOracle):
        raise InvalidEntryError(
            f"learn_single_head_membership needs a SignOracle (labels), got "
            f"{type(oracle).__name__}; for value queries use learn_single_head")
    F = oracle.field
    if F not in (EXP, F64) or (F == F64 and epsilon is None):
        raise IncompatibleFieldError(
            f"the exact membership learner needs labels computed in EXP (exact signs), not "
            f"{F.name}: a float label is wrong wherever |f(X)| is below the rounding error. "
            "Over F64 only the interval route runs (epsilon=, status approximate)")
    if F.sign(oracle.threshold) != 0:
        raise HypothesisViolatedError(
            f"the oracle's threshold is {oracle.threshold}; this learner reads sign(f(X)), "
            "threshold 0 (with a threshold theta != 0 labels also fix the scale of v, a "
            "different problem)", hypothesis="threshold = 0")
    M = _positive_int("max_abs", max_abs)
    if (max_denominator is None) == (epsilon is None):
        raise InvalidEntryError(
            "give exactly one of max_denominator= (exact: rationals of height (M, Q)) and "
            "epsilon= (an interval of width <= epsilon per entry, no height bound)")
    eps = None if epsilon is None else _positive_rational("epsilon", epsilon)
    Q = 1 if max_denominator is None else _positive_int("max_denominator", max_denominator)
    Mr, Qr = _ratio_bound(ratio_bound, M, Q)
    d = oracle.d
    eta = _eta(Q)
    if eps is None:
        _check_work(d, max(M, Mr), _eta(max(Q, Qr)), query_count(d, d, M, Q, ratio_bound=(Mr, Qr)),
                    f"max_denominator = {_short(Q)}",
                    "lower max_denominator or max_abs, or learn intervals (epsilon=)")
    else:
        _check_work(d, M, _interval_eta(eps), d + d * d * interval_steps(M, eps),
                    f"epsilon = {eps}", "raise epsilon or lower max_abs")
    span = QuerySpan.begin(oracle)

    def send(X: list[list[fmpq]]) -> Array:
        """The query as sent: exact over EXP, rounded to float64 over F64."""
        if F == EXP:
            return EXP.array(X)
        return np.array([[float(t) for t in row] for row in X], dtype=np.float64)

    def ask(X: list[list[fmpq]], phase: str) -> int:
        index = oracle.queries
        y = oracle(send(X), phase=phase)
        for s in (-1, 0, 1):
            if y == s:
                return s
        raise RecoveryFailedError(f"query #{index - span.total}: the oracle answered {y}, "
                                  "not a label in {-1, 0, 1}")

    def e(i: int) -> list[fmpq]:
        return [fmpq(int(k == i)) for k in range(d)]

    # 1. signs of v
    signs = [ask([e(i)], "v signs") for i in range(d)]
    if all(s == 0 for s in signs):
        raise NotIdentifiableError(
            f"every label of [e_i] is 0, so v = 0 (v_i = f([e_i^T]) for i = 1..{d}); then "
            "f = 0, every label is 0 and W cannot be identified from labels "
            f"({span.queries} queries)", recovered={"v": EXP.zeros(d)})
    p = next(i for i in range(d) if signs[i] != 0)
    sp = signs[p]
    if eps is not None:
        return _learn_intervals(oracle, span, ask, _sent_tokens(send), signs, p, M, eps,
                                progress)
    ratio_hypothesis = (f"every ratio v_i / v_{p} (p = {p}, the first nonzero coordinate) is a "
                        f"rational with |.| <= {Mr} and denominator <= {Qr}")
    W_hypothesis = f"every entry of W is a rational with |W_ij| <= {M} and denominator <= {Q}"

    # 2. ratios r_i = v_i / v_p
    r = [fmpq(0)] * d
    r[p] = fmpq(1)
    steps_v = bisection_steps(Mr, Qr)
    for i in range(d):
        if i == p or signs[i] == 0:
            continue
        lo, hi = (fmpq(0), fmpq(Mr)) if signs[i] * sp > 0 else (fmpq(-Mr), fmpq(0))
        first = oracle.queries - span.total
        for _ in range(steps_v):
            c = _odd_dyadic_near((lo + hi) / 2, _eta(Qr))
            x = e(i)
            x[p] = -c
            label = ask([x], "v ratios")
            if label == 0:
                raise RecoveryFailedError(
                    f"query #{oracle.queries - span.total - 1}: label 0 says v_{i} / v_{p} = {c}, "
                    f"a denominator above {Qr}: '{ratio_hypothesis}' fails")
            if label * sp > 0:  # r_i > c
                lo = max(lo, c)
            else:
                hi = min(hi, c)
        r[i] = _certified_rational(lo, hi, Qr, f"v_{i} / v_{p}", first,
                                   oracle.queries - span.total - 1, ratio_hypothesis)
    v_hat = [ri * sp for ri in r]  # v / |v_p|

    # 3. W, entry by entry; kappa needs W_ip, W_pj, W_pp first
    def dot(a: list[fmpq], b: list[fmpq]) -> fmpq:
        return sum((x * y for x, y in zip(a, b, strict=True)), fmpq(0))

    # the probe directions: z_i = +-U[i], u_j = U[j], U[k] = e_k or e_k + e_p (v_k = 0)
    U = [e(k) for k in range(d)]
    for k in range(d):
        if signs[k] == 0:
            U[k][p] = fmpq(1)
    cu = [dot(U[k], v_hat) for k in range(d)]  # U[k] . v / |v_p|, never 0
    W: list[list[fmpq | None]] = [[None] * d for _ in range(d)]
    order = sorted(((i, j) for i in range(d) for j in range(d)),
                   key=lambda ij: (signs[ij[0]] == 0) + (signs[ij[1]] == 0))
    steps_W = bisection_steps(2 * M, Q)
    for done, (i, j) in enumerate(order, start=1):
        sigma = -1 if (cu[j] > 0) == (cu[i] > 0) else 1  # z_i . v opposite to u_j . v
        z = [sigma * x for x in U[i]]
        u = U[j]
        kappa = fmpq(0)
        for a in range(d):
            for b in range(d):
                if z[a] != 0 and u[b] != 0 and (a, b) != (i, j):
                    known = W[a][b]
                    assert known is not None, "entries are learned in dependency order"
                    kappa += z[a] * known * u[b]
        ratio = abs(cu[j]) / abs(cu[i])
        sx = 1 if cu[j] > 0 else -1
        lo, hi = fmpq(-M), fmpq(M)
        first = oracle.queries - span.total
        for _ in range(steps_W):
            mid = (lo + hi) / 2
            lam, _A = _cut_point(mid, sigma, kappa, ratio, eta, f"W[{i}][{j}]")
            x = [lam * t for t in u]
            y = [xt + zt / lam for xt, zt in zip(x, z, strict=True)]
            label = ask([y, x], "W")
            if label == 0:
                raise RecoveryFailedError(
                    f"query #{oracle.queries - span.total - 1} (W[{i}][{j}]): label 0 means "
                    "g = log of a rational != 1, impossible for a head with rational W "
                    "(Lindemann-Weierstrass): the oracle is not such a head")
            below = label * sx > 0  # g < logit(A), i.e. sigma W_ij < logit(A) - kappa
            if below == (sigma > 0):  # W_ij < cut
                hi = min(hi, mid + eta)
            else:
                lo = max(lo, mid - eta)
        W[i][j] = _certified_rational(lo, hi, Q, f"W[{i}][{j}]", first,
                                      oracle.queries - span.total - 1, W_hypothesis)
        if progress is not None:
            progress(done, d * d)

    W_exact = EXP.array([[EXP(x) for x in row] for row in W])
    v_exact: Array = EXP.array([EXP(x) for x in v_hat])
    hypotheses = (
        W_hypothesis,
        ratio_hypothesis,
        f"v is known only up to a positive scale (labels are invariant under v -> lambda v, "
        f"lambda > 0): the returned v is v / |v_{p}|, the hidden v only if |v_{p}| = 1",
    )
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=EXP, params={"W": W_exact, "v": v_exact},
        seed=0, hypotheses=hypotheses,
        options={"pivot": p, "max_abs": M, "max_denominator": Q, "ratio_bound": [Mr, Qr],
                 "nonzero_v": sum(1 for s in signs if s != 0), "steps_v": steps_v,
                 "steps_W": steps_W,
            "v_normalisation": f"v / |v_{p}|", "eta": str(eta)},
    )


#: the approximate route gives up on a ratio after this many halvings (|v_i / v_p| < 2^-4000)
MAX_RATIO_STEPS = 4096


def interval_steps(max_abs: int, epsilon: Any) -> int:
    """Labels per entry of W in the approximate route: ceil(log2(64 M / epsilon)).

    >>> interval_steps(4, Fraction(1, 100))
    15
    """
    M = _positive_int("max_abs", max_abs)
    X = Fraction(64 * M) / Fraction(str(_positive_rational("epsilon", epsilon)))
    n = X.numerator // X.denominator
    L = max(0, (n - 1).bit_length()) if X == n else n.bit_length()  # ceil(log2 X)
    assert Fraction(2 * M, 2**L) <= Fraction(str(epsilon)) / 32
    return L


def _ball(lo: fmpq, hi: fmpq) -> arb:
    return arb((lo + hi) / 2, (hi - lo) / 2)


def _bounds(x: arb) -> tuple[fmpq, fmpq]:
    m, r = arf_to_fmpq(x.mid()), arf_to_fmpq(x.rad())
    return m - r, m + r


def _sent_tokens(send: Callable[[list[list[fmpq]]], Array]
                 ) -> Callable[[list[list[fmpq]]], list[list[fmpq]]]:
    """The exact rationals of the query ``send`` makes (floats are dyadic rationals)."""
    def sent(X: list[list[fmpq]]) -> list[list[fmpq]]:
        A = send(X)
        if A.dtype == object:
            return [[EXP.to_rational(t) for t in row] for row in A]
        return [[_float_to_fmpq(float(t)) for t in row] for row in A]

    return sent


def _float_to_fmpq(x: float) -> fmpq:
    q = Fraction(x)
    return fmpq(q.numerator, q.denominator)


def _learn_intervals(oracle: SignOracle, span: QuerySpan, ask: Callable[[Any, str], int],
                     sent: Callable[[list[list[fmpq]]], list[list[fmpq]]],
                     signs: list[int], p: int, M: int, eps: fmpq,
                     progress: Callable[[int, int], None] | None) -> Recovery:
    """Every entry in an interval of width <= eps, from labels (no height bound).

    The same probes as the exact route. What changes: v_i / v_p and the entries
    in kappa are known only as intervals, so each cut sigma (logit(A) - kappa) is
    a ball (python-flint ``arb`` from the rational intervals), and the interval
    of W_ij shrinks to the side of the ball the label names.

    Sizing (why the widths should come out <= eps; a first-order prose argument,
    not what guarantees them): with each cut ball's radius plus its distance to
    the middle at most tau, an interval of width w leaves at most w / 2 + tau.
    The ratios are bisected to relative width delta = eps e^-(4M+1) / 512, so
    A = lambda^2 R (R a ratio of two of them) moves logit(A) by about
    2 delta / (A (1 - A)) <= eps / 64 (|logit A| <= 4M + 1 here,
    A (1 - A) >= e^-(4M+1) / 4). With L = ceil(log2(64 M / eps)) steps per entry
    (2M 2^-L <= eps / 32): entries with v_i v_j != 0 end within eps / 16, entries
    with one v coordinate 0 (kappa: one such entry) within eps / 8, the rest
    (kappa: three entries) within 3 eps / 8. The guarantee is the check that
    follows: the widths are measured exactly and an entry wider than eps is an
    error, never returned.

    Over EXP labels the intervals are enclosures: every cut is an arb ball and
    every comparison exact. Over F64 the cuts are computed from the tokens
    actually sent (the float64 queries, as exact dyadic rationals): x = lambda' u
    exactly, y - x = z / lambda' + e with a known e, whose score term
    lambda' e^T W u is at most lambda' ||e||_1 2M. The oracle's own rounding is
    not known; it is assumed to be what ``f64_error_bounds`` assumes (a
    first-order rounding model, not a proved bound for the oracle's code): the
    scores off by at most gamma_(4d+16) M (||x||_1 + ||y||_1) ||x||_1, which
    moves g by that much, and the value off by at most gamma_(4d+16) ||v||_1
    max|X|, so a label can be wrong only where |f(X)| is that small, a band of
    2.02 E (1/c1 + 1/c2) in g (the logarithm bounded for bands <= 1/4). Each cut
    is widened by both, and the assumption is named in the result: the
    intervals hold given it, not rigorously.
    """
    d = oracle.d
    sp = signs[p]
    floats = oracle.field == F64
    # float64 labels: the oracle's value has error <= gamma_(4d+16) ||v||_1 max|x| (the
    # first-order model of exactattn.learners.single_head.f64_error_bounds), exactly in QQ
    gamma = higham_gamma(4 * d + 16, fmpq(1, 2**53)) if floats else fmpq(0)
    v_norm = 1 + (d - 1) * M  # a bound on ||v / |v_p| ||_1
    delta_bits = math.ceil(math.log2(512 / float(eps)) + (4 * M + 1) / math.log(2)) + 1
    delta = fmpq(1, 2**delta_bits)
    v_lo, v_hi = [fmpq(0)] * d, [fmpq(0)] * d
    v_lo[p] = v_hi[p] = fmpq(1)
    for i in range(d):
        if i == p or signs[i] == 0:
            continue
        lo, hi = (fmpq(0), fmpq(M)) if signs[i] * sp > 0 else (fmpq(-M), fmpq(0))
        steps = 0
        while True:
            x = [fmpq(int(k == i)) for k in range(d)]
            x[p] = -(lo + hi) / 2
            (x,) = sent([x])
            c = -x[p]  # the cut as sent (a float64 over F64)
            widen = gamma * v_norm * max(fmpq(1), abs(c))  # a float label's doubt
            # done at relative width delta, or (F64) when float labels cannot narrow it
            if hi - lo <= max(delta * min(abs(lo), abs(hi)), 4 * widen):
                break
            if steps >= MAX_RATIO_STEPS:
                raise RecoveryFailedError(
                    f"v_{i} / v_{p}: still in [{lo}, {hi}] after {steps} halvings; |v_{i} / "
                    f"v_{p}| is below 2^-{MAX_RATIO_STEPS} or the oracle is not a head")
            label = ask([x], "v ratios")
            steps += 1
            if label == 0 and not floats:
                lo = hi = c
            elif label * sp > 0:
                lo = max(lo, c - widen)
            else:
                hi = min(hi, c + widen)
        v_lo[i], v_hi[i] = lo, hi
    # |u_j . v| / |v_p| and |B_i . v| / |v_p| as intervals (exactly 1 where v_j = 0)
    mag = [(min(abs(v_lo[k]), abs(v_hi[k])), max(abs(v_lo[k]), abs(v_hi[k])))
           if signs[k] != 0 else (fmpq(1), fmpq(1)) for k in range(d)]
    U = [[fmpq(int(k == j) + int(signs[j] == 0 and k == p)) for k in range(d)]
         for j in range(d)]
    W_lo: list[list[fmpq | None]] = [[None] * d for _ in range(d)]
    W_hi: list[list[fmpq | None]] = [[None] * d for _ in range(d)]
    order = sorted(((i, j) for i in range(d) for j in range(d)),
                   key=lambda ij: (signs[ij[0]] == 0) + (signs[ij[1]] == 0))
    L = interval_steps(M, eps)
    sign_u = [sp if signs[j] == 0 else signs[j] for j in range(d)]  # sign of u_j . v
    prec = 64 + delta_bits + 4 * max(1, eps.q.bit_length())
    with ctx.workprec(prec):
        v_ball = [_ball(v_lo[k] * sp, v_hi[k] * sp) if sp > 0 else _ball(v_hi[k] * sp,
                                                                          v_lo[k] * sp)
                  for k in range(d)]  # v / |v_p|
        for done, (i, j) in enumerate(order, start=1):
            sigma = -1 if sign_u[j] == sign_u[i] else 1  # B_i = U_i: same sign as u_i . v
            z = [sigma * x for x in U[i]]
            u = U[j]
            kappa = arb(0)
            for a in range(d):
                for b in range(d):
                    if z[a] != 0 and u[b] != 0 and (a, b) != (i, j):
                        klo, khi = W_lo[a][b], W_hi[a][b]
                        assert klo is not None and khi is not None
                        kappa += int(z[a] * u[b]) * _ball(klo, khi)
            R = _ball(mag[j][0] / mag[i][1], mag[j][1] / mag[i][0])
            R_mid, k_mid = arf_to_fmpq(R.mid()), arf_to_fmpq(kappa.mid())
            lo, hi = fmpq(-M), fmpq(M)
            for _ in range(L):
                mid = (lo + hi) / 2
                lam, _A = _cut_point(mid, sigma, k_mid, R_mid, _interval_eta(eps), f"W[{i}][{j}]")
                x = [lam * t for t in u]
                y = [xt + zt / lam for xt, zt in zip(x, z, strict=True)]
                y, x = sent([y, x])  # exactly what the oracle is asked
                lam = x[j]  # x = lambda' u, u_j = 1
                err = sum((abs(yt - xt - zt / lam) for xt, yt, zt in zip(x, y, z, strict=True)),
                          fmpq(0))  # ||e||_1: 0 over EXP
                c1 = abs(sum((arb(t) * vb for t, vb in zip(x, v_ball, strict=True)), arb(0)))
                c2 = abs(sum((arb(t) * vb for t, vb in zip(y, v_ball, strict=True)), arb(0)))
                doubt = arb(0, lam * err * 2 * M)  # the score term lambda' e^T W u
                if floats:  # where a float label may be wrong, as a band in g
                    # |c1 - e^g c2| / (1 + e^g) <= E (E: the oracle's float error over |v_p|)
                    # near e^g = c1 / c2 gives |g - log(c1 / c2)| <= 2.02 E (1/c1 + 1/c2)
                    E = gamma * v_norm * max(abs(t) for t in x + y)
                    _, band = _bounds(arb(E) * (1 / c1 + 1 / c2) * arb(fmpq(202, 100)))
                    if band > fmpq(1, 4):
                        raise RecoveryFailedError(
                            f"W[{i}][{j}]: float64 labels cannot place the cut (their "
                            f"doubt in g is {float(band):.2e}); learn over EXP")
                    # plus the rounding of the scores y^T W x, x^T W x themselves (the
                    # second term of the assumption, |W_ab| <= M): it shifts g directly
                    x1 = sum((abs(t) for t in x), fmpq(0))
                    y1 = sum((abs(t) for t in y), fmpq(0))
                    doubt += arb(0, band + gamma * M * (x1 + y1) * x1)
                cut = sigma * ((c1 / c2).log() - kappa + doubt)
                label = ask([y, x], "W")
                below = label * sign_u[j] > 0  # g < log(|x.v| / |y.v|)
                c_lo, c_hi = _bounds(cut)
                if label == 0:  # g = the log: W_ij = cut, inside the ball
                    lo, hi = max(lo, c_lo), min(hi, c_hi)
                elif below == (sigma > 0):
                    hi = min(hi, c_hi)
                else:
                    lo = max(lo, c_lo)
            if hi - lo > eps:
                raise RecoveryFailedError(
                    f"W[{i}][{j}]: after {L} labels its interval [{lo}, {hi}] is wider than "
                    f"epsilon = {eps}; the oracle is not a head with |W_ij|, |v_i / v_{p}| <= {M}")
            W_lo[i][j], W_hi[i][j] = lo, hi
            if progress is not None:
                progress(done, d * d)

    def mid_array(los: list[Any], his: list[Any]) -> Array:
        return EXP.array([EXP((a + b) / 2) for a, b in zip(los, his, strict=True)])

    W_mid = np.stack([mid_array(W_lo[i], W_hi[i]) for i in range(d)])
    v_mid = mid_array([x * sp for x in v_lo], [x * sp for x in v_hi])
    width_W = max(b - a for ra, rb in zip(W_lo, W_hi, strict=True)
                  for a, b in zip(ra, rb, strict=True) if a is not None and b is not None)
    intervals = {
        "W_intervals": [[[str(a), str(b)] for a, b in zip(ra, rb, strict=True)]
                        for ra, rb in zip(W_lo, W_hi, strict=True)],
        "v_intervals": [sorted([str(a * sp), str(b * sp)], key=Fraction)
                        for a, b in zip(v_lo, v_hi, strict=True)],
    }
    return span.recovery(
        label=LABEL, paper_ref=PAPER_REF, field=EXP, params={"W": W_mid, "v": v_mid},
        seed=0, approximate=True,
        hypotheses=(
            f"every |W_ij| <= {M} and every |v_i / v_{p}| <= {M} (p = {p})",
            f"v is known only up to a positive scale: the returned v is v / |v_{p}|",
            f"bound: every entry lies in its interval, of width <= epsilon = {eps} "
            "(W: width_W_max is the widest; v ratios to relative width "
            f"2^-{delta_bits} where labels allow)",
        ) + ((
            "float64 labels: the oracle rounds as f64_error_bounds assumes (a first-order "
            "model, not a proved bound): scores within gamma_(4d+16) M ||x||_1 (||x||_1 + "
            "||y||_1) and the value within gamma_(4d+16) ||v||_1 max|X| of the exact ones; "
            "every cut was widened by the band where such a label can be wrong, so the "
            "intervals hold given this assumption",) if floats else ()),
        options={"labels": oracle.field.name, "pivot": p, "max_abs": M, "epsilon": str(eps),
                 "steps_W": L,
                 "width_W_max": str(width_W), "ratio_relative_width": f"2^-{delta_bits}",
                 "v_normalisation": f"v / |v_{p}|", **intervals},
    )
