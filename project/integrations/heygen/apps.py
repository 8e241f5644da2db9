from django.apps import AppConfig


class HeygenConfig(AppConfig):
    name = "project.integrations.heygen"
    label = "heygen"
    verbose_name = "HeyGen"
