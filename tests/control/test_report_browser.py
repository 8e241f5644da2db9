"""The test events and report pages in headless Chromium, against the live test server.

A test Rose sent from the form reaches a real worker of the service; the report of a
finished simulated session shows the database's totals and draws its charts (the canvases
hold painted pixels). Screenshots of each page go to test-artifacts/.
"""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from project.queue_system.models import QueueItem
from project.tiktok_events.models import LiveEvent
from tests.control.test_report import expected, simulated_session
from tests.support.browser import artifact, page_browser
from tests.support.queueing import make_service
from tests.support.recording_service import records
from tests.support.waiting import wait_for
from tests.support.worker_processes import running_workers

WIDTH, HEIGHT = 1400, 1000
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Painted (non-transparent) pixels of a canvas; 0 for a chart that drew nothing.
PAINTED = """
const canvas = document.getElementById(arguments[0]);
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
return painted;
"""


@pytest.fixture(scope="module")
def browser():
    browser = page_browser(WIDTH, HEIGHT)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture
def driver(browser, live_server):
    """The browser, logged in as staff on the live server (the session cookie of a staff login)."""
    user = get_user_model().objects.create_user(f"staff-{uuid.uuid4().hex[:8]}", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    driver = browser.driver
    driver.delete_all_cookies()
    driver.get(f"{live_server.url}/static/vendor/chartjs/chart.umd.min.js")  # a page of the origin, to set its cookie
    cookie = settings.SESSION_COOKIE_NAME
    driver.add_cookie({"name": cookie, "value": client.cookies[cookie].value})
    return driver


def full_page_screenshot(driver, name: str) -> None:
    """The whole page, not only the viewport: the viewport is stretched to it for the shot."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": WIDTH, "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": height})
    try:
        driver.save_screenshot(str(artifact(name)))
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": HEIGHT})


def text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text.strip()


def test_the_report_of_a_finished_session_shows_the_database_totals_and_draws_its_charts(driver, live_server):
    session = simulated_session(11)
    want = expected(session)

    driver.get(f"{live_server.url}/control/sessions/")
    wait_for(lambda: driver.find_elements("css selector", f'tr[data-session="{session.pk}"]'), what="the list")
    driver.save_screenshot(str(artifact("control-sessions.png")))

    driver.find_element("css selector", f'tr[data-session="{session.pk}"] a').click()
    wait_for(lambda: driver.find_elements("id", "chart-timeline"), what="the report page")
    wait_for(
        lambda: driver.execute_script("return !!(window.reportCharts && window.reportCharts.timeline)"),
        what="the charts",
    )
    assert int(text(driver, "total-events")) == want["total"] == LiveEvent.objects.filter(session=session).count()
    assert int(text(driver, "diamonds")) == want["diamonds"]
    assert int(text(driver, "likes-counted")) == want["likes"]
    assert int(text(driver, "followers")) == want["followers"]
    assert int(text(driver, "subscribers")) == want["subscribers"]
    for name, counts in want["outcomes"].items():
        cells = driver.find_elements("css selector", f'tr[data-service="{name}"] td')
        assert [int(c.text) for c in cells[1:5]] == [
            sum(counts.values()),
            counts["completed"],
            counts["failed"],
            counts["discarded"],
        ]
    # Chart.js drew into both canvases: painted pixels, not an empty (transparent) canvas.
    timeline_pixels = driver.execute_script(PAINTED, "chart-timeline")
    types_pixels = driver.execute_script(PAINTED, "chart-types")
    assert timeline_pixels > 2000 and types_pixels > 2000, (timeline_pixels, types_pixels)
    labels = driver.execute_script("return window.reportCharts.timeline.data.datasets.map(d => d.label)")
    assert sorted(labels) == sorted(want["by_type"])
    full_page_screenshot(driver, "control-report.png")


def test_a_test_gift_from_the_form_reaches_the_service(driver, live_server, vhost):
    service = make_service("recorder")
    key = f"tte-test-record-{uuid.uuid4().hex}"
    with running_workers(vhost, ["recorder"], extra_env={"TTE_TEST_RECORD_KEY": key}):
        driver.get(f"{live_server.url}/control/test-events/")
        wait_for(lambda: driver.find_elements("id", "test-event-form"), what="the test events form")
        driver.find_element("css selector", "#id_kind option[value=rose]").click()
        driver.find_element("id", "id_nickname").send_keys("Browser Rosa")
        driver.find_element("id", "send-test-event").click()
        wait_for(lambda: "confirmed by RabbitMQ" in driver.page_source, what="the confirmation message")

        gift = LiveEvent.objects.get(session__is_test=True)
        assert (gift.event_type, gift.user_nickname) == ("GiftEvent", "Browser Rosa")
        wait_for(
            lambda: QueueItem.objects.filter(live_event=gift, service=service, status="completed").exists(),
            timeout=60,
            what="the test Rose completed by the worker",
        )
    assert [r["event"] for r in records(key) if r["phase"] == "end" and r["ok"]] == [gift.pk]
    driver.get(f"{live_server.url}/control/test-events/")
    wait_for(lambda: "Recorder: completed" in driver.page_source, what="the service's outcome on the page")
    full_page_screenshot(driver, "control-test-events.png")
