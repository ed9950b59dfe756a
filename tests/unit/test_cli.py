"""The command line: exit codes, stdout/stderr split, JSON, save and replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exactattn.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


def test_verify_passes_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert main(["verify", "--json", str(out)]) == EXIT_OK
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert all(line.startswith("PASS") for line in lines[:-1])
    assert "0 failed" in lines[-1]
    assert "[1/" in captured.err  # progress goes to stderr
    report = json.loads(out.read_text())
    assert report["failed"] == 0 and report["passed"] == len(report["claims"]) >= 7
    from exactattn.claims import labels

    assert {c["label"] for c in report["claims"]} == set(labels())
    assert "single_head_exact" in labels()


def test_verify_exits_1_when_a_claim_fails(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from exactattn import claims

    broken = claims.Claim("single_head_exact.broken", "single_head_exact", "test", "broken",
                          "0 = 1", "none", lambda: claims.Outcome(False, 1, "on purpose"))
    monkeypatch.setattr(claims, "REGISTRY", [*claims.REGISTRY, broken])
    assert main(["verify", "--quiet", "--only", "single_head_exact.broken"]) == EXIT_FAILED
    assert "FAIL  single_head_exact.broken" in capsys.readouterr().out


def test_verify_unknown_claim_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--only", "no_such_claim"]) == EXIT_USAGE
    assert "unknown claim" in capsys.readouterr().err


@pytest.mark.parametrize("field", ["EXP", "F64"])
def test_learn_reports_queries_and_exactness(field: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "single_head_exact", "--d", "5", "--seed", "3", "--field", field,
                 "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["queries"] == info["expected_queries"] == 30
    assert info["status"] == ("exact" if field == "EXP" else "float")
    assert info["hypotheses"] == []
    assert info["certificate"]["holds"] is True
    if field == "EXP":
        assert info["matches_truth"] is True
    else:
        assert info["max_abs_error"]["W"] < 1e-12


def test_learn_over_qq_is_a_clear_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "single_head_exact", "--field", "QQ"]) == EXIT_USAGE
    assert "not rational" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["learn", "nonsense"],
    ["learn", "single_head_exact", "--d", "zero"],
    ["learn", "single_head_exact", "--field", "RR"],
    ["frobnicate"],
    [],
])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == EXIT_USAGE
    assert capsys.readouterr().err


def test_learn_rejects_nonpositive_d(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "single_head_exact", "--d", "0"]) == EXIT_USAGE
    assert "--d must be at least 1" in capsys.readouterr().err


def test_save_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.json"
    assert main(["learn", "single_head_exact", "--d", "3", "--save", str(path)]) == EXIT_OK
    capsys.readouterr()
    assert main(["replay", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "transcript replay" in out and "holds" in out
    # tamper with one recorded answer: the offline replay must now fail
    saved = json.loads(path.read_text())
    saved["recovery"]["transcript"]["entries"][0]["answer"] = "12345"
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path), "--certificate-probes", "0"]) == EXIT_FAILED
    assert "FAILS" in capsys.readouterr().out


def test_replay_of_a_non_recovery_file_is_a_usage_error(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "junk.json"
    path.write_text("{\"not\": 1}")
    assert main(["replay", str(path)]) == EXIT_USAGE
    assert "cannot read a saved recovery" in capsys.readouterr().err


def test_claims_lists_every_claim(capsys: pytest.CaptureFixture[str]) -> None:
    from exactattn.claims import REGISTRY

    assert main(["claims", "--json"]) == EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == [c.id for c in REGISTRY]


def test_latex_writes_one_file_per_label(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "generated"
    assert main(["latex", "--out", str(out), "--no-check"]) == EXIT_OK
    assert (out / "single_head_exact.tex").exists() and (out / "all.tex").exists()
    capsys.readouterr()


def test_learn_noisy_reports_bound_and_certificate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "noisy_oracle", "--d", "3", "--adversary", "break_naive",
                 "--epsilon-W", "1/3", "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["queries"] == info["expected_queries"] == 12
    assert info["within_bound"] is True and info["max_entry_error"] <= info["entry_bound"]
    assert info["certificate"]["holds"] is True and info["certificate"]["kind"] == "tolerance"
    assert info["epsilon_W"] == "1/3"


@pytest.mark.parametrize("argv", [
    ["learn", "noisy_oracle", "--epsilon-W", "abc"],
    ["learn", "noisy_oracle", "--adversary", "gentle"],
])
def test_noisy_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_noisy_with_a_float_field_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "noisy_oracle", "--field", "F64"]) == EXIT_USAGE
    assert "exact hidden model" in capsys.readouterr().err


def test_noisy_nonpositive_epsilon_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "noisy_oracle", "--d", "2", "--epsilon-W", "0"]) == EXIT_USAGE
    assert "epsilon_W" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["learn", "relu_ffn_exact", "--d", "3", "--m", "3"],
    ["learn", "one_layer_reduction", "--d", "3", "--m", "2"],
    ["learn", "low_rank_adaptive", "--d", "5", "--rank", "2"],
    ["learn", "multihead_canonical", "--d", "3", "--heads", "2"],
])
def test_learn_the_other_exact_results(argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--json"]) == EXIT_OK
    info = json.loads(capsys.readouterr().out)
    assert info["matches_truth"] is True
    # each of these rests on a hypothesis no query confirms, and says so
    assert info["status"] == "exact_given" and info["hypotheses"]
    assert info["certificate"]["holds"] is True and info["certificate"]["kind"] == "exact"
    if argv[1] == "low_rank_adaptive":
        assert info["queries"] == info["expected_queries"] == 2 * (2 * 5 - 2) + 5
