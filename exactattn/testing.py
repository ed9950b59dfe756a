"""Pytest helpers: pin a recovery exactly in a user's own test file.

Three lines pin a head that you wrote down as an instance file
(docs/instances.md)::

    from exactattn.testing import assert_recovers

    def test_my_head():
        assert_recovers("my_head.json", golden="my_head.golden.json")

* :func:`assert_recovers` learns the instance (the learner holds only an
  oracle), asserts that the recovery equals the hidden model and that its
  certificate holds, and, with ``golden=``, that the whole recovery (parameters,
  status, hypotheses, query counts and the transcript, query by query) equals
  the golden file exactly.
* :func:`assert_matches_golden` is that last comparison for any recovery. A
  missing golden file is written and the assertion fails once ("created;
  review it and commit it"), as snapshot tools do; set the environment
  variable ``EXACTATTN_UPDATE_GOLDEN=1`` to rewrite golden files on purpose.
* :func:`assert_replays` re-checks a file written by ``exactattn learn
  --save`` or :meth:`Recovery.save <exactattn.learners.recovery.Recovery.save>`:
  the transcript is replayed against the saved model and, when the file holds
  the hidden instance, fresh queries are asked of it.

Each helper raises ``AssertionError`` with a message naming the file and what
differs, so pytest reports it as a test failure. A worked example is in
docs/guide.md, section 8.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["assert_recovers", "assert_replays", "assert_matches_golden", "UPDATE_GOLDEN_ENV"]

#: set this environment variable to 1 to rewrite golden files instead of comparing
UPDATE_GOLDEN_ENV = "EXACTATTN_UPDATE_GOLDEN"


def _first_difference(a: Any, b: Any, at: str = "") -> str | None:
    """The path of the first place where two JSON values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{at}.{key} ({'missing in the recovery' if key not in a else 'new'})"
            found = _first_difference(a[key], b[key], f"{at}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{at} (length {len(b)} in the golden file, {len(a)} now)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{at}[{i}]")
            if found:
                return found
        return None
    if a != b or type(a) is not type(b):
        return f"{at}: golden {json.dumps(b)[:60]}, now {json.dumps(a)[:60]}"
    return None


def assert_matches_golden(recovery: Any, golden: str | os.PathLike[str]) -> None:
    """Assert that ``recovery.to_json()`` equals the golden file exactly (JSON equality).

    A missing file is written, then the assertion fails once so that the new
    file is reviewed; with ``EXACTATTN_UPDATE_GOLDEN=1`` the file is rewritten.
    A golden file of Recovery JSON version 1 is compared in today's format, and
    a paper reference that differs only by the qualification of its v2 numbers
    ("v2, reported", :func:`exactattn.claims.reported_v2`) is not a difference.
    """
    path = Path(golden)
    now = json.loads(json.dumps(recovery.to_json()))  # tuples -> lists, as the file holds
    if os.environ.get(UPDATE_GOLDEN_ENV) == "1" or not path.exists():
        existed = path.exists()
        path.write_text(json.dumps(now, indent=1) + "\n", encoding="utf-8")
        if not existed:
            raise AssertionError(f"golden file {path} created ({recovery.label}, "
                                 f"{recovery.queries} queries); review it, commit it and rerun")
        return
    try:
        pinned = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssertionError(f"cannot read golden file {path}: {exc}") from None
    if isinstance(pinned, dict) and "params" in pinned and "version" not in pinned:
        # Recovery JSON version 1 (before the head-first multi-head layout): compared in
        # today's format, so that an old golden file pins the same recovery
        from .errors import ExactattnError
        from .learners.recovery import Recovery

        try:
            old = Recovery.from_json(pinned, base=str(path.parent.resolve()))
        except ExactattnError as exc:
            raise AssertionError(f"cannot read golden file {path}: {exc}") from None
        pinned = json.loads(json.dumps(old.to_json()))
    if isinstance(pinned, dict) and isinstance(pinned.get("paper_ref"), str):
        # a golden file written before v2 numbers were qualified ("v2, reported"):
        # that qualification alone is not a change of the recovery
        from .claims import reported_v2

        if now.get("paper_ref") == reported_v2(pinned["paper_ref"]):
            pinned["paper_ref"] = now["paper_ref"]
    where = _first_difference(now, pinned)
    if where is not None:
        raise AssertionError(f"{recovery.label} no longer matches golden file {path}: "
                             f"first difference at {where.lstrip('.')} (rerun with "
                             f"{UPDATE_GOLDEN_ENV}=1 to accept the new recovery)")


def assert_recovers(instance_file: str | os.PathLike[str], *, label: str | None = None,
                    golden: str | os.PathLike[str] | None = None, seed: int = 0,
                    certificate_probes: int = 16, status: str | None = None) -> Any:
    """Learn an instance file; assert the recovery equals it and its certificate holds.

    Parameters
    ----------
    instance_file : an instance file (docs/instances.md).
    label : the result whose learner runs (default: the model's first label).
    golden : a golden file: the recovery must equal it exactly (see
        :func:`assert_matches_golden`).
    seed, certificate_probes : the learner's seed and the certificate's fresh queries.
    status : if given, the recovery's status must be this word (``exact``, ...).

    Returns the :class:`~exactattn.instance_files.LearnedInstance`.
    """
    from .errors import ExactattnError
    from .instance_files import learn_instance, load_instance

    try:
        result = learn_instance(load_instance(os.fspath(instance_file)), label, seed=seed,
                                certificate_probes=certificate_probes)
    except ExactattnError as exc:
        raise AssertionError(f"{instance_file}: {exc}") from None
    rec, cert = result.recovery, result.certificate
    if not result.matches_truth:
        raise AssertionError(f"{instance_file}: the {rec.label} recovery DIFFERS from the "
                             f"hidden model (status {rec.status_text()})")
    if not cert.holds:
        raise AssertionError(f"{instance_file}: {cert}")
    if status is not None and rec.status != status:
        raise AssertionError(f"{instance_file}: status {rec.status_text()}, expected {status}")
    if golden is not None:
        assert_matches_golden(rec, golden)
    return result


def assert_replays(saved_file: str | os.PathLike[str], *, certificate_probes: int = 16,
                   seed: int = 1) -> list[Any]:
    """Assert that a saved recovery replays: its transcript, then its hidden instance if known.

    Accepts every file that ``exactattn learn --save`` or ``Recovery.save``
    writes (the same reading as ``exactattn replay``). Fails when a check
    fails or when nothing at all was checked. Returns the certificates.
    """
    from .cli import UsageError, replay_holds, replay_saved
    from .errors import ExactattnError

    path = os.fspath(saved_file)
    try:
        _, pairs = replay_saved(path, certificate_probes=certificate_probes, seed=seed)
    except (UsageError, ExactattnError) as exc:
        raise AssertionError(str(exc)) from None
    certs = [c for _, c in pairs]
    if not replay_holds(certs):
        failed = [c for c in certs if c.checked > 0 and not c.holds]
        raise AssertionError(f"{path}: {failed[0]}" if failed else
                             f"{path}: nothing was checked (no transcript, no instance)")
    return certs
