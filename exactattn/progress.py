"""Progress bars on stderr for long runs (``learn``, ``verify``, ``latex``).

A :class:`ProgressBar` draws a `tqdm <https://tqdm.github.io>`_ bar on stderr
only while stderr is a terminal; when it is not (a pipe, a file, CI logs,
pytest's capture) the bar draws nothing at all, so logs and captured output
hold no carriage-return debris. The callers decide what to log instead.

It is the callback the learners take (``progress(done, total)``); a third
argument names the item now running (a claim id).

>>> import io
>>> bar = ProgressBar("columns of W", stream=io.StringIO())   # not a terminal
>>> bar.active
False
>>> bar(3, 8); bar.close()                      # draws nothing
>>> bar.stream.getvalue()
''
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["ProgressBar"]


class ProgressBar:
    """A tqdm bar on ``stream`` (default stderr), drawn only when it is a terminal.

    Parameters
    ----------
    what : the bar's description.
    enabled : False draws nothing (``--quiet`` / ``--no-progress``).
    stream : where to draw (default ``sys.stderr`` at the time of the call).
    """

    def __init__(self, what: str, enabled: bool = True, *, stream: TextIO | None = None,
                 ) -> None:
        self.what = what
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.active = bool(enabled and callable(isatty) and isatty())
        self._bar: Any = None

    def _ensure(self, total: int) -> Any:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.what, file=self.stream, leave=False,
                             dynamic_ncols=True, mininterval=0.2)
        elif self._bar.total != total:
            self._bar.total = total
        return self._bar

    def __call__(self, done: int, total: int, item: str | None = None) -> None:
        """Show ``done`` of ``total`` (the learners' ``progress`` callback), and the item
        now running (for example a claim id) if given."""
        if not self.active:
            return
        bar = self._ensure(total)
        if item is not None:
            bar.set_postfix_str(item, refresh=False)
        bar.update(done - bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Remove the bar from the terminal (``leave=False``)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
