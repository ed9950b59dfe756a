"""Bad input gets a clear error: the right type, and a message naming the problem.

Covers the model's parameters (W, v), queries to the oracle and to the model
directly (single queries and batch entries), and the learner's options.
A rejected query is never counted, recorded or passed to the hidden function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from exactattn.errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    ShapeError,
)
from exactattn.fields import EXP, F64, QQ, Field
from exactattn.learners.single_head import learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle

FIELDS = [EXP, F64]


def ids(field: Field) -> str:
    return field.name


def good_W(field: Field) -> list[list[Any]]:
    return [[1, 2], [3, 4]] if field.exact else [[1.0, 2.0], [3.0, 4.0]]


def good_v(field: Field) -> list[Any]:
    return [1, -1] if field.exact else [1.0, -1.0]


class Spy:
    """A single head behind a counter of real calls (model interface)."""

    def __init__(self, field: Field) -> None:
        self.head = SingleHeadAttention(good_W(field), good_v(field), field=field)
        self.field = field
        self.d = 2
        self.calls = 0

    def __call__(self, X: Any) -> Any:
        self.calls += 1
        return self.head(X)


# -- W and v ------------------------------------------------------------------------
@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_W_not_square(field: Field) -> None:
    W = [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ShapeError, match=r"W has shape \(2, 3\)"):
        SingleHeadAttention(W, good_v(field), field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_W_square_but_not_d_by_d(field: Field) -> None:
    W = np.eye(3).tolist() if not field.exact else [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    with pytest.raises(ShapeError, match=r"(?=.*\bW\b)(?=.*\bv\b)(?=.*(3 x 3|\(3, 3\)))"):
        SingleHeadAttention(W, good_v(field), field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_W_one_dimensional(field: Field) -> None:
    with pytest.raises(ShapeError, match=r"W has shape \(2,\)"):
        SingleHeadAttention(good_v(field), good_v(field), field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
@pytest.mark.parametrize("n", [1, 3])
def test_v_of_another_length(field: Field, n: int) -> None:
    # W is 2 x 2 and v has n != 2 entries: the message must name v and its length
    v = [field(k + 1) for k in range(n)]
    with pytest.raises(ShapeError, match=rf"(?=.*\bv\b)(?=.*\b{n}\b)"):
        SingleHeadAttention(good_W(field), v, field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_v_not_a_vector(field: Field) -> None:
    with pytest.raises(ShapeError, match=r"v has shape \(1, 2\).*expected a vector"):
        SingleHeadAttention(good_W(field), [good_v(field)], field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_empty_W_and_v(field: Field) -> None:
    # d = 0: the message says the dimension must be at least 1
    with pytest.raises(ShapeError, match="empty.*d must be at least 1"):
        SingleHeadAttention(np.zeros((0, 0)), [], field=field)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "ndarray"])
def test_non_finite_W_in_F64(bad: float, as_array: bool) -> None:
    W: Any = [[1.0, 2.0], [bad, 4.0]]
    if as_array:
        W = np.array(W)
    with pytest.raises(InvalidEntryError, match=r"W\[1, 0\].*not finite"):
        SingleHeadAttention(W, [1.0, 2.0], field=F64)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "ndarray"])
def test_non_finite_v_in_F64(bad: float, as_array: bool) -> None:
    v: Any = [1.0, bad]
    if as_array:
        v = np.array(v)
    with pytest.raises(InvalidEntryError, match=r"v\[1\].*not finite"):
        SingleHeadAttention([[1.0, 2.0], [3.0, 4.0]], v, field=F64)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
@pytest.mark.parametrize("bad", ["2", None], ids=["str", "None"])
def test_bad_entry_in_W(field: Field, bad: Any) -> None:
    W = good_W(field)
    W[0][1] = bad
    with pytest.raises(InvalidEntryError, match=rf"W\[0, 1\].*{bad!r}.*not a number"):
        SingleHeadAttention(W, good_v(field), field=field)


@pytest.mark.parametrize("field", FIELDS, ids=ids)
@pytest.mark.parametrize("bad", ["a", None], ids=["str", "None"])
def test_bad_entry_in_v(field: Field, bad: Any) -> None:
    v = good_v(field)
    v[0] = bad
    with pytest.raises(InvalidEntryError, match=rf"v\[0\].*{bad!r}.*not a number"):
        SingleHeadAttention(good_W(field), v, field=field)


def test_float_entry_in_exact_W() -> None:
    with pytest.raises(InvalidEntryError, match=r"W\[0, 0\].*float 1.5 is not an exact number"):
        SingleHeadAttention([[1.5, 2], [3, 4]], [1, 2], field=EXP)


def test_W_of_another_field_in_EXP() -> None:
    W = np.array([[F64(1.0), 0], [0, 1]], dtype=object)
    with pytest.raises(InvalidEntryError, match=r"W\[0, 0\].*not an exact number"):
        SingleHeadAttention(W, [1, 2], field=EXP)


def test_W_is_None() -> None:
    with pytest.raises(InvalidEntryError, match="W is None"):
        SingleHeadAttention(None, [1, 2], field=EXP)


# -- queries -----------------------------------------------------------------------
@pytest.fixture(
    params=[(f, how) for f in FIELDS for how in ("oracle", "model")],
    ids=lambda p: f"{p[0].name}-{p[1]}",
)
def asker(request: Any) -> Any:
    """(ask, field, after): ask(X) via the oracle or the model; after() checks nothing leaked."""
    field, how = request.param
    if how == "model":
        head = SingleHeadAttention(good_W(field), good_v(field), field=field)
        return head, field, lambda: None
    spy = Spy(field)
    oracle = ValueOracle(spy)

    def nothing_leaked() -> None:
        assert oracle.queries == 0 and len(oracle.transcript) == 0 and spy.calls == 0

    return oracle, field, nothing_leaked


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("as_array", [False, True], ids=["list", "ndarray"])
def test_non_finite_query_in_F64(bad: float, as_array: bool) -> None:
    spy = Spy(F64)
    oracle = ValueOracle(spy)
    X: Any = [[1.0, 0.0], [0.0, bad]]
    if as_array:
        X = np.array(X)
    for ask in (oracle, spy.head):
        with pytest.raises(InvalidEntryError, match=r"query\[1, 1\].*not finite"):
            ask(X)
        with pytest.raises(InvalidEntryError, match=r"not finite"):
            ask.batch([X])
    assert oracle.queries == 0 and spy.calls == 0


@pytest.mark.parametrize("bad", ["1", None], ids=["str", "None"])
def test_bad_entry_in_query(asker: Any, bad: Any) -> None:
    ask, field, after = asker
    X = [[1, 0], [0, bad]]
    with pytest.raises(InvalidEntryError, match=rf"query\[1, 1\].*{bad!r}.*not a number"):
        ask(X)
    with pytest.raises(InvalidEntryError, match=rf"batch\[1\]\[1, 1\].*{bad!r}.*not a number"):
        ask.batch([[[1, 0]], X])
    after()


def test_float_entry_in_exact_query() -> None:
    oracle = ValueOracle(Spy(EXP))
    with pytest.raises(InvalidEntryError, match=r"query\[0, 0\].*float 0.5 is not an exact number"):
        oracle([[0.5, 1]])


@pytest.mark.parametrize("X", [None, "x"], ids=["None", "str"])
def test_query_is_not_a_matrix(asker: Any, X: Any) -> None:
    ask, _field, after = asker
    with pytest.raises(InvalidEntryError, match=r"query is (None|a string), expected an N x 2"):
        ask(X)
    after()


@pytest.mark.parametrize("empty", ["list", "0x2"])
def test_empty_query(asker: Any, empty: str) -> None:
    ask, field, after = asker
    X: Any = [] if empty == "list" else np.empty((0, 2), dtype=field.dtype)
    with pytest.raises(ShapeError, match=r"query is empty.*at least one token"):
        ask(X)
    after()


def test_query_of_the_wrong_width(asker: Any) -> None:
    ask, field, after = asker
    X = [[1, 0, 0]] if field.exact else [[1.0, 0.0, 0.0]]
    with pytest.raises(ShapeError, match=r"query has width 3, expected d = 2"):
        ask(X)
    with pytest.raises(ShapeError, match=r"batch\[1\] has width 3, expected d = 2"):
        ask.batch([[[1, 0]], X])
    after()


def test_f64_batch_array_of_the_wrong_width() -> None:
    oracle = ValueOracle(Spy(F64))
    with pytest.raises(ShapeError, match=r"width 3, expected d = 2"):
        oracle.batch(np.ones((4, 2, 3)))
    assert oracle.queries == 0


@pytest.mark.parametrize("empty", ["list", "0x2", "tuple"])
def test_zero_length_batch_entry(asker: Any, empty: str) -> None:
    ask, field, after = asker
    entry: Any = {"list": [], "tuple": (), "0x2": np.empty((0, 2), dtype=field.dtype)}[empty]
    with pytest.raises(ShapeError, match=r"batch\[1\] is empty.*at least one token"):
        ask.batch([[[1, 0]], entry])
    after()


def test_zero_length_queries_in_an_f64_batch_array() -> None:
    oracle = ValueOracle(Spy(F64))
    with pytest.raises(ShapeError, match=r"empty.*N >= 1"):
        oracle.batch(np.empty((3, 0, 2)))
    assert oracle.queries == 0


@pytest.mark.parametrize(
    ("X", "shape"),
    [([1, 0], r"\(2,\)"), ([[[1, 0]]], r"\(1, 1, 2\)"), ([[[1, 0], [0, 1]]] * 2, r"\(2, 2, 2\)")],
    ids=["1-D", "3-D", "3-D-batch-shaped"],
)
def test_single_query_must_be_2d(asker: Any, X: Any, shape: str) -> None:
    ask, field, after = asker
    Xa = field.array(X)
    for given in (X, Xa):
        with pytest.raises(ShapeError, match=rf"query has shape {shape}, expected a 2-D N x 2"):
            ask(given)
    after()


def test_a_batch_must_be_a_sequence() -> None:
    oracle = ValueOracle(Spy(EXP))
    with pytest.raises(InvalidEntryError, match="a batch is a sequence of queries"):
        oracle.batch(5)
    assert oracle.queries == 0


# -- the learner ---------------------------------------------------------------------
@pytest.mark.parametrize("field", FIELDS, ids=ids)
def test_unknown_probes(field: Field) -> None:
    spy = Spy(field)
    oracle = ValueOracle(spy)
    with pytest.raises(
        InvalidEntryError,
        match=r"probes must be 'deterministic' or 'gaussian', "
        r"got 'other'",
    ):
        learn_single_head(oracle, probes="other")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("oracle_field", "learner_field"),
    [(EXP, F64), (F64, EXP), (EXP, QQ)],
    ids=["EXP-vs-F64", "F64-vs-EXP", "EXP-vs-QQ"],
)
def test_oracle_field_differs_from_learner_field(oracle_field: Field, learner_field: Field) -> None:
    spy = Spy(oracle_field)
    oracle = ValueOracle(spy)
    with pytest.raises(
        IncompatibleFieldError,
        match=rf"oracle is over {oracle_field.name}, expected {learner_field.name}",
    ):
        learn_single_head(oracle, field=learner_field)
    # refused before a single query was spent
    assert oracle.queries == 0 and spy.calls == 0


def test_every_error_here_is_an_exactattn_error() -> None:
    for err in (ShapeError, InvalidEntryError, IncompatibleFieldError):
        assert issubclass(err, ExactattnError)
    assert issubclass(ShapeError, ValueError) and issubclass(IncompatibleFieldError, TypeError)


# -- instance builders (issue 10, defect 2.3) ---------------------------------------
def _builders() -> list[tuple[str, Any]]:
    from exactattn.checks.low_rank import low_rank_head
    from exactattn.checks.membership_queries import membership_instance
    from exactattn.checks.one_layer_reduction import (
        one_layer_instance,
        residual_instance,
        skip_head_instance,
    )
    from exactattn.checks.relu_ffn_exact import relu_ffn_instance
    from exactattn.instances import noisy_single_head_instance, single_head_instance
    from exactattn.models.multihead import random_multihead

    return [
        ("low_rank_head rank > d", lambda: low_rank_head(2, 3, 0)),
        ("low_rank_head negative rank", lambda: low_rank_head(3, -1, 0)),
        ("low_rank_head negative seed", lambda: low_rank_head(3, 1, -1)),
        ("low_rank_head d = 0", lambda: low_rank_head(0, 0, 0)),
        ("single_head_instance negative seed", lambda: single_head_instance(2, -1, field=EXP)),
        ("single_head_instance d = 0", lambda: single_head_instance(0, 0, field=EXP)),
        ("noisy instance negative seed", lambda: noisy_single_head_instance(2, -3)),
        ("relu_ffn_instance m = 0", lambda: relu_ffn_instance(2, 0, 0)),
        ("relu_ffn_instance negative m", lambda: relu_ffn_instance(2, -1, 0)),
        ("relu_ffn_instance float d", lambda: relu_ffn_instance(2.5, 2, 0)),  # type: ignore[arg-type]
        ("one_layer_instance m = 0", lambda: one_layer_instance(2, 0, 0)),
        ("one_layer_instance negative seed", lambda: one_layer_instance(2, 1, -1)),
        ("residual_instance negative m", lambda: residual_instance(2, -2, 0)),
        ("skip_head_instance negative zeros", lambda: skip_head_instance(2, 0, zeros_in_v=-1)),
        ("random_multihead negative H", lambda: random_multihead(-1, 2, 0)),
        ("random_multihead d = 0", lambda: random_multihead(2, 0, 0)),
        ("random_multihead negative seed", lambda: random_multihead(2, 2, -1)),
        ("membership_instance negative seed", lambda: membership_instance(2, -1)),
        ("membership_instance d = 0", lambda: membership_instance(0, 0)),
    ]


@pytest.mark.parametrize("case", _builders(), ids=lambda case: case[0])
def test_instance_builders_refuse_bad_sizes_before_drawing(case: tuple[str, Any]) -> None:
    """Regression: low_rank_head(2, 3, 0) looped forever (rank 3 > d = 2 never occurs);
    negative seeds and sizes reached numpy as a raw ValueError."""
    import signal

    name, build = case  # every case of _builders() (was range(19): a new case went unrun)

    def too_slow(signum: int, frame: Any) -> None:
        raise AssertionError(f"{name}: the builder did not refuse within 5 s")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(5)
    try:
        with pytest.raises(InvalidEntryError, match=r"must be an integer"):
            build()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_builders_accept_the_boundary_sizes() -> None:
    from exactattn.checks.low_rank import low_rank_head
    from exactattn.linalg import rank

    assert rank(EXP, low_rank_head(2, 2, 0).W) == 2
    assert rank(EXP, low_rank_head(2, 0, 0).W) == 0
