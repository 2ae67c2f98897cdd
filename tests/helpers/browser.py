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


def until_true(page: Any, expression: str, timeout: float = 30) -> Any:
    """Poll the JavaScript `expression` in `page` until it is truthy (its value). Not
    playwright's `wait_for_function`: that evals a string inside the page, which the page's
    CSP (no 'unsafe-eval') refuses; `evaluate` runs through the DevTools protocol."""
    from tests.helpers.api import until

    return until(lambda: page.evaluate(expression), expression, timeout=timeout, every=0.1)
