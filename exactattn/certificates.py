"""Certificates: does the recovered model answer like the oracle?

:func:`verify` rebuilds the recovered model, replays every query of the
learner's transcript against it, asks ``probes`` fresh random queries
(lengths 1 to 6, seeded) on a fork of the oracle (a separate counter, so the
learner's count and budget are untouched) and compares.

* ``kind="exact"``: exact fields; every comparison is ``==`` (in EXP decided
  by coefficient comparison, see :mod:`exactattn.fields.exponential`).
* ``kind="tolerance"``: F64; a comparison passes when the difference is
  within the first-order float64 estimate of the recovery's error
  (:func:`exactattn.learners.single_head.f64_error_bounds`) propagated to
  the query, named in ``Certificate.tolerance``. It is an estimate, not a
  rigorous bound: passing it is evidence, not proof. A recovery that
  interpolates its transcript (:data:`INTERPOLATING_LABELS`: the single head)
  replays it against the float64 rounding of the answers alone
  (:func:`_answer_rounding`, Higham's gamma_n): about 1e-13 at d = 64, where the
  propagated estimate accepted a W off by 1e-7; a W off by 1e-9 is rejected.

* ``kind="enclosure"``: the answers are rigorous balls (BALL(prec)); a
  query passes when the exact value of the recovered model lies in the
  oracle's ball, or, for a recovery over BALL itself (no reconstruction),
  when the ball enclosure of the recovered model's value meets the oracle's
  ball (consistent with it; disjoint balls prove the recovery wrong, see
  :func:`_compare_balls`). The widest enclosure met is named.

A certificate that fails is a value (``holds=False``) carrying the first
offending query; it is not an exception. A certificate that checked nothing
(empty transcript, no fresh probe) does not hold either: its verdict is
``nothing checked``. A recovery that no certificate can check (over
MP(prec), whose answers carry no error bound; a float recovery without its
error bounds) is refused with :class:`~exactattn.errors.InvalidEntryError`.
Certificates may look inside field elements and import the models: they
stand outside the oracle boundary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq

from .errors import ExactattnError, InvalidEntryError
from .fields import EXP, QQ, Array, BallField, Field, MPField, PrecisionElement, rational
from .fields.rational import sqrt_upper
from .learners.recovery import Recovery
from .models import SingleHeadAttention
from .oracle import NoisyOracle, ValueOracle

__all__ = ["Certificate", "Failure", "verify", "rebuild", "register_model_builder",
           "MODEL_BUILDERS", "FLOAT_TOLERANCES"]

#: the most fresh probes one call asks (a typo such as 10**9 would run for days)
MAX_PROBES = 10**6

#: query lengths of the fresh probes
FRESH_LENGTHS = (1, 6)


@dataclass(frozen=True)
class Failure:
    """The first query on which the recovered model and the oracle disagree."""

    source: str  # "transcript" or "fresh"
    index: int
    X: Array
    oracle_answer: Any
    model_answer: Any
    reason: str

    def __str__(self) -> str:
        return (f"{self.source} query #{self.index} (N = {self.X.shape[0]}): oracle "
                f"{self.oracle_answer}, model {self.model_answer} ({self.reason})")


@dataclass(frozen=True)
class Certificate:
    """The outcome of :func:`verify`.

    ``holds`` is True only when at least one query was checked and every
    checked query passed: a certificate that checked nothing does not hold
    (``verdict == "nothing checked"``), whatever the recovery says.

    >>> Certificate("x", "exact", False, 0, 0, 0, None).verdict
    'nothing checked'
    >>> Certificate("x", "exact", True, 0, 0, 0, None)
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: a certificate that checked 0 queries cannot hold (x)
    """

    label: str
    kind: str  # "exact", "enclosure" or "tolerance"
    holds: bool
    checked: int
    replayed: int
    fresh: int
    first_failure: Failure | None
    tolerance: str | None = None

    def __post_init__(self) -> None:
        if self.holds and self.checked <= 0:
            raise InvalidEntryError(
                f"a certificate that checked {self.checked} queries cannot hold ({self.label})")
        if self.holds and self.first_failure is not None:
            raise InvalidEntryError(f"a certificate with a failure cannot hold ({self.label})")

    @property
    def verdict(self) -> str:
        """``"holds"``, ``"fails"`` or ``"nothing checked"``."""
        if self.holds:
            return "holds"
        return "fails" if self.first_failure is not None else "nothing checked"

    def __str__(self) -> str:
        verdict = {"holds": "holds", "fails": f"FAILS at {self.first_failure}",
                   "nothing checked": "NOTHING CHECKED, so it does not hold (the transcript is "
                                      "empty and no fresh query was asked)"}[self.verdict]
        tol = f", tolerance: {self.tolerance}" if self.tolerance else ""
        return (f"certificate ({self.kind}) for {self.label}: {verdict}; "
                f"{self.checked} queries checked ({self.replayed} replayed, "
                f"{self.fresh} fresh){tol}")

    def to_json(self) -> dict[str, Any]:
        f = self.first_failure
        return {
            "label": self.label, "kind": self.kind, "holds": self.holds,
            "verdict": self.verdict,
            "checked": self.checked, "replayed": self.replayed, "fresh": self.fresh,
            "tolerance": self.tolerance,
            "first_failure": None if f is None else {
                "source": f.source, "index": f.index, "N": int(f.X.shape[0]),
                "oracle_answer": str(f.oracle_answer), "model_answer": str(f.model_answer),
                "reason": f.reason,
            },
        }


#: how to rebuild the model of each result label from its recovered parameters
MODEL_BUILDERS: dict[str, Callable[[Recovery], Any]] = {}


#: a float64 tolerance per query, (recovery, batch (B, N, d)) -> (B,), and its description
FloatTolerance = Callable[[Recovery, Array], Array]
FLOAT_TOLERANCES: dict[str, tuple[FloatTolerance, str]] = {}


def register_model_builder(label: str, builder: Callable[[Recovery], Any], *,
                           float_tolerance: FloatTolerance | None = None,
                           tolerance_text: str = "") -> None:
    """Declare how a recovery of ``label`` is turned back into a model to replay.

    ``float_tolerance`` bounds |f_hat(X) - f(X)| for F64 recoveries of this label
    (default: the single head's first-order estimate, :func:`_tolerances`);
    ``tolerance_text`` names it in the certificate.
    """
    if label in MODEL_BUILDERS:
        raise ValueError(f"a model builder for {label} is already registered")
    MODEL_BUILDERS[label] = builder
    if float_tolerance is not None:
        FLOAT_TOLERANCES[label] = (float_tolerance, tolerance_text)


register_model_builder("single_head_exact",
                       lambda r: SingleHeadAttention(r.W, r.v, field=r.field))
# a noisy recovery holds rational estimates; its model is evaluated exactly in EXP
register_model_builder("noisy_oracle",
                       lambda r: SingleHeadAttention(EXP.array(r.W), EXP.array(r.v), field=EXP))


def _approximate_bound(recovery: Recovery, X: Array) -> fmpq:
    """A rational upper bound on |f_hat(X) - f(X)| from the recovery's (conditional) bounds.

    With ||W_hat - W||_F <= e_W and ||v_hat - v||_2 <= e_v: the values move by at
    most e_v ||x_i||_2, the scores by at most e_W ||x_i||_2 ||x_N||_2 (Cauchy-Schwarz,
    ||.||_2 <= ||.||_F), and a softmax average of values c moves by at most
    max|delta s| (max c - min c) / 2: its derivative along the score change delta s
    is Cov_p(c, delta s), and |Cov| <= (range c / 2)(range delta s / 2) (Popoviciu's
    inequality, with Cauchy-Schwarz), range delta s <= 2 max|delta s|. The range of
    the true values is at most that of c_hat = x_i . v_hat plus 2 e_v max ||x_i||_2.
    Every 2-norm is replaced by a dyadic rational upper bound within a factor 9/8
    (:func:`~exactattn.fields.rational.sqrt_upper`), so the bound is a rational, exactly.
    """
    e_W = rational(Fraction(recovery.options["W_frobenius_bound"]))
    e_v = rational(Fraction(recovery.options["v_bound"]))
    to_q = QQ.to_rational
    rows = [[to_q(x) for x in row] for row in X]
    norms = [sqrt_upper(sum((x * x for x in row), fmpq(0))) for row in rows]
    v_hat = [to_q(x) for x in recovery.v]
    c = [sum((x * w for x, w in zip(row, v_hat, strict=True)), fmpq(0)) for row in rows]
    top = max(norms)
    spread = max(c) - min(c) + 2 * e_v * top
    return e_v * top + e_W * top * norms[-1] * spread / 2


def rebuild(recovery: Recovery) -> Any:
    """The model described by a recovery, over the recovery's field."""
    if recovery.label not in MODEL_BUILDERS:
        # the builders of later results are registered with their claims
        from . import claims  # noqa: F401
    try:
        builder = MODEL_BUILDERS[recovery.label]
    except KeyError:
        raise InvalidEntryError(f"no certificate is known for {recovery.label!r}") from None
    try:
        return builder(recovery)
    except ExactattnError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # a recovery whose parameters are not those of its label (a hand-made or
        # tampered Recovery): the builder cannot read them
        raise InvalidEntryError(
            f"the parameters {sorted(recovery.params)} (shapes "
            f"{[tuple(A.shape) for A in recovery.params.values()]}) do not describe a "
            f"{recovery.label} model over {recovery.field.name}: {type(exc).__name__} "
            f"{exc}") from None


def _tolerances(recovery: Recovery, Xs: Array) -> Array:
    """First-order float64 estimates of |f_hat(X) - f(X)| for a (B, N, d) batch.

    |df| <= ||dW||_F max_i ||x_i|| ||x_N|| (max_i c_i - min_i c_i) + ||dv|| max_i ||x_i||
    (f is a convex combination of the c_i = v . x_i, and |d f / d s_i| sums to at most
    the spread of the c_i), plus the rounding of both evaluations (2 gamma ||v||_1 max|x|).
    """
    opts = recovery.options
    v_hat = recovery.v
    norms = np.linalg.norm(Xs, axis=2)
    c = Xs @ v_hat
    spread = c.max(axis=1) - c.min(axis=1)
    g = float(opts["answer_error_factor"])
    out: Array = (
        float(opts["W_error_bound"]) * norms.max(axis=1) * norms[:, -1] * spread
        + float(opts["v_error_bound"]) * norms.max(axis=1)
        + 2 * g * float(np.abs(v_hat).sum()) * np.abs(Xs).max(axis=(1, 2))
    )
    if "c_error_bound" in opts:  # biased heads: the score bias and the output offset
        beta = (float(np.asarray(recovery.params["beta"]).reshape(-1)[0])
                if "beta" in recovery.params else 0.0)
        out = out + (float(opts["c_error_bound"]) * norms.max(axis=1) * spread
                     + float(opts.get("beta_error_bound", 0.0)) + 2 * g * abs(beta))
    return out


#: labels whose F64 recovery interpolates its own transcript: each recorded answer was
#: inverted into the parameters (v_i = y_i; t_lj = logit((y - v_j) / (u_l^T v)), one
#: answer per logit; W = Z^{-1} T), so the recovered model reproduces every recorded
#: answer up to the rounding of evaluating f, whatever the oracle's own error was
INTERPOLATING_LABELS = frozenset({"single_head_exact"})


def _answer_rounding(recovery: Recovery, Xs: Array) -> Array:
    """The first-order float64 rounding error of evaluating f at each query of a (B, N, d) batch.

    The error model of the answers of :func:`exactattn.learners.single_head.f64_error_bounds`
    (IEEE binary64, Higham's gamma_n = :func:`exactattn.fields.float64.higham_gamma`,
    g = ``answer_error_factor`` = gamma_{4d+16}), applied to one query X with the
    recovered (W, v) standing in for the hidden ones (first order):

    * the values and the softmax weights: g ||v||_1 max|x|, the learner's e_y;
    * the scores x_i^T (W x_N), dot products of |x_i|^T |W| |x_N| in magnitude: an
      error of at most g max_i |x_i|^T |W| |x_N| in each score, which moves the
      convex combination of the c_i = v . x_i by at most that times
      max_i c_i - min_i c_i (the learner's e_gap).

    Doubled: the oracle's evaluation and the model's. On the transcript of an
    :data:`INTERPOLATING_LABELS` recovery this is the whole tolerance: the
    learner's own few roundings per parameter (``gamma_4 |T|``, the solve's backward
    error ``gamma_d |Z||W|``) are taken to be within it, since g = gamma_{4d+16}
    counts more roundings than they do (a prose argument, first order, not checked
    here; tests/unit/test_near_miss.py measures honest recoveries passing at d = 8, 64).
    """
    g = float(recovery.options["answer_error_factor"])
    v_hat = np.asarray(recovery.v, dtype=np.float64)
    absW = np.abs(np.asarray(recovery.W, dtype=np.float64))
    absX = np.abs(Xs)
    c = Xs @ v_hat
    spread = c.max(axis=1) - c.min(axis=1)
    scores = np.einsum("bid,de,be->bi", absX, absW, absX[:, -1, :])
    out: Array = 2 * g * (float(np.abs(v_hat).sum()) * absX.max(axis=(1, 2))
                          + scores.max(axis=1) * spread)
    return out


def verify(
    recovery: Recovery, oracle: ValueOracle | None, *, probes: int = 16, seed: int = 0
) -> Certificate:
    """Certify a recovery against an oracle: replay the transcript plus fresh probes.

    With ``oracle=None`` only the recorded transcript is replayed (an
    offline check of a saved recovery; ``fresh`` is then 0).

    >>> from exactattn.fields import EXP
    >>> from exactattn.learners import learn_single_head
    >>> head = SingleHeadAttention([[1, 0], [0, 2]], [1, 1], field=EXP)
    >>> oracle = ValueOracle(head)
    >>> cert = verify(learn_single_head(oracle), oracle, probes=4)
    >>> cert.holds, cert.kind, cert.checked
    (True, 'exact', 10)
    """
    if not isinstance(recovery, Recovery):
        raise InvalidEntryError(f"verify needs a Recovery, got {type(recovery).__name__}")
    if oracle is not None and not isinstance(oracle, ValueOracle):
        raise InvalidEntryError(f"verify needs an oracle (ValueOracle) or None, got "
                                f"{type(oracle).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidEntryError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(probes, bool) or not isinstance(probes, int) or not 0 <= probes <= MAX_PROBES:
        raise InvalidEntryError(
            f"probes must be an integer in [0, {MAX_PROBES}], got {probes!r}")
    F: Field = recovery.field
    answer_field = recovery.transcript.field  # differs from F after reconstruction from balls
    if oracle is not None:
        if oracle.field not in (F, answer_field):
            F.require_same(oracle.field, "the oracle")
        if oracle.d != recovery.d:
            raise InvalidEntryError(
                f"the oracle has d = {oracle.d}, the recovery d = {recovery.d}")
    approximate = recovery.approximate
    ball_recovery = isinstance(F, BallField)
    _check_certifiable(recovery)
    # a ball recovery is evaluated by :func:`_compare_balls`, not by a model
    model: Any = None if ball_recovery else rebuild(recovery)
    # "exact" needs the fresh probes compared with == against an exact oracle; ball
    # answers only show that the exact value is enclosed
    balls = isinstance(oracle.field if oracle is not None else answer_field, BallField)
    floating = not F.exact and not ball_recovery and not approximate
    kind = ("enclosure" if ball_recovery else "tolerance" if approximate or floating
            else "enclosure" if balls else "exact")
    tolerance = None
    if approximate:
        tolerance = ("the recovery's bounds (given its listed hypotheses) propagated to the "
                     "query, plus the oracle's tolerance; compared exactly in EXP")
    registered_tol, tol_text = FLOAT_TOLERANCES.get(recovery.label, (_tolerances, (
        "first-order float64 estimate (not a rigorous bound): the recovery's error "
        "estimates (Higham gamma_n) propagated to the query")))

    def tol_fn(rec: Recovery, Xs: Array) -> Array:
        try:
            return registered_tol(rec, Xs)
        except KeyError as exc:
            raise InvalidEntryError(
                f"the {F.name} recovery of {rec.label} carries no error bound {exc}: a float "
                "recovery is certified against its bounds, and without them no tolerance "
                "can be named") from None

    replay_tol: FloatTolerance = tol_fn
    if floating:
        tolerance = tol_text
        if recovery.label in INTERPOLATING_LABELS and recovery.label not in FLOAT_TOLERANCES:
            # the transcript was inverted into the parameters: only rounding separates
            # the recovered model's answers from the recorded ones (_answer_rounding)
            replay_tol = _answer_rounding
            tolerance = (f"transcript: the float64 rounding of the two evaluations "
                         f"(first-order, Higham gamma_n; the recovery interpolates its "
                         f"transcript); fresh queries: {tol_text}")
    widest = [fmpq(0)]  # the widest ball enclosure met (ball recoveries)

    def compare(source: str, index: int, X: Array, y: Any, tau: Any = None) -> Failure | None:
        if ball_recovery:
            assert isinstance(F, BallField)
            return _compare_balls(F, recovery, source, index, X, y, widest)
        try:
            got = model(_exact_query(X) if F.exact else X)
        except ExactattnError as exc:
            return Failure(source, index, X, y, None, f"the recovered model cannot answer: {exc}")
        if approximate:
            bound = _approximate_bound(recovery, X) + (tau if tau is not None else 0)
            if abs(EXP(got) - EXP(y)) <= EXP(bound):
                return None
            return Failure(source, index, X, y, got,
                           f"|difference| > bound {float(bound):.3e} (exact comparison)")
        if F.exact and isinstance(y, PrecisionElement) and isinstance(y.field, BallField):
            # a ball answer: the exact model value must lie in it (decided exactly)
            if not y.value.is_finite():
                return Failure(source, index, X, y, got, _UNBOUNDED_BALL)
            mid, rad = y.field.midpoint(y), y.field.radius(y)
            if EXP(mid - rad) <= EXP(got) <= EXP(mid + rad):
                return None
            return Failure(source, index, X, y, got, "the exact value is outside the ball")
        if F.exact:
            if got == y:
                return None
            return Failure(source, index, X, y, got, "not equal (exact comparison)")
        tol = float(tol_fn(recovery, np.asarray(X)[None])[0])
        diff = abs(float(got) - float(y))
        if diff <= tol:
            return None
        return Failure(source, index, X, y, got, f"|difference| = {diff:.3e} > bound {tol:.3e}")

    def result(holds: bool, replayed: int, fresh: int, failure: Failure | None) -> Certificate:
        text = tolerance
        if ball_recovery:
            text = (f"the ball enclosure of the recovered model's value (W, v as {F.name} "
                    "balls) meets the oracle's ball; widest enclosure radius "
                    f"{float(widest[0]):.3e}")
        # a certificate that checked nothing does not hold
        return Certificate(recovery.label, kind, holds and replayed + fresh > 0,
                           replayed + fresh, replayed, fresh, failure, text)

    if F.exact or approximate or ball_recovery:
        replayed = 0
        for entry in recovery.transcript:
            replayed += 1
            failure = compare("transcript", entry.index, entry.X, entry.answer,
                              entry.tolerance)
            if failure is not None:
                return result(False, replayed, 0, failure)
    else:
        # float64: one vectorised replay per query length; the failure
        # reported is still the first in transcript order
        failure, replayed = _replay_f64(recovery, model, replay_tol)
        if failure is not None:
            return result(False, replayed, 0, failure)
    if oracle is None or probes == 0:
        return result(True, replayed, 0, None)

    fork = oracle.fork("certificate")
    rng = np.random.default_rng(seed)
    lo, hi = getattr(model, "query_lengths", FRESH_LENGTHS)  # e.g. a ReLU FFN takes one token
    for k in range(probes):
        N = int(rng.integers(lo, hi + 1))
        X = fork.field.gaussian(rng, (N, recovery.d))
        tau = None
        if isinstance(fork, NoisyOracle):
            # a tolerance of 0 would ask for an irrational answer: use the largest
            # tolerance the learner asked for instead
            tau = fork.tolerance_for(N) or max(
                (e.tolerance for e in recovery.transcript if e.tolerance), default=fmpq(1, 2**40))
            y = fork(X, phase="certificate", tolerance=tau)
        else:
            y = fork(X, phase="certificate")
        failure = compare("fresh", k, X, y, tau)
        if failure is not None:
            return result(False, replayed, k + 1, failure)
    return result(True, replayed, probes, None)


#: labels whose recovered (W, v) is a single head, or heads (W (m, d, d), v (m, d)) for
#: multihead_canonical: certified over BALL(prec) by enclosure
BALL_HEAD_LABELS = frozenset({"single_head_exact", "low_rank_adaptive", "low_rank_sensing",
                              "multihead_canonical"})
_PLAIN_RATIONAL = re.compile(r"\d+(/0*[1-9]\d*)?")
#: the bounds (given its hypotheses) an approximate recovery is certified against
#: (:func:`_approximate_bound`)
APPROXIMATE_BOUNDS = ("W_frobenius_bound", "v_bound")
#: the error bounds the default float64 tolerance (:func:`_tolerances`) reads
F64_BOUNDS = ("W_error_bound", "v_error_bound", "answer_error_factor")


#: the failure of a query whose oracle ball is infinite or NaN: it encloses every value
_UNBOUNDED_BALL = "the oracle's ball is not finite: it encloses every value and checks nothing"


def _check_certifiable(recovery: Recovery) -> None:
    """Refuse, with the reason, a recovery that no certificate can check."""
    F, label = recovery.field, recovery.label
    if label not in MODEL_BUILDERS:
        # the builders and float tolerances of later results are registered with their
        # claims: without them a float label looked like one without a tolerance
        from . import claims  # noqa: F401
    if isinstance(F, MPField):
        raise InvalidEntryError(
            f"no certificate for a {label} recovery over {F.name}: mpmath answers and "
            "parameters carry no error bound, so no tolerance can be named. Learn over "
            f"BALL({F.prec}) (rigorous balls, certificate of kind 'enclosure') or over EXP "
            "(exact)")
    if isinstance(F, BallField):
        if label not in BALL_HEAD_LABELS or set(recovery.params) != {"W", "v"}:
            raise InvalidEntryError(
                f"no certificate for a {label} recovery over {F.name}: ball recoveries are "
                "certified by enclosure for single heads and multihead_canonical only "
                f"({', '.join(sorted(BALL_HEAD_LABELS))}); learn over EXP (exact)")
        return
    if recovery.approximate:
        missing = [k for k in APPROXIMATE_BOUNDS if k not in recovery.options]
        if missing:
            raise InvalidEntryError(
                f"the approximate recovery of {label} carries no {', '.join(missing)} in its "
                "options: an estimate is certified against its reported bounds")
        for k in APPROXIMATE_BOUNDS:
            text = str(recovery.options[k])
            # a plain p/q (never Fraction("1e999999999"), which builds a huge integer)
            if not (len(text) < 10_000 and _PLAIN_RATIONAL.fullmatch(text)
                    and Fraction(text) >= 0):
                raise InvalidEntryError(f"the bound {k} = {str(recovery.options[k])[:40]!r} of "
                                        f"the {label} recovery is not a rational >= 0")
    if not F.exact and not recovery.approximate and label not in FLOAT_TOLERANCES:
        missing = [k for k in F64_BOUNDS if k not in recovery.options]
        if missing:
            raise InvalidEntryError(
                f"the {F.name} recovery of {label} carries no {', '.join(missing)} in its "
                "options: a float recovery is certified against its error bounds, and "
                "without them no tolerance can be named")
        for k in F64_BOUNDS:
            # an infinite estimate would accept every answer: nothing would be checked
            x = recovery.options[k]
            if isinstance(x, bool) or not isinstance(x, int | float | np.floating) \
                    or not math.isfinite(x) or x < 0:
                raise InvalidEntryError(
                    f"the error estimate {k} = {str(x)[:40]!r} of the {label} recovery is not "
                    "a finite number >= 0: no tolerance can be named")


def _compare_balls(F: BallField, recovery: Recovery, source: str, index: int, X: Array,
                   y: Any, widest: list[fmpq]) -> Failure | None:
    """One query of a single head (or of canonical heads, summed) recovered over BALL:
    do the two enclosures meet?

    The ball value of softmax(X W x_N)^T X v computed from the recovered balls
    W, v contains the value of every model inside them, and the oracle's ball
    y contains f(X): disjoint balls (decided exactly by arb's ``overlaps``)
    prove that no model inside the recovered balls answers like the oracle,
    whatever the learner did. Overlapping balls are only consistent with it:
    they show the recovery right only as far as the recovered balls contain
    the hidden parameters (the learner's premise, not checked here) and are
    narrow (the widest radius is reported). The scores are shifted by the
    midpoint of the largest one, as a ball (softmax is unchanged).
    """
    W, v = recovery.params["W"], recovery.params["v"]
    heads = list(zip(W, v, strict=True)) if W.ndim == 3 else [(W, v)]  # multi-head: W (m, d, d)
    try:
        got = F(0)
        for Wh, vh in heads:
            s = X @ (Wh @ X[-1])
            c = X @ vh
            top = max(F.midpoint(x) for x in s)
            weights = F.exp(s - F(top))
            got = got + (weights @ c) / weights.sum()
        y = F(y)
    except ExactattnError as exc:
        return Failure(source, index, X, y, None, f"the recovered balls cannot answer: {exc}")
    if not y.value.is_finite():  # it would overlap every enclosure: nothing is checked
        return Failure(source, index, X, y, got, _UNBOUNDED_BALL)
    if not got.value.is_finite():
        return Failure(source, index, X, y, got, f"the enclosure is not finite at {F.prec} bits "
                       "(raise the precision)")
    widest[0] = max(widest[0], F.radius(got))
    if got.value.overlaps(y.value):
        return None
    return Failure(source, index, X, y, got, "the recovered enclosure and the oracle's ball "
                   "are disjoint (rigorous)")


def _replay_f64(recovery: Recovery, model: Any, tol_fn: FloatTolerance
                ) -> tuple[Failure | None, int]:
    # streamed: one block of queries of one length at a time (bounded memory, issue 12)
    transcript = recovery.transcript
    first_bad: tuple[int, float, float] | None = None
    for ks, Xs, ys in transcript.iter_blocks():
        got = model.batch(Xs)
        bad = np.flatnonzero(~(np.abs(got - ys) <= tol_fn(recovery, Xs)))
        if bad.size:
            j = int(bad[np.argmin(ks[bad])])
            if first_bad is None or int(ks[j]) < first_bad[0]:
                first_bad = (int(ks[j]), float(got[j]), float(ys[j]))
    if first_bad is None:
        return None, len(transcript)
    k, got_k, y_k = first_bad
    e = transcript[k]
    tol = float(tol_fn(recovery, e.X[None])[0])
    return Failure("transcript", e.index, e.X, y_k, got_k,
                   f"|difference| = {abs(got_k - y_k):.3e} > bound {tol:.3e}"), k + 1


def _exact_query(X: Array) -> Array:
    """A query of exactly known balls or mpmath numbers as an EXP array (else X itself)."""
    first = X.flat[0] if X.size else None
    if isinstance(first, PrecisionElement):
        from .linalg import exact_values

        field = first.field
        assert isinstance(field, BallField | MPField)
        Q = exact_values(field, X)
        return EXP.array([[EXP(Q[i, k]) for k in range(Q.ncols())] for i in range(Q.nrows())])
    return X
