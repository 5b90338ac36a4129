"""Secrets never reach an output (issue 9, group 2): canaries in every secret-carrying key, every
kind of failure made to echo them, every file and stream of the run searched for them.

Canaries are random strings handed to the suite as environment variables, as an operator hands
real secrets: ``${VAR}`` in HTTP headers, URLs and expected texts; ``password_env`` of Redis,
PostgreSQL and the restore test; ``*_env`` of an S3 location; ``${VAR}`` in ssh arguments. Two
end in a newline (invalid in a header), three are longer than any cut a message makes, one
holds the characters URL, JSON and HTML encodings change (``/+&<>"'``).

The targets echo them back, as hostile or broken servers do: an HTTP server reflecting the
request (headers, path) in its body in every encoding (raw, URL-encoded, base64 at the three
alignments inside ``Basic base64(user:secret)``, JSON- and HTML-escaped, Python repr), an S3
endpoint putting the signature and session token into its error, a Redis and a PostgreSQL
server quoting the password they were sent, a real Redis refusing a wrong password, ssh
printing what its ``ProxyCommand`` said; plus a check crashing with a traceback (``--tb=long
-l``: pytest shows the check's arguments and every frame's locals, cut, or whole with ``-vv``),
one sending an invalid header, prints, logs, warnings and live logs, xdist, configuration
errors and a start-up that fails. Every file under the run's folder (JUnit, HTML, JSON, the
``--archive`` folder) and the terminal's stdout and stderr are then searched for each canary in
each encoding, and for any 12 characters of it.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import reprlib
import secrets as random
import socketserver
import string
import struct
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest

from opscheck import redaction
from opscheck.testbed import free_port
from opscheck.testbed.redis import RedisServer

ALNUM = string.ascii_letters + string.digits
REPO = Path(__file__).resolve().parents[1]
WINDOW = 12  # any this many characters of a canary (or of an encoding of it) in an output: a leak


def _random(length: int) -> str:
    return "".join(random.choice(ALNUM) for _ in range(length))


def _special() -> str:
    """Random text interleaved with the characters encodings change: each 12 characters of any
    encoding of it still hold random ones."""
    return "".join(_random(3) + c for c in "/+&<>\"'%= \\") + _random(4)


# Environment variable -> canary. Distinct per run: an output of another test cannot match.
CANARIES = {
    "HTTP_TOKEN": "cT" + _random(22),  # X-Token header, reflected
    "HTTP_BEARER": "cB" + _special(),  # Authorization: Bearer ..., reflected
    "HTTP_LONG": "cL" + _random(420),  # a long token, reflected: longer than any excerpt
    "HTTP_QUERY": "cQ" + _random(22),  # ?token= in URLs, reflected and in connection errors
    "HTTP_NL": "cN" + _random(22) + "\n",  # a trailing newline: invalid in a header
    "HTTP_LONG_NL": "cM" + _random(330) + "\n",  # that, and longer than any cut
    "HTTP_EXPECTED": "cE" + _random(22),  # contains / json: an expected text is a secret too
    "REDIS_PW": "cR" + _random(22),  # quoted back by a Redis-speaking server
    "REDIS_USER": "cU" + _random(22),
    "REDIS_WRONG_PW": "cW" + _random(22),  # refused by a real Redis
    "PG_PW": "cP" + _random(22),  # quoted back by a PostgreSQL-speaking server
    "PG_USER": "cV" + _random(22),
    "S3_KEY_ID": "AKIA" + _random(16).upper(),
    "S3_SECRET": "cS" + _random(38),
    "S3_TOKEN": "cK" + _random(300),  # long, as STS session tokens are
    "RESTORE_PW": "cX" + _random(22),
    "HOST_ARG": "cH" + _random(360),  # in ssh_extra_args; ssh prints it, cut at 300
}
# Only in the configuration-error run: values the validation rejects, quoted in its message.
CONFIG_CANARIES = {
    "CFG_LONG": "cC" + _random(120),  # cut by the message's 60-character quote
    "CFG_NL": "cD" + _random(22) + "\n",  # repr-escaped in the quote
    "CFG_SPECIAL": "cF" + _special(),
    "CFG_LONG_NL": "cG" + _random(330) + "\n",
}


# -- encodings: what the reflecting servers send and what the search looks for ---------------------


def _b64(data: bytes, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def _json(text: str) -> str:
    return json.dumps(text)[1:-1].replace("/", "\\/")  # PHP and others escape the slash


ENCODINGS: dict[str, Callable[[str], str]] = {
    "raw": lambda t: t,
    "url": lambda t: quote(t, safe=""),
    "url-plus": quote_plus,
    "b64": lambda t: _b64(t.encode()),
    "b64-urlsafe": lambda t: _b64(t.encode(), urlsafe=True),
    "b64-nopad": lambda t: _b64(t.encode()).rstrip("="),
    "basic": lambda t: "Basic " + _b64(f"opscheck:{t}".encode()),  # the secret at byte 9
    "b64-at-1": lambda t: _b64(f"x{t}".encode()),
    "b64-at-2": lambda t: _b64(f"xy{t}".encode()),
    "json": _json,
    "html": html.escape,
    "repr": lambda t: repr(t)[1:-1],
}


def _base64_core(secret: str, offset: int, urlsafe: bool) -> str:
    """The base64 characters that depend on ``secret`` alone, when it starts ``offset`` bytes
    into the encoded data: what any base64 text holding it contains."""
    data = secret.encode()
    encoded = _b64(b"\0" * offset + data, urlsafe).rstrip("=")
    first = -(-8 * offset // 6)  # ceil: the first character wholly inside the secret
    last = (8 * (offset + len(data))) // 6
    return encoded[first:last]


# Encodings that wrap the secret in text of their own: their secret-only part is a base64 core.
_WRAPPED = ("basic", "b64-at-1", "b64-at-2")


def needles(secret: str) -> set[str]:
    """``secret`` as an output could hold it: its encodings (of base64 inside a longer text,
    the part that depends on the secret alone), and repr or JSON of those."""
    forms = {secret, secret.strip()}
    found = set(forms)
    for form in forms:
        found |= {encode(form) for e, encode in ENCODINGS.items() if e not in _WRAPPED}
        found |= {_base64_core(form, k, u) for k in range(3) for u in (False, True)}
    found |= {repr(f)[1:-1] for f in found} | {_json(f) for f in found}
    return found | {json.dumps(f)[1:-1] for f in found}


def pieces(secret: str) -> set[str]:
    """Every ``WINDOW`` characters of each form of ``secret``: a whole copy holds some, and so
    does the start of one cut short."""
    return {f[i : i + WINDOW] for f in needles(secret) for i in range(len(f) - WINDOW + 1)}


def leaks(texts: dict[str, str], canaries: dict[str, str]) -> dict[str, int]:
    """``{"<output>: <variable>": occurrences}`` of every canary found in an output, whole (in
    any encoding) or in part: each run of text made of its 12-character pieces counts once."""
    owner = {piece: variable for variable, secret in canaries.items() for piece in pieces(secret)}
    found: dict[str, int] = {}
    for where, text in texts.items():
        for view in dict.fromkeys((text, html.unescape(text))):
            ends: dict[str, int] = {}  # where the last piece of each canary ended
            for i in range(len(view) - WINDOW + 1):
                variable = owner.get(view[i : i + WINDOW])
                if variable is None:
                    continue
                if ends.get(variable, -1) < i:  # not overlapping the previous piece: a new one
                    key = f"{where}: {variable}"
                    found[key] = found.get(key, 0) + 1
                    SEEN.setdefault(key, view[max(0, i - 150) : i + 60])
                ends[variable] = i + WINDOW
    return found


SEEN: dict[str, str] = {}  # the text around the first occurrence of each leak


def seen(found: dict[str, int], canaries: dict[str, str]) -> str:
    """The failure message: how many leaks, of how many canaries, and the text around each."""
    leaked = {key.rsplit(": ", 1)[1] for key in found}
    outputs = {key.rsplit(": ", 1)[0] for key in found}
    head = (
        f"{sum(found.values())} occurrences of {len(leaked)} of {len(canaries)} canaries "
        f"in {len(outputs)} outputs: {found}"
    )
    return "\n".join([head, *(f"{key}: ...{SEEN[key]!r}" for key in found)])


def outputs(result: pytest.RunResult, *folders: Path) -> dict[str, str]:
    """The terminal's two streams and every file under ``folders`` (its JSON strings too)."""
    texts = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            text = path.read_text(errors="replace")
            if path.suffix == ".json":
                with contextlib.suppress(ValueError):
                    text += "\n" + "\n".join(_strings(json.loads(text)))
            texts[str(path.relative_to(folder))] = text
    return texts


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# -- hostile servers ---------------------------------------------------------------------------


def _reflection(handler: BaseHTTPRequestHandler, encode: Callable[[str], str]) -> str:
    """What a reflecting server sends back: the request's secrets in one encoding, the long
    token last (an excerpt of the body shows its start)."""
    sent = dict(handler.headers)
    lines = [f"path: {encode(handler.path)}"]
    for name in ("X-Token", "Authorization", "X-Long"):
        if name in sent:
            lines.append(f"{name}: {encode(sent[name])}")
    return "\n".join(lines)


class _Reflector(BaseHTTPRequestHandler):
    """``/reflect/<encoding>``: 500 with the request in the body; ``/json``: the request as a
    JSON document; anything else (the S3 client's requests): an S3 error quoting the request's
    signature and session token."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        if route.startswith("/reflect/"):
            encoding = route.removeprefix("/reflect/")
            self._send(500, _reflection(self, ENCODINGS[encoding]), "text/plain")
        elif route == "/json":
            document = {"status": self.headers.get("X-Token"), "path": self.path}
            document |= {
                "auth": self.headers.get("Authorization"),
                "long": self.headers.get("X-Long"),
            }
            self._send(200, json.dumps(document), "application/json")
        else:
            said = f"{self.headers.get('Authorization')} {self.headers.get('X-Amz-Security-Token')}"
            error = (
                f"<Error><Code>InvalidToken</Code><Message>{html.escape(said)}</Message></Error>"
            )
            self._send(400, error, "application/xml")

    do_HEAD = do_POST = do_GET

    def _send(self, status: int, body: str, kind: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _QuotingRedis(socketserver.StreamRequestHandler):
    """Speaks enough RESP to refuse every command, quoting it (``AUTH <user> <password>``)."""

    def handle(self) -> None:
        while line := self.rfile.readline():
            if not line.startswith(b"*"):
                return
            args = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2].decode(errors="replace"))
            said = " ".join(args)
            echo = f"{args!r} b64 {_b64(said.encode())} url {quote(said)}"
            self.wfile.write(f"-WRONGPASS no such user or password: {echo}\r\n".encode())


class _QuotingPostgres(socketserver.BaseRequestHandler):
    """Speaks enough of PostgreSQL's protocol to ask for a cleartext password and refuse it,
    quoting it and the user name."""

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.request.recv(size - len(data))
            if not chunk:
                raise ConnectionError("client gone")
            data += chunk
        return data

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                length, code = struct.unpack("!ii", self._read(8))
                if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: no
                    self.request.sendall(b"N")
                    continue
                startup = self._read(length - 8).split(b"\0")
                break
            params = dict(zip(startup[::2], startup[1::2], strict=False))
            user = params.get(b"user", b"").decode()
            self.request.sendall(b"R" + struct.pack("!ii", 8, 3))  # cleartext password, please
            _, size = struct.unpack("!ci", self._read(5))
            password = self._read(size - 4).rstrip(b"\0").decode()
            message = (
                f"password {password!r} (b64 {_b64(password.encode())}) rejected for user {user!r}"
            )
            fields = b"SFATAL\0VFATAL\0C28P01\0M" + message.encode() + b"\0\0"
            self.request.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


class _ThreadingHTTP(ThreadingHTTPServer):
    daemon_threads = True  # a client keeping its connection alive does not hold up the end


@contextlib.contextmanager
def serving(server: socketserver.TCPServer) -> Iterator[int]:
    """Serve in a thread; the port; shut down after."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.socket.getsockname()[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _Threading(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def hostile() -> Iterator[dict[str, int]]:
    """The ports of the reflecting HTTP server and the quoting Redis and PostgreSQL."""
    with (
        serving(_ThreadingHTTP(("127.0.0.1", 0), _Reflector)) as http_port,
        serving(_Threading(("127.0.0.1", 0), _QuotingRedis)) as redis_port,
        serving(_Threading(("127.0.0.1", 0), _QuotingPostgres)) as pg_port,
    ):
        yield {"http": http_port, "redis": redis_port, "postgres": pg_port}


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis-secrets")) as server:
        server.add_reader("opscheck", "the-right-one-" + _random(8))
        yield server


@pytest.fixture
def canaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for variable, value in {**CANARIES, **CONFIG_CANARIES}.items():
        monkeypatch.setenv(variable, value)
    return CANARIES


# -- the inventory ------------------------------------------------------------------------------

# The headers a reflecting target sends, as a sub-table that ends its [[http]] block.
REFLECTED = """
    [http.headers]
    X-Token = "${HTTP_TOKEN}"
    Authorization = "Bearer ${HTTP_BEARER}"
    X-Long = "${HTTP_LONG}"
    """


def inventory(ports: dict[str, int], redis_url: str, backups: Path) -> str:
    """Every secret-carrying key, each pointing at a server that echoes it."""
    web = "http://127.0.0.1:{}".format(ports["http"])
    redis_port, pg_port = ports["redis"], ports["postgres"]
    blocks = ['[settings]\ntimeout = "3s"\n']
    for encoding in ENCODINGS:
        blocks.append(f"""
            [[http]]
            name = "echo-{encoding}"
            url = "{web}/reflect/{encoding}?token=${{HTTP_QUERY}}"
            contains = ["${{HTTP_EXPECTED}}"]
            samples = {1 if encoding == "raw" else 0}
            """)
        blocks.append(REFLECTED)
    blocks.append(f"""
        [[http]]
        name = "json-doc"
        url = "{web}/json?token=${{HTTP_QUERY}}"
        samples = 0
        json = {{ status = "${{HTTP_EXPECTED}}", auth = "Bearer ${{HTTP_EXPECTED}}" }}
        json_limits = {{ long = {{ warn = 1 }}, path = {{ warn = 1 }} }}
        """)
    blocks.append(REFLECTED)
    blocks.append(f"""
        [[http]]
        name = "bad-newline"
        url = "{web}/reflect/raw"
        contains = ["${{HTTP_NL}}"]
        samples = 0

        [[http]]
        name = "bad-long"
        url = "{web}/reflect/raw"
        contains = ["${{HTTP_LONG_NL}}"]
        samples = 0

        [[http]]
        name = "gone"
        url = "http://127.0.0.1:{free_port()}/health?token=${{HTTP_QUERY}}"

        [[redis]]
        name = "quoting-redis"
        url = "redis://127.0.0.1:{redis_port}/0"
        username = "${{REDIS_USER}}"
        password_env = "REDIS_PW"

        [[redis]]
        name = "wrong-password"
        url = "{redis_url}"
        username = "opscheck"
        password_env = "REDIS_WRONG_PW"

        [[postgres]]
        name = "quoting-postgres"
        dsn = "host=127.0.0.1 port={pg_port} dbname=app user=${{PG_USER}}"
        password_env = "PG_PW"

        [[backup]]
        name = "bucket"
        [backup.s3]
        bucket = "backups"
        prefix = "pg/{{date:%Y/%m/%d}}/"
        endpoint_url = "{web}"
        region = "us-east-1"
        access_key_id_env = "S3_KEY_ID"
        secret_access_key_env = "S3_SECRET"
        session_token_env = "S3_TOKEN"

        [[backup]]
        name = "dumps"
        path = "{backups}/{{date:%Y%m%d}}/*.dump"
        [backup.restore]
        dsn = "host=127.0.0.1 port={pg_port} dbname=postgres user=restorer"
        password_env = "RESTORE_PW"

        [[host]]
        name = "proxied"
        uri = "ssh://opscheck@127.0.0.1"
        ssh_extra_args = "-o 'ProxyCommand=echo ${{HOST_ARG}} >&2'"
        """)
    return "\n".join(textwrap.dedent(b) for b in blocks)


# A check with a bug, as any may have: it crashes with an unexpected exception (no ProbeError),
# after printing, logging and warning what it got. pytest then shows its arguments (the target)
# and, with -l, every frame's locals: the body, and requests' own for an invalid header.
CRASHING = """
import logging
import threading
import warnings

import pytest
import requests

pytestmark = pytest.mark.http


def test_crash_on_body(endpoint, http_target, limits):
    if http_target.name != "echo-raw":
        pytest.skip("one target is enough")
    body = endpoint.response().text
    print("stdout:", body)
    logging.getLogger("opscheck.crash").error("log: %s", body)
    if threading.current_thread() is threading.main_thread():  # --concurrency=1
        warnings.warn(f"odd answer: {body}")  # the run's warnings summary shows it
    raise RuntimeError(f"unexpected answer: {body}")


def test_crash_in_library(http_target, limits):
    if http_target.name != "bad-long":
        pytest.skip("one target is enough")
    headers = {"X-Bad": http_target.contains[0]}  # a value ending in a newline: invalid
    requests.get(http_target.url, headers=headers, timeout=3)
"""


def test_no_canary_reaches_any_output(suite, canaries, hostile, real_redis, tmp_path):
    """Two runs of the suites against the echoing targets: checks measured ahead in threads,
    tracebacks with locals cut (saferepr), JUnit, HTML and JSON; then checks measured in their
    tests, full locals (-vv), live logs and the archive. Not one canary, in any encoding."""
    backups = tmp_path / "backups"
    dump = backups / f"{datetime.now(UTC):%Y%m%d}" / "app.dump"
    dump.parent.mkdir(parents=True)
    dump.write_bytes(b"PGDMP" + b"\0garbage" * 64)
    crashing = suite.pytester.path / "test_crashing.py"
    crashing.write_text(CRASHING)
    text = inventory(hostile, real_redis.url, backups)
    paths = ("suites/http", "suites/redis", "suites/postgres", "suites/backup", "suites/host")
    folder = suite.pytester.path
    common = ("-rA", "-l", "--tb=long", "-o", "junit_logging=all", "-W", "always")
    first = suite.run(
        text,
        "",
        *common,
        f"--junitxml={folder / 'out' / 'junit.xml'}",
        f"--html={folder / 'out' / 'report.html'}",
        paths=(*paths, str(crashing)),
    )
    written = outputs(first, folder)
    results = suite.results()
    second = suite.run(
        text,
        "",
        *common,
        "-vv",
        "--concurrency=1",
        "--log-cli-level=DEBUG",
        "--archive",
        f"--reports-dir={folder / 'archive'}",
        paths=(*paths, str(crashing)),
    )
    written |= {f"second {k}": v for k, v in outputs(second, folder).items()}

    found = leaks(written, canaries)
    assert not found, seen(found, canaries)

    # The failures happened, and said what the operator needs (the secrets as ***).
    said = {k: str(r.get("reason") or r.get("message") or "") for k, r in results.items()}
    assert "answered 500" in said["test_status_expected[echo-raw]"]
    assert "RuntimeError: unexpected answer" in said["test_crash_on_body[echo-raw]"]
    assert "InvalidHeader" in said["test_crash_in_library[bad-long]"]
    assert "quoting-redis: unreachable" in said["test_redis_reachable[quoting-redis]"]
    assert "invalid username-password pair" in said["test_redis_reachable[wrong-password]"]
    assert "rejected for user" in said["test_postgres_reachable[quoting-postgres]"]
    assert "InvalidToken" in said["test_backup_exists[bucket]"]
    assert "rejected for user" in said["test_newest_dump_restores[dumps]"]
    assert "proxied: unreachable" in said["test_host_reachable[proxied]"]
    for run in (first, second):
        assert "RuntimeError: unexpected answer" in run.stdout.str()  # the traceback is shown
    assert "UserWarning: odd answer: path: /reflect/raw?token=***" in second.stdout.str()
    archived = {Path(k).suffix for k in written if k.startswith("second ")}
    assert {".html", ".xml", ".json"} <= archived, archived


def test_no_canary_under_xdist(pytester, canaries, hostile, real_redis, tmp_path):
    """Workers redact their reports before they send them; the controller writes the files."""
    (tmp_path / "inventory.toml").write_text(inventory(hostile, real_redis.url, tmp_path))
    (tmp_path / "test_crashing.py").write_text(CRASHING)
    out = tmp_path / "out"
    result = pytester.runpytest_inprocess(
        *("-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-n", "2", "-rA", "-l"),
        *("--inventory", str(tmp_path / "inventory.toml"), "--tb=long"),
        *(
            f"--json-report={out / 'r.json'}",
            f"--html={out / 'r.html'}",
            f"--junitxml={out / 'r.xml'}",
        ),
        *(str(REPO / p) for p in ("suites/http", "suites/redis", "suites/postgres")),
        str(tmp_path / "test_crashing.py"),
    )
    assert "RuntimeError: unexpected answer" in result.stdout.str()
    written = outputs(result, out)
    assert {"r.json", "r.html", "r.xml"} <= set(written)
    found = leaks(written, canaries)
    assert not found, seen(found, canaries)


def test_no_canary_in_configuration_errors(suite, canaries):
    """Values the validation rejects are quoted in its one-line errors: without the secrets."""
    bad = """
        [[http]]
        name = "long"
        url = "ftp://example.com/?token=${CFG_LONG}"

        [[http]]
        name = "newline"
        url = "ftp://example.com/?token=${CFG_NL}"

        [[http]]
        name = "special"
        url = "https://example.com/"
        timeout = "${CFG_SPECIAL}"
        headers = { X-Bad = "${CFG_NL}" }

        [[http]]
        name = "long-newline"
        url = "http://example.com/?token=${CFG_LONG_NL}"
        """
    result = suite.run(bad, "", "-l", "--tb=long")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert "http[0].url" in errors and "http[2].timeout" in errors
    found = leaks(outputs(result), CONFIG_CANARIES)
    assert not found, seen(found, CONFIG_CANARIES)


def test_no_canary_when_start_up_fails_after_loading(suite, canaries, tmp_path):
    """A start-up that fails after the configuration loaded (the archive folder is a file):
    pytest prints the traceback with the arguments of each frame, the loaded config among them."""
    taken = tmp_path / "taken"
    taken.write_text("a file where the reports folder should be")
    good = """
        [[http]]
        name = "api"
        url = "http://127.0.0.1:9/health?token=${HTTP_QUERY}"
        headers = { X-Token = "${HTTP_TOKEN}", X-Long = "${HTTP_LONG}" }
        """
    args = ("-l", "-vv", "--full-trace", "--archive", f"--reports-dir={taken}")
    result = suite.run(good, "", *args)
    assert result.ret not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    found = leaks(outputs(result), canaries)
    assert not found, seen(found, canaries)


def test_a_target_shows_only_its_name(canaries, tmp_path):
    """pytest shows a check's arguments in a traceback: a target's repr holds no value."""
    from opscheck import config as cfg

    (tmp_path / "inventory.toml").write_text(
        '[[http]]\nname = "api"\nurl = "https://example.com/?t=${HTTP_QUERY}"\n'
        'headers = { X-Token = "${HTTP_TOKEN}" }\n'
    )
    loaded = cfg.load(tmp_path / "inventory.toml", None)
    (target,) = loaded.targets("http")
    assert repr(target) == "HttpTarget(name='api')"
    shown = repr(loaded) + str(target) + repr(loaded.inventory)
    assert not leaks({"repr": shown}, CANARIES)


# -- the layer itself ---------------------------------------------------------------------------


@pytest.fixture
def registered() -> Iterator[dict[str, str]]:
    """A run's secrets, registered as opscheck.plugin registers ``Config.secrets``."""
    secrets = {CANARIES["HTTP_BEARER"], CANARIES["HTTP_LONG"], CANARIES["HTTP_NL"]}
    redaction.register(secrets)
    yield {k: v for k, v in CANARIES.items() if v in secrets}
    redaction.unregister(secrets)


def test_every_encoding_of_a_secret_is_redacted(registered):
    for variable, secret in registered.items():
        for name, encode in ENCODINGS.items():
            for form in (encode(secret), repr(encode(secret)), json.dumps(encode(secret))):
                text = redaction.redact(f"echo: {form} (end)")
                assert not leaks({name: text}, {variable: secret}), (name, text)
                assert text.startswith("echo: ") and text.endswith(" (end)")


def test_a_secret_cut_at_an_ellipsis_is_masked(registered):
    """pytest's saferepr (a traceback's arguments and locals) and reprlib cut long values in
    the middle; a message may quote the start of a value: neither end may remain."""
    from _pytest._io.saferepr import saferepr

    long = registered["HTTP_LONG"]
    for text in (
        saferepr({"X-Long": long}),
        reprlib.repr(long),
        repr(long)[:57] + "...",
        long[:9] + "…",
    ):
        clean = redaction.redact(text)
        assert not leaks({"cut": clean}, {"HTTP_LONG": long}), clean
        assert "***" in clean


def test_clip_redacts_before_it_cuts(registered):
    long = registered["HTTP_LONG"]
    assert redaction.clip(f"ssh: {long} refused", 40) == "ssh: *** refused"
    assert not leaks({"clip": redaction.clip(long, 200)}, {"HTTP_LONG": long})


def test_values_added_to_a_registered_set_are_redacted():
    secrets: set[str] = set()
    redaction.register(secrets)
    try:
        assert redaction.redact("key AKIA-late-7Qx2") == "key AKIA-late-7Qx2"
        secrets.add("AKIA-late-7Qx2")  # fixtures/backup.py adds the standard AWS variables
        assert redaction.redact("key AKIA-late-7Qx2") == "key ***"
    finally:
        redaction.unregister(secrets)
    assert redaction.redact("key AKIA-late-7Qx2") == "key AKIA-late-7Qx2"  # the run ended


def test_scrub_redacts_a_failure_description(registered):
    """What a report carries: containers are copied, pytest's dataclasses redacted in place."""
    from _pytest._code.code import ReprFileLocation, ReprFuncArgs

    token = registered["HTTP_NL"]
    args = ReprFuncArgs([("headers", repr({"X-Bad": token}))])
    crash = ReprFileLocation("probe.py", 3, f"InvalidHeader: {token!r}")
    report = {"longrepr": [args, crash], "sections": [("Captured log", f"sent {token}")]}
    clean = redaction.scrub(report)
    assert clean["sections"] == [("Captured log", "sent ***")]
    assert (
        args.args == [("headers", "{'X-Bad': '***'}")] and crash.message == "InvalidHeader: '***'"
    )
    assert redaction.scrub(report, ()) is not report


def test_a_redacting_stream_redacts_what_is_written(registered):
    out = io.StringIO()
    stream = redaction.RedactingStream(out)
    stream.write(f"printed by a thread: {registered['HTTP_BEARER']}\n")
    assert out.getvalue() == "printed by a thread: ***\n" and stream.getvalue() == out.getvalue()
