"""``exactattn learn layer FILE --layer L [--heads ...]``: every head of a layer, on a file
written here (random_layer(16, 4): four heads of dimension 4, about 3,100 queries each run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exactattn.checkpoint_layer import layer_merged
from exactattn.checkpoints import BERT_NAMES, load_layer, random_layer
from exactattn.checks.multihead_biased import biased_recovery_errors
from exactattn.cli import main
from exactattn.learners import multihead_saturated
from exactattn.learners.recovery import Recovery

st_numpy = pytest.importorskip("safetensors.numpy")
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def _write(path: Path, tensors: tuple[Any, ...]) -> Path:
    names = BERT_NAMES.resolve(prefix="", layer=0)
    st_numpy.save_file({n: np.ascontiguousarray(t) for n, t in
                        zip(names.values(), tensors, strict=True)}, str(path))
    return path


@pytest.fixture(scope="module")
def layer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    L = random_layer(16, 4, seed=0)
    return _write(tmp_path_factory.mktemp("layer") / "m.safetensors",
                  (L.Wq, L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo, L.bo))


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMAS / "learn_layer.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _base(path: Path) -> list[str]:
    return ["learn", "layer", str(path), "--layer", "0", "--num-heads", "4"]


def test_every_head_within_its_estimate_json(layer_file: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*_base(layer_file), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e.message for e in _validator().iter_errors(out)] == []
    assert out["heads"] == [0, 1, 2, 3] and out["recovered_heads"] == 4 and out["paired"]
    assert [row["head"] for row in out["per_head"]] == [0, 1, 2, 3]
    assert sorted(row["recovered"] for row in out["per_head"]) == [0, 1, 2, 3]
    for row in out["per_head"]:
        assert row["within_estimates"] and row["relative_error"] <= row["estimate"], row
        assert row["relative_error"] < 1e-9
    assert out["beta"]["within"] and out["within_estimates"] and out["ok"]
    assert out["status"] == "float" and out["refused"] is None
    # the adaptive path plus the fixed phases: the closed form equals the counter
    assert out["queries"] == out["closed_form_queries"] == sum(out["queries_by_phase"].values())
    cert = out["certificate"]
    assert cert["holds"] and cert["kind"] == "tolerance" and cert["fresh"] == 16
    # the schema refuses a document that says ok beside a refusal or a failed certificate
    v = _validator()
    assert not v.is_valid({**out, "refused": "IllConditionedError: x"})
    assert not v.is_valid({**out, "certificate": {**cert, "holds": False, "verdict": "fails"}})
    assert not v.is_valid({**out, "status": "exact"})


def test_chosen_heads_text_and_progress(layer_file: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    class Recording:
        def __init__(self, what: str) -> None:
            self.what = what

        def __call__(self, done: int, total: int) -> None:
            calls.append((done, total))

        def close(self) -> None:
            pass

    monkeypatch.setattr("exactattn.progress.ProgressBar", Recording)
    assert main([*_base(layer_file), "--heads", "3,1", "--readout-seed", "2",
                 "--certificate-probes", "4"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "heads 3,1 of 4" in lines[0]
    rows = [ln.split() for ln in lines if ln.startswith("     ")]
    assert [r[0] for r in rows] == ["3", "1"] and all(r[-1] == "yes" for r in rows)
    assert any(ln.startswith("certificate (tolerance)") and ": holds;" in ln for ln in lines)
    assert "rho ~ N(0, I/d), seed 2" in captured.err
    # the learner's progress reached the bar, up to its total (the bases b_0 .. b_16)
    assert len(calls) >= 2 and calls[-1][0] == calls[-1][1] > 1
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_save_replays_and_a_moved_W_entry_is_rejected(
        layer_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "layer.json"
    assert main([*_base(layer_file), "--heads", "1,2", "--certificate-probes", "2",
                 "--save", str(saved)]) == 0
    capsys.readouterr()
    assert main(["replay", str(saved)]) == 0
    assert ": holds;" in capsys.readouterr().out
    # the saved recovery, compared with the file's merged parameters independently
    obj = json.loads(saved.read_text(encoding="utf-8"))
    rec = Recovery.from_json(obj["recovery"])
    truth = layer_merged(load_layer(layer_file, layer=0, num_heads=4), heads=(1, 2),
                         readout=np.eye(16)[0])
    rel, within = biased_recovery_errors(rec, truth)
    assert within and rel < 1e-9
    assert obj["instance"]["kind"] == "checkpoint_layer" and obj["certificate"]["holds"]
    # the largest W entry moved by a relative 1e-6: the transcript replay fails (exit 1)
    entries = obj["recovery"]["params"]["W"]["entries"]
    k = int(np.argmax(np.abs(np.asarray(entries, dtype=np.float64))))
    entries[k] = float(entries[k]) * (1 + 1e-6)
    saved.write_text(json.dumps(obj), encoding="utf-8")
    assert main(["replay", str(saved)]) == 1
    assert "FAILS at transcript query #" in capsys.readouterr().out


def test_replay_asks_fresh_queries_of_the_checkpoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    L = random_layer(16, 4, seed=0)
    layer_file = _write(tmp_path / "m.safetensors",
                        (L.Wq, L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo, L.bo))
    saved = tmp_path / "layer.json"
    assert main([*_base(layer_file), "--readout-seed", "1", "--certificate-probes", "0",
                 "--save", str(saved)]) == 0
    capsys.readouterr()
    obj = json.loads(saved.read_text(encoding="utf-8"))
    obj["recovery"]["transcript"]["entries"] = []  # only the fresh queries can check it
    saved.write_text(json.dumps(obj), encoding="utf-8")
    assert main(["replay", str(saved), "--certificate-probes", "8", "--json"]) == 0
    certs = json.loads(capsys.readouterr().out)["certificates"]
    assert certs[1]["what"].startswith("against the checkpoint layer LayerReadout(m.safetensors")
    assert certs[1]["holds"] and certs[1]["fresh"] == 8 and certs[0]["checked"] == 0
    # the largest W entry moved by a relative 1e-3: the fresh queries of the layer see it
    entries = obj["recovery"]["params"]["W"]["entries"]
    k = int(np.argmax(np.abs(np.asarray(entries, dtype=np.float64))))
    entries[k] = float(entries[k]) * (1 + 1e-3)
    saved.write_text(json.dumps(obj), encoding="utf-8")
    assert main(["replay", str(saved)]) == 1
    assert "FAILS at fresh query #" in capsys.readouterr().out
    # the checkpoint gone: a note on stderr, the transcript alone (here empty: nothing checked)
    layer_file.unlink()
    assert main(["replay", str(saved)]) == 1
    captured = capsys.readouterr()
    assert "cannot be rebuilt" in captured.err and "does not exist" in captured.err
    assert "nothing was checked" in captured.out


def _tampered(tmp_path: Path, how: str) -> Path:
    L = random_layer(16, 4, seed=0)
    tensors = [L.Wq, L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo, L.bo]
    if how == "shape":
        tensors[2] = L.Wk[:, :8]
    elif how == "nan":
        tensors[0] = L.Wq.copy()
        tensors[0][3, 5] = np.nan
    path = _write(tmp_path / f"{how}.safetensors", tuple(tensors))
    if how == "truncated":
        raw = path.read_bytes()
        path.write_bytes(raw[:len(raw) // 2])
    return path


@pytest.mark.parametrize("how, message", [
    ("truncated", "not a readable .safetensors file"),
    ("shape", "Wk has shape (16, 8), expected (16, 16)"),
    ("nan", "Wq[3, 5] = np.float64(nan) is not finite"),
])
@pytest.mark.parametrize("command", [["layer"], ["checkpoint", "--head", "0"]])
def test_a_tampered_file_is_exit_2(how: str, message: str, command: list[str], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    # regression (truncated): safetensors' own error escaped load_layer as a traceback
    path = _tampered(tmp_path, how)
    argv = ["learn", command[0], str(path), "--layer", "0", "--num-heads", "4", *command[1:]]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


@pytest.mark.parametrize("extra, message", [
    (["--heads", "9"], "--heads 9: layer 0 of"),
    (["--heads", "0,4,9"], "--heads 4,9: layer 0 of"),
    (["--num-heads", "3"], "16 projection rows do not split into num_heads = 3 heads"),
    (["--readout", "16"], "--readout 16 is not an output coordinate"),
    (["--heads", "1,1"], "head indices must be distinct"),
    (["--heads", "x"], "is not 'all' or comma-separated head indices"),
    (["--readout", "1", "--readout-seed", "2"], "not allowed with argument"),
    (["--max-relative-bound", "0"], "must be a positive finite number"),
])
def test_bad_input_is_exit_2_before_any_query(
        layer_file: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the learner ran on refused input")

    monkeypatch.setattr(multihead_saturated, "learn_multihead_saturated", never)
    assert main([*_base(layer_file), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert main([*_base(layer_file), *extra, "--json"]) == 2
    obj = json.loads(capsys.readouterr().out)
    assert obj["command"] == "learn layer" and obj["exit_code"] == 2 and message in obj["error"]


def test_a_learner_refusal_after_queries_is_exit_1_with_its_document(
        layer_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # estimates of about 1e-9 exceed a bound of 1e-15: IllConditionedError after the queries
    assert main([*_base(layer_file), "--max-relative-bound", "1e-15", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert _validator().is_valid(out)
    assert out["refused"].startswith("IllConditionedError: the recovery is ill-conditioned")
    assert out["queries"] > 0 and not out["ok"] and out["certificate"] is None
    assert main([*_base(layer_file), "--max-relative-bound", "1e-15"]) == 1
    assert "REFUSED after" in capsys.readouterr().out


def test_heads_that_do_not_pair_one_to_one_are_not_ok() -> None:
    # fewer recovered heads than the file's, or two file heads nearest one recovered head:
    # no pairing, so no per-head row can claim a match (the document's ok is then false)
    from exactattn.checks.multihead_biased import paired_heads as _pair

    A, B = np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])
    assert _pair(np.stack([A, B]), [B, A]) == [1, 0]
    assert _pair(np.stack([A]), [A, B]) is None
    assert _pair(np.stack([A, B]), [A, 1.01 * A]) is None
    from types import SimpleNamespace

    from exactattn.cli_layer import _compare

    z = np.zeros((1, 2, 2))
    rec = SimpleNamespace(
        params={"W": np.stack([A]), "c": np.zeros((1, 2)), "v": np.ones((1, 2)),
                "W_error_bound": z + 1, "c_error_bound": np.ones((1, 2)),
                "v_error_bound": np.ones((1, 2)), "beta": np.array(0.0),
                "beta_error_bound": np.array(1.0)},
        options={"conditioning": {"relative_bound_per_head": [1.0]}})
    merged = SimpleNamespace(Ws=[A, B], cs=[np.zeros(2)] * 2, vs=[np.ones(2)] * 2, beta=0.0)
    doc = _compare(rec, merged, (0, 1))
    assert doc["paired"] is False and doc["per_head"] == [] and doc["within_estimates"] is False


@pytest.mark.parametrize("scale, message", [
    ("x", "'x' is not a number"),
    ("inf", "must be a positive finite number, got inf"),
    ("nan", "must be a positive finite number, got nan"),
    ("-1", "must be a positive finite number, got -1"),
])
@pytest.mark.parametrize("command", [["layer"], ["checkpoint", "--head", "0"]])
def test_scale_is_one_positive_finite_option_in_both_commands(
        scale: str, message: str, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # one parser of --scale for learn layer and learn checkpoint (learn checkpoint had its
    # own copy, which said "invalid _positive_float value: 'x'" for a non-number)
    argv = ["learn", command[0], "no-such.safetensors", "--layer", "0", *command[1:],
            f"--scale={scale}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"argument --scale: {message}" in err, err


@pytest.mark.parametrize("command", [["layer"], ["checkpoint", "--head", "0"]])
def test_readout_out_of_range_is_one_check_in_both_commands(
        layer_file: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # learn checkpoint builds rho = e_I with learn layer's _rho (it had its own copy, whose
    # message did not give the range)
    argv = ["learn", command[0], str(layer_file), "--layer", "0", "--num-heads", "4",
            *command[1:], "--readout", "16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--readout 16 is not an output coordinate of a layer with d = 16 (0 <= I < 16)" \
        in err, err


def test_save_with_a_sidecar_replays_and_rejects_a_moved_W(
        layer_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the path a real layer takes (342,152 queries): the transcript in a .npz beside the file
    monkeypatch.setattr("exactattn.learners.recovery.SIDECAR_ENTRIES", 100)
    saved = tmp_path / "layer.json"
    assert main([*_base(layer_file), "--heads", "0,3", "--certificate-probes", "2",
                 "--save", str(saved)]) == 0
    assert f"(transcript in {saved}.transcript.npz)" in capsys.readouterr().err
    obj = json.loads(saved.read_text(encoding="utf-8"))
    assert obj["recovery"]["transcript"]["npz"] == "layer.json.transcript.npz"
    assert main(["replay", str(saved), "--certificate-probes", "0", "--json"]) == 0
    cert = json.loads(capsys.readouterr().out)["certificates"][0]
    assert cert["holds"] and cert["checked"] == obj["recovery"]["queries"] > 100
    entries = obj["recovery"]["params"]["W"]["entries"]
    k = int(np.argmax(np.abs(np.asarray(entries, dtype=np.float64))))
    entries[k] = float(entries[k]) * (1 + 1e-6)
    saved.write_text(json.dumps(obj), encoding="utf-8")
    assert main(["replay", str(saved), "--certificate-probes", "0"]) == 1
    assert "FAILS at transcript query #" in capsys.readouterr().out


def test_replay_refuses_an_instance_block_inconsistent_with_itself(
        layer_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # regression: heads out of range or repeated, or a readout index past d, were read as
    # "the checkpoint cannot be rebuilt" (a note, the transcript alone, exit 0), so an
    # edited block turned the fresh queries off; they are a malformed block (exit 2) now
    saved = tmp_path / "layer.json"
    assert main([*_base(layer_file), "--heads", "1,2", "--certificate-probes", "0",
                 "--save", str(saved)]) == 0
    capsys.readouterr()
    obj = json.loads(saved.read_text(encoding="utf-8"))
    assert main(["replay", str(saved), "--certificate-probes", "2"]) == 0
    assert "cannot be rebuilt" not in capsys.readouterr().err
    for edit in ({"heads": [1, 9]}, {"heads": [1, 1]},
                 {"readout": {"kind": "coordinate", "index": 16}}):
        saved.write_text(json.dumps({**obj, "instance": {**obj["instance"], **edit}}),
                         encoding="utf-8")
        assert main(["replay", str(saved), "--certificate-probes", "2"]) == 2, edit
        err = capsys.readouterr().err
        assert "is not a checkpoint layer" in err and "cannot be rebuilt" not in err, err
