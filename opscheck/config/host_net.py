"""``[[host]]`` keys for network and processes: ``interfaces``, ``listening``, ``processes``."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

from opscheck import units

from .base import Strict

_LISTENER_EXAMPLE = (
    "a port such as 22, or an address and port such as '127.0.0.1:5432' or '[::1]:5432'"
)


def _interface(name: str) -> str:
    # Linux interface names: up to 15 characters, no "/" and no whitespace (dev_valid_name).
    if not re.fullmatch(r"[^\s/:]{1,15}", name) or name in (".", ".."):
        raise ValueError(f"expected a network interface name such as 'eth0', got {name!r}")
    return name


def _listener(entry: int | str) -> int | str:
    """A port (any address) or ``address:port`` (that address only); IPv6 in brackets."""
    if isinstance(entry, int):
        if not 1 <= entry <= 65535:
            raise ValueError(f"expected a port 1-65535, got {entry}")
        return entry
    address, colon, port = entry.rpartition(":")
    bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        ip = None
    ok = colon and port.isdigit() and 1 <= int(port) <= 65535 and ip is not None
    if not ok or (ip is not None and ip.version == 6 and bare == address):
        raise ValueError(f"expected {_LISTENER_EXAMPLE}, got {entry!r}")
    return entry


def _size(value: object) -> float:
    size = units.parse(value, "size")
    if size <= 0:
        raise ValueError(f"expected a size above zero such as '2GB', got {value!r}")
    return size


def _cpu(value: object) -> float:
    # ps's %CPU counts one core as 100 %: a threaded process may pass 100.
    pct = units.parse(value, "percent")
    if pct <= 0:
        raise ValueError(f"expected a CPU share above zero such as 80 or '80%', got {value!r}")
    return pct


def _process_name(name: str) -> str:
    if not re.fullmatch(r"[^\s/]{1,64}", name):
        raise ValueError(f"expected a process name as `ps -o comm` shows it, got {name!r}")
    return name


class ProcessLimit(Strict):
    """One ``processes`` entry: processes named ``name`` run, each within its limits."""

    name: Annotated[str, AfterValidator(_process_name)]
    max_memory: Annotated[float, BeforeValidator(_size)] | None = None  # resident memory (RSS)
    max_cpu: Annotated[float, BeforeValidator(_cpu)] | None = None  # ps %CPU, 100 = one core


Interface = Annotated[str, AfterValidator(_interface)]
Listener = Annotated[int | str, AfterValidator(_listener)]
