"""``[settings.heartbeat]`` (opscheck.heartbeat): ``<url>/start`` when a run starts, ``<url>``,
``<url>/fail`` or ``<url>/<exit status>`` with the headline as body when it ends, to a real local
receiver (opscheck.testbed.demo.Receiver: an HTTP server on 127.0.0.1); the checks run against
the HTTP testbed, a loopback port nothing listens on for the failing target.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator
from functools import partial

import pytest

from opscheck.config.notify import HeartbeatSettings
from opscheck.heartbeat import Heartbeat
from opscheck.testbed.demo import Receiver

HTTP = ("suites/http",)
CHECK = str(uuid.uuid4())  # the check's UUID: the secret part of a healthchecks.io URL
ENV = "OPSCHECK_TEST_HEARTBEAT_URL"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as got:
        monkeypatch.setenv(ENV, f"{got.url}/ping/{CHECK}")
        yield got


def inventory(url: str, heartbeat: str = "") -> str:
    settings = f'[settings.heartbeat]\nurl_env = "{ENV}"\n{heartbeat}\n'
    return f'{settings}[[http]]\nname = "api"\nurl = "{url}"\ncontains = "healthy"\n'


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def refused_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_healthy_run_pings_start_then_success_with_its_headline(suite, web, receiver):
    result = suite.run(inventory(web.url()), "", paths=HTTP)
    assert result.ret == 0, output(result)
    assert receiver.paths() == [f"/ping/{CHECK}/start", f"/ping/{CHECK}"]
    start, end = receiver.received
    assert start["method"] == end["method"] == "POST"
    assert start["query"] == end["query"] and start["query"].startswith("rid=")  # one run id
    assert re.fullmatch(r"opscheck/\S+", end["headers"]["User-Agent"])
    headline = end["body"].splitlines()[0]
    assert re.search(r"\b\d+ (OK|passed)\b", headline), end["body"]
    assert "CRIT" not in headline and "failed" not in headline
    assert CHECK not in output(result) and "heartbeat" not in output(result)


def test_a_failing_run_pings_fail_with_the_problem(suite, web, receiver):
    result = suite.run(inventory(web.url("http", "/missing")), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert receiver.paths() == [f"/ping/{CHECK}/start", f"/ping/{CHECK}/fail"]
    body = receiver.received[-1]["body"]
    assert re.search(r"\b\d+ (CRIT|failed)\b", body.splitlines()[0]), body


def test_exit_code_pings_the_exit_status(suite, web, receiver):
    result = suite.run(inventory(refused_url(), "exit_code = true"), "", paths=HTTP)
    assert result.ret == 1
    assert receiver.paths() == [f"/ping/{CHECK}/start", f"/ping/{CHECK}/1"]


def test_a_ping_that_fails_changes_nothing_and_is_one_line(suite, web, monkeypatch):
    monkeypatch.setenv(ENV, f"{refused_url()}/ping/{CHECK}")
    started = time.monotonic()
    result = suite.run(inventory(web.url()), "", paths=HTTP)
    took = time.monotonic() - started
    assert result.ret == 0, output(result)  # the checks passed: so does the run
    text = output(result)
    for ping in ("/start", "(success)"):
        line = f"heartbeat ping {ping} failed: connection refused (2 attempts)"
        assert text.count(line) == 1, text
    assert CHECK not in text and "127.0.0.1" not in text.split("heartbeat ping")[-1]
    assert took < 15, took  # two refused pings: one retry each, a second apart


def test_a_usage_error_after_the_start_pings_fail(suite, web, receiver, pytester):
    """A plugin that refuses the run after /start was sent: the switch hears /fail at once."""
    pytester.makepyfile(
        refuse="import pytest\n\n@pytest.hookimpl(trylast=True)\n"
        "def pytest_configure(config):\n    raise pytest.UsageError('refused')\n"
    )
    pytester.syspathinsert()
    result = suite.run(inventory(web.url(), "exit_code = true"), "", "-p", "refuse", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert receiver.paths() == [f"/ping/{CHECK}/start", f"/ping/{CHECK}/4"]
    assert "stopped before its checks ran" in receiver.received[-1]["body"]


def test_an_interrupted_run_pings_fail(suite, web, receiver, pytester, monkeypatch):
    pytester.makepyfile(
        interrupt="def pytest_collection_finish(session):\n    raise KeyboardInterrupt\n"
    )
    pytester.syspathinsert()
    run = pytester.runpytest_inprocess
    monkeypatch.setattr(pytester, "runpytest_inprocess", partial(run, no_reraise_ctrlc=True))
    result = suite.run(inventory(web.url()), "", "-p", "interrupt", paths=HTTP)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert receiver.paths() == [f"/ping/{CHECK}/start", f"/ping/{CHECK}/fail"]


def test_no_notify_sends_nothing(suite, web, receiver, monkeypatch):
    result = suite.run(inventory(web.url()), "", "--no-notify", paths=HTTP)
    assert result.ret == 0
    monkeypatch.delenv(ENV)  # --no-notify: not even needed
    result = suite.run(inventory(web.url()), "", "--no-notify", paths=HTTP)
    assert result.ret == 0, output(result)
    assert receiver.received == []


def test_an_unset_or_wrong_url_is_a_usage_error(suite, web, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    result = suite.run(inventory(web.url()), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = f"inventory.toml: settings.heartbeat.url_env: environment variable {ENV} is not set"
    assert expected in output(result)
    monkeypatch.setenv(ENV, f"hc-ping.com/{CHECK}")
    result = suite.run(inventory(web.url()), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"environment variable {ENV}: expected an http:// or https:// URL" in output(result)
    assert CHECK not in output(result)


# -- the pings themselves, against the receiver answering as a switch may ------------------------


def beat(url: str, **settings: object) -> Heartbeat:
    return Heartbeat(url, HeartbeatSettings.model_validate(settings))


def test_a_5xx_is_tried_once_more():
    with Receiver(statuses=(503,)) as got:
        ping = beat(f"{got.url}/{CHECK}/")  # a trailing slash as copied from the web page
        ping.start()
        ping.finish(0, "5 OK")
    assert got.paths() == [f"/{CHECK}/start", f"/{CHECK}/start", f"/{CHECK}"]
    assert ping.problems == []


def test_a_404_is_said_and_not_retried():
    with Receiver(statuses=(404, 404)) as got:
        ping = beat(f"{got.url}/{CHECK}")
        ping.start()
        ping.finish(2, "interrupted")
    assert got.paths() == [f"/{CHECK}/start", f"/{CHECK}/fail"]
    assert ping.problems == [
        "heartbeat ping /start failed: HTTP 404 Not Found",
        "heartbeat ping /fail failed: HTTP 404 Not Found",
    ]


def test_a_switch_that_does_not_answer_costs_at_most_two_timeouts():
    with Receiver(delay=1.5) as got:
        ping = beat(f"{got.url}/{CHECK}", timeout=0.5)
        started = time.monotonic()
        ping._ping("/start", "")
        took = time.monotonic() - started
    assert ping.problems == [
        "heartbeat ping /start failed: no response within 0.5 s (read timed out) (2 attempts)"
    ]
    assert len(got.received) == 2
    assert took < 2 * 0.5 + 1.0 + 0.5, took


def test_a_mistake_in_the_settings_is_one_line_each(suite, web, receiver):
    result = suite.run(inventory(web.url(), "exitcode = true\ntimeout = 0"), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = output(result)
    assert "inventory.toml: settings.heartbeat.timeout: expected a number > 0.0, got 0" in text
    assert "settings.heartbeat.exitcode: unknown key (did you mean 'exit_code'?)" in text
    assert receiver.received == []  # a run stopped by its inventory sends nothing
