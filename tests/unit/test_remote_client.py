"""HttpOracle: a learner through the loopback API, faults, rate limits and bad servers.

Every server here listens on 127.0.0.1 in a thread of the test process
(:func:`exactattn.remote.server.serve_in_thread`), or is a few lines of
``http.server`` that answer something wrong on purpose.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from exactattn.certificates import verify
from exactattn.errors import (
    IncompatibleFieldError,
    InvalidEntryError,
    OracleUnavailableError,
    QueryBudgetExceededError,
)
from exactattn.fields import EXP, F64
from exactattn.learners import learn_single_head
from exactattn.models import SingleHeadAttention
from exactattn.oracle import ValueOracle
from exactattn.remote import HttpOracle
from exactattn.remote.protocol import PROTOCOL_VERSION, query_key
from exactattn.remote.server import serve_in_thread


def _head(F: Any, d: int, seed: int) -> SingleHeadAttention:
    rng = np.random.default_rng(seed)
    return SingleHeadAttention(F.gaussian(rng, (d, d)), F.gaussian(rng, d), field=F)


def _same_transcripts(a: ValueOracle, b: ValueOracle) -> bool:
    F = a.field
    return len(a.transcript) == len(b.transcript) and all(
        x.index == y.index and x.phase == y.phase and x.X.shape == y.X.shape
        and query_key(F, x.X) == query_key(F, y.X)
        and (x.answer == y.answer if F.exact else
             np.float64(x.answer).view(np.uint64) == np.float64(y.answer).view(np.uint64))
        for x, y in zip(a.transcript, b.transcript, strict=True))


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- a learner through the API ----------------------------------------------------------
def test_learn_single_head_exactly_through_the_api() -> None:
    head = _head(EXP, 3, seed=0)
    with serve_in_thread(head) as s:
        oracle = HttpOracle(s.url, field=EXP, d=3)
        rec = learn_single_head(oracle)
        local = ValueOracle(head)
        rec_local = learn_single_head(local)
        assert rec.status == "exact" and rec.hypotheses == ()
        assert (rec.W == head.W).all() and (rec.v == head.v).all()
        assert rec.queries == rec_local.queries == 3 + 9
        assert oracle.queries_by_phase == local.queries_by_phase
        assert _same_transcripts(oracle, local)
        cert = verify(rec, oracle, probes=4)
        assert cert.holds and cert.kind == "exact"
        assert oracle.queries == 12  # the certificate's probes went to a fork


def test_learn_single_head_over_f64_through_the_api() -> None:
    head = _head(F64, 8, seed=1)
    with serve_in_thread(head) as s:
        oracle = HttpOracle(s.url)
        rec = learn_single_head(oracle)
        local = ValueOracle(head)
        rec_local = learn_single_head(local)
        assert rec.status == "float"
        assert rec.queries == rec_local.queries
        assert _same_transcripts(oracle, local)  # bit for bit: the same numbers
        assert rec.W.tobytes() == rec_local.W.tobytes()
        assert verify(rec, oracle, probes=4).holds


def test_chunks_of_batch_size_one_change_nothing_but_the_requests() -> None:
    head = _head(EXP, 2, seed=2)
    with serve_in_thread(head) as s:
        oracle = HttpOracle(s.url, batch_size=1)
        rec = learn_single_head(oracle)
        # one GET /info, then one POST per query
        assert rec.status == "exact" and oracle.remote.requests == 1 + rec.queries == 7


# -- faults -----------------------------------------------------------------------------
def test_a_run_survives_twenty_percent_failed_or_slow_requests(tmp_path: Path) -> None:
    """10 % of requests fail (dropped, 500, 503), 10 % answer after the client's timeout:
    the run succeeds, each query is counted once, and the server evaluated each distinct
    query once (a retry of an answered request is answered from its memory)."""
    head = _head(F64, 6, seed=3)
    log = tmp_path / "serve.log"
    with serve_in_thread(head, fail_rate=0.1, slow_rate=0.1, slow_seconds=0.3, seed=7,
                         log=str(log)) as s:
        oracle = HttpOracle(s.url, batch_size=2, timeout=0.15, backoff=0.01, seed=0)
        rec = learn_single_head(oracle)
        local = ValueOracle(head)
        learn_single_head(local)
        counts = dict(s.service.counts)
    assert rec.queries == local.queries == len(oracle.transcript)
    assert _same_transcripts(oracle, local)
    events = _log(log)
    faults = {e["kind"] for e in events if e["event"] == "fault"}
    assert faults == {"drop", "500", "503"} and any(e["event"] == "slow" for e in events)
    assert counts["replayed"] > 0  # answers lost on the way were sent again, not recomputed
    evaluated = [e["key"] for e in events if e["event"] == "query"]
    learner = {query_key(F64, e.X) for e in oracle.transcript}
    assert len(learner) == rec.queries  # this learner never asks a query twice
    assert set(evaluated) == learner and len(evaluated) == rec.queries
    assert oracle.remote.requests > rec.queries // 2  # retries were needed


def test_429_retry_after_is_honoured() -> None:
    with serve_in_thread(_head(EXP, 2, seed=4), rate=1.0) as s:
        oracle = HttpOracle(s.url, backoff=0.0)
        start = time.perf_counter()
        oracle([[1, 0]])
        oracle([[0, 1]])  # the bucket is empty: 429, Retry-After: 1
        elapsed = time.perf_counter() - start
        assert s.service.counts["rate_limited"] >= 1
    assert oracle.remote.waited >= 1.0 and elapsed >= 1.0
    assert oracle.queries == 2


def test_a_dead_server_is_unavailable_after_the_retries() -> None:
    s = serve_in_thread(_head(EXP, 2, seed=5))
    oracle = HttpOracle(s.url, retries=3, backoff=0.0)
    s.stop()
    with pytest.raises(OracleUnavailableError) as caught:
        oracle([[1, 0]])
    assert caught.value.attempts == 4 and caught.value.url == s.url
    assert s.url in str(caught.value) and "after 4 attempts" in str(caught.value)
    assert oracle.queries == 1  # the oracle counted the query it was asked, once


def test_a_server_slower_than_the_timeout_times_out_cleanly() -> None:
    with serve_in_thread(_head(EXP, 2, seed=6), slow_rate=1.0, slow_seconds=0.4) as s:
        oracle = HttpOracle(s.url, retries=1, timeout=0.1, backoff=0.0)
        with pytest.raises(OracleUnavailableError, match="timed out after 0.1 s"):
            oracle([[1, 0]])
        assert s.service.counts["evaluated"] == 1  # the retry was answered from memory


def test_the_client_budget_is_checked_before_any_request() -> None:
    with serve_in_thread(_head(EXP, 2, seed=7)) as s:
        oracle = HttpOracle(s.url, budget=2)
        with pytest.raises(QueryBudgetExceededError):
            oracle.batch([[[1, 0]], [[0, 1]], [[1, 1]]])
        assert s.service.counts["requests"] == 0


def test_field_and_d_are_checked_against_info() -> None:
    with serve_in_thread(_head(EXP, 2, seed=8)) as s:
        with pytest.raises(IncompatibleFieldError, match="answers over EXP"):
            HttpOracle(s.url, field=F64)
        with pytest.raises(InvalidEntryError, match="d = 3 given"):
            HttpOracle(s.url, d=3)
        fork = HttpOracle(s.url).fork("certificate")
        assert fork.url == s.url and fork.d == 2 and fork.budget is None
        # a fork connects with its parent's options
        opts = {"batch_size": 7, "timeout": 3.0, "retries": 2, "backoff": 0.01,
                "max_backoff": 0.5, "max_retry_after": 5.0}
        # (the encoding too: an EXP server offers JSON only)
        assert HttpOracle(s.url, **opts).fork("c").remote.options() == {**opts,
                                                                         "encoding": "json"}
    with serve_in_thread(_head(EXP, 2, seed=8), noise="1/100") as s:
        from exactattn.remote import HttpNoisyOracle

        assert HttpNoisyOracle(s.url, **opts).fork("c").remote.options() == {
            **opts, "encoding": "json"}


# -- bad servers ------------------------------------------------------------------------
class _Liar(BaseHTTPRequestHandler):
    """Answers /info correctly for EXP, d = 1, and /query with ``answer(n)``."""

    protocol_version = "HTTP/1.1"
    answer: Any = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._send(200, json.dumps({"field": "EXP", "d": 1, "protocol": PROTOCOL_VERSION,
                                    "model": "liar"}).encode())

    def do_POST(self) -> None:  # noqa: N802
        n = len(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["queries"])
        reply = type(self).answer(n)  # a body, or (status, body, headers)
        if isinstance(reply, tuple):
            self._send(*reply)
        else:
            self._send(200, reply)


@pytest.fixture
def liar() -> Iterator[Any]:
    servers = []

    def start(answer: Any) -> str:
        handler = type("Handler", (_Liar,), {"answer": staticmethod(answer)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("answer", "problem"), [
    (lambda n: json.dumps({"answers": ["not a number"] * n}).encode(),
     r"answers\[0\]: 'not a number' is not a rational"),
    (lambda n: json.dumps({"answers": [0.5] * n}).encode(),
     r"answers\[0\]: 0.5 \(type float\) is not a rational string"),
    (lambda n: json.dumps({"answers": ["1"] * (n + 1)}).encode(),
     "the server answered 3 values to 2 queries"),
    (lambda n: b"<html>oops</html>", "with a body that is not valid JSON"),
    (lambda n: json.dumps({"result": 1}).encode(), r"not \{\"answers\": \[...\]\}"),
], ids=["not-a-number", "a-float-over-EXP", "wrong-count", "not-json", "no-answers"])
def test_a_server_answering_garbage_is_refused_naming_the_entry(
        liar: Any, answer: Any, problem: str) -> None:
    oracle = HttpOracle(liar(answer))
    with pytest.raises(InvalidEntryError, match=problem):
        oracle.batch([[[1]], [[2]]])
    assert len(oracle.transcript) == 0  # nothing recorded from a refused answer


class _Switch:
    """One head for the first ``k`` queries, another afterwards: a server that lies."""

    field, d = EXP, 2

    def __init__(self, k: int) -> None:
        self.k, self.asked = k, 0
        self.first, self.then = _head(EXP, 2, seed=9), _head(EXP, 2, seed=10)

    def __call__(self, X: Any) -> Any:
        self.asked += 1
        return (self.first if self.asked <= self.k else self.then)(X)


class _NotAttention:
    """f(X) = |x_N|^2 + N: rational, never an attention head."""

    field, d = EXP, 2

    def __call__(self, X: Any) -> Any:
        return sum(EXP(x) * EXP(x) for x in X[-1]) + EXP(X.shape[0])


@pytest.mark.parametrize("model", [_Switch(6), _NotAttention()], ids=["switch", "polynomial"])
def test_a_lying_server_fails_the_certificate(model: Any) -> None:
    with serve_in_thread(model) as s:
        oracle = HttpOracle(s.url)
        rec = learn_single_head(oracle)
        cert = verify(rec, oracle, probes=4)
    # the learner's answers were consistent; the fresh probes catch the lie
    assert not cert.holds and cert.first_failure is not None
    assert cert.first_failure.source == "fresh" and cert.verdict == "fails"


def test_an_honest_server_of_the_same_class_passes_the_same_check() -> None:
    # the control of the test above: the same learner and certificate, a head that keeps
    # its word, holds (so the failures above are the lies, not the route)
    with serve_in_thread(_Switch(10**6)) as s:
        oracle = HttpOracle(s.url)
        assert verify(learn_single_head(oracle), oracle, probes=4).holds


def test_exact_answers_near_a_float_are_kept_exactly() -> None:
    # the near miss: 1/3 and the double nearest to it are different answers over EXP
    third, near = Fraction(1, 3), Fraction(float(Fraction(1, 3)))
    head = SingleHeadAttention([[0]], [third], field=EXP)
    with serve_in_thread(head) as s:
        y = HttpOracle(s.url)([[1]])
    assert y == EXP(third) and y != EXP(near)


class _Broken:
    """A served model with a bug of its own."""

    field, d = EXP, 1

    def __call__(self, X: Any) -> Any:
        return EXP(1) / EXP(0)


def test_a_model_that_crashes_is_a_500_naming_the_error_then_unavailable() -> None:
    with serve_in_thread(_Broken()) as s:
        oracle = HttpOracle(s.url, retries=1, backoff=0.0)
        with pytest.raises(OracleUnavailableError, match="internal error of the served model: "
                                                         "ZeroDivisionError") as caught:
            oracle([[1]])
        assert caught.value.attempts == 2 and s.service.counts["errors"] == 2


# -- approximate value queries (a server with --noise) -----------------------------------
def test_the_noisy_learner_through_the_api_equals_the_in_process_run() -> None:
    from exactattn.certificates import verify as certify
    from exactattn.learners import learn_single_head_noisy
    from exactattn.oracle import NoisyOracle
    from exactattn.remote import HttpNoisyOracle

    head = SingleHeadAttention([[1, -1], [Fraction(1, 2), 0]],
                               [Fraction(1, 2), Fraction(-1, 2)], field=EXP)
    theorem = {"epsilon_W": Fraction(1, 10), "epsilon_v": Fraction(1, 10), "W_bound": 2,
               "margin": Fraction(1, 2)}
    with serve_in_thread(head, noise="1/1000", noise_seed=3) as s:
        oracle = HttpNoisyOracle(s.url)
        rec = learn_single_head_noisy(oracle, **theorem)
        local = NoisyOracle(head, tolerance=Fraction(1, 1000), adversary="uniform", seed=3)
        rec_local = learn_single_head_noisy(local, **theorem)
        assert rec.status == "approximate" and rec.queries == rec_local.queries == 6
        assert (rec.W == rec_local.W).all() and (rec.v == rec_local.v).all()
        # the learner's own tolerances travelled: every entry was asked within its tau
        assert [e.tolerance for e in oracle.transcript] == \
            [e.tolerance for e in local.transcript]
        assert {str(e.tolerance) for e in oracle.transcript}.isdisjoint({"1/1000"})
        assert _same_transcripts(oracle, local)
        assert certify(rec, oracle, probes=4).holds
        with serve_in_thread(head) as exact, \
                pytest.raises(InvalidEntryError, match="answers exactly"):
            HttpNoisyOracle(exact.url)


def test_a_retry_after_longer_than_the_client_accepts_is_refused_at_once(liar: Any) -> None:
    calls: list[int] = []

    def busy(n: int) -> tuple[int, bytes, dict[str, str]]:
        calls.append(n)
        return 429, b'{"error": "busy", "status": 429}', {"Retry-After": "3600"}

    oracle = HttpOracle(liar(busy), max_retry_after=5.0)
    with pytest.raises(OracleUnavailableError, match="asks to retry after 3600 s"):
        oracle([[1]])
    assert calls == [1] and oracle.remote.waited == 0.0


def test_retry_after_as_an_http_date_is_honoured(liar: Any) -> None:
    import email.utils

    calls: list[int] = []

    def once_busy(n: int) -> Any:
        calls.append(n)
        if len(calls) == 1:
            when = email.utils.formatdate(time.time() + 1.5, usegmt=True)
            return 503, b'{"error": "later", "status": 503}', {"Retry-After": when}
        return json.dumps({"answers": ["7"] * n}).encode()

    oracle = HttpOracle(liar(once_busy), backoff=0.0)
    assert oracle([[1]]) == 7
    # an HTTP date has whole seconds: 1.5 s ahead is a wait in (0.5, 1.5]
    assert len(calls) == 2 and 0.4 < oracle.remote.waited <= 1.6


def test_a_status_that_is_not_retried_names_the_base_url(liar: Any) -> None:
    url = liar(lambda n: (404, b'{"error": "no such path", "status": 404}', {}))
    oracle = HttpOracle(url, backoff=0.0)
    with pytest.raises(OracleUnavailableError, match="HTTP 404: no such path") as caught:
        oracle([[1]])
    assert caught.value.url == url and caught.value.attempts == 1


@pytest.mark.parametrize("seed", [-1, True, 1.5])
def test_a_bad_seed_is_refused_by_every_remote_target_before_any_request(seed: Any) -> None:
    """RemoteTarget checks its seed (HttpOracle, HttpNoisyOracle and the resumable target
    inherit the check): refused before GET /info is sent (no server listens here)."""
    from exactattn.remote import HttpNoisyOracle
    from exactattn.remote.client import RemoteTarget
    from exactattn.remote.resume import ResumableRemoteTarget

    for make in (RemoteTarget, ResumableRemoteTarget, HttpOracle, HttpNoisyOracle):
        with pytest.raises(InvalidEntryError, match="seed must be an integer >= 0"):
            make("http://127.0.0.1:9", seed=seed, retries=0)
