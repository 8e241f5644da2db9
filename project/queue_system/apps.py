from django.apps import AppConfig


class QueueSystemConfig(AppConfig):
    name = "project.queue_system"
    label = "queue_system"
    verbose_name = "Queue system"
