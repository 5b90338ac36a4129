"""WebSocket servers on loopback (the ``websockets`` library), for the ``[[websocket]]`` checks:
plain and TLS (valid, expired, expiring, wrong host; the HTTP testbed's certificates), and routes
that misbehave.

    with WebsocketTestbed(token="s3cret") as bed:
        bed.url("wss", "/echo")     # wss://127.0.0.1:PORT/echo, trusted by bed.ca_path
        bed.url("ws", "/freeze")    # the server freezes (SIGSTOP) once the handshake is done

Routes: ``/echo`` echoes; ``/greet`` sends "welcome" first, then echoes; ``/wrong`` answers every
message "error: unknown command"; ``/close`` closes (1008) on the first message; ``/auth``
refuses the handshake (401) without ``Authorization: Bearer <token>``; ``/freeze`` stops the
whole server process (SIGSTOP) right after its handshake: connections stay open, nothing is
answered, not even a ping, until ``resume()``. Other paths: 404.

The servers run in one child process (``python -m opscheck.testbed.websocket``), so that it can
be frozen; ``stop()`` thaws it first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

from opscheck.testbed import free_port
from opscheck.testbed.http import CERTIFICATES, make_certificates
from opscheck.testbed.process import ServerProcess

WRONG_REPLY = "error: unknown command"
SERVERS = ("ws", *CERTIFICATES)  # ws, then https (valid), expired, expiring, wrong_host


def _scheme(server: str) -> str:
    return "ws" if server == "ws" else "wss"


class WebsocketTestbed(ServerProcess):
    """One child process serving plain ws:// and four wss:// servers; ``refused`` has none."""

    kind = "WebSocket testbed"
    start_timeout = 30.0  # a Python child importing websockets: seconds on a loaded 2-core box

    def __init__(self, token: str = "testbed-token") -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="opscheck-ws-")
        super().__init__(Path(self._tmp.name) / "server.log", env={"WS_TESTBED_TOKEN": token})
        self.token = token
        self.ports: dict[str, int] = {}
        self.port = 0

    @property
    def ca_path(self) -> str:
        """The CA bundle that trusts the wss:// servers' certificates."""
        return str(Path(self._tmp.name) / "ca.pem")

    def url(self, server: str = "ws", path: str = "/echo", host: str = "127.0.0.1") -> str:
        """``ws://127.0.0.1:PORT/echo``; server ``https`` is the valid wss:// one, ``refused``
        a port nothing listens on."""
        if server == "refused":
            return f"ws://{host}:{free_port()}{path}"
        return f"{_scheme(server)}://{host}:{self.ports[server]}{path}"

    def __str__(self) -> str:
        return f"{self.kind} on 127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        make_certificates(Path(self._tmp.name))
        self.ports = {server: free_port() for server in SERVERS}
        self.port = self.ports["ws"]
        ports = ",".join(f"{server}={port}" for server, port in self.ports.items())
        return [sys.executable, "-m", "opscheck.testbed.websocket", self._tmp.name, ports]

    def ready(self) -> bool:
        from websockets.sync.client import connect

        trusted = ssl.create_default_context(cafile=self.ca_path)
        anything = ssl.create_default_context()
        anything.check_hostname, anything.verify_mode = False, ssl.CERT_NONE
        contexts = {"ws": None, "https": trusted}
        try:
            for server in SERVERS:  # every server answers a handshake and echoes
                context = contexts.get(server, anything)
                with connect(self.url(server), ssl=context, open_timeout=1, proxy=None) as ws:
                    ws.send("ready?")
                    ws.recv(timeout=1)
        except Exception:  # not up yet: refused, reset, a handshake cut short
            return False
        return True

    def _halt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._paused = True  # /freeze stopped it: thawed before the stop signal
        super()._halt()
        self._tmp.cleanup()


# -- the child process ---------------------------------------------------------------------------


async def _handler(ws: Any) -> None:
    path = ws.request.path
    if path == "/freeze":
        os.kill(os.getpid(), signal.SIGSTOP)  # after the 101 was written: a frozen server
    if path == "/greet":
        await ws.send("welcome")
    async for message in ws:
        if path == "/wrong":
            await ws.send(WRONG_REPLY)
        elif path == "/close":
            await ws.close(1008, "unauthenticated")
        else:
            await ws.send(message)


def _refuse(token: str) -> Any:
    def process_request(ws: Any, request: Any) -> Any:
        path = request.path
        if path not in ("/echo", "/greet", "/wrong", "/close", "/auth", "/freeze"):
            return ws.respond(404, "not found\n")
        if path == "/auth" and request.headers.get("Authorization") != f"Bearer {token}":
            return ws.respond(401, "unauthorized\n")
        return None

    return process_request


async def _serve(directory: Path, ports: dict[str, int], token: str) -> None:
    from websockets.asyncio.server import serve

    async with contextlib.AsyncExitStack() as stack:
        for server, port in ports.items():
            context = None
            if server != "ws":
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(directory / f"{server}.pem", directory / "server-key.pem")
            await stack.enter_async_context(
                serve(
                    _handler,
                    "127.0.0.1",
                    port,
                    ssl=context,
                    process_request=_refuse(token),
                    ping_interval=None,
                )
            )
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("directory", type=Path, help="where make_certificates wrote the certs")
    parser.add_argument("ports", help="server=port,... for ws, https, expired, expiring, ...")
    args = parser.parse_args(argv)
    ports = {k: int(v) for k, v in (pair.split("=") for pair in args.ports.split(","))}
    asyncio.run(_serve(args.directory, ports, os.environ.get("WS_TESTBED_TOKEN", "")))


if __name__ == "__main__":
    main()
