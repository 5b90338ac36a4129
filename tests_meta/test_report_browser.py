"""The report, the index and their links as an operator sees them: Debian's headless chromium.

Real archived runs of this machine's host checks (``local://``) into one reports folder: an
older day (a real run's report filed under 2020-01-02, as tests_meta/test_archive_index.py
does), then today a healthy run, a warning run (memory above ``warn = "0%"``) and a broken run
(an HTTP target on a port nothing listens on), all of one schedule so they link prev/next. The
folder is served on 127.0.0.1, with Jenkins' default CSP header where a test says so.
Screenshots and first-paint times go to build/screenshots/ (``OPSCHECK_SCREENSHOTS``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed import free_port
from tests_meta.browser import REPO, VIEWPORT, chromium, screenshots_dir, serve

OPSCHECK = REPO / ".venv" / "bin" / "opscheck"
HOST = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'


def _limits(memory_warn: str) -> str:
    memory = f'[host.memory_used_pct]\nwarn = "{memory_warn}"\ncrit = "100%"\n\n'
    return memory + '[host.disk_used_pct]\nwarn = "100%"\ncrit = "100%"\n'


CALM, WARN = _limits("100%"), _limits("0%")  # all OK; any memory use warns
CHECKS = "host_reachable or memory_used or disk_used"
RUNS = ("healthy", "warning", "broken")


def _run(root: Path, work: Path, inventory: str, thresholds: str, *extra: str) -> Path:
    (work / "inventory.toml").write_text(inventory)
    (work / "thresholds.toml").write_text(thresholds)
    before = set(root.glob("*/*.html"))
    done = subprocess.run(
        [
            str(OPSCHECK),
            "-m",
            "morning",
            "--inventory",
            "inventory.toml",
            "--thresholds",
            "thresholds.toml",
            "--archive",
            "--reports-dir",
            str(root),
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            *extra,
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    (page,) = set(root.glob("*/*.html")) - before
    return page


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"old", "healthy", "warning", "broken"}: the report pages, in one reports folder."""
    root = tmp_path_factory.mktemp("reports")
    work = tmp_path_factory.mktemp("work")
    host = ("-k", CHECKS, str(REPO / "suites/host"))
    pages = {"healthy": _run(root, work, HOST, CALM, *host)}
    # An older day, filed as the archive files it, from this real run's report.
    old = root / "2020-01-02"
    old.mkdir()
    document = json.loads(pages["healthy"].with_suffix(".json").read_text())
    document["started"] = "2020-01-02T07:00:00+00:00"
    (old / "morning-070000.json").write_text(json.dumps(document))
    shutil.copy(pages["healthy"], old / "morning-070000.html")
    pages["old"] = old / "morning-070000.html"
    time.sleep(1.1)  # runs are ordered by their start second
    pages["warning"] = _run(root, work, HOST, WARN, *host)
    time.sleep(1.1)
    down = f'[[http]]\nname = "down"\nurl = "http://127.0.0.1:{free_port()}/health"\n'
    pages["broken"] = _run(
        root,
        work,
        HOST + down,
        CALM,
        "-k",
        f"{CHECKS} or down",
        str(REPO / "suites/host"),
        str(REPO / "suites/http"),
    )
    return pages


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def site(archive: dict[str, Path]) -> Iterator[str]:
    with serve(archive["healthy"].parents[1]) as url:
        yield url


class Errors(list[str]):
    """Console errors, uncaught exceptions and failed requests of a page (the browser's own
    ``/favicon.ico`` request aside: the reports folder has none, a static server says 404)."""

    def watch(self, page: Any) -> Any:
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.append(f"pageerror: {e}"))
        page.on("response", self._response)
        return page

    def _console(self, message: Any) -> None:
        url = (message.location or {}).get("url", "")
        if message.type == "error" and not url.endswith("/favicon.ico"):
            self.append(f"console: {message.text} ({url})")

    def _response(self, response: Any) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.append(f"HTTP {response.status}: {response.url}")


def _url(site: str, page: Path) -> str:
    return site + page.relative_to(page.parents[1]).as_posix()


def _arrive(page: Any, url: str) -> None:
    """Wait for a navigation to ``url`` (pytest-html's script adds ``?sort=result`` to it)."""
    page.wait_for_url(lambda u: u.split("?")[0] == url, timeout=10_000)


def _box(page: Any, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} not rendered"
    return box


def _visible_on_first_screen(page: Any, selector: str) -> None:
    box = _box(page, selector)
    assert box["width"] > 0 and box["height"] > 0, selector
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (selector, box)


def test_first_screen_screenshots_and_first_paint(browser, archive, site):
    folder = screenshots_dir()
    paints = []
    for name in RUNS:
        context = browser.new_context(viewport=VIEWPORT)
        errors = Errors()
        page = errors.watch(context.new_page())
        page.goto(_url(site, archive[name]), wait_until="load")
        _visible_on_first_screen(page, "#opscheck-headline")
        if name != "healthy":
            _visible_on_first_screen(page, "#opscheck-problems tr.problem")
        # Recorded when the first paint is done, which on a busy machine may come after "load".
        first_paint = "performance.getEntriesByName('first-contentful-paint')[0]"
        page.wait_for_function(f"{first_paint} !== undefined", timeout=10_000)
        fcp = page.evaluate(f"{first_paint}.startTime")
        assert fcp > 0
        paints.append(f"{name}: first-contentful-paint {fcp:.0f} ms ({archive[name].name})")
        page.screenshot(path=str(folder / f"report-{name}.png"))
        assert errors == [], name
        context.close()
    headline = {"healthy": "OK", "warning": "WARN", "broken": "CRIT"}
    for name, word in headline.items():
        text = archive[name].read_text()
        assert f'class="{word.lower()}"' in text.split('id="opscheck-headline"', 1)[1][:400]
    (folder / "first-paint.txt").write_text(
        "Report pages in headless Debian chromium, 1366x768, served from 127.0.0.1\n"
        + "\n".join(paints)
        + "\n"
    )


def test_warn_filters_show_exactly_the_warned_rows(browser, archive, site):
    context = browser.new_context(viewport=VIEWPORT)
    errors = Errors()
    page = errors.watch(context.new_page())
    page.goto(_url(site, archive["warning"]), wait_until="load")
    # pytest-html's table: only WARN ticked.
    page.wait_for_selector("#results-table tbody.results-table-row")
    warn = page.locator('input[data-test-result="warned"]')
    assert warn.is_enabled() and warn.is_checked()
    for box in page.locator("input.filter[data-test-result]:enabled").all():
        box.set_checked(box.get_attribute("data-test-result") == "warned")  # (0-count: disabled)
    shown = page.locator("#results-table tbody.results-table-row:visible")
    assert shown.count() == 1
    assert "memory" in shown.first.inner_text().lower()
    assert "warned" in (shown.first.get_attribute("class") or "")
    # The static checklist's CSS filter: exactly the WARN rows.
    page.locator("label[for=opscheck-show-warn]").click()
    assert page.locator("#opscheck-show-warn").is_checked()
    visible = page.locator("#opscheck-checklist tr.check:visible")
    warned = page.locator("#opscheck-checklist tr.check.warn")
    assert visible.count() == warned.count() == 1
    assert "warn" in (visible.first.get_attribute("class") or "").split()
    assert errors == []
    context.close()


def test_index_prev_next_links_resolve_and_navigate(browser, archive, site):
    context = browser.new_context(viewport=VIEWPORT)
    errors = Errors()
    page = errors.watch(context.new_page())
    page.goto(site + "index.html", wait_until="load")
    hrefs = [a.get_attribute("href") for a in page.locator("a").all()]
    for name in RUNS:
        assert archive[name].relative_to(archive[name].parents[1]).as_posix() in hrefs, name
    for href in hrefs:
        response = context.request.get(site + href)
        assert response.status == 200, href
    page.goto(_url(site, archive["warning"]), wait_until="load")
    expected = {
        "#opscheck-prev": archive["healthy"],
        "#opscheck-next": archive["broken"],
    }
    for selector, target in expected.items():
        link = page.locator(f"a{selector}")
        assert link.count() == 1, f"{selector} is not a link: {page.locator(selector).inner_text()}"
        href = link.evaluate("a => a.href")
        assert href == _url(site, target) and context.request.get(href).status == 200
    page.locator("a#opscheck-prev").click()
    _arrive(page, _url(site, archive["healthy"]))
    page.locator("a#opscheck-prev").click()  # across days, to the older day's report
    _arrive(page, _url(site, archive["old"]))
    page.locator("a#opscheck-next").click()
    _arrive(page, _url(site, archive["healthy"]))
    page.locator("a#opscheck-index").click()
    _arrive(page, site + "index.html")
    assert page.locator(f"a[href='{archive['old'].parent.name}/{archive['old'].name}']").count()
    assert errors == []
    context.close()


@pytest.mark.parametrize("how", ["javascript off", "jenkins csp"])
def test_summary_renders_without_javascript_and_under_csp(browser, archive, how):
    csp = how == "jenkins csp"
    with serve(archive["broken"].parents[1], csp=csp) as url:
        context = browser.new_context(viewport=VIEWPORT, java_script_enabled=csp)
        page = context.new_page()
        response = page.goto(_url(url, archive["broken"]), wait_until="load")
        assert response is not None and response.status == 200
        if csp:
            assert "sandbox" in (response.headers.get("content-security-policy") or "")
        for selector in (
            "#opscheck-headline",
            "#opscheck-problems tr.problem",
            "#opscheck-checklist tr.check",
            "#opscheck-trends svg",
        ):
            box = _box(page, selector)
            assert box["width"] > 0 and box["height"] > 0, (how, selector)
        _visible_on_first_screen(page, "#opscheck-problems tr.problem")
        text = page.locator("#opscheck-checklist").inner_text()
        assert "not run: down unreachable" in text
        page.screenshot(path=str(screenshots_dir() / f"report-broken-{how.replace(' ', '-')}.png"))
        context.close()


def test_trend_plots_once_two_runs_exist(browser, archive, site):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(_url(site, archive["warning"]), wait_until="load")
    plots = page.locator("#opscheck-trends svg")
    assert plots.count() >= 1
    box = _box(page, "#opscheck-trends svg")
    assert box["width"] > 0 and box["height"] > 0
    context.close()
