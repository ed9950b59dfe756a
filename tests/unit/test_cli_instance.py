"""``exactattn learn LABEL --instance FILE``, ``--save`` and ``replay`` of every saved file."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from exactattn.cli import main
from exactattn.fields import EXP
from exactattn.instance_files import parse_instance
from exactattn.learners import learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle

HEAD = {"model": "single_head", "field": "EXP", "W": [["1/3", "-2"], ["7", "0"]],
        "v": ["0", "5/2"]}


def _write(path: Path, obj: object) -> str:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def test_replay_accepts_the_file_recovery_save_writes(tmp_path: Path) -> None:
    # regression: replay refused Recovery.to_json()'s own file with "error: 'recovery'"
    rec = learn_single_head(ValueOracle(SingleHeadAttention([[1, 2], [0, 1]], [1, -1],
                                                            field=EXP)))
    path = tmp_path / "rec.json"
    rec.save(str(path))
    assert main(["replay", str(path)]) == 0


def test_replay_of_a_tampered_recovery_save_file_fails(tmp_path: Path) -> None:
    rec = learn_single_head(ValueOracle(SingleHeadAttention([[1, 2], [0, 1]], [1, -1],
                                                            field=EXP)))
    obj = rec.to_json()
    obj["params"]["v"]["entries"][0] = "2"  # a wrong model: the replayed transcript rejects it
    assert main(["replay", _write(tmp_path / "bad.json", obj)]) == 1


def test_learn_instance_save_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    inst = _write(tmp_path / "head.json", HEAD)
    saved = str(tmp_path / "saved.json")
    assert main(["learn", "single_head_exact", "--instance", inst, "--json",
                 "--save", saved]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["queries"], out["status"], out["matches_truth"]) == (6, "exact", True)
    kept = json.loads(Path(saved).read_text(encoding="utf-8"))
    assert parse_instance(kept["instance"]).source == parse_instance(HEAD).source
    assert kept["recovery"]["status"] == "exact"
    assert main(["replay", saved]) == 0
    replayed = capsys.readouterr().out
    assert "instance saved in the file: certificate (exact)" in replayed
    assert "holds; 22 queries checked (6 replayed, 16 fresh)" in replayed
    # W[1, 0] off by 1/7: both the offline replay and the saved instance reject it
    kept["recovery"]["params"]["W"]["entries"][2] = "50/7"
    assert main(["replay", _write(tmp_path / "wrong.json", kept)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("transcript replay: certificate (exact) for single_head_exact: "
                               "FAILS at transcript query #")
    assert lines[1].startswith("against the single_head instance saved in the file: "
                               "certificate (exact) for single_head_exact: FAILS at ")


def test_replay_requeries_the_saved_instance_and_catches_a_changed_one(tmp_path: Path) -> None:
    inst = _write(tmp_path / "head.json", HEAD)
    saved = tmp_path / "saved.json"
    assert main(["learn", "single_head_exact", "--instance", inst, "--save", str(saved)]) == 0
    obj = json.loads(saved.read_text(encoding="utf-8"))
    obj["instance"]["W"][1][0] = "8"  # the hidden model differs from the recovered one
    # replay of the transcript still holds; fresh queries to the saved instance must not
    assert main(["replay", _write(tmp_path / "changed.json", obj),
                 "--certificate-probes", "4"]) == 1


@pytest.mark.parametrize(("obj", "label", "needle"), [
    ({**HEAD, "v": [0.5, 1]}, "single_head_exact", "'v[0]'"),
    ({**HEAD, "model": "relu"}, "single_head_exact", "'model'"),
    (HEAD, "relu_ffn_exact", "learned by single_head_exact"),
])
def test_a_bad_instance_file_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], obj: dict[str, object], label: str,
        needle: str) -> None:
    path = _write(tmp_path / "bad.json", obj)
    assert main(["learn", label, "--instance", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and needle in captured.err and captured.err.count("\n") == 1


def test_instance_with_field_flag_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "head.json", HEAD)
    assert main(["learn", "single_head_exact", "--instance", path, "--field", "F64"]) == 2


@pytest.mark.parametrize("label", ["single_head_exact", "noisy_oracle", "relu_ffn_exact",
                                   "one_layer_reduction", "low_rank_adaptive",
                                   "multihead_canonical", "membership_queries"])
def test_save_of_every_label_holds_the_hidden_instance_and_replays(
        tmp_path: Path, label: str, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "saved.json"
    assert main(["learn", label, "--d", "2", "--certificate-probes", "2",
                 "--save", str(saved)]) == 0
    obj = json.loads(saved.read_text(encoding="utf-8"))
    assert {"recovery", "instance", "hidden", "certificate"} <= set(obj)
    assert obj["recovery"]["status"] in ("exact", "exact_given", "approximate")
    hidden = parse_instance(obj["hidden"])  # the hidden model, in the instance-file format
    assert hidden.model.d == 2
    if label == "single_head_exact":
        assert [str(x) for x in obj["recovery"]["params"]["W"]["entries"]] == \
            [str(x) for row in obj["hidden"]["W"] for x in row]
    assert main(["replay", str(saved)]) == 0
    capsys.readouterr()
    # the first parameter's first entry moved: a wrong model, rejected by the replay (the
    # noisy recovery's by 2, about 20 times its entry bound: its answers carry the oracle's
    # tolerance 1/50, which hides a move of 1/2 at d = 2)
    entries = next(iter(obj["recovery"]["params"].values()))["entries"]
    entries[0] = str(Fraction(str(entries[0])) + (2 if label == "noisy_oracle"
                                                  else Fraction(1, 7)))
    assert main(["replay", _write(saved, obj)]) == 1
    assert f"transcript replay: certificate ({obj['certificate']['kind']}) for {label}: FAILS " \
        "at transcript query #" in capsys.readouterr().out


def test_instance_file_memory_is_estimated_at_the_files_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: the memory check of learn --instance used --d (default 8), not the file's d."""
    from exactattn import cli

    d = 12
    big = {"model": "single_head", "W": [[1] * d for _ in range(d)], "v": [1] * d}
    path = _write(tmp_path / "big.json", big)
    # enough for the default --d 8, not for the file's d = 12
    monkeypatch.setattr(cli, "available_memory",
                        lambda: cli.memory_estimate("single_head_exact", d) - 1)
    assert cli.memory_estimate("single_head_exact", 8) < cli.available_memory()
    assert main(["learn", "single_head_exact", "--instance", path]) == 2
    err = capsys.readouterr().err
    assert f"at d = {d} ({path}) needs at least" in err and len(err.splitlines()) == 1
