"""A real Prometheus (the Debian package) on a free loopback port, scraping what a test names.

    jobs = {"node": [exporter.url], "pushgateway": [gateway.url]}
    with Prometheus(tmp / "prom", jobs, honor_labels={"pushgateway"}) as prom:
        prom.wait_for_scrape()         # the first scrape lands ~5.7 s after start
        prom.query("up")               # [{"metric": {...}, "value": [t, "1"]}, ...]

Global scrape and evaluation interval 1 s, storage in ``directory``; rule files and an
``alerting.alertmanagers`` block written from the start (a later reload drops the first
notification: ../shared/notes/prometheus-docker-websocket.md). No ``--web.enable-lifecycle``
and no admin API: opscheck must manage with the read-only endpoints.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opscheck.testbed.promstack import HttpServerProcess, PromStackError

FIRST_SCRAPE = 10.0  # seconds to wait for it (measured ~5.7 s whatever the interval)


def _hosts(urls: Iterable[str]) -> list[str]:
    return [urlsplit(url).netloc for url in urls]


class Prometheus(HttpServerProcess):
    """``prometheus`` with a config written into ``directory`` (storage beside it).

    ``jobs``: job name -> the ``http://host:port`` URLs it scrapes (``/metrics``);
    ``honor_labels``: jobs whose own ``job``/``instance`` labels win (a Pushgateway);
    ``rules``: rule groups as Prometheus's rule file has them (``[{"name": …, "rules": […]}]``);
    ``alertmanagers``: Alertmanager URLs, in the config from the start.
    """

    kind = "prometheus"
    start_timeout = 20.0

    def __init__(
        self,
        directory: Path,
        jobs: Mapping[str, Iterable[str]],
        *,
        honor_labels: Iterable[str] = (),
        rules: list[dict[str, Any]] | None = None,
        alertmanagers: Iterable[str] = (),
        port: int | None = None,
    ) -> None:
        super().__init__(directory / "prometheus.log", port)
        self.directory = directory
        self.jobs = {name: list(urls) for name, urls in jobs.items()}
        self.honor_labels = set(honor_labels)
        self.rules = rules
        self.alertmanagers = list(alertmanagers)

    def config(self) -> dict[str, Any]:
        """The prometheus.yml this server runs with (JSON is YAML)."""
        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": name,
                    "honor_labels": name in self.honor_labels,
                    "static_configs": [{"targets": _hosts(urls)}],
                }
                for name, urls in self.jobs.items()
            ],
        }
        if self.rules is not None:
            config["rule_files"] = [str(self.directory / "rules.yml")]
        if self.alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": _hosts(self.alertmanagers)}]}]
            }
        return config

    def write_files(self) -> None:
        """Write prometheus.yml and the rule file as the settings now say (``reload`` reads
        them in a running server)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "prometheus.yml").write_text(json.dumps(self.config(), indent=1))
        if self.rules is not None:
            (self.directory / "rules.yml").write_text(json.dumps({"groups": self.rules}))

    def command(self) -> list[str]:
        self.write_files()
        return [
            "prometheus",
            f"--config.file={self.directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--rules.alert.resend-delay=1s",
        ]

    # -- reading it back, as a test does ---------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``'s ``data``; PromStackError with Prometheus's error."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as answer:
                document = json.load(answer)
        except urllib.error.HTTPError as exc:
            raise PromStackError(f"{path}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        return document["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's series)."""
        return list(self.api("query", query=promql)["result"])

    def wait_for(self, promql: str, timeout: float = FIRST_SCRAPE) -> list[dict[str, Any]]:
        """Poll ``promql`` until it returns a series; PromStackError if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(promql)
            if found:
                return found
            if time.monotonic() > deadline:
                raise PromStackError(f"{self}: {promql!r} returned nothing within {timeout:g} s")
            time.sleep(0.2)

    def reload(self) -> None:
        """SIGHUP: Prometheus reads its config and rule files again (no lifecycle API needed)."""
        assert self.process is not None, "start() the server first"
        self.process.send_signal(signal.SIGHUP)

    def wait_for_scrape(self, timeout: float = FIRST_SCRAPE) -> float:
        """Wait until every job has been scraped once (``up`` has a series per target); the
        seconds it took."""
        started = time.monotonic()
        wanted = sum(len(urls) for urls in self.jobs.values())
        while True:
            series = self.query("up")
            if len(series) >= wanted:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise PromStackError(
                    f"{self}: {len(series)} of {wanted} targets scraped after {timeout:g} s"
                )
            time.sleep(0.1)

    def prometheus_block(
        self,
        name: str,
        url: str | None = None,
        queries: Iterable[Mapping[str, object]] = (),
        **fields: object,
    ) -> str:
        """A ``[[prometheus]]`` inventory table for this server (or ``url``)."""
        return prometheus_block(name, url or self.url, queries, **fields)


def prometheus_block(
    name: str, url: str, queries: Iterable[Mapping[str, object]] = (), **fields: object
) -> str:
    """A ``[[prometheus]]`` inventory table, each of ``queries`` a ``[[prometheus.queries]]``
    table; ``None`` fields are left out."""
    lines = ["[[prometheus]]", f"name = {_toml(name)}", f"url = {_toml(url)}"]
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items() if value is not None]
    for query in queries:
        lines.append("[[prometheus.queries]]")
        lines += [f"{key} = {_toml(value)}" for key, value in query.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML's."""
    return json.dumps(value)
