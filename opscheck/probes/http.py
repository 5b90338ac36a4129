"""HTTP probes: one requests session per endpoint, a deadline on every request, TLS verified.

A request gets the target's timeout in total, connect to last byte, and reads at most
``MAX_BODY`` of body: a server that trickles or streams forever costs one timeout, not hours
and gigabytes (see ``_Deadline``).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import itertools
import math
import os
import re
import reprlib
import socket
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opscheck.config import HttpTarget, redact
from opscheck.judge import Measurement, ProbeError
from opscheck.probes.json_checks import json_checks as json_checks  # for any component
from opscheck.redaction import clip
from opscheck.session import Lost, Unreachable

if TYPE_CHECKING:
    from requests import Response
    from requests.adapters import HTTPAdapter

MAX_BODY = 10 * 2**20  # bytes of body read from one response; a health answer is a few KB
_CHUNK = 64 * 2**10

_CONNECTION_ERRORS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("Temporary failure in name resolution", "host name not found (DNS)"),
    ("No route to host", "no route to host"),
    ("Connection reset by peer", "connection reset by peer"),
    ("RemoteDisconnected", "connection closed without a response"),
)


def describe_error(exc: BaseException, timeout: float | None = None) -> str:
    """The one line of a requests/ssl error an operator needs, without the adapter noise."""
    import requests

    if isinstance(exc, _TooLate):
        return str(exc)

    # requests repeats the path and query ("with url: /x?token=..."): the caller names the URL
    # in full, where it is redacted as a whole; a cut-off copy could leak half a secret.
    text = re.sub(r" with url: \S+", "", str(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        for marker in ("certificate verify failed: ", "SSL: "):
            if marker in text:
                return "TLS: " + text.split(marker, 1)[1].split("(_ssl")[0].rstrip(" ')\"")
        return f"TLS: {clip(text, 200)}"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        within = f"{timeout:g} s" if timeout else "the timeout"
        return f"no response within {within} (read timed out)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connection timed out{f' after {timeout:g} s' if timeout else ''}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        for known, said in _CONNECTION_ERRORS:
            if known in text:
                return said
        return f"connection failed: {clip(text, 200)}"
    return f"{type(exc).__name__}: {clip(text, 200)}"


def _bytes(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


class _TooLate(Exception):
    """The request's deadline passed; the message says how far the response had come."""


class _TooLarge(Exception):
    """The body went past the endpoint's cap; reading stopped there."""


_WATCH = threading.local()  # .deadline: the _Deadline of the request this thread is making


class _Deadline:
    """One request's time budget, from connecting to the body's last byte.

    A socket timeout counts from the last byte received: a server sending a byte a second never
    trips it. So a timer shuts the request's socket down at the deadline; the read blocked on
    it returns at once and the request fails with how far the response had come (``late``).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.head = 0  # bytes of status line and headers received
        self.head_done = False  # the blank line that ends the headers came (not an EOF)
        self.status = ""  # "200 OK", once the headers are in
        self.body = 0  # bytes of body received
        self.expired = False
        self._conn: Any = None  # the urllib3 connection the request is on
        self._over = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _WATCH.deadline = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.over()
        _WATCH.deadline = None

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def watch(self, conn: Any) -> None:
        """The request is on ``conn``: shut its socket at the deadline (now, if it passed)."""
        with self._lock:
            self._conn = conn
            if self.expired:
                self._shut()

    def over(self) -> bool:
        """Stop watching (a complete response's connection goes back to the pool intact);
        whether the deadline passed first."""
        with self._lock:
            self._over = True
        self._timer.cancel()
        return self.expired

    def _expire(self) -> None:
        with self._lock:
            if not self._over:
                self.expired = True
                self._shut()

    def _shut(self) -> None:
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # the plain socket's: no TLS close_notify dance
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def late(self) -> _TooLate:
        """The failure: how far the response had come when the deadline passed."""
        within = f"{self.seconds:g} s"
        if self.head_done:
            got = f"{self.status or 'headers'}, {_bytes(self.body)} of body received"
        elif self.head:
            got = f"{_bytes(self.head)} of headers received"
        else:
            return _TooLate(f"no response within {within} (read timed out)")
        return _TooLate(f"no complete response within {within} ({got})")


def _watched(conn: Any) -> None:
    deadline: _Deadline | None = getattr(_WATCH, "deadline", None)
    if deadline is not None:
        deadline.watch(conn)


class _HeadLines:
    """A response's file while its headers are read: each line counted for the deadline."""

    def __init__(self, raw: Any, deadline: _Deadline) -> None:
        self._raw, self._deadline = raw, deadline

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._raw.readline(limit)
        self._deadline.head += len(line)
        self._deadline.head_done = line in (b"\r\n", b"\n")  # an EOF ends headers too
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _CountedHead(http.client.HTTPResponse):
    """http.client's response, its status line and headers counted as they arrive."""

    def begin(self) -> None:
        deadline: _Deadline | None = getattr(_WATCH, "deadline", None)
        raw: Any = self.fp
        if deadline is None or raw is None:
            return super().begin()
        self.fp = _HeadLines(raw, deadline)  # type: ignore[assignment]
        try:
            super().begin()
        finally:
            if self.fp is not None:  # the body is read from the file itself
                self.fp = raw


@functools.cache
def _adapter() -> type[HTTPAdapter]:
    """requests' adapter whose connections are watched by the deadline of the request on them
    (made on first use: requests is imported only when an ``[[http]]`` target is checked)."""
    import urllib3
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched(HTTPConnection):
        response_class = _CountedHead

        def connect(self) -> None:  # a new connection; after it, in case the deadline passed
            _watched(self)
            super().connect()
            _watched(self)

        def request(self, *args: Any, **kwargs: Any) -> None:  # a kept-alive one, reused
            _watched(self)
            super().request(*args, **kwargs)

    class WatchedTls(Watched, HTTPSConnection):
        pass

    class Pool(HTTPConnectionPool):
        ConnectionCls = Watched

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = WatchedTls

    pools: dict[str, type[HTTPConnectionPool]] = {"http": Pool, "https": TlsPool}

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if manager.pool_classes_by_scheme is urllib3.poolmanager.pool_classes_by_scheme:
                manager.pool_classes_by_scheme = pools  # (a SOCKS proxy keeps its own)
            return manager

    return Adapter


class BoundedSession:
    """A requests session whose every request gets ``timeout`` in total (connect, headers and
    body) and reads at most ``max_body`` bytes of body, redirects' bodies included; the
    connection is kept alive between requests. ``request`` raises requests' errors, ``_TooLate``
    (see ``describe_error``) or ``_TooLarge``."""

    def __init__(
        self, timeout: float, headers: dict[str, str] | None = None, max_body: int = MAX_BODY
    ) -> None:
        import requests

        self.timeout = timeout
        self.max_body = max_body
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, _adapter()())
        self.session.headers.update({"User-Agent": "opscheck", **(headers or {})})
        self.session.hooks["response"].append(self._read_redirect)

    def request(self, method: str, url: str, verify: bool | str = True, **kwargs: Any) -> Response:
        """One request within ``timeout`` in total, its body read to its end or the cap."""
        import requests
        import urllib3

        with _Deadline(self.timeout) as deadline, warnings.catch_warnings():
            # verify = false is the operator's explicit choice; the TLS checks report on it.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            try:
                # verify per request: a session's verify loses to $REQUESTS_CA_BUNDLE
                # (requests#3829). stream: the body is read here, with the deadline and cap.
                response = self.session.request(
                    method,
                    url,
                    verify=verify,
                    timeout=(deadline.remaining(), deadline.remaining()),
                    stream=True,
                    **kwargs,
                )
                deadline.status = f"{response.status_code} {response.reason or ''}".rstrip()
                try:
                    response._content = self._body(response, deadline)
                    response._content_consumed = True  # type: ignore[attr-defined]
                finally:
                    response.close()  # read to its end: back to the pool; else disconnected
            except Exception as exc:
                if deadline.over() or isinstance(exc, requests.exceptions.ReadTimeout):
                    raise deadline.late() from None
                raise
            if deadline.over():
                raise deadline.late()
        return response

    def close(self) -> None:
        self.session.close()

    def _read_redirect(self, response: Response, **_: Any) -> Response:
        """requests reads a redirect's body itself, to the end: read it here first, capped."""
        deadline: _Deadline | None = getattr(_WATCH, "deadline", None)
        if response.is_redirect and deadline is not None:
            deadline.status = f"{response.status_code} {response.reason or ''}".rstrip()
            response._content = self._body(response, deadline)
            response._content_consumed = True  # type: ignore[attr-defined]
            deadline.body = 0  # the next response's body counts from 0
        return response

    def _body(self, response: Response, deadline: _Deadline) -> bytes:
        """The body as it comes (``read1``: a trickle's bytes count as they arrive), up to the
        cap; urllib3's errors raised as requests' own."""
        import requests
        import urllib3

        chunks = []
        try:
            while chunk := response.raw.read1(_CHUNK, decode_content=True):
                deadline.body += len(chunk)
                if deadline.body > self.max_body:
                    raise _TooLarge(
                        f"answered {deadline.status} with a body larger than "
                        f"{self.max_body / 2**20:g} MiB (read stopped there)"
                    )
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise deadline.late() from None
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ConnectionError(exc) from None
        return b"".join(chunks)


class Endpoint:
    """A configured endpoint with its own session; the first response is shared by its checks.

    Each request gets ``timeout`` in total and reads at most ``max_body`` bytes of body."""

    def __init__(
        self,
        target: HttpTarget,
        timeout: float,
        secrets: Iterable[str] = (),
        max_body: int = MAX_BODY,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.max_body = max_body
        self.secrets = set(secrets)
        self.bounded = BoundedSession(timeout, dict(target.headers), max_body)
        self.session = self.bounded.session
        self.first: Response | None = None
        self.error: str | None = None  # a refused certificate, a body past the cap
        self._samples: list[float] | None = None
        self._lost: str | None = None  # why a sample found the target gone
        self._sampling = threading.Lock()  # the latency checks share one series of samples

    def _get(self) -> Response:
        """One request within ``timeout`` in total, its body read to its end or the cap."""
        t = self.target
        body: dict[str, Any] = {}
        if t.json_body is not None:
            body["json"] = t.json_body
        elif t.data is not None:
            body["data"] = t.data.encode()
        return self.bounded.request(
            t.method, t.url, t.verify, params=dict(t.params) or None, **body
        )

    def open(self) -> Endpoint:
        """Make the first request; a refused or silent server makes the endpoint unreachable."""
        import requests

        try:
            self.first = self._get()
        except requests.exceptions.SSLError as exc:
            self.error = describe_error(exc)  # reachable, but its certificate is refused
        except _TooLarge as exc:
            self.error = str(exc)  # reachable, but its answer does not end
        except (_TooLate, requests.exceptions.RequestException) as exc:
            raise Unreachable(
                f"{self.target.method} {self.target.url}: {describe_error(exc, self.timeout)}"
            ) from None
        return self

    def close(self) -> None:
        self.session.close()

    def excerpt(self, text: str, limit: int = 300) -> str:
        """The start of a body for a message, secrets redacted before it is cut short."""
        return repr(redact(text, self.secrets)[:limit])

    def response(self) -> Response:
        """The first response; a refused certificate or an endless body fails the check."""
        if self.error or self.first is None:
            raise ProbeError(f"{self.target.url}: {self.error or 'not requested yet'}")
        return self.first

    def latencies(self) -> list[float]:
        """``samples`` timed requests on the kept-alive session (the runbook's curl loop)."""

        with self._sampling:
            return self._sample()

    def _sample(self) -> list[float]:
        import requests

        if self._lost is not None:  # the other latency check found the target gone
            raise Lost(self._lost)
        if self._samples is None:
            self.response()
            samples: list[float] = []
            for _ in range(self.target.samples):
                which = f"sample {len(samples) + 1} of {self.target.samples}"
                start = time.perf_counter()
                try:
                    self._get()
                except _TooLarge as exc:
                    raise ProbeError(f"{which}: {exc}") from None
                except (_TooLate, requests.exceptions.RequestException) as exc:
                    said = f"{which}: {describe_error(exc, self.timeout)}"
                    if not _gone(exc):
                        raise ProbeError(said) from None
                    # It answered the first request: it stopped answering mid-run.
                    self._lost = said
                    raise Lost(said) from None
                samples.append(time.perf_counter() - start)
            self._samples = samples
        return self._samples


def _gone(exc: BaseException) -> bool:
    """Whether a failed request means the server stopped answering (a deadline passed, the
    connection was refused or broke), not that it answered wrongly (a refused certificate)."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc, _TooLate | requests.exceptions.Timeout | requests.exceptions.ConnectionError
    )


def status_ok(target: HttpTarget, status: int) -> bool:
    """``expect_status`` when given, else any 2xx (as ``curl -f``, which also fails on 3xx)."""
    return status in target.expect_status if target.expect_status else 200 <= status < 300


def status(endpoint: Endpoint) -> Measurement:
    """The endpoint answered with an expected status; the start of the body when it did not."""
    t, response = endpoint.target, endpoint.response()
    expected = " or ".join(map(str, t.expect_status)) or "2xx"
    ok = status_ok(t, response.status_code)
    answered = f"{response.status_code} {response.reason or ''}".rstrip()
    return Measurement.fact(
        ok,
        f"{t.method} {t.url} answered {answered} (expected {expected})",
        expected,
        detail="" if ok else f"body: {endpoint.excerpt(response.text)}",
    )


def contains(endpoint: Endpoint) -> Measurement:
    """The body contains each text of ``contains`` (``curl -s ... | grep -q ok``)."""
    texts, body = endpoint.target.contains, endpoint.response().text
    missing = [text for text in texts if text not in body]
    return Measurement.fact(
        not missing,
        f"body lacks {', '.join(map(repr, missing))}" if missing else "all present",
        "contains " + ", ".join(map(repr, texts)),
        detail=f"body: {endpoint.excerpt(body)}" if missing else "",
    )


def not_contains(endpoint: Endpoint) -> Measurement:
    """The body contains none of the texts of ``not_contains`` (``curl -s ... | grep -v error``)."""
    texts, body = endpoint.target.not_contains, endpoint.response().text
    found = [text for text in texts if text in body]
    detail = ""
    if found:
        at = body.find(found[0])
        detail = f"around {found[0]!r}: {endpoint.excerpt(body[max(at - 100, 0) :], 300)}"
    return Measurement.fact(
        not found,
        f"body contains {', '.join(map(repr, found))}" if found else "none present",
        "contains none of " + ", ".join(map(repr, texts)),
        detail=detail,
    )


def json_assertions(endpoint: Endpoint) -> list[tuple[Measurement, Any]]:
    """``json_checks`` (JMESPath) measured on the JSON response: (measurement, inline levels or
    None for a yes/no one); see ``opscheck.probes.json_checks``."""
    return json_checks(json_document(endpoint), endpoint.target.json_checks)


def lookup(document: Any, path: str) -> Any:
    """``checks.database.status`` or ``items.0.name`` in a decoded JSON document."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and _index(part, len(node)):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def _index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def same_value(found: Any, expected: Any) -> bool:
    """JSON equality as an operator means it: ``true`` is not ``1``, ``12`` is ``12.0``."""
    return found == expected and isinstance(found, bool) == isinstance(expected, bool)


def json_document(endpoint: Endpoint) -> Any:
    """The first response of ``endpoint`` decoded as JSON; a ProbeError saying what came instead."""
    response = endpoint.response()
    try:
        return response.json()
    except RecursionError:  # the decoder recurses once per level
        raise ProbeError(
            f"{endpoint.target.url}: JSON nested {_depth(response.text)} levels deep, deeper "
            f"than the ~{sys.getrecursionlimit()} levels the decoder can follow"
        ) from None
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ProbeError(
            f"{endpoint.target.url}: response is not JSON ({kind}): "
            f"{endpoint.excerpt(response.text, 120)}"
        ) from None


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_LEVEL = {"[": 1, "{": 1, "]": -1, "}": -1}


def _depth(text: str) -> int:
    """How deep a JSON text nests, counted without recursing (and at C speed: a capped body
    can be 10 MiB of brackets)."""
    brackets = re.sub(r"[^\[\]{}]", "", _JSON_STRING.sub("", text))
    return max(itertools.accumulate(map(_LEVEL.__getitem__, brackets)), default=0)


_SHOWN = reprlib.Repr()  # a JSON value in a message: bounded in depth and length
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 200, 200


def json_fields(endpoint: Endpoint) -> Measurement:
    """Each field of ``json`` has its expected value (``jq '.status'`` = "healthy")."""
    document = json_document(endpoint)
    wrong = []
    for path, expected in endpoint.target.json_fields.items():
        try:
            found = lookup(document, path)
        except KeyError:
            wrong.append(f"{path} missing (expected {expected!r})")
            continue
        if not same_value(found, expected):
            wrong.append(f"{path} = {_SHOWN.repr(found)} (expected {expected!r})")
    fields = ", ".join(f"{p} = {v!r}" for p, v in endpoint.target.json_fields.items())
    return Measurement.fact(not wrong, "; ".join(wrong) or fields, fields)


def json_number(endpoint: Endpoint, path: str) -> Measurement:
    """The number at ``path`` of the JSON response; missing, not a number or not finite: a no
    (NaN would pass every comparison, Infinity every limit on the other side)."""
    try:
        value = lookup(json_document(endpoint), path)
    except KeyError:
        return Measurement.fact(False, f"{path} missing", "a number")
    if isinstance(value, str):  # a number sent as a string ("0.0975")
        with contextlib.suppress(ValueError):
            value = float(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Measurement.fact(False, f"{path} = {_SHOWN.repr(value)}", "a number")
    if math.isnan(value):
        return Measurement.fact(False, f"{path} is NaN (not a number)", "a number")
    if math.isinf(value):
        shown = "Infinity" if value > 0 else "-Infinity"
        return Measurement.fact(False, f"{path} is {shown} (not a finite number)", "a number")
    return Measurement(value, subject=path)


def latency_avg(endpoint: Endpoint) -> Measurement:
    """Mean response time of ``samples`` timed requests."""
    samples = endpoint.latencies()
    value = sum(samples) / len(samples)
    return Measurement(
        value,
        text=f"average {value * 1000:.0f} ms over {len(samples)} requests",
        detail=_spread(samples),
    )


def latency_p95(endpoint: Endpoint) -> Measurement:
    """95th percentile response time of the samples (nearest rank: with 3 samples, the max)."""
    samples = endpoint.latencies()
    ordered = sorted(samples)
    value = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank percentile
    return Measurement(
        value,
        text=f"p95 {value * 1000:.0f} ms over {len(samples)} requests",
        detail=_spread(samples),
    )


def _spread(samples: list[float]) -> str:
    return f"min {min(samples) * 1000:.0f} ms, max {max(samples) * 1000:.0f} ms"


def certificate(url: str, timeout: float, verify: bool | str) -> tuple[datetime, str | None, str]:
    """(not after, verification error or None, subject) of the server's certificate."""
    from cryptography import x509

    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or 443
    error = None
    if verify is not False:
        trust = _trust_store(verify)
        context = ssl.create_default_context(
            cafile=None if os.path.isdir(trust) else trust,
            capath=trust if os.path.isdir(trust) else None,
        )
        try:
            _handshake(context, hostname, port, timeout)
        except ssl.SSLCertVerificationError as exc:
            error = exc.verify_message or str(exc)
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    der = _handshake(unverified, hostname, port, timeout)
    cert = x509.load_der_x509_certificate(der)
    return cert.not_valid_after_utc, error, cert.subject.rfc4514_string()


def _trust_store(verify: bool | str) -> str:
    """The CA bundle requests verifies with, so both checks trust the same authorities."""
    if isinstance(verify, str):
        return verify
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    return (
        os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or DEFAULT_CA_BUNDLE_PATH
    )


def _handshake(context: ssl.SSLContext, hostname: str, port: int, timeout: float) -> bytes:
    try:
        with (
            socket.create_connection((hostname, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=hostname) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"TLS handshake with {hostname}:{port} failed: {exc}") from None
    if not der:
        raise ProbeError(f"{hostname}:{port} sent no certificate")
    return der


def tls_valid(endpoint: Endpoint) -> Measurement:
    """The certificate verifies: trusted chain, not expired, issued for this host name."""
    _, error, subject = _certificate(endpoint)
    text = f"TLS verification failed: {error}" if error else f"valid ({subject})"
    return Measurement.fact(error is None, text, "verifies")


def cert_days(endpoint: Endpoint) -> Measurement:
    """Days until the certificate expires, negative once it has."""
    not_after, _, _ = _certificate(endpoint)
    return days_left(not_after)


def _certificate(endpoint: Endpoint) -> tuple[datetime, str | None, str]:
    # endpoint.timeout opens the endpoint first: a dead server fails here at once.
    timeout = endpoint.timeout
    return certificate(endpoint.target.url, timeout, endpoint.target.verify)


def days_left(not_after: datetime) -> Measurement:
    """Days until ``not_after``, negative once expired."""
    days = (not_after - datetime.now(UTC)).total_seconds() / 86400
    when = f"{not_after:%Y-%m-%d}"
    text = (
        f"expired {-days:.1f} days ago ({when})"
        if days < 0
        else f"expires in {days:.1f} days ({when})"
    )
    return Measurement(days, text=text)
