"""Kill and resume (issue 16): a run through ``exactattn serve`` killed with SIGKILL, resumed.

The client ``python -m exactattn learn single_head_exact --oracle URL --journal J``
is killed at seeded points of its run, each time while a request is in flight
(the server has evaluated a chunk, and logged it, that the journal does not
hold yet); each resume continues from the journal. At the end the result, the
query count and the transcript equal those of the uninterrupted in-process
run, and the server's log shows every distinct query evaluated exactly once
in total: the in-flight request is sent again with the same content-addressed
id and answered from the server's memory (a ``replayed`` event).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exactattn.certificates import verify
from exactattn.cli import main
from exactattn.fields import EXP, F64, Field
from exactattn.instance_files import instance_to_json
from exactattn.instances import single_head_instance
from exactattn.learners import Recovery, learn_single_head
from exactattn.oracle import ValueOracle
from exactattn.remote import HttpOracle
from exactattn.remote.journal import MAIN, Journal, journal_key
from exactattn.remote.server import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
#: fresh certificate probes of every run here
PROBES = 16


@pytest.fixture
def served(tmp_path: Path, request: Any) -> Iterator[tuple[str, Path, Any]]:
    """``exactattn serve`` in a subprocess on an instance file: (url, log path, model)."""
    field, d = request.param
    model = single_head_instance(d, 0, field=field).model
    inst = tmp_path / "instance.json"
    inst.write_text(json.dumps(instance_to_json(model)))
    log = tmp_path / "server.log"
    # every answer is held back 50 ms after it is evaluated (and logged): a kill lands
    # while a request is in flight
    proc = subprocess.Popen([sys.executable, "-m", "exactattn", "serve", str(inst),
                             "--port", "0", "--log", str(log), "--json", "--slow-rate", "1",
                             "--slow-seconds", "0.05"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        yield json.loads(line)["url"], log, model
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def client(url: str, journal: Path, field: Field, d: int, batch: int, *extra: str
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exactattn", "learn", "single_head_exact", "--field", field.name,
         "--d", str(d), "--oracle", url, "--journal", str(journal), "--batch-size", str(batch),
         "--certificate-probes", str(PROBES), "--no-progress", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def journaled_rows(db: sqlite3.Connection) -> int:
    try:
        return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def evaluated(log: Path) -> list[str]:
    """The keys of the queries the server evaluated, in its log's order."""
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    return [e["key"] for e in events if e.get("event") == "query"]


def kill_in_flight(url: str, journal: Path, log: Path, field: Field, d: int, batch: int,
                   after: int) -> tuple[int, bool]:
    """Start the client; SIGKILL it once the journal holds >= ``after`` answers and the
    server has evaluated queries the journal does not hold. Returns the rows journaled and
    whether a request was still in flight at the kill (evaluated, not journaled)."""
    proc = client(url, journal, field, d, batch)
    deadline = time.monotonic() + 60
    while not journal.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    db = sqlite3.connect(journal, timeout=10)
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the run ended before its kill: {proc.communicate()}"
            rows = journaled_rows(db)
            if rows >= after and len(evaluated(log)) > rows:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        assert proc.wait(timeout=20) == -signal.SIGKILL
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = journaled_rows(db)
        return rows, len(evaluated(log)) > rows
    finally:
        db.close()
        proc.communicate()


def reference(model: Any) -> tuple[Recovery, ValueOracle]:
    """The uninterrupted in-process run (same seed, same certificate)."""
    oracle = ValueOracle(model)
    rec = learn_single_head(oracle, seed=0)
    assert verify(rec, oracle, probes=PROBES, seed=0).holds
    return rec, oracle


def check_against_reference(tmp_path: Path, out: str, saved: Path, journal: Path, log: Path,
                            model: Any, in_flight: int) -> None:
    rec_ref, oracle_ref = reference(model)
    info = json.loads(out)
    assert info["queries"] == rec_ref.queries
    assert info["queries_by_phase"] == dict(rec_ref.queries_by_phase)
    assert info["certificate"]["holds"] is True and info["journal"]["replayed"] > 0
    rec = Recovery.from_json(json.loads(saved.read_text())["recovery"])
    F = rec_ref.field
    # the same W and v (exact equality, or the same float64 bits)
    assert np.array_equal(rec.W, rec_ref.W) and np.array_equal(rec.v, rec_ref.v)
    # the same transcript, entry for entry
    assert len(rec.transcript) == len(oracle_ref.transcript) == rec_ref.queries
    for a, b in zip(rec.transcript, oracle_ref.transcript, strict=True):
        assert a.phase == b.phase and np.array_equal(a.X, b.X)
        assert a.answer == b.answer if F.exact else \
            np.float64(a.answer).tobytes() == np.float64(b.answer).tobytes()
    # the server evaluated each distinct query exactly once in total, kills included
    keys = evaluated(log)
    with Journal(journal, _fingerprint_of(journal)) as j:
        journaled = [r.query_key for s in j.streams() for r in j.rows(s)]
        assert [r.query_key for r in j.rows(MAIN)] == \
            [journal_key(F, e.X) for e in oracle_ref.transcript]
        assert j.streams() == {MAIN: rec_ref.queries, "main/certificate#1": PROBES}
    assert len(keys) == len(set(keys)) == rec_ref.queries + PROBES
    assert sorted(keys) == sorted(journaled)
    # each request in flight at a kill was sent again on resume, answered from memory
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(e.get("event") == "replayed" for e in events) == in_flight >= 1


def _fingerprint_of(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM header")
                if k != "journal_format"}
    finally:
        db.close()


def finish(url: str, journal: Path, field: Field, d: int, batch: int, saved: Path) -> str:
    proc = client(url, journal, field, d, batch, "--json", "--save", str(saved))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("served", [(F64, 8)], indirect=True)
def test_kill_three_times_and_resume_f64(tmp_path: Path, served: tuple[str, Path, Any]) -> None:
    url, log, model = served
    journal, saved = tmp_path / "run.journal", tmp_path / "rec.json"
    total = 8 + 8 * 8 + 1 + PROBES  # v, W, one rescaled probe, the certificate's probes
    rng = random.Random(16)
    points = sorted(rng.sample(range(1, total - 8), 3))
    kills = [kill_in_flight(url, journal, log, F64, 8, 4, after) for after in points]
    rows = [r for r, _ in kills]
    assert rows == sorted(rows) and all(r >= p for r, p in zip(rows, points, strict=True))
    assert rows[-1] < total  # every kill was mid-run
    out = finish(url, journal, F64, 8, 4, saved)
    check_against_reference(tmp_path, out, saved, journal, log, model,
                            in_flight=sum(f for _, f in kills))


@pytest.mark.parametrize("served", [(EXP, 3)], indirect=True)
def test_kill_and_resume_exp(tmp_path: Path, served: tuple[str, Path, Any]) -> None:
    url, log, model = served
    journal, saved = tmp_path / "run.journal", tmp_path / "rec.json"
    _, in_flight = kill_in_flight(url, journal, log, EXP, 3, 2, after=5)
    out = finish(url, journal, EXP, 3, 2, saved)
    check_against_reference(tmp_path, out, saved, journal, log, model, in_flight=in_flight)


def test_http_oracle_with_a_journal_resumes_its_forks_too(tmp_path: Path) -> None:
    """HttpOracle(journal=...) (the client's own wrapping): the certificate's fork journals
    into its own stream, and a resumed run asks the server nothing."""
    model = single_head_instance(3, 1, field=EXP).model
    path = tmp_path / "run.journal"
    fp = {"instance_sha256": "x", "field": "EXP", "d": 3}
    with serve_in_thread(model) as server:
        results = []
        for _ in range(2):
            with Journal(path, fp) as journal:
                oracle = HttpOracle(server.url, journal=journal)
                rec = learn_single_head(oracle, seed=0)
                cert = verify(rec, oracle, probes=4, seed=0)
                results.append((rec, cert, server.service.counts["evaluated"],
                                journal.streams()))
        (rec1, cert1, n1, s1), (rec2, cert2, n2, s2) = results
    assert cert1.holds and cert2.holds
    assert n1 == n2 == 12 + 4  # the second run was answered from the journal only
    assert s1 == s2 == {MAIN: 12, "main/certificate#1": 4}
    assert np.array_equal(rec1.W, rec2.W) and rec1.queries == rec2.queries


def test_a_journaled_run_under_injected_faults_evaluates_each_query_once(tmp_path: Path
                                                                         ) -> None:
    """20 % of the requests dropped or answered 500/503: the retries (same content-addressed
    id) are answered from the server's memory; the journal and the count are unaffected."""
    from exactattn.remote.resume import journaled_remote_oracle

    model = single_head_instance(4, 0, field=EXP).model
    rec_ref, _ = reference(model)
    with serve_in_thread(model, fail_rate=0.2, seed=5) as server:
        oracle, journal = journaled_remote_oracle(
            server.url, str(tmp_path / "j.db"), label="single_head_exact", seed=0, options={},
            batch_size=2, backoff=0.001)
        try:
            rec = learn_single_head(oracle, seed=0)
            assert verify(rec, oracle, probes=PROBES, seed=0).holds
            streams = journal.streams()
        finally:
            journal.close()
        counts = dict(server.service.counts)
    assert counts["faults"] > 0  # the faults happened, and were retried
    assert np.array_equal(rec.W, rec_ref.W) and rec.queries == rec_ref.queries
    assert streams == {MAIN: rec.queries, "main/certificate#1": PROBES}
    assert counts["evaluated"] == rec.queries + PROBES


def test_cli_refuses_bad_remote_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    model = single_head_instance(2, 0, field=EXP).model
    with serve_in_thread(model) as server:
        journal = tmp_path / "j.db"
        base = ["learn", "single_head_exact", "--d", "2", "--no-progress"]
        assert main([*base, "--oracle", server.url, "--journal", str(journal)]) == 0
        assert main([*base, "--seed", "1", "--oracle", server.url, "--journal",
                     str(journal)]) == 2
        assert "seed is 0 in the journal and 1 in this run" in capsys.readouterr().err
        assert main([*base, "--journal", str(journal)]) == 2
        assert "--journal needs --oracle" in capsys.readouterr().err
        assert main([*base, "--oracle", "ftp://127.0.0.1"]) == 2
        assert "not an http:// or https:// address" in capsys.readouterr().err
        assert main([*base, "--field", "F64", "--oracle", server.url]) == 2
        assert "answers over EXP" in capsys.readouterr().err
        assert main([*base, "--oracle", server.url, "--instance", os.devnull]) == 2
        assert "exclude each other" in capsys.readouterr().err
        assert main([*base, "--oracle", server.url]) == 0
        capsys.readouterr()


def test_cli_learns_a_low_rank_head_from_a_server(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from exactattn.checks.low_rank import low_rank_head
    from exactattn.learners.low_rank import adaptive_query_count

    model = low_rank_head(4, 1, 0)
    journal = tmp_path / "j.db"
    args = ["learn", "low_rank_adaptive", "--d", "4", "--rank", "1", "--json", "--no-progress"]
    with serve_in_thread(model) as server:
        for _ in range(2):  # then resumed from the complete journal: no query evaluated
            assert main([*args, "--oracle", server.url, "--journal", str(journal)]) == 0
            info = json.loads(capsys.readouterr().out)
            assert info["queries"] == info["expected_queries"] == adaptive_query_count(4, 1)
            assert info["certificate"]["holds"] is True
        assert server.service.counts["evaluated"] == info["queries"] + PROBES
    assert info["journal"]["replayed"] == info["queries"] + PROBES


class _Liar:
    """A single head's answers, except on queries of at least ``tokens`` tokens: the
    answer plus x_1 . x_N (no head answers that)."""

    field, d = EXP, 2

    def __init__(self, tokens: int) -> None:
        self.honest = single_head_instance(2, 0, field=EXP).model
        self.tokens = tokens

    def __call__(self, X: Any) -> Any:
        y = self.honest(X)
        return y + X[0] @ X[-1] if X.shape[0] >= self.tokens else y

    def batch(self, Xs: Any) -> list[Any]:
        return [self(X) for X in Xs]


@pytest.mark.parametrize(("tokens", "says"), [
    (2, "the learner found answers that no single_head_exact model gives"),  # while learning
    (3, "FAILS at fresh query"),  # honest on N <= 2, caught by fresh probes
])
def test_cli_exits_1_on_a_server_that_lies(tokens: int, says: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with serve_in_thread(_Liar(tokens)) as server:
        code = main(["learn", "single_head_exact", "--d", "2", "--oracle", server.url,
                     "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert says in out + err


def test_cli_json_on_a_server_whose_answers_fit_no_model_is_one_error_object(
        capsys: pytest.CaptureFixture[str]) -> None:
    # exit 1 with nothing on stdout broke the --json rule: now the error object, exit_code 1
    from exactattn.report.json import error_report

    with serve_in_thread(_Liar(2)) as server:
        code = main(["learn", "single_head_exact", "--d", "2", "--oracle", server.url,
                     "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    obj = json.loads(out)
    assert set(obj) == set(error_report("learn", "x")) and obj["exit_code"] == 1
    assert "no single_head_exact model gives" in obj["error"] and obj["error"] in err


def test_journaled_remote_oracle_refuses_another_field_or_d_before_the_journal(
        tmp_path: Path) -> None:
    """The field and d checks are HttpOracle's (RemoteTarget.check): same errors, and no
    journal file is created for a run that cannot start."""
    from exactattn.errors import IncompatibleFieldError, InvalidEntryError
    from exactattn.fields import QQ
    from exactattn.remote.resume import journaled_remote_oracle

    path = tmp_path / "run.journal"
    with serve_in_thread(single_head_instance(2, 0, field=EXP).model) as server:
        for kwargs, error, match in (
                ({"field": QQ}, IncompatibleFieldError, "field QQ given, but .* over EXP"),
                ({"d": 3}, InvalidEntryError, "d = 3 given, but .* d = 2"),
                ({"d": True}, InvalidEntryError, "d must be an integer >= 1")):
            with pytest.raises(error, match=match):
                journaled_remote_oracle(server.url, str(path), label="x", seed=0, options={},
                                        **kwargs)
            with pytest.raises(error, match=match):
                HttpOracle(server.url, **kwargs)
    assert not path.exists()
