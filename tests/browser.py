"""Debian's Chromium, driven by Playwright, for the web UI tests (Playwright's own browser download
needs the internet). Without it the browser tests skip and say why, except under CI, where they fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = Path(os.environ.get("FACEFIND_CHROMIUM", "/usr/bin/chromium"))
MISSING = (
    f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does it when run as root), "
    "or set FACEFIND_CHROMIUM"
)


def require_chromium(*, module: bool = False) -> None:
    """Skip the calling test, or with `module` the whole test file (fail it under CI), when there
    is no Chromium or no Playwright to drive it."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests, but {MISSING}", pytrace=False)
        pytest.skip(MISSING, allow_module_level=module)
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (in .[dev])")


def launch(playwright: Playwright) -> Browser:
    """Headless Debian Chromium (the caller closes it)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
