from django.apps import AppConfig


class AvatarConfig(AppConfig):
    name = "project.services.avatar"
    label = "avatar"
    verbose_name = "Avatar"
