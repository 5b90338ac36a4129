"""``[[docker]]``: a Docker Engine and the containers (or compose project) expected on it."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from . import urls
from .base import Target, unique

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def _names(kind: str) -> Any:
    return unique(kind, "each is checked once")


_SSH = re.compile(r"ssh://([A-Za-z0-9_.:@/-]+?)/?")


class DockerTarget(Target):
    # unix:///var/run/docker.sock, tcp://host:2376 (TLS from DOCKER_CERT_PATH), or ssh://<name of
    # a [[host]] target>: the daemon's ``socket`` on that host, through its ssh connection.
    url: str = "unix:///var/run/docker.sock"
    socket: str = Field(default="/var/run/docker.sock", pattern=r"^/[^\s]*$")
    # A compose project: its containers are those labelled com.docker.compose.project=<project>.
    project: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # Compose services of `project` that must have a running container.
    services: Annotated[list[Annotated[str, Field(pattern=f"^{_NAME}$")]], _names("service")] = (
        Field(default_factory=list)
    )
    # Container names that must exist and run (with or without a project).
    containers: Annotated[
        list[Annotated[str, Field(pattern=f"^/?{_NAME}$")]], _names("container")
    ] = Field(default_factory=list)

    # `docker system df` (GET /system/df): sizes of images, volumes and build cache. Opt-in: the
    # daemon walks every volume to size it, which takes minutes on a big host.
    system_df: bool = False

    @property
    def host(self) -> str | None:
        """The ``[[host]]`` whose ssh connection reaches the daemon (``ssh://<host>``); it must
        be a target of the inventory, as ``host = ...`` of logs and SQLite files must."""
        match = _SSH.fullmatch(self.url)
        return match.group(1) if match else None

    @field_validator("url")
    @classmethod
    def _docker_url(cls, url: str) -> str:
        if url.startswith("ssh://"):
            if not _SSH.fullmatch(url) or "@" in url or ":" in url.removeprefix("ssh://"):
                raise ValueError(
                    "expected ssh://<name of a [[host]] target> (its user, port and keys are "
                    f"the host's), got {url!r}"
                )
            return url
        if url.startswith("unix://"):
            path = url.removeprefix("unix://")
            if not path.startswith("/") or "@" in url or any(c.isspace() for c in url):
                raise ValueError(
                    f"expected a socket path such as 'unix:///var/run/docker.sock', got {url!r}"
                )
            return url
        urls.checked(
            url,
            ("tcp",),
            "a unix://, tcp:// or ssh:// URL",
            "use the daemon's TLS client certificates",
        )
        return url

    @model_validator(mode="after")
    def _services_need_project(self) -> DockerTarget:
        if self.services and self.project is None:
            raise ValueError("expected project with services (they are a compose project's)")
        return self

    @model_validator(mode="after")
    def _socket_needs_ssh(self) -> DockerTarget:
        if "socket" in self.model_fields_set and self.host is None:
            raise ValueError("expected socket with an ssh:// url only (the url names the socket)")
        return self
