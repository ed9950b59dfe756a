"""EXP: the exponential field, exact arithmetic for softmax attention.

An element is a quotient P / Q of two finite *exponential sums*

    P = sum_k c_k e^{q_k},   c_k, q_k rational, the q_k distinct,

stored sparsely as the pairs (q_k, c_k), so an exponent 10^6/7 costs what 7/3
costs. With rational parameters and rational tokens, every answer of a
softmax attention oracle is such a quotient (design.md §2, route 1).

Why equality is decidable. By the Lindemann–Weierstrass theorem (in Baker's
form: e^{a_1}, ..., e^{a_n} are linearly independent over the algebraic
numbers for distinct algebraic a_1, ..., a_n), an exponential sum with
distinct rational exponents is 0 as a real number iff all its coefficients
are 0. Hence the map from sparse sums to real numbers is injective, and

    P1 / Q1 == P2 / Q2  iff  P1 * Q2 and P2 * Q1 have the same coefficients,

which is what ``==`` checks: exact rational arithmetic, no floats, no
tolerance. The same theorem says that a sum with a nonzero coefficient is a
nonzero real, so its sign is found by evaluating it in rigorous ball
arithmetic (python-flint ``arb``) at rising precision until the ball
excludes 0; the loop always ends. Exponents closer than 2^-32 are summed as
one cluster by their exact Taylor moments with a rigorous remainder
(:func:`_cluster_ball`), so a near-cancellation caused by tiny exponent gaps
(e^(2^-4200000) - 1) costs no precision; only one set up by the coefficients
themselves needs more bits, and past max(2^22, 4 x the sum's size in bits)
:class:`~exactattn.fields.precision.InsufficientPrecisionError` says so.

Representation. The denominator is kept with leading term (largest
exponent) equal to 1 = 1 * e^0; a quotient equal to a single term c e^q is
stored as that term (decided exactly, by comparing P with c e^q Q). So an
element equal to a rational *is* stored as that rational, and an element of
the form e^q is recognised: its logarithm q is exact. ``log`` of anything
else raises :class:`~exactattn.errors.NotRepresentableError`, never a float.

Learners treat elements as opaque reals (arithmetic, comparison, exp, log);
only this module and certificates look at the sums.

>>> a = EXP.exp(EXP(1) / 2)          # e^(1/2)
>>> p = a / (a + 1)                   # sigma(1/2)
>>> EXP.log(p / (1 - p))              # logit(sigma(1/2)) = 1/2, exactly
1/2
>>> (p > EXP(1) / 2, EXP.sign(p - 1))
(True, -1)
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from flint import arb, ctx, fmpq, fmpz

from ..errors import IncompatibleFieldError, InvalidEntryError, NotRepresentableError
from .base import Array, Field, describe, literal_rational, not_representable
from .precision import InsufficientPrecisionError
from .rational import check_object_array, gaussian_rationals, parse_rational, rational

__all__ = ["ExponentialField", "ExpElement", "EXP"]

#: an exponential sum: (exponent, nonzero coefficient) pairs, exponents strictly
#: decreasing. Kept sorted and merged by comparison rather than hashed: hashing
#: an fmpq costs ten times a comparison.
Sum = tuple[tuple[fmpq, fmpq], ...]

_ZERO = fmpq(0)
_ONE = fmpq(1)
_ONE_SUM: Sum = ((_ZERO, _ONE),)

#: first precision (bits) tried when deciding a sign
SIGN_START_PREC = 64
#: precisions below this evaluate the sum term by term; from it on, exponents closer
#: than CLUSTER_GAP are grouped and each group is summed by its exact Taylor moments
CLUSTER_FROM_PREC = 256
#: exponents closer than this form one cluster (see :func:`_cluster_ball`)
CLUSTER_GAP = fmpq(1, 2**32)
#: the sign search gives up (InsufficientPrecisionError, naming the bits) past
#: max(SIGN_MAX_PREC, 4 * the sum's size in bits); the clustered evaluation keeps
#: tiny exponent gaps from counting against it, so only near-cancellations set up
#: by the coefficients themselves can come close
SIGN_MAX_PREC = 1 << 22


# -- sparse exponential sums -------------------------------------------------
def _normalize(terms: list[tuple[fmpq, fmpq]]) -> Sum:
    """Sort by decreasing exponent, add up equal exponents, drop zero coefficients."""
    terms.sort(key=itemgetter(0), reverse=True)
    out: list[tuple[fmpq, fmpq]] = []
    for e, c in terms:
        if out and out[-1][0] == e:
            out[-1] = (e, out[-1][1] + c)
        else:
            out.append((e, c))
    return tuple(t for t in out if t[1] != 0)


def _sum_add(a: Sum, b: Sum, sign: int = 1) -> Sum:
    """a + sign * b, by merging the two sorted sums."""
    out: list[tuple[fmpq, fmpq]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        ea, ca = a[i]
        eb, cb = b[j]
        if ea > eb:
            out.append(a[i])
            i += 1
        elif ea < eb:
            out.append((eb, cb if sign > 0 else -cb))
            j += 1
        else:
            c = ca + cb if sign > 0 else ca - cb
            if c != 0:
                out.append((ea, c))
            i += 1
            j += 1
    out.extend(a[i:])
    out.extend(b[j:] if sign > 0 else [(e, -c) for e, c in b[j:]])
    return tuple(out)


def _sum_mul(a: Sum, b: Sum) -> Sum:
    if a is _ONE_SUM or a == _ONE_SUM:
        return b
    if b is _ONE_SUM or b == _ONE_SUM:
        return a
    return _normalize([(ea + eb, ca * cb) for ea, ca in a for eb, cb in b])


def _sum_scale(a: Sum, c: fmpq, shift: fmpq) -> Sum:
    """c e^shift a (c != 0): the order of the exponents is kept."""
    return tuple((e + shift, c * x) for e, x in a)


def _monomial_ratio(a: Sum, b: Sum) -> tuple[fmpq, fmpq] | None:
    """(c, q) with a == c e^q b, or None."""
    if len(a) != len(b) or not a:
        return None
    q = a[0][0] - b[0][0]
    c = a[0][1] / b[0][1]
    for (x, cx), (y, cy) in zip(a, b, strict=True):
        if x - y != q or cx != c * cy:
            return None
    return c, q


def _sum_arb(a: Sum, prec: int) -> arb:
    with ctx.workprec(prec):
        total = arb(0)
        for e, c in a:
            total += arb(c) * (arb(e).exp() if e != 0 else arb(1))
        return total


def _clusters(a: Sum) -> list[Sum]:
    """Split a sorted sum where consecutive exponents differ by CLUSTER_GAP or more."""
    out: list[Sum] = []
    start = 0
    for i in range(1, len(a)):
        if a[i - 1][0] - a[i][0] >= CLUSTER_GAP:
            out.append(a[start:i])
            start = i
    out.append(a[start:])
    return out


def _cluster_ball(cluster: Sum, prec: int) -> arb:
    """A rigorous ball for e^{-z} sum_k c_k e^{q_k}, z = q_0 the largest exponent.

    With delta_k = q_k - z <= 0 the value is V = sum_n m_n / n!, the moments
    m_n = sum_k c_k delta_k^n being exact rationals. Taylor's theorem with the
    Lagrange remainder gives, for delta <= 0 (so e^xi <= 1 on [delta, 0]),

        |e^delta - sum_{n<=N} delta^n / n!| <= |delta|^{N+1} / (N+1)!,

    hence |V - P_N| <= C eps^{N+1} / (N+1)! with P_N = sum_{n<=N} m_n / n!,
    C = sum_k |c_k| and eps = max_k |delta_k| (the cluster's diameter). P_N is
    exact; the remainder bound is evaluated in arb (upper bounds only, so a low
    precision is rigorous). Terms are added until the bound is below 2^-prec |P_N|.
    V != 0 (Lindemann–Weierstrass: distinct exponents, nonzero coefficients), so
    this ends: P_N -> V and the bound -> 0. Exact moments are what make the
    cancellation harmless: e^{2^-4200000} - 1 has m_0 = 0 and m_1 = 2^-4200000
    exactly, where a term-by-term evaluation needs 4.2 million bits.

    The moments are kept as integers over common denominators (no gcd on
    numbers of millions of bits): with delta_k = D_k / L and c_k = C_k / G,
    m_n = M_n / (G L^n) with M_n = sum_k C_k D_k^n, and
    P_N = S_N / (G L^N N!) with S_N = N L S_{N-1} + M_N, S_0 = M_0.
    """
    z = cluster[0][0]
    if len(cluster) == 1:
        return arb(cluster[0][1])
    L = fmpz(1)
    G = fmpz(1)
    for q, c in cluster:
        L = L.lcm((q - z).q)
        G = G.lcm(c.q)
    D = [(q - z).p * (L // (q - z).q) for q, _ in cluster]
    powers = [c.p * (G // c.q) for _, c in cluster]  # C_k D_k^n, n = 0, 1, ...
    eps = z - cluster[-1][0]
    total = sum((abs(c) for _, c in cluster), _ZERO)
    S = fmpz(0)
    max_terms = len(cluster) + prec // 8 + 8
    with ctx.workprec(prec + 16):
        for n in range(max_terms):
            S = S * L * n + sum(powers, fmpz(0)) if n else sum(powers, fmpz(0))
            ball = arb(S) / (arb(G) * arb(L) ** n * arb.fac_ui(n))
            bound = (arb(total) * arb(eps) ** (n + 1) / arb.fac_ui(n + 1)).abs_upper()
            if S != 0 and bound < ball.abs_lower() * arb(2) ** -prec:
                break
            powers = [t * dk for t, dk in zip(powers, D, strict=True)]
        return ball + arb(0, bound)


def _sum_ball(a: Sum, prec: int) -> arb:
    """A rigorous ball for the sum at ``prec`` bits, tiny exponent gaps included.

    Below CLUSTER_FROM_PREC bits: term by term (:func:`_sum_arb`). From there on
    the sum is split into clusters of exponents closer than CLUSTER_GAP, each
    summed about its largest exponent by :func:`_cluster_ball`: a cluster's
    internal cancellation (e^q - e^{q + 2^-k}) costs nothing, and what remains
    between clusters is at most the cancellation of exponents 2^-32 apart.
    """
    if prec < CLUSTER_FROM_PREC:
        return _sum_arb(a, prec)
    with ctx.workprec(prec):
        total = arb(0)
        for cluster in _clusters(a):
            z = cluster[0][0]
            scale = arb(z).exp() if z != 0 else arb(1)
            total += scale * _cluster_ball(cluster, prec)
        return total


def _sum_bits(a: Sum) -> int:
    """The size of a sum in bits (numerators and denominators of every rational)."""
    return sum(int(x.p.bit_length() + x.q.bit_length()) for t in a for x in t)


def _sum_sign(a: Sum) -> int:
    """The sign of a nonzero sum, decided in rigorous balls at rising precision.

    The loop ends for every valid sum (Lindemann–Weierstrass: the value is not 0,
    and the balls of :func:`_sum_ball` shrink to it). Past
    max(SIGN_MAX_PREC, 4 * size in bits) it gives up with
    :class:`~exactattn.fields.precision.InsufficientPrecisionError` naming the bits.
    """
    if not a:
        return 0
    signs = {c > 0 for _, c in a}
    if len(signs) == 1:
        return 1 if signs.pop() else -1
    prec = SIGN_START_PREC
    limit: int | None = None  # the size in bits costs a pass: computed only when needed
    while True:
        if prec > SIGN_MAX_PREC:
            if limit is None:
                limit = max(SIGN_MAX_PREC, 4 * _sum_bits(a))
            if prec > limit:
                break
        ball = _sum_ball(a, prec)
        if ball > 0:
            return 1
        if ball < 0:
            return -1
        prec *= 2
    text = _sum_str(a)
    if len(text) > 200:
        text = text[:197] + "..."
    raise InsufficientPrecisionError(
        f"the sign of the exponential sum {text} ({len(a)} terms, {_sum_bits(a)} bits) is not "
        f"decided by rigorous balls at {prec // 2} bits (tiny exponent gaps already resolved "
        "by exact Taylor moments); it is nonzero, but its coefficients cancel to more than "
        f"{prec // 2} bits: the sign needs more than {prec // 2} bits of working precision",
        prec=prec // 2, needed_prec=prec // 2 + 1)  # a lower bound, as the message says


def _sum_str(a: Sum) -> str:
    parts = []
    for e, c in a:
        if e == 0:
            parts.append(str(c))
        elif c == 1:
            parts.append(f"exp({e})")
        else:
            parts.append(f"{c}*exp({e})")
    return " + ".join(parts).replace("+ -", "- ") or "0"


# -- elements --------------------------------------------------------------
class ExpElement:
    """An element of :data:`EXP`: a quotient of sparse exponential sums.

    Build elements with ``EXP(...)``, ``EXP.exp(...)`` and arithmetic; the
    attributes are private to the field and certificates.
    """

    __slots__ = ("_q", "_num", "_den")
    _q: fmpq | None
    _num: Sum
    _den: Sum

    field: ExponentialField  # set below, after the field exists

    # construction ---------------------------------------------------------
    @classmethod
    def _rational(cls, q: fmpq) -> ExpElement:
        self = object.__new__(cls)
        self._q = q
        return self

    @classmethod
    def _make(cls, num: Sum, den: Sum) -> ExpElement:
        """Normalise num / den (see the module docstring)."""
        if not num:
            return cls._rational(_ZERO)
        if not den:
            raise ZeroDivisionError("division by zero in EXP")
        e0, c0 = den[0]  # the leading term: largest exponent
        if e0 != 0 or c0 != 1:
            inv = 1 / c0
            num = _sum_scale(num, inv, -e0)
            den = _sum_scale(den, inv, -e0)
        if len(den) == 1:
            den = _ONE_SUM
        elif len(num) == len(den):
            ratio = _monomial_ratio(num, den)
            if ratio is not None:
                num, den = ((ratio[1], ratio[0]),), _ONE_SUM
        if den is _ONE_SUM and len(num) == 1 and num[0][0] == 0:
            return cls._rational(num[0][1])
        self = object.__new__(cls)
        self._q = None
        self._num = num
        self._den = den
        return self

    def _parts(self) -> tuple[Sum, Sum]:
        if self._q is not None:
            return (((_ZERO, self._q),) if self._q != 0 else ()), _ONE_SUM
        return self._num, self._den

    # coercion -------------------------------------------------------------
    @staticmethod
    def _coerce(other: Any) -> ExpElement | None:
        if isinstance(other, ExpElement):
            return other
        if isinstance(other, np.ndarray):
            return None  # let numpy broadcast
        lit = literal_rational(other)
        if lit is not None:
            return ExpElement._rational(fmpq(*lit))
        if isinstance(other, fmpq | fmpz | float | np.floating) or hasattr(other, "field"):
            raise IncompatibleFieldError(
                f"cannot mix an EXP element with {describe(other)}; convert it with EXP(...)"
            )
        return None

    # arithmetic -----------------------------------------------------------
    def __add__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        if self._q is not None and b._q is not None:
            return ExpElement._rational(self._q + b._q)
        n1, d1 = self._parts()
        n2, d2 = b._parts()
        if d1 == d2:
            return ExpElement._make(_sum_add(n1, n2), d1)
        return ExpElement._make(_sum_add(_sum_mul(n1, d2), _sum_mul(n2, d1)), _sum_mul(d1, d2))

    __radd__ = __add__

    def __neg__(self) -> ExpElement:
        if self._q is not None:
            return ExpElement._rational(-self._q)
        return ExpElement._make(_sum_scale(self._num, fmpq(-1), _ZERO), self._den)

    def __pos__(self) -> ExpElement:
        return self

    def __sub__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        return self + (-b)

    def __rsub__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        return b + (-self)

    def __mul__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        if self._q is not None and b._q is not None:
            return ExpElement._rational(self._q * b._q)
        n1, d1 = self._parts()
        n2, d2 = b._parts()
        # cancel a common factor when one numerator is a monomial multiple of
        # the other denominator: (n1 / d1) (c e^q d1 / d2) = c e^q n1 / d2
        r = _monomial_ratio(n2, d1)
        if r is not None:
            return ExpElement._make(_sum_scale(n1, r[0], r[1]), d2)
        r = _monomial_ratio(n1, d2)
        if r is not None:
            return ExpElement._make(_sum_scale(n2, r[0], r[1]), d1)
        return ExpElement._make(_sum_mul(n1, n2), _sum_mul(d1, d2))

    __rmul__ = __mul__

    def _inverse(self) -> ExpElement:
        if self._q is not None:
            if self._q == 0:
                raise ZeroDivisionError("division by zero in EXP")
            return ExpElement._rational(1 / self._q)
        return ExpElement._make(self._den, self._num)

    def __truediv__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        return self * b._inverse()

    def __rtruediv__(self, other: Any) -> Any:
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        return b * self._inverse()

    def __pow__(self, k: int) -> ExpElement:
        if not isinstance(k, int) or isinstance(k, bool):
            raise NotRepresentableError("EXP powers take integer exponents only")
        base = self if k >= 0 else self._inverse()
        out = ExpElement._rational(_ONE)
        for _ in range(abs(k)):
            out = out * base
        return out

    # comparison ------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        # comparing with an element of another field raises (like arithmetic):
        # EXP(1) == 1.0 returning False would be a silent wrong answer
        b = self._coerce(other)
        if b is None:
            return NotImplemented
        if self._q is not None and b._q is not None:
            return bool(self._q == b._q)
        n1, d1 = self._parts()
        n2, d2 = b._parts()
        if d1 == d2:
            return n1 == n2
        return _sum_mul(n1, d2) == _sum_mul(n2, d1)

    def __hash__(self) -> int:
        # Equal values have equal hashes: an element equal to a single term
        # c e^q is always stored as that term (see _make), so only monomials
        # need a value-dependent hash.
        if self._q is not None:
            return hash(self._q)
        if self._den is _ONE_SUM and len(self._num) == 1:
            ((e, c),) = self._num
            return hash(("EXP", e, c))
        return hash("EXP: not a single term")

    def sign(self) -> int:
        if self._q is not None:
            return (self._q > 0) - (self._q < 0)
        return _sum_sign(self._num) * _sum_sign(self._den)

    def _compare(self, other: Any) -> int | None:
        b = self._coerce(other)
        return None if b is None else (self - b).sign()

    def __lt__(self, other: Any) -> bool:
        s = self._compare(other)
        return NotImplemented if s is None else s < 0

    def __le__(self, other: Any) -> bool:
        s = self._compare(other)
        return NotImplemented if s is None else s <= 0

    def __gt__(self, other: Any) -> bool:
        s = self._compare(other)
        return NotImplemented if s is None else s > 0

    def __ge__(self, other: Any) -> bool:
        s = self._compare(other)
        return NotImplemented if s is None else s >= 0

    def __bool__(self) -> bool:
        return self.sign() != 0

    def __abs__(self) -> ExpElement:
        return -self if self.sign() < 0 else self

    # conversion ----------------------------------------------------------
    def arb(self, prec: int) -> arb:
        """A rigorous ball containing the value, computed at ``prec`` bits.

        From CLUSTER_FROM_PREC bits on, tiny exponent gaps are summed by exact
        Taylor moments (:func:`_sum_ball`), so e^(2^-1000) - 1 gets a narrow ball.
        """
        n, d = self._parts()
        with ctx.workprec(prec):
            return _sum_ball(n, prec) / _sum_ball(d, prec)

    def __float__(self) -> float:
        """The nearest-ish float64: the ball is refined until it has 53 correct bits."""
        if self._q is not None:
            return int(self._q.p) / int(self._q.q)
        prec = SIGN_START_PREC
        while True:
            ball = self.arb(prec)
            if ball.rel_accuracy_bits() >= 60 or prec > SIGN_MAX_PREC:
                return float(ball.mid())
            prec *= 2

    def __repr__(self) -> str:
        if self._q is not None:
            return str(self._q)
        if self._den is _ONE_SUM:
            return _sum_str(self._num)
        return f"({_sum_str(self._num)})/({_sum_str(self._den)})"

    __str__ = __repr__

    def terms(self) -> int:
        """Number of terms in numerator plus denominator (a size measure)."""
        n, d = self._parts()
        return len(n) + len(d)


class ExponentialField(Field):
    """The exponential field: exact reals of the form P / Q, P, Q exponential sums.

    See the module docstring for the representation and why ``==`` and
    :meth:`sign` are exact (Lindemann–Weierstrass).
    """

    name = "EXP"
    exact = True
    dtype = object

    def __call__(self, x: Any) -> ExpElement:
        if isinstance(x, ExpElement):
            return x
        if isinstance(x, fmpq | fmpz):  # explicit embedding QQ -> EXP
            return ExpElement._rational(fmpq(x))
        return ExpElement._rational(rational(x))

    def is_element(self, x: Any) -> bool:
        return isinstance(x, ExpElement)

    def exp(self, x: Any) -> Any:
        def one(a: Any) -> ExpElement:
            q = self.to_rational(self(a), why="exp of a non-rational element leaves EXP")
            return ExpElement._make(((q, _ONE),), _ONE_SUM)

        return self.map(one, x)

    def log(self, x: Any) -> Any:
        def one(a: Any) -> ExpElement:
            el = self(a)
            if el.sign() <= 0:
                raise not_representable("log", el, "EXP", "the argument is not positive")
            if el._q is not None and el._q == 1:
                return ExpElement._rational(_ZERO)
            if el._q is None and el._den is _ONE_SUM and len(el._num) == 1:
                ((e, c),) = el._num
                if c == 1:
                    return ExpElement._rational(e)
            raise not_representable(
                "log", el, "EXP", "only an element equal to e^q (q rational) has an exact log here"
            )

        return self.map(one, x)

    def sign(self, x: Any) -> int:
        return self(x).sign()

    def to_float(self, x: Any) -> float:
        return float(self(x))

    def to_rational(self, x: Any, *, why: str = "the element is not rational") -> fmpq:
        el = self(x)
        if el._q is None:
            raise not_representable("to_rational", el, "QQ", why)
        return el._q

    def from_rational(self, q: fmpq) -> ExpElement:
        return ExpElement._rational(q)

    def is_rational(self, x: Any) -> bool:
        return self(x)._q is not None

    def to_rationals(self, A: Array) -> list[fmpq]:
        """The entries of an array over EXP (flat order) as rationals, in one pass.

        The same as ``[EXP.to_rational(x) for x in A.flat]`` (and the same error
        for an entry that is not rational), for evaluating models in bulk.

        >>> EXP.to_rationals(EXP.array([[1, 2], [3, 0]]))
        [1, 2, 3, 0]
        """
        if type(A) is np.ndarray and A.dtype == object and set(map(type, A.flat)) <= {ExpElement}:
            out = [x._q for x in A.flat]
            if set(map(type, out)) <= {fmpq}:
                return out
        return [self.to_rational(x) for x in np.asarray(A, dtype=object).flat]

    def softmax_average(self, scores: Sequence[fmpq], values: Sequence[fmpq]) -> ExpElement:
        """sum_i e^{s_i} c_i / sum_i e^{s_i} for rationals s_i (scores) and c_i (values).

        Built as one quotient: the numerator sum_i c_i e^{s_i} and the
        denominator sum_i e^{s_i} are each sorted and merged once (equal
        exponents added, zero coefficients dropped) and normalised once, instead
        of an element per weight and a normalisation per addition. The element
        is the canonical one of that quotient, equal (``==``) to the term by
        term computation.

        >>> p = EXP.softmax_average([fmpq(1), fmpq(0)], [fmpq(1), fmpq(0)])   # sigma(1)
        >>> p == EXP.exp(EXP(1)) / (EXP.exp(EXP(1)) + 1)
        True
        >>> EXP.softmax_average([fmpq(2), fmpq(2)], [fmpq(3), fmpq(5)])      # equal scores
        4
        """
        if not scores or len(scores) != len(values):
            raise InvalidEntryError(f"softmax_average needs as many values as scores (at least "
                                    f"one), got {len(scores)} scores and {len(values)} values")
        num = _normalize([(fmpq(s), fmpq(c)) for s, c in zip(scores, values, strict=True)])
        den = _normalize([(fmpq(s), _ONE) for s in scores])
        return ExpElement._make(num, den)

    def to_arb(self, x: Any, prec: int) -> arb:
        return self(x).arb(prec)

    def to_json(self, x: Any) -> Any:
        el = self(x)
        if el._q is not None:
            return str(el._q)
        return {
            "num": [[str(e), str(c)] for e, c in el._num],
            "den": [[str(e), str(c)] for e, c in el._den],
        }

    def from_json(self, obj: Any) -> ExpElement:
        if isinstance(obj, str | int):
            return ExpElement._rational(parse_rational(obj))
        if isinstance(obj, dict) and set(obj) == {"num", "den"}:

            def read(terms: Any) -> Sum:
                return _normalize([(parse_rational(e), parse_rational(c)) for e, c in terms])

            return ExpElement._make(read(obj["num"]), read(obj["den"]))
        raise InvalidEntryError(f"not the JSON form of an EXP element: {describe(obj)}")

    def array(self, data: Any, *, name: str = "array") -> Array:
        # speed only: an object array of EXP elements (a query the oracle already
        # checked) is recognised by one pass over the types of its entries
        if (isinstance(data, np.ndarray) and data.dtype == object and data.size
                and set(map(type, data.flat)) == {ExpElement}):
            return data
        return super().array(data, name=name)

    def check_array(self, A: Array, *, name: str = "array") -> None:
        check_object_array(self, A, name)

    def gaussian(self, rng: np.random.Generator, shape: int | Sequence[int]) -> Array:
        out = np.empty(shape, dtype=object)
        out.flat[:] = [ExpElement._rational(q) for q in gaussian_rationals(rng, shape)]
        return out


EXP = ExponentialField()
ExpElement.field = EXP
