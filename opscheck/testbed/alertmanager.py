"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on a free loopback port, and the
test set-up that writes to it: alerts POSTed as Prometheus would send them, silences created as
an operator would. The checks themselves only read (``opscheck.probes.alertmanager``).

    with Alertmanager(tmp / "am") as am:
        am.post(alert("DiskFull", "critical", "Disk almost full", instance="db1"))
        am.silence(alertname="DiskFull")

Single instances run without gossip (``--cluster.listen-address=``, empty); ``cluster_port`` and
``peers`` make a cluster of instances on loopback, settled in ~3 s with a 50 ms gossip interval.
``RecordingProxy`` stands in front of one to record every request a run makes (and to ask for a
bearer token, which Alertmanager itself cannot).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opscheck.testbed import free_port
from opscheck.testbed.process import Service
from opscheck.testbed.promstack import HttpServerProcess, PromStackError

# The receiver drops everything (a receiver named `null` fails the config check). The inhibit
# rule: a firing `ClusterDown` hides every other alert of its namespace, as such rules do.
CONFIG = """\
route:
  receiver: devnull
  group_wait: 0s
receivers:
  - name: devnull
inhibit_rules:
  - source_matchers: ['alertname="ClusterDown"']
    target_matchers: ['alertname!="ClusterDown"']
    equal: [namespace]
"""


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def alert(
    name: str,
    severity: str | None,
    summary: str = "",
    *,
    started_ago: float = 60.0,
    lasts: float = 3600.0,
    **labels: str,
) -> dict[str, Any]:
    """An alert as Prometheus POSTs it: firing since ``started_ago`` s, for ``lasts`` s more
    (Alertmanager drops it as resolved once ``endsAt`` passes)."""
    now = dt.datetime.now(dt.UTC)
    sent = {"alertname": name, **labels}
    if severity is not None:
        sent["severity"] = severity
    return {
        "labels": sent,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": _iso(now - dt.timedelta(seconds=started_ago)),
        "endsAt": _iso(now + dt.timedelta(seconds=lasts)),
    }


class Alertmanager(HttpServerProcess):
    """``prometheus-alertmanager`` with ``CONFIG`` and its storage under ``directory``."""

    kind = "prometheus-alertmanager"

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        cluster_port: int | None = None,
        peers: tuple[int, ...] = (),
    ) -> None:
        super().__init__(directory / "alertmanager.log", port)
        self.directory = directory
        self.cluster_port = cluster_port  # None: no gossip at all
        self.peers = peers  # the cluster ports of the other instances

    def command(self) -> list[str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "alertmanager.yml"
        config.write_text(CONFIG)
        gossip = f"127.0.0.1:{self.cluster_port}" if self.cluster_port else ""
        argv = [
            "prometheus-alertmanager",
            f"--config.file={config}",
            f"--storage.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--cluster.listen-address={gossip}",
        ]
        if self.cluster_port:
            argv.append("--cluster.gossip-interval=50ms")  # settles in ~3 s instead of ~10 s
            argv += [f"--cluster.peer=127.0.0.1:{peer}" for peer in self.peers]
        return argv

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data, {"Content-Type": "application/json"}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise PromStackError(f"{method} {path}: HTTP {exc.code}: {exc.read()!r}") from None
        return json.loads(text) if text else None

    def post(self, *alerts: dict[str, Any]) -> None:
        """POST alerts to ``/api/v2/alerts``, as Prometheus does (set-up only)."""
        self._call("POST", "/api/v2/alerts", list(alerts))

    def silence(self, comment: str = "maintenance", by: str = "alice", **labels: str) -> str:
        """Silence the alerts with these labels for an hour; the silence's id (set-up only)."""
        now = dt.datetime.now(dt.UTC)
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in labels.items()
            ],
            "startsAt": _iso(now),
            "endsAt": _iso(now + dt.timedelta(hours=1)),
            "createdBy": by,
            "comment": comment,
        }
        return str(self._call("POST", "/api/v2/silences", body)["silenceID"])

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return str(response.read().decode())

    def wait_until(self, path: str, done: Any, timeout: float = 10.0) -> Any:
        """Poll ``GET path`` until ``done(answer)``; the answer (alerts are processed, a
        cluster settles, asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self.get(path)
            if done(answer):
                return answer
            if time.monotonic() > deadline:
                raise PromStackError(f"{self}: GET {path} not as expected after {timeout:g} s")
            time.sleep(0.05)


class RecordingProxy(Service):
    """An HTTP proxy on loopback in front of ``upstream``: records ``(method, path)`` of every
    request, and answers 401 to any without ``Authorization: Bearer <token>`` when given one."""

    kind = "recording proxy"

    def __init__(self, upstream: str, token: str | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.port = free_port()
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                proxy.requests.append((self.command, self.path))
                if proxy.token and self.headers.get("Authorization") != f"Bearer {proxy.token}":
                    self._answer(401, b"Unauthorized\n", "text/plain")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(
                    proxy.upstream + self.path, body, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status, data = response.status, response.read()
                        kind = response.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), "application/json"
                self._answer(status, data, kind)

            def _answer(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _halt(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
