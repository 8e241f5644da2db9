"""The admin in a real Chromium, served as the demo serves it (runserver, DEBUG false) and as
gunicorn serves it: logged in, styled, its stylesheet answered 200 (WhiteNoise).

Django's test client and live_server serve static files by themselves, which is how a
404 on /static/admin/css/base.css went unnoticed: here the servers run as processes.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
import requests

from tests.support import ROOT
from tests.support.browser import artifact, page_browser
from tests.support.processes import stop
from tests.support.servers import free_port, subprocess_env
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-streamers-own-pass-42"
COMMANDS = {
    # The line of ./scripts/demo.
    "runserver": ["manage.py", "runserver", "{address}", "--noreload"],
    # The compose web service's server, run from the checkout.
    "gunicorn": ["-m", "gunicorn", "project.wsgi:application", "--bind", "{address}", "--workers", "1",
                 "--worker-class", "gthread", "--threads", "4", "--no-control-socket"],
}  # fmt: skip
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")


@dataclass
class Server:
    kind: str
    url: str


@pytest.fixture(scope="module")
def browser():
    browser = page_browser(1280, 800)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(params=sorted(COMMANDS))
def server(request, transactional_db, tmp_path):
    """The web server as a process on the test database, DEBUG false, a valid configuration."""
    address = f"127.0.0.1:{free_port()}"
    env = subprocess_env(
        DEBUG="false", DJANGO_SECRET_KEY="t" * 60, FLOWER_BASIC_AUTH="watcher:a-test-flower-pass", HTTPS="false"
    )
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, *(part.format(address=address) for part in COMMANDS[request.param])],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def answers() -> bool:
        assert process.poll() is None, f"{request.param} exited: {log_path.read_text()}"
        try:
            return requests.get(f"http://{address}/healthz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(answers, timeout=60, interval=0.3, what=f"{request.param} to answer")
        yield Server(request.param, f"http://{address}")
    finally:
        stop(process, timeout=30)


def stylesheet_statuses(driver) -> list[int]:
    """HTTP statuses of this page's loads of the admin's base stylesheet (Resource Timing)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.name.endsWith('/static/admin/css/base.css')).map(e => e.responseStatus)"
    )


def header_background(driver) -> str:
    return driver.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")


def test_the_admin_is_styled_for_a_user_who_logs_in(server, browser, django_user_model):
    django_user_model.objects.create_superuser("streamer", "streamer@example.com", PASSWORD)
    driver = browser.driver
    driver.get(f"{server.url}/admin/")
    wait_for(lambda: driver.find_elements("id", "id_username"), what="the login form")
    # A fresh origin for this browser: the stylesheet came over the network, not from its cache.
    assert stylesheet_statuses(driver) == [200]
    assert header_background(driver) not in TRANSPARENT

    driver.find_element("id", "id_username").send_keys("streamer")
    driver.find_element("id", "id_password").send_keys(PASSWORD)
    driver.find_element("css selector", "input[type=submit]").click()
    wait_for(lambda: "Site administration" in driver.title, what="the admin's index after logging in")
    background = header_background(driver)
    assert background not in TRANSPARENT, "the admin's header has the browser's default background: no styles"
    assert driver.execute_script("return document.querySelector('#user-tools').textContent").count("streamer")
    driver.save_screenshot(str(artifact(f"admin-styled-{server.kind}.png")))

    css = requests.get(f"{server.url}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "#header" in css.text
