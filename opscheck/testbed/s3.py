"""An S3-compatible server: moto's, in a thread of this process, on a free loopback port,
checking request signatures like S3 does (an IAM user's keys, or 403).

    with S3Server() as s3:
        s3.bucket("backups")
        s3.put("backups", "postgres/2026/11/25/app.dump", data, age=30 * 3600)
        table = s3.location("backups", "postgres/{date:%Y/%m/%d}/")  # the [[backup]] s3 = {...}

The keys are handed to a suite as environment variables (``S3_KEY_ID``, ``S3_SECRET`` unless
told otherwise), as an operator would. moto keeps the objects in this process, which is how
``put(..., age=...)`` can date an object back, as ``os.utime`` does for a file. For the same
reason it cannot be SIGSTOPped: ``pause()`` freezes it from inside (connections are accepted,
no request is answered) until ``resume()``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from opscheck.testbed import free_port
from opscheck.testbed.process import Service

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
_EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


class S3Error(RuntimeError):
    """moto's server did not start; says why."""


class S3Server(Service):
    """moto's server with one IAM user allowed ``s3:*``; ``stop()`` turns checking off again."""

    kind = "moto S3 server"
    error = S3Error
    # How long a paused server holds a request at most: a safety net, should a test forget
    # resume() (the handler threads are werkzeug's; stop() lets them go first).
    PAUSE_LIMIT = 300.0
    # moto's IAM users and its request checking belong to the process, not to a server:
    # servers running at once (a test's own beside a session's) share one user's keys, and
    # checking is turned off when the last one stops.
    _shared: ClassVar[threading.Lock] = threading.Lock()
    _running: ClassVar[int] = 0
    _keys: ClassVar[tuple[str, str]] = ("", "")

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.access_key_id = ""
        self.secret_access_key = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._answering = threading.Event()
        self._answering.set()
        self._counted = False  # among the servers running (S3Server._running)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _launch(self) -> None:
        """Serve moto's app in a thread, then create the IAM user. The socket is bound here: a
        taken port raises OSError, where ``ThreadedMotoServer`` waits forever and werkzeug's
        own binding calls ``sys.exit``."""
        from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        moto = DomainDispatcherApplication(create_backend_app)

        def app(environ: Any, start_response: Any) -> Any:
            self._answering.wait(self.PAUSE_LIMIT)  # paused: the request was read, no answer
            return moto(environ, start_response)

        with socket.create_server(("127.0.0.1", self.port)) as listener:  # werkzeug dups it
            self._server = make_server(
                "127.0.0.1",
                self.port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
                fd=listener.fileno(),
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"testbed-s3-{self.port}", daemon=True
        )
        self._thread.start()
        with S3Server._shared:
            if not S3Server._running:
                S3Server._keys = self._create_user()
                self._auth("0")  # from now on every request is signed with a known key
            S3Server._running += 1
            self._counted = True
        self.access_key_id, self.secret_access_key = S3Server._keys

    def _create_user(self) -> tuple[str, str]:
        """An IAM user allowed ``s3:*``, made while nothing is checked; its key and secret."""
        iam = self._client("iam", "setup", "setup")
        user = f"opscheck-backup-{self.port}"  # one per first server: moto keeps the old ones
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(_EVERYTHING))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def _halt(self) -> None:
        """Stop the server; request checking is a setting of the process: the last server
        running turns it off."""
        import requests

        self.resume()
        if self._thread is not None:
            with S3Server._shared:
                S3Server._running -= self._counted
                if self._counted and not S3Server._running:
                    with contextlib.suppress(requests.RequestException):
                        self._auth("inf")
                self._counted = False
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        if self._server is not None:
            self._server.server_close()
            self._server = None

    def pause(self) -> None:
        """Freeze the server: connections are accepted and requests read, none is answered
        (a hung endpoint, a proxy whose backend is gone) until ``resume()``."""
        self._answering.clear()

    def resume(self) -> None:
        """Answer again, the held requests first."""
        self._answering.set()

    def _auth(self, unchecked_requests: str) -> None:
        import requests

        url = f"{self.endpoint_url}/moto-api/reset-auth"
        requests.post(url, data=unchecked_requests, timeout=5).raise_for_status()

    def _client(self, service: str, key_id: str, secret: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def client(self) -> Any:
        """An S3 client with the IAM user's keys."""
        return self._client("s3", self.access_key_id, self.secret_access_key)

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, body: bytes, age: float = 0.0) -> None:
        """Store an object; ``age`` seconds dates its LastModified back."""
        self.client().put_object(Bucket=bucket, Key=key, Body=body)
        if age:
            from moto.s3.models import s3_backends

            stored = s3_backends[ACCOUNT]["aws"].buckets[bucket].keys[key]
            # moto keeps LastModified as a naive UTC datetime
            when = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=age)
            stored.last_modified = when

    def location(
        self,
        bucket: str,
        prefix: str = "",
        key_id_env: str = "S3_KEY_ID",
        secret_env: str = "S3_SECRET",
    ) -> dict[str, str]:
        """The ``s3 = {...}`` table of a ``[[backup]]`` target reading this server."""
        return {
            "bucket": bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id_env": key_id_env,
            "secret_access_key_env": secret_env,
        }


if __name__ == "__main__":
    import signal

    with S3Server() as s3:
        print(f"endpoint {s3.endpoint_url}")
        print(f"export S3_KEY_ID={s3.access_key_id} S3_SECRET={s3.secret_access_key}")
        print("Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
