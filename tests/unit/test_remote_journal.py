"""The query journal (exactattn.remote.journal): resume, divergence, fingerprint, torn writes.

Every test runs on in-process targets (no server): the journal must work under
any ValueOracle. The kill-and-resume test through ``exactattn serve`` is in
tests/unit/test_remote_resume.py.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    JournalDivergedError,
    JournalMismatchError,
    QueryBudgetExceededError,
)
from exactattn.fields import EXP, F64, QQ, Field
from exactattn.instances import single_head_instance
from exactattn.learners import learn_single_head
from exactattn.oracle import ValueOracle
from exactattn.remote.journal import (
    MAIN,
    Journal,
    JournaledOracle,
    JournaledTarget,
    journal_fingerprint,
    journal_key,
)
from tests.strategies import rationals

ROOT = Path(__file__).resolve().parents[2]


class Counting:
    """A target that counts the queries it is asked (one by one and in batches)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.field = model.field
        self.d = model.d
        self.calls = 0

    def __call__(self, X: Any) -> Any:
        self.calls += 1
        return self.model(X)

    def batch(self, Xs: Any) -> Any:
        self.calls += len(Xs)
        return self.model.batch(Xs)


def fingerprint(field: Field, d: int, seed: int = 0, **options: Any) -> dict[str, Any]:
    return journal_fingerprint(instance_sha256=f"seeded-single-head-{d}-{seed}",
                               field=field.name, d=d, label="single_head_exact", seed=seed,
                               options=options)


def journaled_oracle(path: Path, model: Any, fp: dict[str, Any], **kwargs: Any
                     ) -> tuple[Journal, JournaledOracle, Counting]:
    inner = Counting(model)
    journal = Journal(path, fp)
    chunk = kwargs.pop("chunk_size", 256)
    return journal, JournaledOracle(JournaledTarget(inner, journal, chunk_size=chunk),
                                    **kwargs), inner


def same_transcript(a: ValueOracle, b: ValueOracle) -> bool:
    if len(a.transcript) != len(b.transcript):
        return False
    F = a.field
    return all(x.index == y.index and x.phase == y.phase
               and np.array_equal(np.asarray(x.X), np.asarray(y.X))
               and (x.answer == y.answer if F.exact
                    else np.float64(x.answer).tobytes() == np.float64(y.answer).tobytes())
               for x, y in zip(a.transcript, b.transcript, strict=True))


@pytest.mark.parametrize(("field", "d", "cut"), [(EXP, 3, 7), (F64, 6, 20)])
def test_a_truncated_run_resumes_from_the_journal_without_asking_again(
        tmp_path: Path, field: Field, d: int, cut: int) -> None:
    model = single_head_instance(d, 0, field=field).model
    plain = ValueOracle(model)
    reference = learn_single_head(plain, seed=0)
    fp = fingerprint(field, d)
    path = tmp_path / "run.journal"
    # the first run stops after `cut` queries (its budget): the journal holds them
    journal, oracle, inner = journaled_oracle(path, model, fp, budget=cut, chunk_size=4)
    with pytest.raises(QueryBudgetExceededError):
        learn_single_head(oracle, seed=0)
    assert journal.length() == inner.calls
    first = inner.calls
    assert 0 < first <= cut
    journal.close()
    # the resumed run answers those from the journal: the inner target sees only the rest
    journal, oracle, inner = journaled_oracle(path, model, fp, chunk_size=4)
    rec = learn_single_head(oracle, seed=0)
    assert inner.calls == reference.queries - first
    assert oracle.journaled.replayed == first
    assert rec.queries == reference.queries and rec.queries_by_phase == reference.queries_by_phase
    assert np.array_equal(rec.W, reference.W) and np.array_equal(rec.v, reference.v)
    assert same_transcript(oracle, plain)
    # row k of the main stream is transcript entry k (key, phase, answer)
    rows = journal.rows(MAIN)
    assert [r.query_key for r in rows] == [journal_key(field, e.X) for e in plain.transcript]
    assert [r.phase for r in rows] == [e.phase for e in plain.transcript]
    journal.close()
    # a third run asks the inner target nothing at all
    journal, oracle, inner = journaled_oracle(path, model, fp)
    learn_single_head(oracle, seed=0)
    assert inner.calls == 0 and oracle.queries == reference.queries
    journal.close()


def _sigmoid(X: Any) -> Any:
    """An irrational EXP answer of a 1 x 1 query: sigma(x) = e^x / (1 + e^x)."""
    e = EXP.exp(EXP(X[0, 0]))
    return e / (1 + e)


@given(qs=st.lists(rationals(), min_size=1, max_size=8),
       sizes=st.lists(st.integers(1, 5), min_size=1, max_size=8),
       cut=st.integers(0, 8), chunk=st.integers(1, 4))
def test_any_cut_of_any_run_resumes_to_the_same_answers(
        qs: list[Fraction], sizes: list[int], cut: int, chunk: int) -> None:
    """Queries asked one by one or in batches (sizes 1 to 5), the first run stopped by its
    budget after ``cut`` queries: the resumed run gets the same exact answers, asking the
    target only the queries the journal does not hold."""
    import tempfile

    Xs = [[[q]] for q in qs]
    batches, lo = [], 0
    for size in sizes * len(Xs):
        if lo >= len(Xs):
            break
        batches.append(Xs[lo:lo + size])
        lo += size

    def run(target: JournaledTarget, budget: int | None) -> list[Any]:
        oracle = ValueOracle(target, budget=budget)
        out: list[Any] = []
        for batch in batches:
            out.extend([oracle(batch[0])] if len(batch) == 1 else oracle.batch(batch))
        return out

    # a memory file system where there is one: this test is about the logic, and an fsync
    # per commit on disk would cost most of its time
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        path = Path(tmp) / "run.journal"
        calls = [0]

        def inner(X: Any) -> Any:
            calls[0] += 1
            return _sigmoid(X)

        with Journal(path, {"field": "EXP"}) as journal:
            with pytest.raises(QueryBudgetExceededError) if cut < len(Xs) else nullcontext():
                run(JournaledTarget(inner, journal, field=EXP, d=1, chunk_size=chunk), cut)
            first = journal.length()
        assert first == calls[0] <= cut
        with Journal(path, {"field": "EXP"}) as journal:
            answers = run(JournaledTarget(inner, journal, field=EXP, d=1, chunk_size=chunk),
                          None)
            assert journal.replayed == first and journal.written == len(Xs) - first
        assert calls[0] == len(Xs)
        assert answers == [_sigmoid(EXP.array(X)) for X in Xs]


def test_exact_answers_come_back_exactly_and_floats_bit_for_bit(tmp_path: Path) -> None:
    # an irrational EXP answer (a quotient of exponential sums) and awkward floats
    y_exp = EXP.exp(EXP(Fraction(1, 3))) / (2 + EXP.exp(EXP(-5)))
    floats = [-0.0, 5e-324, 0.1, 1 / 3, -1.7976931348623157e308]
    for field, answers in ((EXP, [y_exp, EXP(Fraction(-7, 9))]), (F64, floats)):
        path = tmp_path / f"{field.name}.journal"
        it = iter(answers)
        for _ in range(2):  # record, then replay
            with Journal(path, {"field": field.name}) as journal:
                target = JournaledTarget(lambda X, it=it: next(it), journal, field=field, d=1)
                got = [target(field.array([[k]])) for k in range(len(answers))]
            if field.exact:
                assert all(g == a for g, a in zip(got, answers, strict=True))
            else:
                assert [np.float64(g).tobytes() for g in got] == \
                    [np.float64(a).tobytes() for a in answers]


def test_a_diverging_run_is_refused_at_the_first_different_query(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    fp = {"field": "QQ", "d": 1}
    with Journal(path, fp) as journal:
        target = JournaledTarget(lambda X: X[0, 0], journal, field=QQ, d=1)
        oracle = ValueOracle(target)
        for q in (1, 2, 3):
            oracle([[q]])
    calls: list[Any] = []
    with Journal(path, fp) as journal:
        target = JournaledTarget(lambda X: calls.append(X) or X[0, 0], journal, field=QQ, d=1)
        oracle = ValueOracle(target)
        assert oracle([[1]]) == 1
        # a near miss: 2 + 10^-30 is 2 as a float; the journal holds 2 and must refuse
        with pytest.raises(JournalDivergedError, match="diverged from the journal .* at query 1 "
                                                       "of stream 'main'") as info:
            oracle([[Fraction(2) + Fraction(1, 10**30)]])
        assert info.value.position == 1 and info.value.stream == MAIN
        assert calls == []  # neither answered from the journal nor asked of the inner target
        assert float(Fraction(2) + Fraction(1, 10**30)) == 2.0


def test_a_resume_with_another_phase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    model = single_head_instance(2, 0, field=EXP).model
    fp = fingerprint(EXP, 2)
    journal, oracle, _ = journaled_oracle(path, model, fp)
    oracle([[1, 0]], phase="v")
    journal.close()
    journal, oracle, _ = journaled_oracle(path, model, fp)
    with pytest.raises(JournalDivergedError, match="phase 'v'"):
        oracle([[1, 0]], phase="W")
    journal.close()


@pytest.mark.parametrize(("key", "change"), [
    ("seed", {"seed": 1}),
    ("instance_sha256", {"instance_sha256": "another"}),
    ("options", {"options": {"probes": "gaussian"}}),
    ("d", {"d": 4}),
])
def test_a_journal_of_another_run_is_refused_with_the_key_named(
        tmp_path: Path, key: str, change: dict[str, Any]) -> None:
    path = tmp_path / "run.journal"
    fp = fingerprint(EXP, 3)
    with Journal(path, fp) as journal:
        JournaledTarget(lambda X: X[0, 0], journal, field=EXP, d=3)(EXP.array([[1, 2, 3]]))
    other = {**fp, **change}
    with pytest.raises(JournalMismatchError, match=f"{key} is .* in the journal and") as info:
        Journal(path, other)
    assert info.value.key == key
    assert info.value.old == fp[key] and info.value.new == other[key]
    with pytest.raises(JournalMismatchError, match="extra is absent in the journal"):
        Journal(path, {**fp, "extra": 1})
    with Journal(path, fp) as journal:  # the right fingerprint still opens it
        assert journal.length() == 1


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, " * 100)
    with pytest.raises(InvalidEntryError, match="is not an exactattn journal"):
        Journal(path, {"field": "QQ"})
    with pytest.raises(IncompatibleFieldError, match="qq.journal is over QQ, the target over EXP"):
        with Journal(tmp_path / "qq.journal", {"field": "QQ"}) as journal:
            JournaledTarget(lambda X: 0, journal, field=EXP, d=1)


def test_certificate_probes_are_journaled_in_the_fork_stream(tmp_path: Path) -> None:
    model = single_head_instance(3, 0, field=EXP).model
    fp = fingerprint(EXP, 3, certificate_probes=5)
    path = tmp_path / "run.journal"
    journal, oracle, inner = journaled_oracle(path, model, fp)
    rec = learn_single_head(oracle, seed=0)
    assert verify(rec, oracle, probes=5, seed=0).holds
    assert verify(rec, oracle, probes=3, seed=1).holds  # a second fork of the same name
    assert journal.streams() == {MAIN: 12, "main/certificate#1": 5, "main/certificate#2": 3}
    assert {r.phase for r in journal.rows("main/certificate#1")} == {"certificate"}
    journal.close()
    journal, oracle, inner = journaled_oracle(path, model, fp)
    rec = learn_single_head(oracle, seed=0)
    cert = verify(rec, oracle, probes=5, seed=0)
    assert cert.holds and cert.fresh == 5 and inner.calls == 0
    # a certificate with other probes than the journaled ones diverges, it is not answered
    with pytest.raises(JournalDivergedError, match="main/certificate#2"):
        verify(rec, oracle, probes=3, seed=7)
    journal.close()


def test_a_journaled_certificate_still_rejects_a_wrong_model(tmp_path: Path) -> None:
    model = single_head_instance(3, 0, field=EXP).model
    path = tmp_path / "run.journal"
    journal, oracle, _ = journaled_oracle(path, model, fingerprint(EXP, 3))
    rec = learn_single_head(oracle, seed=0)
    W = rec.W.copy()
    W[0, 0] = W[0, 0] + EXP(Fraction(1, 10**12))
    from dataclasses import replace

    # a near miss (10^-12 on one entry): exact comparison rejects it
    cert = verify(replace(rec, params={"W": W, "v": rec.v.copy()}), oracle, probes=4, seed=0)
    assert not cert.holds and cert.first_failure is not None
    journal.close()


_KILLER = textwrap.dedent("""
    import os, signal, sys
    from exactattn.fields import QQ
    from exactattn.oracle import ValueOracle
    from exactattn.remote.journal import Journal, JournaledTarget

    class Dying:
        field, d = QQ, 1
        def __init__(self):
            self.chunks = 0
        def __call__(self, X):
            return X[0, 0] * 2
        def batch(self, Xs):
            self.chunks += 1
            if self.chunks == 5:   # killed while the fifth chunk is being answered
                os.kill(os.getpid(), signal.SIGKILL)
            return [X[0, 0] * 2 for X in Xs]

    journal = Journal(sys.argv[1], {"field": "QQ", "d": 1})
    oracle = ValueOracle(JournaledTarget(Dying(), journal, chunk_size=4))
    oracle.batch([[[k]] for k in range(10)])   # chunks 1 to 3: rows 0 to 9
    if sys.argv[2] == "in-transaction":
        db = journal._db
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO answers VALUES ('main', 10, 'query', 'torn', '0')")
        os.kill(os.getpid(), signal.SIGKILL)   # the insert is never committed
    oracle.batch([[[k]] for k in range(10, 20)])   # chunk 4 (rows 10 to 13), then killed
""")


def _run_killer(path: Path, mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(path), mode], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _consistent(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [(int(p), str(a)) for p, a in db.execute(
            "SELECT position, answer FROM answers WHERE stream = 'main' ORDER BY position")]
    finally:
        db.close()


def test_a_kill_during_a_transaction_leaves_the_committed_prefix(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    _run_killer(path, "in-transaction")
    rows = _consistent(path)
    # 10 answers in chunks of 4 committed whole (the kill happened between commits)
    assert rows == [(k, f'"{2 * k}"') for k in range(10)]
    with Journal(path, {"field": "QQ", "d": 1}) as journal:
        target = JournaledTarget(lambda X: X[0, 0] * 2, journal, field=QQ, d=1)
        oracle = ValueOracle(target)
        answers = oracle.batch([[[k]] for k in range(12)])
        assert list(answers) == [2 * k for k in range(12)]
        assert target.replayed == 10 and target.forwarded == 2


def test_a_kill_in_the_middle_of_a_batch_keeps_whole_chunks(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    _run_killer(path, "mid-batch")
    rows = _consistent(path)
    # the first batch (rows 0 to 9), then the second batch's first chunk of 4, whole
    assert rows == [(k, f'"{2 * k}"') for k in range(14)]


def test_a_torn_wal_frame_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    _run_killer(path, "mid-batch")
    wal = Path(f"{path}-wal")
    assert wal.exists() and wal.stat().st_size > 0  # SIGKILL: no checkpoint happened
    with open(wal, "r+b") as f:  # a write torn by a power cut: the last frame half written
        f.truncate(wal.stat().st_size - 700)
    rows = _consistent(path)
    assert 0 < len(rows) < 14 and [p for p, _ in rows] == list(range(len(rows)))
    with Journal(path, {"field": "QQ", "d": 1}) as journal:
        assert journal.length() == len(rows)


def test_a_second_writer_of_the_same_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.journal"
    fp = {"field": "QQ", "d": 1}
    with Journal(path, fp) as first, Journal(path, fp) as second:
        a = JournaledTarget(lambda X: X[0, 0], first, field=QQ, d=1)
        b = JournaledTarget(lambda X: X[0, 0], second, field=QQ, d=1)
        assert a(QQ.array([[1]])) == 1
        with pytest.raises(InvalidEntryError, match="position 0 of stream 'main' was written "
                                                    "by another process"):
            b(QQ.array([[2]]))
    with Journal(path, fp) as journal:  # the first writer's row, and nothing else
        assert [r.answer for r in journal.rows()] == ['"1"']


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InvalidEntryError, match="non-empty fingerprint"):
        Journal(os.devnull, {})
    with pytest.raises(InvalidEntryError, match="callable X -> number"):
        JournaledTarget(3, None)  # type: ignore[arg-type]
    # a fingerprint is canonical JSON: NaN (not JSON, and never equal to itself) is refused
    with pytest.raises(InvalidEntryError, match="must be JSON: .*nan.*not JSON compliant"):
        Journal(os.devnull, {"options": {"tau": float("nan")}})


def test_http_oracle_with_a_journal_resends_the_in_flight_request_under_its_own_id(
        tmp_path: Path) -> None:
    """The request in flight at a kill (answered by the server, never journaled) is
    answered from the server's memory when HttpOracle(journal=...) resends it: its id
    is the hash of its queries, not a fresh random id that the server would evaluate."""
    from exactattn.remote import HttpOracle
    from exactattn.remote.server import serve_in_thread

    model = single_head_instance(3, 0, field=EXP).model
    queries = [[[1, 0, 0]], [[0, 1, 0], [0, 0, 1]], [[1, 1, 0]]]
    with serve_in_thread(model) as s:
        first = HttpOracle(s.url, journal=Journal(tmp_path / "j.sqlite", {"run": "a"}))
        first.remote.batch(queries)  # the server answers; the killed client journals nothing
        assert s.service.counts["evaluated"] == 3
        resumed = HttpOracle(s.url, journal=Journal(tmp_path / "j.sqlite", {"run": "a"}))
        answers = resumed.batch(queries)
        assert s.service.counts["evaluated"] == 3  # nothing evaluated twice
        assert s.service.counts["replayed"] == 1
        assert list(answers) == [model(np.array(q, dtype=object)) for q in [
            [[EXP(x) for x in row] for row in q] for q in queries]]
