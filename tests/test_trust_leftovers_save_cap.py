"""``learn --save``: the cap on the hidden model written beside a recovery counts every
parameter of the model.

Left over from the last review (issue stops, stop 18): the cap compared d * d
with :data:`exactattn.cli.MAX_SAVED_HIDDEN_ENTRIES`, so a multi-head model of H
d^2 + H d numbers (or a ReLU network of d m + m) over the cap was written all
the same, and a model left out was left out without a word.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import exactattn.cli as cli
from exactattn.cli import main
from exactattn.fields import EXP, F64
from exactattn.instance_files import instance_size, instance_to_json
from exactattn.models import (
    BiasedSingleHeadAttention,
    MultiHeadAttention,
    OneLayerTransformer,
    ReluFFN,
    SingleHeadAttention,
)

#: (argv of a seeded run, its hidden model's size, the size d * d the old cap read)
RUNS = [
    (["learn", "multihead_canonical", "--d", "2", "--heads", "2"], 2 * (2 * 2 + 2), 4),
    (["learn", "relu_ffn_exact", "--d", "2", "--m", "6"], 2 * 6 + 6, 4),
]


def _numbers(obj: Any) -> int:
    """The numbers in an instance-file object (its model, field and rank keys aside)."""
    if isinstance(obj, dict):
        return sum(_numbers(v) for k, v in obj.items() if k not in ("model", "field", "rank"))
    if isinstance(obj, list):
        return sum(_numbers(v) for v in obj)
    return 1


@pytest.mark.parametrize("model", [
    SingleHeadAttention([[1, 2], [3, 4]], [5, 6], field=EXP),
    SingleHeadAttention([[1.5, 2.0], [3.0, 4.0]], [5.0, 6.0], field=F64),
    BiasedSingleHeadAttention([[1, 2], [3, 4]], [1, 0], [5, 6], 2, field=EXP),
    ReluFFN([[1, 0, 2], [0, 1, 1]], [1, -1, 2]),
    OneLayerTransformer([[1, 0], [0, 1]], [[1, 0, 2], [0, 1, 1]], [1, -1, 2]),
    MultiHeadAttention([([[1, 0], [0, 1]], [1, 2]), ([[2, 0], [0, 1]], [0, 1]),
                        ([[0, 1], [1, 0]], [3, 1])]),
], ids=lambda m: type(m).__name__)
def test_instance_size_counts_every_number_the_instance_file_holds(model: Any) -> None:
    size, how = instance_size(model)
    assert size == _numbers(instance_to_json(model))
    assert how.endswith(f"= {size}")


@pytest.mark.parametrize(("argv", "size", "old"), RUNS, ids=lambda x: str(x))
def test_save_leaves_out_a_hidden_model_over_the_cap_and_says_so(
        argv: list[str], size: int, old: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Regression: with a cap between d * d and the model's size the old code wrote the
    model (and said nothing when it left one out)."""
    cap = size - 1
    assert old <= cap  # the d * d the old cap read fits: only a full count refuses
    monkeypatch.setattr(cli, "MAX_SAVED_HIDDEN_ENTRIES", cap)
    path = tmp_path / "rec.json"
    assert main([*argv, "--certificate-probes", "1", "--save", str(path)]) == 0
    err = capsys.readouterr().err
    saved = json.loads(path.read_text())
    assert "hidden" not in saved and {"recovery", "instance", "certificate"} <= set(saved)
    assert f"{size} numbers" in err and f"more than the {cap}" in err
    assert "not written" in err
    # one more allowed number and the model is written
    monkeypatch.setattr(cli, "MAX_SAVED_HIDDEN_ENTRIES", size)
    assert main([*argv, "--certificate-probes", "1", "--save", str(path)]) == 0
    assert "not written" not in capsys.readouterr().err
    assert _numbers(json.loads(path.read_text())["hidden"]) == size
