"""Run opscheck's suites as users run them: pytester, a generated inventory, real services."""

from __future__ import annotations

import importlib
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opscheck.measure import IMPORTS
from opscheck.testbed.http import HttpTestbed


@pytest.fixture(scope="session", autouse=True)
def _libraries_imported_once() -> None:
    """pytester's in-process runs restore sys.modules afterwards: a library first imported
    inside one run is imported anew by the next, while modules that stay keep the old classes
    (requests then fails with "You can only merge into CookieJar", cryptography with
    "Unsupported GeneralName type"). Imported before any run, they stay for every run. (A
    fixture, not module code: a misrooted `pytest` run in the checkout loads this conftest too.)
    """
    # numpy (under matplotlib: the report's trend plots) refuses outright to be imported twice.
    extra = {"boto3", "matplotlib.figure", "matplotlib.dates", "matplotlib.backends.backend_svg"}
    for module in {name for names in IMPORTS.values() for name in names} | extra:
        importlib.import_module(module)


pytest_plugins = ["pytester"]

# Modules that use the `kube_cluster` fixture: under `-n N` one worker runs them all, first, so
# the session starts one cluster (~20 s, ~0.8 GB), not one per worker. (xdist's own
# `--dist loadgroup` does nothing under pytest 9: see opscheck/xdist_target.py.)
ONE_CLUSTER = ("test_kubernetes_", "test_demo_containers.py", "test_logs_containers.py")


def _on_the_cluster(nodeid: str) -> bool:
    module = nodeid.split("::")[0].rsplit("/", 1)[-1]
    return module.startswith(ONE_CLUSTER)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not _on_the_cluster(item.nodeid))  # stable: the rest in order


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class OneCluster(LoadScopeScheduling):
        """Every test its own unit of work, as ``--dist load``, but the cluster's as one."""

        def _split_scope(self, nodeid: str) -> str:
            return "kubernetes" if _on_the_cluster(nodeid) else nodeid

    return OneCluster(config, log)


REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "opscheck" / "schema" / "report.schema.json").read_text())


def validate_reports(folder: Path) -> int:
    """Validate every JSON report under ``folder`` against the documented schema; how many."""
    import jsonschema

    checked = 0
    for path in folder.rglob("*.json"):
        document = json.loads(path.read_text())
        if isinstance(document, dict) and "tests" in document:
            jsonschema.validate(document, SCHEMA)
            checked += 1
    return checked


class Suite:
    """``suite.run(inventory, thresholds, *args)`` runs ``suites/`` with those files in-process."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.json_path = pytester.path / "results.json"

    def run(
        self, inventory: str, thresholds: str = "", *args: str, paths: tuple[str, ...] = ("suites",)
    ) -> pytest.RunResult:
        inv = self.pytester.path / "inventory.toml"
        thr = self.pytester.path / "thresholds.toml"
        inv.write_text(textwrap.dedent(inventory))
        thr.write_text(textwrap.dedent(thresholds))
        self.json_path.unlink(missing_ok=True)
        result = self.pytester.runpytest_inprocess(
            "-c",
            str(REPO / "pytest.ini"),
            "--rootdir",
            str(REPO),
            "--inventory",
            str(inv),
            "--thresholds",
            str(thr),
            "--json-report",
            str(self.json_path),
            "-p",
            "no:xdist",
            *args,
            *(str(REPO / p) for p in paths),
        )
        validate_reports(self.pytester.path)  # every report the tests produce follows the schema
        return result

    def run_timed(
        self, inventory: str, first: str, *args: str, paths: tuple[str, ...] = ("suites",)
    ) -> tuple[pytest.RunResult, dict[str, dict[str, Any]], float]:
        """A fault test's run: its result, JSON results and wall time, with the JUnit and HTML
        reports written too (each asserted to hold ``first``, the run's first test)."""
        junit, html = self.pytester.path / "junit.xml", self.pytester.path / "report.html"
        started = time.perf_counter()
        reports = (f"--junitxml={junit}", f"--html={html}")
        result = self.run(inventory, "", *reports, *args, paths=paths)
        elapsed = time.perf_counter() - started
        for report in (junit, html):
            assert first in report.read_text(), f"{report.name} not written"
        return result, self.results(), elapsed

    def results(self) -> dict[str, dict[str, Any]]:
        """The JSON results of the last run, by test name with its id (``test_x[target]``)."""
        document = json.loads(self.json_path.read_text())
        return {t["id"].split("::")[-1]: t for t in document["tests"]}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Suite:
    return Suite(pytester)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Kubernetes 1.20.2 per test session (opscheck.testbed.kubernetes.Cluster), node
    Ready, deploy/kubernetes RBAC applied: ``.opscheck_kubeconfig`` is the opscheck
    ServiceAccount's, ``.kubectl(...)`` runs as admin. Modules using it are named in
    ``ONE_CLUSTER`` so one worker runs them all on one cluster."""
    from opscheck.testbed.kubernetes import Cluster, default_bin_dir

    if not (default_bin_dir() / ".complete").is_file():
        pytest.fail(
            f"no Kubernetes build in {default_bin_dir()}: run `make setup` "
            "(scripts/build-kubernetes.sh, ~8 min once per machine)",
            pytrace=False,
        )
    cluster = Cluster(tmp_path_factory.mktemp("k8s")).start()
    try:
        cluster.wait_node_ready(timeout=120)
        cluster.install_rbac()
        yield cluster
    finally:
        cluster.stop()


# -- a CRIT that recovers (the FLAKY tests of test_junit.py and test_nagios.py) ------------------


class _OddFails(BaseHTTPRequestHandler):
    """500 to the first request of each pair, 200 to the second: a CRIT that recovers."""

    count = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            type(self).count += 1
            status = 500 if self.count % 2 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    """A real HTTP server whose every first request of a pair fails: its URL."""
    handler = type("OddFails", (_OddFails,), {"count": 0})  # its own count, from 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# -- the HTTP testbed and an [[http]] target, as most modules use them ---------------------------


@pytest.fixture(scope="module")
def web() -> Iterator[HttpTestbed]:
    """The testbed's HTTP(S) servers (opscheck/testbed/http.py), once per module."""
    with HttpTestbed() as bed:
        yield bed


def http_block(name: str, url: str, extra: str = "") -> str:
    """An ``[[http]]`` target of the inventory, with ``extra`` lines of keys."""
    return f'[[http]]\nname = "{name}"\nurl = "{url}"\n{extra}\n'


# -- opscheck-merge, in this process --------------------------------------------------------------


@dataclass
class Merging:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def merge(capsys: pytest.CaptureFixture[str]) -> Callable[..., Merging]:
    """``opscheck-merge ARGS`` in this process (the console script itself: see test_shard's CI
    test)."""
    from opscheck import merge as merging

    def run(*args: Path | str) -> Merging:
        capsys.readouterr()
        code = merging.run([str(a) for a in args])
        said = capsys.readouterr()
        return Merging(code, said.out, said.err)

    return run
