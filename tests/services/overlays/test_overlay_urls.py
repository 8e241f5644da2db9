"""The URLs to paste into OBS, with the overlay token: the admin page (Overlays › OBS overlay URL)
and ``manage.py overlay_url`` give the cards page and a "Next up" page per active SYNC service.
Every URL given is opened by a client from elsewhere, so the token in it must be the current one."""

from __future__ import annotations

import html
import re
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from project.app_config.config import get_config
from tests.support.queueing import make_service

ADMIN_PAGE = "/admin/overlays/obsoverlayurl/"
ELSEWHERE = "203.0.113.7"  # a documentation address: only ever a REMOTE_ADDR value here, never contacted

pytestmark = pytest.mark.django_db


@pytest.fixture
def services():
    """Two active SYNC services, an inactive SYNC one and an ASYNC one (which has no "Next up" page)."""
    make_service("dinochrome")
    make_service("zeta_bot")
    make_service("avatar", is_active=False)
    make_service("overlays", mode="ASYNC", concurrency=8)


def opened_from_elsewhere(url: str) -> tuple[int, str]:
    """What a browser on another machine (so one that needs the token) gets for this URL."""
    parts = urlsplit(url)
    response = Client().get(f"{parts.path}?{parts.query}", REMOTE_ADDR=ELSEWHERE)
    return response.status_code, response.content.decode()


def admin_urls(page: str) -> dict[str, str]:
    """The read-only URL fields of the admin page, by id."""
    fields = re.findall(r'<input id="([\w-]+)"[^>]*\breadonly value="([^"]*)"', page)
    return {field_id: html.unescape(value) for field_id, value in fields}


def overlay_url(*args: str) -> list[str]:
    out = StringIO()
    call_command("overlay_url", *args, stdout=out)
    return out.getvalue().splitlines()


# --- the admin page -------------------------------------------------------------------------


def test_the_admin_gives_a_next_up_url_with_the_token_for_each_active_sync_service(admin_client_logged, services):
    response = admin_client_logged.get(ADMIN_PAGE)
    assert response.status_code == 200
    token = get_config("overlays_token")
    assert len(token) >= 32
    urls = admin_urls(response.content.decode())
    assert urls == {
        "obs-url": f"http://testserver/overlays/?token={token}",
        "queue-url-dinochrome": f"http://testserver/overlays/queue/?service=dinochrome&token={token}",
        "queue-url-zeta_bot": f"http://testserver/overlays/queue/?service=zeta_bot&token={token}",
    }, "the inactive and the ASYNC service get no URL"
    page = response.content.decode()
    assert "Dinochrome (dinochrome)" in page and "Zeta Bot (zeta_bot)" in page, "each URL is labelled"
    for field_id, url in urls.items():
        status, body = opened_from_elsewhere(url)
        assert status == 200, f"{field_id}: {body[:200]}"
    assert "window.queueOverlay" in opened_from_elsewhere(urls["queue-url-dinochrome"])[1]


def test_a_new_token_changes_every_url_the_admin_gives(admin_client_logged, services):
    before = admin_urls(admin_client_logged.get(ADMIN_PAGE).content.decode())
    assert admin_client_logged.post(ADMIN_PAGE).status_code == 302
    after = admin_urls(admin_client_logged.get(ADMIN_PAGE).content.decode())
    new_token = get_config("overlays_token")
    assert after.keys() == before.keys()
    for field_id in after:
        assert after[field_id] != before[field_id] and after[field_id].endswith(f"token={new_token}")
        assert opened_from_elsewhere(before[field_id])[0] == 403, f"the old {field_id} no longer works"
        assert opened_from_elsewhere(after[field_id])[0] == 200


def test_without_an_active_sync_service_the_admin_says_so(admin_client_logged):
    make_service("avatar", is_active=False)
    make_service("overlays", mode="ASYNC", concurrency=8)
    page = admin_client_logged.get(ADMIN_PAGE).content.decode()
    assert list(admin_urls(page)) == ["obs-url"]
    assert 'id="no-queue-url"' in page and "No SYNC service is active" in page


# --- manage.py overlay_url ------------------------------------------------------------------


def test_the_command_prints_the_cards_url_then_a_labelled_next_up_url_per_active_sync_service(services):
    lines = overlay_url("--base", "http://192.0.2.10:8000/")
    token = get_config("overlays_token")
    assert len(token) >= 32
    assert lines == [
        f"http://192.0.2.10:8000/overlays/?token={token}",
        f"Next up, Dinochrome (dinochrome): http://192.0.2.10:8000/overlays/queue/?service=dinochrome&token={token}",
        f"Next up, Zeta Bot (zeta_bot): http://192.0.2.10:8000/overlays/queue/?service=zeta_bot&token={token}",
    ]
    for line in lines:
        url = line.rsplit(" ", 1)[-1]
        assert opened_from_elsewhere(url)[0] == 200, url
    assert overlay_url() == [line.replace("192.0.2.10", "127.0.0.1") for line in lines], "the token is kept"


def test_the_command_prints_one_services_next_up_url_with_queue(services):
    overlay_url()  # makes the token
    token = get_config("overlays_token")
    assert overlay_url("--queue", "dinochrome") == [
        f"http://127.0.0.1:8000/overlays/queue/?service=dinochrome&token={token}"
    ]
    # An inactive SYNC service still has its page (it shows the queue once the service runs).
    [avatar] = overlay_url("--queue", "avatar", "--base", "http://192.0.2.10:8000")
    assert parse_qs(urlsplit(avatar).query) == {"service": ["avatar"], "token": [token]}
    status, body = opened_from_elsewhere(avatar)
    assert status == 200 and "window.queueOverlay" in body

    [renewed] = overlay_url("--queue", "dinochrome", "--new")
    new_token = get_config("overlays_token")
    assert new_token != token and renewed.endswith(f"?service=dinochrome&token={new_token}")


@pytest.mark.parametrize("slug", ["overlays", "no-such-service"])
def test_queue_with_a_slug_that_is_no_sync_service_is_an_error_naming_them(services, slug):
    token = overlay_url()[0].rsplit("token=", 1)[1]
    with pytest.raises(CommandError) as raised:
        overlay_url("--queue", slug, "--new")
    message = str(raised.value)
    assert repr(slug) in message
    assert "SYNC services: avatar (inactive), dinochrome, zeta_bot." in message
    assert token not in message
    assert get_config("overlays_token") == token, "a refused --queue makes no new token"


def test_queue_without_any_sync_service_says_how_to_make_one():
    with pytest.raises(CommandError, match=r"There is no SYNC service yet: make one in the admin"):
        overlay_url("--queue", "dinochrome")
