"""Claims of ``noisy_oracle`` (paper Thm 6.2 v1 = Thm 6.1 v2; paper.md §5).

The hidden models are rational, the estimates rational, so every error and
every comparison with a bound is exact (rationals; squares for 2-norms).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np

from ..certificates import verify as certify
from ..claims import ROUTE_EXP, Outcome, claim, first_failure, register_result
from ..fields import EXP, QQ, rational
from ..instances import noisy_single_head_instance
from ..learners.noisy import PAPER_REF, learn_single_head_noisy, naive_inverse
from ..learners.recovery import Recovery
from ..oracle import ADVERSARIES, NoisyOracle

register_result("noisy_oracle", paper_ref=PAPER_REF,
                title=r"Learning from approximate value queries: the clipped inverse")

#: the built-in noisy instances: (d, seed) pairs
NOISY_INSTANCES = tuple((d, seed) for d in (1, 2, 3, 4) for seed in range(2))
EPS_W, EPS_V = Fraction(1, 2), Fraction(1, 4)


def _errors(rec: Recovery, hidden: Any) -> tuple[Any, Any, Any]:
    """Exact (max entry error of W, squared Frobenius error of W, squared error of v)."""
    to_q = EXP.to_rational
    dW = [QQ(rec.W[i, j]) - to_q(hidden.W[i, j])
          for i in range(hidden.d) for j in range(hidden.d)]
    dv = [QQ(rec.v[i]) - to_q(hidden.v[i]) for i in range(hidden.d)]
    return max(abs(x) for x in dW), sum(x * x for x in dW), sum(x * x for x in dv)


def _run(adversary: str, d: int, seed: int, tau_default: Fraction = Fraction(1, 50)
         ) -> tuple[Recovery, NoisyOracle, Any]:
    inst, margin = noisy_single_head_instance(d, seed)
    oracle = NoisyOracle(inst.model, tolerance=tau_default, adversary=adversary, seed=seed)
    rec = learn_single_head_noisy(oracle, epsilon_W=EPS_W, epsilon_v=EPS_V, W_bound=2,
                                  margin=margin)
    return rec, oracle, inst.model


@claim(
    "noisy_oracle", "probe_geometry", paper_ref=PAPER_REF,
    title="The scaled probes: tokens of norm <= 1, score gap a b W_ij in [-1/2, 1/2]",
    statement=r"a = \tfrac12,\ b = \tfrac1{\bar W},\ \bar W \ge 2:\ \|b e_i + a e_j\| \le 1,"
              r"\ s_1 - s_2 = a b W_{ij} \in [-\tfrac12, \tfrac12],\ f = a v_j + "
              r"\sigma(a b W_{ij})\, b v_i \ (i = j \text{ included}).",
)
def _check_probe_geometry() -> Outcome:
    from ..symbolic.clipped_inverse import check_probe_geometry

    f = check_probe_geometry()
    return Outcome(f.holds, f.instances, f.detail)


@claim(
    "noisy_oracle", "error_chain", paper_ref=PAPER_REF,
    title="The error chain of the theorem, from alpha to the Frobenius norm",
    statement=r"|\hat\alpha - \alpha| \le \tfrac{2\bar W}{\mu}\tau_f + \tfrac{\bar W + 2}{\mu}"
              r"\tau_v \le \tfrac{\varepsilon_W}{20 \bar W d} "
              r"\le \tfrac{\varepsilon_W}{10 \bar W d},"
              r"\ |\hat W_{ij} - W_{ij}| \le \tfrac{\varepsilon_W}{d},\ \|\hat W - W\|_F \le "
              r"\varepsilon_W,\ \|\hat v - v\|_2 \le \varepsilon_v.",
    route="symbolic (sympy, nonnegative-coefficient certificates), then exact instances",
)
def _check_error_chain() -> Outcome:
    from ..symbolic.clipped_inverse import check_error_chain, check_error_chain_on_instances

    chain, inst = check_error_chain(), check_error_chain_on_instances()
    return Outcome(chain.holds and inst.holds, chain.instances + inst.instances,
                   f"{chain.detail}; {inst.detail}")


@claim(
    "noisy_oracle", "recovery_within_bounds", paper_ref=PAPER_REF,
    title="Every adversary: errors within the guaranteed bounds, with d + d^2 queries",
    statement=r"|\hat W_{ij} - W_{ij}| \le \tfrac{\varepsilon_W}{d},\ "
              r"\|\hat W - W\|_F \le \varepsilon_W,\ \|\hat v - v\|_2 \le \varepsilon_v"
              r"\ \text{after } d + d^2 \text{ queries with } \tau_f = "
              r"\tfrac{\mu\varepsilon_W}{80 \bar W^2 d},\ \tau_v \le \min(\tfrac{\mu}{2},"
              r" \tau_f, \tfrac{\varepsilon_v}{\sqrt d}).",
    route="exact (QQ errors; answers within tolerance checked in EXP)",
)
def _check_recovery() -> Outcome:
    failures, checked = [], 0
    for adversary in ADVERSARIES:
        for d, seed in NOISY_INSTANCES:
            rec, _, hidden = _run(adversary, d, seed)
            checked += 1
            entry, frob_sq, v_sq = _errors(rec, hidden)
            b_entry = rational(Fraction(rec.options["W_entry_bound"]))
            b_frob = rational(Fraction(rec.options["W_frobenius_bound"]))
            b_v = rational(Fraction(rec.options["v_bound"]))
            if not (entry <= b_entry <= QQ(EPS_W) / d):
                failures.append(f"{adversary}, d = {d}: entry error {entry} vs bound {b_entry}")
            if not (frob_sq <= b_frob**2 and b_frob <= QQ(EPS_W)):
                failures.append(f"{adversary}, d = {d}: Frobenius error above its bound")
            if not (v_sq <= b_v**2 and b_v <= QQ(EPS_V)):
                failures.append(f"{adversary}, d = {d}: v error above its bound")
            if dict(rec.queries_by_phase) != {"v": d, "W": d * d}:
                failures.append(f"{adversary}, d = {d}: {dict(rec.queries_by_phase)} queries")
    return first_failure(failures, checked,
                         f"{len(ADVERSARIES)} adversaries x {len(NOISY_INSTANCES)} instances")


@claim(
    "noisy_oracle", "answers_within_tolerance", paper_ref=PAPER_REF,
    title="The noisy oracle answers within its tolerance, deterministically",
    statement=r"f(X) - \tau \le \mathrm{AVQ}(X; \tau) \le f(X) + \tau,\ "
              r"\text{the same answer for the same query.}",
)
def _check_oracle() -> Outcome:
    failures, checked = [], 0
    tau = Fraction(1, 20)
    for adversary in ADVERSARIES:
        inst, _ = noisy_single_head_instance(3, 1)
        oracle = NoisyOracle(inst.model, tolerance=tau, adversary=adversary, seed=5)
        rng = np.random.default_rng(7)
        for N in (1, 2, 4):
            X = QQ.gaussian(rng, (N, 3))
            y = oracle(X)
            f = inst.model(EXP.array(X))
            checked += 1
            if not abs(EXP(y) - f) <= EXP(tau):
                failures.append(f"{adversary}: answer outside [f - tau, f + tau]")
            if oracle(X) != y or oracle.fork("again")(X) != y:
                failures.append(f"{adversary}: the same query got another answer")
    return first_failure(failures, checked, "inside the interval (exact) and deterministic")


@claim(
    "noisy_oracle", "certificate_soundness", paper_ref=PAPER_REF,
    title="The tolerance certificate rejects an estimate moved far beyond its bound",
    statement=r"\hat W + 10 \beta\, e_1 e_d^\top \ (\beta \text{ the guaranteed Frobenius "
              r"bound) is rejected: some query has } |f(X) - \mathrm{AVQ}(X)| > \tau + "
              r"\text{bound}.",
    route=ROUTE_EXP,
)
def _check_certificate() -> Outcome:
    failures, checked = [], 0
    for d, seed in NOISY_INSTANCES:
        rec, oracle, _ = _run("worst", d, seed)
        if not certify(rec, oracle, probes=8, seed=seed).holds:
            failures.append(f"d = {d}: the certificate rejects a correct recovery")
        W = np.array(rec.W)
        shift = 10 * rational(Fraction(rec.options["W_frobenius_bound"]))
        W[0, d - 1] = W[0, d - 1] + shift
        checked += 1
        if certify(dataclasses.replace(rec, params={"W": W, "v": rec.v}), oracle,
                   probes=8, seed=seed).holds:
            failures.append(f"d = {d}: the certificate accepts W moved by {float(shift):.3g}")
    return first_failure(failures, checked, "correct accepted, perturbed rejected")


@claim(
    "noisy_oracle", "naive_inverse_fails", paper_ref=PAPER_REF,
    title="Without clipping and scaled probes, a small tolerance breaks the inverse",
    statement=r"\exists\ \text{instance}, \tau:\ \hat\alpha = \tfrac{y - \hat v_j}{\hat v_i}"
              r" \notin (0, 1) \text{ for the probe } [e_i + e_j; e_j], \text{ while the "
              r"clipped algorithm stays within its bound.}",
)
def _check_naive() -> Outcome:
    from ..models import SingleHeadAttention

    # one large entry of W: sigma(W_11) is within 1/50 of 1, so a tolerance of 1/50
    # lets the adversary push the naive estimate past 1
    W = [[Fraction(9, 2), 0], [0, Fraction(1, 2)]]
    v = [Fraction(1, 2), Fraction(-1, 2)]
    head = SingleHeadAttention(W, v, field=EXP)
    tau = Fraction(1, 50)
    naive = naive_inverse(NoisyOracle(head, tolerance=tau, adversary="break_naive"),
                          tolerance=tau)
    oracle = NoisyOracle(head, tolerance=tau, adversary="break_naive")
    # ||W||_F <= 5: W_bound = 5 covers it; the margin is 1/2
    rec = learn_single_head_noisy(oracle, epsilon_W=Fraction(1, 2), epsilon_v=Fraction(1, 4),
                                  W_bound=5, margin=Fraction(1, 2))
    entry, _, _ = _errors(rec, head)
    failures = []
    if naive.failures == 0:
        failures.append("the naive inverse did not fail")
    if not entry <= rational(Fraction(rec.options["W_entry_bound"])):
        failures.append("the clipped algorithm exceeded its bound")
    return first_failure(failures, 2, f"naive: {naive.failures} of 4 entries have no logit; "
                                      "clipped: within bound")


@claim(
    "noisy_oracle", "adapted_probes_bound", paper_ref=PAPER_REF,
    title="Beyond the paper: probes adapted to v need only nu <= ||v||, no margin (proof)",
    statement=r"\tau_f = \tfrac{\nu\varepsilon_W}{80 K_d \bar W^2 d},\ K_d = 3 + \tfrac32"
              r"\lceil\sqrt d\rceil \implies \|\hat W - W\|_F \le \tfrac{18 L}{80}"
              r"\varepsilon_W < \varepsilon_W,\ \|\hat v - v\|_2 \le \varepsilon_v "
              r"\text{ whenever } \nu \le \|v\|_2 \le 1.",
    route="symbolic (sympy: identities and inequalities), exact probe instances",
)
def _check_adapted_bound() -> Outcome:
    from ..symbolic.noisy_adapted import check_adapted_bound

    holds, instances, detail = check_adapted_bound()
    return Outcome(holds, instances, detail)


@claim(
    "noisy_oracle", "adapted_sparse_v", paper_ref=PAPER_REF,
    title="On sparse v the paper's margin fails; the adapted learner stays within its bound",
    statement=r"v = \tfrac12 e_1:\ \min_i |v_i| = 0 \text{ (no margin) but the adapted learner "
              r"returns } \hat W, \hat v \text{ within } (\varepsilon_W, \varepsilon_v) "
              r"\text{ after } d + d^2 \text{ queries, for every adversary.}",
    route="exact (QQ errors; answers within tolerance checked in EXP)",
)
def _check_adapted_sparse() -> Outcome:
    from ..errors import HypothesisViolatedError
    from ..learners.noisy_adapted import learn_single_head_noisy_adapted

    failures, checked = [], 0
    for adversary in ADVERSARIES:
        for d, seed in ((2, 0), (3, 1), (4, 0)):
            inst, _ = noisy_single_head_instance(d, seed, sparse_v=True)
            try:
                learn_single_head_noisy(NoisyOracle(inst.model, tolerance=Fraction(1, 50),
                                                    adversary=adversary),
                                        epsilon_W=EPS_W, epsilon_v=EPS_V, W_bound=2,
                                        margin=Fraction(1, 4))
                failures.append(f"d = {d}: the paper's learner accepted a v without margin")
            except HypothesisViolatedError as exc:
                if exc.hypothesis != "min |v_i| >= margin":
                    failures.append(f"d = {d}: unexpected hypothesis {exc.hypothesis}")
            oracle = NoisyOracle(inst.model, tolerance=Fraction(1, 50), adversary=adversary)
            rec = learn_single_head_noisy_adapted(oracle, epsilon_W=EPS_W, epsilon_v=EPS_V,
                                                  W_bound=2, norm_lower=Fraction(1, 2))
            checked += 1
            _, frob_sq, v_sq = _errors(rec, inst.model)
            if not (frob_sq <= QQ(EPS_W) ** 2 and v_sq <= QQ(EPS_V) ** 2):
                failures.append(f"{adversary}, d = {d}: adapted error above epsilon")
            if rec.queries != d + d * d:
                failures.append(f"{adversary}, d = {d}: {rec.queries} queries")
    return first_failure(failures, checked, "paper's learner refuses (margin); adapted one "
                                            "within (eps_W, eps_v)")
