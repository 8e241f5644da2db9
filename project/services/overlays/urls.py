from django.urls import path

from project.services.overlays import queue_view, views

urlpatterns = [
    path("", views.page, name="overlays-page"),
    path("events/", views.events, name="overlays-events"),
    path("queue/", queue_view.queue_page, name="overlays-queue"),
    path("queue/events/", queue_view.queue_events, name="overlays-queue-events"),
]
