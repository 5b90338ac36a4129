"""The Prometheus family's small servers, real Debian binaries on free loopback ports.

    with Pushgateway(tmp / "pgw.log") as gateway, NodeExporter(tmp / "ne.log") as exporter:
        gateway.url, exporter.url

Each answers within ~0.2 s of launch (../shared/notes/prometheus-docker-websocket.md); ``ready``
polls the server's own ``/-/ready`` or ``/metrics``. Prometheus and Alertmanager, which need a
config file and storage, build on ``HttpServerProcess`` in their own modules.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

from opscheck.testbed import free_port
from opscheck.testbed.process import ServerProcess


class PromStackError(RuntimeError):
    """A Prometheus-family server did not start; says which and why (its log's end)."""


class HttpServerProcess(ServerProcess):
    """A server process answering HTTP on ``127.0.0.1:port``; ready when ``ready_path`` says 200."""

    error: ClassVar[type[Exception]] = PromStackError
    ready_path: ClassVar[str] = "/-/ready"

    def __init__(self, log_file: Path, port: int | None = None) -> None:
        super().__init__(log_file)
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False


class Pushgateway(HttpServerProcess):
    """``prometheus-pushgateway``: tests push values to it that Prometheus scrapes (a gauge
    over a PromQL threshold), and opscheck's ``--pushgateway`` export pushes its results."""

    kind = "prometheus-pushgateway"

    def command(self) -> list[str]:
        # No persistence file: Debian's build saves every gateway's groups to one shared file
        # (/var/lib/prometheus/pushgateway.data), which each new one would load.
        listen = f"--web.listen-address=127.0.0.1:{self.port}"
        return ["prometheus-pushgateway", listen, "--persistence.file="]


class NodeExporter(HttpServerProcess):
    """``prometheus-node-exporter`` with its textfile collector reading ``textfile_dir`` (where
    opscheck's ``--textfile`` export writes), if given."""

    kind = "prometheus-node-exporter"
    ready_path = "/metrics"

    def __init__(
        self, log_file: Path, port: int | None = None, textfile_dir: Path | None = None
    ) -> None:
        super().__init__(log_file, port)
        self.textfile_dir = textfile_dir

    def command(self) -> list[str]:
        argv = ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{self.port}"]
        if self.textfile_dir is not None:
            argv.append(f"--collector.textfile.directory={self.textfile_dir}")
        return argv
