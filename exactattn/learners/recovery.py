"""The frozen result every learner returns."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..errors import ExactattnError, InvalidEntryError
from ..fields import Array, Field, field_by_name
from ..oracle import Transcript, ValueOracle

__all__ = ["Recovery", "QuerySpan", "phase_counts", "STATUSES", "status_of"]

#: :meth:`Recovery.save` writes an F64 transcript longer than this to a ``.npz`` sidecar
SIDECAR_ENTRIES = 10_000

#: version of :meth:`Recovery.to_json`. 1 (no ``version`` key): a multi-head recovery
#: (``W`` of shape (m, d, d)) kept ``v`` and ``v_error_bound`` as (d, m), column h for
#: head h; 2: head first everywhere, ``v`` (m, d) with row h = v_h. Version 1 files are
#: converted on load.
JSON_VERSION = 2

#: the status words of a recovery, each with one meaning everywhere (API, JSON, CLI, PDF)
STATUSES: Mapping[str, str] = MappingProxyType({
    "exact": "equal to the hidden parameters for every oracle of the model class that the "
             "learner accepts, decided with == in an exact field; no further hypothesis",
    "exact_given": "equal to the hidden parameters provided that every listed hypothesis "
                   "holds; no query can confirm them",
    "float": "computed in floating point, never exact; error figures are first-order "
             "estimates of the rounding (Higham's gamma_n), not rigorous bounds",
    "approximate": "an estimate within a guaranteed bound (for example from a noisy oracle), "
                   "given the listed hypotheses",
})


def status_of(field_exact: bool, approximate: bool, hypotheses: tuple[str, ...]) -> str:
    """The status word: ``approximate`` > ``float`` > ``exact_given`` > ``exact``.

    >>> status_of(True, False, ()), status_of(True, False, ("rank(W) <= 2",))
    ('exact', 'exact_given')
    >>> status_of(False, False, ()), status_of(True, True, ())
    ('float', 'approximate')
    """
    if approximate:
        return "approximate"
    if not field_exact:
        return "float"
    return "exact_given" if hypotheses else "exact"


#: the keys every saved recovery has, with their JSON types (see :meth:`Recovery.to_json`)
_REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "label": (str,), "paper_ref": (str,), "field": (str,), "params": (dict,),
    "queries": (int,), "queries_by_phase": (dict,), "seed": (int,), "transcript": (dict,)}
#: the keys a saved recovery may have, with their JSON types
_OPTIONAL_KEYS: dict[str, tuple[type, ...]] = {
    "options": (dict,), "approximate": (bool,), "hypotheses": (list,), "status": (str,),
    "version": (int,)}


def _check_saved_shape(obj: dict[str, Any]) -> None:
    """The keys and JSON types of a saved recovery, before anything is built from it."""
    missing = [k for k in _REQUIRED_KEYS if k not in obj]
    if missing:
        raise InvalidEntryError(f"a saved recovery needs the keys {', '.join(missing)}")
    for key, types in [*_REQUIRED_KEYS.items(), *_OPTIONAL_KEYS.items()]:
        if key not in obj:
            continue
        value = obj[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise InvalidEntryError(
                f"the recovery's {key!r} is {json.dumps(value)[:40]}, expected a JSON "
                f"{'/'.join(t.__name__ for t in types)}")
    if not obj["params"]:
        raise InvalidEntryError("the recovery's 'params' is empty")
    version = obj.get("version", 1)
    if version < 1 or version > JSON_VERSION:
        raise InvalidEntryError(
            f"the recovery's format version is {version}; this exactattn reads versions 1 to "
            f"{JSON_VERSION} (a newer version was written by a newer exactattn: upgrade it)")
    if obj["queries"] < 0 or obj["seed"] < 0:
        raise InvalidEntryError("the recovery's 'queries' and 'seed' must be >= 0")
    counts = obj["queries_by_phase"].values()
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
        raise InvalidEntryError("the recovery's 'queries_by_phase' must map phases to counts >= 0")
    if not all(isinstance(h, str) and h for h in obj.get("hypotheses", [])):
        raise InvalidEntryError("the recovery's 'hypotheses' must be non-empty strings")


@dataclass(frozen=True, eq=False)
class Recovery:
    """What a learner recovered, how, and from which queries.

    Attributes
    ----------
    label, paper_ref : the result (stable label) and its paper numbers.
    field : the field the learner computed in.
    params : the recovered parameters by name (``"W"``, ``"v"``, ...), read-only arrays.
    queries : queries the learner spent; ``queries_by_phase`` splits them.
    transcript : the learner's own (query, answer) pairs, for replay.
    seed : the seed of every random choice.
    options : how the learner ran (probe kind, ...), JSON-serialisable.
    approximate : True when the parameters are estimates within a stated bound
        (for example from a noisy oracle), even if stored as exact rationals.
    hypotheses : every assumption the result rests on that no query can
        confirm (``"rank(W) <= 2"``, ``"every entry of W and v has denominator <= 1000"``,
        ...), beyond the model class named by the label.
    status : one of :data:`STATUSES`: ``exact`` only when the parameters equal
        the hidden ones for every oracle of the class the learner accepts;
        ``exact_given`` when that needs ``hypotheses``; ``float``; ``approximate``.
    """

    label: str
    paper_ref: str
    field: Field
    params: Mapping[str, Array]
    queries: int
    queries_by_phase: Mapping[str, int]
    transcript: Transcript
    seed: int
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    approximate: bool = False
    hypotheses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.hypotheses, str) or not all(
                isinstance(h, str) and h for h in self.hypotheses):
            raise InvalidEntryError("hypotheses must be a sequence of non-empty strings, got "
                                    f"{self.hypotheses!r}")
        object.__setattr__(self, "hypotheses", tuple(self.hypotheses))
        for A in self.params.values():
            A.flags.writeable = False
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "queries_by_phase", MappingProxyType(dict(self.queries_by_phase)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def status(self) -> str:
        """``exact``, ``exact_given``, ``float`` or ``approximate`` (see :data:`STATUSES`)."""
        return status_of(self.field.exact, self.approximate, self.hypotheses)

    def status_text(self) -> str:
        """The status with its hypotheses, as printed by the CLI."""
        if not self.hypotheses:
            return self.status
        return f"{self.status} (given: {'; '.join(self.hypotheses)})"

    @property
    def W(self) -> Array:
        return self.params["W"]

    @property
    def v(self) -> Array:
        return self.params["v"]

    @property
    def d(self) -> int:
        """The token dimension: from a stack of heads' W (m, d, d), else from v, else from
        the first matrix's row count."""
        if "W" in self.params and self.params["W"].ndim == 3:
            return int(self.params["W"].shape[2])
        if "v" in self.params:
            return int(self.params["v"].shape[0])
        for A in self.params.values():
            if A.ndim == 2:
                return int(A.shape[0])
        return int(self.options["d"])

    def to_json(self, *, transcript_file: str | None = None) -> dict[str, Any]:
        """A JSON-serialisable dict; exact elements are kept exactly (as strings).

        ``transcript_file``: an F64 transcript is written to that ``.npz`` file
        and referenced by its base name (see :meth:`save`)."""
        F = self.field
        return {
            "version": JSON_VERSION,
            "label": self.label,
            "paper_ref": self.paper_ref,
            "field": F.name,
            "status": self.status,
            "hypotheses": list(self.hypotheses),
            "params": {k: F.array_to_json(A) for k, A in self.params.items()},
            "queries": self.queries,
            "queries_by_phase": dict(self.queries_by_phase),
            "seed": self.seed,
            "options": dict(self.options),
            "approximate": self.approximate,
            "transcript": self.transcript.to_json(sidecar=transcript_file),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any], *, base: str | None = None) -> Recovery:
        """Inverse of :meth:`to_json`; ``base``: the directory of a transcript's ``.npz`` file.

        A malformed object raises InvalidEntryError naming the missing key or the bad value.
        """
        if not isinstance(obj, dict):
            raise InvalidEntryError(f"a saved recovery is a JSON object, got {type(obj).__name__}")
        _check_saved_shape(obj)
        try:
            return _parse(cls, obj, base)
        except ExactattnError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, IndexError,
                RecursionError) as exc:
            raise InvalidEntryError(f"a saved recovery is malformed: {type(exc).__name__}: "
                                    f"{str(exc)[:200]}") from None

    def sidecar_for(self, path: str) -> str | None:
        """Where a file saved at ``path`` keeps its transcript: ``path + ".transcript.npz"``
        for an F64 transcript of more than :data:`SIDECAR_ENTRIES` entries, else None (in
        the JSON itself)."""
        t = self.transcript
        return (path + ".transcript.npz" if t.field.name == "F64"
                and len(t) > SIDECAR_ENTRIES else None)

    def save(self, path: str) -> None:
        """JSON at ``path``; an F64 transcript of more than :data:`SIDECAR_ENTRIES` entries
        goes to ``path + ".transcript.npz"`` beside it (bounded memory, bit-exact)."""
        obj = self.to_json(transcript_file=self.sidecar_for(path))
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(obj, fh)

    @classmethod
    def load(cls, path: str) -> Recovery:
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(json.load(fh), base=os.path.dirname(os.path.abspath(path)))


def _parse(cls: type[Recovery], obj: dict[str, Any], base: str | None) -> Recovery:
    """The body of :meth:`Recovery.from_json` once the keys are known to be there."""
    F = field_by_name(obj["field"])
    params = {k: F.array_from_json(A) for k, A in obj["params"].items()}
    if obj.get("version", 1) == 1:
        params = _heads_first(params)
    return cls(
        label=obj["label"],
        paper_ref=obj["paper_ref"],
        field=F,
        params=params,
        queries=int(obj["queries"]),
        queries_by_phase=obj["queries_by_phase"],
        transcript=Transcript.from_json(obj["transcript"], base=base),
        seed=int(obj["seed"]),
        options=obj.get("options", {}),
        approximate=bool(obj.get("approximate", False)),
        hypotheses=tuple(obj.get("hypotheses", ())),
    )


def _heads_first(params: dict[str, Array]) -> dict[str, Array]:
    """A version 1 multi-head recovery in the version 2 layout: ``v`` and ``v_error_bound``
    of shape (d, m) (column h for head h) transposed to (m, d) (row h), beside ``W``
    (m, d, d). Other recoveries are returned unchanged."""
    W = params.get("W")
    if W is None or W.ndim != 3:
        return params
    m, d = int(W.shape[0]), int(W.shape[2])
    out = dict(params)
    for key in ("v", "v_error_bound"):
        if key in out:
            if out[key].shape != (d, m):
                raise InvalidEntryError(
                    f"the version 1 multi-head recovery's {key!r} has shape "
                    f"{out[key].shape}, expected (d, m) = ({d}, {m}) beside W of shape "
                    f"{W.shape}")
            out[key] = out[key].T.copy()
    return out


def phase_counts(oracle: ValueOracle, before: Mapping[str, int]) -> dict[str, int]:
    """Queries per phase spent since the snapshot ``before``."""
    now = oracle.queries_by_phase
    return {k: n - before.get(k, 0) for k, n in now.items() if n - before.get(k, 0)}


@dataclass(frozen=True)
class QuerySpan:
    """The queries an oracle answered since a learner began: counts and transcript.

    ``span = QuerySpan.begin(oracle)`` at the start of a learner, then
    ``span.recovery(label=..., ...)`` fills in the query count, the counts per
    phase and the learner's own transcript.
    """

    oracle: ValueOracle
    before: Mapping[str, int]
    total: int
    start: int

    @classmethod
    def begin(cls, oracle: ValueOracle) -> QuerySpan:
        return cls(oracle, oracle.queries_by_phase, oracle.queries, len(oracle.transcript))

    @property
    def queries(self) -> int:
        return self.oracle.queries - self.total

    def by_phase(self) -> dict[str, int]:
        return phase_counts(self.oracle, self.before)

    def transcript(self) -> Transcript:
        out: Transcript = self.oracle.transcript[self.start:]
        return out

    def recovery(self, **fields: Any) -> Recovery:
        """A Recovery of this span (``transcript=`` may override the learner's own)."""
        fields.setdefault("transcript", self.transcript())
        return Recovery(queries=self.queries, queries_by_phase=self.by_phase(), **fields)
