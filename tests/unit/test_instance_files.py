"""Instance files (exactattn.instance_files, docs/instance.schema.json, docs/instances.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exactattn.errors import InvalidEntryError, ShapeError
from exactattn.instance_files import instance_to_json, learn_instance, load_instance, parse_instance

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "instance.schema.json"

#: one valid file per model kind (small: each is learned below)
VALID: list[dict[str, Any]] = [
    {"model": "single_head", "field": "EXP", "W": [["1/3", "-2"], ["7", "0"]], "v": ["0", "5/2"]},
    {"model": "single_head", "field": "F64", "W": [[0.5, 1], [2, -0.25]], "v": [1.0, "-1/2"]},
    {"model": "biased_head", "W": [["1/2", 0], [1, "-1"]], "c": [1, 0], "v": ["1/3", 2],
     "beta": "0.25"},
    {"model": "low_rank_head", "W": [[1, 2, 0], [2, 4, 0], [0, 0, 0]], "v": [1, 0, "1/2"],
     "rank": 1, "name": "rank one"},
    {"model": "relu_ffn", "A": [["1", "-1"], [2, 0]], "w": ["2", "-3/7"]},
    {"model": "one_layer_transformer", "W": [[0, 1], [1, 0]], "A": [[1, -1], [2, 0]],
     "w_o": [1, 3]},
    {"model": "multihead", "heads": [{"W": [[0, 1], [1, 0]], "v": [1, 0]},
                                     {"W": [[2, 0], [0, 0]], "v": [0, 1]}]},
]

#: (file, the key the message must name): each must be refused by module and schema
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"model": "single_head", "W": [[1]], "v": [0.1]}, "v[0]"),        # float in EXP
    ({"model": "single_head", "W": [[1]], "v": ["1/0"]}, "v[0]"),
    ({"model": "single_head", "W": [[1]], "v": [" 1"]}, "v[0]"),
    ({"model": "single_head", "W": [[1]], "v": [True]}, "v[0]"),
    ({"model": "single_head", "W": [[1]], "v": [None]}, "v[0]"),
    ({"model": "single_head", "W": [[1]]}, "v"),
    ({"model": "single_head", "W": [[1]], "v": [1], "bias": [0]}, "bias"),
    ({"model": "single_head", "field": "QQ", "W": [[1]], "v": [1]}, "field"),
    ({"model": "transformer", "W": [[1]]}, "model"),
    ({"model": "low_rank_head", "W": [[1]], "v": [1], "rank": -1}, "rank"),
    ({"model": "low_rank_head", "W": [[1]], "v": [1], "rank": "1"}, "rank"),
    ({"model": "relu_ffn", "A": [], "w": []}, "A"),
    ({"model": "multihead", "heads": [{"W": [[1]]}]}, "heads[0]"),
    ({"model": "biased_head", "W": [[1]], "c": [0], "v": [1], "beta": 1.5}, "beta"),
]


@pytest.mark.parametrize("obj", VALID, ids=lambda o: f"{o['model']}-{o.get('field', '')}")
def test_every_model_kind_is_learned_and_certified(obj: dict[str, Any]) -> None:
    spec = parse_instance(obj)
    result = learn_instance(spec)
    assert result.matches_truth and result.certificate.holds
    expected = {"float"} if spec.field.name == "F64" else {"exact", "exact_given"}
    assert result.recovery.status in expected
    again = parse_instance(instance_to_json(spec.model, rank=spec.rank)).source
    assert again == {k: x for k, x in spec.source.items() if k != "name"}


@pytest.mark.parametrize(("obj", "key"), INVALID, ids=lambda x: str(x)[:40])
def test_a_bad_file_names_the_key(obj: dict[str, Any], key: str) -> None:
    with pytest.raises((InvalidEntryError, ShapeError), match=f"'{key}'".replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_instance(obj)


def test_near_miss_float_is_refused_in_an_exact_field_but_the_string_is_exact() -> None:
    # 0.1 as a float is not 1/10: a float comparison would accept it, the file must not
    with pytest.raises(InvalidEntryError, match="write the string"):
        parse_instance({"model": "single_head", "W": [[1]], "v": [0.1]})
    spec = parse_instance({"model": "single_head", "W": [[1]], "v": ["0.1"]})
    assert str(spec.model.v[0]) == "1/10"


def test_declared_rank_below_the_true_rank_is_refused() -> None:
    with pytest.raises(InvalidEntryError, match="declares rank 1, but W has rank 2"):
        parse_instance({"model": "low_rank_head", "W": [[1, 0], [0, 1]], "v": [1, 1],
                        "rank": 1})


def test_wrong_shapes_name_the_key() -> None:
    with pytest.raises(ShapeError, match="'v': 1 entries, expected 2"):
        parse_instance({"model": "single_head", "W": [[1, 0], [0, 1]], "v": [1]})
    with pytest.raises(ShapeError, match=r"'W\[1\]'|'W': row 1"):
        parse_instance({"model": "single_head", "W": [[1, 0], [0]], "v": [1, 1]})


def test_load_instance_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidEntryError, match="bad.json is not valid JSON"):
        load_instance(bad)
    with pytest.raises(InvalidEntryError, match="cannot read instance file"):
        load_instance(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(VALID[0]), encoding="utf-8")
    assert load_instance(good).model_kind == "single_head"


def test_wrong_label_for_the_model_is_refused() -> None:
    with pytest.raises(InvalidEntryError, match="learned by relu_ffn_exact"):
        learn_instance(parse_instance(VALID[4]), "single_head_exact")


def test_schema_and_validator_agree() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test-only) not installed")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for obj in VALID:
        assert validator.is_valid(obj), obj
    for obj, _ in INVALID:
        assert not validator.is_valid(obj), obj
