"""The one Celery application of the project: ``celery -A project.celery:app``."""

import os

from celery import Celery

from project.queue_system.queues import worker_queues

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# Set by the worker launcher (workers/command.py): the service(s) this worker
# serves. Their queues are declared exactly as topology.py declares them, so the
# worker never auto-creates a queue without x-max-priority.
WORKER_SERVICES_ENV = "TTE_WORKER_SERVICES"

app = Celery("project")
# Every Celery setting lives in the top-level celeryconfig.py, each with its reason.
app.config_from_object("celeryconfig")
if os.environ.get(WORKER_SERVICES_ENV):
    app.conf.task_queues = worker_queues(os.environ[WORKER_SERVICES_ENV])
app.autodiscover_tasks(["tasks"], related_name=None)

if os.environ.get(WORKER_SERVICES_ENV):
    # Service lifecycle (on_start/on_stop) and the drain-ticket watchdog.
    import workers.hooks  # noqa: F401
