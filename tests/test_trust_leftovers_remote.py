"""``learn --oracle URL``: the certificate it prints is built as every other learn path's.

Left over from the last review (issue stops, stop 18): ``cli_remote.py`` built
its certificate dictionary inline while every in-process learn path used
:func:`exactattn.report.json.certificate_json`. The remote document must carry
the same certificate, key for key, as the in-process run on the same instance,
and follow :func:`certificate_json` when it changes.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import exactattn.report.json as report_json
from exactattn.cli import main
from exactattn.fields import EXP, F64, Field
from exactattn.instance_files import load_instance
from exactattn.instances import single_head_instance
from exactattn.learners import Recovery
from exactattn.models import BiasedSingleHeadAttention
from exactattn.remote.server import serve_in_thread


def _learn_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    code = main([*argv, "--json", "--no-progress"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("field", [EXP, F64], ids=lambda f: f.name)
def test_remote_learn_prints_the_in_process_certificate(
        field: Field, capsys: pytest.CaptureFixture[str]) -> None:
    """The same instance, seed and probes: the same certificate object, over EXP and F64."""
    d = 3
    base = ["learn", "single_head_exact", "--d", str(d), "--field", field.name,
            "--certificate-probes", "3"]
    code, local = _learn_json(base, capsys)
    assert code == 0
    with serve_in_thread(single_head_instance(d, 0, field=field).model) as server:
        code, remote = _learn_json([*base, "--oracle", server.url], capsys)
    assert code == 0
    assert remote["certificate"] == local["certificate"]
    assert set(remote["certificate"]) == set(local["certificate"]) >= {"holds", "text", "kind"}
    assert local["certificate"]["kind"] == ("exact" if field.exact else "tolerance")


def test_remote_learn_builds_its_certificate_with_certificate_json(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """One builder: a change to certificate_json shows in the remote document too (before
    the fix the remote path built its own dict and this key was missing)."""
    original = report_json.certificate_json

    def marked(cert: Any) -> dict[str, Any]:
        return {**original(cert), "built_by": "certificate_json"}

    monkeypatch.setattr(report_json, "certificate_json", marked)
    with serve_in_thread(single_head_instance(2, 0, field=EXP).model) as server:
        code, remote = _learn_json(["learn", "single_head_exact", "--d", "2",
                                    "--certificate-probes", "2", "--oracle", server.url],
                                   capsys)
    assert code == 0
    assert remote["certificate"]["built_by"] == "certificate_json"


# -- a biased head behind the server: learned by the biased learner, as --instance does -----
BIASED = {"model": "biased_head", "field": "EXP", "W": [["1/3", "-2"], ["7", "0"]],
          "c": ["1", "-1/2"], "v": ["0", "5/2"], "beta": "3/4"}


def test_remote_learn_of_a_biased_head_matches_learn_instance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: the server's biased_head was accepted by single_head_exact and learned
    with the unbiased learner, which found 'answers that no single_head_exact model
    gives' (exit 1); ``learn --instance`` of the same file learns it exactly."""
    inst = tmp_path / "biased.json"
    inst.write_text(json.dumps(BIASED))
    base = ["learn", "single_head_exact", "--certificate-probes", "3"]
    code, local = _learn_json([*base, "--instance", str(inst)], capsys)
    assert code == 0 and local["label"] == "single_head_biased"
    saved = tmp_path / "remote.json"
    with serve_in_thread(load_instance(inst)) as server:
        code, remote = _learn_json([*base, "--d", "2", "--oracle", server.url,
                                    "--save", str(saved)], capsys)
    assert code == 0, remote
    assert (remote["label"], remote["status"], remote["model"]) == (
        "single_head_biased", "exact", "biased_head")
    assert remote["queries"] == remote["expected_queries"] == local["queries"] == (2 + 1) ** 2
    assert remote["certificate"] == local["certificate"]
    rec = Recovery.from_json(json.loads(saved.read_text())["recovery"])
    assert rec.W.tolist() == [[Fraction(1, 3), -2], [7, 0]]
    assert rec.params["c"].tolist() == [1, Fraction(-1, 2)]
    assert rec.v.tolist() == [0, Fraction(5, 2)] and rec.params["beta"][()] == Fraction(3, 4)


def test_remote_learn_of_a_float_biased_head(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Over F64: the recovery is within its own first-order error estimates of the head
    (status float, never exact)."""
    rng = np.random.default_rng(3)
    d = 4
    head = BiasedSingleHeadAttention(rng.standard_normal((d, d)) / 2, rng.standard_normal(d),
                                     rng.standard_normal(d), 0.5, field=F64)
    saved = tmp_path / "remote.json"
    with serve_in_thread(head) as server:
        code, remote = _learn_json(["learn", "single_head_exact", "--d", str(d), "--field",
                                    "F64", "--certificate-probes", "3", "--oracle",
                                    server.url, "--save", str(saved)], capsys)
    assert code == 0, remote
    assert (remote["label"], remote["status"]) == ("single_head_biased", "float")
    assert remote["certificate"]["kind"] == "tolerance" and remote["certificate"]["holds"]
    rec = Recovery.from_json(json.loads(saved.read_text())["recovery"])
    for name in ("W", "c", "v"):
        err = np.abs(rec.params[name] - getattr(head, name)).max()
        assert 0 <= err <= float(rec.options[f"{name}_error_bound"]) < 1e-9
