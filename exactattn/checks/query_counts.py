"""Claims on the learners' closed-form query counts, for every value of the parameters.

One claim per result label, ``<label>.query_count_closed_form`` (the biased
head's ``single_head_exact.biased_query_count_closed_form``, routed to its own
statement): the closed form printed in the learner's docstring, the sum of
the per-phase batch sizes printed there and the code's counting function
called on SymPy symbols are one polynomial
(:func:`exactattn.symbolic.query_counts.count_derivation`, recorded, so the
proof companion prints the steps). What stays prose, and is said so in every
detail: that each phase asks exactly its stated batch; the result claims
compare the oracle's counter with the counting function on their instances.

The claims are registered under the existing labels (so each label keeps its
test file); :func:`exactattn.blueprint.statement_of` routes them by label or
id prefix.
"""

from __future__ import annotations

from ..claims import RESULTS, Outcome, claim
from . import (  # noqa: F401  (their results first)
    low_rank,
    multihead,
    one_layer_reduction,
    relu_ffn_exact,
    single_head_biased,
    single_head_exact,
)

__all__ = ["check_counts", "COUNT_CLAIMS", "COUNTERS"]

#: claim id -> the keys of :data:`~exactattn.symbolic.query_counts.COUNTS` it checks
COUNT_CLAIMS: dict[str, tuple[str, ...]] = {
    "single_head_exact.query_count_closed_form": ("single_head_exact",),
    "single_head_exact.biased_query_count_closed_form": ("single_head_biased",),
    "one_layer_reduction.query_count_closed_form": ("one_layer_reduction", "one_layer_attention"),
    "low_rank_adaptive.query_count_closed_form": ("low_rank_adaptive", "low_rank_biased"),
    "low_rank_sensing.query_count_closed_form": ("low_rank_sensing",),
    "relu_ffn_exact.query_count_closed_form": ("relu_ffn_exact",),
    "multihead_canonical.query_count_closed_form": ("multihead_canonical", "multihead_float",
                                                    "multihead_biased"),
}

#: the counting function of each count (its name in the claim title; the test pins them to
#: :data:`~exactattn.symbolic.query_counts.COUNTS`, which the registry does not import)
COUNTERS: dict[str, str] = {
    "single_head_exact": "query_count", "single_head_biased": "biased_query_count",
    "one_layer_reduction": "query_count", "one_layer_attention": "attention_query_count",
    "low_rank_adaptive": "adaptive_query_count", "low_rank_biased": "biased_low_rank_query_count",
    "low_rank_sensing": "sensing_query_count", "relu_ffn_exact": "query_count",
    "multihead_canonical": "query_count", "multihead_float": "float_query_count",
    "multihead_biased": "biased_query_count"}


def check_counts(keys: tuple[str, ...]) -> Outcome:
    """Every step of the count derivations of ``keys`` verified (one case per instance).

    >>> check_counts(("single_head_exact",)).holds
    True
    """
    import sympy as sp  # lazily: loading the registry does not import SymPy

    from ..symbolic.query_counts import COUNTS, count_derivation

    failures, cases, variables = [], 0, set()
    for key in keys:
        der = count_derivation(key)
        cases += len(COUNTS[key].cases)
        for step in der.steps:
            variables |= {str(s) for s in sp.sympify(step.lhs).free_symbols}
            if not step.verified:
                failures.append(f"{key}: {step.why}")
    if failures:
        return Outcome(False, cases, failures[0])
    names = ", ".join(sorted(variables))
    return Outcome(True, cases, f"the printed closed forms, the sums of the printed phase "
                                f"batches and the counting function agree as polynomials in "
                                f"{names} ({cases} case{'s' if cases != 1 else ''}); that each "
                                f"phase asks exactly its batch is prose")


def _register(cid: str, keys: tuple[str, ...]) -> None:
    label, name = cid.split(".", 1)
    learners = " and ".join(COUNTERS[k] for k in keys)

    def check() -> Outcome:
        return check_counts(keys)

    check.__qualname__ = check.__name__ = "check_counts"
    claim(label, name, paper_ref=RESULTS[label].paper_ref,
          title=f"The closed-form query count ({learners}) for all values: the printed "
                f"closed form, the sum of the printed phase batches and the code agree",
          statement=r"\text{printed closed form} = \sum_{\text{phases}} \text{printed batch} = "
                    r"\text{counting function, as polynomials (each case below)}",
          route="symbolic (sympy)")(check)


for _cid, _keys in COUNT_CLAIMS.items():
    _register(_cid, _keys)
