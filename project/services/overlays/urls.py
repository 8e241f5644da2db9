from django.urls import path

from project.services.overlays import views

urlpatterns = [
    path("", views.page, name="overlays-page"),
    path("events/", views.events, name="overlays-events"),
]
