"""HTTP probes: one requests session per endpoint, a timeout on every call, TLS verified."""

from __future__ import annotations

import math
import os
import re
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opscheck.config import HttpTarget, redact
from opscheck.judge import Measurement, ProbeError
from opscheck.session import Unreachable

if TYPE_CHECKING:
    from requests import Response

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

    # requests repeats the path and query ("with url: /x?token=..."): the caller names the URL
    # in full, where it is redacted as a whole; a cut-off copy could leak half a secret.
    text = re.sub(r" with url: \S+", "", str(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        for marker in ("certificate verify failed: ", "SSL: "):
            if marker in text:
                return "TLS: " + text.split(marker, 1)[1].split("(_ssl")[0].rstrip(" ')\"")
        return f"TLS: {text[:200]}"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        within = f"{timeout:g} s" if timeout else "the timeout"
        return f"no response within {within} (read timed out)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"connection timed out{f' after {timeout:g} s' if timeout else ''}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        for known, said in _CONNECTION_ERRORS:
            if known in text:
                return said
        return f"connection failed: {text[:200]}"
    return f"{type(exc).__name__}: {text[:200]}"


class Endpoint:
    """A configured endpoint with its own session; the first response is shared by its checks."""

    def __init__(self, target: HttpTarget, timeout: float, secrets: Iterable[str] = ()) -> None:
        import requests

        self.target = target
        self.timeout = timeout
        self.secrets = set(secrets)
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "opscheck", **target.headers})
        self.first: Response | None = None
        self.tls_error: str | None = None
        self._samples: list[float] | None = None
        self._sampling = threading.Lock()  # the latency checks share one series of samples

    def _get(self) -> Response:
        import urllib3

        with warnings.catch_warnings():
            # verify = false is the operator's explicit choice; the TLS checks report on it.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            # verify per request: a session's verify loses to $REQUESTS_CA_BUNDLE (requests#3829).
            return self.session.request(
                self.target.method,
                self.target.url,
                verify=self.target.verify,
                timeout=(self.timeout, self.timeout),
            )

    def open(self) -> Endpoint:
        """Make the first request; a refused or silent server makes the endpoint unreachable."""
        import requests

        try:
            self.first = self._get()
        except requests.exceptions.SSLError as exc:
            self.tls_error = describe_error(exc)  # reachable, but its certificate is refused
        except requests.exceptions.RequestException as exc:
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
        """The first response; a refused certificate fails the check that asks for it."""
        if self.tls_error or self.first is None:
            raise ProbeError(f"{self.target.url}: {self.tls_error or 'not requested yet'}")
        return self.first

    def latencies(self) -> list[float]:
        """``samples`` timed requests on the kept-alive session (the runbook's curl loop)."""

        with self._sampling:
            return self._sample()

    def _sample(self) -> list[float]:
        import requests

        if self._samples is None:
            self.response()
            samples: list[float] = []
            for _ in range(self.target.samples):
                start = time.perf_counter()
                try:
                    self._get().content  # noqa: B018 - the body is part of the response time
                except requests.exceptions.RequestException as exc:
                    raise ProbeError(
                        f"sample {len(samples) + 1} of {self.target.samples}: "
                        f"{describe_error(exc, self.timeout)}"
                    ) from None
                samples.append(time.perf_counter() - start)
            self._samples = samples
        return self._samples


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
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ProbeError(
            f"{endpoint.target.url}: response is not JSON ({kind}): "
            f"{endpoint.excerpt(response.text, 120)}"
        ) from None


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
            wrong.append(f"{path} = {found!r} (expected {expected!r})")
    fields = ", ".join(f"{p} = {v!r}" for p, v in endpoint.target.json_fields.items())
    return Measurement.fact(not wrong, "; ".join(wrong) or fields, fields)


def json_number(endpoint: Endpoint, path: str) -> Measurement:
    """The number at ``path`` of the JSON response; missing or not a number: a no."""
    try:
        value = lookup(json_document(endpoint), path)
    except KeyError:
        return Measurement.fact(False, f"{path} missing", "a number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Measurement.fact(False, f"{path} = {value!r}", "a number")
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
