"""A real OpenSSH server on a free loopback port, logged in to as root with a generated key.

``with Sshd(tmp_dir) as sshd: inventory = sshd.host_block("remote", services=["sshd"])``
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opscheck.testbed import free_port
from opscheck.testbed.process import ServerProcess

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by its absolute path
# The testbed's host key is new on every start: do not check it, do not remember it, and keep
# ssh's "Permanently added ..." warning out of every command's stderr.
SSH_EXTRA_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


class SshdError(RuntimeError):
    """sshd did not start; the message holds its log."""


def _write_key(path: Path) -> str:
    """Write a new ed25519 private key (mode 600, as ssh demands) and return its public line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return public.decode()


def toml_value(value: object) -> str:
    """Render a str, bool, number or list of them as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def host_block(name: str, uri: str = "local://", **fields: object) -> str:
    """Render one ``[[host]]`` inventory table; ``None`` fields are left out."""
    lines = ["[[host]]", f"name = {toml_value(name)}", f"uri = {toml_value(uri)}"]
    lines += [f"{key} = {toml_value(value)}" for key, value in fields.items() if value is not None]
    return "\n".join(lines) + "\n"


class Sshd(ServerProcess):
    """``/usr/sbin/sshd -D -e`` with its own config, host key and authorized client key."""

    kind = "sshd"
    error = SshdError

    def __init__(self, directory: Path, port: int | None = None, user: str = "root") -> None:
        self.directory = Path(directory)
        super().__init__(self.directory / "sshd.log")
        self.port = port or free_port()
        self.user = user
        self.identity_file = self.directory / "id_ed25519"
        self.config_file = self.directory / "sshd_config"
        self.ssh_extra_args = SSH_EXTRA_ARGS  # what a client of this throw-away server needs

    @property
    def uri(self) -> str:
        """The testinfra URI: ``ssh://root@127.0.0.1:PORT``."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def host_block(self, name: str, **fields: object) -> str:
        """A ``[[host]]`` inventory table that reaches this server over ssh."""
        return host_block(
            name,
            self.uri,
            ssh_identity_file=str(self.identity_file),
            ssh_extra_args=self.ssh_extra_args,
            **fields,
        )

    def command(self) -> list[str]:
        return [SSHD, "-D", "-e", "-f", str(self.config_file)]

    def _launch(self) -> None:
        """Write keys and config, then start sshd."""
        self.directory.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
        host_key = self.directory / "ssh_host_ed25519_key"
        _write_key(host_key)
        authorized = self.directory / "authorized_keys"
        authorized.write_text(_write_key(self.identity_file) + " opscheck-testbed\n")
        settings = {
            "Port": self.port,
            "ListenAddress": "127.0.0.1",
            "HostKey": host_key,
            "PidFile": self.directory / "sshd.pid",
            "AuthorizedKeysFile": authorized,
            "PermitRootLogin": "prohibit-password",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "UsePAM": "no",
            "StrictModes": "no",
            # bash reads ~/.bashrc for every ssh command when SHLVL < 2; this machine's root
            # .bashrc (pyenv init) costs ~0.1 s a command, which a target need not have.
            "SetEnv": "SHLVL=1",
        }
        self.config_file.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        super()._launch()

    def ready(self) -> bool:
        """It listens (its log says so: another sshd on the port would answer too) and answers
        with its banner."""
        if "Server listening on" not in self.output():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False
