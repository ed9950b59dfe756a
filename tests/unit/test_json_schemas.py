"""The --json outputs of the CLI against their schemas in docs/schemas/ (docs/json.md).

Every sub-command that :func:`exactattn.cli.build_parser` lists (and the ones
``main`` hands to a parser of their own, :data:`DELEGATED`) must accept
``--json``, have a run in :data:`RUNS` here and a schema
``docs/schemas/<command>.schema.json`` (spaces as underscores) that its output
matches; under ``--json`` a refused input is one object of
``docs/schemas/error.schema.json`` on stdout. A new sub-command fails
``test_every_command_has_json_a_run_and_a_schema`` until it has all three.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from exactattn import cli_checkpoint, cli_layer
from exactattn.cli import build_parser, main

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test-only) not installed")
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DATA = Path(__file__).resolve().parents[1] / "data"

#: sub-commands that ``exactattn.cli.main`` hands to a parser of their own
DELEGATED: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "learn checkpoint": cli_checkpoint.build_parser, "learn layer": cli_layer.build_parser}
#: sub-commands exempt from --json, with the reason (none: every command prints JSON)
NO_JSON: dict[str, str] = {}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every sub-command's parser: those of build_parser(), then the delegated ones."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {**sub.choices, **{name: make() for name, make in DELEGATED.items()}}


def _checkpoint(tmp_path: Path) -> list[str]:
    st_numpy = pytest.importorskip("safetensors.numpy")
    from exactattn.checkpoints import BERT_NAMES, random_layer

    L = random_layer(8, 2, seed=3)
    path = tmp_path / "m.safetensors"
    st_numpy.save_file(dict(zip(BERT_NAMES.resolve(prefix="", layer=0).values(),
                                (L.Wq, L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo, L.bo), strict=True)),
                       str(path))
    return ["learn", "checkpoint", str(path), "--layer", "0", "--head", "1", "--num-heads", "2",
            "--certificate-probes", "2"]


def _instance(tmp_path: Path) -> Path:
    path = tmp_path / "head.json"
    path.write_text(json.dumps({"model": "single_head", "W": [[1, 0], [2, "1/2"]],
                                "v": [1, -1]}), encoding="utf-8")
    return path


#: a quick run of every command, without --json (added by the test): argv for main()
RUNS: dict[str, Callable[[Path], list[str]]] = {
    "verify": lambda tmp: ["verify", "--only", "single_head_exact.length_one", "--quiet"],
    "claims": lambda tmp: ["claims"],
    "latex": lambda tmp: ["latex", "--no-check", "--out", str(tmp / "tex"), "--quiet"],
    "learn": lambda tmp: ["learn", "single_head_exact", "--d", "2", "--certificate-probes", "2"],
    "replay": lambda tmp: ["replay", str(DATA / "multihead_orthogonal_v1_recovery.json")],
    "learn checkpoint": _checkpoint,
    "learn layer": lambda tmp: ["learn", "layer", *_checkpoint(tmp)[2:5], "--num-heads", "2",
                                "--certificate-probes", "2"],
    # a server: its one line of JSON once bound, then it serves until terminated
    "serve": lambda tmp: ["serve", str(_instance(tmp)), "--port", "0"],
}
#: commands that do not return: run in a subprocess, first line read, then terminated
SERVERS = ("serve",)


def _stdout_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    if argv[0] in SERVERS:
        proc = subprocess.Popen([sys.executable, "-m", "exactattn", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return 0, line
    code = main(argv)
    return code, capsys.readouterr().out


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


# -- every command: --json, a run, a schema ------------------------------------------
COMMANDS = sorted(_parsers())


def test_every_command_has_json_a_run_and_a_schema() -> None:
    for name, parser in _parsers().items():
        if name in NO_JSON:
            continue
        assert "--json" in parser._option_string_actions, f"{name} has no --json"
        assert name in RUNS, (f"sub-command {name!r} has no --json run in RUNS "
                              "(tests/unit/test_json_schemas.py): add one")
        schema = SCHEMAS / f"{name.replace(' ', '_')}.schema.json"
        assert schema.is_file(), f"sub-command {name!r} has no schema {schema.name} in docs/schemas"
    assert not set(NO_JSON) - set(_parsers()), "an exemption for a command that is gone"
    assert (SCHEMAS / "error.schema.json").is_file()


@pytest.mark.parametrize("command", COMMANDS)
def test_json_output_of_every_command_matches_its_schema(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if command in NO_JSON or command not in RUNS:
        pytest.skip("covered by test_every_command_has_json_a_run_and_a_schema")
    code, out = _stdout_of([*RUNS[command](tmp_path), "--json"], capsys)
    assert code == 0
    obj = json.loads(out)  # the whole of stdout is one JSON document
    validator = _validator(command.replace(" ", "_"))
    assert [e.message for e in validator.iter_errors(obj)] == []


@pytest.mark.parametrize("command", COMMANDS)
def test_refused_input_under_json_is_one_error_object(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command.split(), "--no-such-option", "--json"]) == 2
    captured = capsys.readouterr()
    obj = json.loads(captured.out)
    assert _validator("error").is_valid(obj) and obj["command"] == command, obj
    assert obj["error"] in captured.err  # the same line on stderr
    assert not _validator("error").is_valid({**obj, "exit_code": 0})
    assert not _validator("error").is_valid({**obj, "exit_code": 3})


@pytest.mark.parametrize("argv", [
    ["replay", "no-such-file.json"],                              # a file that cannot be read
    ["learn", "single_head_exact", "--field", "QQ"],              # refused by the command
    ["verify", "--only", "no_such_label"],
    ["learn", "checkpoint", "no.safetensors", "--layer", "0", "--head", "0"],
])
def test_errors_found_by_the_commands_are_json_too(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--json"]) == 2
    obj = json.loads(capsys.readouterr().out)
    assert _validator("error").is_valid(obj), obj
    assert main(argv) == 2  # without --json: nothing on stdout, one line on stderr
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


def test_verify_json_on_stdout_or_to_a_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--only", "single_head_exact.length_one", "--quiet"]
    assert main([*argv, "--json"]) == 0
    on_stdout = json.loads(capsys.readouterr().out)  # no text line beside the report
    report = tmp_path / "r.json"
    assert main([*argv, "--json", str(report)]) == 0
    assert "single_head_exact.length_one" in capsys.readouterr().out  # text on stdout
    in_file = json.loads(report.read_text(encoding="utf-8"))
    for obj in (on_stdout, in_file):
        assert [c["id"] for c in obj["claims"]] == ["single_head_exact.length_one"]


def test_replay_json_names_every_certificate_and_a_broken_one_is_rejected(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "rec.json"
    assert main(["learn", "single_head_exact", "--d", "2", "--certificate-probes", "2",
                 "--save", str(saved)]) == 0
    capsys.readouterr()
    assert main(["replay", str(saved), "--certificate-probes", "2", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    validator = _validator("replay")
    assert validator.is_valid(obj) and obj["holds"]
    assert [c["what"].split()[0] for c in obj["certificates"]] == ["transcript", "against"]
    assert obj["certificates"][1]["fresh"] == 2
    assert not validator.is_valid({**obj, "status": "exactly"})
    cert = obj["certificates"][0]
    assert not validator.is_valid({**obj, "certificates": [{**cert, "checked": 0}]})
    assert not validator.is_valid({**obj, "certificates": [
        {k: x for k, x in cert.items() if k != "what"}]})
    # a wrong model (v[1] off by 1/7): exit 1, both certificates fail, naming the query
    rec = json.loads(saved.read_text(encoding="utf-8"))
    v = rec["recovery"]["params"]["v"]["entries"]
    v[1] = str(Fraction(str(v[1])) + Fraction(1, 7))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(rec), encoding="utf-8")
    assert main(["replay", str(wrong), "--certificate-probes", "2", "--json"]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert validator.is_valid(bad) and bad["holds"] is False
    assert [c["holds"] for c in bad["certificates"]] == [False, False]
    assert bad["certificates"][0]["first_failure"]["source"] == "transcript"
    assert "FAILS at transcript query #" in bad["certificates"][0]["text"]
    # a replay that checks nothing is exit 1 with holds false, still one JSON document
    rec["recovery"]["transcript"]["entries"] = []
    rec.pop("instance")
    saved.write_text(json.dumps(rec), encoding="utf-8")
    assert main(["replay", str(saved), "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert validator.is_valid(obj) and obj["holds"] is False


def test_latex_json_is_rejected_when_ok_contradicts_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["latex", "--no-check", "--out", str(tmp_path), "--quiet", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    validator = _validator("latex")
    assert validator.is_valid(obj) and obj["ok"] and obj["claims_run"] == 0
    assert obj["files"][0].endswith("main.tex") and all(Path(f).is_file() for f in obj["files"])
    assert not validator.is_valid({**obj, "not_verified": ["a step"]})  # ok yet NOT VERIFIED
    assert not validator.is_valid({**obj, "pdf_failed": True})


def test_learn_from_a_server_json_matches_the_learn_schema(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``learn --oracle URL --json`` (issue 16) prints a learn document too."""
    if "serve" not in _parsers():
        pytest.skip("no serve command")
    proc = subprocess.Popen([sys.executable, "-m", "exactattn", "serve", str(_instance(tmp_path)),
                             "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        assert main(["learn", "single_head_exact", "--oracle", url, "--d", "2",
                     "--certificate-probes", "2", "--json"]) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out = json.loads(capsys.readouterr().out)
    assert [e.message for e in _validator("learn").iter_errors(out)] == []
    assert out["status"] == "exact" and out["certificate"]["holds"]
