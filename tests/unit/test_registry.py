"""The registry, the theorem test files and the LaTeX companion agree on labels."""

from __future__ import annotations

from pathlib import Path

from exactattn.blueprint import statement_of
from exactattn.claims import REGISTRY, Claim, Outcome, labels, run_claims
from exactattn.report.latex import label_section

ROOT = Path(__file__).resolve().parents[2]

#: the stable labels of style.md ("Habits")
STABLE_LABELS = {
    "single_head_exact", "one_layer_reduction", "relu_ffn_exact", "low_rank_sensing",
    "low_rank_adaptive", "clipped_inverse", "noisy_oracle", "multihead_nonidentifiable",
    "multihead_canonical", "membership_queries",
}


def test_every_label_is_stable_and_has_its_test_file() -> None:
    assert labels(), "the registry is empty"
    from exactattn.claims import RESULTS

    for label in labels():
        if RESULTS[label].source != "exactattn":  # a user's plugin (tests/plugin_example)
            continue
        assert label in STABLE_LABELS
        assert (ROOT / "tests" / "theorems" / f"test_{label}.py").exists(), label


def test_claim_ids_are_unique_and_prefixed_by_their_label() -> None:
    ids = [c.id for c in REGISTRY]
    assert len(ids) == len(set(ids))
    for c in REGISTRY:
        assert c.id.startswith(c.label + ".")
        assert c.paper_ref and c.statement and c.title


def test_every_label_has_its_latex_label() -> None:
    """Each claim's \\label sits in the section of its blueprint statement (keyed by label)."""
    for label in labels():
        tex = label_section(label, [])
        assert f"\\label{{{statement_of(REGISTRY_BY_LABEL(label)[0].id).key}}}" in tex
        for c in REGISTRY_BY_LABEL(label):
            assert f"\\label{{{c.id}}}" in tex
    for label in labels():
        if label in STABLE_LABELS:
            assert f"\\label{{{label}}}" in label_section(label, []), label


def REGISTRY_BY_LABEL(label: str) -> list[Claim]:
    return [c for c in REGISTRY if c.label == label]


def test_a_crashing_check_is_a_failed_claim() -> None:
    from exactattn.claims import Claim

    def boom() -> Outcome:
        raise ZeroDivisionError("on purpose")

    REGISTRY.append(Claim("single_head_exact.boom", "single_head_exact", "test", "boom",
                          "0 = 1", "none", boom))
    try:
        (result,) = run_claims(["single_head_exact.boom"])
    finally:
        REGISTRY.pop()
    assert not result.holds
    assert "ZeroDivisionError" in result.outcome.detail


def test_recorded_evidence_fails_a_claim_by_the_rule_the_companion_prints() -> None:
    """One rule (status_of_step) for the badge and the verdict: a recorded finding without
    steps that does not hold fails the claim even when the check itself says it holds; a
    step with a status of its own (grid evidence) does not."""
    from types import SimpleNamespace

    from exactattn.report.latex import render_evidence
    from exactattn.symbolic.recorder import recorded

    @recorded
    def finding(holds: bool) -> SimpleNamespace:
        return SimpleNamespace(holds=holds, detail="a finding", route="exact", steps=())

    @recorded
    def grid_step() -> list[SimpleNamespace]:
        return [SimpleNamespace(lhs=0, rhs=0, why="grid", verified=False,
                                status="exact instances")]

    def check(holds: bool) -> Outcome:
        finding(holds)
        grid_step()
        return Outcome(True, 1, "the check itself holds")

    for holds in (True, False):
        REGISTRY.append(Claim("single_head_exact.evidence", "single_head_exact", "test",
                              "evidence", "0 = 0", "none", lambda h=holds: check(h)))
        try:
            (result,) = run_claims(["single_head_exact.evidence"])
        finally:
            REGISTRY.pop()
        assert result.holds is holds
        assert result.to_json()["holds"] is holds  # as the report's count of failures
        assert len(result.unverified) == (0 if holds else 1)
        assert all(".finding(False)" in line for line in result.unverified)
        tex = render_evidence(result.evidence)
        assert (r"\notverified" in tex) is (not holds)
