from project.app_config.models import Config


class ObsOverlayUrl(Config):
    """The admin's page for the OBS overlay URL: the ``overlays_token`` Config row, shown as a URL."""

    class Meta:
        proxy = True
        verbose_name = "OBS overlay URL"
        verbose_name_plural = "OBS overlay URL"
