"""Plain-text reports, one line per claim."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..claims import ClaimResult
from ..errors import InvalidEntryError


def _number(x: Any, name: str, where: str) -> float:
    """``x`` as a finite real number >= 0, or InvalidEntryError naming ``name``."""
    try:  # float() of a huge int overflows: not a figure a report can print either
        value = float(x) if isinstance(x, int | float) and not isinstance(x, bool) else math.nan
    except OverflowError:
        value = math.inf
    if not math.isfinite(value) or value < 0:
        raise InvalidEntryError(f"{where}: {name} must be a finite number >= 0, got "
                                f"{str(x)[:40]!r} ({type(x).__name__})")
    return value


def check_results(results: Any, seconds: Any, where: str) -> None:
    """Refuse anything but a sequence of :class:`~exactattn.claims.ClaimResult` and seconds.

    The reports take what :func:`exactattn.claims.run` returns; anything else
    (None, a dict, a list holding another object) is an InvalidEntryError that
    names the argument, instead of an AttributeError from inside a format string.

    >>> check_results([None], 1.0, "verify_summary")
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: verify_summary: results[0] is NoneType, not a ClaimResult \
(exactattn.claims.run returns them)
    """
    if not isinstance(results, list | tuple):
        raise InvalidEntryError(f"{where}: results must be a list of ClaimResult, got "
                                f"{type(results).__name__}")
    for k, r in enumerate(results):
        if not isinstance(r, ClaimResult):
            raise InvalidEntryError(f"{where}: results[{k}] is {type(r).__name__}, not a "
                                    "ClaimResult (exactattn.claims.run returns them)")
    _number(seconds, "seconds", where)


#: the keys of ``learn_summary``'s ``info`` (the CLI's ``learn --json`` object) and, for
#: the nested ones, the keys it reads inside them
_LEARN_KEYS = ("label", "instance", "field", "queries", "expected_queries", "queries_by_phase",
               "status", "certificate", "seconds")
_LEARN_SECONDS = ("total", "oracle", "certificate")


def claim_line(result: ClaimResult) -> str:
    """``PASS  single_head_exact.two_token_identity  [Thm 4.1 ...]  64 instances  0.03 s  ...``"""
    check_results([result], 0, "claim_line")
    c = result.claim
    verdict = "PASS" if result.holds else "FAIL"
    return (f"{verdict}  {c.id:<45} [{c.paper_ref}]  {result.outcome.instances:>4} checked  "
            f"{result.seconds:6.2f} s  {c.route}: {result.outcome.detail}")


def verify_summary(results: Sequence[ClaimResult], seconds: float) -> str:
    check_results(results, seconds, "verify_summary")
    failed = [r for r in results if not r.holds]
    head = f"{len(results) - len(failed)} passed, {len(failed)} failed"
    return f"{head} ({seconds:.2f} s)"


def _check_learn_info(info: Any) -> None:
    """The keys and types ``learn_summary`` reads, or InvalidEntryError naming the first bad one."""
    where = "learn_summary"
    if not isinstance(info, dict):
        raise InvalidEntryError(f"{where} takes the learn command's info dict, got "
                                f"{type(info).__name__}")
    missing = [k for k in _LEARN_KEYS if k not in info]
    if missing:
        raise InvalidEntryError(f"{where}: info has no {', '.join(missing)}")
    if not isinstance(info["certificate"], dict) or "text" not in info["certificate"]:
        raise InvalidEntryError(f"{where}: info['certificate'] must be a dict with 'text'")
    if not isinstance(info["seconds"], dict):
        raise InvalidEntryError(f"{where}: info['seconds'] must be a dict of "
                                f"{', '.join(_LEARN_SECONDS)}")
    for k in _LEARN_SECONDS:
        _number(info["seconds"].get(k), f"info['seconds'][{k!r}]", where)
    if info.get("hypotheses") is not None and not (
            isinstance(info["hypotheses"], list | tuple)
            and all(isinstance(h, str) for h in info["hypotheses"])):
        raise InvalidEntryError(f"{where}: info['hypotheses'] must be a list of strings")
    if info.get("max_abs_error") is not None:
        err = info["max_abs_error"]
        if not isinstance(err, dict):
            raise InvalidEntryError(f"{where}: info['max_abs_error'] must be a dict of W, v")
        for k in ("W", "v"):
            _number(err.get(k), f"info['max_abs_error'][{k!r}]", where)
        _number(info.get("W_error_bound"), "info['W_error_bound']", where)


def learn_summary(info: dict[str, Any]) -> str:
    _check_learn_info(info)
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
