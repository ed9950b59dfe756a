"""The learners' closed-form query counts: symbolic for all values, per phase on instances.

:mod:`exactattn.symbolic.query_counts` checks, as polynomials, that each
printed closed form equals the sum of its printed per-phase batches and the
code's counting function called on SymPy symbols. These tests show that the
check holds, that it fails on a wrong counter, a wrong printed formula or a
phase table that does not add up, and (the evidence for the prose step
"each phase asks exactly its batch") that the oracle's per-phase counters
equal the printed batch sizes on exact instances.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import pytest
import sympy as sp

from exactattn import claims
from exactattn.blueprint import statement_of
from exactattn.checks.low_rank import low_rank_head
from exactattn.checks.low_rank_biased import biased_low_rank_head
from exactattn.checks.one_layer_reduction import skip_head_instance
from exactattn.checks.query_counts import COUNT_CLAIMS, COUNTERS, check_counts
from exactattn.claims import REGISTRY, run_claims
from exactattn.fields import EXP
from exactattn.learners import (
    learn_biased_head,
    learn_biased_low_rank,
    learn_low_rank,
    learn_multihead,
    learn_single_head,
    learn_skip_head,
    multihead_float,
    single_head,
)
from exactattn.models import SingleHeadAttention
from exactattn.models.biased import BiasedSingleHeadAttention
from exactattn.models.multihead import random_multihead
from exactattn.oracle import ValueOracle
from exactattn.symbolic import query_counts as qc
from exactattn.symbolic.query_counts import (
    COUNTS,
    CountCase,
    CountEntry,
    Printed,
    count_derivation,
    drop_integer_floors,
    parse_count,
    phase_sizes,
)


# -- the symbolic check holds, and says what it checked ---------------------------------------
@pytest.mark.parametrize("key", sorted(COUNTS))
def test_every_count_derivation_verifies(key: str) -> None:
    der = count_derivation(key)
    assert der.holds and der.steps
    # one "the code ... returns the closed form" step per case: the counter was evaluated
    code_steps = [s for s in der.steps if s.why.startswith("the code")]
    assert len(code_steps) == len(COUNTS[key].cases)


def test_every_claim_routes_to_its_statement_and_holds() -> None:
    expected = {"single_head_exact.query_count_closed_form": "single_head_exact",
                "single_head_exact.biased_query_count_closed_form": "single_head_biased",
                "one_layer_reduction.query_count_closed_form": "one_layer_reduction",
                "low_rank_adaptive.query_count_closed_form": "low_rank_adaptive",
                "low_rank_sensing.query_count_closed_form": "low_rank_sensing",
                "relu_ffn_exact.query_count_closed_form": "relu_ffn_exact",
                "multihead_canonical.query_count_closed_form": "multihead_canonical"}
    assert set(COUNT_CLAIMS) == set(expected)
    assert {k for keys in COUNT_CLAIMS.values() for k in keys} == set(COUNTS)
    assert COUNTERS == {k: e.counter.rsplit(".", 1)[1] for k, e in COUNTS.items()}
    ids = {c.id for c in REGISTRY}
    for cid, key in expected.items():
        assert cid in ids and statement_of(cid).key == key
    results = run_claims(list(expected))
    assert len(results) == 7 and all(r.holds for r in results)
    assert all("that each phase asks exactly its batch is prose" in r.outcome.detail
               for r in results)
    # the evidence printed by the companion is the derivation that ran
    assert all(r.evidence and r.evidence[0].function.endswith("count_derivation")
               for r in results)


def test_multihead_derivation_covers_the_conditions_of_the_code() -> None:
    names = [c.name for c in COUNTS["multihead_canonical"].cases]
    assert {"m = 1, plan isolating", "m >= 2, plan isolating", "m = 1, plan families",
            "m >= 2, plan families", "m = H = 1", "m = H >= 2"} <= set(names)
    names = [c.name for c in COUNTS["multihead_biased"].cases]
    assert sum("rank r with 1 <= r <= d - m" in n for n in names) == 2


# -- the check can fail ------------------------------------------------------------------------
def test_a_wrong_counter_is_not_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    def off_by_one(d: int) -> int:
        return d + d * d + 1

    off_by_one.__doc__ = single_head.query_count.__doc__  # the printed text stays
    monkeypatch.setattr(single_head, "query_count", off_by_one)
    der = count_derivation("single_head_exact")
    assert not der.holds
    bad = [s for s in der.steps if not s.verified]
    assert len(bad) == 1 and bad[0].why.startswith("the code")
    assert not check_counts(("single_head_exact",)).holds


def test_a_counter_off_only_for_two_or_more_heads_is_not_verified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    original = multihead_float.float_query_count

    def off(H: object, d: object, **kw: object) -> object:  # docstring: not read
        m = kw.get("m", H)
        return original(H, d, **kw) + (0 if m == 1 else 1)  # type: ignore[arg-type]

    monkeypatch.setattr(multihead_float, "float_query_count", off)
    der = count_derivation("multihead_float")
    bad = [s.why for s in der.steps if not s.verified]
    assert len(bad) == 2 and all(r"(m $\ge$ 2" in w for w in bad)  # all e, n; e = n = 0


def test_a_formula_not_printed_in_the_docstring_is_not_verified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc = single_head.__doc__
    assert doc is not None and "Total: exactly d + d^2 queries" in doc
    monkeypatch.setattr(single_head, "__doc__",
                        doc.replace("Total: exactly d + d^2 queries", "Total: d + d^2 + 1"))
    der = count_derivation("single_head_exact")
    bad = [s.why for s in der.steps if not s.verified]
    assert len(bad) == 1 and bad[0].startswith("NOT PRINTED")


def test_phases_that_do_not_add_up_are_not_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    # the printed phases of the single head, with the W phase read as d (it is d^2)
    where = "exactattn.learners.single_head"
    wrong = CountEntry("single_head_exact", f"{where}.query_count", (CountCase(
        "all d", {"d": qc.d}, (Printed("d + d^2", where, "Total: exactly d + d^2 queries"),),
        (("v", Printed("d", where, "(d queries of length 1)")),
         ("W", Printed("d", where, "(d queries of length 1)")))),))
    monkeypatch.setitem(COUNTS, "wrong", wrong)
    der = count_derivation("wrong")
    bad = [s.why for s in der.steps if not s.verified]
    assert len(bad) == 1 and "per-phase batches" in bad[0]


def test_a_printed_form_that_disagrees_is_not_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    where = "exactattn.learners.biased_head"
    # "d^2 + 2d + 1" is printed, but not equal to d^2 + 2d (also printed nowhere: two failures)
    wrong = CountEntry("single_head_biased", f"{where}.biased_query_count", (CountCase(
        "all d", {"d": qc.d}, (Printed("(d + 1)^2", where),
                               Printed("d^2 + 2d", where, "d^2 + 2d + 1"))),))
    monkeypatch.setitem(COUNTS, "wrong", wrong)
    bad = [s.why for s in count_derivation("wrong").steps if not s.verified]
    assert len(bad) == 1 and "printed forms agree" in bad[0]



def test_the_two_per_base_counts_are_compared_where_they_can_differ(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # regression: the case compared them at m = 1 only, where both are d; a per-base form wrong
    # for every m >= 2, "(m - 1)(2m)" for "(m - 1)(2m - 1)", passed
    import dataclasses

    entry = COUNTS["multihead_canonical"]
    (case,) = [c for c in entry.cases if "per-base" in c.name]
    first, second = case.closed
    wrong = dataclasses.replace(second, text=second.text.replace("(2m - 1))", "(2m))"))
    assert wrong.text != second.text
    broken = dataclasses.replace(case, closed=(first, wrong))
    monkeypatch.setitem(COUNTS, "wrong", dataclasses.replace(entry, cases=(broken,)))
    bad = [s.why for s in count_derivation("wrong").steps if not s.verified]
    assert len(bad) == 1 and "printed forms agree" in bad[0]


def test_the_match_phase_batch_is_read_from_the_docstring(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # regression: only the phase's condition, "(only if m >= 2)", was looked up; its batch
    # "d - 1 queries" could change in the docstring and the check still passed
    from exactattn.learners import multihead

    doc = multihead.__doc__
    assert doc is not None and "d - 1 queries. Now v_h" in doc
    monkeypatch.setattr(multihead, "__doc__", doc.replace("d - 1 queries. Now v_h",
                                                          "d queries. Now v_h"))
    bad = [s.why for s in count_derivation("multihead_canonical").steps if not s.verified]
    assert len(bad) == 4 and all(w.startswith("NOT PRINTED") for w in bad)  # plans x m cases
    monkeypatch.setattr(multihead, "__doc__", doc.replace("(only if m >= 2)", "(always)"))
    bad = [s.why for s in count_derivation("multihead_canonical").steps if not s.verified]
    assert len(bad) == 4 and all(w.startswith("NOT PRINTED") for w in bad)

# -- the pieces ------------------------------------------------------------------------------
def test_parse_count_reads_the_docstring_notation() -> None:
    d, r, H, m = sp.symbols("d r H m")
    assert parse_count("r(2d - r) + d") == r * (2 * d - r) + d
    assert sp.expand(parse_count("(d + 1)^2") - (d**2 + 2 * d + 1)) == 0
    iverson = parse_count("[m >= 2](d - 1)")
    assert iverson.subs(m, 1) == 0 and iverson.subs(m, 5) == d - 1
    assert parse_count(r"$1 + 2Hd + [H \ge 2](d-1)$").subs(H, 1) == 2 * d + 1
    assert parse_count("(|REFINE_SCALES| + 1) K_W") == (sp.Symbol("len_REFINE_SCALES") + 1) \
        * sp.Symbol("K_W")
    # one letter is a symbol: E is the count of extra queries, not Euler's number
    assert parse_count("R + E").free_symbols == {sp.Symbol("R"), sp.Symbol("E")}
    assert parse_count(r"(K + 1)(\max(d - 2, 0) + 1)").subs("d", 1) == sp.Symbol("K") + 1


def test_floor_is_dropped_only_when_integer_valued() -> None:
    k = sp.Symbol("k", integer=True, nonnegative=True)
    m = k + 2
    assert drop_integer_floors(m * (m - 1) // 2) == m * (m - 1) / 2
    assert isinstance(drop_integer_floors(k // 2), sp.floor)           # k/2 is not an integer
    assert isinstance(drop_integer_floors(m * (m + 2) // 4), sp.floor)  # 3*5/4 is not either
    assert drop_integer_floors(sp.Integer(7) // 2) == 3


# -- per phase on instances: the evidence for the prose step -----------------------------------
@pytest.mark.parametrize("d", [1, 2, 3])
def test_single_head_phases_on_instances(d: int) -> None:
    W = [[Fraction(i - j, 3) for j in range(d)] for i in range(d)]
    head = SingleHeadAttention(W, [Fraction(k + 1, 2) for k in range(d)], field=EXP)
    oracle = ValueOracle(head)
    learn_single_head(oracle)
    assert oracle.queries_by_phase == phase_sizes("single_head_exact", "all d", d=d)
    assert oracle.queries == single_head.query_count(d)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_biased_head_phases_on_instances(d: int) -> None:
    W = [[Fraction(i + 2 * j, 5) for j in range(d)] for i in range(d)]
    head = BiasedSingleHeadAttention(W, [1] * d, [Fraction(1, 2)] * d, 3, field=EXP)
    oracle = ValueOracle(head)
    learn_biased_head(oracle)
    assert oracle.queries_by_phase == phase_sizes("single_head_biased", "all d", d=d)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_skip_head_phases_on_instances(d: int) -> None:
    oracle = ValueOracle(skip_head_instance(d, 0))
    learn_skip_head(oracle)
    assert oracle.queries_by_phase == phase_sizes("one_layer_reduction", "skip head, all d", d=d)


@pytest.mark.parametrize(("d", "r"), [(2, 1), (3, 2), (4, 1), (3, 3)])
def test_low_rank_phases_on_instances(d: int, r: int) -> None:
    oracle = ValueOracle(low_rank_head(d, r, seed=d))
    learn_low_rank(oracle, rank=r, seed=r)
    printed = {k: n for k, n in phase_sizes("low_rank_adaptive", "rank given", d=d, r=r).items()
               if n}
    assert oracle.queries_by_phase == printed


@pytest.mark.parametrize(("d", "r", "bias"), [(3, 1, "general"), (4, 2, "general"),
                                               (3, 1, "column_space"), (4, 2, "column_space")])
def test_biased_low_rank_phases_on_instances(d: int, r: int, bias: str) -> None:
    head = biased_low_rank_head(d, r, seed=d, c_in_column_space=bias == "column_space")
    oracle = ValueOracle(head)
    learn_biased_low_rank(oracle, rank=r, bias=bias, seed=r)  # type: ignore[arg-type]
    case = f"bias {bias}, rank given"
    printed = {k: n for k, n in phase_sizes("low_rank_biased", case, d=d, r=r).items() if n}
    assert oracle.queries_by_phase == printed


@pytest.mark.parametrize(("H", "d"), [(1, 3), (2, 2), (2, 3), (3, 4)])
def test_multihead_phases_on_instances(H: int, d: int) -> None:
    oracle = ValueOracle(random_multihead(H, d, 5))
    rec = learn_multihead(oracle, heads=H, seed=1)
    assert rec.options["plan"] == "isolating" and rec.options["m"] == H
    case = "m = 1, plan isolating" if H == 1 else "m >= 2, plan isolating"
    printed = {k: n for k, n in phase_sizes("multihead_canonical", case, H=H, d=d, m=H).items()
               if n}
    assert oracle.queries_by_phase == printed


def test_loading_the_registry_does_not_import_sympy() -> None:
    # the count claims import SymPy only when they run (exactattn claims stays fast)
    code = "import sys, exactattn.claims; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_blueprint_count_is_the_checked_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from exactattn import blueprint

    # the companion's printed count of the biased head, (d + 1)^2, is one of the checked forms
    assert any(p.where == "blueprint:single_head_biased"
               for p in COUNTS["single_head_biased"].cases[0].closed)
    changed = tuple(dataclasses.replace(s, queries="$(d + 2)^2$")
                    if s.key == "single_head_biased" else s for s in blueprint.STATEMENTS)
    monkeypatch.setattr(blueprint, "STATEMENTS", changed)
    bad = [s.why for s in count_derivation("single_head_biased").steps if not s.verified]
    assert len(bad) == 1 and bad[0].startswith("NOT PRINTED") and "blueprint" in bad[0]


def test_a_claim_statement_whose_count_drifts_is_not_verified(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    # the count printed in the claim's statement is one of the checked forms
    (k,) = [k for k, c in enumerate(REGISTRY) if c.id == "multihead_canonical.float_recovery"]
    claim = REGISTRY[k]
    assert r"(d + 1) K_W" in claim.statement
    drifted = dataclasses.replace(
        claim, statement=claim.statement.replace(r"(d + 1) K_W", r"(d + 2) K_W"))
    monkeypatch.setattr(claims, "REGISTRY", [*REGISTRY[:k], drifted, *REGISTRY[k + 1:]])
    bad = [s.why for s in count_derivation("multihead_float").steps if not s.verified]
    assert len(bad) == 2 and all(w.startswith("NOT PRINTED") for w in bad)  # m = 1, m >= 2


def test_sensing_phases_on_an_instance() -> None:
    from exactattn.checks.low_rank import sensing_measurements

    d, r = 4, 1
    m = sensing_measurements(d, r, 2)
    oracle = ValueOracle(low_rank_head(d, r, seed=d))
    learn_low_rank(oracle, rank=r, method="sensing", measurements=m, seed=1)
    assert oracle.queries_by_phase == phase_sizes("low_rank_sensing", "all d, m", d=d, m=m)
