"""An S3-compatible server: moto's, in a thread of this process, on a free loopback port,
checking request signatures like S3 does (an IAM user's keys, or 403).

    with S3Server() as s3:
        s3.bucket("backups")
        s3.put("backups", "postgres/2026/11/25/app.dump", data, age=30 * 3600)
        table = s3.location("backups", "postgres/{date:%Y/%m/%d}/")  # the [[backup]] s3 = {...}

The keys are handed to a suite as environment variables (``S3_KEY_ID``, ``S3_SECRET`` unless
told otherwise), as an operator would. moto keeps the objects in this process, which is how
``put(..., age=...)`` can date an object back, as ``os.utime`` does for a file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

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

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.access_key_id = ""
        self.secret_access_key = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

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
        app = DomainDispatcherApplication(create_backend_app)
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
        iam = self._client("iam", "setup", "setup")  # still unchecked: nobody has keys yet
        iam.create_user(UserName="opscheck-backup")
        iam.put_user_policy(
            UserName="opscheck-backup", PolicyName="s3", PolicyDocument=json.dumps(_EVERYTHING)
        )
        key = iam.create_access_key(UserName="opscheck-backup")["AccessKey"]
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
        self._auth("0")  # from now on every request is signed with a known key, or refused

    def _halt(self) -> None:
        """Stop the server; request checking is a setting of the process, so turn it off."""
        import requests

        if self._thread is not None:
            with contextlib.suppress(requests.RequestException):  # a failed setup, say
                self._auth("inf")
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        if self._server is not None:
            self._server.server_close()
            self._server = None

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
