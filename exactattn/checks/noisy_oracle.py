"""Claims of ``noisy_oracle`` (paper Thm 6.2 v1 = Thm 6.1 v2; paper.md §5).

The hidden models are rational, the estimates rational, so every error and
every comparison with a bound is exact (rationals; squares for 2-norms).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
from flint import fmpq

from ..certificates import verify as certify
from ..claims import ROUTE_EXP, Outcome, claim, first_failure, register_result
from ..fields import EXP, QQ, rational
from ..instances import noisy_single_head_instance
from ..learners.noisy import L_UPPER, PAPER_REF, learn_single_head_noisy, naive_inverse
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


#: instances on which the clip decides: an entry of W at -+W_bound, so alpha* = tau_c or
#: 1 - tau_c and an adversary that pushes outwards moves alpha_hat out of the clip interval
#: (name, W, v); W_bound = 2, margin = min |v_i|
CLIP_INSTANCES = (
    ("W = [[-2]]", [[Fraction(-2)]], [Fraction(1, 2)]),
    ("W = [[2]]", [[Fraction(2)]], [Fraction(-1, 2)]),
    ("W_01 = -2, d = 2", [[Fraction(0), Fraction(-2)], [Fraction(0), Fraction(0)]],
     [Fraction(1, 2), Fraction(-1, 2)]),
)
#: the seeded instances of the error chain (d, seed), next to CLIP_INSTANCES
CHAIN_INSTANCES = ((1, 0), (2, 0), (3, 1))


def _chain_models() -> list[tuple[str, Any, Fraction, bool]]:
    """(name, hidden model, margin, clip-decisive?) for the error chain on the learner."""
    from ..models import SingleHeadAttention

    out: list[tuple[str, Any, Fraction, bool]] = []
    for d, seed in CHAIN_INSTANCES:
        inst, margin = noisy_single_head_instance(d, seed)
        out.append((inst.name, inst.model, margin, False))
    for name, W, v in CLIP_INSTANCES:
        out.append((name, SingleHeadAttention(W, v, field=EXP), min(abs(x) for x in v), True))
    return out


def learner_error_chain() -> tuple[Outcome, int]:
    """The error chain, step by step, on the shipped learner's own runs.

    For every instance of :func:`_chain_models` and every adversary, run
    :func:`~exactattn.learners.noisy.learn_single_head_noisy` (W_bound = 2,
    eps_W = EPS_W, eps_v = EPS_V) and read from its transcript the tolerances
    it asked for and its queries; from the hidden model the true alpha* =
    sigma(a b W_ij). Then check, exactly (QQ, and EXP for alpha*):

    * the tolerances: tau_f <= mu eps_W / (80 W_bound^2 d), tau_v <= min(mu/2,
      that cap), d tau_v^2 <= eps_v^2 (the theorem's hypotheses on tau);
    * every W query is the probe [(b e_i + a e_j)^T; (a e_j)^T], d + d^2 queries;
    * (1)-(2) |alpha_hat - alpha*| <= (2 W_bound/mu) tau_f + ((W_bound + 2)/mu) tau_v
      <= eps_W / (20 W_bound d), with alpha_hat = (y - a v_hat_j) / (b v_hat_i) from
      the learner's own v_hat and the answers;
    * (3) the lemma on the learner's output: |W_hat_ij| <= W_bound and
      |W_hat_ij - W_ij| <= L |alpha_hat - alpha*| / (a b) + the logarithm's radius,
      and <= eps_W / d; (4) ||W_hat - W||_F <= eps_W; (5) ||v_hat - v||_2 <= eps_v.

    Returns the outcome and how many runs clipped at least one estimate (the
    clip instances must: otherwise the clip would go untested).
    """
    failures: list[str] = []
    checked = clipped_runs = 0
    a = fmpq(1, 2)
    for name, model, margin, clip_decisive in _chain_models():
        d, Wb, mu = model.d, QQ(2), QQ(margin)
        b = 1 / Wb
        W_true = [[EXP.to_rational(model.W[i, j]) for j in range(d)] for i in range(d)]
        v_true = [EXP.to_rational(model.v[i]) for i in range(d)]
        eps_W, eps_v = QQ(EPS_W), QQ(EPS_V)
        cap = mu * eps_W / (80 * Wb * Wb * d)
        for adversary in ADVERSARIES:
            where = f"{name}, {adversary}"
            oracle = NoisyOracle(model, tolerance=Fraction(1, 50), adversary=adversary)
            rec = learn_single_head_noisy(oracle, epsilon_W=EPS_W, epsilon_v=EPS_V, W_bound=2,
                                          margin=margin)
            checked += 1
            clipped_runs += clip_decisive and rec.options["clipped"] > 0
            v_entries = [t for t in rec.transcript if t.phase == "v"]
            w_entries = [t for t in rec.transcript if t.phase == "W"]
            if (len(v_entries), len(w_entries), rec.queries) != (d, d * d, d + d * d):
                failures.append(f"{where}: {rec.queries} queries, not d + d^2 = {d + d * d}")
                continue
            tau_v = max(t.tolerance for t in v_entries)
            tau_f = max(t.tolerance for t in w_entries)
            if not (tau_f <= cap and tau_v <= min(mu / 2, cap) and d * tau_v**2 <= eps_v**2):
                failures.append(f"{where}: the learner asked tau_f = {tau_f}, tau_v = {tau_v}; "
                                f"the theorem allows tau_f, tau_v <= mu eps_W / (80 W_bound^2 d)"
                                f" = {cap}, tau_v <= mu / 2, sqrt(d) tau_v <= eps_v")
                continue
            v_hat = [QQ(x) for x in rec.v]
            if [QQ(t.answer) for t in v_entries] != v_hat:
                failures.append(f"{where}: v_hat is not the answers of the v queries")
                continue
            alpha_bound = 2 * Wb / mu * tau_f + (Wb + 2) / mu * tau_v
            if not alpha_bound <= eps_W / (20 * Wb * d):
                failures.append(f"{where}: the alpha bound {alpha_bound} > eps_W/(20 W_bound d)")
            radius = QQ(Fraction(rec.options["log_ball_radius"]))
            frob_sq = fmpq(0)
            for t in w_entries:
                X = [[QQ(x) for x in row] for row in t.X]
                top, low = X[0], X[1]
                j_s = [k for k in range(d) if low[k] != 0]
                i_s = [k for k in range(d) if top[k] - low[k] != 0]
                probe = (len(j_s), len(i_s)) == (1, 1) and low[j_s[0]] == a \
                    and top[i_s[0]] - low[i_s[0]] == b
                if not probe:
                    failures.append(f"{where}: query {t.index} is not a scaled probe "
                                    "[(b e_i + a e_j)^T; (a e_j)^T]")
                    break
                i, j = i_s[0], j_s[0]
                alpha_hat = (QQ(t.answer) - a * v_hat[j]) / (b * v_hat[i])
                alpha = EXP.sigmoid(EXP(a * b * W_true[i][j]))
                dev = abs(EXP(alpha_hat) - alpha)
                at = f"{where}, (i, j) = ({i}, {j})"
                if not dev <= EXP(alpha_bound):
                    failures.append(f"{at}: |alpha_hat - alpha*| above (2 W_bound/mu) tau_f + "
                                    "((W_bound + 2)/mu) tau_v")
                w_hat = QQ(rec.W[i, j])
                err = abs(w_hat - W_true[i][j])
                frob_sq += err * err
                if abs(w_hat) > Wb:
                    failures.append(f"{at}: |W_hat_ij| = {float(abs(w_hat)):.6g} > W_bound: "
                                    "the estimate left the clip interval")
                if not EXP(err) <= EXP(L_UPPER / (a * b)) * dev + EXP(radius):
                    failures.append(f"{at}: |W_hat_ij - W_ij| = {float(err):.6g} > L |alpha_hat "
                                    "- alpha*| / (a b) (+ the log's radius): the lemma fails on "
                                    "the learner's output")
                if not err <= QQ(Fraction(rec.options["W_entry_bound"])) <= eps_W / d:
                    failures.append(f"{at}: entry error {float(err):.6g} above the learner's "
                                    "bound or the bound above eps_W / d")
            if not frob_sq <= eps_W**2:
                failures.append(f"{where}: ||W_hat - W||_F^2 = {frob_sq} > eps_W^2")
            v_sq = sum(((v_hat[i] - v_true[i]) ** 2 for i in range(d)), fmpq(0))
            if not v_sq <= min(eps_v**2, d * tau_v**2):
                failures.append(f"{where}: ||v_hat - v||_2^2 = {v_sq} above d tau_v^2 or eps_v^2")
    if not clipped_runs:
        failures.append("no run clipped: the clip instances did not exercise the clip")
    return first_failure(failures, checked,
                         f"the shipped learner, {checked} runs ({len(ADVERSARIES)} adversaries, "
                         f"{len(CLIP_INSTANCES)} instances with |W_ij| = W_bound, {clipped_runs} "
                         "runs clipped): its tolerances within the theorem's, every step of the "
                         "chain on its own answers and output"), clipped_runs


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
    statement=r"\tau_f, \tau_v \le \tfrac{\mu\varepsilon_W}{80 \bar W^2 d}:\ "
              r"|\hat\alpha - \alpha| \le \tfrac{2\bar W}{\mu}\tau_f + \tfrac{\bar W + 2}{\mu}"
              r"\tau_v \le \tfrac{\varepsilon_W}{20 \bar W d} "
              r"\le \tfrac{\varepsilon_W}{10 \bar W d},"
              r"\ |\hat W_{ij} - W_{ij}| \le \tfrac{L |\hat\alpha - \alpha|}{ab} \le "
              r"\tfrac{\varepsilon_W}{d},\ \|\hat W - W\|_F \le "
              r"\varepsilon_W,\ \|\hat v - v\|_2 \le \varepsilon_v.",
    route="symbolic (sympy, nonnegative-coefficient certificates), then the shipped learner "
          "on exact instances (EXP)",
)
def _check_error_chain() -> Outcome:
    from ..symbolic.clipped_inverse import check_error_chain

    chain = check_error_chain()
    runs, _ = learner_error_chain()
    return Outcome(chain.holds and runs.holds, chain.instances + runs.instances,
                   f"{chain.detail}; {runs.detail}" if chain.holds else chain.detail)


@claim(
    "noisy_oracle", "recovery_within_bounds", paper_ref=PAPER_REF,
    title="Every adversary: errors within the reported bounds (given the hypotheses), "
          "with d + d^2 queries",
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
              r"\text{ whenever } \nu \le \|v\|_2 \le 1,\ \|W\|_F \le \bar W "
              r"\text{ and every answer is within its tolerance.}",
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
    from ..learners.noisy import ceil_sqrt
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
            entry, frob_sq, v_sq = _errors(rec, inst.model)
            b_entry, b_frob, b_v = (rational(Fraction(rec.options[k])) for k in
                                    ("W_entry_bound", "W_frobenius_bound", "v_bound"))
            if not (frob_sq <= b_frob**2 and entry <= b_entry and v_sq <= b_v**2):
                failures.append(f"{adversary}, d = {d}: adapted error above its reported bound")
            if not (b_frob <= QQ(EPS_W) and b_v <= QQ(EPS_V)):
                failures.append(f"{adversary}, d = {d}: adapted bound above epsilon")
            # the tolerances the shipped learner asked (its transcript) against the theorem's
            # caps: tau_f <= nu eps_W / (80 K_d W_bound^2 d), K_d = 3 + 3 r / 2, r = ceil(sqrt d);
            # r tau_v <= min(nu / 4, eps_v) and (2 r + 3 W_bound / 2) tau_v <= 3 W_bound tau_f
            r, nu, Wb = ceil_sqrt(d), QQ(Fraction(1, 2)), QQ(2)
            K = 3 + QQ(Fraction(3 * r, 2))
            tau_f = max(t.tolerance for t in rec.transcript if t.phase == "W")
            tau_v = max(t.tolerance for t in rec.transcript if t.phase == "v")
            if not (tau_f <= nu * QQ(EPS_W) / (80 * K * Wb * Wb * d)
                    and r * tau_v <= min(nu / 4, QQ(EPS_V))
                    and (2 * r + 3 * Wb / 2) * tau_v <= 3 * Wb * tau_f):
                failures.append(f"{adversary}, d = {d}: the adapted learner asked tau_f = "
                                f"{tau_f}, tau_v = {tau_v}, beyond the theorem's caps")
            if rec.queries != d + d * d:
                failures.append(f"{adversary}, d = {d}: {rec.queries} queries")
    return first_failure(failures, checked, "paper's learner refuses (margin); adapted one "
                                            "within (eps_W, eps_v)")
