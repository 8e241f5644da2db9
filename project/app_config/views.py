from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse


def index(request: HttpRequest) -> HttpResponse:
    links = [("Admin", "/admin/"), ("Dino game", "/dino/"), ("OBS overlays", "/overlays/")]
    items = "".join(f'<li><a href="{url}">{label}</a></li>' for label, url in links)
    return HttpResponse(f"<!doctype html><title>TikTok Live Events</title><h1>TikTok Live Events</h1><ul>{items}</ul>")


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
