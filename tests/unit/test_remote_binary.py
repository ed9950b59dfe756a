"""The binary F64 encoding of the remote protocol (``"f64le"``, docs/remote.md).

Bit-exactness of the encoding (random float64 bit patterns, -0.0, subnormals,
the largest doubles), NaN and the infinities refused as on the JSON path,
malformed bodies answered with the server's 400 JSON error (never a crash or a
partial read), and the request ids, the server's memory of answered requests,
retries, the budget, the rate limit and the journal behaving as over JSON,
including a run journaled over one encoding and resumed over the other.
"""

from __future__ import annotations

import http.client
import json
import struct
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exactattn.errors import InvalidEntryError, QueryBudgetExceededError, ShapeError
from exactattn.fields import EXP, F64
from exactattn.instances import single_head_instance
from exactattn.oracle import ValueOracle
from exactattn.remote import HttpOracle
from exactattn.remote import protocol as wire
from exactattn.remote.resume import ResumableRemoteTarget, journaled_remote_oracle
from exactattn.remote.server import QueryService, serve_in_thread

BIN = wire.F64_BINARY_TYPE
#: the awkward doubles: signed zeros, the smallest subnormal, the largest subnormal, the
#: smallest normal, the largest doubles
SPECIAL = [0.0, -0.0, 5e-324, -5e-324, 2.225073858507201e-308, 2.2250738585072014e-308,
           1.7976931348623157e308, -1.7976931348623157e308, 1e-320, 1.0, -1.0]


class Echo:
    """A served F64 'model' whose answer is the query's last entry: its answers are its
    queries' bits, so a round trip through the server checks both directions."""

    field = F64
    d = 3

    def __call__(self, X: Any) -> Any:
        return np.float64(np.asarray(X, dtype=np.float64)[-1, -1])


def _bits(a: Any) -> list[int]:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64).ravel().tolist()


def _random_doubles(rng: np.random.Generator, n: int) -> np.ndarray:
    """n float64 from uniformly random bit patterns (every exponent), NaN and inf dropped."""
    x = rng.integers(0, 2**64, size=4 * n, dtype=np.uint64).view(np.float64)
    return x[np.isfinite(x)][:n]


def _error(reply: Any) -> str:
    assert reply.content_type == wire.JSON_TYPE
    body = json.loads(reply.body)
    assert body["status"] == reply.status and "\n" not in body["error"]
    return str(body["error"])


# -- the encoding -------------------------------------------------------------------
@given(st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3,
                         max_size=3), min_size=1, max_size=6), st.integers(1, 4))
def test_queries_and_answers_round_trip_bit_for_bit(rows: list[list[float]], split: int
                                                    ) -> None:
    # queries of different numbers of tokens: the first `split` rows, then the rest
    Xs = [np.array(rows[:split])] + ([np.array(rows[split:])] if rows[split:] else [])
    header, back = wire.unpack_f64_queries(wire.pack_f64_queries(Xs, "r", 3), 3)
    assert header["tokens"] == [len(X) for X in Xs]
    assert [_bits(X) for X in back] == [_bits(X) for X in Xs]
    flat = np.array(rows).ravel()
    _, answers = wire.unpack_f64_answers(wire.pack_f64_answers(flat, "r"), len(flat))
    assert _bits(answers) == _bits(flat)


def test_random_bit_patterns_and_special_values_round_trip_through_the_server() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([SPECIAL, _random_doubles(rng, 2000)])
    # one query per value, the value as the last entry; lengths 1, 2, 3 tokens mixed
    Xs = [np.vstack([rng.standard_normal((k % 3, 3)), [[1.0, 2.0, v]]])
          for k, v in enumerate(values)]
    with serve_in_thread(Echo()) as s:
        binary = HttpOracle(s.url, batch_size=500)
        plain = HttpOracle(s.url, batch_size=500, encoding="json")
        assert binary.remote.encoding == "f64le" and plain.remote.encoding == "json"
        got_binary, got_json = binary.batch(Xs), plain.batch(Xs)
        uniform = binary.batch(np.stack([X[-1:] for X in Xs]))  # the (B, N, d) array path
    assert _bits(got_binary) == _bits(values) == _bits(got_json) == _bits(uniform)


def _with_bad_entry(X: np.ndarray, at: tuple[int, int]) -> bytes:
    """The binary body of [X] with X[at] (NaN or an infinity) written into the bytes the
    packer (which refuses it) wrote for a finite stand-in."""
    stand_in = X.copy()
    stand_in[at] = 1234.5
    body = wire.pack_f64_queries([stand_in], "r", X.shape[1])
    mark = struct.pack("<d", 1234.5)
    assert body.count(mark) == 1
    return body.replace(mark, struct.pack("<d", float(X[at])))


def test_nan_and_infinity_are_refused_with_the_same_error_as_json() -> None:
    with serve_in_thread(Echo()) as s:
        for bad in (float("nan"), float("inf"), -float("inf")):
            errors = []
            for encoding in ("json", "f64le"):
                oracle = HttpOracle(s.url, encoding=encoding)
                with pytest.raises(InvalidEntryError) as info:
                    oracle([[0.0, 1.0, bad]])
                errors.append(str(info.value))
                assert oracle.queries == 0
            assert errors[0] == errors[1]
        assert s.service.counts["requests"] == 0  # refused by the client, never sent
    # the packer itself refuses them (a RemoteTarget used directly sent them before)
    X = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, float("nan")]])
    with pytest.raises(InvalidEntryError, match=r"queries\[0\]\[1, 2\]: NaN is not a number"):
        wire.pack_f64_queries([X], "r", 3)
    with pytest.raises(InvalidEntryError, match=r"queries\[0, 1, 2\]: NaN is not a number"):
        wire.pack_f64_queries(X[None], "r", 3)
    # sent anyway (another client): the server refuses both with the same words
    service = QueryService(Echo())
    binary = _error(service.query(_with_bad_entry(X, (1, 2)), BIN))
    text = _error(service.query(b'{"queries": [[[0, 1, 2], [3, 4, NaN]]], "request_id": "r"}'))
    assert "queries[0][1][2]: NaN is not a number of any field" in binary
    assert "NaN is not a number of any field" in text
    X[1, 2], X[0, 1] = 5.0, -np.inf
    inf = _error(service.query(_with_bad_entry(X, (0, 1)), BIN))
    assert "queries[0][0][1]: -Infinity is not a number of any field" in inf
    assert service.counts["evaluated"] == 0 and service.counts["refused"] == 3


def test_a_non_finite_answer_is_refused_by_the_client() -> None:
    body = bytearray(wire.pack_f64_answers([1.0, 2.0], "r"))
    body[-8:] = struct.pack("<d", float("inf"))
    with pytest.raises(InvalidEntryError, match=r"answers\[1\]: Infinity is not a number"):
        wire.unpack_f64_answers(bytes(body), 2)
    with pytest.raises(InvalidEntryError, match="answered 2 values to 3 queries"):
        wire.unpack_f64_answers(wire.pack_f64_answers([1.0, 2.0], "r"), 3)
    with pytest.raises(InvalidEntryError, match="Infinity"):
        wire.pack_f64_answers([1.0, -np.inf], "r")



def test_a_query_of_another_d_is_refused_before_it_is_sent() -> None:
    # regression: a (B, N, d') array was packed under the header's d and sent; the server then
    # refused it by its byte count ("48 bytes of numbers ... make 32"), a list at once
    for Xs in (np.zeros((2, 1, 3)), [np.zeros((1, 3))] * 2):
        with pytest.raises(ShapeError, match="this oracle's queries are N x 2"):
            wire.pack_f64_queries(Xs, "r", 2)

# -- malformed bodies ---------------------------------------------------------------
GOOD = wire.pack_f64_queries([np.ones((2, 3)), np.zeros((1, 3))], "r", 3)
_HEAD_LEN = struct.unpack_from("<I", GOOD, 4)[0]


def _with_header(header: Any, payload: bytes = b"\0" * 24) -> bytes:
    head = json.dumps(header).encode()
    return wire.F64_MAGIC + struct.pack("<I", len(head)) + head + payload


@pytest.mark.parametrize(("body", "problem"), [
    (b"", "binary request of 0 bytes is truncated"),
    (b"XAF1\x05", "truncated"),
    (b"XAF2" + GOOD[4:], "starts with b'XAF1', got b'XAF2'"),
    (b'{"queries": []}', "starts with b'XAF1'"),
    (GOOD[:8] + GOOD[8:20], "does not fit"),
    (b"XAF1" + struct.pack("<I", 2**31) + b"{}", "does not fit"),
    (GOOD[:-1], "has 71 bytes of numbers; its header's tokens [2, 1] times d = 3 make 72"),
    (GOOD + b"\0" * 8, "has 80 bytes of numbers"),
    (GOOD[:-24], "has 48 bytes of numbers"),
    (wire.F64_MAGIC + struct.pack("<I", 3) + b"{x}", "not valid JSON"),
    (_with_header([1, 2]), "header is a JSON object, got [1, 2]"),
    (_with_header({"d": 3, "field": "F64", "tokens": [1]}), "has the keys"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": [1], "x": 1}),
     "has the keys"),
    (_with_header({"d": 2, "field": "F64", "request_id": "r", "tokens": [1]}),
     "d = 2; this oracle's d is 3"),
    (_with_header({"d": True, "field": "F64", "request_id": "r", "tokens": [1]}), "d = True"),
    (_with_header({"d": 3, "field": "EXP", "request_id": "r", "tokens": [1]}),
     "carries F64 only"),
    (_with_header({"d": 3, "field": "F64", "request_id": 7, "tokens": [1]}),
     "request_id must be a string"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": []}), "non-empty"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": 1}), "non-empty"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": [0, 1]}),
     "tokens[0] = 0"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": [True]}),
     "tokens[0] = True"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r", "tokens": [1.0]}),
     "tokens[0] = 1.0"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r",
                   "tokens": [1] * (wire.MAX_QUERIES_PER_REQUEST + 1)}), "at most 65536"),
    (_with_header({"d": 3, "field": "F64", "request_id": "r" * 201, "tokens": [1]}),
     "at most 200 characters"),
])
def test_malformed_binary_bodies_get_400_naming_the_problem(body: bytes, problem: str) -> None:
    service = QueryService(Echo())
    reply = service.query(body, BIN)
    assert reply.status == 400
    assert problem in _error(reply)
    assert service.counts["evaluated"] == 0


def test_every_truncation_of_a_body_is_refused_and_only_the_whole_is_answered() -> None:
    service = QueryService(Echo())
    for n in range(len(GOOD)):
        assert service.query(GOOD[:n], BIN).status == 400, n
    reply = service.query(GOOD, BIN)
    assert reply.status == 200 and reply.content_type == BIN
    assert _bits(wire.unpack_f64_answers(reply.body, 2)[1]) == _bits([1.0, 0.0])
    assert service.counts["evaluated"] == 2 and service.counts["refused"] == len(GOOD)


def test_over_http_a_bad_body_is_a_400_json_and_exact_servers_refuse_binary_with_415(
) -> None:
    head = single_head_instance(3, 0, field=EXP).model
    for model, body, status in ((Echo(), GOOD[:-3], 400), (head, GOOD, 415)):
        with serve_in_thread(model) as s:
            parts = urlsplit(s.url)
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
            conn.request("POST", "/query", body=body, headers={"Content-Type": BIN})
            response = conn.getresponse()
            answer = json.loads(response.read())
            conn.close()
            assert response.status == status == answer["status"]
            assert response.getheader("Content-Type") == "application/json"
            assert s.service.counts["evaluated"] == 0
    assert "carries F64 only" in answer["error"]


def test_the_encoding_option_is_checked_against_info() -> None:
    head = single_head_instance(3, 0, field=EXP).model
    with serve_in_thread(head) as s:
        assert HttpOracle(s.url).remote.encoding == "json"  # never binary for exact fields
        with pytest.raises(InvalidEntryError, match="'f64le' asked, but .* offers"):
            HttpOracle(s.url, encoding="f64le")
        with pytest.raises(InvalidEntryError, match="encoding must be None"):
            HttpOracle(s.url, encoding="binary")
    with serve_in_thread(Echo()) as s:
        assert s.service.info()["encodings"] == ["json", "f64le"]
        # a server of an older version (no "encodings" in /info): JSON
        info = {k: v for k, v in s.service.info().items() if k != "encodings"}
        old = HttpOracle(s.url, _info=info)
        assert old.remote.encoding == "json"
        assert HttpOracle(s.url).fork("c").remote.encoding == "f64le"
        assert HttpOracle(s.url, encoding="json").fork("c").remote.encoding == "json"


# -- request ids, memory, retries, limits -------------------------------------------
def test_a_request_resent_in_the_other_encoding_is_answered_from_memory() -> None:
    service = QueryService(Echo())
    X = np.array([[[1.0, 2.0, -0.0]], [[3.0, 4.0, 5e-324]]])
    first = service.query(wire.pack_f64_queries(X, "id1", 3), BIN)
    again = service.query(json.dumps({"queries": X.tolist(), "request_id": "id1"}).encode())
    back = service.query(wire.pack_f64_queries(list(X), "id1", 3), BIN)
    assert first.status == again.status == back.status == 200
    assert first.body == back.body
    assert _bits(json.loads(again.body)["answers"]) == _bits([-0.0, 5e-324])
    assert service.counts["evaluated"] == 2 and service.counts["replayed"] == 2
    # the same id with other queries (here 0.0 for -0.0) is another request
    other = service.query(wire.pack_f64_queries(np.abs(X), "id1", 3), BIN)
    assert _bits(wire.unpack_f64_answers(other.body, 2)[1]) == _bits([0.0, 5e-324])
    assert service.counts["evaluated"] == 4


def test_content_addressed_ids_do_not_depend_on_the_encoding(tmp_path: Path) -> None:
    Xs = np.random.default_rng(0).standard_normal((6, 2, 3))
    log = tmp_path / "server.log"
    with serve_in_thread(Echo(), log=str(log)) as s:
        for encoding in ("json", "f64le"):
            ResumableRemoteTarget(s.url, encoding=encoding, batch_size=3).batch(Xs)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    ids = [e["request_id"] for e in events if e["event"] == "query"]
    replayed = [e["request_id"] for e in events if e["event"] == "replayed"]
    assert len(ids) == 6 and len(set(ids)) == 2 and replayed == sorted(set(ids), key=ids.index)


def test_retries_under_injected_faults_evaluate_each_query_once() -> None:
    rng = np.random.default_rng(5)
    Xs = rng.standard_normal((60, 2, 3))
    with serve_in_thread(Echo(), fail_rate=0.3, seed=2) as s:
        oracle = HttpOracle(s.url, batch_size=4, backoff=0.001, seed=1)
        got = oracle.batch(Xs)
        counts = dict(s.service.counts)
    assert oracle.remote.encoding == "f64le"
    assert _bits(got) == _bits(Xs[:, -1, -1])
    assert counts["faults"] > 0 and counts["replayed"] > 0  # some drops were answered again
    assert counts["evaluated"] == 60 and oracle.queries == 60


def test_budget_and_rate_limit_are_those_of_json() -> None:
    Xs = np.ones((3, 1, 3))
    results = {}
    for encoding in ("json", "f64le"):
        with serve_in_thread(Echo(), budget=4) as s:
            oracle = HttpOracle(s.url, encoding=encoding)
            oracle.batch(Xs)
            with pytest.raises(QueryBudgetExceededError) as info:
                oracle.batch(Xs)
            results[encoding] = (str(info.value).replace(s.url, "URL"), info.value.budget,
                                 info.value.used)
        with serve_in_thread(Echo(), rate=20.0) as s:
            oracle = HttpOracle(s.url, encoding=encoding, batch_size=1)
            oracle.batch(np.ones((25, 1, 3)))
            assert s.service.counts["rate_limited"] > 0 and s.service.counts["evaluated"] == 25
    assert results["json"] == results["f64le"]
    assert results["json"][1:] == (4, 3)


# -- the journal --------------------------------------------------------------------
@pytest.mark.parametrize(("before", "after"), [("json", "f64le"), ("f64le", "json")])
def test_a_run_journaled_over_one_encoding_resumes_over_the_other(
        tmp_path: Path, before: str, after: str) -> None:
    """Run 1 journals chunk A, then is 'killed' with chunk B evaluated by the server but not
    journaled; run 2, over the other encoding, takes A from the journal and B from the
    server's memory: every query evaluated once, the answers those of the model."""
    model = single_head_instance(4, 0, field=F64).model
    rng = np.random.default_rng(7)
    A, B = rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4))
    path = str(tmp_path / "run.journal")
    want = ValueOracle(model).batch(np.concatenate([A, B]))
    with serve_in_thread(model) as s:
        oracle, journal = journaled_remote_oracle(s.url, path, label="t", seed=0, options={},
                                                  batch_size=4, encoding=before)
        try:
            first = oracle.batch(A)
        finally:
            journal.close()
        # the request in flight when run 1 died: evaluated, never journaled
        ResumableRemoteTarget(s.url, batch_size=4, encoding=before).batch(B)
        assert s.service.counts["evaluated"] == 8
        oracle, journal = journaled_remote_oracle(s.url, path, label="t", seed=0, options={},
                                                  batch_size=4, encoding=after)
        try:
            remote = oracle.journaled.inner
            assert remote.encoding == after
            both = oracle.batch(np.concatenate([A, B]))
            assert journal.length() == 8
        finally:
            journal.close()
        counts = dict(s.service.counts)
    assert counts["evaluated"] == 8 and counts["replayed"] == 1
    assert remote.requests == 2  # GET /info, then chunk B only
    assert _bits(first) == _bits(want[:4]) and _bits(both) == _bits(want)


@pytest.mark.parametrize("lie", ["request_id", "count", "content_type"])
def test_a_server_whose_binary_answer_does_not_fit_the_request_is_refused(lie: str) -> None:
    with serve_in_thread(Echo()) as s:
        honest = s.service._encode

        def liar(answers: Any, rid: str, binary: bool) -> Any:
            reply = honest(answers, rid, binary)
            if lie == "request_id":
                reply.body = wire.pack_f64_answers(answers, rid + "x")
            elif lie == "count":
                reply.body = wire.pack_f64_answers(list(answers)[1:], rid)
            else:
                reply.content_type = wire.JSON_TYPE
            return reply

        s.service._encode = liar  # type: ignore[method-assign]
        oracle = HttpOracle(s.url)
        with pytest.raises(InvalidEntryError, match={
                "request_id": "answered request '.*x' .* to request",
                "count": "answered 1 values to 2 queries",
                "content_type": "with Content-Type 'application/json'"}[lie]):
            oracle.batch(np.ones((2, 1, 3)))


def test_info_with_encodings_matches_its_schema_and_the_schema_rejects_a_wrong_list() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (test-only) not installed")
    root = Path(__file__).resolve().parents[2]
    schema = json.loads((root / "docs" / "schemas" / "remote_info.schema.json").read_text())
    check = jsonschema.Draft202012Validator(schema)
    exp = single_head_instance(3, 0, field=EXP).model
    for model in (Echo(), exp):
        info = QueryService(model).info()
        assert list(check.iter_errors(info)) == []
    for wrong in (["f64le"], ["json", "xml"], [], "json", ["json", "json"]):
        assert list(check.iter_errors({**info, "encodings": wrong})) != [], wrong
    assert list(check.iter_errors({k: v for k, v in info.items() if k != "encodings"})) != []
