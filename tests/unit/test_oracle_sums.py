"""Queries given as sums of shared rows (ValueOracle.batch_sums, issue 12 part 3).

``batch_sums(rows, terms)`` asks the queries ``row_sums(rows, terms)``: the
same answers, counts, phases, budget and transcript as ``batch`` of the
materialised queries, bit for bit, while the F64 transcript keeps the rows
once and each query as its row indices. The learner cannot write into what
the hidden function sees; spilled, saved and version-1 files decode
bit-exactly; damaged files and bad terms are refused by name.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from exactattn.certificates import verify
from exactattn.checkpoints import random_layer
from exactattn.errors import InvalidEntryError, QueryBudgetExceededError, ShapeError
from exactattn.fields import EXP, F64, QQ
from exactattn.learners.biased_low_rank import learn_biased_low_rank
from exactattn.models import SingleHeadAttention
from exactattn.oracle import NoisyOracle, Transcript, ValueOracle
from exactattn.queries import row_sums
from exactattn.transcript_store import F64QueryStore


def _head(d: int, seed: int = 0) -> SingleHeadAttention:
    rng = np.random.default_rng(seed)
    return SingleHeadAttention(rng.standard_normal((d, d)) / np.sqrt(d),
                               rng.standard_normal(d), field=F64)


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def _grid(n_p: int, n_t: int) -> np.ndarray:
    """terms of the queries [(p_i + x_j)^T; x_j^T] over rows [P; X]."""
    ii, jj = np.divmod(np.arange(n_p * n_t), n_t)
    terms = np.empty((n_p * n_t, 2, 2), dtype=np.int64)
    terms[:, 0, 0], terms[:, 0, 1] = ii, n_p + jj
    terms[:, 1, 0], terms[:, 1, 1] = n_p + jj, -1
    return terms


entry = st.one_of(st.just(0.0), st.just(-0.0), st.just(1.0),
                  st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def sums(draw: Any) -> tuple[np.ndarray, np.ndarray]:
    d, m = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    B, N, k = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rows = draw(arrays(np.float64, (m, d), elements=entry))
    present = draw(arrays(np.int64, (B, N), elements=st.integers(0, k)))
    idx = draw(arrays(np.int64, (B, N, k), elements=st.integers(0, m - 1)))
    terms = np.where(np.arange(k) < present[..., None], idx, -1)  # terms first, then -1
    return rows, terms


@given(case=sums(), limit=st.sampled_from([1, 10**9]))
def test_batch_sums_is_batch_of_the_sums_bit_for_bit(case: tuple, limit: int) -> None:
    rows, terms = case
    d = rows.shape[1]
    W, v = np.eye(d) / 3, np.arange(1.0, d + 1)
    a = ValueOracle(SingleHeadAttention(W, v, field=F64))
    b = ValueOracle(SingleHeadAttention(W, v, field=F64))
    a.transcript.store.memory_limit = limit  # type: ignore[union-attr]  # 1: all spilled
    ya = a.batch_sums(rows, terms, phase="g")
    Xs = row_sums(rows, terms)
    yb = b.batch(Xs, phase="g")
    assert _bits(ya) == _bits(yb)
    assert a.queries_by_phase == b.queries_by_phase == {"g": len(terms)}
    assert len(a.transcript) == len(terms)
    for e, f in zip(a.transcript, b.transcript, strict=True):
        assert (e.index, e.phase) == (f.index, f.phase) and _bits(e.X) == _bits(f.X)
        assert _bits(np.array(e.answer)) == _bits(np.array(f.answer))


def test_row_sums_adds_left_to_right_and_keeps_signed_zeros() -> None:
    rows = np.array([[1e16, -0.0], [1.0, 2.0], [1.0, -0.0]])
    terms = np.array([[[0, 1, 2], [2, -1, -1], [-1, -1, -1]]])
    X = row_sums(rows, terms)[0]
    # (1e16 + 1) + 1 rounds twice to 1e16; 1e16 + (1 + 1) would give 1e16 + 2
    assert X[0, 0] == 1e16 and X[0, 0] != 1e16 + 2.0
    assert np.signbit(X[1, 1]) and not np.signbit(X[2, 1]) and X[2].tolist() == [0.0, 0.0]


def test_a_grid_is_stored_compactly_and_replays_bit_exactly(tmp_path: Path) -> None:
    d, n = 32, 32
    rng = np.random.default_rng(0)
    P, X = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    oracle = ValueOracle(_head(d))
    y = oracle.batch_sums(np.concatenate([P, X]), _grid(n, n), phase="grid")
    store = oracle.transcript.store
    assert store is not None
    dense = n * n * 2 * d * 8
    # the rows once (2 n d floats) and about 70 bytes a query, not 2 d floats a query
    assert store.memory_bytes < 2 * n * d * 8 + n * n * 80 < dense / 3
    k = 37
    i, j = divmod(k, n)
    assert _bits(oracle.transcript[k].X) == _bits(np.stack([P[i] + X[j], X[j]]))
    path = str(tmp_path / "grid.npz")
    oracle.transcript.save_npz(path)
    back = Transcript.load_npz(path)
    for e, f in zip(back, oracle.transcript, strict=True):
        assert e.index == f.index and _bits(e.X) == _bits(f.X) and e.answer == f.answer
    assert _bits(y[[k]]) == _bits(np.array([back[k].answer]))


def test_the_learner_cannot_change_what_was_asked_nor_the_target_write_into_it() -> None:
    rows = np.array([[1.0, 0.0], [0.0, 1.0]])
    oracle = ValueOracle(_head(2))
    oracle.batch_sums(rows, [[[0, 1]]])
    rows[...] = 7.0  # the caller changes its rows afterwards
    assert oracle.transcript[0].X.tolist() == [[1.0, 1.0]]

    class Meddler:
        field, d = F64, 2

        def __call__(self, X: np.ndarray) -> float:
            return 0.0

        def batch(self, Xs: np.ndarray) -> np.ndarray:
            Xs[0, 0, 0] = 9.0  # a target that writes into its queries
            return np.zeros(len(Xs))

    with pytest.raises(ValueError, match="read-only"):
        ValueOracle(Meddler()).batch_sums(rows, [[[0, 1]]])


def test_blocks_reused_only_when_the_target_kept_no_reference(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import exactattn.oracle as oracle_module

    monkeypatch.setattr(oracle_module, "SUMS_BLOCK_BYTES", 2 * 2 * 8 * 2)  # 2 queries a block
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((5, 2))
    terms = rng.integers(0, 5, size=(9, 2, 2))
    kept: list[np.ndarray] = []
    seen: list[bytes] = []

    class Keeper:  # keeps every block it is given (a view of it, as a cache might)
        field, d = F64, 2

        def __call__(self, X: np.ndarray) -> float:
            return 0.0

        def batch(self, Xs: np.ndarray) -> np.ndarray:
            kept.append(Xs[:, :1])
            seen.append(Xs.tobytes())
            return np.zeros(len(Xs))

    ValueOracle(Keeper()).batch_sums(rows, terms)
    assert [k.base.tobytes() for k in kept] == seen  # nothing overwritten afterwards
    assert b"".join(seen) == row_sums(rows, terms).tobytes()

    class Forgetter(Keeper):  # keeps nothing: its blocks may be refilled
        def batch(self, Xs: np.ndarray) -> np.ndarray:
            kept.append(np.array(Xs))
            return np.zeros(len(Xs))

    kept.clear()
    ValueOracle(Forgetter()).batch_sums(rows, terms)
    assert b"".join(k.tobytes() for k in kept) == row_sums(rows, terms).tobytes()


def test_budget_is_refused_before_anything_is_counted() -> None:
    oracle = ValueOracle(_head(2), budget=3)
    oracle.batch_sums(np.eye(2), [[[0]], [[1]]])
    with pytest.raises(QueryBudgetExceededError, match="2 used, 2 more asked"):
        oracle.batch_sums(np.eye(2), [[[0]], [[1]]])
    assert oracle.queries == 2 and len(oracle.transcript) == 2


@pytest.mark.parametrize(("rows", "terms", "error", "match"), [
    (np.eye(2), [[[0, 2]]], InvalidEntryError, r"terms\[0, 0, 1\] = 2 is not a row index"),
    (np.eye(2), [[[-2]]], InvalidEntryError, r"terms\[0, 0, 0\] = -2"),
    (np.eye(2), [[[-1, 0]]], InvalidEntryError, r"terms\[0, 0\]: a term -1 \(none\) comes"),
    (np.eye(2), [[[0.5]]], InvalidEntryError, "integers"),
    (np.eye(2), [[0, 1]], ShapeError, r"terms has shape \(1, 2\)"),
    (np.eye(3), [[[0]]], ShapeError, r"rows has shape \(3, 3\), expected an m x 2"),
    (np.array([[np.nan, 0.0]]), [[[0]]], InvalidEntryError, "not finite"),
    (np.array([[1.7e308, 0.0]]), [[[0, 0]]], InvalidEntryError,
     r"query 0 of the batch \(token 0, entry 0\): the sum of its rows is inf"),
])
def test_bad_rows_and_terms_are_refused_by_name(rows: Any, terms: Any, error: type,
                                                match: str) -> None:
    oracle = ValueOracle(_head(2))
    with pytest.raises(error, match=match):
        oracle.batch_sums(rows, terms)
    assert oracle.queries == 0 and len(oracle.transcript) == 0


def test_exact_fields_and_subclasses_go_through_batch() -> None:
    W, v = [[1, 0], [2, -1]], [1, 3]
    head = SingleHeadAttention(W, v, field=EXP)
    a, b = ValueOracle(head), ValueOracle(head)
    rows = EXP.array([[1, 0], [0, 1], [1, 1]])
    terms = np.array([[[0, 1], [2, -1]], [[2, 2], [-1, -1]]])
    assert list(a.batch_sums(rows, terms, phase="s")) == list(
        b.batch(row_sums(rows, terms, zero=EXP.zero()), phase="s"))
    assert [e.X.tolist() for e in a.transcript] == [[[1, 1], [1, 1]], [[2, 2], [0, 0]]]
    noisy = NoisyOracle(head, tolerance=Fraction(1, 100), adversary="max")  # answers over QQ
    rows_q = QQ.array([[1, 0], [0, 1], [1, 1]])
    y = noisy.batch_sums(rows_q, terms)
    assert noisy.queries == 2 and all(e.tolerance == QQ(Fraction(1, 100))
                                      for e in noisy.transcript)
    assert y[1] == noisy(row_sums(rows_q, terms, zero=QQ.zero())[1]) and noisy.queries == 3


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    # the layout of format version 1 (before the sums of rows), written as it was
    path = str(tmp_path / "v1.npz")
    d = 2
    arrays_v1 = {
        "c0.phase": np.array([0, 1], dtype=np.uint32), "c0.rows": np.array([1, 2], np.int32),
        "c0.answer": np.array([0.5, -0.0]), "c0.vstart": np.array([0, 1], np.int64),
        "c0.vlen": np.array([1, 4], np.int64), "c0.pstart": np.array([0, 1], np.int64),
        "c0.plen": np.array([1, 0], np.int64), "c0.val": np.array([3.0, 1.0, -0.0, 2.0, 4.0]),
        "c0.pos": np.array([1], np.int64),
        "format_version": np.array(1), "d": np.array(d), "first_index": np.array(5),
        "phases": np.array(["v", "W"]), "counts": np.array([2], np.int64)}
    np.savez(path, **arrays_v1)  # type: ignore[arg-type]
    back = Transcript.load_npz(path)
    assert [(e.index, e.phase) for e in back] == [(5, "v"), (6, "W")]
    assert back[0].X.tolist() == [[0.0, 3.0]] and back[0].answer == 0.5
    assert _bits(back[1].X) == _bits(np.array([[1.0, -0.0], [2.0, 4.0]]))


def test_a_damaged_sums_file_is_refused(tmp_path: Path) -> None:
    oracle = ValueOracle(_head(2))
    oracle.batch_sums(np.eye(2), [[[0, 1], [1, -1]], [[1, -1], [0, -1]]])
    path = str(tmp_path / "t.npz")
    oracle.transcript.save_npz(path)
    with np.load(path) as z:
        saved = {name: z[name] for name in z.files}
    saved["c0.terms"] = saved["c0.terms"].copy()
    saved["c0.terms"][0] = 5  # a row index past the basis
    bad = str(tmp_path / "bad.npz")
    np.savez(bad, **saved)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError, match="sums of rows do not match its bases"):
        Transcript.load_npz(bad)[0]
    del saved["b0"]
    np.savez(bad, **saved)  # type: ignore[arg-type]
    with pytest.raises(InvalidEntryError, match="inconsistent"):
        Transcript.load_npz(bad)


def test_biased_f64_transcript_is_compact_and_its_replay_rejects_a_wrong_head() -> None:
    d, r = 48, 16
    head = random_layer(d, 3, head_dim=r, seed=3).head(0)
    oracle = head.oracle()
    rec = learn_biased_low_rank(oracle, rank=r, bias="general", scale=4.0)
    store = oracle.transcript.store
    assert store is not None and len(store) == rec.queries
    # the queries are dense (2 d floats, 768 bytes each); kept as sums of rows: the
    # probes and tokens once, then about 70 bytes a query
    assert store.memory_bytes + store.disk_bytes < 0.2 * rec.queries * 2 * d * 8
    cert = verify(rec, None, probes=0)  # the offline replay decodes every stored sum
    assert cert.holds and cert.replayed == rec.queries
    W = np.array(rec.params["W"], dtype=np.float64)
    W[1, 2] += 1e-3
    wrong = dataclasses.replace(rec, params={**rec.params, "W": W})
    assert not verify(wrong, None, probes=0).holds


def test_biased_low_rank_answer_factor_is_gamma_at_the_oracles_roundoff() -> None:
    # the single-head learner's factor gamma_{4d+16}(u), not gamma_{4d+16}(2^-53) u / 2^-53
    from exactattn.fields.float64 import higham_gamma
    d, r, u = 16, 4, 2.0**-24
    head = random_layer(d, 3, head_dim=r, seed=3).head(0)
    rec = learn_biased_low_rank(head.oracle(), rank=r, bias="general", scale=4.0, roundoff=u)
    assert rec.options["answer_error_factor"] == higham_gamma(4 * d + 16, u)

@pytest.mark.parametrize("field", [QQ, EXP, F64])
def test_batch_sums_of_no_query(field: Any) -> None:
    # over an exact field an empty batch stepped by 0 (range() raised ValueError)
    oracle = ValueOracle(lambda X: X.sum(), field=field, d=2)
    out = oracle.batch_sums(field.eye(2), np.zeros((0, 2, 2), dtype=np.int64))
    assert out.shape == (0,) and oracle.queries == 0

def test_store_refuses_sums_of_the_wrong_width() -> None:
    store = F64QueryStore(3)
    with pytest.raises(InvalidEntryError, match="width 3"):
        store.extend_sums("p", np.eye(2), np.zeros((1, 1, 1), dtype=np.int64), np.zeros(1))
    assert len(store) == 0
