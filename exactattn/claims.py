"""The registry of checkable claims of the paper, run by ``exactattn verify``.

Each result of the paper is declared once with :func:`register_result`; its
claims live in ``exactattn/checks/<label>.py``. Every claim has a stable id
``<label>.<name>``, where ``<label>`` is the result's stable label
(``single_head_exact``, ...; see paper.md), the paper reference (v1 and v2
numbers), a statement in LaTeX (the proof companion in ``proofs/`` is
generated from it), the route to exactness it uses, and a ``check`` that runs
it on the built-in seeded instances and returns an :class:`Outcome`. A check
compares computed values; it can fail, and then it says on which instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .symbolic.recorder import NOT_VERIFIED, collecting, status_of_step, steps_of

__all__ = ["Claim", "Outcome", "ClaimResult", "Result", "REGISTRY", "RESULTS", "claim",
           "register_result", "reported_v2", "run_claims", "labels", "first_failure",
           "ROUTE_EXP", "PLUGIN_GROUP", "PLUGINS", "load_plugins"]

ROUTE_EXP = "exact (EXP)"


@dataclass(frozen=True)
class Outcome:
    """What a check found: whether the claim held, on how many instances, and a note."""

    holds: bool
    instances: int
    detail: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    label: str
    paper_ref: str
    title: str
    statement: str  # LaTeX
    route: str
    check: Callable[[], Outcome]


@dataclass(frozen=True)
class ClaimResult:
    """A claim, what its check found, how long it took, and the evidence it built.

    ``evidence`` holds what every recorded derivation returned while the check
    ran (:mod:`exactattn.symbolic.recorder`): the proof companion prints these
    objects. A claim holds when its check holds and no recorded step is
    NOT VERIFIED.
    """

    claim: Claim
    outcome: Outcome
    seconds: float
    evidence: tuple[Any, ...] = ()

    @property
    def unverified(self) -> list[str]:
        """One line per recorded step that did not verify (function, step number, why)."""
        out = []
        for rec in self.evidence:
            for k, step in enumerate(steps_of(rec.value)):
                if status_of_step(step) == NOT_VERIFIED:
                    out.append(f"{rec.function}({rec.arguments}) step {k + 1}: "
                               f"{getattr(step, 'why', type(step).__name__)}")
        return out

    @property
    def holds(self) -> bool:
        return self.outcome.holds and not self.unverified

    def to_json(self) -> dict[str, Any]:
        c = self.claim
        return {
            "id": c.id, "label": c.label, "paper_ref": c.paper_ref, "title": c.title,
            "statement": c.statement, "route": c.route, "holds": self.holds,
            "instances": self.outcome.instances, "detail": self.outcome.detail,
            "seconds": round(self.seconds, 4), "not_verified": self.unverified,
        }


@dataclass(frozen=True)
class Result:
    """A result of the paper: its stable label, references and companion material."""

    label: str
    paper_ref: str
    title: str  # LaTeX, the section title of the proof companion
    source: str = "exactattn"  # or "plugin <entry point name>" (see load_plugins)


REGISTRY: list[Claim] = []
RESULTS: dict[str, Result] = {}


def reported_v2(paper_ref: str) -> str:
    """A paper reference with every v2 number qualified as "v2, reported" (paper.md).

    The v1 numbers are read from the v1 text; the v2 numbers come from secondary
    summaries, so they are never printed as fact. Applied to every built-in claim
    and result at registration (verify, claims and the LaTeX print these).

    >>> reported_v2("Thm 5.2 (v1), Thm 5.1 (v2)"), reported_v2("§4.1 (v1, v2): FFN")
    ('Thm 5.2 (v1), Thm 5.1 (v2, reported)', '§4.1 (v1; v2, reported): FFN')
    >>> reported_v2(reported_v2("Thm 4.1 (v1), Thm 4.1 (v2)")), reported_v2("cf. v2 appendix")
    ('Thm 4.1 (v1), Thm 4.1 (v2, reported)', 'cf. v2 appendix (reported)')
    """
    import re

    ref = re.sub(r"\bv2 appendix\b(?! \(reported\))", "v2 appendix (reported)", paper_ref)
    return re.sub(r"\bv2\b(?!, reported| appendix)", "v2, reported",
                  ref.replace("(v1, v2)", "(v1; v2)"))


def register_result(label: str, *, paper_ref: str, title: str) -> Result:
    """Declare a result label before registering its claims."""
    if label in RESULTS:
        raise ValueError(f"result {label} registered twice")
    if _loading is None:  # built-in: v2 numbers as reported (a plugin's references are its own)
        paper_ref = reported_v2(paper_ref)
    RESULTS[label] = Result(label, paper_ref, title,
                            "exactattn" if _loading is None else f"plugin {_loading}")
    return RESULTS[label]


def claim(label: str, name: str, *, paper_ref: str, title: str, statement: str,
          route: str = ROUTE_EXP) -> Callable[[Callable[[], Outcome]], Callable[[], Outcome]]:
    """Register ``check`` as the claim ``label.name``."""

    def register(check: Callable[[], Outcome]) -> Callable[[], Outcome]:
        cid = f"{label}.{name}"
        if label not in RESULTS:
            raise ValueError(f"claim {cid}: register the result {label!r} first")
        if any(c.id == cid for c in REGISTRY):
            raise ValueError(f"claim {cid} registered twice")
        ref = reported_v2(paper_ref) if _loading is None else paper_ref
        REGISTRY.append(Claim(cid, label, ref, title, statement, route, check))
        return check

    return register


def labels() -> list[str]:
    """The result labels present in the registry, in registration order."""
    return list(dict.fromkeys(c.label for c in REGISTRY))


def run_claims(
    select: Iterable[str] | None = None,
    *,
    progress: Callable[[Claim, int, int], None] | None = None,
) -> list[ClaimResult]:
    """Run the claims whose id or label is in ``select`` (all by default).

    An exception inside a check is a failed claim, reported with its message.
    """
    chosen = [c for c in REGISTRY
              if select is None or c.id in set(select) or c.label in set(select)]
    results = []
    for k, c in enumerate(chosen):
        if progress is not None:
            progress(c, k, len(chosen))
        start = time.perf_counter()
        with collecting() as evidence:
            try:
                outcome = c.check()
            except Exception as exc:  # a crashing check is a failing check, with its reason
                outcome = Outcome(False, 0, f"check raised {type(exc).__name__}: {exc}")
        results.append(ClaimResult(c, outcome, time.perf_counter() - start, tuple(evidence)))
    return results


def first_failure(failures: list[str], checked: int, ok_detail: str) -> Outcome:
    """The outcome of a check that collected failure messages over ``checked`` cases."""
    if failures:
        return Outcome(False, checked, failures[0])
    return Outcome(True, checked, ok_detail)


#: the entry point group of user claims: a package that declares
#: ``[project.entry-points."exactattn.claims"] NAME = "package.module"`` has that module
#: imported (or, if the entry point names a function, called) when the registry loads;
#: it registers its results and claims with register_result and @claim
PLUGIN_GROUP = "exactattn.claims"
#: the plugins loaded: entry point name -> "package.module" (value of the entry point)
PLUGINS: dict[str, str] = {}
_loading: str | None = None  # the plugin being loaded (its results record it as their source)


def load_plugins() -> list[str]:
    """Load every ``exactattn.claims`` entry point not loaded yet; their names.

    A plugin that fails to load (an import error, a label registered twice,
    ...) does not stop the others: it becomes a result ``plugin_<name>`` with one
    claim ``load_<n>`` (n: a registry count, unique) that fails with the error, so
    ``exactattn verify`` reports it and exits 1.
    """
    import re
    from importlib.metadata import entry_points
    from types import ModuleType

    global _loading
    loaded = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        if ep.name in PLUGINS:
            continue
        PLUGINS[ep.name] = ep.value
        loaded.append(ep.name)
        _loading = ep.name
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as exc:  # reported as a failing claim, not a crash of the registry
            reason = f"plugin {ep.name} ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
            label = "plugin_" + re.sub(r"\W", "_", ep.name)
            if label not in RESULTS:
                register_result(label, paper_ref=f"plugin {ep.name}",
                                title=f"Plugin {ep.name}")

            def failed(reason: str = reason) -> Outcome:
                return Outcome(False, 0, reason)

            claim(label, f"load_{len(REGISTRY)}", paper_ref=f"plugin {ep.name}",
                  title=f"plugin {ep.name} loads",
                  statement=rf"\text{{the plugin {re.sub(r'[^A-Za-z0-9 ]', ' ', ep.name)} "
                            r"loads}", route="none")(failed)
        finally:
            _loading = None
    return loaded


# Every result's claims live in exactattn/checks/<label>.py; importing the
# package registers them (after the definitions above, which they use).
from . import checks  # noqa: E402,F401

load_plugins()  # user claims from installed packages, after the built-in ones
