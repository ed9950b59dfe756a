"""Instance files: a hidden model written down as JSON, checked, built and learned.

The format is documented in ``docs/instances.md`` and, as a JSON Schema, in
``docs/instance.schema.json`` (a test checks that this module and the schema
accept and refuse the same examples). One object per file::

    {"model": "single_head", "field": "EXP",
     "W": [["1/3", "-2"], ["7", "0"]], "v": ["0", "5/2"]}

``model`` is one of :data:`MODELS`; ``field`` (optional) is ``EXP``, ``QQ`` or
``F64`` (see :data:`FIELDS` for which model allows which); every entry is a
JSON integer, a string holding an exact rational (``"1/3"``, ``"-2"``,
``"0.25"``: decimal strings are read exactly, 0.25 = 1/4) or, over ``F64``
only, a JSON float. A JSON float in an exact field is refused: 0.1 as a float
is 3602879701896397/36028797018963968, not 1/10, and silently learning that
number would be a wrong answer; write the string ``"0.1"``.

Every problem is an :class:`~exactattn.errors.InvalidEntryError` (or
:class:`~exactattn.errors.ShapeError`) whose message names the key, the
problem and what to write instead.

>>> spec = parse_instance({"model": "single_head", "field": "EXP",
...                        "W": [["1/3", "-2"], ["7", "0"]], "v": ["0", "5/2"]})
>>> spec.model_kind, spec.field.name, spec.label
('single_head', 'EXP', 'single_head_exact')
>>> result = learn_instance(spec)
>>> result.recovery.W.tolist(), result.matches_truth, result.certificate.holds
([[1/3, -2], [7, 0]], True, True)
>>> instance_to_json(spec.model) == spec.source
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import ExactattnError, InvalidEntryError, ShapeError
from .fields import EXP, F64, QQ, Field

__all__ = ["MODELS", "FIELDS", "LABELS", "InstanceSpec", "LearnedInstance", "parse_instance",
           "load_instance", "instance_to_json", "instance_size", "instance_spec",
           "learn_instance"]

#: the model kinds and the parameter keys each needs (besides ``model`` and ``field``)
MODELS: Mapping[str, tuple[str, ...]] = {
    "single_head": ("W", "v"),
    "biased_head": ("W", "c", "v", "beta"),
    "low_rank_head": ("W", "v", "rank"),
    "relu_ffn": ("A", "w"),
    "one_layer_transformer": ("W", "A", "w_o"),
    "multihead": ("heads",),
}
#: the fields each model kind may be written over; the first is the default. QQ is
#: refused for the softmax models: e^q is irrational for rational q != 0.
FIELDS: Mapping[str, tuple[str, ...]] = {
    "single_head": ("EXP", "F64"),
    "biased_head": ("EXP",),
    "low_rank_head": ("EXP",),
    "relu_ffn": ("QQ", "F64"),
    "one_layer_transformer": ("EXP",),
    "multihead": ("EXP",),
}
#: the result labels that can learn each model kind; the first is the default
LABELS: Mapping[str, tuple[str, ...]] = {
    "single_head": ("single_head_exact",),
    "biased_head": ("single_head_exact", "single_head_biased"),
    "low_rank_head": ("low_rank_adaptive", "single_head_exact"),
    "relu_ffn": ("relu_ffn_exact",),
    "one_layer_transformer": ("one_layer_reduction",),
    "multihead": ("multihead_canonical",),
}
#: optional keys every kind accepts (free text, ignored by the learners)
OPTIONAL = ("field", "name", "description")
#: a number string: an integer, a fraction p/q or a decimal (read exactly)
NUMBER = re.compile(r"^[+-]?[0-9]+(/[0-9]+|\.[0-9]+)?$")
#: the longest number string accepted (Python's own str -> int limit is 4300 digits)
MAX_NUMBER_CHARS = 4300
#: the largest instance accepted, d (or m) per axis: a larger one does not fit a JSON
#: file a person writes, and the exact learners would need hours
MAX_SIZE = 4096


@dataclass(frozen=True)
class InstanceSpec:
    """A checked instance file: the model kind, its field, the built model, the JSON.

    ``label`` is the default result label that learns it; ``rank`` is the
    declared rank of a ``low_rank_head`` (else None); ``source`` the checked
    JSON object (keys in the documented order).
    """

    model_kind: str
    field: Field
    model: Any
    label: str
    rank: int | None
    source: Mapping[str, Any]


def _bad(key: str, problem: str) -> InvalidEntryError:
    return InvalidEntryError(f"instance key {key!r}: {problem}")


def _number(x: Any, key: str, field: Field) -> Any:
    """One entry as an exact Fraction (exact fields) or a float (F64)."""
    if isinstance(x, bool):
        raise _bad(key, f"{json.dumps(x)} is a boolean, expected a number such as \"1/3\"")
    if isinstance(x, int):
        return Fraction(x) if field.exact else float(x)
    if isinstance(x, float):
        if field.exact:
            raise _bad(key, f"{x!r} is a JSON float in the exact field {field.name}; a float "
                            f"is a binary fraction, not the decimal you wrote: write the string "
                            f"\"{x!r}\" for the exact value, or use \"field\": \"F64\" where "
                            "the model allows it")
        if x != x or x in (float("inf"), float("-inf")):
            raise _bad(key, f"{x!r} is not finite")
        return x
    if isinstance(x, str):
        if len(x) > MAX_NUMBER_CHARS:
            raise _bad(key, f"a number string of {len(x)} characters, more than "
                            f"{MAX_NUMBER_CHARS}")
        if not NUMBER.match(x):
            raise _bad(key, f"{x[:40]!r} is not a rational such as \"1/3\", \"-2\" or \"0.25\"")
        if "/" in x and int(x.partition("/")[2]) == 0:
            raise _bad(key, f"{x!r} has denominator 0")
        q = Fraction(x)
        return q if field.exact else float(q)
    raise _bad(key, f"{json.dumps(x)[:40] if _jsonable(x) else type(x).__name__} is not a "
                    "number; expected a JSON integer, a string such as \"1/3\" or (F64 only) a "
                    "JSON float")


def _jsonable(x: Any) -> bool:
    try:
        json.dumps(x)
    except (TypeError, ValueError):
        return False
    return True


def _vector(x: Any, key: str, field: Field, length: int | None = None) -> list[Any]:
    if not isinstance(x, list):
        raise _bad(key, f"expected a list of numbers, got {type(x).__name__}")
    if length is not None and len(x) != length:
        raise ShapeError(f"instance key {key!r}: {len(x)} entries, expected {length}")
    if not x and length is None:
        raise _bad(key, "is empty")
    if len(x) > MAX_SIZE:
        raise ShapeError(f"instance key {key!r}: {len(x)} entries, more than {MAX_SIZE}")
    return [_number(e, f"{key}[{i}]", field) for i, e in enumerate(x)]


def _matrix(x: Any, key: str, field: Field, rows: int | None = None,
            cols: int | None = None) -> list[list[Any]]:
    if not isinstance(x, list) or not x or not all(isinstance(r, list) for r in x):
        raise _bad(key, "expected a non-empty list of rows (lists of numbers)")
    if rows is not None and len(x) != rows:
        raise ShapeError(f"instance key {key!r}: {len(x)} rows, expected {rows}")
    width = len(x[0]) if cols is None else cols
    out = []
    for i, row in enumerate(x):
        if len(row) != width:
            raise ShapeError(f"instance key {key!r}: row {i} has {len(row)} entries, expected "
                             f"{width}")
        out.append(_vector(row, f"{key}[{i}]", field))
    return out


def _square(x: Any, key: str, field: Field, d: int | None = None) -> list[list[Any]]:
    rows = _matrix(x, key, field, d, d)
    if len(rows) != len(rows[0]):
        raise ShapeError(f"instance key {key!r}: {len(rows)} x {len(rows[0])}, expected a "
                         "square d x d matrix")
    return rows


def _json_number(x: Any) -> Any:
    """An entry as the file holds it: an integer, a rational string, or a float (F64)."""
    if isinstance(x, float):
        return x
    q = Fraction(str(x))
    return int(q) if q.denominator == 1 else str(q)


def parse_instance(obj: Any) -> InstanceSpec:
    """Check an instance object (parsed JSON) and build its model.

    Raises :class:`~exactattn.errors.InvalidEntryError` or
    :class:`~exactattn.errors.ShapeError` naming the key and the problem.

    >>> parse_instance({"model": "single_head", "W": [[1]], "v": [0.5]})
    Traceback (most recent call last):
    ...
    exactattn.errors.InvalidEntryError: instance key 'v[0]': 0.5 is a JSON float in ...
    >>> parse_instance({"model": "relu_ffn", "A": [["1", "-1"]], "w": ["2", "3"]}).model.m
    2
    """
    from .models import (
        BiasedSingleHeadAttention,
        MultiHeadAttention,
        OneLayerTransformer,
        ReluFFN,
        SingleHeadAttention,
    )

    if not isinstance(obj, dict):
        raise InvalidEntryError(f"an instance must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("model")
    if kind not in MODELS:
        raise _bad("model", f"{json.dumps(kind)[:40] if _jsonable(kind) else kind!r} is not a "
                            f"model; choose one of {', '.join(MODELS)}")
    kind = str(kind)
    needed = MODELS[kind]
    unknown = sorted(set(obj) - set(needed) - set(OPTIONAL) - {"model"})
    if unknown:
        raise _bad(unknown[0], f"unknown key for a {kind} instance (expected "
                               f"{', '.join(needed)}, optionally {', '.join(OPTIONAL)})")
    missing = [k for k in needed if k not in obj]
    if missing:
        raise _bad(missing[0], f"missing; a {kind} instance needs {', '.join(needed)}")
    for key in ("name", "description"):
        if key in obj and not isinstance(obj[key], str):
            raise _bad(key, "expected a string")
    fname = obj.get("field", FIELDS[kind][0])
    if fname not in FIELDS[kind]:
        raise _bad("field", f"{json.dumps(fname)[:40] if _jsonable(fname) else fname!r} is not "
                            f"allowed for a {kind} instance; choose one of "
                            f"{', '.join(FIELDS[kind])}"
                   + (" (softmax answers are not rational: QQ cannot hold them)"
                      if fname == "QQ" else ""))
    field: Field = {"EXP": EXP, "QQ": QQ, "F64": F64}[fname]
    rank: int | None = None
    params: dict[str, Any] = {}
    if kind in ("single_head", "low_rank_head", "biased_head", "one_layer_transformer"):
        params["W"] = _square(obj["W"], "W", field)
        d = len(params["W"])
    if kind in ("single_head", "low_rank_head", "biased_head"):
        params["v"] = _vector(obj["v"], "v", field, d)
    if kind == "single_head":
        model: Any = SingleHeadAttention(params["W"], params["v"], field=field)
    elif kind == "low_rank_head":
        rank = obj["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank <= d:
            raise _bad("rank", f"{json.dumps(rank)[:40] if _jsonable(rank) else rank!r} must be "
                               f"an integer in [0, d] = [0, {d}]")
        model = SingleHeadAttention(params["W"], params["v"], field=field)
        from .linalg import rank as matrix_rank

        true_rank = matrix_rank(field, field.array(params["W"]))
        if true_rank > rank:
            raise _bad("rank", f"declares rank {rank}, but W has rank {true_rank}: the "
                               "low-rank learner's hypothesis rank(W) <= rank fails; declare "
                               f"\"rank\": {true_rank}")
    elif kind == "biased_head":
        params["c"] = _vector(obj["c"], "c", field, d)
        params["beta"] = _number(obj["beta"], "beta", field)
        model = BiasedSingleHeadAttention(params["W"], params["c"], params["v"],
                                          params["beta"], field=field)
    elif kind == "relu_ffn":
        A = _matrix(obj["A"], "A", field)
        w = _vector(obj["w"], "w", field, len(A[0]))
        params.update(A=A, w=w)
        model = ReluFFN(A, w, field=field)
    elif kind == "one_layer_transformer":
        A = _matrix(obj["A"], "A", field, rows=d)
        w_o = _vector(obj["w_o"], "w_o", field, len(A[0]))
        params.update(A=A, w_o=w_o)
        model = OneLayerTransformer(params["W"], A, w_o, field=field)
    else:  # multihead
        heads = obj["heads"]
        if not isinstance(heads, list) or not heads:
            raise _bad("heads", "expected a non-empty list of objects {\"W\": ..., \"v\": ...}")
        pairs, dh = [], None
        for h, head in enumerate(heads):
            if not isinstance(head, dict) or set(head) != {"W", "v"}:
                raise _bad(f"heads[{h}]", "expected an object with exactly the keys W and v")
            W = _square(head["W"], f"heads[{h}].W", field, dh)
            dh = len(W)
            pairs.append((W, _vector(head["v"], f"heads[{h}].v", field, dh)))
        params["heads"] = [{"W": W, "v": v} for W, v in pairs]
        model = MultiHeadAttention(pairs, field=field)
    source: dict[str, Any] = {"model": kind, "field": field.name}
    source.update(instance_to_json(model, rank=rank))
    for key in ("name", "description"):
        if key in obj:
            source[key] = obj[key]
    return InstanceSpec(kind, field, model, LABELS[kind][0], rank, source)


def load_instance(path: str | Path) -> InstanceSpec:
    """Read, check and build the instance file at ``path``.

    Every problem (no such file, not JSON, a bad key or entry) raises
    :class:`~exactattn.errors.InvalidEntryError` (or ShapeError) naming the file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidEntryError(f"cannot read instance file {path}: "
                                f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InvalidEntryError(f"instance file {path} is not UTF-8 text") from None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidEntryError(f"instance file {path} is not valid JSON ({exc})") from None
    try:
        return parse_instance(obj)
    except ExactattnError as exc:
        raise type(exc)(f"instance file {path}: {exc}") from None


def instance_to_json(model: Any, *, rank: int | None = None) -> dict[str, Any]:
    """The instance-file object of a model (the inverse of :func:`parse_instance`).

    ``rank``: write a ``single_head`` model as a ``low_rank_head`` with that
    declared rank.

    >>> from fractions import Fraction
    >>> from exactattn.models import ReluFFN
    >>> instance_to_json(ReluFFN([[Fraction(1, 2)], [0]], [-3]))
    {'model': 'relu_ffn', 'field': 'QQ', 'A': [['1/2'], [0]], 'w': [-3]}
    """
    from .models import (
        BiasedSingleHeadAttention,
        MultiHeadAttention,
        OneLayerTransformer,
        ReluFFN,
        SingleHeadAttention,
    )

    def vec(a: Any) -> list[Any]:
        return [_json_number(x) for x in a]

    def mat(A: Any) -> list[list[Any]]:
        return [vec(row) for row in A]

    out: dict[str, Any] = {"field": model.field.name}
    if isinstance(model, SingleHeadAttention):
        if rank is None:
            out.update(model="single_head", W=mat(model.W), v=vec(model.v))
        else:
            out.update(model="low_rank_head", W=mat(model.W), v=vec(model.v), rank=rank)
    elif isinstance(model, BiasedSingleHeadAttention):
        out.update(model="biased_head", W=mat(model.W), c=vec(model.c), v=vec(model.v),
                   beta=_json_number(model.beta))
    elif isinstance(model, ReluFFN):
        out.update(model="relu_ffn", A=mat(model.A), w=vec(model.w))
    elif isinstance(model, OneLayerTransformer):
        out.update(model="one_layer_transformer", W=mat(model.W), A=mat(model.A),
                   w_o=vec(model.w_o))
    elif isinstance(model, MultiHeadAttention):
        out.update(model="multihead",
                   heads=[{"W": mat(h.W), "v": vec(h.v)} for h in model.heads])
    else:
        raise InvalidEntryError(f"no instance-file form for {type(model).__name__}; one of "
                                f"{', '.join(MODELS)} expected")
    return {"model": out.pop("model"), **out}


def instance_size(model: Any) -> tuple[int, str]:
    """The numbers the instance-file form of ``model`` holds, and how they add up.

    Every parameter counts: all H heads of a multi-head model, the d x m layer
    and the m outputs of a ReLU network, the biases of a biased head. This is
    the size ``learn --save`` compares with its cap (a size read from d alone
    let H d^2 parameters through a d^2 cap).

    >>> from exactattn.models import MultiHeadAttention, ReluFFN
    >>> instance_size(MultiHeadAttention([([[1, 0], [0, 1]], [1, 2]), ([[2, 0], [0, 1]], [0, 1])]))
    (12, '2 heads x (2 x 2 + 2) = 12')
    >>> instance_size(ReluFFN([[1, 0, 2]], [1, 1, 1]))
    (6, '1 x 3 + 3 = 6')
    """
    from .models import (
        BiasedSingleHeadAttention,
        MultiHeadAttention,
        OneLayerTransformer,
        ReluFFN,
        SingleHeadAttention,
    )

    if isinstance(model, MultiHeadAttention):
        d, H = model.d, len(model.heads)
        total = sum(int(h.W.size) + int(h.v.size) for h in model.heads)
        return total, f"{H} heads x ({d} x {d} + {d}) = {total}"
    d = model.d
    if isinstance(model, SingleHeadAttention):
        parts = [f"{d} x {d}", f"{d}"]
        total = int(model.W.size) + int(model.v.size)
    elif isinstance(model, BiasedSingleHeadAttention):
        parts = [f"{d} x {d}", f"2 x {d}", "1"]  # W; c and v; beta
        total = int(model.W.size) + int(model.c.size) + int(model.v.size) + 1
    elif isinstance(model, ReluFFN):
        parts = [f"{d} x {model.m}", f"{model.m}"]
        total = int(model.A.size) + int(model.w.size)
    elif isinstance(model, OneLayerTransformer):
        parts = [f"{d} x {d}", f"{d} x {model.m}", f"{model.m}"]
        total = int(model.W.size) + int(model.A.size) + int(model.w_o.size)
    else:
        raise InvalidEntryError(f"no instance-file form for {type(model).__name__}; one of "
                                f"{', '.join(MODELS)} expected")
    return total, f"{' + '.join(parts)} = {total}"


def instance_spec(model: Any, *, rank: int | None = None) -> InstanceSpec:
    """The :class:`InstanceSpec` of a model built in code (a seeded instance, say).

    ``rank``: a single head declared as a ``low_rank_head`` of that rank.

    >>> from exactattn.models import ReluFFN
    >>> spec = instance_spec(ReluFFN([[1], [0]], [-3]))
    >>> spec.model_kind, spec.label, spec.field.name
    ('relu_ffn', 'relu_ffn_exact', 'QQ')
    """
    source = instance_to_json(model, rank=rank)
    kind = source["model"]
    return InstanceSpec(kind, model.field, model, LABELS[kind][0], rank, source)


@dataclass(frozen=True)
class LearnedInstance:
    """The outcome of :func:`learn_instance`: recovery, certificate, comparison with the truth.

    ``oracle`` is the oracle the learner held (its ``queries`` and ``seconds``).
    """

    spec: InstanceSpec
    recovery: Any
    certificate: Any
    matches_truth: bool
    oracle: Any = None

    @property
    def holds(self) -> bool:
        """The certificate holds and the recovery matches the hidden model: equal over an
        exact field; over F64 within the recovery's first-order error estimates (not a
        rigorous bound)."""
        return bool(self.certificate.holds and self.matches_truth)


def learn_instance(spec: InstanceSpec, label: str | None = None, *, seed: int = 0,
                   certificate_probes: int = 16) -> LearnedInstance:
    """Learn an instance with the learner of ``label`` (default ``spec.label``) and certify it.

    The learner holds only a :class:`~exactattn.oracle.ValueOracle` of the
    model; the recovery is then compared with the hidden model (equality of
    the parameters, or exact function equivalence where the result learns a
    canonical form: ReLU networks, multi-head attention) and certified by
    :func:`~exactattn.certificates.verify` (replay plus fresh probes).
    """
    from . import claims  # noqa: F401  (registers every result's certificate builder)
    from .certificates import verify
    from .oracle import ValueOracle

    label = spec.label if label is None else label
    if label not in LABELS[spec.model_kind]:
        raise InvalidEntryError(f"a {spec.model_kind} instance is learned by "
                                f"{' or '.join(LABELS[spec.model_kind])}, not {label!r}")
    model, F = spec.model, spec.field
    oracle = ValueOracle(model)
    truth: bool
    if spec.model_kind == "relu_ffn":
        from .learners import learn_relu_ffn
        from .models import ReluFFN, relu_equivalent

        rec = learn_relu_ffn(oracle, seed=seed)
        truth = relu_equivalent(ReluFFN(rec.params["A"], rec.params["w"], field=F), model)
    elif spec.model_kind == "one_layer_transformer":
        from .learners import learn_one_layer

        rec = learn_one_layer(oracle, seed=seed)
        truth = bool((rec.W == model.W).all())
    elif spec.model_kind == "multihead":
        from .checks.multihead import recovered_model
        from .learners import learn_multihead
        from .models import canonical
        from .models.multihead import same_heads

        rec = learn_multihead(oracle, heads=model.H, seed=seed)
        truth = same_heads(canonical(recovered_model(rec)), canonical(model))
    elif spec.model_kind == "biased_head":
        from .learners.biased_head import learn_biased_head

        rec = learn_biased_head(oracle, seed=seed)
        truth = all(bool((rec.params[k] == getattr(model, k)).all()) for k in ("W", "c", "v")) \
            and bool(rec.params["beta"].reshape(-1)[0] == model.beta)
    elif label == "low_rank_adaptive":
        from .learners import learn_low_rank

        rec = learn_low_rank(oracle, rank=spec.rank, method="adaptive", seed=seed)
        truth = bool((rec.W == model.W).all() and (rec.v == model.v).all())
    else:  # single_head_exact on a single head (or a low-rank head learned in full)
        from .learners import learn_single_head

        rec = learn_single_head(oracle, seed=seed)
        if F.exact:
            truth = bool((rec.W == model.W).all() and (rec.v == model.v).all())
        else:  # F64: within the learner's own first-order bound, never called exact
            import numpy as np

            truth = bool(np.abs(rec.W - model.W).max() <= float(rec.options["W_error_bound"])
                         and np.abs(rec.v - model.v).max() <= float(rec.options["v_error_bound"]))
    cert = verify(rec, oracle, probes=certificate_probes, seed=seed)
    return LearnedInstance(spec, rec, cert, truth, oracle)
