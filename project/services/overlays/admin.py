"""Overlays › OBS overlay URL: the URLs with their token, to paste into OBS, and a way to change it.

The cards page (``/overlays/``) and a "Next up" page (``/overlays/queue/``) per active SYNC service.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from project.queue_system.models import Service
from project.services.overlays import access
from project.services.overlays.models import ObsOverlayUrl


@admin.register(ObsOverlayUrl)
class ObsOverlayUrlAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ObsOverlayUrl | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            return HttpResponse(status=403)
        if request.method == "POST":
            if not self.has_change_permission(request):
                return HttpResponse(status=403)
            access.regenerate_token()
            self.message_user(
                request,
                "A new overlay token is set: paste the new URLs into OBS; the old ones no longer work.",
                messages.WARNING,
            )
            return HttpResponseRedirect(request.path)
        token = access.ensure_token()
        context = {
            **self.admin_site.each_context(request),
            "title": "OBS overlay URL",
            "opts": self.model._meta,
            "obs_url": access.obs_url(request, token),
            "queue_urls": queue_urls(request, token),
            "local_url": access.page_url(request),
            "local_without_token": access.local_without_token(),
            "can_change": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/overlays/obs_overlay_url.html", context)


def queue_urls(request: HttpRequest, token: str) -> list[dict]:
    """The "Next up" URL of each active SYNC service (the page shows one SYNC service)."""
    page = request.build_absolute_uri(reverse("overlays-queue"))
    services = Service.objects.filter(mode=Service.Mode.SYNC, is_active=True).order_by("slug").only("slug", "name")
    return [
        {"slug": s.slug, "name": s.name, "url": f"{page}?{urlencode({'service': s.slug, 'token': token})}"}
        for s in services
    ]
