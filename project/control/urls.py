"""/control/: each part of the control room keeps its routes in a module of its own."""

from django.urls import include, path

urlpatterns = [
    path("", include("project.control.room_urls")),
    path("", include("project.control.report_urls")),
]
