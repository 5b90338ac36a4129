"""Services, ingresses and events checks against the real test cluster (``kube_cluster``), run as
the opscheck ServiceAccount (RBAC enforced). Namespaces of their own:

- ``net-good``: a Ready pod behind its service (plus a service without selector and an
  ExternalName one, which are not judged), an ingress with an address and a 90-day certificate;
- ``net-bad``: a service whose pod is not Ready (a readiness gate nobody sets), one selecting no
  pod, an ingress without an address, TLS secrets expiring in 5 days and expired 2 days ago,
  warning events inside and outside the window (Event objects written with their timestamps);
- ``net-locked``: an ingress TLS secret opscheck may not read (no opscheck-tls-secrets binding);
- ``net-missing``: an ingress naming a TLS secret that does not exist.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest

from opscheck.testbed.kubernetes import pod_spec

PATHS = (
    "suites/kubernetes/test_kubernetes_network.py",
    "suites/kubernetes/test_kubernetes_events.py",
)
NAMESPACES = ("net-good", "net-bad", "net-locked", "net-missing")
TLS_BOUND = ("net-good", "net-bad", "net-missing")  # RoleBinding to opscheck-tls-secrets
THRESHOLDS = "[kubernetes.warning_events]\nwarn = 5\ncrit = 10\n"


def certificate(host: str, days: float) -> dict[str, str]:
    """A self-signed certificate for ``host`` whose notAfter is ``days`` from now (PEM, base64
    as a Secret's data holds it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "tls.crt": base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(),
        "tls.key": base64.b64encode(pem_key).decode(),
    }


def tls_secret(namespace: str, name: str, host: str, days: float) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": certificate(host, days),
    }


def ingress(
    namespace: str, name: str, host: str, secret: str | None, *more_hosts: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "web", "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
    }
    if secret:
        spec["tls"] = [{"hosts": [host, *more_hosts], "secretName": secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def with_address(obj: dict[str, Any], ip: str) -> dict[str, Any]:
    return {**obj, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def service(namespace: str, name: str, selector: dict[str, str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80, "targetPort": 8080}]}
    if selector:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def pod(namespace: str, name: str, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {**pod_spec("sleep 3600"), **extra},
    }


def event(name: str, reason: str, count: int, hours_ago: float, message: str, **extra: Any) -> Any:
    """A core/v1 Event about a pod of net-bad, last seen ``hours_ago``."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "net-bad"},
        "involvedObject": {"kind": "Pod", "namespace": "net-bad", "name": "web-7d9f"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "kubelet", "host": "localhost"},
        **extra,
    }


def series_event() -> dict[str, Any]:
    """An Event in the events.k8s.io style: first seen 6 h ago (eventTime), repeated 4 times,
    last 20 min ago (series.lastObservedTime): inside a 4 h window."""
    now = dt.datetime.now(dt.UTC)
    first, last = now - dt.timedelta(hours=6), now - dt.timedelta(minutes=20)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.7", "namespace": "net-bad"},
        "involvedObject": {"kind": "Pod", "namespace": "net-bad", "name": "waiting"},
        "reason": "Unhealthy",
        "message": "Readiness probe failed: HTTP probe failed with statuscode: 503",
        "type": "Warning",
        "eventTime": first.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "series": {"count": 4, "lastObservedTime": last.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
        "reportingComponent": "kubelet",
        "reportingInstance": "localhost",
        "action": "Probe",
    }


def endpoints_of(cluster: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.api_get(f"/api/v1/namespaces/{namespace}/endpoints/{name}"))


@pytest.fixture(scope="module")
def network(kube_cluster: Any) -> Iterator[Any]:
    cluster = kube_cluster
    objects: list[Any] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES
    ]
    objects += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "opscheck-tls-secrets", "namespace": n},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "opscheck-tls-secrets",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "opscheck", "namespace": "opscheck"}],
        }
        for n in TLS_BOUND
    ]
    # net-good: a ready service, two services opscheck does not judge, an admitted ingress.
    objects += [
        pod("net-good", "web", {"app": "web"}),
        service("net-good", "web", {"app": "web"}),
        service("net-good", "manual", None),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "elsewhere", "namespace": "net-good"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com"},
        },
        tls_secret("net-good", "shop-tls", "shop.example.com", 90),
        ingress("net-good", "shop", "shop.example.com", "shop-tls"),
    ]
    # net-bad: a pod that never turns Ready (its readiness gate is never set), no pod for
    # `nobody`, certificates expiring and expired, an ingress no controller admitted.
    objects += [
        pod(
            "net-bad",
            "waiting",
            {"app": "waiting"},
            readinessGates=[{"conditionType": "example.com/load-balancer-attached"}],
        ),
        service("net-bad", "waiting", {"app": "waiting"}),
        service("net-bad", "nobody", {"app": "nobody"}),
        tls_secret("net-bad", "soon-tls", "soon.example.com", 5),
        tls_secret("net-bad", "old-tls", "old.example.com", -2),
        ingress("net-bad", "soon", "soon.example.com", "soon-tls", "www.soon.example.com"),
        ingress("net-bad", "old", "old.example.com", "old-tls"),
        event(
            "web.1",
            "BackOff",
            7,
            1,
            "Back-off restarting failed container main in pod web-7d9f_net-bad"
            "(5f1c2a9e-3b7d-4c8e-9a6f-1d2e3f4a5b6c)",
        ),
        event(
            "web.2",
            "BackOff",
            2,
            2,
            "Back-off restarting failed container main in pod web-7d9f_net-bad"
            "(0a1b2c3d-3b7d-4c8e-9a6f-1d2e3f4a5b6c)",
        ),
        event("web.3", "FailedMount", 3, 3, 'MountVolume.SetUp failed for volume "data"'),
        event("web.4", "FailedMount", 40, 5, "outside the 4h window"),
        event("web.5", "BackOff", 100, 30, "outside the 4h window"),
        {**event("web.6", "Started", 50, 0.5, "Started container main"), "type": "Normal"},
        series_event(),
    ]
    # net-locked: a secret opscheck may not read; net-missing: a secret that is not there.
    objects += [
        tls_secret("net-locked", "locked-tls", "locked.example.com", 90),
        ingress("net-locked", "locked", "locked.example.com", "locked-tls"),
        ingress("net-missing", "nocert", "nocert.example.com", "absent-tls"),
    ]
    cluster.apply(*objects)
    for namespace, name, ip in (
        ("net-good", "shop", "192.0.2.10"),
        ("net-bad", "soon", "192.0.2.11"),
        ("net-locked", "locked", "192.0.2.12"),
        ("net-missing", "nocert", "192.0.2.13"),
    ):
        cluster.apply_status(with_address(ingress(namespace, name, "x", None), ip))
    cluster.wait_for(
        lambda: (endpoints_of(cluster, "net-good", "web").get("subsets") or [{}])[0].get(
            "addresses"
        ),
        90,
        "a ready address behind net-good/web",
    )
    cluster.wait_for(
        lambda: (endpoints_of(cluster, "net-bad", "waiting").get("subsets") or [{}])[0].get(
            "notReadyAddresses"
        ),
        90,
        "a not-ready address behind net-bad/waiting",
    )
    cluster.wait_for(  # its address is listed while the pod may still be Pending
        lambda: (
            cluster.api_get("/api/v1/namespaces/net-bad/pods?labelSelector=app%3Dwaiting")["items"][
                0
            ]["status"]["phase"]
            == "Running"
        ),
        90,
        "the net-bad/waiting pod Running",
    )
    yield cluster
    cluster.kubectl("delete", "namespace", "--wait=false", *NAMESPACES, check=False)


def inventory(cluster: Any) -> str:
    blocks = [
        ("good", ["net-good"], ""),
        ("bad", ["net-bad"], 'events_window = "4h"\n'),
        ("locked", ["net-locked"], ""),
        ("missing", ["net-missing"], ""),
        ("off", ["net-locked"], "ingress_tls = false\n"),
    ]
    return "".join(
        f'[[kubernetes]]\nname = "{name}"\nkubeconfig = "{cluster.opscheck_kubeconfig}"\n'
        f'namespaces = {namespaces!r}\ntimeout = "10s"\n{extra}\n'.replace("'", '"')
        for name, namespaces, extra in blocks
    )


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def shown(result: dict[str, Any]) -> str:
    """The message and the detail of a test's result, as the report shows them."""
    return f"{said(result)}\n{result.get('detail') or ''}"


def test_services_ingresses_and_events(suite, network):
    suite.run(inventory(network), THRESHOLDS, paths=PATHS)
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}
    message = {n: said(r) for n, r in res.items()}

    # Healthy: every check passes, with what it measured.
    good = {n: o for n, o in outcome.items() if n.endswith("[good]")}
    assert good == dict.fromkeys(good, "passed") and len(good) == 4, message
    assert res["test_service_endpoints[good]"]["measured"] == "1 service with ready endpoints"
    assert res["test_ingress_address[good]"]["measured"] == "1 ingress with an address"
    record = res["test_ingress_tls_expiry[good]"]["records"][0]
    assert record["subject"] == "net-good/shop/shop.example.com"
    assert 89.9 < record["value"] <= 90, record
    assert (
        record["detail"] == "secret net-good/shop-tls: CN=shop.example.com; names shop.example.com"
    )
    assert res["test_warning_events[good]"]["measured"] == (
        "0 events not Normal in the last 24 h in namespaces net-good"
    )

    # Broken: each names the objects and why.
    bad = shown(res["test_service_endpoints[bad]"])
    assert outcome["test_service_endpoints[bad]"] == "failed"
    assert "2 of 2 services without a ready endpoint: net-bad/nobody, net-bad/waiting" in bad
    assert outcome["test_ingress_address[bad]"] == "failed"
    lacking = shown(res["test_ingress_address[bad]"])
    assert "1 of 2 ingresses without an address: net-bad/old" in lacking, lacking
    tls = message["test_ingress_tls_expiry[bad]"]
    assert outcome["test_ingress_tls_expiry[bad]"] == "failed"
    assert re.search(
        r"net-bad/soon/soon.example.com expires in (4\.9|5\.0) days \(\S+\) < crit 14", tls
    )
    assert "net-bad/old/old.example.com expired 2.0 days ago" in tls, tls
    assert "net-bad/soon/www.soon.example.com expires in" in tls, tls
    assert "www.soon.example.com is not among its names < crit 14" in tls, tls
    assert (
        "net-bad/waiting: 1 address not ready; 1 pod with app=waiting, 1 not ready (1 Running)"
        in bad
    )
    assert "net-bad/nobody: no address; no pod matches the selector app=nobody" in bad
    assert (
        "net-bad/old: no load-balancer address (no ingress class; hosts old.example.com)" in lacking
    )
    events = shown(res["test_warning_events[bad]"])
    assert outcome["test_warning_events[bad]"] == "failed"
    # Within 4 h: 7 + 2 BackOff, 4 Unhealthy (a series last seen 20 min ago), 3 FailedMount;
    # not the 5 h and 30 h ones, nor the Normal one.
    counted = "16 events not Normal in the last 4 h in namespaces net-bad: BackOff 9, Unhealthy 4, "
    assert counted + "FailedMount 3 > crit 10" in events, events
    assert "4  Pod net-bad/waiting (Unhealthy)" in events
    assert (
        "9  BackOff: Back-off restarting failed container main in pod web-7d9f_net-bad(<uuid>)"
        in events
    )
    assert "3  Pod net-bad/web-7d9f (FailedMount)" in events
    assert outcome["test_ingress_tls_expiry[locked]"] == "failed"
    assert message["test_ingress_tls_expiry[locked]"].endswith(
        "forbidden: grant get on secrets in namespace net-locked (bind the ClusterRole "
        "opscheck-tls-secrets there, or set ingress_tls = false)"
    ), message["test_ingress_tls_expiry[locked]"]
    assert outcome["test_ingress_tls_expiry[missing]"] == "failed"
    assert message["test_ingress_tls_expiry[missing]"].endswith(
        "net-missing/nocert: TLS secret net-missing/absent-tls not found"
    ), message["test_ingress_tls_expiry[missing]"]
    assert outcome["test_ingress_tls_expiry[off]"] == "skipped"
    assert "ingress_tls = false" in message["test_ingress_tls_expiry[off]"]
    assert outcome["test_service_endpoints[locked]"] == "skipped"
    assert "no service with a pod selector" in message["test_service_endpoints[locked]"]


@pytest.mark.parametrize(
    ("host", "names", "covered"),
    [
        ("shop.example.com", ["shop.example.com"], True),
        ("Shop.Example.com", ["shop.example.com"], True),
        ("shop.example.com", ["*.example.com"], True),
        ("a.shop.example.com", ["*.example.com"], False),  # a wildcard covers one label
        ("example.com", ["*.example.com"], False),
        ("api.example.com", ["shop.example.com", "www.example.com"], False),
    ],
)
def test_certificate_names_cover_host(host, names, covered):
    from opscheck.probes.kubernetes_network import _matches

    assert _matches(host, names) is covered


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/api/v1/namespaces/shop/secrets/web-tls", "secrets in namespace shop"),
        ("/api/v1/namespaces/shop/pods/web-1/log", "pods/log in namespace shop"),
        ("/apis/apps/v1/namespaces/shop/deployments/web", "deployments.apps in namespace shop"),
        ("/api/v1/nodes/localhost", "/api/v1/nodes/localhost"),
    ],
)
def test_forbidden_get_names_the_rule(path, rule):
    """A 403 on a GET names the RBAC rule to add (``Kube._refused``)."""
    from opscheck.probes.kubernetes import _rbac_of

    assert _rbac_of(path) == rule
