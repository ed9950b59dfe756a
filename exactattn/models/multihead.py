"""Multi-head softmax attention, its canonical form and functional equivalence.

Labels ``multihead_nonidentifiable`` (paper Prop 7.1, v1 and v2; paper.md §6)
and ``multihead_canonical`` (exactattn's own; cf. arXiv 2608.03294).

After merging (paper.md §1, §6) an H-head layer read out at the last position
is a sum of single-head regressors:

    f(X) = sum_h alpha(X, W_h)^T X v_h,   alpha(X, W) = softmax(X W x_N).

Its parameters are not identifiable (Prop 7.1): heads may be permuted, a head
(A, b) may be split into heads (A, lambda_h b) with sum lambda_h = 1 (any
signs), and a head with v_h = 0 may carry any W_h. :func:`canonical` removes
exactly these symmetries: merge heads with equal W (sum their v), drop heads
whose merged v is 0, sort. :func:`equivalent` decides whether two models
compute the same function, exactly:

* equal canonical forms  =>  equal functions (the symmetries above);
* different canonical forms  =>  different functions. Proof (the
  identifiability of canonical heads): write f1 - f2 = sum_k alpha(X, M_k)^T X n_k
  with pairwise distinct M_k and n_k != 0 (merge equal W across both models).
  On the query X(c) = [a (c copies); b] a head contributes
  (c t A + B) / (c t + 1) with t = e^{(a-b)^T M b}, A = n . a, B = n . b, so

      (f1 - f2)(X(c)) = sum_k n_k . a - sum_k rho_k / (1 + c t_k),
      rho_k = n_k . (a - b).

  For a, b outside a proper algebraic subset (finitely many nonzero
  polynomials: (a - b)^T (M_k - M_l) b and rho_k), the t_k are pairwise
  distinct and every rho_k != 0, so the rational function of c has a pole
  at -1/t_k with nonzero residue for each k: it is not 0, and, its numerator
  having degree <= K, it is nonzero at one of c = 0..K. That c gives the
  exact witness that :func:`equivalent` returns (checked in EXP, so no
  genericity is taken on trust: a non-generic draw is simply redrawn).
  The same statement is the identifiability result of arXiv 2608.03294.

>>> from exactattn.fields import EXP
>>> A, b = [[1, 0], [0, -1]], [1, 2]
>>> f = MultiHeadAttention([(A, b)])
>>> g = MultiHeadAttention([(A, [3, 6]), (A, [-2, -4]), ([[5, 5], [5, 5]], [0, 0])])
>>> X = [[1, 2], [0, 1], [3, -1]]
>>> f(X) == g(X)                      # Prop 7.1: split heads and a zero head
True
>>> bool(equivalent(f, g)), canonical(g).H
(True, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from flint import fmpq

from ..errors import ExactattnError, InvalidEntryError, ShapeError
from ..fields import EXP, F64, Array, Field
from ..queries import as_matrix, as_query, as_query_batch, as_vector, shape_of
from .attention import SingleHeadAttention, finite_answers, square_dimension

__all__ = [
    "MultiHeadAttention",
    "ConcatenatedMultiHeadAttention",
    "canonical",
    "equivalent",
    "Equivalence",
    "copy_query",
    "random_multihead",
    "same_heads",
]


class MultiHeadAttention:
    """f(X) = sum_h softmax(X W_h x_N)^T X v_h over a field (merged parameters).

    Parameters
    ----------
    heads : sequence of pairs (W_h, v_h), W_h a d x d matrix, v_h a length-d vector.
        May be empty (then f = 0 and ``d`` is required).
    field : the field the model is evaluated over (default :data:`EXP`).
    d : the token dimension; required only when ``heads`` is empty.

    Labels ``multihead_nonidentifiable`` (paper Prop 7.1) and
    ``multihead_canonical``; see the module docstring.

    >>> f = MultiHeadAttention([([[0, 1], [1, 0]], [1, 0]), ([[2, 0], [0, 0]], [0, 1])])
    >>> f.H, f.d, f([[3, 4]])             # one token: sum_h v_h . x
    (2, 2, 7)
    """

    def __init__(self, heads: Iterable[tuple[Any, Any]], *, field: Field = EXP,
                 d: int | None = None) -> None:
        self.field = field
        if not isinstance(heads, Iterable) or isinstance(heads, str | bytes | dict):
            raise InvalidEntryError(f"heads must be a sequence of pairs (W_h, v_h), got "
                                    f"{type(heads).__name__}")
        pairs = list(heads)
        built: list[SingleHeadAttention] = []
        for h, pair in enumerate(pairs):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InvalidEntryError(f"head {h} is {pair!r}, expected a pair (W_h, v_h)")
            W, v = pair
            dh = square_dimension(W, f"W_{h}")
            if d is not None and dh != d:
                raise ShapeError(f"W_{h} is {dh} x {dh}, expected d = {d}")
            if (shape := shape_of(v, f"v_{h}")) != (dh,):
                raise ShapeError(f"v_{h} has shape {shape}, expected ({dh},)")
            d = dh
            built.append(SingleHeadAttention(
                as_matrix(field, W, (dh, dh), name=f"W_{h}"),
                as_vector(field, v, dh, name=f"v_{h}"), field=field))
        if d is None:
            raise ShapeError("a model with no heads needs d= (the token dimension)")
        if not isinstance(d, int) or d < 1:
            raise ShapeError(f"d must be a positive integer, got {d!r}")
        self.d = d
        self.heads: tuple[SingleHeadAttention, ...] = tuple(built)

    @property
    def H(self) -> int:
        """The number of heads (not necessarily canonical)."""
        return len(self.heads)

    @property
    def Ws(self) -> list[Array]:
        return [h.W for h in self.heads]

    @property
    def vs(self) -> list[Array]:
        return [h.v for h in self.heads]

    def arrays(self) -> tuple[Array, Array]:
        """The heads stacked head first: W of shape (H, d, d) and v of shape (H, d), row h
        being head h. This is the layout of a multi-head recovery's ``params["W"]`` and
        ``params["v"]`` (every multi-head learner returns its heads so).

        >>> f = MultiHeadAttention([([[1, 0], [0, 2]], [1, 0]), ([[0, 1], [-1, 0]], [1, 1])])
        >>> W, v = f.arrays()
        >>> W.shape, v.shape, v.tolist()
        ((2, 2, 2), (2, 2), [[1, 0], [1, 1]])
        >>> same_heads(MultiHeadAttention.from_arrays(W, v), f)
        True
        """
        F, d = self.field, self.d
        W, v = F.zeros((self.H, d, d)), F.zeros((self.H, d))
        for h, head in enumerate(self.heads):
            W[h], v[h] = head.W, head.v
        return W, v

    @classmethod
    def from_arrays(cls, W: Any, v: Any, *, field: Field = EXP) -> MultiHeadAttention:
        """The model of stacked heads, head first: W of shape (H, d, d), v of shape (H, d)
        (the layout of a multi-head recovery's parameters; inverse of :meth:`arrays`).
        H may be 0 (then f = 0)."""
        Wa = W if isinstance(W, np.ndarray) else np.asarray(W, dtype=object)
        va = v if isinstance(v, np.ndarray) else np.asarray(v, dtype=object)
        if Wa.ndim != 3 or Wa.shape[1] != Wa.shape[2] or va.shape != Wa.shape[:2]:
            raise ShapeError(f"W has shape {Wa.shape} and v {va.shape}: expected W of shape "
                             "(H, d, d) and v of shape (H, d), head first (row h is head h)")
        return cls([(Wa[h], va[h]) for h in range(Wa.shape[0])], field=field,
                   d=int(Wa.shape[2]) or None)

    def __repr__(self) -> str:
        return f"MultiHeadAttention(H={self.H}, d={self.d}, field={self.field.name})"

    @classmethod
    def from_projections(cls, Q: Sequence[Any], K: Sequence[Any], V: Sequence[Any], w_o: Any,
                         *, field: Field = EXP) -> MultiHeadAttention:
        """The merged form of the concatenation form (paper.md §1).

        Head h has Q_h, K_h, V_h in F^{d_h x d}; the head outputs
        o_h = sum_i alpha_i V_h x_i are concatenated and read out by
        w_o in F^{H d_h}. Then W_h = K_h^T Q_h and v_h = V_h^T w_o[h d_h:(h+1) d_h].
        :class:`ConcatenatedMultiHeadAttention` evaluates the unmerged form.
        """
        cat = ConcatenatedMultiHeadAttention(Q, K, V, w_o, field=field)
        heads = []
        for h in range(cat.H):
            W = cat.K[h].T @ cat.Q[h]
            v = cat.V[h].T @ cat.w_o[h * cat.dh:(h + 1) * cat.dh]
            heads.append((W, v))
        return cls(heads, field=field, d=cat.d)

    def __call__(self, X: Any) -> Any:
        Xc = as_query(self.field, X, self.d)
        total = self.field.zero()
        for head in self.heads:
            total = total + head(Xc)
        return total if self.field.exact else finite_answers(total)

    def batch(self, Xs: Any) -> Array:
        checked = as_query_batch(self.field, Xs, self.d)
        if self.field is F64:
            out = np.zeros(len(checked), dtype=np.float64)
            for head in self.heads:
                out = out + head.batch(checked)
            return finite_answers(out)
        res = np.empty(len(checked), dtype=object)
        for b, X in enumerate(checked):
            res[b] = self(X)
        return res


class ConcatenatedMultiHeadAttention:
    """The unmerged concatenation form: f(X) = w_o^T [o_1; ...; o_H] (paper.md §1).

    o_h = sum_i alpha_i V_h x_i with alpha = softmax over i of (K_h x_i)^T (Q_h x_N);
    Q_h, K_h, V_h in F^{d_h x d}; w_o in F^{H d_h}. Evaluated directly, without
    merging, so that a test can check the merged form against it.

    >>> cat = ConcatenatedMultiHeadAttention([[[1, 0]]], [[[0, 1]]], [[[2, 1]]], [3])
    >>> merged = MultiHeadAttention.from_projections([[[1, 0]]], [[[0, 1]]], [[[2, 1]]], [3])
    >>> cat([[1, 1], [0, 2]]) == merged([[1, 1], [0, 2]])
    True
    """

    def __init__(self, Q: Sequence[Any], K: Sequence[Any], V: Sequence[Any], w_o: Any,
                 *, field: Field = EXP) -> None:
        if not (len(Q) == len(K) == len(V)) or len(Q) == 0:
            raise ShapeError(f"Q, K, V must list the same number H >= 1 of heads, got "
                             f"{len(Q)}, {len(K)}, {len(V)}")
        shape = shape_of(Q[0], "Q_0")
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise ShapeError(f"Q_0 has shape {shape}, expected d_h x d")
        dh, d = int(shape[0]), int(shape[1])
        self.field, self.d, self.dh, self.H = field, d, dh, len(Q)
        self.Q = [as_matrix(field, M, (dh, d), name=f"Q_{h}") for h, M in enumerate(Q)]
        self.K = [as_matrix(field, M, (dh, d), name=f"K_{h}") for h, M in enumerate(K)]
        self.V = [as_matrix(field, M, (dh, d), name=f"V_{h}") for h, M in enumerate(V)]
        self.w_o = as_vector(field, w_o, self.H * dh, name="w_o")

    def __call__(self, X: Any) -> Any:
        F = self.field
        Xc = as_query(F, X, self.d)
        outputs = []
        for h in range(self.H):
            q = self.Q[h] @ Xc[-1]
            keys = Xc @ self.K[h].T
            scores = list(keys @ q)
            values = Xc @ self.V[h].T  # N x d_h
            top = max(scores)
            weights = [F.exp(F(s - top)) for s in scores]
            den = sum(weights[1:], weights[0])
            o = sum((w * values[i] for i, w in enumerate(weights)), F.zeros(self.dh))
            outputs.extend(list(o / den))
        return sum((a * b for a, b in zip(outputs, self.w_o, strict=True)), F.zero())


# -- canonical form ----------------------------------------------------------
def _sort_key(field: Field, W: Array, v: Array) -> tuple[Any, ...]:
    """A deterministic total order on heads: W row-major, then v (exact for rationals)."""
    if field.exact:
        conv = field.to_rational
        return tuple(conv(x) for x in W.flat) + tuple(conv(x) for x in v)
    return tuple(float(x) for x in W.flat) + tuple(float(x) for x in v)


def canonical(model: MultiHeadAttention) -> MultiHeadAttention:
    """The canonical form: merge equal W (sum v), drop merged v = 0, sort.

    Idempotent, and invariant under the symmetries of Prop 7.1 (head
    permutation, shared-W splits v_h = lambda_h b with sum lambda_h = 1, and
    zero-v heads with any W): each of them leaves every merged v unchanged.
    Heads are sorted by their W entries (row-major, as rationals), then v.

    >>> m = MultiHeadAttention([([[1]], [2]), ([[0]], [5]), ([[1]], [-2])])
    >>> c = canonical(m)
    >>> c.H, c.Ws[0].tolist(), c.vs[0].tolist()
    (1, [[0]], [5])
    """
    F = model.field
    merged: list[tuple[Array, Array]] = []
    for W, v in zip(model.Ws, model.vs, strict=True):
        for k, (W0, v0) in enumerate(merged):
            if bool((W0 == W).all()):
                merged[k] = (W0, v0 + v)
                break
        else:
            merged.append((W, v.copy()))
    kept = [(W, v) for W, v in merged if any(F.sign(x) != 0 for x in v)]
    kept.sort(key=lambda wv: _sort_key(F, wv[0], wv[1]))
    return MultiHeadAttention(kept, field=F, d=model.d)


def same_heads(m1: MultiHeadAttention, m2: MultiHeadAttention) -> bool:
    """Exact equality of the head lists (in order): equal W_h and v_h for every h."""
    return m1.d == m2.d and m1.H == m2.H and all(
        bool((a.W == b.W).all() and (a.v == b.v).all())
        for a, b in zip(m1.heads, m2.heads, strict=True))


# -- equivalence -------------------------------------------------------------
def copy_query(field: Field, a: Any, b: Any, copies: int) -> Array:
    """The query [a (``copies`` times); b]: the copy family of the learner."""
    rows = [field.array(a)] * copies + [field.array(b)]
    return np.stack(rows)


@dataclass(frozen=True)
class Equivalence:
    """The answer of :func:`equivalent`, with its reason.

    ``equivalent`` is the verdict; for True, ``canonical1`` and ``canonical2``
    are the equal canonical forms; for False, ``witness`` is a query X with
    ``model1(X) != model2(X)`` checked exactly, and ``answers`` the two outputs.
    """

    equivalent: bool
    reason: str
    canonical1: MultiHeadAttention
    canonical2: MultiHeadAttention
    witness: Array | None = None
    answers: tuple[Any, Any] | None = None

    def __bool__(self) -> bool:
        return self.equivalent


#: random (a, b) draws tried by :func:`equivalent` before giving up (each works
#: with probability 1; a failure would contradict the identifiability proof)
WITNESS_DRAWS = 20


def equivalent(model1: MultiHeadAttention, model2: MultiHeadAttention, *,
               seed: int = 0) -> Equivalence:
    """Decide whether two multi-head models compute the same function, exactly.

    True iff the canonical forms are equal (module docstring: equal canonical
    forms give equal functions; distinct ones do not, by the identifiability
    of canonical heads proved there, cf. arXiv 2608.03294). A False answer
    always carries an exact witness X = [a (c copies); b] with
    c <= H1 + H2, found from seeded rational a, b and checked in EXP.

    Parameters are compared exactly, so both models must be over an exact
    field (EXP or QQ entries).

    >>> f = MultiHeadAttention([([[1, 0], [0, 1]], [1, 0])])
    >>> g = MultiHeadAttention([([[1, 0], [0, 1]], [1, 0]), ([[0, 1], [0, 0]], [0, 1])])
    >>> r = equivalent(f, g)
    >>> bool(r), f(r.witness) != g(r.witness)
    (False, True)
    """
    if model1.d != model2.d:
        raise ShapeError(f"the models have d = {model1.d} and d = {model2.d}")
    if not (model1.field.exact and model2.field.exact):
        raise InvalidEntryError("equivalent() decides exact models only (EXP or QQ)")
    c1 = canonical(_over_exp(model1))
    c2 = canonical(_over_exp(model2))
    if same_heads(c1, c2):
        return Equivalence(True, f"equal canonical forms ({c1.H} heads)", c1, c2)
    d = model1.d
    K = c1.H + c2.H
    rng = np.random.default_rng([seed, d, K])
    for _ in range(WITNESS_DRAWS):
        a = [fmpq(int(rng.integers(-40, 41)), 8) for _ in range(d)]
        b = [fmpq(int(rng.integers(-40, 41)), 8) for _ in range(d)]
        for c in range(K + 1):
            X = copy_query(EXP, a, b, c)
            y1, y2 = c1(X), c2(X)
            if y1 != y2:
                return Equivalence(
                    False, f"canonical forms differ ({c1.H} vs {c2.H} heads); the witness "
                    f"[a ({c} copies); b] gives different outputs (exact comparison in EXP)",
                    c1, c2, X, (y1, y2))
    raise ExactattnError(  # pragma: no cover - contradicts the identifiability proof
        f"no witness found in {WITNESS_DRAWS} draws although the canonical forms differ")


def _over_exp(model: MultiHeadAttention) -> MultiHeadAttention:
    if model.field is EXP:
        return model
    return MultiHeadAttention([(EXP.array(W), EXP.array(v)) for W, v in
                               zip(model.Ws, model.vs, strict=True)], field=EXP, d=model.d)


def random_multihead(H: int, d: int, seed: int, *, field: Field = EXP,
                     max_num: int = 9, max_den: int = 8) -> MultiHeadAttention:
    """A seeded H-head model with small rational entries p/q (|p| <= 9, q <= 8).

    Same seed, same model on every machine (numpy ``default_rng([seed, H, d])``).
    With probability close to 1 its canonical form has H heads.

    >>> random_multihead(2, 3, 0).H
    2
    """
    from ..instances import check_size  # here: instances imports the models

    check_size("H", H, low=1)
    check_size("d", d, low=1)
    check_size("seed", seed)
    rng = np.random.default_rng([seed, H, d])

    def q() -> fmpq:
        return fmpq(int(rng.integers(-max_num, max_num + 1)), int(rng.integers(1, max_den + 1)))

    heads = [([[q() for _ in range(d)] for _ in range(d)], [q() for _ in range(d)])
             for _ in range(H)]
    return MultiHeadAttention(heads, field=field, d=d)
