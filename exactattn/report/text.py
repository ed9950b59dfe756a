"""Plain-text reports, one line per claim."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..claims import ClaimResult


def claim_line(result: ClaimResult) -> str:
    """``PASS  single_head_exact.two_token_identity  [Thm 4.1 ...]  64 instances  0.03 s  ...``"""
    c = result.claim
    verdict = "PASS" if result.holds else "FAIL"
    return (f"{verdict}  {c.id:<45} [{c.paper_ref}]  {result.outcome.instances:>4} checked  "
            f"{result.seconds:6.2f} s  {c.route}: {result.outcome.detail}")


def verify_summary(results: Sequence[ClaimResult], seconds: float) -> str:
    failed = [r for r in results if not r.holds]
    head = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    return f"{head} ({seconds:.2f} s)"


def learn_summary(info: dict[str, Any]) -> str:
    lines = [
        f"{info['label']} on {info['instance']} over {info['field']}",
        f"  queries      {info['queries']} (expected d + d^2 = {info['expected_queries']})"
        f"  by phase {info['queries_by_phase']}",
        f"  status       {info['status']}"
        + (f" (given: {'; '.join(info['hypotheses'])})" if info.get("hypotheses") else ""),
    ]
    if info.get("matches_truth") is not None:
        truth = info["matches_truth"]
        lines.append(f"  truth        {'recovered exactly' if truth is True else truth}")
    if info.get("max_abs_error") is not None:
        err = info["max_abs_error"]
        lines.append(f"  max error    W {err['W']:.3e}, v {err['v']:.3e} (first-order estimate "
                     f"of ||W error||_F: {info['W_error_bound']:.3e}, not a rigorous bound)")
    lines.append(f"  certificate  {info['certificate']['text']}")
    lines.append(f"  seconds      {info['seconds']['total']:.3f} total, "
                 f"{info['seconds']['oracle']:.3f} in the oracle, "
                 f"{info['seconds']['certificate']:.3f} certificate")
    return "\n".join(lines)
