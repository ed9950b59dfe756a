"""The frozen result every learner returns."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..fields import Array, Field, field_by_name
from ..oracle import Transcript, ValueOracle

__all__ = ["Recovery", "QuerySpan", "phase_counts"]


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
    exact : True when the parameters equal the hidden ones: an exact field and
        not approximate.
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

    def __post_init__(self) -> None:
        for A in self.params.values():
            A.flags.writeable = False
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "queries_by_phase", MappingProxyType(dict(self.queries_by_phase)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def exact(self) -> bool:
        return self.field.exact and not self.approximate

    @property
    def W(self) -> Array:
        return self.params["W"]

    @property
    def v(self) -> Array:
        return self.params["v"]

    @property
    def d(self) -> int:
        """The token dimension: from v, else from the first matrix's row count."""
        if "v" in self.params:
            return int(self.params["v"].shape[0])
        for A in self.params.values():
            if A.ndim == 2:
                return int(A.shape[0])
        return int(self.options["d"])

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict; exact elements are kept exactly (as strings)."""
        F = self.field
        return {
            "label": self.label,
            "paper_ref": self.paper_ref,
            "field": F.name,
            "exact": self.exact,
            "params": {k: F.array_to_json(A) for k, A in self.params.items()},
            "queries": self.queries,
            "queries_by_phase": dict(self.queries_by_phase),
            "seed": self.seed,
            "options": dict(self.options),
            "approximate": self.approximate,
            "transcript": self.transcript.to_json(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Recovery:
        F = field_by_name(obj["field"])
        return cls(
            label=obj["label"],
            paper_ref=obj["paper_ref"],
            field=F,
            params={k: F.array_from_json(A) for k, A in obj["params"].items()},
            queries=int(obj["queries"]),
            queries_by_phase=obj["queries_by_phase"],
            transcript=Transcript.from_json(obj["transcript"]),
            seed=int(obj["seed"]),
            options=obj.get("options", {}),
            approximate=bool(obj.get("approximate", False)),
        )

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh)

    @classmethod
    def load(cls, path: str) -> Recovery:
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(json.load(fh))


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
