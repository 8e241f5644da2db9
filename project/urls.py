from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("dino/", include("project.services.dinochrome.urls")),
    path("overlays/", include("project.services.overlays.urls")),
    path("control/", include("project.control.urls")),
    path("api/elevenlabs/", include("project.integrations.elevenlabs.urls")),
    path("", include("project.app_config.urls")),
]
