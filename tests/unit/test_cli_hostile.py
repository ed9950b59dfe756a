"""Hostile input to every CLI command: exit 2 with one line, never a traceback, never a hang.

The CLI half of issue 10's property suite. Every command (verify, claims,
learn for each label, replay, latex) is called in-process with malformed and
hostile arguments and files, and the contract of the command line is
asserted:

* bad input: exit 2, exactly one line on stderr, no traceback, nothing on
  stdout (no work was done);
* a failed check: exit 1;
* valid small input: exit 0;
* nothing hangs: every call runs under a SIGALRM deadline, and sizes are
  bounded (small d, or sizes so large that the memory estimate refuses them).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exactattn.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, LEARNABLE, main

#: seconds one CLI call may take before the test calls it a hang
DEADLINE = 60


@contextlib.contextmanager
def _deadline(seconds: int, argv: list[str]) -> Iterator[None]:
    def hang(signum: int, frame: Any) -> None:
        raise AssertionError(f"exactattn {' '.join(argv)} ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run(argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``exactattn argv``, in-process and under a deadline."""
    out, err = io.StringIO(), io.StringIO()
    with _deadline(DEADLINE, argv), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_bad_input(argv: list[str], *needles: str) -> str:
    code, out, err = run(argv)
    lines = err.splitlines()
    assert code == EXIT_USAGE, (argv, code, out, err)
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err and lines[0].startswith("exactattn")
    assert out == "", (argv, out)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- parametrised: every command, malformed arguments --------------------------------
BAD_ARGV = [
    [],
    ["frobnicate"],
    ["--bogus"],
    ["verify", "--only"],
    ["verify", "--only", "no_such_claim"],
    ["verify", "--bogus"],
    ["claims", "--bogus"],
    ["claims", "extra"],
    ["latex", "--bogus"],
    ["replay"],
    ["replay", "a.json", "--certificate-probes", "-1"],
    ["replay", "a.json", "--seed", "x"],
    ["learn"],
    ["learn", "nonsense"],
    *[["learn", label, *flags] for label in LEARNABLE for flags in (
        ["--d", "0"], ["--d", "-4"], ["--d", "x"], ["--d", "1.5"], ["--d", ""],
        ["--seed", "-1"], ["--seed", "1e3"], ["--m", "0"], ["--m", "-2"], ["--rank", "-1"],
        ["--heads", "0"], ["--heads", "-3"], ["--certificate-probes", "-1"],
        ["--certificate-probes", str(10**12)], ["--field", "RR"], ["--field", "BALL(abc)"],
        ["--probes", "random"], ["--adversary", "gentle"], ["--epsilon-W", "1/0"],
        ["--epsilon-W", "abc"], ["--epsilon-W", "1e999999999"], ["--epsilon-v", "1e-99999"],
        ["--epsilon-v", "1/" + "7" * 5000], ["--d", str(10**9)], ["--d", str(10**40)],
    )],
    ["learn", "low_rank_adaptive", "--d", "2", "--rank", "3"],
    ["learn", "low_rank_adaptive", "--d", "1", "--rank", str(10**30)],
    ["learn", "relu_ffn_exact", "--d", "4", "--m", str(10**15)],
    ["learn", "one_layer_reduction", "--d", "4", "--m", str(10**15)],
    ["learn", "multihead_canonical", "--d", "4", "--heads", str(10**15)],
    ["learn", "single_head_exact", "--field", "QQ"],
    ["learn", "noisy_oracle", "--field", "F64"],
    ["learn", "noisy_oracle", "--d", "2", "--epsilon-W", "0"],
    ["learn", "noisy_oracle", "--d", "2", "--epsilon-v", "-1/2"],
    *[["learn", label, "--field", "F64"] for label in LEARNABLE
      if label not in ("single_head_exact",)],
]


@pytest.mark.parametrize("argv", BAD_ARGV, ids=lambda a: " ".join(a)[:60] or "(none)")
def test_bad_arguments(argv: list[str]) -> None:
    assert_bad_input(argv)


@pytest.mark.parametrize("label", LEARNABLE)
@pytest.mark.parametrize("where", ["missing_dir", "directory", "file_as_dir"])
def test_unwritable_save_for_every_label(label: str, where: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    target = {"missing_dir": tmp_path / "no" / "such" / "rec.json",
              "directory": tmp_path, "file_as_dir": blocker / "rec.json"}[where]
    assert_bad_input(["learn", label, "--d", "2", "--save", str(target)], "--save")


@pytest.mark.parametrize("where", ["missing_dir", "directory"])
def test_unwritable_verify_json(where: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "r.json" if where == "missing_dir" else tmp_path
    assert_bad_input(["verify", "--quiet", "--json", str(target)], "--json")


def test_a_long_number_in_an_error_is_shortened() -> None:
    line = assert_bad_input(["learn", "noisy_oracle", "--d", "2", "--epsilon-W", "1e-4000"])
    assert len(line) < 300 and "digits)" in line


def test_unwritable_latex_out(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_bad_input(["latex", "--no-check", "--out", str(blocker / "generated")], "--out")


# -- replay: malformed and tampered files --------------------------------------------
@functools.cache
def _saved_text() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rec.json"
        code, _, err = run(["learn", "single_head_exact", "--d", "2", "--seed", "1",
                            "--certificate-probes", "1", "--save", str(path)])
        assert code == EXIT_OK, err
        return path.read_text()


def _replay(tmp: Path, text: str | bytes, *extra: str) -> tuple[int, str, str]:
    path = tmp / "rec.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return run(["replay", str(path), "--certificate-probes", "2", *extra])


@pytest.mark.parametrize("content", [
    "", "null", "[]", "{}", "42", '"recovery"', "{\"recovery\": null}", "{\"recovery\": []}",
    "not json", "{\"recovery\": {}}", b"\xff\xfe\x00binary", "[" * 200_000,
    "{\"recovery\": {\"field\": \"EXP\"}}",
])
def test_malformed_replay_files(content: str | bytes, tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_bad_input(["replay", str(path)], str(path))


def test_replay_of_a_missing_file_or_a_directory(tmp_path: Path) -> None:
    assert_bad_input(["replay", str(tmp_path / "absent.json")], "absent.json")
    assert_bad_input(["replay", str(tmp_path)])


def test_a_tampered_answer_is_a_failed_check(tmp_path: Path) -> None:
    saved = json.loads(_saved_text())
    saved["recovery"]["transcript"]["entries"][0]["answer"] = "12345"
    code, out, err = _replay(tmp_path, json.dumps(saved), "--certificate-probes", "0")
    assert code == EXIT_FAILED and "FAILS" in out and "Traceback" not in err


def test_the_untampered_file_replays(tmp_path: Path) -> None:
    code, out, _ = _replay(tmp_path, _saved_text())
    assert code == EXIT_OK and out.count("holds") == 2


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON object."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            out += _paths(v, (*prefix, k))
    return out


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1/0", "0/0", "BALL(4000000000)", "MP(8)", "BALL(7)", "1e999999999",
                     "-1e-999999", "nan", "inf", "", "x", "EXP", "F64", "QQ", "RR",
                     "9" * 5000, "1/" + "9" * 4000, "single_head", "noisy_oracle",
                     "relu_ffn_exact", "multihead_canonical", "low_rank_adaptive"]),
    st.text(max_size=20),
    st.lists(st.integers(-3, 3), max_size=4),
    st.dictionaries(st.sampled_from(["shape", "entries", "num", "den", "mid", "rad"]),
                    st.lists(st.sampled_from(["0", "1", "1/2", "-1"]), max_size=3),
                    max_size=3),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_tampered_replay_files(data: st.DataObject) -> None:
    """Replace (or delete) any value of a saved recovery: exit 0, 1 or 2, never a traceback."""
    saved = json.loads(_saved_text())
    paths = _paths(saved)
    path = data.draw(st.sampled_from(paths), label="path")
    tampered = copy.deepcopy(saved)
    parent = functools.reduce(lambda o, k: o[k], path[:-1], tampered)
    if data.draw(st.booleans(), label="delete") and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(HOSTILE_VALUES, label="value")
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = _replay(Path(tmp), json.dumps(tampered))
    assert "Traceback" not in err
    if code == EXIT_USAGE:
        assert len(err.splitlines()) == 1 and out == "", err
    else:
        assert code in (EXIT_OK, EXIT_FAILED) and out.startswith("transcript replay:"), (code, err)
        # a replay that holds has checked something
        assert code == EXIT_FAILED or "holds;" in out


# -- learn: sizes drawn from small and absurd ranges ---------------------------------
SIZES = st.one_of(st.integers(-3, 3), st.integers(10**12, 10**40))  # huge: beyond any memory


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(label=st.sampled_from(LEARNABLE), d=SIZES, seed=st.one_of(st.integers(-3, 3),
                                                                    st.integers(2**62, 2**70)),
       m=SIZES, rank=SIZES, heads=SIZES, field=st.sampled_from(["EXP", "F64", "QQ"]))
def test_learn_with_any_sizes(label: str, d: int, seed: int, m: int, rank: int, heads: int,
                              field: str) -> None:
    """Valid small sizes run and pass (exit 0); anything else exits 2 with one line."""
    argv = ["learn", label, "--d", str(d), "--seed", str(seed), "--m", str(m),
            "--rank", str(rank), "--heads", str(heads), "--field", field,
            "--certificate-probes", "2", "--no-progress"]
    # a size the label uses must be small; one it ignores must only have the right sign
    m_ok = 1 <= m and (m <= 3 or label not in ("relu_ffn_exact", "one_layer_reduction"))
    rank_ok = 0 <= rank and (rank <= d or label != "low_rank_adaptive")
    heads_ok = 1 <= heads and (heads <= 3 or label != "multihead_canonical")
    field_ok = field in (("EXP", "F64") if label == "single_head_exact" else ("EXP",))
    valid = 1 <= d <= 3 and m_ok and rank_ok and heads_ok and seed >= 0 and field_ok
    if not valid:
        assert_bad_input(argv)
        return
    code, out, err = run(argv)
    assert code == EXIT_OK, (argv, code, out, err)
    assert "Traceback" not in err and "certificate" in out
