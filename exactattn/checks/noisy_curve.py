"""The noise curve of ``noisy_oracle`` (paper Thm 6.2 v1 = Thm 6.1 v2, reported; paper.md §5).

One claim, whose measurements the proof companion draws as a figure
(:class:`~exactattn.symbolic.measured.MeasuredCurve`): the clipped-inverse
learner against every adversary over a grid of accuracies epsilon_W, the
worst entry error beside the learner's entry bound. Every comparison is
exact (rationals); the figure prints the same numbers as floats. The other
claims of the label are in :mod:`exactattn.checks.noisy_oracle`; the long
curve (d up to 64) is ``benchmarks/noisy.py --curve-out``.
"""

from __future__ import annotations

from fractions import Fraction

from ..claims import Outcome, claim
from ..fields import EXP, QQ, rational
from ..instances import noisy_single_head_instance
from ..learners.noisy import PAPER_REF, learn_single_head_noisy, theorem_tolerances
from ..oracle import ADVERSARIES, NoisyOracle
from ..symbolic.measured import MeasuredCurve, Series
from ..symbolic.recorder import recorded

__all__ = ["noise_curve", "CURVE_DIMS", "CURVE_EPSILONS"]

#: the curve's dimensions (seed 0 each, W_bound = 2) and accuracies epsilon_W = epsilon_v
CURVE_DIMS = (2, 4)
CURVE_EPSILONS = tuple(Fraction(1, 2**k) for k in range(1, 8))  # 1/2 .. 1/128


@recorded
def noise_curve(dims: tuple[int, ...], epsilons: tuple[Fraction, ...]) -> MeasuredCurve:
    """Worst entry error of W over the adversaries against epsilon_W, with the bounds.

    Per (d, epsilon_W): the oracle answers within the theorem's tolerances
    (tau_f, tau_v of :func:`~exactattn.learners.noisy.theorem_tolerances`) for
    each adversary; decided exactly: max_ij |W_hat_ij - W_ij| <= the learner's
    entry bound <= epsilon_W / d, and d + d^2 queries.
    """
    failures: list[str] = []
    series: list[Series] = []
    runs = 0
    for d in dims:
        inst, margin = noisy_single_head_instance(d, 0)
        hidden = [[EXP.to_rational(inst.model.W[i, j]) for j in range(d)] for i in range(d)]
        errors, bounds = [], []
        for eps in epsilons:
            b = theorem_tolerances(d, epsilon_W=eps, epsilon_v=eps, W_bound=2, margin=margin)
            worst, top = QQ(0), QQ(0)  # over the adversaries: the worst error, the widest bound
            for adversary in ADVERSARIES:
                oracle = NoisyOracle(inst.model, tolerance={0: b.tau_f, 1: b.tau_v, 2: b.tau_f},
                                     adversary=adversary, seed=0)
                rec = learn_single_head_noisy(oracle, epsilon_W=eps, epsilon_v=eps, W_bound=2,
                                              margin=margin)
                runs += 1
                entry = max(abs(QQ(rec.W[i, j]) - hidden[i][j])
                            for i in range(d) for j in range(d))
                bound = rational(Fraction(rec.options["W_entry_bound"]))
                worst, top = max(worst, entry), max(top, bound)
                if not entry <= bound <= QQ(eps) / d:
                    failures.append(f"d = {d}, epsilon_W = {eps}, {adversary}: entry error "
                                    f"{entry}, bound {bound}, epsilon_W / d = {eps / d}")
                if oracle.queries != d + d * d:
                    failures.append(f"d = {d}, epsilon_W = {eps}: {oracle.queries} queries")
            errors.append((float(eps), float(worst)))
            bounds.append((float(eps), float(top)))
        series += [Series(f"worst entry error, $d = {d}$", tuple(errors)),
                   Series(f"the learner's entry bound, $d = {d}$", tuple(bounds), bound=True)]
    detail = failures[0] if failures else (
        f"{runs} runs ({len(ADVERSARIES)} adversaries, d in {set(dims)}, "
        f"{len(epsilons)} values of epsilon_W): every entry error <= the learner's entry bound "
        "<= epsilon_W / d (exact rationals), d + d^2 queries each")
    caption = (r"\texttt{noisy\_oracle}: the worst entry error over the "
               rf"{len(ADVERSARIES)} adversaries against $\varepsilon_W$ "
               r"($\varepsilon_v = \varepsilon_W$, $\bar W = 2$, seeded instances), beside the "
               r"largest of the learner's entry bounds over them (dashed), each at most "
               r"$\varepsilon_W / d$. Decided "
               r"exactly by the check; drawn as floats.")
    return MeasuredCurve(caption, r"$\varepsilon_W$", "entry error of $W$", tuple(series),
                         not failures, detail, runs, log_x=True, log_y=True)


@claim(
    "noisy_oracle", "noise_curve", paper_ref=PAPER_REF,
    title="The noise curve: the worst entry error against epsilon_W, within the bound",
    statement=r"\varepsilon_W = \varepsilon_v \in \{2^{-1}, \dots, 2^{-7}\},\ d \in \{2, 4\},"
              r"\ \text{every adversary}: \max_{ij} |\hat W_{ij} - W_{ij}| \le \text{the "
              r"learner's entry bound} \le \varepsilon_W / d.",
    route="exact (QQ errors; answers within tolerance, EXP)",
)
def _check_noise_curve() -> Outcome:
    curve = noise_curve(CURVE_DIMS, CURVE_EPSILONS)
    return Outcome(curve.holds, curve.instances, curve.detail)
