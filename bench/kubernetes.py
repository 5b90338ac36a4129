"""The Kubernetes morning checks on the testbed cluster against the runbook's kubectl lines, and
how many API requests a run sends.

    .venv/bin/python bench/kubernetes.py [--runs 5]

Starts the real testbed cluster (``opscheck.testbed.kubernetes.Cluster``: Kubernetes 1.20.2 on
loopback, the cached build of scripts/build-kubernetes.sh) with the demo's namespace
(``opscheck.testbed.demo_containers``: Deployment ``api`` x2 behind a Service, Deployment
``worker`` restarted once), then times whole processes, one of each per round so that a busy
machine slows every side alike, after one untimed warm-up run of each:
- ``pytest -m morning suites/kubernetes`` on one ``[[kubernetes]]`` target (namespace ``demo``),
  as the opscheck ServiceAccount of deploy/kubernetes: every check judged and recorded, a JSON
  report written;
- the runbook's morning kubectl lines (``kubectl get nodes``, ``get pods``/``services``/
  ``deployments -n``, ``rollout status`` of both deployments, ``top nodes``/``pods``), one
  process after the other, as an admin, judging nothing. ``kubectl top`` fails fast here (no
  metrics-server; opscheck's resource checks skip as fast); ``kubectl logs … | grep`` and
  ``exec … df`` are [[logs]] and opt-in checks, left out of both sides.
Then one more run of each, counted: opscheck's API requests (``Kube._request`` wrapped by a
plugin of that run only), grouped by path, to show one list request per resource kind per run
(not per check); kubectl's from its ``-v=6`` request log. Prints a Markdown table (wall time
best and median, CPU median) and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _timing import interleaved, with_plugin

from opscheck.testbed.demo_containers import NAMESPACE, containers_inventory, manifests, settle
from opscheck.testbed.kubernetes import Cluster

OPSCHECK = "opscheck `pytest -m morning suites/kubernetes`, one target, judged + recorded"
LINES = "runbook kubectl lines, one process each, unjudged"
KUBECTL_LINES = [
    "get nodes",
    f"get pods -n {NAMESPACE}",
    f"get services -n {NAMESPACE}",
    f"get deployments -n {NAMESPACE}",
    f"rollout status deployment/api -n {NAMESPACE}",
    f"rollout status deployment/worker -n {NAMESPACE}",
    "top nodes",
    f"top pods -n {NAMESPACE}",
]
# Counts the API requests of the counted run (a plugin of that run only, not of the timed ones).
_COUNTER = """\
from collections import Counter

from opscheck.probes.kubernetes import Kube

SENT = Counter()
_request = Kube._request


def _counted(self, path, params):
    SENT[path] += 1
    return _request(self, path, params)


Kube._request = _counted


def pytest_unconfigure(config):
    for path, count in sorted(SENT.items()):
        print(f"api-request {count} {path}")
"""


def api_requests(command: list[str], env: dict[str, str]) -> Counter[str]:
    """The API paths one opscheck run requests, with how often."""
    stdout = with_plugin(command, env, "opscheck_bench_kube_counter", _COUNTER)
    found: Counter[str] = Counter()
    for line in stdout.splitlines():
        if line.startswith("api-request "):
            _, count, path = line.split(" ", 2)
            found[path] += int(count)
    return found


def kubectl_requests(kubectl: list[str], env: dict[str, str]) -> Counter[str]:
    """The requests the runbook lines send (kubectl ``-v=6`` logs each one), by method + path."""
    found: Counter[str] = Counter()
    for line in KUBECTL_LINES:
        done = subprocess.run(
            [*kubectl, "-v=6", *line.split()], capture_output=True, text=True, env=env
        )
        for match in re.finditer(r"\] (GET|POST|PUT|PATCH) https://[^/]+(/\S*)", done.stderr):
            found[f"{match[1]} {match[2].split('?')[0]}"] += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Cluster(Path(tmp) / "kubernetes") as cluster:
        kubeconfig = cluster.install_rbac()
        ready = cluster.wait_node_ready()
        cluster.apply(*manifests())
        settle(cluster)
        print(
            f"cluster: node Ready after {ready:.1f} s, namespace {NAMESPACE} settled",
            file=sys.stderr,
        )
        inventory = Path(tmp) / "inventory.toml"
        # the [[kubernetes]] table of the demo; its [[docker]] table is cut off
        inventory.write_text(containers_inventory(kubeconfig, "unix:///").split("[[docker]]")[0])
        report = Path(tmp) / "report.json"
        env = {**os.environ, "HOME": tmp}  # kubectl's discovery cache: warmed once, then kept
        pytest = [sys.executable, "-m", "pytest", "-q", "-m", "morning", "suites/kubernetes"]
        pytest += ["--inventory", str(inventory), "--json-report", str(report)]
        kubectl = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.admin_kubeconfig}"]
        script = "\n".join(
            " ".join([*kubectl, line]) + " >/dev/null 2>&1" for line in KUBECTL_LINES
        )
        commands = {OPSCHECK: pytest, LINES: ["bash", "-c", script]}
        times = interleaved(commands, args.runs, env, warm_up=True)
        sent = api_requests(pytest, env)
        theirs = kubectl_requests(kubectl, env)
        verdicts = Counter(t.get("verdict") or t["outcome"] for t in _tests(report))
    print("| what | runs | best | median | CPU (median) |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in times.items():
        print(
            f"| {name} | {len(wall)} | {min(wall):.2f} s | {statistics.median(wall):.2f} s "
            f"| {statistics.median(cpu):.2f} s |"
        )
    ours, lines = (statistics.median(times[n][0]) for n in (OPSCHECK, LINES))
    print(f"\nopscheck / kubectl lines = {ours / lines:.2f} (medians)")
    print(f"the opscheck run: {dict(sorted(verdicts.items()))}")
    lists = {p: n for p, n in sent.items() if p.rsplit("/", 1)[-1] in _LISTED}
    print(
        f"\nopscheck, one run: {sum(sent.values())} API requests, {len(lists)} list paths, "
        f"at most {max(lists.values(), default=0)} request per list path"
    )
    for path, count in sorted(sent.items()):
        print(f"  {count} x GET {path}")
    print(f"kubectl lines, one round: {sum(theirs.values())} API requests")
    for path, count in sorted(theirs.items()):
        print(f"  {count} x {path}")


_LISTED = {
    "nodes",
    "namespaces",
    "pods",
    "services",
    "endpoints",
    "events",
    "persistentvolumeclaims",
    "deployments",
    "statefulsets",
    "daemonsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "ingresses",
    "horizontalpodautoscalers",
    "certificates",
}


def _tests(report: Path) -> list[dict[str, object]]:
    try:
        tests = json.loads(report.read_text()).get("tests") or []
    except (OSError, ValueError):
        return []
    return [t for t in tests if isinstance(t, dict)]


if __name__ == "__main__":
    main()
