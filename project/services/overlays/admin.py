"""Overlays › OBS overlay URL: the URL with its token, to paste into OBS, and a way to change it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

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
                "A new overlay token is set: paste the new URL into OBS; the old one no longer works.",
                messages.WARNING,
            )
            return HttpResponseRedirect(request.path)
        token = access.ensure_token()
        context = {
            **self.admin_site.each_context(request),
            "title": "OBS overlay URL",
            "opts": self.model._meta,
            "obs_url": access.obs_url(request, token),
            "local_url": access.page_url(request),
            "local_without_token": access.local_without_token(),
            "can_change": self.has_change_permission(request),
        }
        return TemplateResponse(request, "admin/overlays/obs_overlay_url.html", context)
