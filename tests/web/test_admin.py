import pytest

from project.app_config.models import Config
from project.queue_system.models import Service

pytestmark = pytest.mark.django_db


def service_form(**overrides):
    data = {
        "name": "Mi Servicio",
        "slug": "mi_servicio",
        "service_class": "project.services.overlays.services.OverlaysService",
        "is_active": "on",
        "mode": "SYNC",
        "concurrency": "1",
        "max_queue_size": "100",
        "time_budget_seconds": "300",  # the admin form shows the default
        "event_configs-TOTAL_FORMS": "1",
        "event_configs-INITIAL_FORMS": "0",
        "event_configs-MIN_NUM_FORMS": "0",
        "event_configs-MAX_NUM_FORMS": "1000",
        "event_configs-0-event_type": "GiftEvent",
        "event_configs-0-enabled": "on",
        "event_configs-0-priority": "10",
    }
    data.update(overrides)
    return data


def test_the_admin_lists_the_seeded_services(admin_client_logged, seeded):
    page = admin_client_logged.get("/admin/queue_system/service/").content.decode()
    assert "DinoChrome" in page and "Overlays" in page
    dino = Service.objects.get(slug="dinochrome")
    change = admin_client_logged.get(f"/admin/queue_system/service/{dino.pk}/change/").content.decode()
    assert change.count('name="event_configs-') >= 7 * 4
    assert "LikeEvent" in change and "JoinEvent" in change


def test_a_bad_service_class_is_a_form_error_naming_the_problem(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/queue_system/service/add/", service_form(service_class="apps.mi_servicio.services.MiServicio")
    )
    assert response.status_code == 200
    assert "module &#x27;apps.mi_servicio.services&#x27; cannot be imported" in response.content.decode()
    assert not Service.objects.filter(slug="mi_servicio").exists()


def test_an_out_of_range_priority_is_refused(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/queue_system/service/add/", service_form(**{"event_configs-0-priority": "11"})
    )
    assert response.status_code == 200
    assert "less than or equal to 10" in response.content.decode()
    assert not Service.objects.exists()


def test_a_good_service_with_its_event_config_is_saved(admin_client_logged):
    response = admin_client_logged.post("/admin/queue_system/service/add/", service_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    service = Service.objects.get(slug="mi_servicio")
    assert service.event_configs.get().priority == 10


def test_secret_config_values_are_masked(admin_client_logged):
    key = Config.objects.create(key="elevenlabs_api", value="sk_live_1234567890abcdef")
    listing = admin_client_logged.get("/admin/app_config/config/").content.decode()
    change = admin_client_logged.get(f"/admin/app_config/config/{key.pk}/change/").content.decode()
    for page in (listing, change):
        assert "sk_live_1234567890abcdef" not in page
    assert "••••cdef" in listing
    # Saving with an empty value keeps the stored secret.
    response = admin_client_logged.post(
        f"/admin/app_config/config/{key.pk}/change/", {"key": "elevenlabs_api", "value": "", "description": ""}
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.value == "sk_live_1234567890abcdef"


def test_queue_items_are_filterable_and_searchable(admin_client_logged, seeded):
    page = admin_client_logged.get("/admin/queue_system/queueitem/?status__exact=failed&q=someone")
    assert page.status_code == 200
    assert "By service" in page.content.decode() or "service" in page.content.decode()
