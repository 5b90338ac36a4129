"""``[[host]]``: a machine reached through a testinfra backend."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from .base import InlineLevels, Target, at_most, unique
from .commands import HostCommand
from .host_net import Interface, Listener, ProcessLimit

BACKENDS = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "winrm")
# Files a testinfra URI may name in its query (`ssh://web1?ssh_identity_file=~/.ssh/ops`).
_URI_FILES = ("ssh_config", "ssh_identity_file", "ansible_inventory")
_PORT_EXAMPLE = "a port such as 22, 'tcp://127.0.0.1:5432', 'udp://53' or 'unix:///run/app.sock'"


def existing_file(path: str, what: str = "an existing file") -> str:
    """A path (``~`` allowed, as ssh reads it) that names a file here, where the run starts."""
    found = Path(os.path.expanduser(path))
    if not found.is_file():
        why = "a directory" if found.is_dir() else "no such file"
        raise ValueError(f"expected {what}, got {path!r} ({why})")
    return path


def _port_number(text: str) -> int | None:
    number = int(text) if text.isdigit() else 0
    return number if 1 <= number <= 65535 else None


def _port(port: int | str) -> int | str:
    """A port as testinfra's ``host.socket`` reads it (``parse_socketspec``), checked here: a
    bare ``"https"`` would otherwise end the check in a traceback inside testinfra."""
    if isinstance(port, int):
        if _port_number(str(port)) is None:
            raise ValueError(f"expected a port 1-65535, got {port}")
        return port
    protocol, scheme, address = port.partition("://")
    if not scheme:
        ok = _port_number(port) is not None
    elif protocol == "unix":
        ok = address.startswith("/")
    elif protocol in ("tcp", "udp"):
        host, colon, number = address.rpartition(":")
        ok = _port_number(number) is not None and (not colon or _is_ip(host))
    else:
        ok = False
    if not ok:
        raise ValueError(f"expected {_PORT_EXAMPLE}, got {port!r}")
    return port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_port(item: str) -> str:
    """``host:port`` (``[::1]:5432`` for IPv6), as the connect command on the host takes it."""
    host, _, port = item.rpartition(":")
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", name) or _port_number(port) is None:
        raise ValueError(f"expected 'host:port' with a port 1-65535, got {item!r}")
    return item


def _service(name: str) -> str:
    if not re.fullmatch(r"[^\s/]+", name):
        raise ValueError(f"expected a systemd unit or process name, got {name!r}")
    return name


def _disk(name: str) -> str:
    # A block device as /proc/diskstats names it: no "/" (not "/dev/sda"), no whitespace.
    if not re.fullmatch(r"[^\s/]{1,32}", name):
        raise ValueError(
            f"expected a block device name as /proc/diskstats shows it, such as 'sda', "
            f"'nvme0n1' or 'dm-0', got {name!r}"
        )
    return name


def _absolute(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"expected an absolute path such as '/var/log', got {path!r}")
    return path


class HostTarget(Target):
    uri: str = "local://"
    ssh_identity_file: Annotated[str, AfterValidator(existing_file)] | None = None
    ssh_config: Annotated[str, AfterValidator(existing_file)] | None = None
    ssh_extra_args: str | None = None
    sudo: bool = False
    mounts: Annotated[list[Annotated[str, AfterValidator(_absolute)]], unique("mount")] = Field(
        default_factory=list
    )
    services: Annotated[list[Annotated[str, AfterValidator(_service)]], unique("service")] = Field(
        default_factory=list
    )
    ports: Annotated[list[Annotated[int | str, AfterValidator(_port)]], unique("port")] = Field(
        default_factory=list
    )
    log_dirs: Annotated[list[Annotated[str, AfterValidator(_absolute)]], unique("directory")] = (
        Field(default_factory=list)
    )
    reachable: Annotated[list[Annotated[str, AfterValidator(_host_port)]], unique("address")] = (
        Field(default_factory=list)
    )
    # The sample is a `sleep` inside one command on the host: the check and the host's ssh
    # session are held that long.
    cpu_sample: Annotated[
        float, at_most("30s", "the check holds a command on the host open that long")
    ] = 1.0
    fail2ban: bool = False  # `fail2ban-client status`: the server answers, its jails and bans
    # Block devices whose busy share is sampled over `io_sample` (`iostat -x` %util, from
    # /proc/diskstats' io_ticks): "sda", "nvme0n1", "vda", "dm-0".
    disks: Annotated[list[Annotated[str, AfterValidator(_disk)]], unique("disk")] = Field(
        default_factory=list
    )
    io_sample: Annotated[
        float, at_most("30s", "the check holds a command on the host open that long")
    ] = 1.0
    # Network and processes (opscheck.probes.host_net): interfaces up and their counters, no
    # TCP listener beyond `listening` (when set), per-process limits.
    interfaces: Annotated[list[Interface], unique("interface")] = Field(default_factory=list)
    listening: Annotated[list[Listener], unique("listener")] = Field(default_factory=list)
    processes: Annotated[list[ProcessLimit], unique("process", key=lambda p: p.name)] = Field(
        default_factory=list
    )
    # The operator's own read-only commands (opscheck.probes.host_commands), one test each.
    commands: Annotated[
        list[HostCommand], unique("command", "its name is the test id", key=lambda c: c.name)
    ] = Field(default_factory=list)

    @field_validator("uri")
    @classmethod
    def _known_backend(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in BACKENDS:
            raise ValueError(
                f"expected a testinfra URI such as 'local://' or 'ssh://user@host', got {uri!r}"
            )
        if scheme == "local":
            return uri
        parts = urlsplit(uri)
        if not parts.hostname:
            raise ValueError(
                f"expected a host after {scheme}://, such as '{scheme}://user@host', got {uri!r}"
            )
        try:
            parts.port  # noqa: B018 - urllib checks the port when it is read
        except ValueError:
            raise ValueError(f"expected a port 1-65535 after the host, got {uri!r}") from None
        if scheme == "kubectl" and parts.path.strip("/"):
            # testinfra takes only the part before "/" as the pod: 'kubectl://deployment/web'
            # would run every command in a pod named "deployment"
            raise ValueError(
                "expected one pod, as 'kubectl://<pod>?namespace=<namespace>&container=<name>' "
                f"(testinfra's kubectl backend names no deployment or other kind), got {uri!r}"
            )
        query = parse_qs(parts.query)
        for key in _URI_FILES:
            for path in query.get(key, []):
                existing_file(path, f"an existing file for {key}")
        return uri

    @field_validator("ssh_identity_file", "ssh_config", "ssh_extra_args")
    @classmethod
    def _ssh_keys_for_ssh(cls, value: str | None, info: ValidationInfo) -> str | None:
        uri = info.data.get("uri", "")
        if value is not None and uri.startswith("local://"):
            raise ValueError(f"expected uri = 'ssh://…' for this key, got uri = {uri!r}")
        return value

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, command in enumerate(self.commands):
            yield from command.inline_levels(index)
