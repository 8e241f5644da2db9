from django.core.management.base import BaseCommand
from django.db import transaction

from project.app_config.models import Config
from project.queue_system.models import Service, ServiceEventConfig
from project.queue_system.seed_data import CONFIG_KEYS, SERVICES


class Command(BaseCommand):
    help = (
        "Create the Config keys and the seeded services with their event configurations. "
        "Safe to run again: existing rows are kept as they are."
    )

    @transaction.atomic
    def handle(self, *args, **options):
        created = 0
        for key, description in CONFIG_KEYS.items():
            _, was_created = Config.objects.get_or_create(key=key, defaults={"description": description})
            created += was_created
        self.stdout.write(f"⚙️  Config: {len(CONFIG_KEYS)} keys ({created} new)")

        for spec in SERVICES:
            spec = dict(spec)
            events = spec.pop("events")
            service, was_created = Service.objects.get_or_create(slug=spec["slug"], defaults=spec)
            new_configs = 0
            for event_type, priority, discardable in events:
                _, config_created = ServiceEventConfig.objects.get_or_create(
                    service=service,
                    event_type=event_type,
                    defaults={"priority": priority, "discardable": discardable, "enabled": True},
                )
                new_configs += config_created
            state = "created" if was_created else "kept"
            self.stdout.write(
                f"🔧 {service.name} ({service.mode}, max queue {service.max_queue_size}): {state}, "
                f"{service.event_configs.count()} event configs ({new_configs} new)"
            )
        self.stdout.write(self.style.SUCCESS("✅ Initial data ready"))
