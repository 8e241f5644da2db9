import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from project.queue_system.models import Service, ServiceEventConfig
from project.queue_system.service_loader import load_service_class

pytestmark = pytest.mark.django_db

GOOD_CLASS = "project.services.overlays.services.OverlaysService"


def make_service(**kwargs) -> Service:
    fields = {"name": "Mine", "slug": "mine", "service_class": GOOD_CLASS, "max_queue_size": 10}
    fields.update(kwargs)
    return Service(**fields)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nodots", "is not a dotted path"),
        ("project.does_not_exist.Service", "cannot be imported"),
        ("project.services.overlays.services.Nope", "has no attribute 'Nope'"),
        ("project.queue_system.models.Service", "is not a subclass of"),
    ],
)
def test_it_explains_a_bad_service_class(path, message):
    service = make_service(service_class=path)
    with pytest.raises(ValidationError) as excinfo:
        service.full_clean()
    assert message in str(excinfo.value.message_dict["service_class"])


def test_it_loads_a_good_service_class():
    assert load_service_class(GOOD_CLASS).__name__ == "OverlaysService"


@pytest.mark.parametrize("slug", ["Bad Slug", "UPPER", "-lead", "a" * 51, "ñ"])
def test_it_rejects_slugs_that_cannot_name_a_queue(slug):
    with pytest.raises(ValidationError) as excinfo:
        make_service(slug=slug).full_clean()
    assert "slug" in excinfo.value.message_dict


def test_it_requires_positive_sizes():
    with pytest.raises(ValidationError) as excinfo:
        make_service(max_queue_size=0, concurrency=0).full_clean()
    assert set(excinfo.value.message_dict) >= {"max_queue_size", "concurrency"}


def test_the_database_refuses_a_zero_queue_size_too():
    with pytest.raises(IntegrityError):
        make_service(max_queue_size=0).save()


@pytest.mark.parametrize("priority", [0, 11])
def test_it_keeps_priority_between_1_and_10(priority):
    service = make_service()
    service.save()
    config = ServiceEventConfig(service=service, event_type="GiftEvent", priority=priority)
    with pytest.raises(ValidationError) as excinfo:
        config.full_clean()
    assert "priority" in excinfo.value.message_dict


def test_sync_services_run_one_at_a_time():
    assert make_service(mode="SYNC", concurrency=8).worker_concurrency == 1
    assert make_service(mode="ASYNC", concurrency=8).worker_concurrency == 8
