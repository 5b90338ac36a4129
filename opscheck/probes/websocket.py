"""WebSocket probes: one connection per ``[[websocket]]`` target, every step within its timeout.

The handshake (TCP, TLS and the HTTP upgrade) is bounded by the timeout as a whole
(``open_timeout``), each pong and each reply too. The certificate checks are ``[[http]]``'s own
(``probes.http.certificate``), on the same trust store as the handshake.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

from opscheck.config import WebsocketTarget, redact, secret
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import http
from opscheck.redaction import clip
from opscheck.session import Lost, Unreachable

MAX_MESSAGE = 2**20  # bytes of one message read; a reply a check judges is a few KB
MAX_REPLIES = 100  # messages read while waiting for the expected reply


def _context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context of the handshake: the CA bundle ``[[http]]`` trusts (so its certificate
    checks agree), or none checked with ``verify = false``."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=http._trust_store(verify))


def describe_error(exc: BaseException, timeout: float) -> str:
    """The one line of a websockets/ssl/socket error an operator needs."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or clip(str(exc), 200)}"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        reason = exc.response.reason_phrase
        return f"answered {status} {reason} (expected 101 Switching Protocols)"
    if isinstance(exc, TimeoutError):
        return f"no handshake within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionClosed):
        return _closed(exc)
    if isinstance(exc, InvalidURI):
        return f"invalid URI: {exc}"
    if isinstance(exc, OSError):
        return exc.strerror or clip(str(exc), 200)
    return f"{type(exc).__name__}: {clip(str(exc), 200)}"


def _closed(exc: Any) -> str:
    frame = exc.rcvd
    if frame is None:
        return "the connection closed without a close frame"
    said = f": {frame.reason!r}" if frame.reason else ""
    return f"the server closed the connection ({frame.code}{said})"


class Socket:
    """A target's WebSocket connection, opened once per run; its checks share it."""

    def __init__(self, target: WebsocketTarget, timeout: float, secrets: Iterable[str] = ()):
        self.target = target
        self.timeout = timeout
        self.secrets = set(secrets)
        self.connection: Any = None
        self.handshake_seconds = 0.0
        self.error: str | None = None  # reachable, but the handshake was refused (TLS, status)
        self._lost: str | None = None
        self._pings: list[float] | None = None
        self._lock = threading.Lock()  # one check at a time pings or reads

    def open(self) -> Socket:
        """The handshake; a refused or silent server makes the target unreachable."""
        from websockets.exceptions import InvalidHandshake
        from websockets.sync.client import connect

        t = self.target
        headers = dict(t.headers)
        if token := secret(t, "bearer_token"):
            headers["Authorization"] = f"Bearer {token}"
        start = time.perf_counter()
        try:
            self.connection = connect(
                t.url,
                ssl=_context(t.verify) if t.checks_tls else None,
                additional_headers=headers,
                user_agent_header="opscheck",
                open_timeout=self.timeout,
                close_timeout=self.timeout,
                ping_interval=None,  # only the check's own pings, timed
                max_size=MAX_MESSAGE,
                legacy=True,  # a connection kept for the run's checks, closed by close()
            )
        except (ssl.SSLError, InvalidHandshake) as exc:
            self.error = self._said(exc)  # it answered, but refused or was refused
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"{self.redacted(t.url)}: {self._said(exc)}") from None
        self.handshake_seconds = time.perf_counter() - start
        return self

    def _said(self, exc: BaseException) -> str:
        return self.redacted(describe_error(exc, self.timeout))

    def redacted(self, text: str) -> str:
        return redact(text, self.secrets)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()

    def opened(self) -> Any:
        """The open connection; a refused handshake fails the check with its reason."""
        if self.error is not None or self.connection is None:
            raise ProbeError(f"{self.redacted(self.target.url)}: {self.error or 'not opened'}")
        if self._lost is not None:
            raise Lost(self._lost)
        return self.connection

    def pings(self) -> list[float]:
        """``pings`` pings, one after the other, each answered within the timeout."""
        from websockets.exceptions import ConnectionClosed

        with self._lock:
            connection = self.opened()
            if self._pings is None:
                samples: list[float] = []
                for index in range(self.target.pings):
                    which = f"ping {index + 1} of {self.target.pings}"
                    start = time.perf_counter()
                    try:
                        answered = connection.ping().wait(self.timeout)
                    except ConnectionClosed as exc:
                        self._lost = f"{which}: {_closed(exc)}"
                        raise Lost(self._lost) from None
                    if not answered:
                        self._lost = f"{which}: no pong within {self.timeout:g} s"
                        raise Lost(self._lost)
                    samples.append(time.perf_counter() - start)
                self._pings = samples
            return self._pings

    def replies(self) -> tuple[bool, list[str], str]:
        """Send ``send`` (if any), then read messages until one is the expected reply (any
        reply without ``expect``) or the timeout passes: (found, messages read, why it ended)."""
        from websockets.exceptions import ConnectionClosed

        t = self.target
        with self._lock:
            connection = self.opened()
            got: list[str] = []
            try:
                if t.send is not None:
                    connection.send(t.send)
                deadline = time.monotonic() + self.timeout
                while len(got) < MAX_REPLIES:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        message = connection.recv(timeout=left)
                    except TimeoutError:
                        break
                    text = message if isinstance(message, str) else message.decode(errors="replace")
                    got.append(text)
                    if self._matches(text):
                        return True, got, ""
            except ConnectionClosed as exc:
                return False, got, _closed(exc)
            return False, got, f"within {self.timeout:g} s"

    def _matches(self, text: str) -> bool:
        t = self.target
        if t.expect is not None:
            return t.expect in text
        if t.expect_regex is not None:
            return re.search(t.expect_regex, text) is not None
        return True

    def excerpt(self, text: str, limit: int = 200) -> str:
        """A message for a message: secrets redacted before it is cut short."""
        return repr(self.redacted(text)[:limit])


def handshake(socket: Socket) -> Measurement:
    """The server switched protocols (101); how long the handshake took."""
    url = socket.redacted(socket.target.url)
    if socket.error is not None:
        return Measurement.fact(False, f"{url}: {socket.error}", "101 Switching Protocols")
    took = socket.handshake_seconds * 1000
    return Measurement.fact(
        True, f"{url}: 101 Switching Protocols in {took:.0f} ms", "101 Switching Protocols"
    )


def ping_latency(socket: Socket) -> Measurement:
    """Mean ping→pong time of the pings."""
    samples = socket.pings()
    value = sum(samples) / len(samples)
    return Measurement(
        value,
        text=f"ping→pong average {value * 1000:.1f} ms over {len(samples)} pings",
        detail=f"min {min(samples) * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms",
    )


def reply(socket: Socket) -> Measurement:
    """The reply to ``send`` (or the server's first messages) holds what ``expect`` says."""
    t = socket.target
    if t.expect is not None:
        wanted = f"a reply containing {t.expect!r}"
    elif t.expect_regex is not None:
        wanted = f"a reply matching {t.expect_regex!r}"
    else:
        wanted = "a reply"
    sent = f"to {socket.excerpt(t.send, 80)}" if t.send is not None else "from the server"
    found, got, why = socket.replies()
    if found:
        return Measurement.fact(True, f"{sent}: {socket.excerpt(got[-1], 120)}", wanted)
    count = f"{len(got)} message{'' if len(got) == 1 else 's'}"
    text = f"no {wanted.removeprefix('a ')} {sent} {why} ({count} received)"
    if why.startswith("the server closed"):
        text = f"no {wanted.removeprefix('a ')} {sent}: {why} ({count} received)"
    shown = ", ".join(socket.excerpt(m) for m in got[-3:])
    return Measurement.fact(False, text, wanted, detail=f"last received: {shown}" if got else "")


def tls_valid(socket: Socket) -> Measurement:
    """The certificate verifies: trusted chain, not expired, issued for this host name."""
    _, error, subject = http.certificate(socket.target.url, socket.timeout, socket.target.verify)
    text = f"TLS verification failed: {error}" if error else f"valid ({subject})"
    return Measurement.fact(error is None, text, "verifies")


def cert_days(socket: Socket) -> Measurement:
    """Days until the certificate expires, negative once it has."""
    not_after, _, _ = http.certificate(socket.target.url, socket.timeout, socket.target.verify)
    return http.days_left(not_after)


def lost(exc: BaseException) -> str | None:
    """A broken connection mid-run: the server stopped answering (``Run.noticed``)."""
    from websockets.exceptions import ConnectionClosed

    if isinstance(exc, ConnectionClosed):
        return _closed(exc)
    return None
