from django.core.management.base import BaseCommand

from project.app_config.checks import run_checks


class Command(BaseCommand):
    help = (
        "Check the configuration (system checks), PostgreSQL, RabbitMQ (AMQP and management API), Redis, "
        "Chromium and chromedriver; print how to fix what is missing."
    )
    # The configuration's checks are part of the report instead of stopping it before it starts.
    requires_system_checks = []

    def handle(self, *args, **options):
        results = run_checks()
        failed = [r for r in results if not r.ok and r.required]
        for result in results:
            mark = "✅" if result.ok else ("❌" if result.required else "⚠️ ")
            self.stdout.write(f"{mark} {result.name}: {result.detail}")
            if not result.ok and result.fix:
                self.stdout.write(f"   fix: {result.fix}")
        if failed:
            self.stdout.write(self.style.ERROR(f"\n{len(failed)} required check(s) failed."))
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS("\nEverything the system needs is running."))
