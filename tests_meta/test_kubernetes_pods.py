"""The pod and workload checks (suites/kubernetes/test_kubernetes_pods.py, _workloads.py)
against the real testbed cluster, run as the opscheck ServiceAccount (RBAC enforced).

``wl-good`` holds a Ready 2-replica Deployment, a StatefulSet, a DaemonSet, a completed Job, one
completed on its second try (its failed pod stays listed) and an HPA below its maximum. ``wl-bad``
breaks each check for real: a Deployment whose 2 pods exit 1 (CrashLoopBackOff), an image that is
never pulled (ErrImageNeverPull), a rollout past its 5 s progress deadline (never Ready, and its
HPA at max), a container OOM-killed once by its 8Mi limit, a bare pod never Ready, a CronJob's Job
never Ready; and, while kube-controller-manager is frozen, a Deployment whose new generation
nobody observes. ``wl-once`` holds a pod that restarted once at start: counted in a 24h window,
not in a 5s one. Everything is made once, all states awaited together (~20 s: the HPA controller
syncs every 15 s), then one run checks every target.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.probes.kubernetes import parse_time
from opscheck.testbed.kubernetes import Cluster, KubernetesError, pod_spec, write_kubeconfig

PATHS = (
    "suites/kubernetes/test_kubernetes_pods.py",
    "suites/kubernetes/test_kubernetes_workloads.py",
)
NAMESPACES = ("wl-good", "wl-bad", "wl-once")
SLEEP = "while :; do sleep 3600; done"
# Doubles a shell string until the 8Mi limit kills it (the cgroup v1 OOM killer, exit 137).
FILL_MEMORY = "x=a; while :; do x=$x$x; done"
# Any restart in the window is WARN here (by default more than 1 is): one restart is then told.
THRESHOLDS = "[kubernetes.pod_restarts]\nwarn = 0\ncrit = 50\n"
ONCE = f"if [ -e /data/once ]; then {SLEEP}; fi; touch /data/once; exit 3"
RETRY = "test -e /marks/failed && exit 0; touch /marks/failed; exit 4"
# dockerd (cgroup v1) marks an exit OOMKilled only if its OOM event for the container arrives
# first: a process killed within its first moments often exits as plain "Error" (137). Wait.
OOM_ONCE = f"if [ -e /data/once ]; then {SLEEP}; fi; touch /data/once; sleep 2; {FILL_MEMORY}"


def probe(command: str) -> dict[str, Any]:
    return {"exec": {"command": [command]}, "periodSeconds": 1, "failureThreshold": 1}


def deployment(namespace: str, name: str, spec: dict[str, Any], replicas: int = 1, **extra: Any):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": spec},
            **extra,
        },
    }


def hpa(namespace: str, name: str, target: str, top: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": top,
            "targetCPUUtilizationPercentage": 80,
        },
    }


def good_objects(marks: Path) -> list[dict[str, Any]]:
    ns, labels = "wl-good", {"app": "agent"}
    # Fails once, then succeeds: the Job completes, its failed first pod stays listed.
    retry = {**pod_spec(RETRY, volumeMounts=[{"name": "marks", "mountPath": "/marks"}])}
    retry |= {
        "restartPolicy": "Never",
        "volumes": [{"name": "marks", "hostPath": {"path": str(marks)}}],
    }
    template = {"metadata": {"labels": labels}, "spec": pod_spec(SLEEP)}
    job_pod = {**pod_spec("true"), "restartPolicy": "Never"}
    return [
        deployment(ns, "web", pod_spec(SLEEP, readinessProbe=probe("true")), replicas=2),
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"namespace": ns, "name": "db"},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": pod_spec(SLEEP)},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"namespace": ns, "name": "agent"},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": ns, "name": "migrate"},
            "spec": {"template": {"spec": job_pod}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": ns, "name": "retry"},
            "spec": {"backoffLimit": 3, "template": {"spec": retry}},
        },
        hpa(ns, "web", "web", 4),
    ]


def bad_objects() -> list[dict[str, Any]]:
    ns = "wl-bad"
    return [
        deployment(ns, "crash", pod_spec("echo dying; exit 1"), replicas=2),
        deployment(ns, "noimage", pod_spec(SLEEP, image="missing:never")),
        deployment(
            ns,
            "stuck",
            pod_spec(SLEEP, readinessProbe=probe("false")),
            replicas=2,
            progressDeadlineSeconds=5,
        ),
        deployment(ns, "hog", once(OOM_ONCE, resources={"limits": {"memory": "8Mi"}})),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"namespace": ns, "name": "lonely"},
            "spec": pod_spec(SLEEP, readinessProbe=probe("false")),
        },
        # 1.20 serves CronJob as batch/v1beta1 only; suspended: its Job is made below.
        {
            "apiVersion": "batch/v1beta1",
            "kind": "CronJob",
            "metadata": {"namespace": ns, "name": "nightly"},
            "spec": {
                "schedule": "0 3 * * *",
                "suspend": True,
                "jobTemplate": {"spec": {"template": {"spec": job_pod_unready()}}},
            },
        },
        hpa(ns, "stuck", "stuck", 2),  # the controller sees 2 replicas of max 2
    ]


def job_pod_unready() -> dict[str, Any]:
    return {**pod_spec(SLEEP, readinessProbe=probe("false")), "restartPolicy": "OnFailure"}


def once(command: str, **container: Any) -> dict[str, Any]:
    """A pod whose container fails once: an emptyDir remembers the first run."""
    mount = [{"name": "data", "mountPath": "/data"}]
    spec = pod_spec(command, volumeMounts=mount, **container)
    spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    return spec


def pods_only() -> list[dict[str, Any]]:
    """A ServiceAccount of wl-bad that may list pods there and nothing else."""
    meta = {"namespace": "wl-bad", "name": "pods-only"}
    rbac = "rbac.authorization.k8s.io/v1"
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": rbac, "kind": "Role", "metadata": meta, "rules": [rule]},
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pods-only",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "pods-only", "namespace": "wl-bad"}],
        },
    ]


def token(cluster: Cluster, namespace: str, account: str) -> str:
    """The token of the Secret 1.20's token controller makes for a ServiceAccount."""
    found = cluster.api_get(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}")
    secret = cluster.api_get(
        f"/api/v1/namespaces/{namespace}/secrets/{found['secrets'][0]['name']}"
    )
    return base64.b64decode(secret["data"]["token"]).decode()


def once_objects() -> list[dict[str, Any]]:
    return [deployment("wl-once", "flaky", once(ONCE))]


def pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return list(cluster.api_get(f"/api/v1/namespaces/{namespace}/pods")["items"])


def waiting(pod: dict[str, Any]) -> str:
    states = [c["state"] for c in pod["status"].get("containerStatuses") or []]
    return next((s["waiting"].get("reason", "") for s in states if "waiting" in s), "")


def backing_off(pod: dict[str, Any], margin: float = 2.5) -> bool:
    """In CrashLoopBackOff for at least ``margin`` more seconds: the kubelet waits 10 s after a
    container's first restart, doubling each time, from the end of its last run. (Between two
    waits a container briefly runs and is terminated, not waiting.)"""
    if waiting(pod) != "CrashLoopBackOff":
        return False
    container = pod["status"]["containerStatuses"][0]
    count = container["restartCount"]
    finished = parse_time(container["lastState"]["terminated"]["finishedAt"])
    if finished is None:
        return False
    ends = finished.timestamp() + min(300, 10 * 2 ** max(0, count - 1))
    return ends - time.time() >= margin


def ran_again(pod: dict[str, Any], reason: str) -> bool:
    """Restarted once after ending for ``reason``, running since."""
    container = pod["status"]["containerStatuses"][0]
    ended = container["lastState"].get("terminated", {}).get("reason")
    return bool(container["restartCount"] == 1 and ended == reason and container["ready"])


def settled(cluster: Cluster) -> bool:
    """Every object in the state the checks are to find, at the same moment; else a
    KubernetesError naming what is not yet (wait_for shows the last one when it gives up)."""
    good = pods(cluster, "wl-good")
    bad = {p["metadata"]["name"].rsplit("-", 2)[0]: p for p in pods(cluster, "wl-bad")}
    crash = [p for p in pods(cluster, "wl-bad") if p["metadata"]["name"].startswith("crash-")]
    flaky = pods(cluster, "wl-once")
    hog = bad.get("hog", {}).get("status", {}).get("containerStatuses") or [{}]
    ended = hog[0].get("lastState", {}).get("terminated", {})
    if ended.get("exitCode") == 137 and ended.get("reason") == "Error":
        # Killed by its limit, but dockerd took the exit before its OOM event (a race under
        # load): the cluster reports "Error". The check reads what the cluster reports, so a
        # new pod gets killed again until the cluster says OOMKilled.
        name = bad["hog"]["metadata"]["name"]
        cluster.kubectl("delete", "pod", "-n", "wl-bad", name, "--wait=false")

    def get(path: str) -> dict[str, Any]:
        return dict(cluster.api_get(path).get("status") or {})

    def flaky_restarted_long_ago() -> bool:
        last = flaky[0]["status"]["containerStatuses"][0]["lastState"]
        finished = parse_time(last.get("terminated", {}).get("finishedAt"))
        # outside the 5s window of target "once-5s"
        return finished is not None and time.time() - finished.timestamp() > 10

    conditions = {
        "wl-good phases": lambda: (
            sorted(p["status"]["phase"] for p in good)
            == ["Failed"] + ["Running"] * 4 + ["Succeeded"] * 2
        ),
        "job retry succeeded": lambda: (
            get("/apis/batch/v1/namespaces/wl-good/jobs/retry").get("succeeded") == 1
        ),
        "wl-good Ready": lambda: (
            sum(
                c["type"] == "Ready" and c["status"] == "True"
                for p in good
                for c in p["status"].get("conditions", [])
            )
            == 4
        ),
        "crash backing off": lambda: len(crash) == 2 and all(backing_off(p) for p in crash),
        "hog OOM-killed once": lambda: ran_again(bad["hog"], "OOMKilled"),
        "nightly running": lambda: bad["nightly"]["status"]["phase"] == "Running",
        "noimage": lambda: waiting(bad["noimage"]) == "ErrImageNeverPull",
        "stuck past deadline": lambda: (
            "ProgressDeadlineExceeded"
            in str(get("/apis/apps/v1/namespaces/wl-bad/deployments/stuck"))
        ),
        "hpas": lambda: (
            [
                get(f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers/{name}").get(
                    "currentReplicas"
                )
                for ns, name in (("wl-good", "web"), ("wl-bad", "stuck"))
            ]
            == [2, 2]
        ),
        "flaky restarted once": lambda: ran_again(flaky[0], "Error"),
        "flaky restart >10 s ago": flaky_restarted_long_ago,
    }
    unmet = []
    for name, condition in conditions.items():
        try:
            if not condition():
                unmet.append(name)
        except (KeyError, IndexError) as exc:
            unmet.append(f"{name} ({exc!r})")
    if unmet:
        raise KubernetesError("not yet: " + ", ".join(unmet))
    return True


@pytest.fixture(scope="module")
def workloads(
    kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, Path]]:
    """The cluster with every wl-* object in place, and the kubeconfig of wl-bad's pods-only
    account."""
    cluster = kube_cluster
    cluster.apply(
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES)
    )
    marks = tmp_path_factory.mktemp("marks")
    cluster.apply(*good_objects(marks), *bad_objects(), *once_objects(), *pods_only())
    # A Job owned by the CronJob, as its controller makes them: the pods check names the CronJob.
    cronjob = cluster.api_get("/apis/batch/v1beta1/namespaces/wl-bad/cronjobs/nightly")
    owner = {
        "apiVersion": "batch/v1beta1",
        "kind": "CronJob",
        "name": "nightly",
        "uid": cronjob["metadata"]["uid"],
        "controller": True,
    }
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"namespace": "wl-bad", "name": "nightly-1", "ownerReferences": [owner]},
            "spec": {"template": {"spec": job_pod_unready()}},
        }
    )
    try:
        began = time.monotonic()
        cluster.wait_for(lambda: settled(cluster), 150, "the pods and workloads of wl-*")
        cluster.timings["workloads settled"] = time.monotonic() - began
        value = cluster.wait_for(lambda: token(cluster, "wl-bad", "pods-only"), 30, "a token")
        config = marks.parent / "pods-only.kubeconfig"
        yield cluster, write_kubeconfig(config, cluster.server, cluster.pki / "ca.crt", value, "p")
    finally:
        cluster.kubectl("delete", "namespace", *NAMESPACES, "--wait=false", check=False)


def block(name: str, kubeconfig: Path, namespace: str, **keys: str) -> str:
    extra = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    return (
        f'[[kubernetes]]\nname = "{name}"\nkubeconfig = "{kubeconfig}"\n'
        f'namespaces = ["{namespace}"]\ntimeout = "10s"\n{extra}'
    )


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def controller_manager(cluster: Cluster) -> Any:
    return next(d for d in cluster.daemons if d.name == "kube-controller-manager")


def test_pods_and_workloads_healthy_and_broken(suite, workloads):
    cluster, pods_only_config = workloads
    config = cluster.opscheck_kubeconfig
    inventory = (
        block("good", config, "wl-good")
        + block("bad", config, "wl-bad")
        + block("once", config, "wl-once")
        + block("once-5s", config, "wl-once", restarts_window="5s")
        + block("podsonly", pods_only_config, "wl-bad")
    )
    # A spec change nobody observes: kube-controller-manager frozen while the checks run.
    manager = controller_manager(cluster)
    manager.pause()
    try:
        patch = '{"spec": {"revisionHistoryLimit": 5}}'
        cluster.kubectl("-n", "wl-bad", "patch", "deployment", "noimage", "-p", patch)
        started = time.monotonic()
        suite.run(inventory, THRESHOLDS, paths=PATHS)
        elapsed = time.monotonic() - started
    finally:
        manager.resume()
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}

    def of(target: str) -> dict[str, str]:
        return {n.split("[")[0]: o for n, o in outcome.items() if n.endswith(f"[{target}]")}

    measured = {n.split("[")[0]: r["measured"] for n, r in res.items() if n.endswith("[good]")}
    retry_pod = next(
        p["metadata"]["name"]
        for p in pods(cluster, "wl-good")
        if p["metadata"]["name"].startswith("retry-") and p["status"]["phase"] == "Failed"
    )
    assert of("good") == dict.fromkeys(of("good"), "passed"), {n: said(r) for n, r in res.items()}
    assert measured == {
        "test_pods_running": "6 pods Running or Succeeded (1 failed before their Job completed: "
        f"wl-good/{retry_pod})",
        "test_pods_ready": "4 running pods Ready",
        "test_pods_not_stuck_waiting": "no container of 7 pods stuck waiting",
        "test_pod_restarts": "no restarts in 24h (7 pods)",
        "test_no_oom_kills": "no container of 7 pods OOM-killed in 24h",
        "test_workloads_available": "all available: 1 daemonset, 1 deployment, 1 statefulset",
        "test_rollouts_progressing": "3 workloads rolled out",
        "test_hpa_below_max": "1 HPA below max replicas",
    }

    assert of("bad") == {
        "test_pods_running": "failed",
        "test_pods_ready": "failed",
        "test_pods_not_stuck_waiting": "failed",
        "test_pod_restarts": "warned",
        "test_no_oom_kills": "failed",
        "test_workloads_available": "failed",
        "test_rollouts_progressing": "failed",
        "test_hpa_below_max": "failed",
    }, {n: said(r) for n, r in res.items()}
    bad = {n.split("[")[0]: r for n, r in res.items() if n.endswith("[bad]")}
    running = said(bad["test_pods_running"])
    assert running == "bad: deployment wl-bad/noimage: 1 of 1 pod Pending (ErrImageNeverPull)"
    assert 'image "missing:never" is not present' in bad["test_pods_running"]["detail"]
    assert said(bad["test_pods_ready"]) == (
        "bad: cronjob wl-bad/nightly: 1 of 1 pod not Ready (container main running, readiness "
        "probe failing); deployment wl-bad/crash: 2 of 2 pods not Ready (container main "
        "CrashLoopBackOff); deployment wl-bad/stuck: 2 of 2 pods not Ready (container main "
        "running, readiness probe failing); pod wl-bad/lonely: 1 of 1 pod not Ready (container "
        "main running, readiness probe failing)"
    ), said(bad["test_pods_ready"])
    assert said(bad["test_pods_not_stuck_waiting"]) == (
        "bad: deployment wl-bad/crash: 2 of 2 pods CrashLoopBackOff (container main, exit 1); "
        "deployment wl-bad/noimage: 1 of 1 pod ErrImageNeverPull (container main, image "
        "missing:never)"
    ), said(bad["test_pods_not_stuck_waiting"])
    kubelet_said = r"\d+ restarts?: back-off \d+s restarting failed container=main pod=crash-"
    assert re.search(kubelet_said, bad["test_pods_not_stuck_waiting"]["detail"])
    assert said(bad["test_no_oom_kills"]) == (
        "bad: deployment wl-bad/hog: 1 of 1 pod OOM-killed (container main, limit 8Mi)"
    )
    restarted = said(bad["test_pod_restarts"])
    assert re.fullmatch(
        r"bad: deployment wl-bad/(crash|hog): \d+ restarts? of pod \S+ in 24h \(2 owners with "
        r"restarts: deployment wl-bad/crash, deployment wl-bad/hog\) > warn 0",
        restarted,
    ), restarted
    assert "last OOMKilled, exit 137 at" in bad["test_pod_restarts"]["detail"]
    assert said(bad["test_workloads_available"]) == (
        "bad: 3 of 4 workloads short: deployment wl-bad/crash 0/2 available, deployment "
        "wl-bad/noimage 0/1 available, deployment wl-bad/stuck 0/2 available"
    )
    assert "Progressing=False ProgressDeadlineExceeded" in bad["test_workloads_available"]["detail"]
    assert said(bad["test_rollouts_progressing"]) == (
        "bad: 2 rollout problems: deployment wl-bad/noimage: generation 2 not observed, "
        "deployment wl-bad/stuck: rollout stuck (ProgressDeadlineExceeded)"
    )
    assert "is kube-controller-manager running?" in bad["test_rollouts_progressing"]["detail"]
    assert (
        said(bad["test_hpa_below_max"])
        == "bad: 1 of 1 HPA at max: hpa wl-bad/stuck 2 of max 2 replicas"
    )

    # restarts_window: one restart at start, counted in 24h, not in 5s.
    once = {n.split("[")[0]: r for n, r in res.items() if n.endswith("[once]")}
    assert of("once") == {
        **dict.fromkeys(of("once"), "passed"),
        "test_pod_restarts": "warned",
        "test_hpa_below_max": "skipped",
    }
    assert re.fullmatch(
        r"once: deployment wl-once/flaky: 1 restart of pod flaky-\S+ in 24h > warn 0",
        said(once["test_pod_restarts"]),
    ), once["test_pod_restarts"]
    assert "container main 1, last exit 3 at " in once["test_pod_restarts"]["detail"]
    assert of("once-5s")["test_pod_restarts"] == "passed"
    assert res["test_pod_restarts[once-5s]"]["measured"] == "no restarts in 5s (1 pod)"
    assert said(res["test_hpa_below_max[once]"]) == (
        "once: no HorizontalPodAutoscalers in namespace wl-once"
    )
    assert elapsed < 60, elapsed  # one list per kind per target, not per check

    # An account that may list pods only: the owner needs the ReplicaSets, each check says what
    # to grant.
    refused = {n.split("[")[0]: r for n, r in res.items() if n.endswith("[podsonly]")}
    assert {r["outcome"] for r in refused.values()} == {"failed"}, refused
    grant = "podsonly: forbidden: grant list on {} in namespace wl-bad: "
    for test, resource in (
        ("test_pods_running", "replicasets.apps"),
        ("test_pod_restarts", "replicasets.apps"),
        ("test_workloads_available", "deployments.apps"),
        ("test_hpa_below_max", "horizontalpodautoscalers.autoscaling"),
    ):
        assert said(refused[test]).startswith(grant.format(resource)), said(refused[test])
