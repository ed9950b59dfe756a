"""exactattn.testing: the helpers a user's own test file calls, shown failing when they must."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from exactattn.cli import main
from exactattn.testing import UPDATE_GOLDEN_ENV, assert_recovers, assert_replays

HEAD = {"model": "single_head", "W": [["1/3", "-2"], ["7", "0"]], "v": ["0", "5/2"]}


@pytest.fixture
def head_file(tmp_path: Path) -> Path:
    path = tmp_path / "head.json"
    path.write_text(json.dumps(HEAD), encoding="utf-8")
    return path


def test_golden_is_created_once_then_pins_the_recovery(head_file: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPDATE_GOLDEN_ENV, raising=False)
    golden = tmp_path / "head.golden.json"
    with pytest.raises(AssertionError, match="created"):
        assert_recovers(head_file, golden=golden)
    result = assert_recovers(head_file, golden=golden, status="exact")
    assert result.recovery.queries == 6
    # a changed answer in the pinned transcript must be reported, with where it differs
    pinned = json.loads(golden.read_text(encoding="utf-8"))
    pinned["transcript"]["entries"][3]["answer"] = "1"
    golden.write_text(json.dumps(pinned), encoding="utf-8")
    with pytest.raises(AssertionError, match=r"transcript\.entries\[3\]\.answer"):
        assert_recovers(head_file, golden=golden)
    monkeypatch.setenv(UPDATE_GOLDEN_ENV, "1")  # accepting the new recovery on purpose
    assert_recovers(head_file, golden=golden)
    monkeypatch.delenv(UPDATE_GOLDEN_ENV)
    assert_recovers(head_file, golden=golden)


def test_assert_recovers_fails_on_a_wrong_status_or_a_bad_file(head_file: Path,
                                                               tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="status exact, expected float"):
        assert_recovers(head_file, status="float")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**HEAD, "v": [0.5, 1]}), encoding="utf-8")
    with pytest.raises(AssertionError, match="'v\\[0\\]'"):
        assert_recovers(bad)


def test_assert_replays_passes_on_a_saved_file_and_fails_on_a_tampered_one(
        head_file: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    assert main(["learn", "single_head_exact", "--instance", str(head_file),
                 "--save", str(saved)]) == 0
    certs = assert_replays(saved)
    assert [c.fresh for c in certs] == [0, 16] and all(c.holds for c in certs)
    obj = json.loads(saved.read_text(encoding="utf-8"))
    obj["recovery"]["params"]["v"]["entries"][1] = "5/3"
    (tmp_path / "tampered.json").write_text(json.dumps(obj), encoding="utf-8")
    with pytest.raises(AssertionError, match="FAILS at transcript query #1"):
        assert_replays(tmp_path / "tampered.json")


def test_assert_replays_refuses_a_file_with_nothing_to_check(head_file: Path,
                                                              tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    assert main(["learn", "single_head_exact", "--instance", str(head_file),
                 "--save", str(saved)]) == 0
    obj = json.loads(saved.read_text(encoding="utf-8"))
    del obj["instance"]
    obj["recovery"]["transcript"]["entries"] = []
    (tmp_path / "empty.json").write_text(json.dumps(obj), encoding="utf-8")
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_replays(tmp_path / "empty.json")


def test_a_recovery_that_differs_fails_the_truth_and_the_certificate(
        head_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison with the hidden model and the certificate can both say no."""
    import dataclasses

    import exactattn.learners as lrn
    from exactattn.instance_files import learn_instance, load_instance

    real = lrn.learn_single_head

    def off_by_one(oracle: Any, **kwargs: Any) -> Any:
        rec = real(oracle, **kwargs)
        W = rec.W.copy()
        W[0, 0] = W[0, 0] + 1
        return dataclasses.replace(rec, params={**rec.params, "W": W})

    monkeypatch.setattr(lrn, "learn_single_head", off_by_one)
    result = learn_instance(load_instance(head_file))
    assert not result.matches_truth and not result.certificate.holds and not result.holds
    with pytest.raises(AssertionError, match="DIFFERS from the hidden model"):
        assert_recovers(head_file)
