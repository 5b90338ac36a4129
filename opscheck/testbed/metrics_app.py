"""An application exposing ``/metrics`` with ``prometheus_client``, served from a thread on a
free loopback port, with its own registry: what ``[[metrics]]`` reads and Prometheus scrapes.

    with MetricsApp() as app:
        app.queue_depth.labels(queue="embeddings").set(150)
        with app.counting(per_second=20):       # jobs_processed_total grows 20 per second
            ...
        app.url                                  # http://127.0.0.1:PORT/metrics

``form``: ``"negotiate"`` answers as the client's Accept header asks (prometheus_client's own
choice: OpenMetrics when asked for it), ``"text"`` always the text format, ``"openmetrics"``
always OpenMetrics. ``token``: requests without ``Authorization: Bearer <token>`` get 401.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

from opscheck.testbed import free_port

Form = Literal["negotiate", "text", "openmetrics"]
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)  # seconds, as an HTTP latency histogram has
_ACCEPT = {
    "text": "text/plain;version=0.0.4",
    "openmetrics": "application/openmetrics-text;version=1.0.0",
}


class MetricsApp:
    """``app_queue_depth{queue}`` (gauge), ``app_jobs_processed_total{queue}`` (counter) and
    ``app_request_duration_seconds`` (histogram, ``BUCKETS``) on ``/metrics``."""

    def __init__(self, form: Form = "negotiate", token: str | None = None) -> None:
        self.form = form
        self.token = token
        self.port = free_port()
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "app_queue_depth", "Jobs waiting per queue", ["queue"], registry=self.registry
        )
        self.jobs = Counter(
            "app_jobs_processed", "Jobs processed per queue", ["queue"], registry=self.registry
        )
        self.latency = Histogram(
            "app_request_duration_seconds",
            "Time to answer a request",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._server: ThreadingWSGIServer | None = None
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def _app(self) -> Callable[..., Iterable[bytes]]:
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            self.requests.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")))
            if self.token and environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
                start_response("401 Unauthorized", [("Content-Type", "text/plain")])
                return [b"Unauthorized\n"]
            if self.form != "negotiate":
                environ["HTTP_ACCEPT"] = _ACCEPT[self.form]
            return metrics(environ, start_response)

        return app

    def start(self) -> MetricsApp:
        server = make_server(
            "127.0.0.1", self.port, self._app(), ThreadingWSGIServer, handler_class=_SilentHandler
        )
        threading.Thread(target=server.serve_forever, name="metrics-app", daemon=True).start()
        self._server = server
        return self

    def stop(self) -> None:
        """The app goes away: its port refuses connections."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MetricsApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def counting(self, per_second: float, queue: str = "embeddings") -> Iterator[None]:
        """Jobs processed at ``per_second`` (one increment each 1/per_second s, on a fixed
        schedule so that late wake-ups catch up) while the block runs."""
        stop = threading.Event()
        child = self.jobs.labels(queue=queue)

        def tick() -> None:
            start, done = time.monotonic(), 0
            while not stop.is_set():
                due = int((time.monotonic() - start) * per_second)
                if due > done:
                    child.inc(due - done)
                    done = due
                stop.wait(min(0.05, 1 / per_second))

        thread = threading.Thread(target=tick, name="metrics-app-counter", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
