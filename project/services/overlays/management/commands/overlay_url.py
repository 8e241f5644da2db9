"""``manage.py overlay_url``: the URL to paste into OBS, with the overlay token (made if there is none)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from project.services.overlays import access


class Command(BaseCommand):
    help = "Print the OBS overlay URL with its token (the admin shows the same under Overlays › OBS overlay URL)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base",
            default="http://127.0.0.1:8000",
            help="Where OBS reaches the web server. Default http://127.0.0.1:8000.",
        )
        parser.add_argument("--new", action="store_true", help="Make a new token first (the old URL stops working).")

    def handle(self, *args, **options):
        token = access.regenerate_token() if options["new"] else access.ensure_token()
        self.stdout.write(f"{options['base'].rstrip('/')}/overlays/?token={token}")
