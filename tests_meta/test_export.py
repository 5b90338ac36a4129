"""opscheck's results as metrics (opscheck.export), read back from the real servers.

The host checks of this machine (``local://``) with thresholds forcing each verdict, as in
test_reports: any memory use is above ``warn = "0%"`` (WARN), any used disk above ``crit = "0%"``
(CRIT), the host answering is OK. The run pushes to a real Pushgateway and writes a textfile a
real node_exporter serves; both ``/metrics`` are parsed with prometheus_client's parser and
compared with the JSON report's records.
"""

from __future__ import annotations

import base64
import http.server
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opscheck import export
from opscheck.testbed import CALM_HOST_THRESHOLDS, free_port
from opscheck.testbed.http import HttpTestbed
from opscheck.testbed.promstack import NodeExporter, Pushgateway

REPO = Path(__file__).resolve().parents[1]
HOST = ("suites/host",)
HTTP = ("suites/http",)
INVENTORY = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
THRESHOLDS = (
    '[host.memory_used_pct]\nwarn = "0%"\n\n[host.disk_used_pct]\nwarn = "0%"\ncrit = "0%"\n'
)
OK_WARN_CRIT = ("-k", "host_reachable or memory_used or disk_used")
USER, PASSWORD = "opscheck", "pgw-Pa55-9xQ"
# bcrypt of PASSWORD (cost 4, quick to check), for the gateway's --web.config.file
PASSWORD_BCRYPT = "$2b$04$K7IUvVeuzsjFrSvTxcpa0e8KdfocVtFDLxAnCUWj56Vjuo4eAe3W2"
TOKEN = "tok-Ex9pOrt4Zq"

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Pushgateway]:
    """A fresh Pushgateway per test: every test sees only its own pushes."""
    with Pushgateway(tmp_path / "pushgateway.log") as server:
        yield server


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[str, Series]:
    """``url``'s ``/metrics``: its text, and its ``opscheck_*`` samples by (name, labels)."""
    request = urllib.request.Request(url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    series = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("opscheck_")
    }
    return text, series


def of(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return {k: v for (n, k), v in series.items() if n == name and wanted <= k}


def records(suite: Any) -> list[dict[str, Any]]:
    return [r for t in suite.results().values() for r in t.get("records", [])]


def by_record(series: Series, name: str) -> dict[tuple[str, str, str], float]:
    """``name``'s samples by (check, target, subject)."""
    return {
        (d["check"], d["target"], d["subject"]): v
        for k, v in of(series, name).items()
        if (d := dict(k))
    }


def expected(suite: Any) -> tuple[dict[tuple[str, str, str], float], dict[Any, float]]:
    """(values, verdicts) by (check, target, subject), from the JSON report's records."""
    values, verdicts = {}, {}
    for r in records(suite):
        key = (r["check"], r["target"], r["subject"])
        verdicts[key] = float(export.VERDICTS[r["verdict"]])
        if r["value"] is not None:
            values[key] = r["value"]
    return values, verdicts


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


# -- the Pushgateway ---------------------------------------------------------------------------


def test_pushed_values_and_verdicts_match_the_json_records(suite, gateway):
    started = time.time()
    result = suite.run(
        INVENTORY, THRESHOLDS, *OK_WARN_CRIT, "--pushgateway", gateway.url, paths=HOST
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the CRIT, as without the export
    assert f"opscheck: pushed the results to {gateway.url}" in output(result)
    _, series = scrape(gateway.url)
    values, verdicts = expected(suite)
    assert len(verdicts) >= 3 and set(verdicts.values()) == {0.0, 1.0, 2.0}
    assert by_record(series, "opscheck_check_verdict") == verdicts
    assert by_record(series, "opscheck_check_value") == pytest.approx(values)
    # One group: job opscheck, the schedule (no -m: all); the labels are the record's and the key.
    for labels in of(series, "opscheck_check_verdict"):
        assert {k for k, _ in labels} == {
            "check",
            "target",
            "subject",
            "job",
            "schedule",
            "instance",
        }
        assert ("job", "opscheck") in labels and ("schedule", "all") in labels
    counts = {dict(k)["verdict"]: v for k, v in of(series, "opscheck_run_checks").items()}
    assert counts == {
        "ok": 1, "warn": 1, "crit": 1, "flaky": 0, "waived": 0, "failed": 0, "error": 0,
        "not_run": 0, "skipped": 0,
    }  # fmt: skip
    (stamp,) = of(series, "opscheck_run_timestamp_seconds").values()
    assert started < stamp < time.time()
    (took,) = of(series, "opscheck_run_duration_seconds").values()
    assert 0 < took < time.time() - started


def test_a_push_replaces_the_group_with_the_latest_run(suite, gateway):
    """PUT, not POST: what the latest run could not measure is gone, not kept at its old value
    (a POST replaces only the metric names it carries, and a run whose host went down has no
    opscheck_check_value nor opscheck_check_verdict to carry)."""
    suite.run(INVENTORY, THRESHOLDS, *OK_WARN_CRIT, "--pushgateway", gateway.url, paths=HOST)
    _, first = scrape(gateway.url)
    assert {k[0] for k in by_record(first, "opscheck_check_verdict")} >= {
        "host.reachable",
        "host.disk_used_pct",
    }
    with socket.socket() as nothing:  # a port nothing listens on: the host is down
        nothing.bind(("127.0.0.1", 0))
        down = f'[[host]]\nname = "me"\nuri = "ssh://root@127.0.0.1:{nothing.getsockname()[1]}"\n'
        result = suite.run(
            down, THRESHOLDS, *OK_WARN_CRIT, "--pushgateway", gateway.url, paths=HOST
        )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    _, second = scrape(gateway.url)
    assert by_record(second, "opscheck_check_verdict") == {}
    assert by_record(second, "opscheck_check_value") == {}
    counts = {dict(k)["verdict"]: v for k, v in of(second, "opscheck_run_checks").items()}
    # The host down: its connectivity check failed, its other two checks were not run.
    assert (counts["failed"], counts["not_run"], counts["ok"], counts["crit"]) == (1, 2, 0, 0)


def test_settings_pushgateway_and_shard_in_the_grouping_key(suite, gateway):
    inventory = f'[settings]\npushgateway = "{gateway.url}/"\n\n{INVENTORY}'
    suite.run(inventory, CALM_HOST_THRESHOLDS, "-k", "host_reachable", "--shard", "0/1", paths=HOST)
    _, series = scrape(gateway.url)
    (labels,) = of(series, "opscheck_check_verdict")
    assert ("shard", "0/1") in labels and ("schedule", "all") in labels


def test_gateway_down_is_one_warning_line_and_changes_nothing_else(suite):
    dead = f"http://127.0.0.1:{free_port()}"
    result = suite.run(
        INVENTORY, CALM_HOST_THRESHOLDS, "-k", "host_reachable", "--pushgateway", dead, paths=HOST
    )
    assert result.ret == pytest.ExitCode.OK  # a green run stays green
    lines = [line for line in output(result).splitlines() if "could not push" in line]
    assert lines == [
        f"opscheck: WARNING: could not push the results to {dead}: [Errno 111] Connection refused"
    ]
    assert "Traceback" not in output(result)
    assert suite.results()["test_host_reachable[me]"]["outcome"] == "passed"  # report written


def test_gateway_that_never_answers_waits_for_the_timeout_only(suite, monkeypatch):
    monkeypatch.setattr(export, "TIMEOUT", 1.0)
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.perf_counter()
        result = suite.run(
            INVENTORY,
            CALM_HOST_THRESHOLDS,
            "-k",
            "host_reachable",
            "--pushgateway",
            url,
            paths=HOST,
        )
        took = time.perf_counter() - started
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"opscheck: WARNING: could not push the results to {url}: *"])
    assert re.search(r"could not push .*: (timed out|.*[Tt]imeout)", output(result))
    assert took < 15


class AuthPushgateway(Pushgateway):
    """A Pushgateway that takes basic auth only (its exporter-toolkit web config)."""

    headers: ClassVar[dict[str, str]] = {
        "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    }

    def command(self) -> list[str]:
        config = self.log_file.with_suffix(".web.yml")
        config.write_text(f'basic_auth_users:\n  {USER}: "{PASSWORD_BCRYPT}"\n')
        return [*super().command(), f"--web.config.file={config}"]

    def ready(self) -> bool:
        try:
            scrape(self.url, self.headers)
        except OSError:
            return False
        return True


def test_basic_auth_from_the_environment(suite, tmp_path, monkeypatch):
    with AuthPushgateway(tmp_path / "pushgateway.log") as server:
        args = ("-k", "host_reachable", "--pushgateway", server.url)
        refused = suite.run(INVENTORY, CALM_HOST_THRESHOLDS, *args, paths=HOST)
        warning = f"opscheck: WARNING: could not push the results to {server.url}: HTTP 401"
        assert f"{warning} Unauthorized\n" in output(refused)
        assert refused.ret == pytest.ExitCode.OK
        monkeypatch.setenv(export.USERNAME_ENV, USER)
        monkeypatch.setenv(export.PASSWORD_ENV, PASSWORD)
        result = suite.run(INVENTORY, CALM_HOST_THRESHOLDS, *args, paths=HOST)
        assert f"opscheck: pushed the results to {server.url}" in output(result)
        _, series = scrape(server.url, AuthPushgateway.headers)
        assert by_record(series, "opscheck_check_verdict") == {("host.reachable", "me", ""): 0}


@pytest.mark.parametrize(
    ("where", "url", "said"),
    [
        (
            "--pushgateway",
            "http://opscheck:hunter2@gw:9091",
            "without user:password@ (set $OPSCHECK",
        ),
        ("--pushgateway", "gw:9091", "expected an http:// or https:// URL"),
        ("settings", "ftp://gw:9091", "expected an http:// or https:// URL"),
    ],
)
def test_pushgateway_url_refused_at_start(suite, where, url, said):
    inventory = (
        f'[settings]\npushgateway = "{url}"\n\n{INVENTORY}' if where == "settings" else INVENTORY
    )
    args = ("--pushgateway", url) if where != "settings" else ()
    result = suite.run(inventory, "", *args, paths=HOST)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said in output(result) and "hunter2" not in output(result)


# -- the textfile, through node_exporter -------------------------------------------------------


def test_textfile_read_back_through_node_exporter(suite, tmp_path):
    folder = tmp_path / "textfile"
    folder.mkdir()
    path = folder / "opscheck.prom"
    with NodeExporter(tmp_path / "node_exporter.log", textfile_dir=folder) as exporter:
        result = suite.run(
            INVENTORY, THRESHOLDS, *OK_WARN_CRIT, "--textfile", str(path), "--shard", "0/1",
            paths=HOST,
        )  # fmt: skip
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        assert f"opscheck: wrote the results as metrics to {path}" in output(result)
        text, series = scrape(exporter.url)
    assert [p.name for p in folder.iterdir()] == ["opscheck.prom"]  # no temporary file left
    assert re.search(r"^node_textfile_scrape_error 0$", text, re.M)
    values, verdicts = expected(suite)
    assert by_record(series, "opscheck_check_verdict") == verdicts
    assert by_record(series, "opscheck_check_value") == pytest.approx(values)
    for labels in of(series, "opscheck_check_verdict"):  # the push group's labels, as labels
        assert ("schedule", "all") in labels and ("shard", "0/1") in labels
    counts = {dict(k)["verdict"]: v for k, v in of(series, "opscheck_run_checks").items()}
    assert (counts["ok"], counts["warn"], counts["crit"]) == (1, 1, 1)


def test_textfile_refused_unless_prom_in_an_existing_folder(suite, tmp_path):
    for given, said in [
        (tmp_path / "opscheck.txt", "expected a file name ending in .prom"),
        (tmp_path / "gone" / "opscheck.prom", "no such directory"),
    ]:
        result = suite.run(INVENTORY, "", "--textfile", str(given), paths=HOST)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"--textfile: {given}: {said}" in output(result)


def test_textfile_write_failing_is_a_warning_and_the_reports_are_written(suite, tmp_path):
    path = tmp_path / "opscheck.prom"
    path.mkdir()  # a folder in its way: the rename over it fails (root, too, cannot do it)
    result = suite.run(
        INVENTORY, CALM_HOST_THRESHOLDS, "-k", "host_reachable", "--textfile", str(path),
        paths=HOST,
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    lines = [line for line in output(result).splitlines() if "could not write" in line]
    assert lines == [
        f"opscheck: WARNING: could not write the results as metrics to {path}: "
        f"[Errno 21] Is a directory: '{path}.prom'"
    ] or lines[0].startswith(
        f"opscheck: WARNING: could not write the results as metrics to {path}: "
    )
    assert len(lines) == 1 and "Traceback" not in output(result)
    assert suite.results()["test_host_reachable[me]"]["outcome"] == "passed"
    assert [p.name for p in tmp_path.glob("opscheck.prom*")] == ["opscheck.prom"]  # no temp file


# -- secrets -----------------------------------------------------------------------------------


def test_no_secret_in_the_exported_metrics(suite, gateway, tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", TOKEN)
    path = tmp_path / "opscheck.prom"
    with HttpTestbed(token=TOKEN) as web:
        inventory = "".join(
            f'[[http]]\nname = "{name}"\nurl = "{url}"\n'
            'headers = { Authorization = "Bearer ${API_TOKEN}" }\n'
            "json_limits = { connections = { warn = 10 } }\n\n"
            for name, url in [
                ("api", web.url("http", "/health?token=${API_TOKEN}")),
                ("leaky", web.url("http", "/error?token=${API_TOKEN}")),
            ]
        )
        result = suite.run(
            inventory, "", "--pushgateway", gateway.url, "--textfile", str(path), paths=HTTP
        )
    assert "pushed the results" in output(result)
    text, series = scrape(gateway.url)
    assert of(series, "opscheck_check_verdict")  # the records are there...
    assert TOKEN not in text and TOKEN not in path.read_text()  # ...the token is not


# -- xdist -------------------------------------------------------------------------------------


def test_under_xdist_only_the_controller_pushes_the_whole_run(suite, gateway):
    """Workers hold a part of the run each: a push of theirs would be a partial group (the
    gateway counts the pushes it took)."""
    suite.pytester.path.joinpath("inventory.toml").write_text(INVENTORY)
    suite.pytester.path.joinpath("thresholds.toml").write_text(THRESHOLDS)
    result = suite.pytester.runpytest_subprocess(
        "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO),
        "--inventory", "inventory.toml", "--thresholds", "thresholds.toml",
        "-n", "2", *OK_WARN_CRIT, "--pushgateway", gateway.url, str(REPO / "suites/host"),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text, series = scrape(gateway.url)
    pushes = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "pushgateway_http_requests_total" and s.labels.get("handler") == "push"
    ]
    assert sum(pushes) == 1
    counts = {dict(k)["verdict"]: v for k, v in of(series, "opscheck_run_checks").items()}
    assert (counts["ok"], counts["warn"], counts["crit"]) == (1, 1, 1)


def test_an_interrupted_run_exports_nothing(suite, gateway, tmp_path):
    """A collection error interrupts the run: the gateway keeps the last whole run's group."""
    suite.run(
        INVENTORY,
        CALM_HOST_THRESHOLDS,
        "-k",
        "host_reachable",
        "--pushgateway",
        gateway.url,
        paths=HOST,
    )
    broken = tmp_path / "test_broken.py"
    broken.write_text("def test_x(:\n")
    textfile = tmp_path / "opscheck.prom"
    result = suite.run(
        INVENTORY, CALM_HOST_THRESHOLDS, "--pushgateway", gateway.url, "--textfile", str(textfile),
        paths=(*HOST, str(broken)),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "opscheck: WARNING: the run interrupted: its results were not exported" in output(result)
    _, series = scrape(gateway.url)
    assert by_record(series, "opscheck_check_verdict") == {("host.reachable", "me", ""): 0}
    assert not textfile.exists()


def test_bearer_token_from_the_environment(suite, monkeypatch):
    """A gateway behind a proxy that wants a bearer token: a real HTTP server that records the
    header (the Pushgateway itself takes basic auth only)."""
    seen: list[tuple[str, str, str]] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.command, self.path, self.headers.get("Authorization", "")))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    monkeypatch.setenv(export.TOKEN_ENV, TOKEN)
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gateway) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            result = suite.run(
                INVENTORY, CALM_HOST_THRESHOLDS, "-k", "host_reachable", "--pushgateway", url,
                "-m", "morning", paths=HOST,
            )  # fmt: skip
        finally:
            server.shutdown()
    assert f"opscheck: pushed the results to {url}" in output(result)
    assert seen == [("PUT", "/metrics/job/opscheck/schedule/morning", f"Bearer {TOKEN}")]
    assert TOKEN not in output(result)
