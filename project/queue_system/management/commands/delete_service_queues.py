"""``manage.py delete_service_queues SLUG --yes``: the only way a service's queues and policy are removed."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from project.queue_system import queues, topology
from project.queue_system.broker import BrokerError
from project.queue_system.discards import discard
from project.queue_system.models import QueueItem


class Command(BaseCommand):
    help = (
        "Delete the RabbitMQ queues (svc.<slug>, its discardable and arming queues) and the max-length policy "
        "of a service. Waiting messages are lost; their queue items are marked discarded. Needs --yes."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the service's slug (it need not exist in the database any more)")
        parser.add_argument("--yes", action="store_true", help="really delete them")

    def handle(self, *args, slug: str, yes: bool, **options):
        if not yes:
            raise CommandError(
                f"this deletes {queues.main_queue_name(slug)} and every svc.{slug}.* queue with the messages "
                "waiting in them: run again with --yes to do it"
            )
        try:
            deleted = topology.delete_service_queues(slug)
        except BrokerError as exc:
            raise CommandError(f"❌ {exc}") from exc
        for name in deleted:
            self.stdout.write(f"🗑️  deleted queue {name}")
        # Their messages are gone: what was waiting there will never run.
        marked = discard(
            QueueItem.objects.filter(service__slug=slug, status=QueueItem.Status.PENDING, dispatched_at__isnull=False),
            "its queue was deleted (delete_service_queues)",
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"✅ {len(deleted)} queue(s) and the policy {queues.discardable_policy_name(slug)} of {slug} deleted; "
                f"{marked} waiting item(s) marked discarded"
            )
        )
