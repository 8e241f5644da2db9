import io

import pytest
from django.core.management import call_command

from project.app_config.models import Config
from project.queue_system.models import Service, ServiceEventConfig

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(Config.objects.order_by("key").values_list("key", "value", "updated_at")),
        list(Service.objects.order_by("slug").values()),
        list(ServiceEventConfig.objects.order_by("id").values()),
    )


def test_it_seeds_the_two_services_with_seven_event_configs_each(seeded):
    dino = Service.objects.get(slug="dinochrome")
    overlays = Service.objects.get(slug="overlays")
    assert (dino.mode, dino.max_queue_size) == ("SYNC", 50)
    assert (overlays.mode, overlays.concurrency, overlays.max_queue_size) == ("ASYNC", 8, 100)
    assert dino.event_configs.count() == 7
    assert overlays.event_configs.count() == 7
    gift = dino.event_configs.get(event_type="GiftEvent")
    assert (gift.priority, gift.discardable) == (10, False)
    comment = dino.event_configs.get(event_type="CommentEvent")
    for extra in ("ShareEvent", "JoinEvent"):
        config = dino.event_configs.get(event_type=extra)
        assert config.discardable and config.priority < comment.priority
    assert Config.objects.get(key="tiktok_user").value == ""


def test_a_second_run_changes_nothing(seeded):
    Service.objects.filter(slug="dinochrome").update(max_queue_size=75)
    before = snapshot()
    out = io.StringIO()
    call_command("populate_initial_data", stdout=out)
    assert snapshot() == before
    assert "0 new" in out.getvalue()
