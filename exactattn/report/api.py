"""The API reference table of docs/api.md, generated from the docstrings.

``python -m exactattn.report.api`` prints the table; a test
(tests/unit/test_public_api.py) fails when docs/api.md differs from it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["api_rows", "api_table"]


def _kind(obj: Any) -> str:
    if inspect.isclass(obj):
        return "error" if issubclass(obj, BaseException) else "class"
    if callable(obj) and not hasattr(obj, "exact"):
        return "function"
    if hasattr(obj, "exact") and hasattr(obj, "name"):
        return "field"
    return "constant"


def _summary(name: str, obj: Any) -> str:
    if isinstance(obj, Mapping):
        return "the status words and their meanings (docs/status.md)"
    doc = inspect.getdoc(obj) if _kind(obj) != "field" else inspect.getdoc(type(obj))
    if not doc:
        raise ValueError(f"exactattn.{name} has no docstring")
    return doc.strip().splitlines()[0].replace("|", "\\|")


def api_rows() -> list[tuple[str, str, str]]:
    """(name, kind, first docstring line) for every public name of :mod:`exactattn`."""
    import exactattn

    return [(name, _kind(getattr(exactattn, name)), _summary(name, getattr(exactattn, name)))
            for name in exactattn.__all__ if name != "__version__"]


def api_table() -> str:
    """The Markdown table of :func:`api_rows`."""
    lines = ["| name | kind | summary |", "|---|---|---|"]
    lines += [f"| `{n}` | {k} | {s} |" for n, k, s in api_rows()]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(api_table())
