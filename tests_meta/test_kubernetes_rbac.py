"""deploy/kubernetes/, applied to the real testbed cluster (RBAC enforced): the ServiceAccount
opscheck reads what the checks read and nothing more; Secrets and exec only where the opt-in
roles are bound."""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import pytest
import yaml

from opscheck.testbed.kubernetes import MANIFESTS, KubernetesError, pod_spec

NODENAME = socket.gethostname()

# (API group, resource) pairs the reader role grants get/list/watch on: what the checks list.
READ = [
    ("", "nodes"),
    ("", "namespaces"),
    ("", "pods"),
    ("", "pods/log"),
    ("", "services"),
    ("", "endpoints"),
    ("", "events"),
    ("", "persistentvolumeclaims"),
    ("events.k8s.io", "events"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("apps", "replicasets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("networking.k8s.io", "ingresses"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("metrics.k8s.io", "nodes"),
    ("metrics.k8s.io", "pods"),
    ("cert-manager.io", "certificates"),
]
# What the account must not do without an opt-in binding (or at all).
DENIED = [
    ("get", "", "secrets"),
    ("list", "", "secrets"),
    ("create", "", "pods/exec"),
    ("delete", "", "pods"),
    ("create", "", "pods"),
    ("patch", "apps", "deployments"),
    ("update", "", "nodes"),
    ("list", "", "configmaps"),
    ("create", "", "pods/portforward"),
    ("impersonate", "", "serviceaccounts"),
]


def token(cluster) -> str:
    config = json.loads(cluster.opscheck_kubeconfig.read_text())
    return str(config["users"][0]["user"]["token"])


def can(cluster, verb: str, group: str, resource: str, namespace: str = "") -> bool:
    """A SelfSubjectAccessReview as the opscheck ServiceAccount."""
    resource, _, subresource = resource.partition("/")
    attributes = {"verb": verb, "group": group, "resource": resource}
    if subresource:
        attributes["subresource"] = subresource
    if namespace:
        attributes["namespace"] = namespace
    review = cluster.api(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
        token=token(cluster),
    )
    return bool(review["status"]["allowed"])


def test_reader_reads_only_what_the_checks_read(kube_cluster):
    sa = kube_cluster.opscheck_kubeconfig
    assert "pods/log" in kube_cluster.kubectl("auth", "can-i", "--list", kubeconfig=sa)
    for group, resource in READ:
        for verb in ("get", "list", "watch"):
            assert can(kube_cluster, verb, group, resource), f"{verb} {resource}.{group} denied"
        assert not can(kube_cluster, "delete", group, resource), f"delete {resource} allowed"
    for verb, group, resource in DENIED:
        assert not can(kube_cluster, verb, group, resource, "default"), f"{verb} {resource}"
    # the kubeconfig install_rbac() wrote really reads, and really is refused
    nodes = kube_cluster.kubectl("get", "nodes", "-o", "name", kubeconfig=sa)
    assert nodes == "node/localhost\n"
    with pytest.raises(KubernetesError, match=r"forbidden.*cannot list resource \"secrets\""):
        kube_cluster.kubectl("get", "secrets", "-n", "opscheck", kubeconfig=sa)


def test_opt_in_roles_grant_only_where_bound(kube_cluster):
    namespace = "rbac-optin"
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": role, "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"kind": "ServiceAccount", "name": "opscheck", "namespace": "opscheck"}],
        }
        for role in ("opscheck-tls-secrets", "opscheck-exec")
    ]
    kube_cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}, *bindings
    )
    kube_cluster.wait_for(
        lambda: can(kube_cluster, "get", "", "secrets", namespace), 30, "the RoleBindings"
    )
    assert can(kube_cluster, "create", "", "pods/exec", namespace)
    assert not can(kube_cluster, "list", "", "secrets", namespace)  # get by name only
    assert not can(kube_cluster, "delete", "", "secrets", namespace)
    for elsewhere in ("default", "opscheck"):
        assert not can(kube_cluster, "get", "", "secrets", elsewhere)
        assert not can(kube_cluster, "create", "", "pods/exec", elsewhere)


def test_whole_kustomization_is_accepted(kube_cluster):
    """Every object of `kubectl apply -k deploy/kubernetes` passes the apiserver's own
    validation (server-side dry run: nothing is stored); the CronJobs are batch/v1 with
    timeZone and podFailurePolicy, which 1.20 does not serve, so they are only built."""
    kubectl = str(kube_cluster.bin_dir / "kubectl")
    built = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert {"ClusterRole/opscheck-reader", "ServiceAccount/opscheck"} <= set(kinds)
    cronjobs = [o for o in objects if o["kind"] == "CronJob"]
    assert len(cronjobs) == 2
    for cronjob in cronjobs:
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "opscheck"
        assert {"name": "reports", "mountPath": "/reports"} in pod["containers"][0]["volumeMounts"]
    rest = [o for o in objects if o["kind"] != "CronJob"]
    out = kube_cluster.kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin="---\n" + "\n---\n".join(map(json.dumps, rest)),
    )
    assert out.count("(server dry run)") == len(rest), out


def _shell_pod(cluster, namespace: str, exec_bound: bool) -> None:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "shell", "namespace": namespace},
            "spec": pod_spec("sleep 3600"),
        },
    ]
    if exec_bound:
        objects.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "opscheck-exec", "namespace": namespace},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "opscheck-exec",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "opscheck", "namespace": "opscheck"}
                ],
            }
        )
    cluster.apply(*objects)
    path = f"/api/v1/namespaces/{namespace}/pods/shell"
    cluster.wait_for(
        lambda: cluster.api_get(path)["status"]["phase"] == "Running", 60, f"{namespace}/shell"
    )


def test_kubectl_host_runs_in_a_pod(suite, kube_cluster):
    """A [[host]] with uri = "kubectl://<pod>?namespace=…&kubeconfig=…" runs its commands in
    that pod (testinfra's kubectl backend, the kubectl on PATH), as the ServiceAccount: where
    opscheck-exec is bound it answers, elsewhere the check says forbidden."""
    _shell_pod(kube_cluster, "host-kubectl", exec_bound=True)
    _shell_pod(kube_cluster, "host-kubectl-denied", exec_bound=False)
    sa = kube_cluster.opscheck_kubeconfig
    inventory = "".join(
        f'[[host]]\nname = "{name}"\nuri = "kubectl://shell?namespace={ns}&kubeconfig={sa}"\n'
        for name, ns in (("pod", "host-kubectl"), ("denied", "host-kubectl-denied"))
    )
    suite.run(inventory, "", "-k", "reachable", paths=("suites/host/test_connectivity.py",))
    res = suite.results()
    ok, denied = res["test_host_reachable[pod]"], res["test_host_reachable[denied]"]
    assert ok["outcome"] == "passed", ok
    # a host-network pod: its hostname is the machine's
    assert ok["measured"].endswith(f"?namespace=host-kubectl&kubeconfig={sa} answers as {NODENAME}")
    assert denied["outcome"] == "failed"
    assert denied["reason"].startswith(
        'denied: unreachable: `uname -n` exited 1: Error from server (Forbidden): pods "shell" is '
        'forbidden: User "system:serviceaccount:opscheck:opscheck" cannot create resource '
        '"pods/exec" in API group "" in the namespace "host-kubectl-denied"'
    ), denied
