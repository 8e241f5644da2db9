from django.apps import AppConfig


class OverlaysConfig(AppConfig):
    name = "project.services.overlays"
    label = "overlays"
    verbose_name = "Overlays"
