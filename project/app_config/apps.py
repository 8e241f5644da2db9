from django.apps import AppConfig


class AppConfigConfig(AppConfig):
    name = "project.app_config"
    label = "app_config"
    verbose_name = "Configuration"

    def ready(self) -> None:
        # Registers the tte.E0xx system checks (an unsafe configuration with DEBUG false).
        from project.app_config import security_checks  # noqa: F401
