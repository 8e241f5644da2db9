from django.apps import AppConfig


class TiktokEventsConfig(AppConfig):
    name = "project.tiktok_events"
    label = "tiktok_events"
    verbose_name = "TikTok events"
