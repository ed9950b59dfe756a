"""JSON reports: the documents the command line prints with ``--json``.

Every document has a JSON Schema in ``docs/schemas/`` (``docs/json.md``), and
``tests/unit/test_json_schemas.py`` validates a real output of every command
against it. Under ``--json`` an error of the input (exit code 2) is one object
:func:`error_report` on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..claims import ClaimResult

__all__ = ["verify_report", "write_json", "error_report", "replay_report", "latex_report",
           "certificate_json"]


def verify_report(results: Sequence[ClaimResult], seconds: float) -> dict[str, Any]:
    """``exactattn verify --json``: the claims run, with their verdicts
    (``docs/schemas/verify.schema.json``)."""
    from .. import __version__
    from .text import check_results

    check_results(results, seconds, "verify_report")
    failed = sum(1 for r in results if not r.holds)
    return {
        "exactattn": __version__,
        "paper": "arXiv 2601.16873",
        "passed": len(results) - failed,
        "failed": failed,
        "seconds": round(seconds, 3),
        "claims": [r.to_json() for r in results],
    }


def error_report(command: str, message: str, exit_code: int = 2) -> dict[str, Any]:
    """The one object a command prints on stdout under ``--json`` when it refuses its input
    (``docs/schemas/error.schema.json``); the same line goes to stderr.

    >>> error_report("replay", "x.json: No such file")
    {'error': 'x.json: No such file', 'command': 'replay', 'exit_code': 2}
    """
    return {"error": message, "command": command, "exit_code": exit_code}


def certificate_json(cert: Any) -> dict[str, Any]:
    """``Certificate.to_json()`` with the certificate's text line."""
    return {**cert.to_json(), "text": str(cert)}


def replay_report(path: str, rec: Any, certs: Sequence[tuple[str, Any]],
                  holds: bool) -> dict[str, Any]:
    """``exactattn replay FILE --json`` (``docs/schemas/replay.schema.json``): the saved
    recovery's label, status and counts, and each certificate with what it checked
    (``"transcript replay"``, then ``"against <the hidden instance>"`` when the file
    names one); ``holds`` as the exit code says (something checked, nothing failed)."""
    return {
        "file": str(path), "label": rec.label, "paper_ref": rec.paper_ref,
        "field": rec.field.name, "d": rec.d, "status": rec.status,
        "hypotheses": list(rec.hypotheses), "queries": rec.queries,
        "transcript_entries": len(rec.transcript),
        "certificates": [{"what": what, **certificate_json(cert)} for what, cert in certs],
        "holds": holds,
    }


def latex_report(out: Path, written: Sequence[Path], results: Sequence[ClaimResult],
                 not_verified: Sequence[str], pdf: Path | None,
                 pdf_failed: bool = False) -> dict[str, Any]:
    """``exactattn latex --json`` (``docs/schemas/latex.schema.json``): the files written,
    the claims run (none with ``--no-check``), the steps NOT VERIFIED, the PDF (null
    unless ``--pdf`` built it) and ``ok``, true exactly when the exit code is 0."""
    from .. import __version__

    failed = sum(1 for r in results if not r.holds)
    return {
        "exactattn": __version__, "out": str(out), "files": [str(p) for p in written],
        "claims_run": len(results), "claims_failed": failed,
        "not_verified": list(not_verified),
        "pdf": None if pdf is None else str(pdf), "pdf_failed": pdf_failed,
        "ok": not not_verified and not pdf_failed,
    }


def write_json(obj: Any, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
