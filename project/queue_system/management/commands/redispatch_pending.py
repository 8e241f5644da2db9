from django.core.management.base import BaseCommand

from project.queue_system.dispatcher import redispatch_pending


class Command(BaseCommand):
    help = (
        "Publish the queue items that were never confirmed by RabbitMQ (it was down when they were captured). "
        "Run automatically when the capture and the workers start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--service", action="append", dest="services", metavar="SLUG", help="only this service")
        parser.add_argument(
            "--older-than", type=float, default=0.0, metavar="SECONDS", help="skip items younger than this"
        )

    def handle(self, *args, services=None, older_than=0.0, **options):
        result = redispatch_pending(services, older_than=older_than)
        if result.error:
            self.stderr.write(
                self.style.ERROR(f"❌ RabbitMQ unavailable, {result.pending} item(s) still pending: {result.error}")
            )
            raise SystemExit(1)
        self.stdout.write(self.style.SUCCESS(f"✅ {result.confirmed} pending item(s) published"))
