"""The testbed cluster itself (opscheck.testbed.kubernetes): up, node Ready, and a pod made by
pod_spec() really runs, logs, and has its status written back (a Pod's own status is the
kubelet's, so apply_status is tried on an Ingress, as the ingress checks use it)."""

from __future__ import annotations

from opscheck.testbed.kubernetes import NODE, pod_spec


def test_cluster_runs_a_pod(kube_cluster):
    node = kube_cluster.api_get(f"/api/v1/nodes/{NODE}")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.20.2"

    kube_cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "testbed-ok"}},
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hello", "namespace": "testbed-ok"},
            "spec": pod_spec("echo hello from the testbed; sleep 3600"),
        },
    )
    path = "/api/v1/namespaces/testbed-ok/pods/hello"
    kube_cluster.wait_for(
        lambda: kube_cluster.api_get(path)["status"]["phase"] == "Running", 60, "pod hello Running"
    )
    log = kube_cluster.wait_for(
        lambda: kube_cluster.kubectl("-n", "testbed-ok", "logs", "hello"), 30, "log of hello"
    )
    assert log == "hello from the testbed\n"

    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "testbed-ok"},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
    }
    kube_cluster.apply(ingress)
    written = kube_cluster.apply_status(
        {**ingress, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    )
    assert written["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.10"}]
    kube_cluster.kubectl("delete", "namespace", "testbed-ok", "--wait=false")
