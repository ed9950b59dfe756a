"""`exactattn serve` and its service: the wire format, refusals, limits, faults, the log.

The service (:class:`exactattn.remote.server.QueryService`) is tested directly
for its decisions, and over HTTP on 127.0.0.1 (a server in a thread, and once
``python -m exactattn serve`` as a real subprocess) for what reaches the wire.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exactattn.certificates import verify
from exactattn.errors import InvalidEntryError, QueryBudgetExceededError
from exactattn.fields import EXP, F64, QQ
from exactattn.learners import learn_single_head
from exactattn.models import ReluFFN, SingleHeadAttention
from exactattn.remote import HttpOracle
from exactattn.remote import protocol as wire
from exactattn.remote.server import QueryService, ServeOptions, serve_in_thread
from tests.strategies import exp_elements

ROOT = Path(__file__).resolve().parents[2]
HEAD = SingleHeadAttention([[Fraction(1, 3), -2], [7, 0]], [0, Fraction(5, 2)], field=EXP)


def _request(queries: Any, *, field: str = "EXP", rid: str = "r") -> bytes:
    return json.dumps({"queries": queries, "request_id": rid, "field": field}).encode()


def _error(reply: Any) -> str:
    body = json.loads(reply.body)
    assert body["status"] == reply.status and "\n" not in body["error"]
    return str(body["error"])


def _log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- the wire format ----------------------------------------------------------------
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=8))
def test_f64_answers_round_trip_bit_for_bit(xs: list[float]) -> None:
    text = wire.dumps(wire.encode_answers(F64, np.array(xs)))
    back = wire.decode_answers(F64, wire.loads(text), len(xs))
    assert np.array(xs).view(np.uint64).tolist() == back.view(np.uint64).tolist()


@given(exp_elements())
def test_exp_answers_round_trip_exactly(y: Any) -> None:
    back = wire.decode_answers(EXP, wire.loads(wire.dumps(wire.encode_answers(EXP, [y]))), 1)
    assert back[0] == y


def test_the_wire_form_is_the_transcripts_form() -> None:
    # one format: the answers travel exactly as Transcript.to_json writes them
    y = EXP.exp(EXP(Fraction(1, 3))) / (1 + EXP.exp(EXP(2)))
    assert wire.encode_answers(EXP, [y]) == [EXP.to_json(y)]
    assert wire.encode_query(QQ, QQ.array([[Fraction(1, 3), 2]])) == [["1/3", "2"]]


def test_query_key_separates_a_near_miss() -> None:
    # 1/3 and the double nearest to it agree to 16 digits; they are different queries
    third = Fraction(1, 3)
    near = Fraction(float(third))
    assert float(near) == float(third)
    assert wire.query_key(QQ, [[third]]) != wire.query_key(QQ, [[near]])
    assert wire.query_key(QQ, [[third]]) == wire.query_key(QQ, [[Fraction(2, 6)]])
    assert wire.query_key(F64, np.array([[0.0]])) != wire.query_key(F64, np.array([[-0.0]]))


@pytest.mark.parametrize(("field", "entry", "problem"), [
    (EXP, 0.5, "is not a rational string"),
    (EXP, True, "is not a rational string"),
    (QQ, {"num": [["0", "1"]], "den": [["0", "1"]]}, "is not a rational string"),
    (QQ, "1/0", "is not a rational"),
    (F64, "0.5", "is not a JSON number"),
    (F64, False, "is not a JSON number"),
    pytest.param(F64, 10**400, "too large for a float64", id="F64-huge-int"),
])
def test_entries_of_the_wrong_type_are_refused(field: Any, entry: Any, problem: str) -> None:
    with pytest.raises(InvalidEntryError, match=problem):
        wire.decode_queries(field, [[[entry]]], 1)


def test_nan_and_infinity_are_not_json_numbers() -> None:
    for text in ('[NaN]', '[Infinity]', '[-Infinity]'):
        with pytest.raises(InvalidEntryError, match="not a number of any field"):
            wire.loads(text)


# -- the service: answers, refusals ----------------------------------------------------
def test_the_service_answers_exactly_and_logs_each_query(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    service = QueryService(HEAD, ServeOptions(log=str(log)))
    X = [["1", "0"], ["0", "1"]]
    reply = service.query(_request([X, [["0", "1"]]]))
    assert reply.status == 200
    answers = wire.decode_answers(EXP, json.loads(reply.body)["answers"], 2)
    assert answers[0] == HEAD(EXP.array([[1, 0], [0, 1]]))
    assert answers[1] == EXP(Fraction(5, 2))
    service.close()
    events = [e for e in _log(log) if e["event"] == "query"]
    assert [e["key"] for e in events] == [wire.query_key(EXP, EXP.array([[1, 0], [0, 1]])),
                                          wire.query_key(EXP, EXP.array([[0, 1]]))]
    info = service.info()
    assert (info["field"], info["d"], info["model"]) == ("EXP", 2, "single_head")
    assert len(info["instance_sha256"]) == 64


@pytest.mark.parametrize(("body", "problem"), [
    (b'{"queries": [[["1", "0"]]', "the request body is not valid JSON"),
    (b'[1, 2]', "the request is a JSON object"),
    (b'{"querys": []}', "got keys"),
    (_request([[["1", "0", "0"]]]), "queries[0][0] has 3 entries; this oracle's d is 2"),
    (_request([[["1", "0"]]], field="F64"), "this server answers over EXP"),
    (_request([[[0.5, "0"]]]), "queries[0][0][0]: 0.5 (type float) is not a rational string"),
    (_request([[]]), "queries[0] must be a non-empty list of rows"),
    (_request([]), "queries is empty"),
    (_request([[["1", "0"]]], rid=7), "request_id must be a string"),  # type: ignore[arg-type]
])
def test_bad_requests_get_400_with_one_line_naming_the_problem(body: bytes,
                                                               problem: str) -> None:
    service = QueryService(HEAD)
    reply = service.query(body)
    assert reply.status == 400
    assert problem in _error(reply)
    assert service.counts["evaluated"] == 0 and service.counts["refused"] == 1


def test_the_budget_is_spent_then_403_with_the_figures() -> None:
    service = QueryService(HEAD, ServeOptions(budget=2))
    assert service.query(_request([[["1", "0"]], [["0", "1"]]])).status == 200
    reply = service.query(_request([[["1", "1"]]], rid="s"))
    assert reply.status == 403
    assert json.loads(reply.body)["budget"] == 2 and json.loads(reply.body)["used"] == 2
    assert "query budget exhausted" in _error(reply)


def test_a_retried_request_is_answered_from_memory_not_evaluated_again() -> None:
    service = QueryService(HEAD)
    first = service.query(_request([[["1", "0"]]], rid="same"))
    again = service.query(_request([[["1", "0"]]], rid="same"))
    other = service.query(_request([[["1", "0"]]], rid="new"))  # a new request: evaluated
    assert first.body == again.body
    assert json.loads(other.body)["answers"] == json.loads(first.body)["answers"]
    assert (service.counts["evaluated"], service.counts["replayed"]) == (2, 1)


def test_faults_are_seeded_and_have_the_asked_frequency() -> None:
    def fates(seed: int) -> list[tuple[int, bool, float]]:
        service = QueryService(HEAD, ServeOptions(fail_rate=0.2, slow_rate=0.1,
                                                  slow_seconds=0.5, seed=seed))
        out = []
        for k in range(400):
            r = service.query(_request([[["1", str(k)]]], rid=str(k)))
            out.append((r.status, r.drop, r.delay))
        return out

    a = fates(3)
    assert a == fates(3) and a != fates(4)
    failed = sum(1 for s, drop, _ in a if s != 200 or drop)
    slow = sum(1 for _, _, delay in a if delay)
    assert {s for s, _, _ in a} == {200, 500, 503} and any(drop for _, drop, _ in a)
    # binomial(400, 0.2): mean 80, sd 8; (400, 0.1): mean 40, sd 6 (5 sd either side)
    assert 40 <= failed <= 120 and 10 <= slow <= 70


def test_the_rate_limit_answers_429_with_retry_after() -> None:
    service = QueryService(HEAD, ServeOptions(rate=1.0))
    assert service.query(_request([[["1", "0"]]], rid="a")).status == 200
    reply = service.query(_request([[["1", "0"]]], rid="b"))
    assert reply.status == 429 and reply.headers["Retry-After"] == "1"
    assert 0 < json.loads(reply.body)["retry_after"] <= 1


def test_options_are_checked() -> None:
    with pytest.raises(InvalidEntryError, match="fail_rate is a probability"):
        ServeOptions(fail_rate=1.5)
    with pytest.raises(InvalidEntryError, match="two disjoint events"):
        ServeOptions(fail_rate=0.6, slow_rate=0.6)
    with pytest.raises(InvalidEntryError, match="rate must be a finite number > 0"):
        ServeOptions(rate=0)
    with pytest.raises(InvalidEntryError, match="slow_seconds must be a finite number >= 0"):
        ServeOptions(slow_seconds=float("inf"))
    with pytest.raises(InvalidEntryError, match="rate must be a finite number > 0, got True"):
        ServeOptions(rate=True)  # type: ignore[arg-type]
    assert ServeOptions(slow_seconds=0).slow_seconds == 0


def test_noise_answers_rationals_within_the_tolerance() -> None:
    service = QueryService(HEAD, ServeOptions(noise="1/100", noise_seed=5))
    assert service.field == QQ and service.info()["noise"] == "1/100"
    reply = service.query(_request([[["1", "0"], ["0", "1"]]], field="QQ"))
    y = wire.decode_answers(QQ, json.loads(reply.body)["answers"], 1)[0]
    f = HEAD(EXP.array([[1, 0], [0, 1]]))
    assert f - Fraction(1, 100) <= EXP(y) <= f + Fraction(1, 100)
    assert EXP(y) != f  # the noise is there: f is irrational here, y is rational


def test_a_relu_instance_is_served_over_qq() -> None:
    # f(x) = 2 relu(x) + 3 relu(-x): f(-2) = 6, f(5/2) = 5
    service = QueryService(ReluFFN([[1, -1]], [2, 3]))
    reply = service.query(_request([[["-2"]], [["5/2"]]], field="QQ"))
    assert json.loads(reply.body)["answers"] == ["6", "5"]
    assert service.info()["model"] == "relu_ffn"


# -- over HTTP ------------------------------------------------------------------------
def _raw(url: str, method: str, path: str, body: bytes | None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_http_refusals_and_info() -> None:
    with serve_in_thread(HEAD) as s:
        status, info = _raw(s.url, "GET", "/info", None)
        assert status == 200 and info["field"] == "EXP" and info["d"] == 2
        status, err = _raw(s.url, "POST", "/query", b"{not json")
        assert status == 400 and "not valid JSON" in err["error"]
        status, err = _raw(s.url, "POST", "/query", _request([[["1", "0", "5"]]]))
        assert status == 400 and "d is 2" in err["error"]
        status, err = _raw(s.url, "GET", "/nothing", None)
        assert status == 404
        status, err = _raw(s.url, "POST", "/query", b"x" * 10,
                           {"Content-Length": str(wire.MAX_BODY_BYTES + 1)})
        assert status == 413


def test_a_server_budget_reaches_the_client_as_a_budget_error() -> None:
    with serve_in_thread(HEAD, budget=3) as s:
        oracle = HttpOracle(s.url)
        with pytest.raises(QueryBudgetExceededError, match="budget is spent"):
            oracle.batch([[[1, 0]]] * 4)
        assert s.service.counts["evaluated"] == 0


def test_serve_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m exactattn serve FILE --port 0 --json`: the address on stdout, a learner
    through it, SIGTERM ends it with exit 0."""
    instance = tmp_path / "head.json"
    instance.write_text(json.dumps({"model": "single_head", "field": "EXP",
                                    "W": [["1/3", "-2", "0"], ["7", "0", "1"], ["0", "1", "1"]],
                                    "v": ["0", "5/2", "-1"]}), encoding="utf-8")
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "exactattn", "serve", str(instance),
                             "--port", "0", "--json", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert line["port"] > 0 and line["d"] == 3 and line["model"] == "single_head"
        oracle = HttpOracle(line["url"])
        rec = learn_single_head(oracle)
        assert rec.status == "exact" and rec.W.tolist() == \
            [[Fraction(1, 3), -2, 0], [7, 0, 1], [0, 1, 1]]
        assert verify(rec, oracle, probes=2).holds
        keys = {e["key"] for e in _log(log) if e["event"] == "query"}
        assert len(keys) == rec.queries + 2 == 14
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_serve_refuses_a_bad_instance_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "single_head", "W": [[0.1]], "v": ["1"]}', encoding="utf-8")
    from exactattn.cli import main

    assert main(["serve", str(bad), "--port", "0"]) == 2
    assert main(["serve", str(bad), "--port", "0", "--fail-rate", "2"]) == 2
    good = tmp_path / "good.json"
    good.write_text('{"model": "single_head", "W": [["1"]], "v": ["1"]}', encoding="utf-8")
    assert main(["serve", str(good), "--port", "0", "--log", str(tmp_path / "no" / "x")]) == 2
    assert main(["serve", str(good), "--port", "0", "--noise=-1/2"]) == 2


def test_slow_answers_arrive_late() -> None:
    with serve_in_thread(HEAD, slow_rate=1.0, slow_seconds=0.3) as s:
        start = time.perf_counter()
        status, body = _raw(s.url, "POST", "/query", _request([[["1", "0"]]]))
        assert status == 200 and time.perf_counter() - start >= 0.3
        assert body["answers"] == ["0"]


def test_the_float_field_is_served_bit_exactly() -> None:
    rng = np.random.default_rng(1)
    head = SingleHeadAttention(rng.standard_normal((4, 4)), rng.standard_normal(4), field=F64)
    Xs = rng.standard_normal((5, 2, 4)) * 1e-300  # subnormal products: every bit matters
    with serve_in_thread(head) as s:
        got = HttpOracle(s.url).batch(Xs)
    want = head.batch(Xs)
    assert got.view(np.uint64).tolist() == want.view(np.uint64).tolist()
    assert all(math.isfinite(y) for y in got)


# -- the JSON schemas of the wire (docs/schemas/remote_*.json) --------------------------
def _validator(name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test-only) not installed")
    schema = json.loads((ROOT / "docs" / "schemas" / f"{name}.schema.json").read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _violations(name: str, obj: Any) -> list[str]:
    return [e.message for e in _validator(name).iter_errors(obj)]


def test_what_the_server_sends_matches_the_schemas() -> None:
    f64 = SingleHeadAttention([[0.5, 1.0], [2.0, -1.0]], [1.0, 3.0], field=F64)
    for model, field in ((HEAD, "EXP"), (f64, "F64")):
        service = QueryService(model, ServeOptions(budget=3, rate=100.0))
        assert _violations("remote_info", service.info()) == []
        request = json.loads(_request([[["1", "0"], ["0", "1"]], [["2", "1/2"]]], field=field)
                             if field == "EXP" else
                             _request([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.5]]], field=field))
        assert _violations("remote_query", request) == []
        reply = service.query(json.dumps(request).encode())
        assert reply.status == 200
        assert _violations("remote_answers", json.loads(reply.body)) == []
        refusals = [service.query(b"{"), service.query(json.dumps(request).encode()
                                                       .replace(b'"r"', b'"again"'))]
        assert [r.status for r in refusals] == [400, 403]
        for r in refusals:
            assert _violations("remote_error", json.loads(r.body)) == []
    # the irrational answers over EXP really are {"num", "den"} objects
    assert any(isinstance(a, dict) for a in json.loads(
        QueryService(HEAD).query(_request([[["1", "0"], ["0", "1"]]])).body)["answers"])


def test_the_schemas_reject_broken_messages() -> None:
    assert _violations("remote_answers", {"answers": [True], "request_id": "r"}) != []
    assert _violations("remote_answers", {"answers": ["0.5"], "request_id": "r"}) != []
    assert _violations("remote_answers", {"answers": [{"num": [["1", "2"]]}],
                                          "request_id": "r"}) != []
    assert _violations("remote_error", {"error": "two\nlines", "status": 400}) != []
    assert _violations("remote_query", {"queries": []}) != []
    assert _violations("remote_info", {**QueryService(HEAD).info(), "protocol": 2}) != []
    # the noise seed is always sent (a journal's fingerprint of a noisy run holds it)
    assert _violations("remote_info", {k: v for k, v in QueryService(HEAD).info().items()
                                       if k != "noise_seed"}) != []


def test_tolerances_are_checked_and_need_a_noisy_server() -> None:
    exact = QueryService(HEAD)
    body = json.dumps({"queries": [[["1", "0"]]], "tolerances": ["1/10"]}).encode()
    reply = exact.query(body)
    assert reply.status == 400 and "need 'exactattn serve --noise EPS'" in _error(reply)
    noisy = QueryService(HEAD, ServeOptions(noise="1/100", budget=1))
    for tolerances, problem in ((["1/10", "1/10"], "a list of 1 rational strings"),
                                ([0.1], "tolerances[0]: 0.1 (type float) is not a rational"),
                                (["-1/10"], "tolerances[0] = -1/10 is negative")):
        reply = noisy.query(json.dumps({"queries": [[["1", "0"]]], "field": "QQ",
                                        "tolerances": tolerances}).encode())
        assert reply.status == 400 and problem in _error(reply)
    two = json.dumps({"queries": [[["1", "0"]], [["0", "1"]]], "field": "QQ",
                      "tolerances": ["1/10", "1/10"]}).encode()
    assert noisy.query(two).status == 403 and noisy.counts["evaluated"] == 0
    assert _violations("remote_query", json.loads(two)) == []
