from django.apps import AppConfig


class ControlConfig(AppConfig):
    name = "project.control"
    label = "control"
    verbose_name = "Control room"
