"""``learn --oracle URL``: the certificate it prints is built as every other learn path's.

Left over from the last review (issue stops, stop 18): ``cli_remote.py`` built
its certificate dictionary inline while every in-process learn path used
:func:`exactattn.report.json.certificate_json`. The remote document must carry
the same certificate, key for key, as the in-process run on the same instance,
and follow :func:`certificate_json` when it changes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import exactattn.report.json as report_json
from exactattn.cli import main
from exactattn.fields import EXP, F64, Field
from exactattn.instances import single_head_instance
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
