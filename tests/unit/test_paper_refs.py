"""Every paper reference a learner or check carries reads v2 numbers as "v2, reported".

The v1 text is the reference; v2 numbers come from secondary summaries
(paper.md), so a Recovery printed by ``learn`` or ``replay`` must not state
them as fact. ``claims.reported_v2`` is the rule; a reference it would change
is unqualified.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import exactattn.checks
import exactattn.learners
from exactattn.claims import reported_v2


def _references() -> list[tuple[str, str]]:
    found = []
    for package in (exactattn.learners, exactattn.checks):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for name, value in vars(module).items():
                if name.endswith("_REF") and isinstance(value, str):
                    found.append((f"{module.__name__}.{name}", value))
    return found


REFERENCES = _references()


def test_references_were_found() -> None:
    names = {name for name, _ in REFERENCES}
    assert "exactattn.learners.single_head.PAPER_REF" in names
    assert len(REFERENCES) >= 10


@pytest.mark.parametrize(("name", "ref"), REFERENCES, ids=[n for n, _ in REFERENCES])
def test_v2_numbers_are_qualified(name: str, ref: str) -> None:
    assert reported_v2(ref) == ref, f"{name} = {ref!r} states a v2 number as fact"


def test_a_learned_recovery_prints_v2_as_reported() -> None:
    from exactattn.fields import EXP
    from exactattn.instances import single_head_instance
    from exactattn.learners import learn_single_head
    from exactattn.oracle import ValueOracle

    rec = learn_single_head(ValueOracle(single_head_instance(2, 0, field=EXP).model))
    assert "(v2, reported)" in rec.paper_ref
    assert "(v2)" not in rec.paper_ref


def test_a_golden_file_differing_in_other_words_of_the_reference_still_fails(tmp_path) -> None:
    import json

    from exactattn.fields import EXP
    from exactattn.instances import single_head_instance
    from exactattn.learners import learn_single_head
    from exactattn.oracle import ValueOracle
    from exactattn.testing import assert_matches_golden

    rec = learn_single_head(ValueOracle(single_head_instance(2, 0, field=EXP).model))
    saved = json.loads(json.dumps(rec.to_json()))
    old = tmp_path / "old.json"
    saved["paper_ref"] = "Thm 4.1 (v1), Thm 4.1 (v2)"  # as written before the qualification
    old.write_text(json.dumps(saved))
    assert_matches_golden(rec, old)
    saved["paper_ref"] = "Thm 4.2 (v1), Thm 4.1 (v2)"  # another theorem: a real difference
    old.write_text(json.dumps(saved))
    with pytest.raises(AssertionError, match="paper_ref"):
        assert_matches_golden(rec, old)
