"""The overlay pages' tests share one headless Chromium per module, its viewport OBS's 1920x1080."""

from __future__ import annotations

import pytest

from tests.support.browser import page_browser


@pytest.fixture(scope="module")
def browser():
    browser = page_browser(1920, 1080)
    try:
        yield browser
    finally:
        browser.quit()
