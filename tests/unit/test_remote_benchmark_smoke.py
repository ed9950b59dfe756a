"""Smoke test: ``benchmarks/remote.py --quick`` runs and prints valid rows (issue 16).

Every stdout line is a JSON object with the documented keys; the answers through
the HTTP API (with and without a journal, and from a resumed journal) are those
of the in-process oracle; a resumed run sends no request.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "remote.py"

KEYS = {"field", "d", "batch_size", "journal", "encoding", "queries", "requests", "seconds",
        "qps",
        "inprocess_seconds", "inprocess_qps", "overhead_ratio", "answers_equal"}
JOURNAL_KEYS = KEYS | {"journal_mb", "resume_seconds", "resume_qps", "resume_requests"}


def test_quick_benchmark_prints_valid_json_rows() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--batches", "1,16"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {(r["field"], r["batch_size"], r["journal"]) for r in rows} == {
        (f, b, j) for f in ("F64", "EXP") for b in (1, 16) for j in (False, True)}
    # every F64 row over JSON and over the binary encoding; EXP over JSON only
    assert sorted((r["field"], r["encoding"]) for r in rows) == sorted(
        [("F64", "json"), ("F64", "f64le")] * 4 + [("EXP", "json")] * 4)
    for row in rows:
        binary = {"json_seconds", "speedup_over_json"} if row["encoding"] == "f64le" else set()
        assert set(row) == (JOURNAL_KEYS if row["journal"] else KEYS) | binary, row
        if binary:
            assert row["speedup_over_json"] == row["json_seconds"] / row["seconds"]
        assert row["answers_equal"] is True
        assert row["qps"] == row["queries"] / row["seconds"]
        assert row["overhead_ratio"] == row["seconds"] / row["inprocess_seconds"]
        # one request per batch: nothing retried, nothing sent twice
        assert row["requests"] == -(-row["queries"] // row["batch_size"])
        if row["journal"]:
            assert row["resume_requests"] == 0 and row["journal_mb"] > 0


def test_bad_arguments_exit_2() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--fields", "QQ"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--fields takes F64 and/or EXP" in proc.stderr
