"""``[[kubernetes]]``: a cluster reached through a kubeconfig context (or the in-cluster service
account), the namespaces and labels its checks look at."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from .base import Duration, Target, unique

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class KubernetesTarget(Target):
    # A kubeconfig file (`~` allowed); default: $KUBECONFIG, else ~/.kube/config.
    kubeconfig: str | None = Field(default=None, min_length=1)
    context: str | None = Field(default=None, min_length=1)  # default: the current-context
    # Inside a pod: the mounted service-account token and CA (the in-cluster CronJob).
    in_cluster: bool = False
    # Namespaces the checks read; empty: all of them (the account must list cluster-wide).
    namespaces: Annotated[
        list[Annotated[str, Field(pattern=_DNS_LABEL)]], unique("namespace", "each is read once")
    ] = Field(default_factory=list)
    # `kubectl -l`: only pods, workloads, services, ingresses, jobs and claims with these labels.
    label_selector: str | None = Field(default=None, min_length=1)
    # test_ingress_tls_expiry reads the TLS secrets ingresses name: `get secrets`, granted by the
    # opt-in ClusterRole opscheck-tls-secrets per namespace. false: that check skips.
    ingress_tls: bool = True
    # test_warning_events counts events not Normal seen within this window ("24h", "4h").
    events_window: Duration = 86400.0
    # test_pod_restarts / test_no_oom_kills count containers whose last termination finished
    # within this window ("24h", "1h").
    restarts_window: Duration = 86400.0
    # test_pvc_usage_below_limit runs `df` in a pod that mounts each claim: `create pods/exec`,
    # granted by the opt-in role opscheck-exec per namespace. false: that check skips.
    pvc_usage: bool = False

    @model_validator(mode="after")
    def _one_way_in(self) -> KubernetesTarget:
        if self.in_cluster and (self.kubeconfig or self.context):
            raise ValueError(
                "expected in_cluster = true (the pod's service account) or kubeconfig/context, "
                "not both"
            )
        return self
