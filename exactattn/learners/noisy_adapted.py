r"""Single-head attention from approximate value queries, with probes adapted to v.

Label ``noisy_oracle`` (variant ``"adapted"``): a variant of paper Thm 6.2 (v1)
= Thm 6.1 (v2), paper.md §5, that goes beyond the paper. It uses the same
clipped inverse (lemma ``clipped_inverse``, Lemma 6.1 v1 = Lemma A.1 v2) and
the same query count, but it replaces the paper's margin hypothesis
min_i |v_i| >= mu > 0 (every coordinate of v in the standard basis bounded
away from 0, which excludes every sparse v) by a lower bound on the norm,
nu <= ||v||_2. The probe directions are chosen *after* v is estimated, adapted
to it. The proof, step by step and checked, is
:mod:`exactattn.symbolic.noisy_adapted`.

Hypotheses: ||W||_F <= W_bound with W_bound >= 2 known; nu <= ||v||_2 <= 1
with 0 < nu <= 1 known; every query token has norm <= 1 (the learner's do,
exactly); the oracle answers AVQ(X; tau) within the tau the learner asks for,
adversarially and deterministically.

Algorithm (exactly d + d^2 queries)
-----------------------------------
1. v_hat_i = AVQ([e_i^T]; tau_v), i = 1..d. Check ||v_hat||_2 >= nu - r tau_v
   (exactly, on squares), where r = ceil(sqrt d).
2. rho: a dyadic rational with ||v_hat|| <= rho <= (9/8) ||v_hat|| (from
   ``math.isqrt``; checked on squares). w = v_hat / rho, s_l = +1 if
   v_hat_l >= 0 else -1, probes u_l = (w + s_l e_l) / 3, stacked as the rows of
   Z = (1 w^T + diag(s)) / 3. Then ||u_l|| <= (||w|| + 1)/3 <= 2/3 and
   u_l . v_hat = (||v_hat||^2 / rho + |v_hat_l|) / 3 >= ||v_hat||^2 / (3 rho) > 0.
3. For every (l, j), with a = 1/2 and b = 1/W_bound, query
   X = [(b u_l + a e_j)^T; (a e_j)^T] within tau_f. Token norms are
   <= (2/3) b + a <= 5/6; the score gap is a b t_lj with t_lj = u_l^T W e_j and
   |a b t_lj| <= a b ||u_l|| ||W||_F <= 1/3, so alpha* = sigma(a b t_lj) lies in
   [tau_c, 1 - tau_c], tau_c = sigma(-1/2); the answer is
   f = a v_j + alpha* b (u_l . v).
4. alpha_hat = (y - a v_hat_j) / (b u_l . v_hat) (exact rational);
   t_hat_lj = logit(clip(alpha_hat)) / (a b), clip at tau_c decided exactly in
   EXP, the log a rigorous ``arb`` ball (its midpoint is used, its radius added
   to the reported bounds).
5. W_hat = Z^{-1} T_hat: one exact rational solve (python-flint). By
   Sherman–Morrison (1 + w^T diag(s) 1 = 1 + ||w||_1 > 0),
   Z^{-1} = 3 (diag(s) - s |w|^T / (1 + ||w||_1)).

Theorem (tolerances and bounds, all exact rationals)
----------------------------------------------------
Let r = ceil(sqrt d), K_d = 3 + 3r/2 and L <= L_UPPER = 4.2553 (the constant
of ``clipped_inverse``, L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2)). Take

    tau_f = nu eps_W / (80 K_d W_bound^2 d),
    tau_v = min(nu / (4 r), eps_v / r, 6 W_bound tau_f / (4 r + 3 W_bound)).

If ||W||_F <= W_bound and every answer is within the tolerance asked for,
then the learner returns whenever nu <= ||v||_2 <= 1, and whenever it returns
(its check ||v_hat|| >= nu - r tau_v passed)

    ||v_hat - v||_2 <= r tau_v <= eps_v,
    |alpha_hat - alpha*| <= E_alpha := (3 / (2 nu)) (2 r tau_v + 3 W_bound tau_f
                                                      + (3/2) W_bound tau_v)
                         <= 9 W_bound tau_f / nu,
    |t_hat_lj - t_lj| <= e_t := 2 W_bound L E_alpha,
    |W_hat_ij - W_ij| <= (9/2) r e_t,
    ||W_hat - W||_F <= K_d d e_t <= 18 L K_d d W_bound^2 tau_f / nu
                    = (18 L / 80) eps_W < 0.958 eps_W,

plus the logarithm's ball radius, propagated the same way. The dependence on
d: ||Z^{-1}||_2 <= K_d = 3 + (3/2) ceil(sqrt d), and this growth is real (for
w = e_1 the rank-one part of Z^{-1} has norm (3/2) sqrt d), so tau_f carries
one more factor 1/K_d = Theta(1/sqrt d) than the paper's tau_f with mu replaced
by nu. Since min_i |v_i| <= ||v|| / sqrt d for every v, the paper's tau_f is
never larger than ours by more than K_d / sqrt d <= 9/2 (with nu = ||v||); the
query count stays exactly d + d^2.

Proof sketch. (i) ||v_hat - v||_2 <= sqrt(d) tau_v <= r tau_v =: delta <= nu/4,
so the checked ||v_hat|| >= nu - delta gives ||v_hat|| >= 3 nu / 4 and
rho / ||v_hat||^2 <= (9/8) / ||v_hat|| <= 3 / (2 nu). (ii) With c = b u_l . v,
c_hat = b u_l . v_hat and y = f + eta, |eta| <= tau_f:
alpha_hat - alpha* = (alpha* (c - c_hat) + eta + a (v_j - v_hat_j)) / c_hat,
where |c - c_hat| <= b ||u_l|| delta <= (2/3) b delta (u_l is a known fixed
vector once chosen: only the denominator carries the error of v_hat),
0 <= alpha* <= 1 and c_hat >= b ||v_hat||^2 / (3 rho); so
|alpha_hat - alpha*| <= (2 delta + 3 W_bound tau_f + (3/2) W_bound tau_v)
rho / ||v_hat||^2 <= E_alpha. (iii) The choice of tau_v gives
(2 r + (3/2) W_bound) tau_v <= 3 W_bound tau_f, so E_alpha <= 9 W_bound tau_f / nu.
(iv) ``clipped_inverse``: |logit(clip(alpha_hat)) - a b t_lj| <= L |alpha_hat - alpha*|.
(v) W_hat - W = Z^{-1} (T_hat - T): ||.||_F <= ||Z^{-1}||_2 ||T_hat - T||_F <=
K_d d e_t, and each entry <= ||row_i Z^{-1}|| ||column_j (T_hat - T)|| <=
(9/2) sqrt(d) e_t, since every row of Z^{-1} has norm <= 3 (1 + ||w|| / (1 + ||w||_1))
<= 9/2 and ||Z^{-1}||_2 <= 3 (1 + sqrt(d) ||w|| / (1 + ||w||_1)) <= K_d.
(vi) K_d d e_t <= 18 L K_d d W_bound^2 tau_f / nu = (18 L / 80) eps_W <= eps_W
because L <= L_UPPER < 40/9. The hypothesis nu <= ||v|| enters only through
the checked ||v_hat|| >= nu - r tau_v; ||v|| <= 1 is not used by the bound (it
is the paper's model class and is checked up to r tau_v, as the paper's
learner does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flint import fmpq

from ..errors import HypothesisViolatedError, InvalidEntryError
from ..fields import QQ, rational
from ..fields.rational import sqrt_upper
from ..linalg import solve
from ..oracle import NoisyOracle
from .arguments import checked_arguments
from .noisy import (
    L_UPPER,
    ORACLE_HYPOTHESIS,
    PROBE_A,
    _bits_for,
    _dec,
    ceil_sqrt,
    check_epsilon_W,
    checked_prec,
    clipped_logits,
    log_radius_budget,
    positive_rational,
    v_hypotheses,
)
from .recovery import QuerySpan, Recovery

__all__ = ["learn_single_head_noisy_adapted", "adapted_tolerances", "adapted_error_bounds",
           "adapted_probes", "probe_inverse", "AdaptedBounds", "z_inverse_bound", "ceil_sqrt",
           "LABEL", "VARIANT", "PAPER_REF", "RHO_FACTOR", "ROW_BOUND", "TAU_F_DENOMINATOR"]

LABEL = "noisy_oracle"
VARIANT = "adapted"
PAPER_REF = "Thm 6.2 (v1), Thm 6.1 (v2, reported); adapted-probe variant (beyond the paper)"

#: rho approximates ||v_hat||_2 from above within this factor: ||v_hat|| <= rho <= 9/8 ||v_hat||
RHO_FACTOR = fmpq(9, 8)
#: every row of Z^{-1} has Euclidean norm <= 3 (1 + 1/2)
ROW_BOUND = fmpq(9, 2)
#: the constant in tau_f = nu eps_W / (80 K_d W_bound^2 d); it needs 18 L <= 80
TAU_F_DENOMINATOR = 80
if not 18 * L_UPPER <= TAU_F_DENOMINATOR:  # pragma: no cover - a proven fact
    raise AssertionError("18 L_UPPER > 80: the tolerance constant is too small")

#: the hypotheses the learner checks before it asks anything (it raises otherwise)
CHECKED = ("W_bound >= 2", "0 < norm_lower <= 1", "epsilon_W > 0", "epsilon_v > 0",
           "query tokens have norm <= 1", "minimum_prec <= prec <= MAX_PREC")


def z_inverse_bound(d: int) -> fmpq:
    """K_d = 3 + 3 ceil(sqrt d) / 2, a bound on ||Z^{-1}||_2 for the adapted probes.

    >>> z_inverse_bound(1), z_inverse_bound(4), z_inverse_bound(5)
    (9/2, 6, 15/2)
    """
    return 3 + fmpq(3 * ceil_sqrt(d), 2)


@dataclass(frozen=True)
class AdaptedBounds:
    """The theorem's tolerances and the error bounds it gives under its hypotheses (rationals)."""

    d: int
    tau_f: fmpq
    tau_v: fmpq
    Z_inverse: fmpq  # K_d >= ||Z^{-1}||_2
    alpha: fmpq  # E_alpha >= |alpha_hat - alpha*|
    T_entry: fmpq  # e_t >= |t_hat_lj - t_lj| (before the log's ball radius)
    W_entry: fmpq  # (9/2) r e_t >= |W_hat_ij - W_ij|
    W_frobenius: fmpq  # K_d d e_t >= ||W_hat - W||_F
    v_2: fmpq  # r tau_v >= ||v_hat - v||_2

    def to_json(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in
                ("tau_f", "tau_v", "Z_inverse", "alpha", "T_entry", "W_entry", "W_frobenius",
                 "v_2")}


def adapted_error_bounds(d: int, *, W_bound: Any, norm_lower: Any, tau_f: Any,
                         tau_v: Any) -> AdaptedBounds:
    """The bounds of the theorem for *given* tolerances (steps (i) to (v) of the proof).

    Needs r tau_v <= nu / 4 (step (i)); raises HypothesisViolatedError otherwise.

    >>> b = adapted_error_bounds(1, W_bound=2, norm_lower=1, tau_f=fmpq(1, 1000), tau_v=0)
    >>> b.alpha, b.v_2
    (9/1000, 0)
    """
    Wb, nu = rational(W_bound), rational(norm_lower)
    tf, tv = rational(tau_f), rational(tau_v)
    r = ceil_sqrt(d)
    if tf < 0 or tv < 0:
        raise InvalidEntryError("tolerances must be >= 0")
    if 4 * r * tv > nu:
        raise HypothesisViolatedError(
            f"r tau_v = {r * tv} > norm_lower / 4 = {nu / 4}: the bound needs "
            "||v_hat - v|| <= norm_lower / 4", hypothesis="r tau_v <= norm_lower / 4")
    delta = r * tv
    alpha = fmpq(3, 2) / nu * (2 * delta + 3 * Wb * tf + fmpq(3, 2) * Wb * tv)
    t_entry = 2 * Wb * L_UPPER * alpha  # L |alpha_hat - alpha*| / (a b), a b = 1/(2 W_bound)
    K = z_inverse_bound(d)
    return AdaptedBounds(d, tf, tv, K, alpha, t_entry, ROW_BOUND * r * t_entry,
                         K * d * t_entry, delta)


def adapted_tolerances(d: int, *, epsilon_W: Any, epsilon_v: Any, W_bound: Any,
                       norm_lower: Any) -> AdaptedBounds:
    """The tolerances of the theorem and the bounds they give under its hypotheses, exactly.

    tau_f = nu eps_W / (80 K_d W_bound^2 d),
    tau_v = min(nu / (4 r), eps_v / r, 6 W_bound tau_f / (4 r + 3 W_bound)).

    >>> b = adapted_tolerances(3, epsilon_W=1, epsilon_v=1, W_bound=2, norm_lower=fmpq(1, 2))
    >>> b.tau_f, b.tau_v, b.Z_inverse
    (1/11520, 1/13440, 6)
    >>> b.W_frobenius <= 1 and b.v_2 <= 1
    True
    """
    eps_W, eps_v, Wb, nu = (positive_rational(x, n) for x, n in
                            ((epsilon_W, "epsilon_W"), (epsilon_v, "epsilon_v"),
                             (W_bound, "W_bound"), (norm_lower, "norm_lower")))
    if not isinstance(d, int) or d < 1:
        raise InvalidEntryError(f"d must be a positive integer, got {d!r}")
    if Wb < 2:
        raise HypothesisViolatedError(f"W_bound = {Wb} < 2: the theorem needs W_bound >= 2",
                                      hypothesis="W_bound >= 2")
    if nu > 1:
        raise HypothesisViolatedError(
            f"norm_lower = {nu} > 1 contradicts ||v|| <= 1", hypothesis="norm_lower <= 1")
    r = ceil_sqrt(d)
    K = z_inverse_bound(d)
    check_epsilon_W(eps_W, (K * d + 2) * Wb, "(K_d d + 2) W_bound",
                    f"every clipped logit has |t_hat_lj| <= W_bound plus the logarithm's ball "
                    f"radius and ||Z^-1||_2 <= K_d = {K}")
    tau_f = nu * eps_W / (TAU_F_DENOMINATOR * K * Wb * Wb * d)
    tau_v = min(nu / (4 * r), eps_v / r, 6 * Wb * tau_f / (4 * r + 3 * Wb))
    return adapted_error_bounds(d, W_bound=Wb, norm_lower=nu, tau_f=tau_f, tau_v=tau_v)


def adapted_probes(v_hat: Sequence[Any]) -> tuple[fmpq, list[int], list[list[fmpq]]]:
    """(rho, s, U): the probes u_l = (v_hat / rho + s_l e_l) / 3 as the rows of U = Z.

    >>> rho, s, U = adapted_probes([fmpq(1, 2), 0, 0])
    >>> rho, s, U[0], U[1]
    (1/2, [1, 1, 1], [2/3, 0, 0], [1/3, 1/3, 0])
    """
    vq = [rational(x) for x in v_hat]
    S = sum((x * x for x in vq), fmpq(0))
    if S == 0:
        raise HypothesisViolatedError("v_hat = 0: no probe direction", hypothesis="||v|| > 0")
    rho = sqrt_upper(S, RHO_FACTOR)
    d = len(vq)
    w = [x / rho for x in vq]
    s = [1 if x >= 0 else -1 for x in vq]
    U = [[(w[k] + (s[l] if k == l else 0)) / 3 for k in range(d)] for l in range(d)]
    return rho, s, U


def probe_inverse(v_hat: Sequence[Any], rho: Any, s: Sequence[int]) -> list[list[fmpq]]:
    """Z^{-1} = 3 (diag(s) - s |w|^T / (1 + ||w||_1)), w = v_hat / rho (Sherman–Morrison).

    >>> probe_inverse([fmpq(1, 2), 0], fmpq(1, 2), [1, 1])
    [[3/2, 0], [-3/2, 3]]
    """
    w = [rational(x) / rational(rho) for x in v_hat]
    n1 = sum((abs(x) for x in w), fmpq(0))
    d = len(w)
    return [[3 * ((s[i] if i == k else 0) - s[i] * abs(w[k]) / (1 + n1)) for k in range(d)]
            for i in range(d)]


@checked_arguments()
def learn_single_head_noisy_adapted(
    oracle: NoisyOracle,
    *,
    epsilon_W: Any,
    epsilon_v: Any,
    W_bound: Any,
    norm_lower: Any,
    prec: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Recovery:
    """(W, v) within (epsilon_W, epsilon_v) from d + d^2 approximate queries, no margin.

    Label ``noisy_oracle``, variant ``"adapted"`` (beyond paper Thm 6.2 v1 /
    6.1 v2): only a lower bound ``norm_lower`` = nu <= ||v||_2 is needed, not
    a margin on every coordinate. See the module docstring for the algorithm,
    the theorem and its proof. The recovery is over QQ with status
    ``approximate``; its ``hypotheses`` name every hypothesis that the
    answers did not confirm (||W||_F <= W_bound, ||v|| <= 1,
    ||v||_2 >= norm_lower; the bounds are conditional on them) and the oracle
    contract; its options hold the tolerances, the bounds (given those hypotheses)
    (``W_frobenius_bound``, ``W_entry_bound``, ``v_bound``, read by the
    certificate) and the hypotheses checked or confirmed. Which violations
    the answers prove: as for the paper's learner (:mod:`exactattn.learners.noisy`),
    with ||Z||_2 <= min(||Z||_F, (ceil(sqrt d) + 1) / 3) and ||Z^{-1}||_2 <= K_d
    in the Frobenius tests, plus ||W_hat||_F > W_bound + R, where
    R = ||Z^{-1}||_F ||T - T_hat||_F / (a b) bounds ||W - W_hat||_F from the
    enclosures alone (no hypothesis); ||W_hat||_F + R <= W_bound confirms it.

    Parameters
    ----------
    prec : bits for the logarithms; None for max(128, the minimum), validated
        before any query (InvalidEntryError naming the minimum).

    Raises
    ------
    HypothesisViolatedError : naming the hypothesis (W_bound >= 2,
        ||v|| >= norm_lower, ||v|| <= 1, ||W||_F <= W_bound), when the
        parameters or the answers prove it false.

    >>> from fractions import Fraction as Fr
    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> W = QQ.array([[1, -1], [Fr(1, 2), 0]])     # v = (1/2, 0): no margin at all
    >>> head = SingleHeadAttention(W, [Fr(1, 2), 0], field=EXP)
    >>> oracle = NoisyOracle(head, tolerance=0, adversary="worst")
    >>> rec = learn_single_head_noisy_adapted(oracle, epsilon_W=Fr(1, 10), epsilon_v=Fr(1, 10),
    ...                                       W_bound=2, norm_lower=Fr(1, 2))
    >>> rec.queries, rec.options["variant"], rec.status
    (6, 'adapted', 'approximate')
    >>> err = sum((rec.W[i, j] - W[i, j]) ** 2 for i in range(2) for j in range(2))
    >>> err <= QQ(Fr(rec.options["W_frobenius_bound"])) ** 2 <= fmpq(1, 100)
    True
    """
    if not isinstance(oracle, NoisyOracle):
        raise InvalidEntryError("learn_single_head_noisy_adapted needs an approximate-value "
                                "oracle (NoisyOracle), which takes a tolerance per query")
    d = oracle.d
    bounds = adapted_tolerances(d, epsilon_W=epsilon_W, epsilon_v=epsilon_v, W_bound=W_bound,
                                norm_lower=norm_lower)
    Wb, nu = rational(W_bound), rational(norm_lower)
    # the logarithms' radius (on T, in logit units) must keep K_d d e_t within eps_W
    budget = log_radius_budget(bounds.T_entry, d=d, epsilon_W=epsilon_W, W_bound=Wb,
                               entry_target=rational(epsilon_W) / (bounds.Z_inverse * d))
    prec = checked_prec(prec, _bits_for(budget))
    span = QuerySpan.begin(oracle)

    # 1. v within tau_v; ||v_hat - v||_2 <= r tau_v = bounds.v_2 <= nu / 4; v lies in the
    # box v_hat +- tau_v, and a hypothesis false on the whole box is proved false
    I = QQ.eye(d)
    v = oracle.batch(I[:, None, :], phase="v", tolerance=bounds.tau_v)
    vq = [rational(x) for x in v]
    S = sum((x * x for x in vq), fmpq(0))
    v_low, v_high = v_hypotheses(vq, bounds.tau_v)  # raises when ||v|| > 1 on the whole box
    if v_high < nu * nu:
        raise HypothesisViolatedError(
            f"||v||_2 >= norm_lower = {nu} is violated: every v within tau_v = {bounds.tau_v} "
            f"of the answers has ||v||^2 <= {_dec(v_high)} < norm_lower^2 = {_dec(nu * nu)}",
            hypothesis="||v||_2 >= norm_lower")
    floor = nu - bounds.v_2  # >= 3 nu / 4 > 0
    if S < floor * floor:  # pragma: no cover - implied by v_high >= nu^2 (sqrt(d) <= r)
        raise AssertionError("internal error: ||v_hat|| < norm_lower - r tau_v")
    confirmed: list[str] = []
    unconfirmed: list[str] = []
    (confirmed if v_high <= 1 else unconfirmed).append("||v|| <= 1")
    (confirmed if v_low >= nu * nu else unconfirmed).append(f"||v||_2 >= norm_lower = {nu}")

    # 2. probes adapted to v_hat: rows of Z, u_l . v_hat >= ||v_hat||^2 / (3 rho) > 0
    rho, s, U = adapted_probes(vq)
    c_hat = [sum((x * y for x, y in zip(U[l], vq, strict=True)), fmpq(0)) for l in range(d)]
    for l in range(d):
        if sum(x * x for x in U[l]) > fmpq(4, 9) or c_hat[l] < S / (3 * rho):
            raise AssertionError("internal error: a probe breaks ||u|| <= 2/3 or "
                                 "u . v_hat >= ||v_hat||^2 / (3 rho)")  # pragma: no cover

    # 3. the scaled probes [(b u_l + a e_j)^T; (a e_j)^T], clipped logits (the gap
    # a b u_l^T w_j is in [-1/3, 1/3], so alpha* is in [tau_c, 1 - tau_c] as the check needs)
    a, b = PROBE_A, 1 / Wb
    Uarr = QQ.array(U)
    # ||Z||_2 <= min(||Z||_F, (sqrt(d) ||w|| + 1) / 3) with ||w|| <= 1; ||Z^{-1}||_2 <= K_d
    r = ceil_sqrt(d)
    row_gain_sq = min(sum((x * x for u in U for x in u), fmpq(0)), fmpq((r + 1) ** 2, 9))
    m = clipped_logits(oracle, Uarr, c_hat, vq, W_bound=Wb, tau_f=bounds.tau_f,
                       tau_v=bounds.tau_v, prec=prec, radius_budget=budget,
                       row_gain_sq=row_gain_sq, inverse_gain_sq=bounds.Z_inverse ** 2,
                       progress=progress)
    (confirmed if m.W_bound_confirmed else unconfirmed).insert(0, f"||W||_F <= W_bound = {Wb}")
    T, clipped, radius = m.T, m.clipped, m.radius
    scale = 1 / (a * b)
    T_hat = QQ.array([[T[l][j] * scale for j in range(d)] for l in range(d)])
    # 5. W_hat = Z^{-1} T_hat, one exact solve
    W = solve(QQ, Uarr, T_hat)
    log_error = radius * scale  # on every entry of T_hat
    t_err = bounds.T_entry + log_error
    W_entry = ROW_BOUND * ceil_sqrt(d) * t_err
    W_frob = bounds.Z_inverse * d * t_err
    frob_sq = sum((x * x for x in W.flat), fmpq(0))
    if frob_sq > (Wb + W_frob) ** 2:
        raise HypothesisViolatedError(
            f"||W||_F <= W_bound = {Wb} is violated: the estimate has ||W_hat||_F^2 = "
            f"{_dec(frob_sq)} > (W_bound + its bound)^2 = {_dec((Wb + W_frob) ** 2)}, which "
            "||W||_F <= W_bound rules out. Pass a W_bound that holds (or check the oracle's "
            "tolerance)", hypothesis="||W||_F <= W_bound")
    # whatever W is: ||W - W_hat||_F = ||Z^{-1} (T - T_hat)||_F / (a b)
    # <= ||Z^{-1}||_F sqrt(spread_sq) / (a b) =: R, from the enclosures (no hypothesis)
    if m.spread_sq is not None:
        Zinv = probe_inverse(vq, rho, s)
        R = sqrt_upper(sum((x * x for row in Zinv for x in row), fmpq(0)) * m.spread_sq
                       * scale * scale, fmpq(1025, 1024))
        if frob_sq > (Wb + R) ** 2:
            raise HypothesisViolatedError(
                f"||W||_F <= W_bound = {Wb} is violated: the answers put W within R = "
                f"{_dec(R)} of the estimate in Frobenius norm (from the enclosures of the logits "
                f"and ||Z^{{-1}}||_F), and ||W_hat||_F^2 = {_dec(frob_sq)} > (W_bound + R)^2 = "
                f"{_dec((Wb + R) ** 2)}. Pass a W_bound that holds (or check the oracle's "
                "tolerance)", hypothesis="||W||_F <= W_bound")
        W_hyp = f"||W||_F <= W_bound = {Wb}"
        if W_hyp in unconfirmed and R <= Wb and frob_sq <= (Wb - R) ** 2:
            unconfirmed.remove(W_hyp)  # ||W||_F <= ||W_hat||_F + R <= W_bound
            confirmed.insert(0, W_hyp)
    return span.recovery(
        label=LABEL,
        paper_ref=PAPER_REF,
        field=QQ,
        params={"W": W, "v": QQ.array(vq)},
        seed=0,
        options={
            "variant": VARIANT,
            "bounds": bounds.to_json(),
            "tau_f": str(bounds.tau_f), "tau_v": str(bounds.tau_v),
            "W_entry_bound": str(W_entry),
            "W_frobenius_bound": str(W_frob),
            "v_bound": str(bounds.v_2),
            "log_ball_radius": str(log_error),
            "rho": str(rho), "signs": list(s),
            "Z_inverse_bound": str(bounds.Z_inverse),
            "clipped": clipped,
            "prec": prec,
            "W_bound": str(Wb), "norm_lower": str(nu),
            "epsilon_W": str(rational(epsilon_W)), "epsilon_v": str(rational(epsilon_v)),
            "hypotheses_checked": list(CHECKED),
            "hypotheses_confirmed": confirmed,
        },
        approximate=True,
        hypotheses=(*unconfirmed, ORACLE_HYPOTHESIS),
    )
