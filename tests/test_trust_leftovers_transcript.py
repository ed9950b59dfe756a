"""A saved F64 transcript whose sums of rows put -1 (no term) before a term is refused.

Left over from the last review (issue stops, stop 18): the store checked that
every term of a saved sums-of-rows entry is a row index or -1, not that the
-1s come last in each token. :func:`exactattn.queries.row_sums` stops at the
first position where no query of a block has a term, so a damaged file with
``[0, -1, 1]`` decoded to row 0 alone: a query with fewer terms than were
written, and a replay of a query that was never asked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exactattn.errors import InvalidEntryError
from exactattn.fields import F64
from exactattn.models import SingleHeadAttention
from exactattn.oracle import Transcript, ValueOracle

ROWS = np.array([[1.0, 2.0], [0.5, -0.0], [-3.0, 0.25]])
#: two queries of two tokens, up to three terms a token, the terms first
TERMS = [[[0, 1, 2], [1, -1, -1]], [[2, -1, -1], [0, 2, -1]]]


def _saved(tmp_path: Path) -> tuple[str, dict[str, np.ndarray], list[bytes]]:
    """A valid saved transcript of TERMS, its arrays and the bits of its queries."""
    head = SingleHeadAttention([[1.0, -0.5], [0.25, 2.0]], [1.0, -1.0], field=F64)
    oracle = ValueOracle(head)
    oracle.batch_sums(ROWS, TERMS)
    path = str(tmp_path / "t.npz")
    oracle.transcript.save_npz(path)
    with np.load(path) as z:
        arrays = {name: z[name] for name in z.files}
    assert arrays["c0.terms"].tolist() == np.array(TERMS).ravel().tolist()  # stored as given
    return path, arrays, [np.ascontiguousarray(e.X).tobytes() for e in oracle.transcript]


def test_a_valid_sums_file_still_decodes_bit_for_bit(tmp_path: Path) -> None:
    path, _, bits = _saved(tmp_path)
    back = Transcript.load_npz(path)
    assert [np.ascontiguousarray(e.X).tobytes() for e in back] == bits
    assert back[0].X.tolist() == [[-1.5, 2.25], [0.5, -0.0]]  # 1 + 0.5 - 3, 2 + 0 + 0.25


@pytest.mark.parametrize(("where", "terms"), [
    (slice(0, 3), [0, -1, 2]),   # entry 0, token 0: a gap before the third term (lost before)
    (slice(3, 6), [-1, 1, -1]),  # entry 0, token 1: no first term, then a term
    (slice(9, 12), [-1, -1, 2]),  # entry 1, token 1: two gaps (the term was lost before)
])
def test_a_term_after_a_gap_is_refused_not_dropped(tmp_path: Path, where: slice,
                                                   terms: list[int]) -> None:
    _, arrays, _ = _saved(tmp_path)
    damaged = {**arrays, "c0.terms": arrays["c0.terms"].copy()}
    damaged["c0.terms"][where] = terms
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, **damaged)  # type: ignore[arg-type]
    back = Transcript.load_npz(bad)
    with pytest.raises(InvalidEntryError, match=r"bad\.npz is inconsistent: .*-1 \(no term\) "
                                                r"before a term"):
        list(back)
    with pytest.raises(InvalidEntryError, match="before a term"):
        back[1]  # every way of reading the entries refuses the chunk
