"""Claims of ``clipped_inverse`` (paper Lemma 6.1 v1 = Lemma A.1 v2; paper.md §5).

The lemma: with tau_c = sigma(-1/2) = 1/(1 + sqrt e), clip(p) =
min(max(p, tau_c), 1 - tau_c) and L = 1/(tau_c (1 - tau_c)) = 2 + 2 cosh(1/2),
for alpha in [tau_c, 1 - tau_c] and every real a,
|logit(clip(a)) - logit(alpha)| <= L |a - alpha|, and L <= 5.

The mathematics lives in :mod:`exactattn.symbolic.clipped_inverse` (imported
inside the checks, so that importing the registry does not load SymPy). The
probe geometry and the error chain of ``noisy_oracle`` are plain functions
there, registered by ``exactattn/checks/noisy_oracle.py``.
"""

from __future__ import annotations

from ..claims import Outcome, claim, register_result

LABEL = "clipped_inverse"
PAPER_REF = "Lemma 6.1 (v1), Lemma A.1 (v2, reported)"
ROUTE_SYMBOLIC = "symbolic (sympy)"

register_result(
    LABEL, paper_ref=PAPER_REF,
    title="The clipped inverse sigmoid is $L$-Lipschitz, $L = 2 + 2\\cosh\\frac12 \\le 5$",
)


@claim(
    LABEL, "constants",
    paper_ref=PAPER_REF, title="The clip level and the Lipschitz constant in closed form",
    statement=r"\tau_c = \sigma(-\tfrac12) = \frac{1}{1 + \sqrt e},\qquad "
              r"L = \frac{1}{\tau_c (1 - \tau_c)} = 2 + 2\cosh\tfrac12 = 2 + e^{1/2} + e^{-1/2}.",
    route=ROUTE_SYMBOLIC + " and exact (EXP)",
)
def _check_constants() -> Outcome:
    from ..symbolic.clipped_inverse import check_constants

    f = check_constants()
    return Outcome(f.holds, f.instances, f.detail)


@claim(
    LABEL, "constant_bounds",
    paper_ref=PAPER_REF, title="The decimal values of the constants, and L at most 5",
    statement=r"0.3775406687 < \tau_c < 0.3775406688,\qquad 4.2552519 < L < 4.2552520,"
              r"\qquad L < 4.2553 \le 5.",
    route="interval (arb)",
)
def _check_constant_bounds() -> Outcome:
    from ..symbolic.clipped_inverse import check_constant_bounds

    f = check_constant_bounds()
    return Outcome(f.holds, f.instances, f.detail)


@claim(
    LABEL, "lipschitz",
    paper_ref=PAPER_REF,
    title="The clipped inverse sigmoid is L-Lipschitz, clip(p) = min(max(p, tau_c), 1 - tau_c)"
          " (symbolic proof)",
    statement=r"\alpha \in [\tau_c, 1 - \tau_c],\ a \in \mathbb{R} \implies "
              r"|\operatorname{logit}(\operatorname{clip}(a)) - \operatorname{logit}(\alpha)|"
              r" \le L\,|a - \alpha|.",
    route=ROUTE_SYMBOLIC,
)
def _check_lipschitz() -> Outcome:
    from ..symbolic.clipped_inverse import check_lipschitz_proof

    f = check_lipschitz_proof()
    return Outcome(f.holds, f.instances, f.detail)


@claim(
    LABEL, "lipschitz_exact_points",
    paper_ref=PAPER_REF,
    title="The Lipschitz inequality at exact points: a grid, the ends of the clip interval, "
          "points next to alpha, seeded random points",
    statement=r"|\operatorname{logit}(\operatorname{clip}(a)) - q| \le L\,|a - \sigma(q)|,"
              r"\quad a, q \in \mathbb{Q},\ |q| \le \tfrac12.",
    route="exact (EXP) + arb for logarithms of rationals",
)
def _check_lipschitz_exact_points() -> Outcome:
    from ..symbolic.clipped_inverse import check_lipschitz_on_points, lipschitz_points

    f = check_lipschitz_on_points(lipschitz_points())
    return Outcome(f.holds, f.instances, f.detail)
