"""HTTP probes: one requests session per endpoint, a timeout on every call, TLS verified."""

from __future__ import annotations

import math
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from opscheck.config import HttpTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.session import Unreachable


_CONNECTION_ERRORS = (
    ("Connection refused", "connection refused"),
    ("Name or service not known", "host name not found"),
    ("Temporary failure in name resolution", "host name not found (DNS)"),
    ("No route to host", "no route to host"),
    ("Connection reset by peer", "connection reset by peer"),
    ("RemoteDisconnected", "connection closed without a response"),
)


def describe_error(exc: BaseException) -> str:
    """The one line of a requests/ssl error an operator needs, without the adapter noise."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        text = str(exc)
        for marker in ("certificate verify failed: ", "SSL: "):
            if marker in text:
                return "TLS: " + text.split(marker, 1)[1].split("(_ssl")[0].rstrip(" ')\"")
        return f"TLS: {text[:200]}"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no response within the timeout (read timed out)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        for known, said in _CONNECTION_ERRORS:
            if known in text:
                return said
        return f"connection failed: {text[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class Endpoint:
    """A configured endpoint with its own session; the first response is shared by its checks."""

    def __init__(self, target: HttpTarget, timeout: float) -> None:
        import requests

        self.target = target
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "opscheck", **target.headers})
        self.session.verify = target.verify
        self.first: Any = None
        self.tls_error: str | None = None
        self._samples: list[float] | None = None

    def _get(self) -> Any:
        return self.session.request(self.target.method, self.target.url,
                                    timeout=(self.timeout, self.timeout))

    def open(self) -> Endpoint:
        """Make the first request; a refused or silent server makes the endpoint unreachable."""
        import requests

        try:
            self.first = self._get()
        except requests.exceptions.SSLError as exc:
            self.tls_error = describe_error(exc)  # reachable, but its certificate is refused
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"{self.target.method} {self.target.url}: {describe_error(exc)}") \
                from None
        return self

    def response(self) -> Any:
        if self.tls_error:
            raise ProbeError(f"{self.target.url}: {self.tls_error}")
        return self.first

    def latencies(self) -> list[float]:
        """``samples`` timed requests on the kept-alive session (the runbook's curl loop)."""
        import requests

        if self._samples is None:
            self.response()
            samples = []
            for _ in range(self.target.samples):
                start = time.perf_counter()
                try:
                    self._get().content  # noqa: B018 - the body is part of the response time
                except requests.exceptions.RequestException as exc:
                    raise ProbeError(f"sample {len(samples) + 1} of {self.target.samples}: "
                                     f"{describe_error(exc)}") from None
                samples.append(time.perf_counter() - start)
            self._samples = samples
        return self._samples


def status_ok(target: HttpTarget, status: int) -> bool:
    return status in target.expect_status if target.expect_status else 200 <= status < 300


def lookup(document: Any, path: str) -> Any:
    """``checks.database.status`` or ``items.0.name`` in a decoded JSON document."""
    node = document
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def json_document(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise ProbeError(f"{response.url}: response is not JSON ({kind}): "
                         f"{response.text[:120]!r}") from None


def average(samples: list[float]) -> Measurement:
    value = sum(samples) / len(samples)
    return Measurement(value, text=f"average {value * 1000:.0f} ms over {len(samples)} requests",
                       detail=_spread(samples))


def p95(samples: list[float]) -> Measurement:
    ordered = sorted(samples)
    value = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest-rank percentile
    return Measurement(value, text=f"p95 {value * 1000:.0f} ms over {len(samples)} requests",
                       detail=_spread(samples))


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
        context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
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


def _handshake(context: ssl.SSLContext, hostname: str, port: int, timeout: float) -> bytes:
    try:
        with socket.create_connection((hostname, port), timeout=timeout) as sock, \
                context.wrap_socket(sock, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"TLS handshake with {hostname}:{port} failed: {exc}") from None
    if not der:
        raise ProbeError(f"{hostname}:{port} sent no certificate")
    return der


def days_left(not_after: datetime) -> Measurement:
    days = (not_after - datetime.now(UTC)).total_seconds() / 86400
    when = f"{not_after:%Y-%m-%d}"
    text = f"expired {-days:.1f} days ago ({when})" if days < 0 else \
        f"expires in {days:.1f} days ({when})"
    return Measurement(days, text=text)
