"""``verify`` certifies, or refuses with an ExactattnError, every recovery a learner returns.

Regression tests for issue 10, defect 2.4: ``verify`` crashed with a numpy
TypeError on BALL and MP recoveries learned without ``max_denominator``, and
with ``KeyError: 'answer_error_factor'`` on an F64 low-rank recovery of rank
0. The class: every learner, on every field it accepts, then ``verify``
with and without an oracle. Each certificate that is returned must also be
able to fail (a perturbed recovery is rejected).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from exactattn import claims  # noqa: F401  (registers every label's certificate builder)
from exactattn.certificates import Certificate, verify
from exactattn.checks.low_rank import low_rank_head
from exactattn.checks.one_layer_reduction import one_layer_instance, skip_head_instance
from exactattn.checks.relu_ffn_exact import relu_ffn_instance
from exactattn.errors import ExactattnError, InvalidEntryError
from exactattn.fields import BALL, EXP, F64, MP, BallField, Field
from exactattn.instances import single_head_instance
from exactattn.learners import (
    Recovery,
    learn_low_rank,
    learn_one_layer,
    learn_relu_ffn,
    learn_single_head,
    learn_skip_head,
)
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle, enclosing_oracle

Learner = Callable[[ValueOracle], Recovery]

#: (name, learner, exact hidden model, float64 hidden model or None)
CASES: list[tuple[str, Learner, Any, Any]] = [
    ("single_head", learn_single_head, single_head_instance(3, 0, field=EXP).model,
     single_head_instance(3, 0, field=F64).model),
    ("low_rank_r1", lambda o: learn_low_rank(o, rank=1), low_rank_head(3, 1, 0),
     low_rank_head(3, 1, 0, field=F64)),
    ("low_rank_r0", lambda o: learn_low_rank(o, rank=0), low_rank_head(3, 0, 0),
     low_rank_head(3, 0, 0, field=F64)),
    ("one_layer", learn_one_layer, one_layer_instance(2, 2, 0), None),
    ("skip_head", learn_skip_head, skip_head_instance(2, 0), None),
    ("relu", learn_relu_ffn, relu_ffn_instance(2, 2, 0), relu_ffn_instance(2, 2, 0, field=F64)),
]
ROUTES = ["EXP", "F64", "BALL(128)", "MP(128)"]


def _oracle(route: str, exact_model: Any, f64_model: Any) -> ValueOracle | None:
    if route == "EXP":
        return ValueOracle(exact_model)
    if route == "F64":
        return None if f64_model is None else ValueOracle(f64_model)
    return enclosing_oracle(exact_model, BALL(128) if route.startswith("BALL") else MP(128))


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("name", "learn", "exact_model", "f64_model"), CASES,
                         ids=[c[0] for c in CASES])
def test_verify_certifies_or_refuses(name: str, learn: Learner, exact_model: Any,
                                     f64_model: Any, route: str) -> None:
    oracle = _oracle(route, exact_model, f64_model)
    if oracle is None:
        pytest.skip(f"{name} has no float64 model")
    try:
        rec = learn(oracle)
    except ExactattnError:
        return  # the learner refuses this field itself, with its own error
    for against in (oracle, None):
        try:
            cert = verify(rec, against, probes=3, seed=1)
        except InvalidEntryError as exc:
            assert rec.field.name in str(exc) or "certificate" in str(exc)
            continue
        assert isinstance(cert, Certificate)
        assert cert.holds, str(cert)
        assert cert.checked >= 1
        # the same certificate can fail: every parameter moved by 1 is rejected
        wrong = verify(_perturbed(rec), against, probes=3, seed=1)
        assert not wrong.holds and wrong.first_failure is not None, str(wrong)


def _perturbed(rec: Recovery) -> Recovery:
    """The recovery with the first entry of every parameter array moved by 1."""
    params = {}
    for key, A in rec.params.items():
        B = np.array(A, copy=True)
        B.flat[0] = B.flat[0] + rec.field(1)
        params[key] = B
    return dataclasses.replace(rec, params=params)


def test_ball_recovery_gets_an_enclosure_certificate() -> None:
    """The old code raised TypeError (numpy exp on ball elements)."""
    head = SingleHeadAttention([[1, Fraction(-1, 3)], [2, 0]], [1, Fraction(1, 2)], field=EXP)
    oracle = enclosing_oracle(head, BALL(128))
    rec = learn_single_head(oracle)
    assert isinstance(rec.field, BallField)
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "enclosure" and cert.checked == 6 + 4
    assert cert.tolerance is not None and "widest enclosure radius" in cert.tolerance
    offline = verify(rec, None)
    assert offline.holds and offline.checked == 6 and offline.fresh == 0


def test_ball_certificate_rejects_a_wrong_ball_recovery() -> None:
    head = SingleHeadAttention([[1, Fraction(-1, 3)], [2, 0]], [1, Fraction(1, 2)], field=EXP)
    oracle = enclosing_oracle(head, BALL(128))
    rec = learn_single_head(oracle)
    F = rec.field
    W = rec.W.copy()
    W[1, 0] = W[1, 0] + F(Fraction(1, 2**40))  # far beyond the 128-bit radii
    wrong = dataclasses.replace(rec, params={"W": W, "v": rec.v})
    cert = verify(wrong, oracle, probes=4)
    assert not cert.holds and cert.first_failure is not None
    assert "disjoint" in cert.first_failure.reason
    assert not verify(wrong, None).holds


def test_mp_recovery_is_refused_with_the_reason() -> None:
    """The old code raised TypeError; MP answers carry no bound to certify against."""
    head = SingleHeadAttention([[1, 0], [0, 2]], [1, 1], field=EXP)
    oracle = enclosing_oracle(head, MP(128))
    rec = learn_single_head(oracle)
    with pytest.raises(InvalidEntryError, match=r"MP\(128\).*no error bound.*BALL\(128\)"):
        verify(rec, oracle)


def test_f64_rank_zero_low_rank_recovery_is_certified() -> None:
    """The old code raised KeyError: 'answer_error_factor'."""
    oracle = ValueOracle(low_rank_head(4, 0, 0, field=F64))
    rec = learn_low_rank(oracle, rank=0)
    cert = verify(rec, oracle, probes=4)
    assert cert.holds and cert.kind == "tolerance" and cert.checked == 4 + 4


def test_f64_rank_zero_certificate_rejects_a_rank_one_head() -> None:
    # the rank hypothesis is false: W != 0; the tolerance certificate must see it
    oracle = ValueOracle(low_rank_head(4, 1, 0, field=F64))
    rec = learn_low_rank(oracle, rank=0)
    cert = verify(rec, oracle, probes=16)
    assert not cert.holds and cert.first_failure is not None
    assert cert.first_failure.source == "fresh"


def test_float_recovery_without_its_bounds_is_refused() -> None:
    oracle = ValueOracle(single_head_instance(2, 0, field=F64).model)
    rec = learn_single_head(oracle)
    stripped = dataclasses.replace(rec, options={})
    with pytest.raises(InvalidEntryError, match="answer_error_factor"):
        verify(stripped, oracle)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0, "0.1", None])
def test_float_recovery_with_a_non_finite_estimate_is_refused(value: Any) -> None:
    """Regression: an infinite W_error_bound made the tolerances infinite (any answer passed)
    or NaN (every answer failed), a string was read by float(); now refused, with the key."""
    oracle = ValueOracle(single_head_instance(2, 0, field=F64).model)
    rec = learn_single_head(oracle)
    broken = dataclasses.replace(rec, options={**rec.options, "W_error_bound": value})
    with pytest.raises(InvalidEntryError, match="W_error_bound .* not a finite number"):
        verify(broken, oracle)


def test_recovery_whose_parameters_are_not_its_labels_is_refused() -> None:
    """A tampered label reached the builder and raised KeyError / IndexError."""
    rec = learn_single_head(ValueOracle(single_head_instance(2, 0, field=EXP).model))
    for label in ("relu_ffn_exact", "multihead_canonical"):
        with pytest.raises(InvalidEntryError, match="do not describe"):
            verify(dataclasses.replace(rec, label=label), None)


def test_approximate_recovery_without_its_bounds_is_refused() -> None:
    rec = learn_single_head(ValueOracle(single_head_instance(2, 0, field=EXP).model))
    with pytest.raises(InvalidEntryError, match="W_frobenius_bound"):
        verify(dataclasses.replace(rec, approximate=True), None)
    bad = dataclasses.replace(rec, approximate=True,
                              options={"W_frobenius_bound": "1e999999999", "v_bound": "0"})
    with pytest.raises(InvalidEntryError, match="not a rational"):
        verify(bad, None)


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_a_certificate_that_checked_nothing_does_not_hold(field: Field) -> None:
    """Regression: an empty transcript and no fresh probe printed 'holds; 0 queries checked'."""
    oracle = ValueOracle(single_head_instance(2, 0, field=field).model)
    rec = learn_single_head(oracle)
    empty = dataclasses.replace(rec, transcript=rec.transcript[:0])
    W = np.array(rec.W, copy=True)
    W[0, 0] = W[0, 0] + 5  # a wrong model that nothing checks
    wrong = dataclasses.replace(empty, params={"W": W, "v": rec.v})
    for r in (empty, wrong):
        cert = verify(r, None)
        assert not cert.holds and cert.checked == 0
        assert cert.verdict == "nothing checked" and cert.to_json()["verdict"] == cert.verdict
        assert "NOTHING CHECKED" in str(cert) and "holds;" not in str(cert)
    assert verify(empty, oracle, probes=2).holds  # fresh probes do check something
    with pytest.raises(InvalidEntryError, match="checked 0 queries cannot hold"):
        Certificate("x", "exact", True, 0, 0, 0, None)


@pytest.mark.parametrize("max_denominator", [None, 100], ids=["ball", "reconstructed"])
def test_an_unbounded_oracle_ball_checks_nothing_and_fails(max_denominator: int | None) -> None:
    """Regression: an infinite or NaN oracle ball overlaps every enclosure, so a ball
    recovery 'held' against it, and an exact recovery raised ValueError from its radius."""
    from flint import arb

    from exactattn.fields.precision import PrecisionElement
    from exactattn.oracle import Transcript

    head = SingleHeadAttention([[1, Fraction(-1, 3)], [2, 0]], [1, Fraction(1, 2)], field=EXP)
    oracle = enclosing_oracle(head, BALL(128))
    rec = learn_single_head(oracle, max_denominator=max_denominator)
    assert verify(rec, None).holds
    F = rec.transcript.field
    for junk in ("[+/- inf]", "nan"):
        answers = Transcript(F, [dataclasses.replace(e, answer=PrecisionElement(arb(junk), F))
                                 for e in rec.transcript])
        cert = verify(dataclasses.replace(rec, transcript=answers), None)
        assert not cert.holds and cert.first_failure is not None
        assert "not finite" in cert.first_failure.reason
