"""``exactattn learn checkpoint FILE --layer L --head H [--rank r]``, on a file written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exactattn.checkpoints import BERT_NAMES, random_layer
from exactattn.cli import main

st_numpy = pytest.importorskip("safetensors.numpy")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    L = random_layer(16, 2, seed=3)
    names = BERT_NAMES.resolve(prefix="", layer=0)
    path = tmp_path_factory.mktemp("cli") / "m.safetensors"
    st_numpy.save_file(dict(zip(names.values(), (L.Wq, L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo,
                                                 L.bo), strict=True)), str(path))
    return path


def test_learn_checkpoint_json(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["learn", "checkpoint", str(checkpoint), "--layer", "0", "--head", "1",
            "--num-heads", "2", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    # d = 16, h = 8: 8 (33 - 8) + 17 = 217 queries instead of 17^2 = 289
    assert out["queries"] == out["proved_queries"] == 217 and out["full_biased_queries"] == 289
    assert out["within_bounds"] and out["certificate"]["holds"] and out["ok"]
    assert max(e["relative"] for e in out["errors"].values()) < 1e-9
    assert out["status"] == "float (given: rank([W | c]) <= 8)"


def test_learn_checkpoint_text_and_a_wrong_rank(checkpoint: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    base = ["learn", "checkpoint", str(checkpoint), "--layer", "0", "--head", "0",
            "--num-heads", "2"]
    assert main(base) == 0
    assert "certificate (tolerance): holds" in capsys.readouterr().out
    # rank 3 < h = 8: the certificate's fresh probes catch it, exit code 1
    assert main([*base, "--rank", "3"]) == 1
    assert "FAILS" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--head", "2"], "head must be an integer in [0, 2)"),
    (["--head", "0", "--rank", "17"], "--rank 17 exceeds d = 16"),
    (["--head", "0", "--readout", "16"], "--readout 16"),
])
def test_bad_input_is_exit_2(checkpoint: Path, extra: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["learn", "checkpoint", str(checkpoint), "--layer", "0", "--num-heads", "2", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_missing_arguments_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["learn", "checkpoint", str(tmp_path / "none.safetensors"), "--layer", "0",
                 "--head", "0", "--num-heads", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["learn", "checkpoint", "x.safetensors", "--head", "0"]) == 2  # no --layer
    capsys.readouterr()
    # counts are checked before anything is read: probes bounded as in the other commands
    assert main(["learn", "checkpoint", "x.safetensors", "--layer", "0", "--head", "0",
                 "--certificate-probes", "1000000000"]) == 2
    assert "must be an integer in [0, 100000]" in capsys.readouterr().err


def test_zero_query_bias_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # regression: with b_q = 0 (as in a freshly initialised BERT layer) c = 0 has no relative
    # error, and the text output failed formatting None
    L = random_layer(16, 2, seed=4)
    names = BERT_NAMES.resolve(prefix="", layer=0)
    path = tmp_path / "zero_bq.safetensors"
    st_numpy.save_file(dict(zip(names.values(), (L.Wq, 0 * L.bq, L.Wk, L.bk, L.Wv, L.bv, L.Wo,
                                                 L.bo), strict=True)), str(path))
    argv = ["learn", "checkpoint", str(path), "--layer", "0", "--head", "0", "--num-heads", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "c (absolute " in out and "the truth is 0)" in out
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"]["c"]["relative"] is None
