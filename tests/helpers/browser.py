"""Debian's chromium, headless, driven by Playwright's client (never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from i2vkit import tools

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless chromium (playwright's Browser), closed at the end."""
    from playwright import sync_api as playwright

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=tools.system("chromium", "chromium"),
                                    args=FLAGS)  # fmt: skip
        try:
            yield browser
        finally:
            browser.close()
