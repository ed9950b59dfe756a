"""One layout for every multi-head recovery: head first (issue 13, item 5).

``params["W"]`` is (m, d, d) and ``params["v"]`` is (m, d), row h being head h,
as in ``MultiHeadAttention([(W_1, v_1), ...])``; the float learner's error
estimates follow the same layout. Recovery files of format version 1 (``v`` as
(d, m), column h) still load, converted. The files in tests/data/ were written
by exactattn before this change (``learn --save`` and ``Recovery.save``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exactattn.certificates import verify
from exactattn.checks.multihead import recovered_model
from exactattn.checks.multihead_float import random_float_multihead
from exactattn.cli import main
from exactattn.errors import InvalidEntryError, ShapeError
from exactattn.instance_files import parse_instance
from exactattn.learners import learn_multihead, learn_multihead_float, learn_orthogonal_heads
from exactattn.learners.recovery import JSON_VERSION, Recovery
from exactattn.models import MultiHeadAttention, canonical
from exactattn.models.multihead import same_heads
from exactattn.oracle import ValueOracle

DATA = Path(__file__).resolve().parent.parent / "data"
SAVED_V1 = DATA / "multihead_canonical_v1_saved.json"      # learn --d 3 --heads 2 --save
ORTHOGONAL_V1 = DATA / "multihead_orthogonal_v1_recovery.json"  # Recovery.save

# two heads in d = 3: m != d, so a (d, m) array cannot pass for an (m, d) one
HEADS = [([[1, 0, 2], [0, -1, 0], [3, 0, 0]], [1, -2, 5]),
         ([[0, 1, 0], [2, 0, 0], [0, 0, -1]], [4, 0, -3])]
ORTHOGONAL = [([[2, 1, 0], [1, -1, 0], [0, 0, 0]], [1, -3, 0]),
              ([[0, 0, 0], [0, 0, 0], [0, 0, 5]], [0, 0, 7])]
BASES = [[[1, 0], [0, 1], [0, 0]], [[0], [0], [1]]]


def test_learn_multihead_is_head_first() -> None:
    oracle = ValueOracle(MultiHeadAttention(HEADS))
    rec = learn_multihead(oracle, heads=2)
    W, v = rec.params["W"], rec.params["v"]
    assert W.shape == (2, 3, 3) and v.shape == (2, 3) and rec.d == 3
    # canonical order: W row-major, [[0, 1, 0], ...] before [[1, 0, 2], ...]
    assert [W[h].tolist() for h in range(2)] == [HEADS[1][0], HEADS[0][0]]
    assert [v[h].tolist() for h in range(2)] == [HEADS[1][1], HEADS[0][1]]
    assert same_heads(recovered_model(rec), canonical(MultiHeadAttention(HEADS)))
    assert verify(rec, oracle, probes=2).holds


def test_orthogonal_heads_are_head_first() -> None:
    rec = learn_orthogonal_heads(ValueOracle(MultiHeadAttention(ORTHOGONAL)), BASES)
    assert rec.params["v"].shape == (2, 3) and rec.d == 3
    assert [rec.params["v"][h].tolist() for h in range(2)] == [ORTHOGONAL[0][1], ORTHOGONAL[1][1]]


def test_float_learner_and_its_estimates_are_head_first() -> None:
    model = random_float_multihead(2, 3, 5)
    rec = learn_multihead_float(ValueOracle(model), heads=2, seed=5)
    p = rec.params
    assert p["W"].shape == p["W_error_bound"].shape == (2, 3, 3)
    assert p["v"].shape == p["v_error_bound"].shape == (2, 3) and rec.d == 3
    truth = canonical(model)
    for h in range(2):  # the rows pair with the heads in canonical order
        k = int(np.argmin([np.abs(p["W"][k] - truth.Ws[h]).max() for k in range(2)]))
        assert (np.abs(p["v"][k] - truth.vs[h]) <= p["v_error_bound"][k]).all()


def test_json_round_trip_keeps_the_layout_and_writes_the_version() -> None:
    rec = learn_multihead(ValueOracle(MultiHeadAttention(HEADS)), heads=2)
    obj = json.loads(json.dumps(rec.to_json()))
    assert obj["version"] == JSON_VERSION == 2
    back = Recovery.from_json(obj)
    assert (back.params["v"] == rec.params["v"]).all() and back.params["v"].shape == (2, 3)


def test_version_1_saved_file_loads_head_first_and_replays() -> None:
    saved = json.loads(SAVED_V1.read_text())
    assert "version" not in saved["recovery"]                   # written before the change
    assert saved["recovery"]["params"]["v"]["shape"] == [3, 2]  # (d, m)
    rec = Recovery.from_json(saved["recovery"])
    assert rec.params["v"].shape == (2, 3) and rec.d == 3
    hidden = parse_instance(saved["hidden"]).model
    assert same_heads(recovered_model(rec), canonical(hidden))
    assert verify(rec, ValueOracle(hidden), probes=2).holds
    assert main(["replay", str(SAVED_V1), "--certificate-probes", "2"]) == 0


def test_version_1_recovery_file_loads_head_first() -> None:
    rec = Recovery.load(str(ORTHOGONAL_V1))
    assert rec.params["v"].tolist() == [ORTHOGONAL[0][1], ORTHOGONAL[1][1]]
    assert verify(rec, ValueOracle(MultiHeadAttention(ORTHOGONAL)), probes=2).holds


def test_version_1_float_estimates_are_converted_too() -> None:
    rec = learn_multihead_float(ValueOracle(random_float_multihead(2, 3, 5)), heads=2, seed=5)
    old: dict[str, Any] = json.loads(json.dumps(rec.to_json()))
    del old["version"]
    for key in ("v", "v_error_bound"):  # the version 1 layout: (d, m), column h
        old["params"][key] = {"shape": [3, 2],
                              "entries": [float(x) for x in rec.params[key].T.flat]}
    back = Recovery.from_json(old)
    for key in ("v", "v_error_bound"):
        assert np.array_equal(back.params[key], rec.params[key])


def test_bad_versions_are_refused() -> None:
    obj = json.loads(ORTHOGONAL_V1.read_text())
    with pytest.raises(InvalidEntryError, match="format version is 3"):
        Recovery.from_json({**obj, "version": 3})
    with pytest.raises(InvalidEntryError, match="'version'"):
        Recovery.from_json({**obj, "version": "2"})
    # a version 1 file whose v is not (d, m) beside W (m, d, d)
    bad = {**obj, "params": {**obj["params"], "v": {"shape": [2, 3], "entries": ["0"] * 6}}}
    with pytest.raises(InvalidEntryError, match=r"expected \(d, m\) = \(3, 2\)"):
        Recovery.from_json(bad)


def test_golden_file_of_version_1_still_matches() -> None:
    """A golden file pinned before the layout change (Recovery JSON version 1, v as (d, m))
    still pins the same recovery: it is compared in today's format, not reported as
    changed; a changed recovery still fails against it."""
    from exactattn.testing import assert_matches_golden

    rec = learn_orthogonal_heads(ValueOracle(MultiHeadAttention(ORTHOGONAL)), BASES)
    assert_matches_golden(rec, ORTHOGONAL_V1)
    other = learn_orthogonal_heads(ValueOracle(MultiHeadAttention(
        [ORTHOGONAL[0], (ORTHOGONAL[1][0], [0, 0, 8])])), BASES)
    with pytest.raises(AssertionError, match="no longer matches"):
        assert_matches_golden(other, ORTHOGONAL_V1)


def test_recovery_equals_the_canonical_forms_arrays() -> None:
    """The model's own stacked layout (MultiHeadAttention.arrays) is the recovery's."""
    model = MultiHeadAttention(HEADS)
    rec = learn_multihead(ValueOracle(model), heads=2)
    W, v = canonical(model).arrays()
    assert W.shape == rec.params["W"].shape and v.shape == rec.params["v"].shape
    assert (W == rec.params["W"]).all() and (v == rec.params["v"]).all()
    assert same_heads(MultiHeadAttention.from_arrays(W, v), canonical(model))
    empty = MultiHeadAttention.from_arrays(np.zeros((0, 3, 3)), np.zeros((0, 3)))
    assert empty.H == 0 and empty.d == 3
    with pytest.raises(ShapeError, match=r"head first"):
        MultiHeadAttention.from_arrays(W, v.T)  # the old (d, m) layout is refused
