"""Migrations on the real PostgreSQL: the models and the migrations agree, and the upgrade
of the event table keeps its indexes instead of rebuilding them."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from project.tiktok_events.models import LiveEvent, LiveSession

TABLE = LiveEvent._meta.db_table
APP = "tiktok_events"


@pytest.mark.django_db
def test_the_models_need_no_new_migration():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def indexes() -> dict[str, tuple[str, int]]:
    """name → (definition, relfilenode): a rebuilt index gets a new relfilenode, a renamed one keeps it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef, c.relfilenode FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname AND c.relkind = 'i' "
            "WHERE i.schemaname = current_schema() AND i.tablename = %s",
            [TABLE],
        )
        return {name: (definition, node) for name, definition, node in cursor.fetchall()}


def migrate_to(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([(APP, target)])


def latest() -> str:
    executor = MigrationExecutor(connection)
    return max(name for app, name in executor.loader.graph.leaf_nodes() if app == APP)


@pytest.mark.django_db(transaction=True)
def test_the_lean_index_upgrade_renames_the_kept_indexes_and_comes_back():
    fresh = indexes()
    head = latest()
    session = LiveSession.objects.create(name="old", streamer="mig", started_at=timezone.now())
    LiveEvent.objects.bulk_create(
        [
            LiveEvent(session=session, event_type="LikeEvent", received_at=timezone.now(), user_unique_id=f"u{n}")
            for n in range(200)
        ]
    )
    try:
        migrate_to("0001_initial")
        old = indexes()
        # 0001's own: the kept columns' indexes under Django's generated names, their
        # varchar_pattern_ops twins, and the session_id and created_at indexes.
        assert len(old) == 12
        assert sum("varchar_pattern_ops" in definition for definition, _ in old.values()) == 3
        assert not {"liveevent_event_type", "liveevent_user_id", "liveevent_user_unique_id"} & set(old)

        migrate_to("0002_lean_liveevent_indexes")
        upgraded = indexes()
        assert {name: d for name, (d, _) in upgraded.items()} == {name: d for name, (d, _) in fresh.items()}
        for column, name in (
            ("event_type", "liveevent_event_type"),
            ("user_id", "liveevent_user_id"),
            ("user_unique_id", "liveevent_user_unique_id"),
        ):
            (before,) = [node for definition, node in old.values() if definition.endswith(f"btree ({column})")]
            assert upgraded[name][1] == before, f"{name} was rebuilt instead of renamed"
        untouched = set(old) & set(upgraded)
        assert untouched and all(old[n][1] == upgraded[n][1] for n in untouched)

        migrate_to("0001_initial")
        assert {name: d for name, (d, _) in indexes().items()} == {name: d for name, (d, _) in old.items()}
    finally:
        migrate_to(head)
    assert {name: d for name, (d, _) in indexes().items()} == {name: d for name, (d, _) in fresh.items()}
    assert LiveEvent.objects.filter(session=session).count() == 200
