"""Smoke test: ``benchmarks/noisy.py --quick`` runs and prints valid rows.

Every stdout line is a JSON object with a ``section``; the evidence rows
report no violation of the guaranteed bounds (decided exactly by the
script), the naive rows measure the unclipped inverse, the curve rows carry
the bound and the observed errors, and ``--quick`` writes no file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from exactattn.oracle import ADVERSARIES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "noisy.py"

EVIDENCE_KEYS = {
    "section", "adversary", "count", "instances_per_d", "violations", "bound_above_epsilon",
    "worst_ratio_entry", "worst_ratio_frobenius", "worst_ratio_v", "certificates_checked",
    "certificates_failed", "seconds",
}
NAIVE_KEYS = {
    "section", "adversary", "tolerance_factor", "runs", "runs_failed", "failure_rate",
    "entries", "entries_failed", "runs_above_clipped_bound", "above_clipped_bound_rate",
    "naive_worst_entry_error", "clipped_worst_entry_error", "clipped_violations",
    "ratio_mean_error_naive_over_clipped", "baseline",
}
CURVE_KEYS = {
    "section", "d", "epsilon_W", "tau_f", "tau_v", "bound_entry", "bound_frobenius",
    "max_entry_error", "max_frobenius_error", "worst_adversary", "worst_ratio_entry",
    "worst_ratio_frobenius", "violations", "per_adversary_entry_error",
}
BASELINE_KEYS = {"section", "d", "noisy_seconds", "baseline", "baseline_seconds",
                 "ratio_vs_baseline"}


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_quick_benchmark_prints_valid_json_rows(tmp_path: Path) -> None:
    before = sorted(p.name for p in (ROOT / "docs").iterdir())
    proc = run("--quick", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows: list[dict[str, Any]] = [json.loads(line) for line in proc.stdout.splitlines()
                                  if line.strip()]
    assert rows and all(isinstance(r, dict) for r in rows)
    by_section: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_section.setdefault(r["section"], []).append(r)
    assert set(by_section) == {"evidence", "naive", "curve", "baseline"}

    evidence = by_section["evidence"]
    assert [r["adversary"] for r in evidence] == [*ADVERSARIES, "all"]
    for r in evidence:
        missing = EVIDENCE_KEYS - set(r)
        assert not missing, (r["adversary"], sorted(missing))
        assert r["violations"] == 0 and r["bound_above_epsilon"] == 0
        assert r.get("learner_errors", 0) == 0
        assert r["certificates_failed"] == 0 and r["certificates_checked"] > 0
        assert r["count"] > 0
        assert 0 <= r["worst_ratio_entry"] <= 1 and 0 <= r["worst_ratio_frobenius"] <= 1
        assert 0 <= r["worst_ratio_v"] <= 1
    total = evidence[-1]
    assert total["count"] == len(ADVERSARIES) * total["instances"]

    naive = by_section["naive"]
    assert {(r["adversary"], r["tolerance_factor"]) for r in naive} == \
        {(a, k) for a in ADVERSARIES for k in (1, 10, 100, 1000)}
    for r in naive:
        assert not NAIVE_KEYS - set(r), sorted(NAIVE_KEYS - set(r))
        assert r["clipped_violations"] == 0
        assert 0 <= r["runs_failed"] <= r["runs"] and 0 <= r["entries_failed"] <= r["entries"]
    # the reason the algorithm exists: the naive inverse fails somewhere
    assert sum(r["runs_failed"] for r in naive) > 0

    for r in by_section["curve"]:
        assert not CURVE_KEYS - set(r), sorted(CURVE_KEYS - set(r))
        assert r["violations"] == 0
        assert r["max_entry_error"] <= r["bound_entry"]
        assert r["max_frobenius_error"] <= r["bound_frobenius"]
        assert set(r["per_adversary_entry_error"]) == set(ADVERSARIES)
    for r in by_section["baseline"]:
        assert not BASELINE_KEYS - set(r), sorted(BASELINE_KEYS - set(r))
        assert r["noisy_seconds"] > 0 and r["baseline_seconds"] > 0 and r["ratio_vs_baseline"] > 0
    # --quick writes no file
    assert sorted(p.name for p in (ROOT / "docs").iterdir()) == before
    assert list(tmp_path.iterdir()) == []


def test_curve_json_and_plot_from(tmp_path: Path) -> None:
    out = tmp_path / "curve.json"
    proc = run("--quick", "--sections", "curve", "--curve-out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["label"] == "noisy_oracle" and [b["d"] for b in data["dims"]] == [4]
    for point in data["dims"][0]["points"]:
        assert set(point["per_adversary"]) == set(ADVERSARIES)
        assert point["max_entry_error"] <= point["bound_entry"]
    png = tmp_path / "replot.png"
    proc = run("--plot-from", str(out), "--plot-out", str(png))
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the optional `plot` extra: without it the script says so
        assert proc.returncode == 1 and "matplotlib is not installed" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert proc.stdout == ""


def test_bad_section_is_a_usage_error() -> None:
    proc = run("--sections", "nothing")
    assert proc.returncode == 2 and proc.stdout == ""
