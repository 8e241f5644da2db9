from django.apps import AppConfig


class ElevenlabsConfig(AppConfig):
    name = "project.integrations.elevenlabs"
    label = "elevenlabs"
    verbose_name = "ElevenLabs"
