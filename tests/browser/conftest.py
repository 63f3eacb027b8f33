"""Fixtures of the real-browser tests: a real ``tensorboard`` process on
planted logs and Debian's Chromium driven by Playwright (sync API).

Every page records console errors, uncaught exceptions, CSP violations and
dialogs; a test fails at teardown if any occurred.
"""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.planted import write_planted
from tests.support import tensorboard_server

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRAME = 'iframe[src*="plugin_entry.html?name=deadneurons"]'

# Runs in every frame before its scripts: CSP violations become console
# errors, which the page's console listener collects.
_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(
    `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}` +
      ` (${e.sourceFile}:${e.lineNumber})`,
  );
});
"""


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium")
    assert exe, "Debian's chromium must be installed for the browser tests"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("planted")
    truth = write_planted(str(logdir))
    return str(logdir), truth


@pytest.fixture(scope="session")
def tb_url(planted):
    with tensorboard_server(planted[0]) as base:
        yield base


class Problems:
    """What went wrong on a page: console errors, page errors, dialogs."""

    def __init__(self, page):
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.allowed: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("dialog", self._dialog)

    def allow(self, text: str) -> None:
        """Tolerates console errors containing ``text`` (a failure a test causes)."""
        self.allowed.append(text)

    def _console(self, msg):
        if msg.type != "error":
            return
        if any(a in msg.text for a in self.allowed):
            return
        url = (msg.location or {}).get("url", "")
        # TensorBoard's own index.html loads Roboto from the absolute path
        # /font-roboto/..., which 404s under --path_prefix (the outer page,
        # not the plugin). Only that exact failure is tolerated.
        if msg.text.startswith("Failed to load resource") and urlparse(
            url
        ).path.startswith("/font-roboto/"):
            return
        self.errors.append(f"console error: {msg.text} at {msg.location}")

    def _dialog(self, dialog):
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.add_init_script(_REPORT_CSP)
    pg = context.new_page()
    problems = Problems(pg)
    pg.problems = problems
    yield pg
    context.close()
    assert not problems.dialogs, f"dialogs were opened: {problems.dialogs}"
    assert not problems.errors, "console errors or CSP violations:\n" + "\n".join(
        problems.errors
    )


def open_dashboard(page, base: str):
    """Opens TensorBoard at ``base`` on our tab; returns (frame locator, frame)."""
    page.goto(base + "/#deadneurons")
    page.wait_for_selector(FRAME, timeout=30000)
    frame = page.frame_locator(FRAME)
    frame.locator("[data-testid=run-panel]").first.wait_for(timeout=30000)
    return frame, page.locator(FRAME).element_handle().content_frame()
