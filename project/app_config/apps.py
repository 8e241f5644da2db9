from django.apps import AppConfig


class AppConfigConfig(AppConfig):
    name = "project.app_config"
    label = "app_config"
    verbose_name = "Configuration"
