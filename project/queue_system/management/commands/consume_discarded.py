import signal

from django.core.management.base import BaseCommand

from project.queue_system.discards import DiscardAccountant
from workers.supervisor_watch import watch_supervisor


class Command(BaseCommand):
    help = (
        "Mark as discarded the queue items that a max_queue_size policy dropped (reads the events.discarded "
        "queue in batches). Runs until Ctrl+C / SIGTERM; run_queue_workers starts it for you."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="account for what is queued now, then exit")

    def handle(self, *args, once=False, **options):
        accountant = DiscardAccountant()
        if once:
            self.stdout.write(f"🗑️  {accountant.drain_once()} item(s) marked discarded")
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: accountant.stop())
        watch_supervisor(accountant.stop)  # killed outright, run_queue_workers leaves nobody behind
        self.stdout.write("🗑️  Discard accounting running (Ctrl+C to stop)")
        accountant.run()
        self.stdout.write(f"👋 Discard accounting stopped ({accountant.marked} item(s) marked discarded)")
