"""JSON reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..claims import ClaimResult


def verify_report(results: Sequence[ClaimResult], seconds: float) -> dict[str, Any]:
    from .. import __version__

    failed = sum(1 for r in results if not r.holds)
    return {
        "exactattn": __version__,
        "paper": "arXiv 2601.16873",
        "passed": len(results) - failed,
        "failed": failed,
        "seconds": round(seconds, 3),
        "claims": [r.to_json() for r in results],
    }


def write_json(obj: Any, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
