"""The public API: ``import exactattn`` gives the user-facing names, and docs/api.md lists them."""

from __future__ import annotations

from pathlib import Path

import exactattn
import exactattn.learners
from exactattn.report.api import api_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_public_name_exists_and_is_documented() -> None:
    missing = [n for n in exactattn.__all__ if not hasattr(exactattn, n)]
    assert missing == []
    assert len(set(exactattn.__all__)) == len(exactattn.__all__)


def test_every_learner_and_the_user_facing_names_are_exported() -> None:
    names = set(exactattn.__all__)
    assert set(exactattn.learners.__all__) <= names
    for name in ("QQ", "EXP", "F64", "BALL", "MP", "ValueOracle", "NoisyOracle",
                 "enclosing_oracle", "verify", "Recovery", "SingleHeadAttention",
                 "ExactattnError", "STATUSES"):
        assert name in names


def test_docs_api_table_is_generated_from_the_docstrings() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = api_table()
    assert table in text, ("docs/api.md is out of date; regenerate its table with "
                           "'python -m exactattn.report.api'")
