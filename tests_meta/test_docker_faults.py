"""A Docker Engine reached through a ``[[host]]``'s ssh connection, and one that stops answering
mid-run, against a real dockerd and a real sshd.

``url = "ssh://web1"``: the host's one ssh master forwards a local unix socket to the daemon's
socket on the host; the checks then talk to it as to a local daemon, with no second ssh login.
A dockerd frozen (SIGSTOP) right after its connectivity check passed: the first check whose call
times out says it stopped answering, the others fail at once, the run costs about one timeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker as docker_sdk
import pytest
import requests

from opscheck.probes import docker as probes
from opscheck.testbed.docker import DockerEngine
from opscheck.testbed.sshd import Sshd
from tests_meta.test_docker_checks import CHECKS, DOCKER, said

TIMEOUT = 3.0
BOUND = 4 * TIMEOUT + 15  # generous: 2 cores, other suites running beside


def start_engine(directory: Path) -> DockerEngine:
    engine = DockerEngine(directory).start()
    engine.busybox_image()
    engine.compose_project(
        "shop", {"web": {"health": "true", "memory": "64m"}, "api": {}, "migrate": {"code": 0}}
    )
    return engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    engine = start_engine(tmp_path_factory.mktemp("dockerd"))
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def logins(sshd: Sshd) -> int:
    return sshd.output().count("Accepted publickey for ")


def test_docker_through_the_hosts_ssh_connection(suite, engine, sshd):
    """Every check through the host's one master (one login for the host and both targets);
    a socket that is not there on the host is the target's one-line unreachable error."""
    inventory = (
        sshd.host_block("web1", timeout="5s")
        + engine.docker_block(
            "shop",
            "ssh://web1",
            socket=str(engine.socket_path),
            project="shop",
            services=["web", "api"],
            timeout="5s",
        )
        + engine.docker_block(
            "nosock", "ssh://web1", socket="/run/no-such/docker.sock", timeout="5s"
        )
    )
    before = logins(sshd)
    result = suite.run(inventory, "", paths=(*DOCKER, "suites/host/test_connectivity.py"))
    res = suite.results()
    assert logins(sshd) - before == 1, sshd.output()[-2000:]
    shop = {n: r["outcome"] for n, r in res.items() if n.endswith("[shop]")}
    assert len(shop) == CHECKS
    assert shop == {
        **dict.fromkeys(shop, "passed"),
        "test_docker_disk_use[shop]": "skipped",  # system_df is opt-in
    }, {n: said(res[n]) for n in shop}
    assert re.fullmatch(
        r"Docker Engine \d+\.\d+\.\d+\S* \(API 1\.\d+, linux/\w+\)",
        res["test_docker_reachable[shop]"]["measured"],
    )
    assert res["test_expected_containers_running[shop]"]["measured"] == (
        "2 expected containers running"
    )
    reason = said(res["test_docker_reachable[nosock]"])
    assert reason.startswith(
        "nosock: unreachable: ssh://web1 (/run/no-such/docker.sock): DockerException: "
    ), reason
    # ssh accepts the forwarded connection, then drops it: a reset or a close, as timing has it
    assert re.search(
        r"(Connection reset by peer|Remote end closed connection without response)'\)\); "
        r"is the socket there on web1, readable by the ssh user, and AllowStreamLocalForwarding "
        r"on\?$",
        reason,
    ), reason
    assert "\n" not in reason
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_ssh_url_to_a_host_that_is_down(suite, engine, tmp_path):
    """The host cannot be reached: the docker target's checks point to the host's error."""
    inventory = (
        '[[host]]\nname = "web1"\nuri = "ssh://root@127.0.0.1:1"\ntimeout = "2s"\n'
        + engine.docker_block("shop", "ssh://web1", project="shop", timeout="2s")
    )
    suite.run(inventory, "", paths=DOCKER)
    res = suite.results()
    reason = said(res["test_docker_reachable[shop]"])
    assert reason.startswith("web1: unreachable"), reason
    assert "Connection refused" in reason or "refused" in reason.lower(), reason


@pytest.mark.parametrize("concurrency", ["16", "1"], ids=["measured ahead", "in the test"])
def test_dockerd_frozen_mid_run_costs_one_timeout(suite, tmp_path, monkeypatch, concurrency):
    """dockerd stopped (SIGSTOP) once ``/_ping`` answered: the check that notices says it stopped
    answering, the others fail at once pointing to it, the run is bounded by one timeout."""
    engine = start_engine(tmp_path / "frozen")
    try:
        reachable = probes.reachable

        def reachable_then_freeze(client: Any) -> Any:
            measured = reachable(client)
            engine.pause()
            return measured

        monkeypatch.setattr(probes, "reachable", reachable_then_freeze)
        inventory = f'[settings]\ntimeout = "{TIMEOUT:g}s"\n\n' + engine.docker_block(
            "shop", project="shop", services=["web", "api"], system_df=True
        )
        started = time.perf_counter()
        result = suite.run(inventory, "", "--concurrency", concurrency, paths=DOCKER)
        elapsed = time.perf_counter() - started
    finally:
        engine.stop()
    res = suite.results()
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert res["test_docker_reachable[shop]"]["outcome"] == "passed"
    rest = {t: r for t, r in res.items() if "reachable" not in t}
    assert len(rest) == CHECKS - 1
    outcomes = {r["outcome"] for r in rest.values()}
    assert outcomes == {"failed", "not_run"}, {t: said(r) for t, r in res.items()}
    noticed = [t for t, r in rest.items() if "stopped answering mid-run" in said(r)]
    assert len(noticed) == 1, [said(r) for r in rest.values()]
    timeout = re.escape(f"Read timed out. (read timeout={TIMEOUT})")
    assert re.fullmatch(
        rf"shop: stopped answering mid-run: GET /\S+: ReadTimeout: .*{timeout}",
        said(rest[noticed[0]]),
    ), said(rest[noticed[0]])
    for test, r in rest.items():
        if test != noticed[0]:
            assert r["outcome"] == "not_run", said(r)
            assert said(r) == f"not run: shop unreachable (see {noticed[0]})", said(r)
        assert r["duration"] < TIMEOUT + 4, (test, r["duration"])
    assert result.parseoutcomes()["unreachable"] == CHECKS - 2


def test_only_a_timeout_or_a_broken_connection_means_stopped_answering():
    """The ``[[docker]]`` classifier: an API error (a 404, a 500) is the check's own failure."""
    assert probes.lost(requests.ReadTimeout("Read timed out.")) == "ReadTimeout: Read timed out."
    assert probes.lost(requests.ConnectionError("Connection aborted.")) == (
        "ConnectionError: Connection aborted."
    )
    response = requests.Response()
    response.status_code = 404
    for own in (docker_sdk.errors.NotFound("no such container", response), ValueError("x")):
        assert probes.lost(own) is None, own
