"""Debian's Chromium, headless, driven by Playwright: what the viewer's browser tests and benchmark run in.

Playwright's own browser downloads are never used (no ``playwright install``): the system ``chromium`` package is.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from collections.abc import Iterator

CHROMIUM = os.environ.get("SPATIALVID_CHROMIUM", "/usr/bin/chromium")
# Headless, no sandbox (root in containers), no GPU, and nothing that reaches out to the network by itself.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)


def chromium_path() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium; `make system-deps` does it)")
    return path


@contextmanager
def browser() -> Iterator:
    """A Playwright Chromium browser on the system's chromium binary."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_FLAGS))
        try:
            yield launched
        finally:
            launched.close()
