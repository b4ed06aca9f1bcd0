"""Playwright for Python driving Debian's Chromium (/usr/bin/chromium, installed by `make test-tools`; never
`playwright install`) against pytest-django's live server, the real cluster and, where a flow needs it, a real
Celery worker. Screenshots of each page land in artifacts/screenshots/ (git-ignored) for review."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings
from playwright.sync_api import Browser, Page, expect, sync_playwright
from pytest_django.live_server_helper import LiveServer

from tests.facts import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parent.parent.parent / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ALLOW_ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


@pytest.fixture(scope="package")
def browser(django_db_setup: None) -> Iterator[Browser]:
    """One Chromium for this package's tests, closed when they are done.

    Playwright's sync API keeps an asyncio loop marked as running in this thread while it is open, and Django
    then refuses ORM calls from it (the test body, the database flush between tests). Nothing here is really
    async (the live server answers from its own thread), so Django's check is lifted for exactly as long as
    the browser is open; package scope closes it before the rest of the suite runs."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test-tools)", pytrace=False)
    previous = os.environ.get(ALLOW_ASYNC_UNSAFE)
    os.environ[ALLOW_ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop(ALLOW_ASYNC_UNSAFE, None)
        else:
            os.environ[ALLOW_ASYNC_UNSAFE] = previous


@pytest.fixture(scope="package")
def live_server(django_db_setup: None) -> Iterator[LiveServer]:
    """pytest-django's live server, started without the HTTPS redirect: Django builds its middleware once,
    when the server thread starts, so the redirect must be off then (the `plain_http` fixture turns the
    per-request cookie settings off for each test)."""
    with override_settings(SECURE_SSL_REDIRECT=False):
        server = LiveServer(os.getenv("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost")
    yield server
    server.stop()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer, plain_http: None) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    # A value that runs as script would open a dialog: that must never happen.
    tab.on("dialog", lambda dialog: pytest.fail(f"a page ran script from cluster data: {dialog.message}"))
    yield tab
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def log_in(page: Page, username: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


@pytest.fixture
def celery_beat_process(celery_worker_process: subprocess.Popen, celery_queue: str, tmp_path: Path) -> Iterator[None]:
    """A real `celery beat`, ticking every second, beside the worker: progress pages only read, so rollouts
    move on through beat's track_rollouts, as in production."""
    from django.conf import settings

    env = dict(os.environ, REDIS_URL=settings.REDIS_URL, DRIFTWATCH_BEAT_TICK_SECONDS="1")
    env["DRIFTWATCH_CELERY_QUEUE"] = celery_queue
    log_path = tmp_path / "celery-beat.log"
    with log_path.open("ab") as log:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "dashboard", "beat", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=Path(__file__).resolve().parents[2], env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield None
    finally:
        beat.terminate()
        beat.wait(timeout=30)
