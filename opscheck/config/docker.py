"""``[[docker]]``: a Docker Engine and the containers (or compose project) expected on it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from . import urls
from .base import Target, unique

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"


def _names(kind: str) -> Any:
    return unique(kind, "each is checked once")


class DockerTarget(Target):
    url: str = "unix:///var/run/docker.sock"  # or tcp://host:2376 (TLS from DOCKER_CERT_PATH)
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

    @field_validator("url")
    @classmethod
    def _docker_url(cls, url: str) -> str:
        if url.startswith("unix://"):
            path = url.removeprefix("unix://")
            if not path.startswith("/") or "@" in url or any(c.isspace() for c in url):
                raise ValueError(
                    f"expected a socket path such as 'unix:///var/run/docker.sock', got {url!r}"
                )
            return url
        urls.checked(
            url, ("tcp",), "a unix:// or tcp:// URL", "use the daemon's TLS client certificates"
        )
        return url

    @model_validator(mode="after")
    def _services_need_project(self) -> DockerTarget:
        if self.services and self.project is None:
            raise ValueError("expected project with services (they are a compose project's)")
        return self
