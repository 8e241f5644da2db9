from django.apps import AppConfig


class DinochromeConfig(AppConfig):
    name = "project.services.dinochrome"
    label = "dinochrome"
    verbose_name = "DinoChrome"
