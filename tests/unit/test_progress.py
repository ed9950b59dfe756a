"""exactattn.progress: a tqdm bar on a terminal, nothing when stderr is not one."""

from __future__ import annotations

import io

import pytest

from exactattn.cli import main
from exactattn.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_draws_on_a_terminal_and_clears_itself() -> None:
    term = _Terminal()
    bar = ProgressBar("columns of W", stream=term)
    assert bar.active
    bar(1, 4)
    bar(2, 4, "single_head_exact.worked_example")
    drawn = term.getvalue()
    assert "columns of W" in drawn and "0/4" in drawn
    bar(4, 4)  # done: the bar removes itself (leave=False) by overwriting its line
    assert term.getvalue().endswith("\r")


def test_bar_draws_nothing_when_disabled_or_not_a_terminal() -> None:
    for bar in (ProgressBar("x", stream=io.StringIO()),
                ProgressBar("x", enabled=False, stream=_Terminal())):
        assert not bar.active
        bar(1, 2)
        bar(2, 2)
        assert bar.stream.getvalue() == ""


def test_learn_on_a_pipe_writes_no_bar(capsys: pytest.CaptureFixture[str]) -> None:
    # stderr captured by pytest is not a terminal: no bar, no carriage returns
    # (the old indicator printed "measuring W, column: 64/64 (...)" lines on a pipe)
    assert main(["learn", "single_head_exact", "--d", "64", "--field", "F64",
                 "--certificate-probes", "1"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "measuring W" not in err
