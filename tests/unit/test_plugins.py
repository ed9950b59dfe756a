"""User claims as plugins: the entry point group ``exactattn.claims``.

The example plugin package is tests/plugin_example (installed by .ci/run and by
the README's test command: ``pip install -e tests/plugin_example``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from exactattn import claims as registry
from exactattn.claims import PLUGIN_GROUP, REGISTRY, RESULTS, load_plugins, run_claims
from exactattn.cli import main

needs_plugin = pytest.mark.skipif(
    importlib.util.find_spec("exactattn_plugin_example") is None,
    reason="the example plugin is not installed: pip install -e tests/plugin_example")


@needs_plugin
def test_the_installed_plugin_is_registered_with_its_source() -> None:
    assert registry.PLUGINS["example"] == "exactattn_plugin_example.claims"
    assert RESULTS["example_plugin"].source == "plugin example"
    ids = [c.id for c in REGISTRY if c.label == "example_plugin"]
    assert ids == ["example_plugin.sigmoid_symmetry", "example_plugin.my_head_recovered"]
    results = run_claims(["example_plugin"])
    assert [r.holds for r in results] == [True, True]


@needs_plugin
def test_verify_claims_and_latex_show_the_plugin(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--only", "example_plugin", "--quiet"]) == 0
    assert "PASS  example_plugin.my_head_recovered" in capsys.readouterr().out
    assert main(["claims", "--json"]) == 0
    listed = {c["id"] for c in json.loads(capsys.readouterr().out)}
    assert {"example_plugin.sigmoid_symmetry", "example_plugin.my_head_recovered"} <= listed
    assert main(["latex", "--out", str(tmp_path), "--only", "example_plugin", "--quiet"]) == 0
    tex = (tmp_path / "example_plugin.tex").read_text(encoding="utf-8")
    assert r"\label{example_plugin.sigmoid_symmetry}" in tex
    assert r"\sigma(q) + \sigma(-q) = 1" in tex


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Undo what a test's plugins register."""
    claims, results, plugins = list(REGISTRY), dict(RESULTS), dict(registry.PLUGINS)
    yield
    REGISTRY[:] = claims
    RESULTS.clear()
    RESULTS.update(results)
    registry.PLUGINS.clear()
    registry.PLUGINS.update(plugins)


def _fake_entry_points(*eps: EntryPoint) -> object:
    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == PLUGIN_GROUP
        return list(eps)

    return entry_points


def test_a_plugin_that_fails_to_load_is_a_failing_claim(
        monkeypatch: pytest.MonkeyPatch, clean_registry: None) -> None:
    broken = EntryPoint(name="broken", value="no_such_module_for_exactattn", group=PLUGIN_GROUP)
    monkeypatch.setattr("importlib.metadata.entry_points", _fake_entry_points(broken))
    assert load_plugins() == ["broken"]
    assert load_plugins() == []  # loaded once
    (result,) = run_claims(["plugin_broken"])
    assert not result.holds
    assert "plugin broken (no_such_module_for_exactattn) failed to load: " \
           "ModuleNotFoundError" in result.outcome.detail
    assert main(["verify", "--only", "plugin_broken", "--quiet"]) == 1


def test_a_plugin_registering_a_taken_label_fails_instead_of_replacing_it(
        monkeypatch: pytest.MonkeyPatch, clean_registry: None) -> None:
    def hijack() -> None:
        registry.register_result("single_head_exact", paper_ref="x", title="x")

    monkeypatch.setattr("tests.unit.test_plugins.hijack", hijack, raising=False)
    ep = EntryPoint(name="hijack", value="tests.unit.test_plugins:hijack", group=PLUGIN_GROUP)
    monkeypatch.setattr("importlib.metadata.entry_points", _fake_entry_points(ep))
    load_plugins()
    assert RESULTS["single_head_exact"].source == "exactattn"
    (result,) = run_claims(["plugin_hijack"])
    assert "result single_head_exact registered twice" in result.outcome.detail
