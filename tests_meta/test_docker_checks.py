"""Every Docker check against a real ``dockerd`` (``opscheck.testbed.docker``), healthy and really
broken: containers that run and pass their health check, and ones that fail it, restart, exit
non-zero, get OOM-killed or are missing; an engine that is not there. One engine per module
(~2 s to start); the containers are made once, each target picks its own by compose project.
A recording proxy between opscheck and dockerd proves the checks send GET requests only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed.docker import DockerEngine

DOCKER = ("suites/docker",)
CHECKS = 8  # tests in suites/docker per target
# A 4 MB shell string, kept: the loop stops ash from exec-ing sleep (which would free it).
HOLD_4MB = f"x=a; for i in {' 1' * 22}; do x=$x$x; done; while :; do sleep 3600; done"
# A busy loop under a 0.1 CPU limit uses all of it; idle containers ~0 %. The level is low (40 %)
# because this machine's 2 cores are shared with other suites: the loop may not get its whole
# tenth of a CPU in the one-second sample.
BUSY = "while :; do :; done"
# `docker system df` sees the whole engine: 2 MB of image and 2 MB of volume; `bad` is over 1 kB.
FILL_2MB = "head -c 2000000 /dev/zero > /data/f; while :; do sleep 3600; done"
THRESHOLDS = (
    "[docker.memory_used_pct]\nwarn = 15\ncrit = 20\n"
    "[docker.cpu_used_pct]\nwarn = 30\ncrit = 40\n"
    "[docker.images_size.targets.bad]\nwarn = 500\ncrit = 1000\n"
    "[docker.volumes_size.targets.bad]\nwarn = 500\ncrit = 1000\n"
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    with DockerEngine(tmp_path_factory.mktemp("dockerd")) as engine:
        engine.busybox_image()
        engine.compose_project(
            "good", {"web": {"health": "true", "memory": "64m"}, "api": {}, "migrate": {"code": 0}}
        )
        engine.compose_project(
            "bad",
            {
                "web": {"health": "false"},
                "worker": {"restart": "on-failure:3", "code": 3},
                "job": {"code": 7},
                # 4 MB held in 16 MB: above the test's 20 % crit level.
                "mem": {
                    "command": HOLD_4MB,
                    "memory": "16m",
                },
                "cpu": {"command": BUSY, "nano_cpus": 100_000_000},
                "fill": {"command": FILL_2MB, "volumes": {"bad-data": {"bind": "/data"}}},
            },
        )
        labels = {"com.docker.compose.project": "bad", "com.docker.compose.service": "hog"}
        engine.oom_killed("bad-hog-1", labels=labels)
        yield engine


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def targets(engine: DockerEngine, url: str | None = None) -> str:
    return engine.docker_block(
        "good", url, project="good", services=["web", "api"], timeout="5s", system_df=True
    ) + engine.docker_block(
        "bad",
        url,
        project="bad",
        services=["web", "worker", "job", "gone"],
        timeout="5s",
        system_df=True,
    )


def test_healthy_and_broken_containers(suite, engine):
    result = suite.run(targets(engine), THRESHOLDS, paths=DOCKER)
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}
    good = {n: o for n, o in outcome.items() if n.endswith("[good]")}
    assert good == dict.fromkeys(good, "passed"), {n: said(res[n]) for n in good}
    assert len(good) == CHECKS
    assert re.fullmatch(
        r"Docker Engine \d+\.\d+\.\d+\S* \(API 1\.\d+, linux/\w+\)",
        res["test_docker_reachable[good]"]["measured"],
    )
    assert res["test_expected_containers_running[good]"]["measured"] == (
        "2 expected containers running"  # services web and api; migrate is not asked for
    )
    assert res["test_containers_healthy[good]"]["measured"] == "1 container healthy"
    assert res["test_stopped_containers_exited_cleanly[good]"]["measured"] == (
        "1 stopped container exited 0"
    )
    assert re.fullmatch(
        r"good-web-1 \d\.\d % \(.+ of 67\.1 MB limit\)",
        res["test_container_memory_below_limit[good]"]["measured"],
    ), res["test_container_memory_below_limit[good]"]
    cpu = res["test_container_cpu_below_limit[good]"]["measured"]
    assert re.fullmatch(
        r"good-api-1 \d\.\d % of the host's \d+ CPUs, 0\.\d\d CPUs used; "
        r"good-web-1 \d\.\d % of the host's \d+ CPUs, 0\.\d\d CPUs used",
        cpu,
    ), cpu
    disk = res["test_docker_disk_use[good]"]["measured"]
    assert re.fullmatch(
        r"images 2\.0 MB in 1 image, 0 B reclaimable; volumes 2\.0 MB in 1 volume, 0 B "
        r"reclaimable; build cache 0 B in 0 build cache records, 0 B reclaimable",
        disk,
    ), disk

    bad = {n.split("[")[0]: o for n, o in outcome.items() if n.endswith("[bad]")}
    assert bad == {
        "test_docker_reachable": "passed",
        "test_expected_containers_running": "failed",
        "test_containers_healthy": "failed",
        "test_container_restarts": "warned",
        "test_stopped_containers_exited_cleanly": "failed",
        "test_container_memory_below_limit": "failed",
        "test_container_cpu_below_limit": "failed",
        "test_docker_disk_use": "failed",
    }, {n: said(r) for n, r in res.items()}
    running = said(res["test_expected_containers_running[bad]"])
    assert "missing: service gone" in running, running
    assert "bad-worker-1 exited (exit code 3)" in running, running
    assert "bad-job-1 exited (exit code 7)" in running, running
    assert "bad-web-1" not in running, running  # unhealthy, but running
    healthy = said(res["test_containers_healthy[bad]"])
    assert "bad-web-1 unhealthy (exit 1: (no output))" in healthy, healthy
    restarts = said(res["test_container_restarts[bad]"])
    assert "bad: bad-worker-1 no previous run on record: 3 restarts in all > warn 0" in restarts
    cpu = said(res["test_container_cpu_below_limit[bad]"])
    assert re.fullmatch(
        r"bad: bad-cpu-1 \d+\.\d % of its 0\.1 CPU limit \(--cpus\), 0\.\d\d CPUs used "
        r"> crit 40\.0 %",
        cpu,
    ), cpu
    disk = said(res["test_docker_disk_use[bad]"])
    assert disk == (
        "bad: images 2.0 MB in 1 image, 0 B reclaimable > crit 1.0 KB; "
        "bad: volumes 2.0 MB in 1 volume, 0 B reclaimable > crit 1.0 KB"
    ), disk
    assert res["test_docker_disk_use[bad]"]["detail"] == "volume bad-data 2.0 MB"
    exits = said(res["test_stopped_containers_exited_cleanly[bad]"])
    assert "3 of 3 stopped failed" in exits, exits
    assert "bad-hog-1 exited (exit code 137, OOMKilled)" in exits, exits
    memory = said(res["test_container_memory_below_limit[bad]"])
    assert re.fullmatch(
        r"bad: bad-mem-1 \d\d\.\d % \(.+ of 16\.8 MB limit\) > crit 20\.0 %", memory
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_engine_missing_is_unreachable_in_one_line(suite, tmp_path):
    inventory = (
        f'[[docker]]\nname = "gone"\nurl = "unix://{tmp_path}/no.sock"\ntimeout = "2s"\n'
        '[[docker]]\nname = "refused"\nurl = "tcp://127.0.0.1:1"\ntimeout = "2s"\n'
    )
    result = suite.run(inventory, "", paths=DOCKER)
    # Without a project or containers there is nothing expected to run, and `docker system df`
    # is not asked for: skipped, not unreachable.
    assert result.parseoutcomes() == {"failed": 2, "skipped": 4, "unreachable": 2 * (CHECKS - 3)}
    res = suite.results()
    for name in ("gone", "refused"):
        reason = res[f"test_docker_reachable[{name}]"]["reason"]
        assert reason.startswith(f"{name}: unreachable: ") and "\n" not in reason, reason
    assert "No such file or directory" in res["test_docker_reachable[gone]"]["reason"]
    assert "refused" in res["test_docker_reachable[refused]"]["reason"].lower()


def crash(engine: DockerEngine, name: str) -> None:
    """Kill the container's main process from outside (not `docker kill`, which docker counts as
    a stop): its restart policy starts it again, RestartCount + 1."""
    before = engine.state(name)
    os.kill(before["Pid"], signal.SIGKILL)
    engine.wait_for(
        name,
        "a restart",
        lambda s: s["RestartCount"] > before["RestartCount"] and s["Status"] == "running",
    )


def test_restarts_since_the_previous_run(suite, engine):
    """Restarts are counted against the newest archived report of the target: none on record
    (the total), two crashes since (WARN), none since (OK), one after it was recreated (its
    total: the count started again)."""
    engine.compose_project("flaky", {"app": {"restart": "on-failure"}, "calm": {}})
    inventory = engine.docker_block("flaky", project="flaky", timeout="5s")
    reports = suite.pytester.path / "archive"
    archive = ("--archive", "--reports-dir", str(reports), "-k", "restarts")
    test = "test_container_restarts[flaky]"

    suite.run(inventory, "", *archive, paths=DOCKER)
    first = suite.results()[test]
    assert first["outcome"] == "passed", first
    assert first["measured"] == (
        "flaky-app-1 no previous run on record: 0 restarts in all; "
        "flaky-calm-1 no previous run on record: 0 restarts in all"
    )
    (report,) = reports.glob("*/*.json")
    when = datetime.fromisoformat(json.loads(report.read_text())["started"])
    since = f"since the previous run ({when:%Y-%m-%d %H:%M} UTC)"

    crash(engine, "flaky-app-1")
    crash(engine, "flaky-app-1")
    suite.run(inventory, "", *archive, paths=DOCKER)
    second = suite.results()[test]
    assert second["outcome"] == "warned", second
    assert said(second) == f"flaky: flaky-app-1 2 restarts {since}, 2 in all > warn 0"
    assert re.fullmatch(
        # (the history store, which archived runs keep, may note the jump from 0 first)
        r"(jumped from 0 since the previous run \(0 -> 2 number\)\n)?"
        r"RestartCount 2 of container [0-9a-f]{12}; flaky-app-1 running, last started \S+; "
        r"`docker logs flaky-app-1` shows why",
        second["detail"],
    ), second["detail"]

    suite.run(inventory, "", *archive, paths=DOCKER)  # compared with the second run now
    third = suite.results()[test]
    assert third["outcome"] == "passed", third
    third_since = r"since the previous run \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\)"
    assert re.fullmatch(
        f"flaky-app-1 0 restarts {third_since}, 2 in all; "
        f"flaky-calm-1 0 restarts {third_since}, 0 in all",
        third["measured"],
    ), third

    # Recreated (docker rm + run: a new id, RestartCount from 0), then one crash.
    engine.client().containers.get("flaky-app-1").remove(force=True)
    engine.compose_project("flaky", {"app": {"restart": "on-failure"}})
    crash(engine, "flaky-app-1")
    suite.run(inventory, "", *archive, paths=DOCKER)
    fourth = suite.results()[test]
    assert fourth["outcome"] == "warned", fourth
    assert re.fullmatch(
        f"flaky: flaky-app-1 1 restart {third_since}: recreated, 1 restart in all > warn 0",
        said(fourth),
    ), said(fourth)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"url": "tcp://admin:hunter2@10.0.0.1:2376"}, "without user:password@"),
        ({"url": "http://10.0.0.1:2375"}, "expected a unix://, tcp:// or ssh:// URL"),
        ({"url": "unix://docker.sock"}, "expected a socket path"),
        ({"services": ["web"]}, "expected project with services"),
        ({"project": "shop", "services": ["web", "web"]}, "duplicate service 'web'"),
    ],
)
def test_inventory_mistakes_stop_the_run(suite, fields, error):
    url = fields.pop("url", "unix:///var/run/docker.sock")
    inventory = DockerEngine.docker_block(None, "d", url, **fields)  # type: ignore[arg-type]
    result = suite.run(inventory, "", paths=DOCKER)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error in result.stderr.str(), result.stderr.str()
    assert "hunter2" not in result.stderr.str()


# -- read-only: every request the checks send, recorded on the way to dockerd ------------------


class RecordingProxy:
    """A unix socket forwarding each connection to dockerd's, keeping what the client sent."""

    def __init__(self, path: Path, upstream: Path) -> None:
        self.path, self.upstream, self.sent = path, upstream, bytearray()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(str(self.upstream))
                threading.Thread(
                    target=self._pump, args=(client, upstream, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pump, args=(upstream, client, False), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if record:
                    self.sent += chunk
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def requests(self) -> list[tuple[str, str]]:
        lines = re.findall(rb"^([A-Z]+) (\S+) HTTP/1\.[01]\r$", bytes(self.sent), re.M)
        return [(m.decode(), p.decode().split("?")[0]) for m, p in lines]

    def close(self) -> None:
        self.server.close()


def test_checks_send_only_get_requests(suite, engine):
    proxy = RecordingProxy(engine.exec_root / "rec.sock", engine.socket_path)
    try:
        # the same targets through the proxy, and a [[logs]] source reading through one of them
        logs = '[[logs]]\nname = "weblog"\ndocker = { target = "bad", service = "web" }\n'
        logs += '[[logs.patterns]]\nname = "errors"\npreset = "errors"\n'
        inventory = targets(engine, f"unix://{proxy.path}") + logs
        suite.run(inventory, THRESHOLDS, paths=(*DOCKER, "suites/logs"))
    finally:
        proxy.close()
    sent = proxy.requests()
    assert {method for method, _ in sent} == {"GET"}, sent
    paths = {re.sub(r"/[0-9a-f]{64}/", "/<id>/", path) for _, path in sent}
    assert {re.sub(r"^/v1\.\d+", "", p) for p in paths} == {
        "/_ping",
        "/version",
        "/containers/json",
        "/containers/<id>/json",
        "/containers/<id>/stats",
        "/system/df",
        "/containers/<id>/logs",
    }, paths
    outcomes = {n: r["outcome"] for n, r in suite.results().items()}
    assert outcomes["test_log_source_present[weblog]"] == "passed"
    assert outcomes["test_container_restarts[bad]"] == "warned"  # the same checks, through it
