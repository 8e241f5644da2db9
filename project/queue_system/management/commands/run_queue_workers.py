import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from project.queue_system.stats import format_stats
from workers.supervisor import DISCARDS, WorkerSupervisor

LINE = "=" * 60


class Command(BaseCommand):
    help = (
        "Start one Celery worker per active service (or --service SLUG) plus the discard accounting, restart "
        "any that dies, print statistics every 30 s, and stop them cleanly on Ctrl+C / SIGTERM."
    )

    def add_arguments(self, parser):
        parser.add_argument("--service", action="append", dest="services", metavar="SLUG", help="only this service")
        parser.add_argument("--verbose", action="store_true", help="show every log line of the workers")
        parser.add_argument("--stats-interval", type=float, default=30.0, metavar="SECONDS")
        parser.add_argument("--stop-timeout", type=float, default=60.0, metavar="SECONDS")

    def handle(self, *args, services=None, verbose=False, stats_interval=30.0, stop_timeout=60.0, **options):
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())

        supervisor = WorkerSupervisor(slugs=services, verbose=verbose, stdout=self.stdout)
        try:
            planned = supervisor.services()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not planned:
            raise CommandError("no active service: activate one in the admin (Services) or name it with --service")

        self.stdout.write(f"{LINE}\n🚀 QUEUE WORKERS - Event processing\n{LINE}\n")
        started_at = timezone.now()
        supervisor.start()
        for service in planned:
            self.stdout.write(f"📦 Starting worker for: {service.name}")
        not_ready = supervisor.wait_ready(timeout=120)
        for service in planned:
            if service.slug in not_ready:
                self.stdout.write(self.style.WARNING(f"  ⚠️  {service.name}: not consuming yet (see its errors above)"))
            else:
                self.stdout.write(f"  ✅ {service.name} worker active - max queue: {service.max_queue_size} events")
        active = len(planned) - len(not_ready)
        self.stdout.write(f"\n✅ {active} worker(s) active\n")
        self.stdout.write("💡 Press Ctrl+C to stop the workers")
        self.stdout.write(f"📊 Statistics every {stats_interval:.0f} seconds...\n")

        next_stats = time.monotonic() + stats_interval
        try:
            while not stop.wait(1.0):
                supervisor.check()
                if time.monotonic() >= next_stats:
                    next_stats = time.monotonic() + stats_interval
                    self._print_stats(supervisor, started_at)
        finally:
            self.stdout.write("\n🛑 Stopping workers (current items finish; unfinished ones are redelivered)...")
            supervisor.stop(timeout=stop_timeout)
            stopped = [m for m in supervisor.processes.values() if m.name != DISCARDS]
            self.stdout.write(self.style.SUCCESS(f"👋 {len(stopped)} worker(s) stopped"))

    def _print_stats(self, supervisor, started_at):
        elapsed = int((timezone.now() - started_at).total_seconds())
        try:
            stats = supervisor.stats(since=started_at)
        except Exception as exc:  # the database may be restarting: report, keep supervising
            self.stdout.write(self.style.WARNING(f"📊 statistics unavailable: {exc}"))
            return
        alive = sum(1 for m in supervisor.processes.values() if m.alive and m.name != DISCARDS)
        self.stdout.write(f"\n{LINE}\n📊 QUEUE STATISTICS\n{LINE}\n")
        self.stdout.write(f"⏱️  Uptime: {elapsed // 3600}h {elapsed % 3600 // 60}m")
        self.stdout.write(f"🔧 Workers alive: {alive}\n")
        self.stdout.write(format_stats(stats))
        self.stdout.write(LINE)
