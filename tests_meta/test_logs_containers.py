"""Container and pod logs as ``[[logs]]`` sources, against a real ``dockerd`` and a real
Kubernetes 1.20 cluster: containers (pods) that log error lines, a crash-looping pod whose
previous container logged them, clean ones; a line outside its window; an engine that is not
there; the configuration mistakes, refused at load time with the key named.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from opscheck import config as cfg
from opscheck.testbed.docker import COMPOSE_PROJECT, COMPOSE_SERVICE, DockerEngine
from opscheck.testbed.sshd import toml_value

LOGS = tuple(  # not the ratio and stats suites (file sources only: they skip here)
    f"suites/logs/test_logs_{name}.py" for name in ("available", "capacity", "errors", "security")
)
OLD_LINE_AGE = 12.0  # seconds the api container waits after its first (out-of-window) line
# The api service's first container: one error line, then (12 s later) the lines counted.
API_1 = (
    "echo 'ERROR old: disk full on /data'; sleep 12; "
    "echo 'ERROR db timeout after 30 s'; echo 'ERROR db timeout after 31 s'; "
    "echo 'FATAL lost connection to 10.0.0.1:5432' >&2; echo 'INFO request ok'; sleep 3600"
)
API_2 = "echo 'ERROR db timeout after 12 s'; echo 'INFO ok'; sleep 3600"
WEB = "echo 'INFO started on :8080'; echo 'GET / 200 3 ms'; sleep 3600"
# JSON lines, as a structured logger writes them: the level is a field.
WORKER = (
    'echo \'{"level":"error","message":"payment 17 failed"}\'; '
    'echo \'{"level":"info","message":"error budget report sent"}\'; '
    'echo \'{"level":"error","message":"payment 18 failed"}\'; sleep 3600'
)

# ~12 MB of error lines: more than the 10 MiB read of one container
FLOOD = (
    'i=0; while [ $i -lt 120000 ]; do echo "ERROR flood line $i: the queue is full, the message '
    'is dropped, retry later please ...."; i=$((i+1)); done; echo done; sleep 3600'
)


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def logs_block(name: str, source: str, *patterns: dict[str, Any], **fields: Any) -> str:
    """A ``[[logs]]`` table with an inline ``docker = {…}`` / ``kubernetes = {…}`` source."""
    lines = ["[[logs]]", f"name = {toml_value(name)}", source]
    lines += [f"{key} = {toml_value(value)}" for key, value in fields.items()]
    for pattern in patterns:
        lines.append("[[logs.patterns]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in pattern.items()]
    return "\n".join(lines) + "\n"


def inline(**fields: Any) -> str:
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in fields.items()) + " }"


# -- docker -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    with DockerEngine(tmp_path_factory.mktemp("dockerd")) as engine:
        engine.busybox_image()
        for number, command in ((1, API_1), (2, API_2)):
            labels = {
                COMPOSE_PROJECT: "shop",
                COMPOSE_SERVICE: "api",
                "com.docker.compose.container-number": str(number),
            }
            engine.running(f"shop-api-{number}", command, labels=labels)
        engine.running("shop-web-1", WEB, labels={COMPOSE_PROJECT: "shop", COMPOSE_SERVICE: "web"})
        engine.running("worker", WORKER)
        engine.exited(
            "shop-cron-1",
            command="echo 'FATAL nightly export failed: disk quota exceeded'; exit 1",
            labels={COMPOSE_PROJECT: "shop", COMPOSE_SERVICE: "cron"},
        )
        engine.running("flood", FLOOD)
        yield engine


def wait_for_line(engine: DockerEngine, container: str, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text.encode() not in engine.client().api.logs(container):
        assert time.monotonic() < deadline, f"{container} did not log {text!r}"
        time.sleep(0.2)


def docker_inventory(engine: DockerEngine) -> str:
    errors = {"name": "errors", "preset": "errors", "window": "24h"}
    return (
        engine.docker_block("main", project="shop", timeout="5s")
        + logs_block(
            "api",
            f"docker = {inline(target='main', service='api')}",
            errors,
            # the same line within 24 h and within 10 s: logged 12 s before the others
            {"name": "old_24h", "pattern": "disk full", "window": "24h"},
            {"name": "old_10s", "pattern": "disk full", "window": "10s"},
            # anchored: the line as the program wrote it, without the engine's stamp
            {"name": "anchored", "pattern": "^FATAL ", "window": "1h"},
        )
        + logs_block("web", f"docker = {inline(target='main', container='shop-web-1')}", errors)
        + logs_block(
            "worker",
            f"docker = {inline(target='main', container='worker')}",
            {"name": "errors", "level": "error", "window": "1h", "crit": 1},
            format="json",
        )
        + logs_block("gone", f"docker = {inline(target='main', container='nope')}", errors)
        # a stopped container's last lines count too
        + logs_block("cron", f"docker = {inline(target='main', service='cron')}", errors)
    )


def test_docker_container_logs_healthy_and_broken(suite, engine):
    wait_for_line(engine, "shop-api-1", "INFO request ok")
    result = suite.run(docker_inventory(engine), "", paths=LOGS)
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}
    assert outcome == {
        "test_log_source_present[api]": "passed",
        "test_log_source_present[web]": "passed",
        "test_log_source_present[worker]": "passed",
        "test_log_source_present[gone]": "failed",
        "test_log_source_present[cron]": "passed",
        "test_error_lines_within_limits[cron/errors]": "warned",
        "test_error_lines_within_limits[api/errors]": "warned",
        "test_error_lines_within_limits[api/old_24h]": "warned",
        "test_error_lines_within_limits[api/old_10s]": "passed",
        "test_error_lines_within_limits[api/anchored]": "warned",
        "test_error_lines_within_limits[web/errors]": "passed",
        "test_error_lines_within_limits[worker/errors]": "failed",
        "test_error_lines_within_limits[gone/errors]": "failed",
        # no files: the capacity checks and security patterns do not apply
        "test_log_files_below_size_limit[-]": "skipped",
        "test_log_folders_below_size_limit[-]": "skipped",
        "test_log_files_rotated[-]": "skipped",
        "test_security_lines_within_limits[-]": "skipped",
    }, {n: said(r) for n, r in res.items()}
    present = res["test_log_source_present[api]"]["measured"]
    assert present == (
        "docker main: service api of project shop: 2 containers (shop-api-1 running, "
        "shop-api-2 running)"
    )
    assert res["test_log_source_present[cron]"]["measured"] == (
        "docker main: service cron of project shop: 1 container (shop-cron-1 exited (exit code 1))"
    )
    cron = res["test_error_lines_within_limits[cron/errors]"]
    assert said(cron) == "cron: 1 line matching errors in the last 24 h > warn 0", said(cron)
    assert "      1  FATAL nightly export failed: disk quota exceeded" in cron["detail"]
    assert said(res["test_log_source_present[gone]"]) == (
        "gone: docker main: container nope: no container found"
    )
    # 5 error lines of the two containers: stdout and stderr, the old one included (24 h)
    api = res["test_error_lines_within_limits[api/errors]"]
    assert said(api) == "api: 5 lines matching errors in the last 24 h > warn 0", said(api)
    detail = api["detail"].splitlines()
    assert re.fullmatch(
        r"5 of 7 lines \(71 %\) since .+ UTC; read \d+ B in \d\.\d\d s from docker main: service "
        r"api of project shop \(2 containers: shop-api-1, shop-api-2\)",
        detail[0],
    ), detail
    assert detail[1] == "per container: shop-api-1 4 of 5, shop-api-2 1 of 2"
    assert detail[2:] == [
        "top messages, numbers, ids, addresses and times folded:",
        "      3  ERROR db timeout after <n> s",
        "      1  ERROR old: disk full on /data",
        "      1  FATAL lost connection to <ip>",
    ], detail
    # the line logged 12 s before: counted within 24 h, not within 10 s
    assert said(res["test_error_lines_within_limits[api/old_24h]"]).startswith("api: 1 line")
    old = res["test_error_lines_within_limits[api/old_10s]"]["measured"]
    assert old == "0 lines matching disk full in the last 10.0 s", old
    anchored = said(res["test_error_lines_within_limits[api/anchored]"])
    assert anchored.startswith("api: 1 line matching ^FATAL "), anchored
    assert res["test_error_lines_within_limits[web/errors]"]["measured"] == (
        "0 lines matching errors in the last 24 h"
    )
    # JSON lines: the level field counts, not the word "error" in an info message
    worker = said(res["test_error_lines_within_limits[worker/errors]"])
    assert worker == "worker: 2 lines at level error in the last 1 h > crit 1", worker
    assert "payment <n> failed" in res["test_error_lines_within_limits[worker/errors]"]["detail"]
    gone = said(res["test_error_lines_within_limits[gone/errors]"])
    assert gone == (
        "gone: docker main: container nope: no container found (see test_log_source_present)"
    ), gone
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_docker_logs_past_the_cap_read_the_newest(suite, engine):
    """A container that logged more than 10 MiB in the window: its newest lines are read and
    counted, and the detail says the rest was not."""
    wait_for_line(engine, "flood", "done", timeout=120)
    inventory = engine.docker_block("main", timeout="5s") + logs_block(
        "flood",
        f"docker = {inline(target='main', container='flood')}",
        {"name": "errors", "preset": "errors", "crit": 100},
    )
    suite.run(inventory, "", paths=LOGS)
    res = suite.results()["test_error_lines_within_limits[flood/errors]"]
    assert res["outcome"] == "failed", res
    cut = re.search(
        r"^flood: more than 10\.5 MB in the window: read its newest (\d+) lines$",
        res["detail"],
        re.M,
    )
    assert cut, res["detail"]
    newest = int(cut.group(1))
    assert 60_000 < newest < 100_000, newest  # of 120 000 lines of ~110 bytes
    # every line read is an error line but the last ("done")
    assert said(res) == (
        f"flood: {newest - 1} lines matching errors in the last 24 h > crit 100"
    ), said(res)
    assert f"{newest - 1:>7}  ERROR flood line <n>: the queue is full" in res["detail"]


def test_docker_engine_down_is_one_problem(suite, tmp_path):
    """The logs of an engine that does not answer fail pointing to its reachability check."""
    inventory = (
        f'[[docker]]\nname = "main"\nurl = "unix://{tmp_path}/no.sock"\ntimeout = "2s"\n'
        + logs_block(
            "api",
            f"docker = {inline(target='main', container='api')}",
            {"name": "errors", "preset": "errors"},
        )
    )
    suite.run(inventory, "", paths=(*LOGS, "suites/docker"))
    res = suite.results()
    reach = said(res["test_docker_reachable[main]"])
    assert reach.startswith(f"main: unreachable: unix://{tmp_path}/no.sock: "), reach
    for test in ("test_log_source_present[api]", "test_error_lines_within_limits[api/errors]"):
        assert res[test]["outcome"] == "not_run", res[test]
        assert said(res[test]) == "not run: main unreachable (see test_docker_reachable[main])"


# -- configuration ------------------------------------------------------------------------------

BAD = {
    "two sources": (
        'path = "/x.log"\ndocker = { target = "main", container = "web" }\n',
        "logs[0]: expected exactly one of path (files), journald_unit (the journal), docker (a "
        "container's logs) or kubernetes (pods' logs)",
    ),
    "container and service": (
        'docker = { target = "main", container = "web", service = "web" }\n',
        "logs[0].docker: expected exactly one of container (a container's name) or service (a "
        "compose service of the docker target's project)",
    ),
    "unknown docker target": (
        'docker = { target = "other", container = "web" }\n',
        "logs[0].docker.target: no [[docker]] target named 'other' (known: main, plain)",
    ),
    "service without project": (
        'docker = { target = "plain", service = "web" }\n',
        "logs[0].docker.service: the [[docker]] target 'plain' has no project (a service is one "
        "of its compose project's)",
    ),
    "unknown kubernetes target": (
        'kubernetes = { target = "main", deployment = "api" }\n',
        "logs[0].kubernetes.target: no [[kubernetes]] target named 'main' (known: none)",
    ),
    "no workload": (
        'kubernetes = { target = "main", namespace = "shop" }\n',
        "logs[0].kubernetes: expected exactly one of deployment, selector or pod",
    ),
    "misspelt key": (
        'kubernetes = { target = "main", deploymnet = "api" }\n',
        "logs[0].kubernetes.deploymnet: unknown key (did you mean 'deployment'?)",
    ),
    "host with docker": (
        'host = "web1"\ndocker = { target = "main", container = "web" }\n',
        "logs[0]: host applies to path and journald_unit sources (docker and kubernetes logs are "
        "read through their target's API)",
    ),
    "level in text": (
        'docker = { target = "main", container = "web" }\n[[logs.patterns]]\nname = "x"\n'
        'level = "error"\n',
        'logs[0]: patterns[0].level: applies to format = "json" and journald_unit sources; in '
        "text logs match the level with pattern, e.g. '\\bERROR\\b'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_container_log_config_mistakes_name_the_key(tmp_path, case):
    body, message = BAD[case]
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(
        '[[host]]\nname = "web1"\nuri = "local://"\n'
        '[[docker]]\nname = "main"\nproject = "shop"\n[[docker]]\nname = "plain"\n'
        '[[logs]]\nname = "app"\n' + body
    )
    with pytest.raises(cfg.ConfigError) as raised:
        cfg.load(inventory, None)
    assert str(raised.value).splitlines() == [f"inventory.toml: {message}"]


# -- kubernetes ---------------------------------------------------------------------------------

NAMESPACE = "logs-pods"
# Its first container fails with an error line; the next one finds the mark in the pod's
# emptyDir (which outlives a container) and runs clean: the previous container logged the error.
RECOVERED = (
    "if [ -f /state/ran ]; then echo 'INFO second start, serving'; sleep 3600; fi; "
    "touch /state/ran; echo 'FATAL cannot open /data/db: permission denied'; sleep 1; exit 1"
)


def deployment(name: str, command: str, replicas: int = 1) -> dict[str, Any]:
    from opscheck.testbed.kubernetes import pod_spec

    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(command)},
        },
    }


def pod(name: str, command: str, **extra: Any) -> dict[str, Any]:
    from opscheck.testbed.kubernetes import pod_spec

    spec = pod_spec(command, volumeMounts=[{"name": "state", "mountPath": "/state"}])
    spec["volumes"] = [{"name": "state", "emptyDir": {}}]
    spec.update(extra)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def pods(kube_cluster: Any) -> Any:
    cluster = kube_cluster
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    cluster.apply(
        deployment("api", API_2, replicas=2),
        deployment("web", WEB),
        pod("recovered", RECOVERED),
        # A second before it exits, as a real program's shutdown takes: a container that exited
        # within milliseconds of its one line was once read back with an empty previous log (1
        # of 5 full runs on a loaded machine; likely the engine's log copy racing the exit).
        pod("crashloop", "echo 'FATAL config /etc/app.toml missing'; sleep 1; exit 1"),
    )
    base = f"/api/v1/namespaces/{NAMESPACE}/pods"

    def statuses() -> dict[str, dict[str, Any]]:
        found = {}
        for item in cluster.api_get(base)["items"]:
            (status,) = item["status"].get("containerStatuses") or [{}]
            found[item["metadata"]["name"]] = status
        return found

    def settled() -> bool:
        found = statuses()
        running = [n for n, s in found.items() if "running" in s.get("state", {})]
        restarted = {n: s.get("restartCount", 0) for n, s in found.items()}
        return (
            len(found) == 5
            and len([n for n in running if n.startswith(("api-", "web-"))]) == 3
            and "running" in found["recovered"].get("state", {})
            and restarted["recovered"] >= 1
            and restarted["crashloop"] >= 1
        )

    cluster.wait_for(settled, timeout=180, what=f"the pods of {NAMESPACE} started and restarted")
    return cluster


def kube_inventory(cluster: Any) -> str:
    errors = {"name": "errors", "preset": "errors", "window": "1h"}
    source = {"target": "main", "namespace": NAMESPACE}
    return (
        '[[kubernetes]]\nname = "main"\n'
        f"kubeconfig = {toml_value(str(cluster.opscheck_kubeconfig))}\n"
        f'namespaces = [{toml_value(NAMESPACE)}]\ntimeout = "10s"\n'
        + logs_block("api", f"kubernetes = {inline(**source, deployment='api')}", errors)
        + logs_block("web", f"kubernetes = {inline(**source, selector='app=web')}", errors)
        + logs_block("now", f"kubernetes = {inline(**source, pod='recovered')}", errors)
        + logs_block(
            "before", f"kubernetes = {inline(**source, pod='recovered', previous=True)}", errors
        )
        + logs_block(
            "loop", f"kubernetes = {inline(**source, pod='crashloop', previous=True)}", errors
        )
        + logs_block("gone", f"kubernetes = {inline(**source, deployment='nope')}", errors)
        + logs_block(
            "fresh", f"kubernetes = {inline(**source, selector='app=web', previous=True)}", errors
        )
    )


def test_pod_logs_healthy_and_broken(suite, pods):
    result = suite.run(kube_inventory(pods), "", paths=LOGS)
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items() if "_lines_" in n or "present" in n}
    assert outcome == {
        "test_log_source_present[api]": "passed",
        "test_log_source_present[web]": "passed",
        "test_log_source_present[now]": "passed",
        "test_log_source_present[before]": "passed",
        "test_log_source_present[loop]": "passed",
        "test_log_source_present[gone]": "failed",
        "test_error_lines_within_limits[api/errors]": "warned",
        "test_error_lines_within_limits[web/errors]": "passed",
        "test_error_lines_within_limits[now/errors]": "passed",
        "test_error_lines_within_limits[before/errors]": "warned",
        "test_error_lines_within_limits[loop/errors]": "warned",
        "test_error_lines_within_limits[gone/errors]": "failed",
        "test_log_source_present[fresh]": "passed",
        "test_error_lines_within_limits[fresh/errors]": "passed",
        "test_security_lines_within_limits[-]": "skipped",
    }, {n: said(r) for n, r in res.items()}
    present = res["test_log_source_present[api]"]["measured"]
    assert re.fullmatch(
        rf"kubernetes main: deployment {NAMESPACE}/api: 2 pods \(api-\S+ Running, api-\S+ "
        r"Running\)",
        present,
    ), present
    loop = res["test_log_source_present[loop]"]["measured"]
    assert re.fullmatch(
        rf"kubernetes main: pod {NAMESPACE}/crashloop \(previous containers\): 1 pod \(crashloop "
        r"(CrashLoopBackOff|Running|Failed), \d+ restarts?\)",
        loop,
    ), loop
    gone = said(res["test_log_source_present[gone]"])
    assert gone == f"gone: kubernetes main: deployment {NAMESPACE}/nope: no such deployment"
    # both pods of the deployment, together and each
    api = res["test_error_lines_within_limits[api/errors]"]
    assert said(api) == "api: 2 lines matching errors in the last 1 h > warn 0", said(api)
    detail = api["detail"].splitlines()
    assert re.fullmatch(
        rf"2 of 4 lines \(50 %\) since .+ UTC; read \d+ B in \d+\.\d\d s from kubernetes main: "
        rf"deployment {NAMESPACE}/api \(2 pods: api-\S+, api-\S+\)",
        detail[0],
    ), detail
    assert re.fullmatch(r"per pod: api-\S+ 1 of 2, api-\S+ 1 of 2", detail[1]), detail
    assert detail[2:] == [
        "top messages, numbers, ids, addresses and times folded:",
        "      2  ERROR db timeout after <n> s",
    ], detail
    assert res["test_error_lines_within_limits[web/errors]"]["measured"] == (
        "0 lines matching errors in the last 1 h"
    )
    # the recovered pod: its current container is clean, its previous one logged the error
    assert res["test_error_lines_within_limits[now/errors]"]["measured"] == (
        "0 lines matching errors in the last 1 h"
    )
    before = res["test_error_lines_within_limits[before/errors]"]
    assert said(before) == "before: 1 line matching errors in the last 1 h > warn 0", said(before)
    assert "      1  FATAL cannot open /data/db: permission denied" in before["detail"]
    loop_lines = said(res["test_error_lines_within_limits[loop/errors]"])
    assert loop_lines == "loop: 1 line matching errors in the last 1 h > warn 0", loop_lines
    assert said(res["test_error_lines_within_limits[gone/errors]"]) == gone
    # previous = true where no container ended yet: nothing to read, and the detail says so
    fresh = res["test_error_lines_within_limits[fresh/errors]"]
    assert re.search(
        r"^web-\S+: no previous \(terminated\) container to read$", fresh["detail"], re.M
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_pod_logs_without_the_right_name_the_rule(suite, pods):
    """An account that may read pods but not their logs: the check names the rule to grant."""
    pods.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "pods-only", "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "pods-only", "namespace": NAMESPACE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pods-only",
            },
            "subjects": [
                {"kind": "User", "name": "opscheck", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        },
    )
    inventory = (
        '[[kubernetes]]\nname = "main"\n'
        f"kubeconfig = {toml_value(str(pods.reader_kubeconfig))}\n"
        + logs_block(
            "api",
            f"kubernetes = {inline(target='main', namespace=NAMESPACE, pod='recovered')}",
            {"name": "errors", "preset": "errors"},
        )
    )
    pods.wait_for(
        lambda: "pods-only" in pods.kubectl("get", "rolebinding", "-n", NAMESPACE),
        what="the RoleBinding",
    )
    suite.run(inventory, "", paths=LOGS)
    res = suite.results()
    assert res["test_log_source_present[api]"]["outcome"] == "passed"
    errors = res["test_error_lines_within_limits[api/errors]"]
    assert errors["outcome"] == "failed"
    assert said(errors).startswith(
        f'api: forbidden: grant get on pods/log in namespace {NAMESPACE} (pods "recovered" is '
        'forbidden: User "opscheck" cannot get resource "pods/log"'
    ), said(errors)
