"""The oracle boundary is structural: learners never import the models.

Walks the imports of every module in ``exactattn/learners/`` (absolute and
relative, at any depth of the module) and fails if one reaches
``exactattn.models``. Also checks that learners never touch private
attributes of field elements (an answer is an opaque real number).
"""

from __future__ import annotations

import ast
from pathlib import Path

import exactattn.learners

LEARNERS = Path(exactattn.learners.__file__).parent


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # resolve relative to exactattn.learners
                parts = ["exactattn", "learners"][: 2 - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names.append(base)
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_learner_modules_exist() -> None:
    assert sorted(p.name for p in LEARNERS.glob("*.py")) != []
    assert (LEARNERS / "single_head.py").exists()


def test_no_learner_imports_models() -> None:
    offenders = {
        path.name: name
        for path in LEARNERS.glob("*.py")
        for name in _imports(path)
        if name == "exactattn.models" or name.startswith("exactattn.models.")
    }
    assert offenders == {}


def test_the_walker_sees_a_models_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from ..models import SingleHeadAttention\nimport exactattn.models.attention\n")
    names = _imports(bad)
    assert "exactattn.models" in names
    assert "exactattn.models.attention" in names


def test_learners_do_not_read_private_attributes() -> None:
    offenders = []
    for path in LEARNERS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not (
                node.attr.startswith("__") and node.attr.endswith("__")
            ):
                offenders.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert offenders == []
