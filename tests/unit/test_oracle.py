"""ValueOracle: the only thing a learner holds (exactattn/oracle.py).

Counting (total, per phase, per query in a batch), the transcript (what it
records, that it is frozen against later changes of the caller's arrays),
fork (own counter, no budget), the budget, field checks on the target and
on its answers, and the time spent.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from flint import fmpq

from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    QueryBudgetExceededError,
)
from exactattn.fields import EXP, F64, QQ, Field
from exactattn.models import SingleHeadAttention
from exactattn.oracle import Transcript, ValueOracle

W2 = [[1, Fraction(-1, 2)], [3, 0]]
V2 = [2, -1]


def exact_oracle(**kw: Any) -> ValueOracle:
    return ValueOracle(SingleHeadAttention(W2, V2, field=EXP), **kw)


def f64_oracle(**kw: Any) -> ValueOracle:
    W = [[float(x) for x in row] for row in W2]
    return ValueOracle(SingleHeadAttention(W, [2.0, -1.0], field=F64), **kw)


class CountingTarget:
    """A plain callable that counts how often the oracle really calls it."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    def __call__(self, X: Any) -> Any:
        self.calls += 1
        return self.answer


# -- counting ------------------------------------------------------------------
def test_counts_total_and_per_phase() -> None:
    oracle = exact_oracle()
    assert oracle.queries == 0 and oracle.queries_by_phase == {}
    oracle([[1, 0]], phase="v")
    oracle([[0, 1]], phase="v")
    oracle([[1, 1], [0, 1]], phase="W")
    oracle([[1, 0]])
    assert oracle.queries == 4
    assert oracle.queries_by_phase == {"v": 2, "W": 1, "query": 1}
    # the returned dict is a copy: changing it changes nothing
    oracle.queries_by_phase["v"] = 100
    assert oracle.queries_by_phase["v"] == 2


@pytest.mark.parametrize("make", [exact_oracle, f64_oracle], ids=["EXP", "F64"])
def test_batch_counts_each_query(make: Any) -> None:
    oracle = make()
    answers = oracle.batch([[[1, 0]], [[0, 1]], [[1, 1], [1, 0]]], phase="W")
    assert len(answers) == 3
    assert oracle.queries == 3 and oracle.queries_by_phase == {"W": 3}
    # a batch answers exactly as single queries do
    single = make()
    assert [single([[1, 0]]), single([[0, 1]]), single([[1, 1], [1, 0]])] == list(answers)


def test_f64_3d_batch_counts_each_query() -> None:
    oracle = f64_oracle()
    Xs = np.random.default_rng(0).standard_normal((5, 3, 2))
    answers = oracle.batch(Xs, phase="p")
    assert answers.shape == (5,)
    assert oracle.queries == 5 and oracle.queries_by_phase == {"p": 5}
    assert len(oracle.transcript) == 5


def test_every_answer_is_a_field_element() -> None:
    # an int answer is converted, by __call__ and by batch (with and without
    # a batch method on the target)
    class WithBatch:
        field = EXP
        d = 2

        def __call__(self, X: Any) -> Any:
            return 7

        def batch(self, Xs: Any) -> list[Any]:
            return [7 for _ in Xs]

    plain = ValueOracle(lambda X: 7, field=EXP, d=2)
    model = ValueOracle(WithBatch())
    answers = [plain([[1, 0]]), model([[1, 0]]), *plain.batch([[[1, 0]]]), *model.batch([[[1, 0]]])]
    assert answers == [7, 7, 7, 7]
    assert [EXP.is_element(y) for y in answers] == [True] * 4
    assert all(EXP.is_element(t.answer) for t in (*plain.transcript, *model.transcript))


# -- transcript ----------------------------------------------------------------
def test_transcript_records_index_phase_query_answer() -> None:
    oracle = exact_oracle()
    y0 = oracle([[1, 0]], phase="v")
    ys = oracle.batch([[[0, 1]], [[1, 1], [0, 1]]], phase="W")
    y3 = oracle([[2, 0], [1, 0], [0, 1]])
    t = oracle.transcript
    assert isinstance(t, Transcript) and t.field == EXP
    assert len(t) == 4
    assert [e.index for e in t] == [0, 1, 2, 3]
    assert [e.phase for e in t] == ["v", "W", "W", "query"]
    assert [e.X.tolist() for e in t] == [
        [[1, 0]],
        [[0, 1]],
        [[1, 1], [0, 1]],
        [[2, 0], [1, 0], [0, 1]],
    ]
    assert all(EXP.is_element(x) for e in t for x in e.X.flat)
    assert [e.answer for e in t] == [y0, ys[0], ys[1], y3]
    head = SingleHeadAttention(W2, V2, field=EXP)
    assert all(e.answer == head(e.X) for e in t)
    assert t[0].answer == 2  # one token e_0: the answer is v_0


def test_transcript_entries_and_slices_are_frozen() -> None:
    oracle = exact_oracle()
    oracle([[1, 0]])
    snapshot = oracle.transcript[:]
    oracle([[0, 1]])
    assert len(snapshot) == 1 and len(oracle.transcript) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        oracle.transcript[0].answer = EXP(0)  # type: ignore[misc]


def test_transcript_json_round_trip() -> None:
    oracle = exact_oracle()
    oracle([[1, 0]], phase="v")
    oracle.batch([[[1, 1], [0, 1]]], phase="W")
    back = Transcript.from_json(oracle.transcript.to_json())
    assert back.field == EXP and len(back) == 2
    for a, b in zip(back, oracle.transcript, strict=True):
        assert (a.index, a.phase) == (b.index, b.phase)
        assert a.X.tolist() == b.X.tolist() and a.answer == b.answer


def _mutate(X: np.ndarray, field: Field) -> None:
    X[...] = field(5) if field.exact else 5.0


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_transcript_immune_to_caller_changes_single_query(field: Field) -> None:
    oracle = exact_oracle() if field is EXP else f64_oracle()
    X = field.array([[1, 0], [0, 1]])
    oracle(X)
    _mutate(X, field)
    assert oracle.transcript[0].X.tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_transcript_immune_to_caller_changes_batch_of_arrays(field: Field) -> None:
    oracle = exact_oracle() if field is EXP else f64_oracle()
    X1, X2 = field.array([[1, 0], [0, 1]]), field.array([[0, 1]])
    oracle.batch([X1, X2])
    _mutate(X1, field)
    _mutate(X2, field)
    assert oracle.transcript[0].X.tolist() == [[1, 0], [0, 1]]
    assert oracle.transcript[1].X.tolist() == [[0, 1]]


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_transcript_immune_to_caller_changes_3d_batch(field: Field) -> None:
    oracle = exact_oracle() if field is EXP else f64_oracle()
    Xs = field.array([[[1, 0], [0, 1]], [[1, 1], [1, 0]]])
    oracle.batch(Xs)
    _mutate(Xs, field)
    assert oracle.transcript[0].X.tolist() == [[1, 0], [0, 1]]
    assert oracle.transcript[1].X.tolist() == [[1, 1], [1, 0]]


def test_transcript_immune_to_caller_changes_nested_lists() -> None:
    oracle = exact_oracle()
    X = [[1, 0], [0, 1]]
    oracle(X)
    oracle.batch([X])
    X[0][0] = 9
    assert [e.X.tolist() for e in oracle.transcript] == [[[1, 0], [0, 1]]] * 2


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
@pytest.mark.parametrize("how", ["call", "batch", "batch3d"])
def test_transcript_queries_are_read_only(field: Field, how: str) -> None:
    # what the oracle recorded cannot be edited afterwards, whichever way it was asked
    oracle = exact_oracle() if field is EXP else f64_oracle()
    X = field.array([[1, 0], [0, 1]])
    if how == "call":
        oracle(X)
    elif how == "batch":
        oracle.batch([X])
    else:
        oracle.batch(X[None])
    recorded = oracle.transcript[0].X
    assert recorded.flags.writeable is False
    with pytest.raises(ValueError):
        recorded[0, 0] = field(3)


def test_the_target_receives_a_read_only_query() -> None:
    seen: list[np.ndarray] = []

    def target(X: Any) -> Any:
        seen.append(X)
        return EXP(0)

    ValueOracle(target, field=EXP, d=2)([[1, 0]])
    assert seen[0].flags.writeable is False


def test_no_transcript_when_turned_off() -> None:
    oracle = exact_oracle(keep_transcript=False)
    oracle([[1, 0]])
    oracle.batch([[[0, 1]]])
    assert oracle.queries == 2 and len(oracle.transcript) == 0


# -- fork ------------------------------------------------------------------------
def test_fork_has_its_own_counter_and_no_budget() -> None:
    oracle = exact_oracle(budget=2)
    y = oracle([[1, 1], [0, 1]], phase="W")
    fork = oracle.fork("cert")
    assert fork.budget is None and fork.queries == 0 and len(fork.transcript) == 0
    assert fork.field == oracle.field and fork.d == oracle.d
    for _ in range(5):  # more than the parent's budget
        assert fork([[1, 1], [0, 1]], phase="certificate") == y  # same hidden function
    fork.batch([[[1, 0]], [[0, 1]]], phase="certificate")
    assert fork.queries == 7 and fork.queries_by_phase == {"certificate": 7}
    assert oracle.queries == 1 and oracle.queries_by_phase == {"W": 1}
    assert len(oracle.transcript) == 1 and len(fork.transcript) == 7
    # and the parent still has its budget
    oracle([[1, 0]])
    with pytest.raises(QueryBudgetExceededError):
        oracle([[0, 1]])
    assert fork.queries == 7


# -- budget --------------------------------------------------------------------------
def test_budget_refuses_before_calling_the_target() -> None:
    target = CountingTarget(EXP(1))
    oracle = ValueOracle(target, field=EXP, d=2, budget=2)
    oracle([[1, 0]])
    with pytest.raises(QueryBudgetExceededError, match="budget of 2 exceeded") as info:
        oracle.batch([[[1, 0]], [[0, 1]]])
    assert (info.value.budget, info.value.used) == (2, 1)
    assert target.calls == 1 and oracle.queries == 1 and len(oracle.transcript) == 1
    oracle([[0, 1]])
    assert oracle.queries == 2
    with pytest.raises(QueryBudgetExceededError):
        oracle([[0, 1]])
    assert target.calls == 2 and oracle.queries == 2


def test_budget_zero_allows_nothing() -> None:
    target = CountingTarget(EXP(1))
    oracle = ValueOracle(target, field=EXP, d=1, budget=0)
    with pytest.raises(QueryBudgetExceededError):
        oracle([[1]])
    assert target.calls == 0


# -- fields ----------------------------------------------------------------------------
@pytest.mark.parametrize("other", [F64, QQ], ids=lambda f: f.name)
def test_rejects_a_model_over_another_field(other: Field) -> None:
    head = SingleHeadAttention(W2, V2, field=EXP)
    pattern = f"target is over EXP.*oracle over {other.name}"
    with pytest.raises(IncompatibleFieldError, match=pattern):
        ValueOracle(head, field=other)


def test_rejects_an_f64_model_for_an_exact_oracle() -> None:
    head = SingleHeadAttention([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0], field=F64)
    with pytest.raises(IncompatibleFieldError, match="target is over F64.*oracle over EXP"):
        ValueOracle(head, field=EXP)


def test_plain_callable_needs_field_and_d() -> None:
    with pytest.raises(InvalidEntryError, match="field= is required"):
        ValueOracle(lambda X: EXP(0), d=2)
    with pytest.raises(InvalidEntryError, match="d= is required"):
        ValueOracle(lambda X: EXP(0), field=EXP)


@pytest.mark.parametrize(
    ("field", "answer", "error", "pattern"),
    [
        (EXP, "7", InvalidEntryError, "answered '7'.*not a number"),
        (EXP, None, InvalidEntryError, "answered None.*not a number"),
        (EXP, 0.5, InvalidEntryError, "answered 0.5.*not an exact number"),
        (EXP, object(), InvalidEntryError, "answered <object"),
        (F64, "7", InvalidEntryError, "answered '7'.*not a number"),
        (F64, None, InvalidEntryError, "answered None.*not a number"),
        (F64, float("nan"), InvalidEntryError, "answered nan.*not finite"),
        (F64, float("inf"), InvalidEntryError, "answered inf.*not finite"),
        (F64, EXP(1), IncompatibleFieldError, "answered 1.*not a float64 number"),
        (QQ, EXP.exp(EXP(1)), IncompatibleFieldError, "answered exp\\(1\\)"),
    ],
    ids=[
        "EXP-str",
        "EXP-None",
        "EXP-float",
        "EXP-object",
        "F64-str",
        "F64-None",
        "F64-nan",
        "F64-inf",
        "F64-EXP",
        "QQ-EXP",
    ],
)
def test_rejects_answers_that_are_not_field_elements(
    field: Field, answer: Any, error: type[Exception], pattern: str
) -> None:
    oracle = ValueOracle(lambda X: answer, field=field, d=2)
    with pytest.raises(error, match=pattern):
        oracle([[1, 0]])
    with pytest.raises(error, match=pattern):
        oracle.batch([[[1, 0]], [[0, 1]]])
    assert len(oracle.transcript) == 0  # nothing wrong was recorded


def test_rejects_an_element_of_another_exact_field() -> None:
    # base.py: "elements of *another* field never are [accepted]"; an fmpq
    # is an element of QQ, not of EXP
    assert not EXP.is_element(fmpq(1, 2))
    oracle = ValueOracle(lambda X: fmpq(1, 2), field=EXP, d=2)
    with pytest.raises(IncompatibleFieldError):
        oracle([[1, 0]])


def test_rejects_bad_answers_from_a_batch_method() -> None:
    class BadBatch:
        field = EXP
        d = 2

        def __call__(self, X: Any) -> Any:
            return EXP(0)

        def batch(self, Xs: Any) -> list[Any]:
            return ["x" for _ in Xs]

    with pytest.raises(InvalidEntryError, match="answered 'x'"):
        ValueOracle(BadBatch()).batch([[[1, 0]]])


# -- time ------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [exact_oracle, f64_oracle], ids=["EXP", "F64"])
def test_seconds_increase(make: Any) -> None:
    oracle = make()
    assert oracle.seconds == 0.0
    oracle([[1, 0], [1, 1]])
    t1 = oracle.seconds
    assert t1 > 0
    oracle.batch([[[1, 0]], [[1, 1], [0, 1]]])
    t2 = oracle.seconds
    assert t2 > t1
    fork = oracle.fork("f")
    fork([[1, 0]])
    assert oracle.seconds == t2 and fork.seconds > 0


def test_a_model_does_not_freeze_the_callers_arrays() -> None:
    W = EXP.array([[1, 2], [3, 4]])
    v = EXP.array([1, 0])
    head = SingleHeadAttention(W, v, field=EXP)
    assert W.flags.writeable and v.flags.writeable
    W[0, 0] = EXP(9)  # the caller may change its array ...
    assert head.W[0, 0] == 1  # ... the model keeps its own copy
    assert not head.W.flags.writeable
