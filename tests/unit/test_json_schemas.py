"""The --json outputs of the CLI against their schemas in docs/schemas/ (docs/json.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exactattn.cli import main

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test-only) not installed")
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def _validator(name: str) -> Any:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("argv", [
    ["single_head_exact", "--d", "3"],
    ["single_head_exact", "--d", "3", "--field", "F64"],
    ["noisy_oracle", "--d", "2"],
    ["low_rank_adaptive", "--d", "3"],
    ["multihead_canonical", "--d", "2"],
    ["membership_queries", "--d", "2"],
])
def test_learn_json_matches_its_schema(argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", *argv, "--certificate-probes", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    errors = [e.message for e in _validator("learn").iter_errors(out)]
    assert errors == []


def test_learn_instance_json_matches_and_a_broken_output_does_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inst = tmp_path / "head.json"
    inst.write_text(json.dumps({"model": "single_head", "W": [[1, 2], [0, "1/2"]],
                                "v": [1, -1]}), encoding="utf-8")
    assert main(["learn", "single_head_exact", "--instance", str(inst), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    validator = _validator("learn")
    assert validator.is_valid(out)
    assert not validator.is_valid({**out, "status": "exactly"})  # not a status word
    assert not validator.is_valid({k: x for k, x in out.items() if k != "certificate"})
    # a certificate that checked nothing, or that failed, cannot hold
    cert = out["certificate"]
    for broken in ({"checked": 0}, {"verdict": "nothing checked"}, {"verdict": "probably"},
                   {"first_failure": {"source": "fresh", "index": 0, "N": 1, "reason": "x",
                                      "oracle_answer": "1", "model_answer": "2"}}):
        assert not validator.is_valid({**out, "certificate": {**cert, **broken}}), broken
    assert validator.is_valid({**out, "certificate": {**cert, "holds": False, "checked": 0,
                                                      "verdict": "nothing checked"}})


def test_claims_and_verify_json_match_their_schemas(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["claims", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert _validator("claims").is_valid(listed)
    report = tmp_path / "report.json"
    assert main(["verify", "--only", "single_head_exact.length_one", "--quiet",
                 "--json", str(report)]) == 0
    obj = json.loads(report.read_text(encoding="utf-8"))
    validator = _validator("verify")
    assert [e.message for e in validator.iter_errors(obj)] == []
    obj["claims"][0]["holds"] = "yes"
    assert not validator.is_valid(obj)
