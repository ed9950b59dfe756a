"""A remote oracle: :class:`HttpOracle`, a :class:`~exactattn.oracle.ValueOracle` over HTTP.

The oracle is a :class:`~exactattn.oracle.ValueOracle` whose target is a
:class:`RemoteTarget`: a callable that POSTs queries to a server's
``/query`` (``exactattn serve``, :mod:`exactattn.remote.server`) in chunks of
``batch_size``. Validation, counting per phase, the budget and the transcript
are the in-process oracle's own code, run around the target: a query is
counted once, when the learner asks it, however many times its request is
sent again.

Retries (:meth:`RemoteTarget._post`): a request that fails with a dropped or
refused connection, a timeout, or HTTP 500, 502, 503, 504 or 429 is sent
again, at most ``retries`` more times, with the same ``request_id`` (the
server answers a request it has already answered from memory, without
evaluating it again). Before retry k (k = 0, 1, ...) the client sleeps

* the server's ``Retry-After`` (seconds) after a 429 or 503 that carries one
  (refused with :class:`~exactattn.errors.OracleUnavailableError` if it is
  longer than ``max_retry_after``);
* otherwise a uniform draw in [0, min(max_backoff, backoff * 2^k)]
  ("full jitter", from one ``random.Random(seed)``).

After the last attempt it raises OracleUnavailableError naming the URL, the
attempts and the last status. Any other status is not retried: 400 (the
server refused a query: InvalidEntryError with its message), 403 (its budget:
QueryBudgetExceededError), 404 and others (OracleUnavailableError). An answer
that is not a number of the field, or the wrong number of answers, is an
InvalidEntryError naming the entry (never read as a number).

The standard library's :mod:`http.client` does the HTTP, on one keep-alive
connection per target (opened again after any failure); the timeout applies
to the connection and to every read.

Encodings: over F64 a server that lists ``"f64le"`` in its ``GET /info``
``encodings`` is sent the binary encoding
(:data:`~exactattn.remote.protocol.F64_BINARY_TYPE`: the token arrays as
little-endian float64) unless ``encoding="json"`` is asked; EXP and QQ
always travel as JSON. Both are bit-exact; the binary one is cheaper to
write and read for large batches (docs/remote.md, "The binary F64 encoding").
"""

from __future__ import annotations

import email.utils
import http.client
import math
import random
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..errors import (
    ExactattnError,
    IncompatibleFieldError,
    InvalidEntryError,
    OracleUnavailableError,
    QueryBudgetExceededError,
)
from ..fields import Array, Field
from ..fields.base import describe
from ..fields.rational import parse_rational
from ..oracle import NoisyOracle, ValueOracle
from . import protocol

__all__ = ["HttpOracle", "HttpNoisyOracle", "RemoteTarget", "RETRIED_STATUSES"]

#: HTTP statuses that are retried (with backoff, or after Retry-After)
RETRIED_STATUSES = (429, 500, 502, 503, 504)
#: failures of the connection itself, retried like a 5xx
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


def _positive_number(x: Any, name: str, *, zero: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) \
            or x < 0 or (x == 0 and not zero):
        raise InvalidEntryError(f"{name} must be a finite number {'>=' if zero else '>'} 0, "
                                f"got {describe(x)}")
    return float(x)


def _count(n: Any, name: str, *, low: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < low:
        raise InvalidEntryError(f"{name} must be an integer >= {low}, got {describe(n)}")
    return int(n)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date), None if absent."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RemoteTarget:
    """The hidden function behind a URL: ``target(X)`` and ``target.batch(Xs)`` over HTTP.

    Reads ``GET /info`` once (``info``, ``field``, ``d``); ``batch`` sends the
    queries in chunks of ``batch_size`` to ``POST /query`` and returns the
    answers (a float64 array over F64, else an object array of field
    elements). Not thread-safe (one connection); give each thread its own.
    ``requests`` counts the HTTP requests sent (retries included),
    ``waited`` the seconds slept before retries.
    """

    def __init__(self, url: str, *, batch_size: int = 256, timeout: float = 10.0,
                 retries: int = 8, backoff: float = 0.05, max_backoff: float = 2.0,
                 max_retry_after: float = 60.0, seed: int | None = None,
                 info: dict[str, Any] | None = None, encoding: str | None = None) -> None:
        if encoding is not None and encoding not in protocol.ENCODINGS:
            raise InvalidEntryError(f"encoding must be None (the binary one when the server "
                                    f"offers it), {' or '.join(map(repr, protocol.ENCODINGS))}"
                                    f", got {describe(encoding)}")
        if not isinstance(url, str):
            raise InvalidEntryError(f"url must be a string such as 'http://127.0.0.1:8000', "
                                    f"got {describe(url)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidEntryError(f"url {url!r} is not an http:// or https:// address with a "
                                    "host")
        self.url = url.rstrip("/")
        self._parts = parts
        self._base = parts.path.rstrip("/")
        self.batch_size = _count(batch_size, "batch_size", low=1)
        self.timeout = _positive_number(timeout, "timeout")
        self.retries = _count(retries, "retries", low=0)
        self.backoff = _positive_number(backoff, "backoff", zero=True)
        self.max_backoff = _positive_number(max_backoff, "max_backoff", zero=True)
        self.max_retry_after = _positive_number(max_retry_after, "max_retry_after", zero=True)
        self.seed = None if seed is None else _count(seed, "seed", low=0)
        self._rng = random.Random(self.seed)
        self._connection: http.client.HTTPConnection | None = None
        self.requests = 0
        self.waited = 0.0
        self.info: dict[str, Any] = self._read_info() if info is None else dict(info)
        self.field: Field = protocol.wire_field(self.info.get("field"))
        d = self.info.get("d")
        self.d = _count(d, f"the d that {self.url}/info reports", low=1)
        #: the encoding of the requests: "json" or "f64le" (:meth:`_choose_encoding`)
        self.encoding = self._choose_encoding(encoding)

    def _choose_encoding(self, asked: str | None) -> str:
        """``asked``, or (None) "f64le" when the server offers it, else "json"; an encoding
        asked that the server does not offer is refused (InvalidEntryError)."""
        offered = self.info.get("encodings", ["json"])  # a server without the key: JSON only
        if not isinstance(offered, list) or not all(isinstance(e, str) for e in offered):
            raise InvalidEntryError(f"{self.url}/info reports encodings {describe(offered)}, "
                                    "not a list of names")
        if asked is None:
            return "f64le" if "f64le" in offered and self.field.name == "F64" else "json"
        if asked != "json" and asked not in offered:
            raise InvalidEntryError(f"encoding {asked!r} asked, but {self.url} offers "
                                    f"{offered} (over {self.field.name}); use encoding=None "
                                    "or 'json'")
        return asked

    def __repr__(self) -> str:
        return f"RemoteTarget({self.url}, field={self.field.name}, d={self.d})"

    def options(self) -> dict[str, Any]:
        """The connection options, as keywords that build the same target again (a fork's),
        the encoding included."""
        return {"batch_size": self.batch_size, "timeout": self.timeout,
                "retries": self.retries, "backoff": self.backoff,
                "max_backoff": self.max_backoff, "max_retry_after": self.max_retry_after,
                "encoding": self.encoding}

    def check(self, field: Field | None, d: int | None) -> None:
        """Refuse a ``field`` or ``d`` (None: not given) that is not the server's."""
        if field is not None and field != self.field:
            raise IncompatibleFieldError(f"field {field.name} given, but {self.url} answers "
                                         f"over {self.field.name}")
        if d is not None and _count(d, "d", low=1) != self.d:
            raise InvalidEntryError(f"d = {d} given, but {self.url} answers queries of "
                                    f"d = {self.d}")

    # -- HTTP ---------------------------------------------------------------------
    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._parts.scheme == "https" \
                else http.client.HTTPConnection
            self._connection = kind(self._parts.hostname or "", self._parts.port,
                                    timeout=self.timeout)
        return self._connection

    def close(self) -> None:
        """Close the keep-alive connection (a later request opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _once(self, method: str, path: str, body: bytes | None,
              content_type: str = protocol.JSON_TYPE) -> tuple[int, dict[str, str], bytes]:
        """One request on the keep-alive connection; the connection is dropped on failure."""
        conn = self._connect()
        self.requests += 1
        try:
            headers = {"Content-Type": content_type} if body is not None else {}
            conn.request(method, self._base + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _post(self, method: str, path: str, body: bytes | None,
              sleep: Callable[[float], None] = time.sleep,
              content_type: str = protocol.JSON_TYPE) -> Any:
        """Send until a 2xx (parsed JSON returned; with the binary ``content_type``, the
        body's bytes, once its Content-Type is checked) or a final failure (raised); see
        the module docstring for the policy."""
        where = f"{self.url}{path}"
        last = "no attempt"
        attempts = 0
        for k in range(self.retries + 1):
            attempts = k + 1
            wait: float | None = None
            try:
                status, headers, data = self._once(method, path, body, content_type)
            except TimeoutError:
                last = f"timed out after {self.timeout} s"
            except _NETWORK_ERRORS as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if 200 <= status < 300 and content_type == protocol.F64_BINARY_TYPE:
                    answered = headers.get("content-type", "").split(";")[0].strip()
                    if answered != content_type:
                        raise InvalidEntryError(f"{where} answered a binary request with "
                                                f"Content-Type {answered!r}, not "
                                                f"{content_type}")
                    return data
                if 200 <= status < 300:
                    try:
                        return protocol.loads(data)
                    except InvalidEntryError as exc:
                        raise InvalidEntryError(f"{where} answered HTTP {status} with a body "
                                                f"that is {exc}") from None
                message = _error_message(data)
                last = f"HTTP {status}: {message}"
                if status not in RETRIED_STATUSES:
                    _raise_final(status, message, where, self.url, attempts, data)
                wait = _retry_after(headers.get("retry-after")) if status in (429, 503) \
                    else None
                if wait is not None and wait > self.max_retry_after:
                    raise OracleUnavailableError(
                        f"{where} asks to retry after {wait:g} s, longer than max_retry_after ="
                        f" {self.max_retry_after:g} s (attempt {attempts}, last status {last})",
                        url=self.url, attempts=attempts, last_status=last)
            if k == self.retries:
                break
            if wait is None:  # full jitter: uniform in [0, min(cap, base 2^k)]
                wait = self._rng.uniform(0, min(self.max_backoff, self.backoff * 2 ** k))
            self.waited += wait
            sleep(wait)
        raise OracleUnavailableError(
            f"{where} did not answer after {attempts} attempts (last status: {last}); is the "
            "server running and reachable? (more retries=, a longer timeout=)",
            url=self.url, attempts=attempts, last_status=last)

    def _read_info(self) -> dict[str, Any]:
        info = self._post("GET", "/info", None)
        if not isinstance(info, dict):
            raise InvalidEntryError(f"{self.url}/info answered {describe(info)}, not a JSON "
                                    "object")
        version = info.get("protocol")
        if version != protocol.PROTOCOL_VERSION:
            raise InvalidEntryError(f"{self.url}/info reports protocol {describe(version)}; "
                                    f"this client speaks protocol {protocol.PROTOCOL_VERSION}")
        return info

    # -- queries --------------------------------------------------------------------
    def __call__(self, X: Array) -> Any:
        """The answer to one query (one request)."""
        return self.batch([X])[0]

    def _chunked(self, Xs: list[Array] | Array,
                 send: Callable[[list[Array] | Array, int], Array]) -> Array:
        """The answers to ``Xs``, ``send(chunk, lo)`` per chunk of ``batch_size`` queries
        (``lo`` the chunk's first index)."""
        out = np.empty(len(Xs), dtype=self.field.dtype)
        for lo in range(0, len(Xs), self.batch_size):
            chunk = Xs[lo:lo + self.batch_size]
            out[lo:lo + len(chunk)] = send(chunk, lo)
        return out

    def batch(self, Xs: list[Array] | Array) -> Array:
        """The answers to a batch, sent in chunks of ``batch_size`` queries."""
        return self._chunked(Xs, lambda chunk, lo: self._send(chunk))

    def batch_within(self, Xs: list[Array] | Array, tolerances: list[Any]) -> Array:
        """Approximate answers to a batch, each within its tolerance (a rational): sent as
        ``tolerances`` to a server started with ``--noise`` (:class:`HttpNoisyOracle`)."""
        if len(tolerances) != len(Xs):
            raise InvalidEntryError(f"{len(tolerances)} tolerances for {len(Xs)} queries")
        return self._chunked(Xs, lambda chunk, lo: self._exchange(
            chunk, self._request_id(),
            {"tolerances": [str(t) for t in tolerances[lo:lo + len(chunk)]]}))

    def _request_id(self) -> str:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex \
            if self.seed is not None else uuid.uuid4().hex

    def _send(self, chunk: list[Array] | Array) -> Array:
        """POST one chunk; its answers."""
        return self._exchange(chunk, self._request_id(), {})

    def _exchange(self, chunk: list[Array] | Array, request_id: str,
                  extra: dict[str, Any]) -> Array:
        """POST one chunk with ``request_id`` and ``extra`` keys; its answers, checked."""
        if self.encoding == "f64le" and not extra:
            return self._post_f64(chunk, request_id)
        body = protocol.dumps({"field": self.field.name, "request_id": request_id,
                               "queries": protocol.encode_queries(self.field, chunk), **extra})
        return self._post_queries(body, len(chunk), request_id)

    def _post_queries(self, body: str, n: int, request_id: str) -> Array:
        """POST a prebuilt ``/query`` body (``n`` queries, ``request_id``); its ``n``
        answers, checked."""
        reply = self._post("POST", "/query", body.encode("utf-8"))
        where = f"{self.url}/query"
        if not isinstance(reply, dict) or "answers" not in reply:
            raise InvalidEntryError(f"{where} answered {describe(reply)}, not "
                                    "{\"answers\": [...]}")
        try:
            return protocol.decode_answers(self.field, reply["answers"], n)
        except ExactattnError as exc:
            raise InvalidEntryError(f"{where} (request {request_id}): {exc}") from None


    def _post_f64(self, chunk: list[Array] | Array, request_id: str) -> Array:
        """POST one chunk in the binary F64 encoding; its answers, checked (count, length,
        finiteness, the request id echoed)."""
        body = protocol.pack_f64_queries(chunk, request_id, self.d)
        data = self._post("POST", "/query", body, content_type=protocol.F64_BINARY_TYPE)
        where = f"{self.url}/query"
        try:
            header, answers = protocol.unpack_f64_answers(data, len(chunk))
        except ExactattnError as exc:
            raise InvalidEntryError(f"{where} (request {request_id}): {exc}") from None
        if header.get("request_id") != request_id:
            raise InvalidEntryError(f"{where} answered request {describe(header.get('request_id'))}"
                                    f" to request {request_id}")
        return answers


def _error_message(data: bytes) -> str:
    """The server's one-line error, or the start of whatever it sent."""
    try:
        obj = protocol.loads(data)
        if isinstance(obj, dict) and isinstance(obj.get("error"), str):
            return str(obj["error"])
    except InvalidEntryError:
        pass
    text = data[:200].decode("utf-8", "replace")
    return " ".join(text.split()) or "(empty body)"


def _raise_final(status: int, message: str, where: str, url: str, attempts: int,
                 data: bytes) -> None:
    """A status that is not retried, as the library error it means."""
    if status == 400:
        raise InvalidEntryError(f"{where} refused the request (HTTP 400): {message}")
    if status == 403:
        try:
            obj = protocol.loads(data)
            budget, used = int(obj["budget"]), int(obj["used"])
        except (InvalidEntryError, KeyError, TypeError, ValueError):
            budget, used = -1, -1
        raise QueryBudgetExceededError(f"{where}: the server's budget is spent (HTTP 403): "
                                       f"{message}", budget=budget, used=used)
    raise OracleUnavailableError(f"{where} answered HTTP {status}: {message} (not retried)",
                                 url=url, attempts=attempts, last_status=f"HTTP {status}")


class HttpOracle(ValueOracle):
    """Value queries to a model behind an HTTP server, counted like an in-process oracle.

    A :class:`~exactattn.oracle.ValueOracle` whose target is a
    :class:`RemoteTarget`: the learner's queries are validated, counted,
    budgeted and recorded here exactly as in process; the target sends them in
    chunks of ``batch_size`` and retries failed requests (policy: module
    docstring), and a retried request is never counted or recorded twice.

    Parameters
    ----------
    url : the server's base address (``exactattn serve`` prints it).
    field, d : read from ``GET /info`` when None; when given, checked against it
        (IncompatibleFieldError / InvalidEntryError if they differ).
    budget, keep_transcript, name : as for ValueOracle (the budget is the
        client's own; the server may have another).
    batch_size : queries per request (default 256).
    timeout : seconds for the connection and each read (default 10).
    retries : further attempts after a failed one (default 8).
    backoff, max_backoff : the full-jitter backoff's base and cap, in seconds.
    seed : seed of the jitter and of the request ids (None: fresh randomness).
    journal : a :class:`exactattn.remote.journal.Journal`; the target is then
        wrapped in ``JournaledTarget(target, journal)`` (answers already in the
        journal are not asked again), and its request ids are content-addressed
        (:class:`~exactattn.remote.resume.ResumableRemoteTarget`), so that the
        request in flight when a run was killed is not evaluated again.
    max_retry_after : the longest Retry-After (seconds) honoured (default 60).
    encoding : None (default: the binary F64 encoding ``"f64le"`` when the server
        offers it in ``GET /info``, else JSON), ``"json"`` or ``"f64le"`` (refused if
        the server does not offer it). The answers are the same bits either way.
    """

    def __init__(self, url: str, *, field: Field | None = None, d: int | None = None,
                 budget: int | None = None, keep_transcript: bool = True,
                 batch_size: int = 256, timeout: float = 10.0, retries: int = 8,
                 backoff: float = 0.05, max_backoff: float = 2.0, seed: int | None = None,
                 journal: Any = None, name: str | None = None, max_retry_after: float = 60.0,
                 encoding: str | None = None, _info: dict[str, Any] | None = None,
                 _journaled: Any = None) -> None:
        if field is not None and not isinstance(field, Field):
            raise InvalidEntryError(f"field must be a Field (EXP, QQ, F64) or None, got "
                                    f"{describe(field)}")
        # with a journal, request ids are content-addressed (exactattn.remote.resume): a
        # request in flight when a run was killed is answered from the server's memory
        # when the resumed run resends it, not evaluated again
        remote_class: type[RemoteTarget] = RemoteTarget
        if journal is not None:
            from .resume import ResumableRemoteTarget

            remote_class = ResumableRemoteTarget
        remote = remote_class(url, batch_size=batch_size, timeout=timeout, retries=retries,
                              backoff=backoff, max_backoff=max_backoff,
                              max_retry_after=max_retry_after, seed=seed, info=_info,
                              encoding=encoding)
        remote.check(field, d)
        self.remote = remote
        self.journal = journal
        target: Any = remote
        if journal is not None:  # exactattn.remote.journal: answers already journaled are
            from .journal import JournaledTarget  # not asked again

            target = _journaled if _journaled is not None else JournaledTarget(remote, journal)
        self._journaled = target if journal is not None else None
        super().__init__(target, field=remote.field, d=remote.d, budget=budget,
                         keep_transcript=keep_transcript, name=name or f"Http({remote.url})")

    @property
    def url(self) -> str:
        """The server's base address."""
        return self.remote.url

    @property
    def info(self) -> dict[str, Any]:
        """What the server's ``GET /info`` reported."""
        return dict(self.remote.info)

    def __call__(self, X: Any, *, phase: str = "query") -> Any:
        """Answer one query X (N x d) with one request (see :meth:`batch` for many)."""
        if self._journaled is not None:
            self._journaled.phase = phase  # journaled with the answer, checked on a resume
        return super().__call__(X, phase=phase)

    def batch(self, Xs: Any, *, phase: str = "query") -> Array:
        """Answer a batch, sent in requests of ``batch_size`` queries; each query counted once."""
        if self._journaled is not None:
            self._journaled.phase = phase
        return super().batch(Xs, phase=phase)

    def fork(self, name: str) -> HttpOracle:
        """A fresh oracle on the same server (own counter and transcript, no budget, the
        same journal object, in the fork's own stream); certificates spend their probes
        on it."""
        seed = None if self.remote.seed is None else self.remote.seed + 1
        journaled = None if self._journaled is None else self._journaled.fork(name)
        return HttpOracle(self.remote.url, keep_transcript=self.keep_transcript, seed=seed,
                          journal=self.journal, name=f"{self.name}/{name}",
                          _info=self.remote.info, _journaled=journaled,
                          **self.remote.options())

    def __repr__(self) -> str:
        return (f"HttpOracle({self.remote.url}, field={self.field.name}, d={self.d}, "
                f"queries={self.queries}, budget={self.budget})")


class _TolerantTarget:
    """The target of an :class:`HttpNoisyOracle`: each query sent with the tolerance the
    oracle asks it with (its own, or the default for its length)."""

    def __init__(self, oracle: HttpNoisyOracle) -> None:
        self.oracle = oracle
        self.field = oracle.remote.field
        self.d = oracle.remote.d

    def __call__(self, X: Array) -> Any:
        return self.batch([X])[0]

    def batch(self, Xs: list[Array] | Array) -> Array:
        taus = [self.oracle._used_tolerance(X) for X in Xs]
        return self.oracle.remote.batch_within(Xs, taus)


class HttpNoisyOracle(NoisyOracle):
    """Approximate value queries AVQ(X; tau) to a server started with ``--noise EPS``.

    A :class:`~exactattn.oracle.NoisyOracle` to the learner (``learn_single_head_noisy``
    and the certificates accept it): each query travels with the tolerance it is asked
    with (``tolerances`` in the request; the server's ``EPS`` is the default for a
    query asked without one), and the server's own
    :class:`~exactattn.oracle.NoisyOracle` (the ``uniform`` adversary, seeded by
    ``--noise-seed``) answers a rational within it. Answers are over QQ. Whether an
    answer really is within its tolerance only the server can check (it does, exactly,
    before answering); the client cannot, as it does not know f(X).

    Parameters are those of :class:`HttpOracle` (no ``field``/``d``: read from
    ``GET /info``, which must report a ``noise``; no journal).
    """

    def __init__(self, url: str, *, budget: int | None = None, keep_transcript: bool = True,
                 batch_size: int = 256, timeout: float = 10.0, retries: int = 8,
                 backoff: float = 0.05, max_backoff: float = 2.0, seed: int | None = None,
                 name: str | None = None, max_retry_after: float = 60.0,
                 encoding: str | None = None, _info: dict[str, Any] | None = None) -> None:
        remote = RemoteTarget(url, batch_size=batch_size, timeout=timeout, retries=retries,
                              backoff=backoff, max_backoff=max_backoff,
                              max_retry_after=max_retry_after, seed=seed, info=_info,
                              encoding=encoding)
        noise = remote.info.get("noise")
        if noise is None:
            raise InvalidEntryError(f"{remote.url} answers exactly (its /info has no noise); "
                                    "approximate value queries need a server started with "
                                    "'exactattn serve --noise EPS' (or use HttpOracle)")
        self.remote = remote
        # NoisyOracle's state without its model (the model is behind the URL): the
        # tolerance table (the server's EPS as the default), the pending per-query tolerance
        self._tolerances = {0: parse_rational(noise)}
        self.adversary = "remote"
        self.seed = int(remote.info.get("noise_seed") or 0)
        self._cache = {}
        self._pending = None
        ValueOracle.__init__(self, _TolerantTarget(self), field=remote.field, d=remote.d,
                             budget=budget, keep_transcript=keep_transcript,
                             name=name or f"HttpNoisy({remote.url})")

    @property
    def url(self) -> str:
        """The server's base address."""
        return self.remote.url

    def fork(self, name: str) -> HttpNoisyOracle:
        """A fresh noisy oracle on the same server (own counter and transcript, no budget)."""
        seed = None if self.remote.seed is None else self.remote.seed + 1
        return HttpNoisyOracle(self.remote.url, keep_transcript=self.keep_transcript, seed=seed,
                               name=f"{self.name}/{name}", _info=self.remote.info,
                               **self.remote.options())

    def __repr__(self) -> str:
        return (f"HttpNoisyOracle({self.remote.url}, d={self.d}, tolerance="
                f"{self._tolerances[0]}, queries={self.queries}, budget={self.budget})")

