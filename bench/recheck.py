"""What ``--recheck`` and the end-of-run notifications cost.

    .venv/bin/python bench/recheck.py [--targets 50] [--delay 5] [--runs 3]

1. **Recheck**: ``--targets`` HTTP endpoints on one real local server, each answering 500 to its
   first request and 200 after: every status check is CRIT, then OK when measured again
   ``--delay`` seconds later (FLAKY). Times ``pytest -k status_expected`` with the recheck off
   (every check fails at once), on (the rechecks wait side by side), and on with
   ``--concurrency 1`` (one after another: ``targets × delay``, so only with ``--serial``).
2. **Notifications and heartbeat**: the same run of healthy endpoints with ``[settings.notify]
   on = "always"`` (Slack and JSON webhook) and ``[settings.heartbeat]`` to a real local
   receiver, against ``--no-notify``; and with the receiver gone (connection refused).

Medians of ``--runs`` wall times, in seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from _timing import REPO

from opscheck.testbed import free_port


class _FirstFails(BaseHTTPRequestHandler):
    """500 to a path's first request, 200 after; 200 to everything else (a receiver)."""

    seen: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.lock:
            self.seen[self.path] += 1
            first = self.seen[self.path] == 1
        status = 500 if first and self.path.startswith("/flaky") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def _serve() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FirstFails)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


SAID: dict[str, str] = {}  # the last summary line of each case's runs


def _run(folder: Path, inventory: str, *args: str, env: dict[str, str] | None = None) -> float:
    (folder / "inventory.toml").write_text(inventory)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k"]
    command += ["status_expected", f"--inventory={folder / 'inventory.toml'}", *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env or None)
    took = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    SAID[" ".join(args)] = lines[-1] if lines else done.stderr.strip()[-200:]
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serial", action="store_true", help="also time --concurrency 1")
    options = parser.parse_args()
    server = _serve()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    rows: list[tuple[str, list[float]]] = []

    def endpoints(path: str) -> str:
        return "".join(
            f'[[http]]\nname = "api{n}"\nurl = "{base}/{path}/{n}/{{run}}"\nsamples = 0\n'
            for n in range(options.targets)
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        recheck = f"[settings.recheck]\nenabled = true\ndelay = {options.delay}\n"
        cases: list[tuple[str, str, tuple[str, ...]]] = [("recheck off (every check CRIT)", "", ())]
        cases.append((f"recheck on, delay {options.delay:g} s (all FLAKY)", recheck, ()))
        if options.serial:
            cases.append(("recheck on, --concurrency 1", recheck, ("--concurrency", "1")))
        for case, (label, settings, args) in enumerate(cases):
            times = []
            for run in range(options.runs):  # a fresh path per run: its first request fails
                text = settings + endpoints("flaky").replace("{run}", f"c{case}r{run}")
                times.append(_run(folder, text, *args))
            rows.append((f"{label}: {SAID[' '.join(args)]}", times))
        env = {**os.environ, "BENCH_HOOK": f"{base}/hook", "BENCH_BEAT": f"{base}/beat"}
        notify = (
            '[settings.notify]\non = "always"\n[settings.notify.slack]\nurl_env = "BENCH_HOOK"\n'
            '[settings.notify.webhook]\nurl_env = "BENCH_HOOK"\n'
            '[settings.heartbeat]\nurl_env = "BENCH_BEAT"\n'
        )
        healthy = notify + endpoints("ok").replace("{run}", "x")
        quiet: tuple[str, ...] = ("--no-notify",)
        for label, args in (("healthy run, --no-notify", quiet), ("healthy run, notify", ())):
            rows.append((label, [_run(folder, healthy, *args, env=env) for _ in range(3)]))
        closed = f"http://127.0.0.1:{free_port()}"
        gone = {**env, "BENCH_HOOK": f"{closed}/hook", "BENCH_BEAT": f"{closed}/beat"}
        rows.append(
            ("healthy run, receiver gone", [_run(folder, healthy, env=gone) for _ in range(3)])
        )
    server.shutdown()
    print(f"{options.targets} HTTP targets, medians of wall seconds:")
    for label, times in rows:
        print(f"  {statistics.median(times):6.2f} s  {label}")


if __name__ == "__main__":
    main()
