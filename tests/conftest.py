from __future__ import annotations

import pytest
from django.conf import settings

from tests.support.servers import Vhost, create_vhost, delete_vhost

# Fixture plugins, one per line (other areas add theirs here).
pytest_plugins = [
    "tests.fakes.fixtures",
    "tests.support.service_fixtures",
]


@pytest.fixture
def vhost(settings) -> Vhost:
    """A fresh RabbitMQ vhost; settings and the Celery app point at it for the test."""
    from project.celery import app

    created = create_vhost()
    old_url = app.conf.broker_url
    settings.CELERY_BROKER_URL = created.broker_url
    app.conf.broker_url = created.broker_url
    app.pool.force_close_all()
    try:
        yield created
    finally:
        app.conf.broker_url = old_url
        app.pool.force_close_all()
        delete_vhost(created)


@pytest.fixture
def admin_client_logged(client, django_user_model):
    """A client logged in as a superuser named 'streamer'."""
    user = django_user_model.objects.create_superuser("streamer", "streamer@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def seeded(db):
    from django.core.management import call_command

    call_command("populate_initial_data", stdout=open("/dev/null", "w"))


def pytest_report_header(config):
    return f"database: {settings.DATABASES['default']['NAME']} broker: {settings.CELERY_BROKER_URL.split('@')[-1]}"
