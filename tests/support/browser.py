"""A real headless Chromium for the viewer's tests and benchmarks, driven by Playwright.

Why the system's Chromium: Playwright's own browser download needs the internet, which CI machines here do
not have. ``python3 dev.py test`` installs Debian's ``chromium-headless-shell`` through apt-get when no
Chromium is on PATH; :func:`find_chromium` then finds it, and when it still cannot the tests fail with a
message saying how to install one (they never skip: a viewer nobody looked at in a browser is untested).

Stable API (tests/browser and benchmarks/ rely on it)::

    with chromium() as browser:                         # one browser process
        context = browser.new_context()                 # empty cache and cookies
        page = context.new_page()
        watch = PageWatch(page)                         # console errors, page errors, dialogs, CSP reports
        page.goto(url)
        watch.assert_clean()

Example:
    >>> find_chromium().startswith("/")
    True
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

__all__ = ["CHROMIUMS", "find_chromium", "chromium", "PageWatch", "decoded_thumbnails"]

CHROMIUMS = ("chromium-headless-shell", "chromium")
"""Debian's Chromium commands, the lighter first (the headless shell has no UI code to load)."""

_REAL_BINARIES = {"chromium-headless-shell": "/usr/lib/chromium/chromium-headless-shell",
                  "chromium": "/usr/lib/chromium/chromium"}
"""Debian's ``/usr/bin`` commands are ``sh`` wrappers around these; launching the binary itself means the
process Playwright stops is the browser, not a shell that may leave it running."""


def find_chromium() -> str:
    """The path of a Chromium binary Playwright can launch; RuntimeError saying how to get one if none."""
    for name in CHROMIUMS:
        command = shutil.which(name)
        if command is None:
            continue
        real = _REAL_BINARIES[name]
        return real if os.access(real, os.X_OK) else command
    raise RuntimeError(
        f"no Chromium found ({' or '.join(CHROMIUMS)} on PATH): the viewer's tests run in a real browser; "
        "run them with `python3 dev.py test` (it installs Debian's `chromium-headless-shell`) or "
        "`apt-get install chromium-headless-shell`")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium for the ``with`` block (closed after it, with its Playwright driver)."""
    executable = find_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """Everything a page reports that a user would call broken: console errors (Chromium reports a
    Content-Security-Policy violation there as "Refused to …"), uncaught exceptions and dialogs (an
    ``alert`` from injected markup). Dialogs are dismissed so the page goes on."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("dialog", self._on_dialog)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def forgive(self, text: str) -> None:
        """Forget the console errors containing ``text`` (a refusal the test asked for is logged too)."""
        self.console_errors = [e for e in self.console_errors if text not in e]

    def problems(self) -> list[str]:
        return ([f"console: {e}" for e in self.console_errors] + [f"page error: {e}" for e in self.page_errors]
                + [f"dialog: {e}" for e in self.dialogs])

    def assert_clean(self) -> None:
        """Fail naming every problem seen since this watch began."""
        problems = self.problems()
        assert not problems, f"{self.page.url}:\n" + "\n".join(problems)


def decoded_thumbnails(page: Page, selector: str = "a.cell img.thumb", *, timeout: float = 20_000) -> list[int]:
    """Wait until every image matching ``selector`` has finished loading (or failed) and return their
    ``naturalWidth``s in page order (0 for an image that did not decode)."""
    page.wait_for_function(
        "sel => Array.from(document.querySelectorAll(sel)).every(img => img.complete)", arg=selector,
        timeout=timeout)
    widths: list[int] = page.eval_on_selector_all(selector, "imgs => imgs.map(img => img.naturalWidth)")
    return widths
