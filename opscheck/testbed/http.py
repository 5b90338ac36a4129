"""An SRE's web app on loopback: health, metrics, auth, slow and broken routes, good and bad TLS,
and hostile ones: a trickle (/trickle), an endless event stream (/events), NaN (/nan), JSON
nested 100,000 levels deep (/deep).

    with HttpTestbed(token="s3cret") as bed:
        bed.url("https", "/health")      # https://127.0.0.1:PORT/health, trusted by bed.ca_path
        bed.url("expired"), bed.url("blackhole"), bed.url("refused")

Every server runs in a thread of this process; ``stop()`` closes every socket and joins them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import math
import socket
import ssl
import tempfile
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from opscheck.testbed import free_port
from opscheck.testbed.process import Service

HEALTHY = {"status": "healthy", "checks": {"database": {"status": "up"}}, "connections": 12}
DEGRADED = {"status": "degraded", "checks": {"database": {"status": "down"}}, "connections": 97}
# name -> (days valid from now, subject alternative names); all signed by the testbed's CA.
CERTIFICATES: dict[str, tuple[float, list[str]]] = {
    "https": (365, ["IP:127.0.0.1", "DNS:localhost"]),
    "expired": (-10, ["IP:127.0.0.1", "DNS:localhost"]),
    "expiring": (5, ["IP:127.0.0.1", "DNS:localhost"]),
    "wrong_host": (365, ["DNS:wrong.example"]),
}
_MAX_DELAY = 5.0  # /slow never holds a handler thread longer than this
_STATIC: dict[str, tuple[int, str | dict[str, Any]]] = {
    "/health": (200, HEALTHY),
    "/health/ready": (200, "ok"),
    "/error": (500, "internal error: database connection pool exhausted"),
    "/wrong": (200, DEGRADED),
    "/notjson": (200, "<!doctype html><html><body>Welcome</body></html>"),
    # json.dumps writes NaN and Infinity, as many JSON encoders do (not JSON, but decodable)
    "/nan": (200, {"status": "healthy", "connections": math.nan,
                   "queue": {"depth": math.inf, "lag": -math.inf}}),
}  # fmt: skip


# The JSON APIs of issue 12: a search API, an alerts list and service stats with numbers sent as
# strings; ?state=broken answers as a broken service would.
_ALERTS = [
    {"name": "DiskFull", "state": "firing", "severity": "critical", "instance": "db-1"},
    {"name": "HighLatency", "state": "firing", "severity": "warning", "instance": "api-2"},
]


def _search(method: str, query: dict[str, list[str]], sent: bytes) -> tuple[int, Any]:
    if method not in ("POST", "PUT", "PATCH"):
        return 405, {"error": f"{method} not allowed: POST a JSON query"}
    try:
        asked = json.loads(sent or b"null")
    except ValueError:
        return 400, {"error": "body is not JSON"}
    if not isinstance(asked, dict) or not isinstance(asked.get("query"), str):
        return 400, {"error": 'expected a JSON body {"query": "..."}'}
    hits = [{"id": n, "title": f"{asked['query']} result {n}"} for n in range(asked.get("size", 3))]
    limit = query.get("limit", [""])[0]
    return 200, {"method": method, "query": asked["query"], "limit": limit, "hits": hits}


def _alerts(method: str, query: dict[str, list[str]], sent: bytes) -> tuple[int, Any]:
    broken = query.get("state", [""])[0] == "broken"
    return 200, {"status": "success", "data": {"alerts": _ALERTS if broken else []}}


def _stats(method: str, query: dict[str, list[str]], sent: bytes) -> tuple[int, Any]:
    broken = query.get("state", [""])[0] == "broken"
    return 200, {
        "services": [
            {"name": "api", "status": "up", "latency_ms": "120.5"},
            {"name": "worker", "status": "down" if broken else "up", "latency_ms": "80"},
            {"name": "search", "status": "up", "latency_ms": "2950" if broken else "310"},
        ],
        "requests": {"total": 2000, "errors": 195 if broken else 12},
        "error_rate": "0.0975" if broken else "0.006",
        "queues": [3, 1, 950] if broken else [3, 1, 7],
    }


_API = {"/query": _search, "/alerts": _alerts, "/stats": _stats}


class _App(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread; stop() wakes them first

    def __init__(self, token: str, slow: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: the kernel picks a free one
        self.token = token
        self.slow = slow
        self.served: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()  # /trickle: requests per path and query
        self.accepted = 0  # connections accepted: kept-alive requests reuse one
        self.barriers: dict[int, threading.Barrier] = {}  # /together
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._open: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        request, address = super().get_request()
        # The handler writes the headers, then the body: with Nagle on, the body waits for the
        # client's delayed ACK of the headers (~40 ms), and every kept-alive request took 44 ms.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self._open.add(request)
            self.accepted += 1
        return request, address

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close(self) -> None:
        """Stop accepting, wake handlers idling on keep-alive or /slow, join them, close all."""
        self.shutdown()
        self.closing.set()
        with self.lock:
            idle = list(self._open)
        for sock in idle:
            with contextlib.suppress(OSError):  # the plain socket: no TLS close_notify dance
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        self.server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that reject our certificate hang up mid-handshake: expected, not news."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the latency samples expect
    timeout = _MAX_DELAY + 1  # a client that goes silent frees its thread

    def do_GET(self) -> None:
        app = cast(_App, self.server)
        url = urlsplit(self.path)
        route = url.path.rstrip("/") or "/"
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # keep-alive
        if route in _STATIC:
            self._send(*_STATIC[route])
        elif route in _API:  # /query (POST a search), /alerts and /stats ?state=broken
            status, body = _API[route](self.command, parse_qs(url.query), sent)
            if status == 200:  # ?delay=0.7: a slow answer, only to a well-formed request
                delay = float(parse_qs(url.query).get("delay", ["0"])[0])
                app.closing.wait(min(delay, _MAX_DELAY))
            self._send(status, body)
        elif route == "/slow":  # /slow?seconds=0.8; the testbed's ``slow`` by default
            try:
                delay = min(float(parse_qs(url.query).get("seconds", [app.slow])[0]), _MAX_DELAY)
            except ValueError:
                return self._send(400, "seconds: expected a number")
            app.closing.wait(delay)
            self._send(200, {"status": "healthy", "delay": delay})
        elif route == "/together":  # /together?parties=3&wait=5: 200 when 3 requests meet here
            self._together(app, url.query)
        elif route == "/auth":  # never echoes what the client sent
            if self.headers.get("Authorization") == f"Bearer {app.token}":
                self._send(200, {"status": "healthy", "user": "opscheck"})
            else:
                self._send(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        elif route == "/headers":  # like httpbin: echoes the request headers, secrets and all
            self._send(200, {"headers": dict(self.headers)})
        elif route == "/metrics":
            self._send(200, _metrics(app), {"Content-Type": "text/plain; version=0.0.4"})
        elif route == "/trickle":  # /trickle?part=head&rate=1&fine=1
            self._trickle(app, url.query)
        elif route == "/events":  # /events?every=0.2; every=0: as fast as the client reads
            self._events(app, url.query)
        elif route == "/moved":  # a redirect to /health whose body never ends
            self._events(app, url.query, 302, {"Location": "/health"})
        elif route == "/deep":  # /deep?levels=100000
            levels = int(parse_qs(url.query).get("levels", ["100000"])[0])
            deep = '{"status": "healthy", "nested": ' + "[" * levels + "]" * levels + "}"
            self._send(200, deep, {"Content-Type": "application/json"})
        else:
            self._send(404, "not found")

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET
    do_PATCH = do_GET

    def _together(self, app: _App, query: str) -> None:
        """Answers 200 only if ``parties`` requests are in flight at once (within ``wait``
        seconds, default 5), else 504: proof that a client sends them concurrently."""
        asked = parse_qs(query)
        parties = int(asked.get("parties", ["2"])[0])
        wait = min(float(asked.get("wait", ["5"])[0]), _MAX_DELAY)
        with app.lock:
            barrier = app.barriers.setdefault(parties, threading.Barrier(parties, timeout=wait))
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            with app.lock:
                app.barriers.pop(parties, None)  # the next ones meet at a fresh barrier
            return self._send(504, f"the other {parties - 1} requests did not come in time")
        self._send(200, {"status": "healthy", "parties": parties})

    def _trickle(self, app: _App, query: str) -> None:
        """A healthy answer sent ``rate`` bytes a second (default 1): its status line and
        headers too with ``part=head``, else only its body. The first ``fine`` requests to the
        same path and query are answered at once (a server that slows down mid-run)."""
        asked = parse_qs(query)
        rate = float(asked.get("rate", ["1"])[0])
        with app.lock:
            app.hits[self.path] += 1
            fine = app.hits[self.path] <= int(asked.get("fine", ["0"])[0])
        if fine:
            return self._send(200, HEALTHY)
        with app.lock:
            app.served["200"] += 1
        body = json.dumps(HEALTHY).encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.close_connection = True  # a client that gave up leaves the rest unread
        if asked.get("part", ["body"])[0] == "head":
            body, head = head + body, b""
        with contextlib.suppress(OSError):  # the client hung up: as expected
            self.wfile.write(head)
            for at in range(len(body)):
                self.wfile.write(body[at : at + 1])
                if app.closing.wait(1 / rate):
                    return

    def _events(
        self, app: _App, query: str, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        """A ``text/event-stream`` that never ends: an event every ``every`` seconds, or with
        ``every=0`` (the default) ~45 KB of events per write, as fast as the client reads."""
        every = float(parse_qs(query).get("every", ["0"])[0])
        with app.lock:
            app.served[str(status)] += 1
        self.send_response(status)
        for name, value in {"Content-Type": "text/event-stream", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = (b"data: " + json.dumps(HEALTHY).encode() + b"\n\n") * (1 if every else 512)
        chunk = b"%x\r\n%s\r\n" % (len(events), events)
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client hung up: as expected
            while not app.closing.wait(every):
                self.wfile.write(chunk)

    def _send(
        self, status: int, body: str | dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        app = cast(_App, self.server)
        with app.lock:
            app.served[str(status)] += 1
        if isinstance(body, dict):
            body, kind = json.dumps(body), "application/json"
        else:
            kind = "text/html" if body.startswith("<!doctype") else "text/plain"
        data = body.encode()
        self.send_response(status)
        for name, value in {"Content-Type": kind, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read results, not access logs."""


def _metrics(app: _App) -> str:
    with app.lock:
        served = sorted(app.served.items())
    counters = "".join(f'http_requests_total{{code="{code}"}} {n}\n' for code, n in served)
    return (
        "# HELP http_requests_total Requests served, by status code.\n"
        f"# TYPE http_requests_total counter\n{counters}"
        "# HELP app_db_connections Open database connections.\n# TYPE app_db_connections gauge\n"
        f"app_db_connections {HEALTHY['connections']}\n"
        "# HELP app_up Whether the app considers itself up.\n# TYPE app_up gauge\napp_up 1\n"
    )


def make_certificates(directory: Path) -> dict[str, tuple[Path, Path]]:
    """Write a CA (``ca.pem``) and one (cert, key) per entry of ``CERTIFICATES`` into directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from cryptography.x509.oid import NameOID

    now, pem = dt.datetime.now(dt.UTC), Encoding.PEM
    ca_key = ec.generate_private_key(ec.SECP256R1())  # EC: key generation in ~1 ms, not ~100
    key = ec.generate_private_key(ec.SECP256R1())  # one key serves every leaf certificate
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opscheck testbed CA")])

    def issue(name: x509.Name, public: Any, days: float, extension: Any) -> x509.Certificate:
        end, serial = now + dt.timedelta(days=days), x509.random_serial_number()
        start = min(now, end) - dt.timedelta(days=30)
        builder = x509.CertificateBuilder(ca_name, name, public, serial, start, end)  # issuer 1st
        return builder.add_extension(extension, critical=True).sign(ca_key, hashes.SHA256())

    ca = issue(ca_name, ca_key.public_key(), 3650, x509.BasicConstraints(ca=True, path_length=0))
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    key_path = directory / "server-key.pem"
    key_path.write_bytes(key.private_bytes(pem, PrivateFormat.PKCS8, NoEncryption()))
    written = {}
    for label, (days, sans) in CERTIFICATES.items():
        alt = [
            x509.IPAddress(ipaddress.ip_address(v[3:]))
            if v.startswith("IP:")
            else x509.DNSName(v[4:])
            for v in sans
        ]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"opscheck testbed {label}")])
        cert = issue(name, key.public_key(), days, x509.SubjectAlternativeName(alt))
        path = directory / f"{label}.pem"
        path.write_bytes(cert.public_bytes(pem))
        written[label] = (path, key_path)
    return written


class HttpTestbed(Service):
    """Plain HTTP, four HTTPS servers (valid, expired, expiring, wrong host), a blackhole."""

    kind = "HTTP testbed"

    def __init__(self, token: str = "testbed-token", slow: float = 0.4) -> None:
        self.token = token
        self.slow = slow
        self.urls: dict[str, str] = {}
        self._apps: list[tuple[_App, threading.Thread]] = []
        self._blackhole: socket.socket | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def ca_path(self) -> str:
        """The CA bundle that trusts the testbed's certificates (``verify = "<ca_path>"``)."""
        assert self._tmp, "start() the testbed first"
        return str(Path(self._tmp.name) / "ca.pem")

    def url(self, server: str = "http", path: str = "/health", host: str = "127.0.0.1") -> str:
        """The URL of ``path`` on one server (http, https, expired, ...), by IP or host name."""
        return self.urls[server].replace("127.0.0.1", host) + path

    def __str__(self) -> str:
        return self.kind  # many servers, many ports

    def _launch(self) -> None:
        """Start every server; ``urls`` maps each server name to its base URL."""
        self._tmp = tempfile.TemporaryDirectory(prefix="opscheck-http-")
        certificates = make_certificates(Path(self._tmp.name))
        self.urls["http"] = f"http://127.0.0.1:{self._serve(None)}"
        for label, (cert, key) in certificates.items():
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.urls[label] = f"https://127.0.0.1:{self._serve(context)}"
        # The kernel completes the TCP handshake of queued connections; nobody ever reads them,
        # like an app whose workers are all stuck. Closing the socket resets them all at stop().
        self._blackhole = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.urls["blackhole"] = f"http://127.0.0.1:{self._blackhole.getsockname()[1]}"
        self.urls["refused"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there

    def _serve(self, context: ssl.SSLContext | None) -> int:
        app = _App(self.token, self.slow)
        port = app.server_address[1]
        if context is not None:
            # The handshake happens in the handler thread, so a stuck client blocks no one else.
            app.socket = context.wrap_socket(
                app.socket, server_side=True, do_handshake_on_connect=False
            )
        thread = threading.Thread(
            target=app.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"testbed-http-{port}",
            daemon=True,
        )
        thread.start()
        self._apps.append((app, thread))
        return port

    def _halt(self) -> None:
        """Stop every server, close every socket, remove the certificates."""
        for app, thread in self._apps:
            app.close()
            thread.join()
        self._apps.clear()
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.urls.clear()


if __name__ == "__main__":
    with HttpTestbed() as bed:
        print(f"CA bundle: {bed.ca_path}")
        for server, base in bed.urls.items():
            print(f"{server:<11} {base}")
        print("Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
