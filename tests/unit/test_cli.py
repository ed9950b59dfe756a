"""The command line: exit codes, stdout/stderr split, JSON, save and replay."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

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
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err


def test_learn_rejects_nonpositive_d(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "single_head_exact", "--d", "0"]) == EXIT_USAGE
    assert "argument --d: must be an integer >= 1, got 0" in capsys.readouterr().err


def test_save_then_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.json"
    assert main(["learn", "single_head_exact", "--d", "3", "--save", str(path)]) == EXIT_OK
    capsys.readouterr()
    assert main(["replay", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "transcript replay" in out and "holds" in out
    # tamper with one recorded answer: the offline replay must now fail
    saved = json.loads(path.read_text())
    answer = saved["recovery"]["transcript"]["entries"][0]["answer"]
    saved["recovery"]["transcript"]["entries"][0]["answer"] = "12345"
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path), "--certificate-probes", "0"]) == EXIT_FAILED
    assert "FAILS" in capsys.readouterr().out
    # the answers intact and W[0, 0] off by 1/7: a wrong model, rejected by the replay
    saved["recovery"]["transcript"]["entries"][0]["answer"] = answer
    W = saved["recovery"]["params"]["W"]["entries"]
    W[0] = str(Fraction(str(W[0])) + Fraction(1, 7))
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path), "--certificate-probes", "0"]) == EXIT_FAILED
    assert "transcript replay: certificate (exact) for single_head_exact: FAILS at transcript " \
        "query #" in capsys.readouterr().out


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
    assert main(argv) == EXIT_USAGE
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


# -- issue 10, defect 2.7: bad input is refused at once, with one line ------------------
def _one_clear_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and lines[0].startswith("exactattn")
    return lines[0]


@pytest.mark.parametrize(("argv", "needle"), [
    (["learn", "single_head_exact", "--d", "2", "--seed", "-1"], "--seed: must be an integer >= 0"),
    (["learn", "relu_ffn_exact", "--d", "2", "--m", "-1"], "--m: must be an integer >= 1"),
    (["learn", "relu_ffn_exact", "--d", "2", "--m", "0"], "--m: must be an integer >= 1"),
    (["learn", "low_rank_adaptive", "--d", "3", "--rank", "-1"], "--rank: must be an integer >= 0"),
    (["learn", "multihead_canonical", "--d", "2", "--heads", "-1"],
     "--heads: must be an integer >= 1"),
    (["learn", "low_rank_adaptive", "--d", "2", "--rank", "3"], "--rank 3 exceeds --d 2"),
    (["replay", "x.json", "--seed", "-5"], "--seed: must be an integer >= 0"),
    (["learn", "single_head_exact", "--certificate-probes", "1000000000"],
     "--certificate-probes: must be an integer in [0, 100000]"),
])
def test_bad_sizes_exit_2_with_one_line(argv: list[str], needle: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: these raised numpy's ValueError (exit 1, a traceback), and
    ``--d 2 --rank 3`` never ended (the instance builder looped)."""
    assert main(argv) == EXIT_USAGE
    assert needle in _one_clear_line(capsys)


def test_huge_d_is_refused_with_the_memory_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: --d 1000000000 ran silently for minutes."""
    for field in ("EXP", "F64"):
        assert main(["learn", "single_head_exact", "--d", "1000000000", "--field", field]) \
            == EXIT_USAGE
        line = _one_clear_line(capsys)
        assert "needs at least" in line and "available" in line


def test_memory_refusal_compares_estimate_and_available(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from exactattn import cli

    need = cli.memory_estimate("single_head_exact", 8)
    monkeypatch.setattr(cli, "available_memory", lambda: need - 1)
    assert main(["learn", "single_head_exact", "--d", "8"]) == EXIT_USAGE
    assert f"more than the {cli._human(need - 1)} available" in _one_clear_line(capsys)
    monkeypatch.setattr(cli, "available_memory", lambda: need)
    assert main(["learn", "single_head_exact", "--d", "8", "--certificate-probes", "1"]) == EXIT_OK
    # the estimate grows with the sizes of every label
    for label in cli.LEARNABLE:
        assert cli.memory_estimate(label, 16, m=4, rank=2, heads=2) \
            < cli.memory_estimate(label, 32, m=4, rank=2, heads=2)


@pytest.mark.parametrize("where", ["missing_dir", "directory"])
@pytest.mark.parametrize("argv", [
    ["learn", "single_head_exact", "--d", "2", "--save"],
    ["learn", "relu_ffn_exact", "--d", "2", "--m", "2", "--save"],
    ["verify", "--quiet", "--only", "single_head_exact.two_token_identity", "--json"],
])
def test_unwritable_output_is_refused_before_the_work(
        argv: list[str], where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: an unwritable --save / --json was found only after the work (traceback)."""
    target = tmp_path / "no" / "such" / "out.json" if where == "missing_dir" else tmp_path
    assert main([*argv, str(target)]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert len(captured.err.splitlines()) == 1  # (the 'or' below once bypassed this check)
    assert "cannot write" in captured.err or "is a directory" in captured.err


def test_latex_unwritable_out_is_refused(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["latex", "--no-check", "--out", str(blocker / "generated")]) == EXIT_USAGE
    assert "--out" in _one_clear_line(capsys)


def _saved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "rec.json"
    assert main(["learn", "single_head_exact", "--d", "2", "--certificate-probes", "1",
                 "--save", str(path)]) == EXIT_OK
    capsys.readouterr()
    return path, json.loads(path.read_text())


def _tamper(saved: dict[str, Any], how: str) -> Any:
    rec = saved["recovery"]
    if how == "missing key":
        del rec["params"]
    elif how == "zero denominator":
        rec["params"]["W"]["entries"][0] = "1/0"
    elif how == "bad field name":
        rec["field"] = "RR"
    elif how == "huge precision":
        rec["field"] = "BALL(4000000000)"
    elif how == "huge precision instance":
        saved["instance"]["field"] = "BALL(4000000000)"
    elif how == "instance d not an int":
        saved["instance"]["d"] = "x"
    elif how == "huge exponent":
        rec["options"]["pivot"] = "1e999999999"
    elif how == "wrong label":
        rec["label"] = "multihead_canonical"
    elif how == "not an object":
        return [1, 2]
    elif how == "too deep":
        return "too deep"
    return saved


@pytest.mark.parametrize("how", ["missing key", "zero denominator", "bad field name",
                                 "huge precision", "huge precision instance",
                                 "instance d not an int", "huge exponent", "wrong label",
                                 "not an object", "too deep"])
def test_tampered_replay_file_exits_2_with_one_line(
        how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: several of these gave a traceback and exit 1."""
    path, saved = _saved(tmp_path, capsys)
    tampered = _tamper(saved, how)
    path.write_text("[" * 100_000 + "]" * 100_000 if tampered == "too deep"
                    else json.dumps(tampered))
    assert main(["replay", str(path)]) == EXIT_USAGE
    assert str(path) in _one_clear_line(capsys) or how == "wrong label"


def test_replay_that_checked_nothing_does_not_hold(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: transcript deleted and W changed printed 'holds; 0 queries checked', exit 0."""
    path, saved = _saved(tmp_path, capsys)
    saved["recovery"]["transcript"]["entries"] = []
    saved["recovery"]["params"]["W"]["entries"][0] = "5"
    del saved["instance"]
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "NOTHING CHECKED" in out and "holds;" not in out
    assert "the transcript holds 0 of the 6 queries" in out


def test_replay_with_the_instance_still_catches_a_changed_W(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, saved = _saved(tmp_path, capsys)
    saved["recovery"]["transcript"]["entries"] = []
    saved["recovery"]["params"]["W"]["entries"][0] = "5"
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path)]) == EXIT_FAILED
    assert "FAILS" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["learn", "relu_ffn_exact", "--d", "2", "--m", "2"],
    ["learn", "noisy_oracle", "--d", "2"],
])
def test_save_works_for_every_label(argv: list[str], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--save was silently ignored by every label but single_head_exact."""
    path = tmp_path / "rec.json"
    assert main([*argv, "--certificate-probes", "2", "--save", str(path)]) == EXIT_OK
    capsys.readouterr()
    assert json.loads(path.read_text())["recovery"]["label"] == argv[1]
    assert main(["replay", str(path)]) == EXIT_OK
    assert "holds" in capsys.readouterr().out
    # the first parameter's first entry moved: a wrong model, rejected by the replay (the
    # noisy recovery's by 2, about 20 times its entry bound: its answers carry the oracle's
    # tolerance 1/50, which hides a move of 1/2 at d = 2)
    saved = json.loads(path.read_text())
    entries = next(iter(saved["recovery"]["params"].values()))["entries"]
    entries[0] = str(Fraction(str(entries[0]))
                     + (2 if argv[1] == "noisy_oracle" else Fraction(1, 7)))
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path)]) == EXIT_FAILED
    kind = "tolerance" if argv[1] == "noisy_oracle" else "exact"
    assert f"transcript replay: certificate ({kind}) for {argv[1]}: FAILS at transcript " \
        "query #" in capsys.readouterr().out


def test_noisy_replay_rejects_a_move_of_ten_entry_bounds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the tolerance of a noisy recovery's certificate used 1-norms and a covariance bound
    # twice too large: W[0, 0] + 1 (about 10 times its entry bound 0.106) was accepted at
    # d = 2; with 2-norms (rational upper bounds) and Popoviciu's 1/2 it is rejected
    path = tmp_path / "rec.json"
    assert main(["learn", "noisy_oracle", "--d", "2", "--certificate-probes", "2",
                 "--save", str(path)]) == EXIT_OK
    saved = json.loads(path.read_text())
    bound = Fraction(saved["recovery"]["options"]["W_entry_bound"])
    assert 8 * bound < 1 < 10 * bound
    entries = saved["recovery"]["params"]["W"]["entries"]
    entries[0] = str(Fraction(str(entries[0])) + 1)
    path.write_text(json.dumps(saved))
    capsys.readouterr()
    assert main(["replay", str(path)]) == EXIT_FAILED
    assert "certificate (tolerance) for noisy_oracle: FAILS" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["learn", "relu_ffn_exact", "--d", "2", "--m", "2"],
    ["learn", "low_rank_adaptive", "--d", "3", "--rank", "1"],
    ["learn", "multihead_canonical", "--d", "2", "--heads", "2"],
])
def test_replay_rebuilds_every_seeded_instance(argv: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Replay asks fresh queries of every label's seeded instance, and so catches a
    tampered parameter even when the transcript is gone."""
    path = tmp_path / "rec.json"
    assert main([*argv, "--certificate-probes", "1", "--save", str(path)]) == EXIT_OK
    capsys.readouterr()
    assert main(["replay", str(path), "--certificate-probes", "3"]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"against the built-in instance {argv[1]}(d=" in out and "3 fresh" in out
    saved = json.loads(path.read_text())
    saved["recovery"]["transcript"]["entries"] = []
    first = next(iter(saved["recovery"]["params"].values()))
    first["entries"][-1] = "7/3" if first["entries"][-1] != "7/3" else "5"
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path), "--certificate-probes", "8"]) == EXIT_FAILED
    assert "FAILS" in capsys.readouterr().out
    saved["instance"]["heads"] = -1
    path.write_text(json.dumps(saved))
    assert main(["replay", str(path)]) == EXIT_USAGE
    assert "instance block" in _one_clear_line(capsys)
