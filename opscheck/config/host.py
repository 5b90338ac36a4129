"""``[[host]]``: a machine reached through a testinfra backend."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Duration, Target

BACKENDS = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "winrm")


class HostTarget(Target):
    uri: str = "local://"
    ssh_identity_file: str | None = None
    ssh_config: str | None = None
    ssh_extra_args: str | None = None
    sudo: bool = False
    mounts: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    ports: list[int | str] = Field(default_factory=list)
    log_dirs: list[str] = Field(default_factory=list)
    reachable: list[str] = Field(default_factory=list)
    cpu_sample: Duration = 1.0
    fail2ban: bool = False  # `fail2ban-client status`: the server answers, its jails and bans

    @field_validator("uri")
    @classmethod
    def _known_backend(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in BACKENDS:
            raise ValueError(
                f"expected a testinfra URI such as 'local://' or 'ssh://user@host', got {uri!r}"
            )
        return uri

    @field_validator("reachable")
    @classmethod
    def _host_port(cls, items: list[str]) -> list[str]:
        for item in items:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected 'host:port' entries, got {item!r}")
        return items
