"""Bias-free two-layer ReLU networks and their canonical form.

Label ``relu_ffn_exact`` (the FFN learner the one-layer reduction of paper
§4.1 needs; paper.md §3). A network is

    g(x) = w^T ReLU(A^T x) = sum_k w_k ReLU(a_k^T x),   A in F^{d x m}, w in F^m,

with no biases. It is piecewise linear and positively homogeneous
(g(c x) = c g(x) for c > 0), so over QQ it is evaluated exactly.

Canonical form
--------------
Since ReLU(z) = (z + |z|) / 2,

    g(x) = l^T x + sum_k beta_k |n_k^T x|,     l = (1/2) sum_k w_k a_k,

where every rational a_k != 0 is written a_k = c_k n_k with n_k the
*primitive* integer vector on its line (coprime entries, first nonzero entry
positive) and c_k a nonzero rational, so that |a_k^T x| = |c_k| |n_k^T x| and
neuron k contributes beta = w_k |c_k| / 2 to the hyperplane n_k^T x = 0.
Grouping equal normals (adding their beta) and dropping the normals whose
beta sums to 0 gives the canonical form

    canonical(g) = (l, ((n_1, beta_1), ..., (n_K, beta_K))),   n_1 < ... < n_K,

distinct primitive normals sorted lexicographically, every beta_k != 0. The
symmetries of networks all vanish in it: a dead neuron (a_k = 0 or w_k = 0)
contributes nothing; permuting neurons permutes terms that are then sorted;
w_k ReLU(a_k^T x) = (w_k / c) ReLU(c a_k^T x) for c > 0 gives the same
beta; two neurons on the same line (a, c a with c > 0, or opposite ones a,
-a) add their beta on one normal, and the linear part absorbs the rest
(ReLU(z) - ReLU(-z) = z).

Theorem. Two networks g, g' over an exact field (rational parameters) are
equal as functions on R^d (equivalently on Q^d) iff
canonical(g) == canonical(g').

Proof. "If": the canonical form is a formula for the function, by the
identity above. "Only if": let (l, (n, beta)) and (l', (n', beta')) be the two
forms and put gamma_n = beta_n - beta'_n over the union of the normals
(0 where a normal is absent), so that

    D(x) = (l - l')^T x + sum_n gamma_n |n^T x| = 0   for all x.

Distinct primitive normals are distinct hyperplanes (the primitive vector
with first nonzero entry positive is a unique representative of a rational
line, and |n^T x| = |-n^T x|). Fix a normal n of the union and choose y on
H_n = {n^T y = 0} off every other hyperplane of the union (possible: the
other hyperplanes meet H_n in proper subspaces, and finitely many proper
subspaces do not cover H_n; y can be taken rational). Near y every other
term is linear, so for small s > 0 the second difference

    D(y + s n) + D(y - s n) - 2 D(y) = 2 gamma_n s ||n||^2

vanishes, hence gamma_n = 0. All gamma vanish, so D(x) = (l - l')^T x = 0
for all x and l = l'. The forms are equal. []

The same second difference, at a rational y and a rational s below the
distance to the other hyperplanes, is an exact *witness* query telling two
inequivalent networks apart (:func:`witness`).

Over F64 normals are unit vectors (largest-magnitude entry positive) and
directions closer than a tolerance are merged; equality is then numerical
(:func:`parameter_error`), never called exact.

>>> from fractions import Fraction as Q
>>> g = ReluFFN([[1, 2, 0], [0, 2, 0]], [3, -1, 5])      # the third neuron is dead
>>> c = canonical(g)
>>> c.linear, c.terms
((1/2, -1), (((1, 0), 3/2), ((1, 1), -1)))
>>> # rescaled, split, dead and zero-weight neurons: other parameters, the same function
>>> h = ReluFFN([[3, 1, 2, 0, 5], [0, 1, 2, 0, -3]], [1, -1, Q(-1, 2), 7, 0])
>>> equivalent(g, h), canonical(h) == c, g([[3, -5]]) == h([[3, -5]])
(True, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import fmpq, fmpq_mat

from ..errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    NotRepresentableError,
    ShapeError,
)
from ..fields import F64, QQ, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of
from .attention import finite_answers

__all__ = [
    "ReluFFN",
    "CanonicalReLU",
    "canonical",
    "equivalent",
    "witness",
    "parameter_error",
    "primitive_normal",
    "F64_CANONICAL_TOL",
]

#: over F64, unit normals closer than this (max-norm) are merged, and |beta| below
#: this times the largest |beta| is dropped; 2^-20 leaves room for learned
#: normals whose error is ~2^-30 (see :mod:`exactattn.learners.relu_ffn`)
F64_CANONICAL_TOL = 2.0**-20


def _shape_of(A: Any, name: str) -> tuple[int, int]:
    if A is None:
        raise InvalidEntryError(f"{name} is None, expected a d x m matrix")
    shape = shape_of(A, name)
    if len(shape) != 2:
        raise ShapeError(f"{name} has shape {shape}, expected a 2-D d x m matrix "
                         "(one column a_k per hidden neuron)")
    if shape[0] == 0:
        raise ShapeError(f"{name} has no rows: the input dimension d must be at least 1")
    return int(shape[0]), int(shape[1])


class ReluFFN:
    """g(x) = w^T ReLU(A^T x): a bias-free two-layer ReLU network over a field.

    Parameters
    ----------
    A : d x m matrix, column k the weights a_k of hidden neuron k (m = 0 is
        allowed: g = 0).
    w : length-m vector of output weights.
    field : the field the network is evaluated over (default :data:`QQ`; it is
        piecewise linear, so QQ is exact).

    A query is one token, X of shape (1, d) (the oracle's query format); the
    answer is g(x_1). :meth:`evaluate` takes a plain vector. Label
    ``relu_ffn_exact``: :func:`exactattn.learners.relu_ffn.learn_relu_ffn`
    learns a function-equivalent network from such queries.

    >>> g = ReluFFN([[1, -1], [2, 0]], [1, 3])
    >>> g([[1, 1]]), g.evaluate([-1, 0]), g.d, g.m
    (3, 3, 2, 2)
    >>> g.batch([[[1, 1]], [[-1, 0]]]).tolist() == [3, 3]
    True
    """

    #: queries hold one token (the certificate's fresh probes respect it)
    query_lengths = (1, 1)

    def __init__(self, A: Any, w: Any, *, field: Field = QQ) -> None:
        if not isinstance(field, Field):
            raise InvalidEntryError(f"field must be a Field (QQ, EXP, F64), got {field!r}")
        self.field = field
        self.d, self.m = _shape_of(A, "A")
        if w is None:
            raise InvalidEntryError(f"w is None, expected a vector of length m = {self.m}")
        if (shape := shape_of(w, "w")) != (self.m,):
            raise ShapeError(f"w has shape {shape}, but A is {self.d} x {self.m}: "
                             f"expected a vector of length m = {self.m} (one weight per neuron)")
        # copies: the model freezes its parameters, never the caller's arrays
        self.A = as_matrix(field, A, (self.d, self.m), name="A").copy()
        self.w = as_vector(field, w, self.m, name="w").copy()
        self.A.flags.writeable = False
        self.w.flags.writeable = False
        self._Aq: fmpq_mat | None = None
        self._wq: list[fmpq] = []
        if field.exact:
            try:
                to_q = field.to_rational
                self._Aq = fmpq_mat(self.d, self.m, [to_q(x) for x in self.A.flat])
                self._wq = [to_q(x) for x in self.w]
            except NotRepresentableError:
                self._Aq = None  # irrational parameters: generic field arithmetic

    def __repr__(self) -> str:
        return f"ReluFFN(d={self.d}, m={self.m}, field={self.field.name})"

    # -- evaluation ---------------------------------------------------------
    def _rows(self, rows: Array) -> list[Any]:
        """g at every row of a validated B x d array over the field."""
        F = self.field
        B = rows.shape[0]
        if self.m == 0:
            return [F.zero() for _ in range(B)]
        if not F.exact:
            out: Array = finite_answers(np.maximum(rows @ self.A, 0.0) @ self.w, "g(x)")
            return list(out)
        if self._Aq is not None:
            try:
                to_q = F.to_rational
                Xq = fmpq_mat(B, self.d, [to_q(x) for x in rows.flat])
            except NotRepresentableError:
                Xq = None
            if Xq is not None:
                H = (Xq * self._Aq).entries()
                zero = fmpq(0)
                vals = []
                for b in range(B):
                    total = zero
                    for k, wk in enumerate(self._wq):
                        h = H[b * self.m + k]
                        if h > 0:
                            total += wk * h
                    vals.append(F.from_rational(total))
                return vals
        # generic exact arithmetic (irrational EXP entries): field operations only
        vals = []
        for b in range(B):
            h = rows[b] @ self.A
            total = F.zero()
            for k in range(self.m):
                if F.sign(h[k]) > 0:
                    total = total + self.w[k] * h[k]
            vals.append(total)
        return vals

    def __call__(self, X: Any) -> Any:
        """g(x_1) for a one-token query X = [x_1^T] of shape (1, d)."""
        Xc = as_query(self.field, X, self.d)
        if Xc.shape[0] != 1:
            raise ShapeError(f"a ReluFFN answers one-token queries [x^T] of shape (1, {self.d});"
                             f" got N = {Xc.shape[0]} tokens")
        return self._rows(Xc)[0]

    def batch(self, Xs: Any) -> Array:
        """Answers to many one-token queries; over F64 one vectorised pass."""
        checked = as_query_batch(self.field, Xs, self.d)
        F = self.field
        if isinstance(checked, np.ndarray):  # F64, (B, N, d)
            if checked.shape[1] != 1:
                raise ShapeError(f"a ReluFFN answers one-token queries; the batch has "
                                 f"N = {checked.shape[1]} tokens per query")
            return np.asarray(self._rows(checked[:, 0, :]), dtype=np.float64).reshape(-1)
        for b, X in enumerate(checked):
            if X.shape[0] != 1:
                raise ShapeError(f"a ReluFFN answers one-token queries; batch[{b}] has "
                                 f"N = {X.shape[0]} tokens")
        out = np.empty(len(checked), dtype=F.dtype)
        if checked:
            rows = np.stack([X[0] for X in checked])
            for b, y in enumerate(self._rows(rows)):
                out[b] = y
        return out

    def evaluate(self, x: Any) -> Any:
        """g(x) for a plain vector x of length d."""
        xv = as_vector(self.field, x, self.d, name="x")
        return self._rows(xv[None, :])[0]


# -- the canonical form ----------------------------------------------------
def primitive_normal(a: Sequence[fmpq]) -> tuple[tuple[int, ...], fmpq]:
    """(n, c) with a = c n, n primitive integer with first nonzero entry > 0.

    >>> primitive_normal([fmpq(-2, 3), fmpq(0), fmpq(4, 9)])
    ((3, 0, -2), -2/9)
    """
    nz = [x for x in a if x != 0]
    if not nz:
        raise InvalidEntryError("the zero vector has no normal")
    lcm = 1
    for x in nz:
        q = int(x.q)
        lcm = lcm * q // math.gcd(lcm, q)
    ints = [int(x.p) * (lcm // int(x.q)) for x in a]
    g = 0
    for v in ints:
        g = math.gcd(g, v)
    first = next(v for v in ints if v != 0)
    sign = 1 if first > 0 else -1
    n = tuple(sign * v // g for v in ints)
    lead = next(i for i, v in enumerate(n) if v != 0)
    return n, fmpq(a[lead]) / n[lead]


@dataclass(frozen=True)
class CanonicalReLU:
    """The canonical form l^T x + sum_k beta_k |n_k^T x| (see the module docstring).

    Attributes
    ----------
    field, d : the field of the coefficients and the input dimension.
    linear : l, d elements of ``field``.
    terms : ((n_1, beta_1), ...): n_k a tuple of ints (exact fields; unit floats
        over F64), sorted, distinct; beta_k a nonzero element of ``field``.

    Two canonical forms are ``==`` iff the networks are equal as functions
    (exact fields).
    """

    field: Field
    d: int
    linear: tuple[Any, ...]
    terms: tuple[tuple[tuple[Any, ...], Any], ...]

    @property
    def size(self) -> int:
        """K: the number of distinct hyperplanes (kinks) of the function."""
        return len(self.terms)

    def evaluate(self, x: Any) -> Any:
        """l^T x + sum_k beta_k |n_k^T x| at a vector x over the field."""
        F = self.field
        xv = as_vector(F, x, self.d, name="x")
        total = F.zero()
        for li, xi in zip(self.linear, xv, strict=True):
            total = total + li * xi
        for n, beta in self.terms:
            z = F.zero()
            for ni, xi in zip(n, xv, strict=True):
                if ni != 0:
                    z = z + (F(ni) if F.exact else ni) * xi
            total = total + beta * abs(z)
        return total

    def network(self) -> ReluFFN:
        """A network in canonical shape: K + 2 neurons (K if the linear term is absorbed).

        g = l'^T x + sum_k 2 beta_k ReLU(n_k^T x) with l' = l - sum_k beta_k n_k, and
        l'^T x = ReLU(l'^T x) - ReLU(-l'^T x).
        """
        F = self.field
        cols: list[list[Any]] = []
        weights: list[Any] = []
        lp = list(self.linear)
        for n, beta in self.terms:
            cols.append([F(v) if F.exact else v for v in n])
            weights.append(2 * beta)
            lp = [li - beta * (F(v) if F.exact else v) for li, v in zip(lp, n, strict=True)]
        if any(F.sign(x) != 0 for x in lp):
            cols += [lp, [-x for x in lp]]
            weights += [F.one(), -F.one()]
        A = F.zeros((self.d, len(cols)))
        for k, col in enumerate(cols):
            for i, x in enumerate(col):
                A[i, k] = x
        w = F.zeros(len(weights))
        for k, x in enumerate(weights):
            w[k] = x
        return ReluFFN(A, w, field=F)

    def to_json(self) -> dict[str, Any]:
        F = self.field
        return {"field": F.name, "d": self.d, "linear": [F.to_json(x) for x in self.linear],
                "terms": [{"normal": list(n), "beta": F.to_json(b)} for n, b in self.terms]}


def _as_network(g: Any, what: str) -> ReluFFN:
    if isinstance(g, ReluFFN):
        return g
    raise InvalidEntryError(f"{what} must be a ReluFFN, got {type(g).__name__}")


def canonical(g: ReluFFN, *, tol: float = F64_CANONICAL_TOL) -> CanonicalReLU:
    """The canonical form of a network (exact over QQ and EXP; see the module docstring).

    ``tol`` is used over F64 only (merging of directions, dropping tiny beta).

    >>> canonical(ReluFFN([[1, -1]], [2, 2])).terms     # 2 ReLU(x) + 2 ReLU(-x) = 2 |x|
    (((1,), 2),)
    """
    g = _as_network(g, "g")
    F = g.field
    if not F.exact:
        return _canonical_f64(g, tol)
    to_q = F.to_rational
    try:
        Aq = [[to_q(g.A[i, k]) for i in range(g.d)] for k in range(g.m)]
        wq = [to_q(x) for x in g.w]
    except NotRepresentableError as exc:
        raise NotRepresentableError(
            f"the canonical form needs rational parameters: {exc}") from None
    half = fmpq(1, 2)
    linear = [fmpq(0)] * g.d
    betas: dict[tuple[int, ...], fmpq] = {}
    for a, wk in zip(Aq, wq, strict=True):
        if wk == 0 or all(x == 0 for x in a):
            continue  # a dead neuron
        linear = [li + half * wk * ai for li, ai in zip(linear, a, strict=True)]
        n, c = primitive_normal(a)
        betas[n] = betas.get(n, fmpq(0)) + half * wk * abs(c)
    conv = F.from_rational
    terms = tuple((n, conv(b)) for n, b in sorted(betas.items()) if b != 0)
    return CanonicalReLU(F, g.d, tuple(conv(x) for x in linear), terms)


def _canonical_f64(g: ReluFFN, tol: float) -> CanonicalReLU:
    A = np.asarray(g.A, dtype=np.float64)
    w = np.asarray(g.w, dtype=np.float64)
    linear = 0.5 * (A @ w) if g.m else np.zeros(g.d)
    dirs: list[tuple[np.ndarray[Any, Any], float]] = []
    for k in range(g.m):
        norm = float(np.linalg.norm(A[:, k]))
        if w[k] == 0 or norm == 0:
            continue
        n = A[:, k] / norm
        if n[int(np.argmax(np.abs(n)))] < 0:
            n = -n
        beta = 0.5 * float(w[k]) * norm
        for j, (m_, b) in enumerate(dirs):
            if float(np.max(np.abs(m_ - n))) <= tol:
                dirs[j] = (m_, b + beta)
                break
        else:
            dirs.append((n, beta))
    scale = max((abs(b) for _, b in dirs), default=0.0)
    kept = [(tuple(float(x) for x in n), b) for n, b in dirs if abs(b) > tol * scale]
    kept.sort()
    return CanonicalReLU(F64, g.d, tuple(float(x) for x in linear),
                         tuple((n, float(b)) for n, b in kept))


def _canonical_of(g: Any, what: str) -> CanonicalReLU:
    return g if isinstance(g, CanonicalReLU) else canonical(_as_network(g, what))


def equivalent(g1: ReluFFN | CanonicalReLU, g2: ReluFFN | CanonicalReLU) -> bool:
    """True iff g1 and g2 are equal as functions: canonical forms compared with ``==``.

    Exact fields only (F64 networks: use :func:`parameter_error`). Networks
    over different fields raise :class:`~exactattn.errors.IncompatibleFieldError`,
    different input dimensions :class:`~exactattn.errors.ShapeError`.

    >>> from fractions import Fraction as Q
    >>> equivalent(ReluFFN([[1, -1]], [1, -1]), ReluFFN([[1]], [1]))   # ReLU(x) - ReLU(-x) = x
    False
    >>> equivalent(ReluFFN([[2, -3]], [Q(1, 2), Q(1, 3)]), ReluFFN([[1, -1]], [1, 1]))  # |x|
    True
    """
    c1, c2 = _canonical_of(g1, "g1"), _canonical_of(g2, "g2")
    c1.field.require_same(c2.field, "g2")
    if c1.d != c2.d:
        raise ShapeError(f"the networks have input dimensions {c1.d} and {c2.d}")
    if not c1.field.exact:
        raise IncompatibleFieldError(
            "equivalence is decided exactly over QQ and EXP only; over F64 compare canonical "
            "forms numerically with parameter_error")
    return c1 == c2


def witness(g1: ReluFFN, g2: ReluFFN, *, seed: int = 0) -> Array | None:
    """A point x with g1(x) != g2(x) (exact), or None when they are equivalent.

    Built from the canonical forms as in the proof (module docstring): on a
    hyperplane whose beta differ, the second difference at a point y of it
    off the other hyperplanes; otherwise x = l1 - l2. The returned point is
    checked by evaluating both networks exactly.

    >>> x = witness(ReluFFN([[1, 0], [0, 1]], [1, 1]), ReluFFN([[1, 0], [0, 1]], [1, 2]))
    >>> x is not None
    True
    """
    n1, n2 = _as_network(g1, "g1"), _as_network(g2, "g2")
    c1, c2 = canonical(n1), canonical(n2)
    if equivalent(c1, c2):
        return None
    F = c1.field
    to_q = F.to_rational
    b1, b2 = dict(c1.terms), dict(c2.terms)
    normals = sorted(set(b1) | set(b2))
    gamma = {n: to_q(b1.get(n, F.zero())) - to_q(b2.get(n, F.zero())) for n in normals}
    rng = np.random.default_rng(seed)
    d = c1.d
    candidates: list[list[fmpq]] = []
    for n in normals:
        if gamma[n] == 0:
            continue
        nq = [fmpq(v) for v in n]
        nn = sum((v * v for v in nq), fmpq(0))
        for _ in range(64):
            z = [fmpq(int(v), 16) for v in rng.integers(-64, 65, size=d)]
            proj = sum((zi * ni for zi, ni in zip(z, nq, strict=True)), fmpq(0)) / nn
            y = [zi - proj * ni for zi, ni in zip(z, nq, strict=True)]
            others = [m for m in normals if m != n]
            dots = [sum((fmpq(a) * b for a, b in zip(m, y, strict=True)), fmpq(0))
                    for m in others]
            if any(v == 0 for v in dots):
                continue
            # s below the distance (along n) to every other hyperplane
            s = fmpq(1)
            for m, v in zip(others, dots, strict=True):
                mn = sum((fmpq(a) * b for a, b in zip(m, nq, strict=True)), fmpq(0))
                if mn != 0:
                    s = min(s, abs(v) / (2 * abs(mn)))
            candidates += [y, [yi + s * ni for yi, ni in zip(y, nq, strict=True)],
                           [yi - s * ni for yi, ni in zip(y, nq, strict=True)]]
            break
        break
    dl = [to_q(a) - to_q(b) for a, b in zip(c1.linear, c2.linear, strict=True)]
    candidates.append(dl)
    for x in candidates:
        xa = F.array([F.from_rational(v) for v in x])
        if n1.evaluate(xa) != n2.evaluate(xa):
            return xa
    raise AssertionError("internal error: no witness found for inequivalent networks")


def parameter_error(c1: CanonicalReLU | ReluFFN, c2: CanonicalReLU | ReluFFN) -> float:
    """Max parameter error between two canonical forms, as a float (any fields).

    Terms are matched by nearest normal; the error is the largest of
    ||l1 - l2||_inf and, over matched terms, ||beta1 n1 - beta2 n2||_inf with unit
    normals (scale-free in the normalisation); an unmatched term counts with
    its full size ||beta n||_inf. Used for the F64 route, where equality is
    numerical.
    """
    a, b = _canonical_of(c1, "c1"), _canonical_of(c2, "c2")
    if a.d != b.d:
        raise ShapeError(f"the forms have input dimensions {a.d} and {b.d}")

    def vecs(c: CanonicalReLU) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
        F = c.field
        lin = np.array([F.to_float(x) for x in c.linear])
        out = []
        for n, beta in c.terms:
            # beta |n^T x| as the vector beta n, n oriented with its largest entry
            # positive (|n^T x| does not see the sign of n)
            v = np.array([float(x) for x in n])
            if v[int(np.argmax(np.abs(v)))] < 0:
                v = -v
            out.append(v * F.to_float(beta))
        return lin, out

    la, ta = vecs(a)
    lb, tb = vecs(b)
    err = float(np.max(np.abs(la - lb))) if a.d else 0.0
    used: set[int] = set()
    for u in ta:
        best, best_j = math.inf, -1
        for j, v in enumerate(tb):
            if j in used:
                continue
            e = float(np.max(np.abs(u - v)))
            if e < best:
                best, best_j = e, j
        if best_j >= 0 and best < float(np.max(np.abs(u))):
            used.add(best_j)
            err = max(err, best)
        else:
            err = max(err, float(np.max(np.abs(u))))
    for j, v in enumerate(tb):
        if j not in used:
            err = max(err, float(np.max(np.abs(v))))
    return err
