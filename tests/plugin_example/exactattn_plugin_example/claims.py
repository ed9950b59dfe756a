"""A user's claims, registered with exactattn's registry through an entry point.

exactattn imports this module when its registry loads (entry point group
``exactattn.claims``, declared in this package's pyproject.toml); from then on
``exactattn verify`` runs these checks, ``exactattn claims`` lists them and
``exactattn latex`` prints them (in Part II, as results without a blueprint
statement).
"""

from __future__ import annotations

from fractions import Fraction

from exactattn import EXP
from exactattn.claims import Outcome, claim, first_failure, register_result
from exactattn.learners import learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle

LABEL = "example_plugin"

register_result(LABEL, paper_ref="user claim (example plugin)",
                title=r"A user's claims: sigmoid symmetry and a pinned head")


@claim(LABEL, "sigmoid_symmetry", paper_ref="user claim",
       title="sigma(q) + sigma(-q) = 1 exactly",
       statement=r"\sigma(q) + \sigma(-q) = 1 \quad\text{for } q \in \{-3, -1/2, 1/7, 5\}")
def sigmoid_symmetry() -> Outcome:
    qs = [Fraction(-3), Fraction(-1, 2), Fraction(1, 7), Fraction(5)]
    failures = [f"q = {q}" for q in qs
                if EXP.sigmoid(EXP(q)) + EXP.sigmoid(EXP(-q)) != 1]
    return first_failure(failures, len(qs), "4 rationals, compared with == in EXP")


@claim(LABEL, "my_head_recovered", paper_ref="user claim",
       title="my head is recovered exactly from d + d^2 queries",
       statement=r"W = \begin{pmatrix} 1/3 & -2 \\ 7 & 0 \end{pmatrix},\ v = (0, 5/2)"
                 r"\quad\text{are recovered exactly from 6 queries}")
def my_head_recovered() -> Outcome:
    head = SingleHeadAttention([[Fraction(1, 3), -2], [7, 0]], [0, Fraction(5, 2)], field=EXP)
    rec = learn_single_head(ValueOracle(head))
    same = bool((rec.W == head.W).all() and (rec.v == head.v).all())
    return Outcome(same and rec.queries == 6, 1,
                   f"{rec.queries} queries, status {rec.status}"
                   + ("" if same else ", recovery DIFFERS"))
