"""``manage.py overlay_url``: the URLs to paste into OBS, with the overlay token (made if there is none).

The first line is always the cards page (``/overlays/``) alone, so scripts can take it
with ``head -1``; a labelled "Next up" URL per active SYNC service follows. ``--queue
<slug>`` prints only that service's "Next up" URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from project.queue_system.models import Service
from project.services.overlays import access


def queue_url(base: str, slug: str, token: str) -> str:
    return f"{base}{reverse('overlays-queue')}?{urlencode({'service': slug, 'token': token})}"


class Command(BaseCommand):
    help = (
        "Print the OBS overlay URL with its token, then the 'Next up' URL of each active SYNC service "
        "(the admin shows the same under Overlays › OBS overlay URL)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--base",
            default="http://127.0.0.1:8000",
            help="Where OBS reaches the web server. Default http://127.0.0.1:8000.",
        )
        parser.add_argument("--new", action="store_true", help="Make a new token first (the old URL stops working).")
        parser.add_argument(
            "--queue",
            metavar="SLUG",
            help="Print only the 'Next up' URL (/overlays/queue/) of this SYNC service.",
        )

    def handle(self, *args, **options):
        base = options["base"].rstrip("/")
        slug = options["queue"]
        # Checked before --new: a typo must not cost the URL already pasted into OBS.
        if slug is not None and not Service.objects.filter(slug=slug, mode=Service.Mode.SYNC).exists():
            raise CommandError(f"{slug!r} is not a SYNC service. {self.sync_services_text()}")
        token = access.regenerate_token() if options["new"] else access.ensure_token()
        if slug is not None:
            self.stdout.write(queue_url(base, slug, token))
            return
        self.stdout.write(f"{base}{reverse('overlays-page')}?token={token}")
        services = Service.objects.filter(mode=Service.Mode.SYNC, is_active=True).order_by("slug")
        for service in services.only("slug", "name"):
            self.stdout.write(f"Next up, {service.name} ({service.slug}): {queue_url(base, service.slug, token)}")

    @staticmethod
    def sync_services_text() -> str:
        services = Service.objects.filter(mode=Service.Mode.SYNC).order_by("slug").values_list("slug", "is_active")
        if not services:
            return "There is no SYNC service yet: make one in the admin (Queue system › Services)."
        return (
            "SYNC services: " + ", ".join(slug if active else f"{slug} (inactive)" for slug, active in services) + "."
        )
