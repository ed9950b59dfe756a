"""Serving a hidden model: ``exactattn serve INSTANCE_FILE --port P``.

A small HTTP server on the loopback address answers value queries to the
model of an instance file (docs/instances.md). It is built on the standard
library's :class:`http.server.ThreadingHTTPServer`: zero new dependencies,
and nothing here needs more than one short JSON request and response per
batch (the cost of a query is the model's arithmetic, not the HTTP stack;
see docs/remote.md for the figures).

Endpoints (the wire format is :mod:`exactattn.remote.protocol`):

* ``GET /info`` -> ``{"field", "d", "model", "instance_sha256", "version",
  "protocol", "noise", "budget", "max_queries", "encodings"}``.
* ``POST /query`` with ``{"queries": [...], "request_id": str, "field": str}``
  -> ``{"answers": [...], "request_id": str}``; over F64 also with a body of
  the binary encoding (Content-Type
  :data:`~exactattn.remote.protocol.F64_BINARY_TYPE`, ``"f64le"`` in
  ``encodings``), answered in kind. Errors are one-line JSON
  objects ``{"error": "...", "status": code}``: 400 bad input (not JSON,
  wrong field, wrong d, an entry that is not a number of the field), 403 the
  query budget is spent (with ``budget`` and ``used``), 404 no such path, 411
  no Content-Length, 413 too large, 429 rate limited (with ``Retry-After``),
  415 the binary encoding sent to a server over EXP or QQ, 500 / 503 injected faults.

The server's logic lives in :class:`QueryService` (no HTTP in it), so that it
is tested directly; :class:`_Handler` only moves bytes.

A request that was answered is remembered by its ``request_id`` (the last
:data:`REMEMBERED_REQUESTS`): a client that lost the answer (a dropped
connection, a timeout) and sends the same request again gets the same
answers without a second evaluation, a second log line or a second charge
against the budget.

>>> from fractions import Fraction
>>> from exactattn.fields import EXP
>>> from exactattn.models import SingleHeadAttention
>>> service = QueryService(SingleHeadAttention([[1, 0], [0, 1]], [Fraction(1, 2), 1], field=EXP))
>>> reply = service.query(b'{"queries": [[["1", "0"]]], "request_id": "a", "field": "EXP"}')
>>> reply.status, reply.body
(200, b'{"answers":["1/2"],"request_id":"a"}')
>>> service.query(b'{"queries": [[["1", "0", "0"]]], "request_id": "b", "field": "EXP"}').body
b'{"error":"queries[0][0] has 3 entries; this oracle\\'s d is 2","status":400}'
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ..errors import ExactattnError, InvalidEntryError, QueryBudgetExceededError
from ..fields import F64, Field
from ..fields.base import describe
from ..fields.rational import parse_rational
from . import protocol
from .client import _positive_number

__all__ = ["ServeOptions", "QueryService", "Reply", "ServerThread", "serve_in_thread",
           "add_parser", "REMEMBERED_REQUESTS", "FAULTS"]

#: answered requests remembered by request_id (a retry of one of them is not evaluated again)
REMEMBERED_REQUESTS = 64
#: the injected failures, drawn uniformly when a request fails: the connection closed
#: without an answer (after the queries were evaluated), HTTP 500, HTTP 503
FAULTS = ("drop", "500", "503")


@dataclass(frozen=True)
class ServeOptions:
    """The server's options (``exactattn serve --help``).

    rate : requests per second allowed (a token bucket holding ``max(1, rate)``
        requests); None for no limit. Over the limit: HTTP 429 with Retry-After.
    budget : queries the server evaluates in total before answering 403.
    fail_rate : probability that a request fails (one of :data:`FAULTS`).
    slow_rate, slow_seconds : probability that an answer is held back
        ``slow_seconds`` before it is sent (after the evaluation).
    noise, noise_seed : answer within ``noise`` of the true value (a rational
        tolerance; exact instances only): the answers of a
        :class:`~exactattn.oracle.NoisyOracle` with the ``uniform`` adversary,
        served over QQ.
    seed : seed of the fault and delay draws (one ``random.Random``).
    log : path of the JSON-lines log (appended to, flushed after each line).
    """

    rate: float | None = None
    budget: int | None = None
    fail_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    noise: str | None = None
    noise_seed: int = 0
    seed: int = 0
    log: str | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "slow_rate"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                raise InvalidEntryError(f"{name} is a probability in [0, 1], got {describe(p)}")
        if self.fail_rate + self.slow_rate > 1:
            raise InvalidEntryError(f"fail_rate + slow_rate = {self.fail_rate + self.slow_rate}"
                                    " > 1: they are the probabilities of two disjoint events")
        if self.rate is not None:
            _positive_number(self.rate, "rate")
        _positive_number(self.slow_seconds, "slow_seconds", zero=True)
        if self.noise is not None:
            try:
                tau = parse_rational(self.noise)
            except InvalidEntryError as exc:
                raise InvalidEntryError(f"noise is a rational tolerance such as '1/100': "
                                        f"{exc}") from None
            if tau <= 0:
                raise InvalidEntryError(f"noise must be > 0, got {self.noise}")
        for name in ("budget", "noise_seed", "seed"):
            n = getattr(self, name)
            if n is None and name == "budget":
                continue
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidEntryError(f"{name} must be an integer >= 0, got {describe(n)}")


@dataclass
class Reply:
    """What the handler sends: a status, a body (JSON, or the binary F64 encoding when
    ``content_type`` says so) and extra headers, ``delay`` seconds late; or, with
    ``drop``, nothing (the connection is closed)."""

    status: int
    body: bytes
    headers: dict[str, str] = dataclass_field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    content_type: str = protocol.JSON_TYPE


def _error(status: int, message: str, **extra: Any) -> Reply:
    body = protocol.dumps({"error": " ".join(message.split()), "status": status, **extra})
    return Reply(status, body.encode("utf-8"))


class _RateLimit:
    """A token bucket: ``rate`` requests per second, bursts of ``max(1, rate)``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 if a request may pass now (one token taken), else the seconds until it may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class QueryService:
    """The server's state and logic, without HTTP: decode, limit, evaluate, encode, log.

    Parameters
    ----------
    model : the hidden model (``field``, ``d``, ``__call__``, optionally ``batch``),
        or an :class:`~exactattn.instance_files.InstanceSpec`.
    options : :class:`ServeOptions` (default: no limit, no fault, no noise).
    model_kind, instance_sha256 : what ``/info`` reports; read from the
        instance when ``model`` is an instance (or a model with an instance form).

    Queries are evaluated by a :class:`~exactattn.oracle.ValueOracle` of the
    model (or a :class:`~exactattn.oracle.NoisyOracle` with ``noise``), which
    validates each one again, counts it and enforces the budget; the service
    holds one lock around the evaluation, so the count and the log are
    sequential whatever the number of server threads.
    """

    def __init__(self, model: Any, options: ServeOptions | None = None, *,
                 model_kind: str | None = None, instance_sha256: str | None = None) -> None:
        from ..instance_files import InstanceSpec, instance_spec
        from ..oracle import NoisyOracle, ValueOracle

        self.options = options = ServeOptions() if options is None else options
        if isinstance(model, InstanceSpec):
            spec: InstanceSpec | None = model
        else:
            try:
                spec = instance_spec(model)
            except (ExactattnError, AttributeError):
                spec = None  # a model without an instance form (a test's liar): no hash
        if spec is not None:
            model = spec.model
            model_kind = model_kind or spec.model_kind
            if instance_sha256 is None:
                instance_sha256 = hashlib.sha256(
                    protocol.dumps(dict(spec.source)).encode("utf-8")).hexdigest()
        model_field = getattr(model, "field", None)
        if not isinstance(model_field, Field):
            raise InvalidEntryError(f"a served model has a field (EXP, QQ, F64), got "
                                    f"{describe(model)}")
        oracle: ValueOracle
        if options.noise is not None:
            oracle = NoisyOracle(model, tolerance=parse_rational(options.noise),
                                 adversary="uniform",
                                 seed=options.noise_seed, budget=options.budget,
                                 keep_transcript=False, name="served")
        else:
            oracle = ValueOracle(model, budget=options.budget, keep_transcript=False,
                                 name="served")
        self.field: Field = protocol.wire_field(oracle.field.name)
        self.d = oracle.d
        self.model_kind = model_kind or type(model).__name__
        self.instance_sha256 = instance_sha256
        self._oracle = oracle
        self._noisy = oracle if isinstance(oracle, NoisyOracle) else None
        self._lock = threading.Lock()
        self._rng = random.Random(options.seed)
        self._limit = _RateLimit(options.rate) if options.rate is not None else None
        # answered requests: (request_id, digest of the queries) -> answers; over F64 the
        # digest is that of the decoded batch (protocol.batch_digest), the same whatever the
        # encoding; over EXP and QQ that of the body
        self._answered: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._log: BinaryIO | None = open(options.log, "ab") if options.log else None
        #: requests received; queries evaluated; requests answered from memory (retries);
        #: faults injected; requests over the rate limit; refused (4xx); model errors (500)
        self.counts = {"requests": 0, "evaluated": 0, "replayed": 0, "faults": 0,
                       "rate_limited": 0, "refused": 0, "errors": 0}

    # -- info and log -------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What ``GET /info`` answers."""
        from .. import __version__

        return {"field": self.field.name, "d": self.d, "model": self.model_kind,
                "instance_sha256": self.instance_sha256, "version": __version__,
                "protocol": protocol.PROTOCOL_VERSION,
                "noise": None if self.options.noise is None
                else str(parse_rational(self.options.noise)),
                "noise_seed": self.options.noise_seed if self.options.noise else None,
                "budget": self.options.budget,
                "max_queries": protocol.MAX_QUERIES_PER_REQUEST,
                "encodings": protocol.encodings_of(self.field)}

    def _write_log(self, **event: Any) -> None:
        if self._log is not None:
            self._log.write((protocol.dumps({"t": round(time.time(), 6), **event})
                             + "\n").encode("utf-8"))
            self._log.flush()

    def close(self) -> None:
        """Close the log file."""
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    # -- one request --------------------------------------------------------------
    def query(self, body: bytes, content_type: str | None = None) -> Reply:
        """Answer the body of a ``POST /query``. Never raises on bad input: every
        problem is a :class:`Reply` with a 4xx status and a one-line JSON error.

        ``content_type`` is the request's Content-Type: the binary F64 encoding
        (:data:`~exactattn.remote.protocol.F64_BINARY_TYPE`, answered in kind), or
        anything else, read as JSON."""
        with self._lock:
            self.counts["requests"] += 1
            try:
                reply = self._answer(body, content_type)
            except Exception as exc:  # a bug of the served model: answer 500 naming it, go on
                self.counts["errors"] += 1
                self._write_log(event="error", error=f"{type(exc).__name__}: {exc}")
                return _error(500, f"internal error of the served model: "
                                   f"{type(exc).__name__}: {exc}")
            if reply.status >= 400 and reply.status not in (429, 500, 503):
                self.counts["refused"] += 1
                self._write_log(event="refused", status=reply.status,
                                error=json.loads(reply.body)["error"])
            return reply

    def _draw(self) -> tuple[str | None, bool]:
        """This request's fate, one uniform draw u: u < fail_rate fails it (a fault of
        :data:`FAULTS`), fail_rate <= u < fail_rate + slow_rate delays it."""
        o = self.options
        if not (o.fail_rate or o.slow_rate):
            return None, False
        u = self._rng.random()
        if u < o.fail_rate:
            return self._rng.choice(FAULTS), False
        return None, u < o.fail_rate + o.slow_rate

    def _answer(self, body: bytes, content_type: str | None) -> Reply:
        if self._limit is not None:
            wait = self._limit.take()
            if wait > 0:
                self.counts["rate_limited"] += 1
                self._write_log(event="rate_limited", retry_after=round(wait, 6))
                reply = _error(429, f"rate limit of {self.options.rate} requests per second "
                                    f"exceeded; retry after {wait:.3f} s",
                               retry_after=round(wait, 6))
                reply.headers["Retry-After"] = str(max(1, math.ceil(wait)))
                return reply
        fault, slow = self._draw()
        if fault in ("500", "503"):  # refused before anything is evaluated
            self.counts["faults"] += 1
            self._write_log(event="fault", kind=fault)
            return _error(int(fault), f"injected fault {fault} (--fail-rate "
                                      f"{self.options.fail_rate}); retry")
        reply = self._evaluate(body, content_type)
        if reply.status != 200:
            return reply
        if fault == "drop":  # evaluated, then the answer is lost
            self.counts["faults"] += 1
            self._write_log(event="fault", kind="drop")
            reply.drop = True
        elif slow:
            self._write_log(event="slow", seconds=self.options.slow_seconds)
            reply.delay = self.options.slow_seconds
        return reply

    def _evaluate(self, body: bytes, content_type: str | None = None) -> Reply:
        ctype = (content_type or "").split(";")[0].strip().lower()
        binary = ctype == protocol.F64_BINARY_TYPE
        if binary:
            if "f64le" not in protocol.encodings_of(self.field):
                return _error(415, f"the binary encoding {protocol.F64_BINARY_TYPE} carries "
                                   f"F64 only; this server answers over {self.field.name}: "
                                   f"send {protocol.JSON_TYPE}")
            try:
                header, Xs = protocol.unpack_f64_queries(body, self.d)
            except ExactattnError as exc:
                return _error(400, f"the binary request body is refused: {exc}")
            request: dict[str, Any] = {"request_id": header["request_id"]}
        else:
            try:
                request = protocol.loads(body)
            except InvalidEntryError as exc:
                return _error(400, f"the request body is {exc}")
            if not isinstance(request, dict):
                return _error(400, f"the request is a JSON object, got {describe(request)}")
            unknown = sorted(set(request) - {"queries", "request_id", "field", "tolerances"})
            if unknown or "queries" not in request:
                return _error(400, "the request is {\"queries\": [...], \"request_id\": str, "
                                   "\"field\": str, \"tolerances\": [...] (optional)}; got "
                                   f"keys {sorted(request)}")
        rid = request.get("request_id", "")
        if not isinstance(rid, str) or len(rid) > 200:
            return _error(400, f"request_id must be a string of at most 200 characters, got "
                               f"{describe(rid)}")
        if "field" in request and request["field"] != self.field.name:
            return _error(400, f"field {describe(request['field'])} asked; this server answers"
                               f" over {self.field.name} (d = {self.d})")
        floats = self.field == F64
        if not floats:  # exact fields: the memory keys on the body, looked up before decoding
            memo = (rid, hashlib.sha256(body).hexdigest())
            if rid and memo in self._answered:
                return self._replay(memo, rid, binary)
        try:
            if not binary:
                Xs = protocol.decode_queries(self.field, request["queries"], self.d)
            tolerances = self._tolerances(request.get("tolerances"), len(Xs))
        except ExactattnError as exc:
            return _error(400, str(exc))
        if floats:  # over F64 on the decoded batch: a retry in either encoding is recognised
            memo = (rid, protocol.batch_digest(self.field, Xs))
            if rid and memo in self._answered:
                return self._replay(memo, rid, binary)
        answers: Any
        try:
            if tolerances is None:
                answers = self._oracle.batch(Xs, phase="served")
            else:  # approximate value queries AVQ(X; tau), each within its own tau
                budget, used = self._oracle.budget, self._oracle.queries
                if budget is not None and used + len(Xs) > budget:  # refused whole
                    raise QueryBudgetExceededError(
                        f"query budget of {budget} exceeded: {used} used, {len(Xs)} more asked",
                        budget=budget, used=used)
                assert self._noisy is not None  # _tolerances refused them otherwise
                answers = [self._noisy(X, phase="served", tolerance=t)
                           for X, t in zip(Xs, tolerances, strict=True)]
        except QueryBudgetExceededError as exc:
            return _error(403, f"query budget exhausted: {exc}", budget=exc.budget,
                          used=exc.used)
        except ExactattnError as exc:
            return _error(400, f"{type(exc).__name__}: {exc}")
        self.counts["evaluated"] += len(Xs)
        if self._log is not None:  # a key costs a hash: computed only for the log
            for X in Xs:
                self._write_log(event="query", key=protocol.query_key(self.field, X),
                                request_id=rid, n=int(X.shape[0]))
        reply = self._encode(answers, rid, binary)
        if rid:
            self._answered[memo] = answers
            while len(self._answered) > REMEMBERED_REQUESTS:
                self._answered.popitem(last=False)
        return reply

    def _encode(self, answers: Any, rid: str, binary: bool) -> Reply:
        """The 200 reply carrying ``answers``, in the request's encoding."""
        if binary:
            return Reply(200, protocol.pack_f64_answers(answers, rid),
                         content_type=protocol.F64_BINARY_TYPE)
        return Reply(200, protocol.dumps({"answers": protocol.encode_answers(self.field, answers),
                                          "request_id": rid}).encode("utf-8"))

    def _replay(self, memo: tuple[str, str], rid: str, binary: bool) -> Reply:
        """A retry of an answered request: the same answers, not evaluated again."""
        self._answered.move_to_end(memo)
        self.counts["replayed"] += 1
        self._write_log(event="replayed", request_id=rid)
        return self._encode(self._answered[memo], rid, binary)

    def _tolerances(self, obj: Any, n: int) -> list[Any] | None:
        """The request's ``tolerances`` (one rational string per query), or None."""
        if obj is None:
            return None
        if self._noisy is None:
            raise InvalidEntryError("tolerances asked of a server that answers exactly; "
                                    "approximate value queries need 'exactattn serve --noise EPS'")
        if not isinstance(obj, list) or len(obj) != n:
            raise InvalidEntryError(f"tolerances must be a list of {n} rational strings (one "
                                    f"per query), got {describe(obj)}")
        out = []
        for b, t in enumerate(obj):
            if type(t) is not str:
                raise InvalidEntryError(f"tolerances[{b}]: {describe(t)} is not a rational "
                                        "string 'p/q'")
            try:
                tau = parse_rational(t)
            except InvalidEntryError as exc:
                raise InvalidEntryError(f"tolerances[{b}]: {exc}") from None
            if tau < 0:
                raise InvalidEntryError(f"tolerances[{b}] = {t} is negative")
            out.append(tau)
        return out


class _Server(ThreadingHTTPServer):
    """The threaded server; it remembers its open connections so that stopping it closes
    them (a keep-alive connection would otherwise outlive the server)."""

    daemon_threads = True
    service: QueryService

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection (the clients see them closed)."""
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that went away (a timeout, a retry): nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Moves bytes between HTTP and :class:`QueryService`."""

    protocol_version = "HTTP/1.1"  # keep-alive: one connection per client
    # TCP_NODELAY: a small answer is not held back by Nagle's algorithm waiting for the
    # client's delayed ACK (measured: 45 ms per request without it, on loopback)
    disable_nagle_algorithm = True
    timeout = 60  # seconds: a connection idle (or a body unsent) this long is closed
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # the service's own JSON-lines log records what matters

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = protocol.JSON_TYPE) -> None:
        """The status line, the headers and the body in one write (a small answer is one
        TCP segment, never held back waiting for an ACK)."""
        lines = [f"{self.protocol_version} {status} {self.responses.get(status, ('',))[0]}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                 f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                 *(f"{k}: {v}" for k, v in (headers or {}).items())]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] != "/info":
            reply = _error(404, f"no such path {self.path!r}; GET /info or POST /query")
            self._send(reply.status, reply.body)
            return
        self._send(200, protocol.dumps(self.server.service.info()).encode("utf-8"))

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] != "/query":
            reply = _error(404, f"no such path {self.path!r}; POST /query or GET /info")
            self.close_connection = True
            self._send(reply.status, reply.body)
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            reply = _error(411, "a POST /query needs a Content-Length header")
        elif int(length) > protocol.MAX_BODY_BYTES:
            reply = _error(413, f"request body of {int(length)} bytes; at most "
                                f"{protocol.MAX_BODY_BYTES} (split the batch)")
        else:
            reply = self.server.service.query(self.rfile.read(int(length)),
                                              self.headers.get("Content-Type"))
            if reply.drop:  # an injected dropped connection: no answer at all
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if reply.delay:
                time.sleep(reply.delay)
            self._send(reply.status, reply.body, reply.headers, reply.content_type)
            return
        self.close_connection = True
        self._send(reply.status, reply.body)


@dataclass
class ServerThread:
    """A server running in a background thread (:func:`serve_in_thread`).

    ``url`` is its base address, ``service`` its :class:`QueryService` (counts,
    info); ``stop()`` shuts it down and closes the log. Unpacks as ``(url, stop)``
    and works as a context manager.
    """

    url: str
    service: QueryService
    _server: _Server
    _thread: threading.Thread

    def stop(self) -> None:
        """Shut the server down, wait for its thread, close its socket and log."""
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.close_connections()
        self._server.server_close()
        self.service.close()

    def __iter__(self) -> Iterator[Any]:
        return iter((self.url, self.stop))

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(service: QueryService, host: str, port: int) -> _Server:
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        raise InvalidEntryError(f"cannot listen on {host}:{port}: "
                                f"{exc.strerror or exc}") from None
    server.service = service
    return server


def _url(server: _Server) -> str:
    host, port = server.server_address[:2]
    host = host.decode() if isinstance(host, bytes) else str(host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_in_thread(model: Any, *, host: str = "127.0.0.1", port: int = 0,
                    **options: Any) -> ServerThread:
    """Serve ``model`` (a model or an instance) in a background thread; for tests.

    ``options`` are those of :class:`ServeOptions`. Returns a
    :class:`ServerThread` (``url, stop = serve_in_thread(...)`` works).

    >>> from exactattn.fields import EXP
    >>> from exactattn.models import SingleHeadAttention
    >>> from exactattn.remote import HttpOracle
    >>> with serve_in_thread(SingleHeadAttention([[1, 0], [0, 1]], [1, 2], field=EXP)) as s:
    ...     oracle = HttpOracle(s.url)
    ...     print(oracle([[0, 1]]), oracle.queries, s.service.counts["evaluated"])
    2 1 1
    """
    service = QueryService(model, ServeOptions(**options))
    server = _bind(service, host, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"exactattn-serve-{server.server_address[1]}", daemon=True)
    thread.start()
    return ServerThread(_url(server), service, server, thread)


# -- the command line -------------------------------------------------------------
_N = TypeVar("_N", int, float)


def _argument(text: str, convert: Callable[[str], _N], what: str, ok: Callable[[_N], bool],
              requirement: str, shown: Callable[[_N], object] | None = None) -> _N:
    """``convert(text)`` if it parses and is ``ok``; else an ArgumentTypeError (``text`` is
    not ``what``, or ``requirement``, got ``shown(value)`` or ``text``)."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(
            f"{requirement}, got {text if shown is None else shown(value)}")
    return value


def _probability(text: str) -> float:
    return _argument(text, float, "a number", lambda p: 0 <= p <= 1,
                     "a probability is in [0, 1]")


def _positive(text: str) -> float:
    return _argument(text, float, "a number", lambda x: math.isfinite(x) and x >= 0,
                     "must be a finite number >= 0")


def _count(text: str) -> int:
    return _argument(text, int, "an integer", lambda n: n >= 0, "must be an integer >= 0",
                     shown=lambda n: n)


def _port(text: str) -> int:
    n = _count(text)
    if n > 65535:
        raise argparse.ArgumentTypeError(f"a port is in [0, 65535], got {n}")
    return n


def add_parser(sub: Any) -> None:
    """Add the ``serve`` sub-command to the CLI's sub-parsers."""
    p = sub.add_parser(
        "serve", help="serve an instance file's hidden model over HTTP (a remote oracle)",
        description="Answer value queries to the model of INSTANCE_FILE over HTTP (GET /info, "
                    "POST /query; docs/remote.md). Prints the bound address on one line, then "
                    "serves until interrupted (Ctrl-C or SIGTERM).")
    p.add_argument("instance", metavar="INSTANCE_FILE", help="the hidden model "
                   "(docs/instances.md)")
    p.add_argument("--port", type=_port, required=True,
                   help="TCP port; 0 picks a free one (printed)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--rate", type=_positive, default=None, metavar="R",
                   help="at most R requests per second (429 with Retry-After beyond)")
    p.add_argument("--budget", type=_count, default=None, metavar="N",
                   help="evaluate at most N queries in total (403 beyond)")
    p.add_argument("--fail-rate", type=_probability, default=0.0, metavar="P",
                   help="fraction of requests that fail (dropped connection, 500 or 503)")
    p.add_argument("--slow-rate", type=_probability, default=0.0, metavar="P",
                   help="fraction of requests answered --slow-seconds late")
    p.add_argument("--slow-seconds", type=_positive, default=0.0, metavar="S")
    p.add_argument("--noise", default=None, metavar="EPS",
                   help="answer within the rational tolerance EPS (exact instances; "
                        "answers over QQ)")
    p.add_argument("--noise-seed", type=_count, default=0, metavar="S")
    p.add_argument("--seed", type=_count, default=0, help="seed of the injected faults")
    p.add_argument("--log", metavar="FILE", help="append one JSON line per evaluated query "
                                                 "(and per fault, refusal, limit)")
    p.add_argument("--json", action="store_true",
                   help="print the bound address as one JSON object")
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """``exactattn serve``: bind, print the address (flushed), serve until a signal."""
    from ..instance_files import load_instance

    if args.slow_rate and not args.slow_seconds:
        raise InvalidEntryError("--slow-rate needs --slow-seconds > 0")
    if args.log is not None and Path(args.log).is_dir():
        raise InvalidEntryError(f"--log {args.log} is a directory; give a file name")
    spec = load_instance(args.instance)
    if args.noise is not None and not spec.field.exact:
        raise InvalidEntryError(f"--noise needs an exact instance (EXP or QQ); "
                                f"{args.instance} is over {spec.field.name}")
    options = ServeOptions(rate=args.rate, budget=args.budget, fail_rate=args.fail_rate,
                           slow_rate=args.slow_rate, slow_seconds=args.slow_seconds,
                           noise=args.noise, noise_seed=args.noise_seed, seed=args.seed,
                           log=args.log)
    try:
        service = QueryService(spec, options)
    except OSError as exc:
        raise InvalidEntryError(f"cannot open --log {args.log}: {exc.strerror or exc}") from None
    server = _bind(service, args.host, args.port)
    url = _url(server)
    info = service.info()
    if args.json:
        print(json.dumps({"url": url, "host": server.server_address[0],
                          "port": server.server_address[1], **info}), flush=True)
    else:
        print(f"serving {info['model']} over {info['field']} (d = {info['d']}) at {url}",
              flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"exactattn serve: warning: listening on {args.host}, not loopback; the server "
              "has no authentication", file=sys.stderr, flush=True)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close_connections()
        server.server_close()
        service.close()
    return 0

