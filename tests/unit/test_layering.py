"""The oracle boundary is structural: learners never import the models.

Walks the imports of every module in ``exactattn/learners/`` (absolute and
relative, at any depth of the module) and fails if one reaches
``exactattn.models``. Also checks that learners never touch private
attributes of field elements (an answer is an opaque real number), and that
neither the learners nor the modules they compute with (``linalg``,
``queries``, ``reconstruct``) have a back door to the hidden model: no
``importlib`` or ``__import__``, no ``getattr``/``vars`` on anything but
``self``, no ``__dict__``, and no ``oracle.fork()`` (a fork answers
uncounted queries; only certificates may use it, and an oracle wrapper may
forward its own ``fork``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import exactattn.learners

LEARNERS = Path(exactattn.learners.__file__).parent
PACKAGE = LEARNERS.parent
#: the modules a learner computes with: the same rules apply to them
HELPERS = [PACKAGE / "linalg.py", PACKAGE / "queries.py", PACKAGE / "reconstruct.py"]


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


def _back_doors(path: Path) -> list[str]:
    """Every way ``path`` could reach past the oracle's answers (see the module docstring)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    forwarding: set[int] = set()  # lines inside a method named fork (an oracle wrapper)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "fork":
            forwarding.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""])
            found += [f"{where} imports {m}" for m in mods if m.split(".")[0] == "importlib"]
        elif isinstance(node, ast.Name) and node.id == "__import__":
            found.append(f"{where} __import__")
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            found.append(f"{where} .__dict__")
        elif isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in ("getattr", "vars", "setattr"):
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Name) and first.id == "self"):
                    found.append(f"{where} {f.id}({ast.unparse(first) if first else ''})")
            if isinstance(f, ast.Attribute) and f.attr == "fork" \
                    and node.lineno not in forwarding:
                found.append(f"{where} {ast.unparse(f)}()")
    return found


def test_no_back_door_to_the_hidden_model() -> None:
    paths = sorted(LEARNERS.glob("*.py")) + HELPERS
    assert all(p.exists() for p in HELPERS)
    offenders = [hit for path in paths for hit in _back_doors(path)]
    assert offenders == []


def test_the_back_door_walker_sees_each_kind(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import importlib\n"
        "from importlib import import_module\n"
        "m = __import__('exactattn.models')\n"
        "def learn(oracle):\n"
        "    W = getattr(oracle, 'target').W\n"
        "    t = vars(oracle)\n"
        "    d = oracle.__dict__\n"
        "    free = oracle.fork('peek')\n"
        "    return getattr(self, 'x')\n"
        "class Wrapper:\n"
        "    def fork(self, name):\n"
        "        return Wrapper(self.inner.fork(name))\n")
    hits = _back_doors(bad)
    kinds = ["imports importlib", "__import__", "getattr(oracle)", "vars(oracle)",
             ".__dict__", "oracle.fork()"]
    for kind in kinds:
        assert any(kind in h for h in hits), (kind, hits)
    # getattr on self and a wrapper forwarding its own fork are allowed
    assert len(hits) == 7, hits
