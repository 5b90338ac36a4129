"""Latency of kept-alive requests to the testbed's HTTP(S) servers, as the latency checks see it.

    .venv/bin/python bench/keepalive.py [--requests 20]

Starts ``HttpTestbed`` in this process and times requests on one kept-alive ``requests`` session
per server (the latency check's loop), after one warm-up request that opens the connection. A
server that answers in two small writes (headers, then body) without TCP_NODELAY holds the body
until the client's delayed ACK (~40 ms on Linux): every sample then measures the ACK timer, not
the server.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _timing import REPO  # noqa: F401 - puts the checkout on sys.path

from opscheck.testbed.http import HttpTestbed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    import requests

    print("| server | requests | median | slowest |")
    print("|---|---|---|---|")
    with HttpTestbed() as bed:
        for server in ("http", "https"):
            with requests.Session() as session:
                url = bed.url(server, "/health")
                session.get(url, verify=bed.ca_path, timeout=5).raise_for_status()
                times = []
                for _ in range(args.requests):
                    start = time.perf_counter()
                    session.get(url, verify=bed.ca_path, timeout=5).content  # noqa: B018
                    times.append(time.perf_counter() - start)
            median, slowest = statistics.median(times) * 1000, max(times) * 1000
            print(f"| {server} | {len(times)} | {median:.1f} ms | {slowest:.1f} ms |")


if __name__ == "__main__":
    main()
