"""The one Celery application of the project: ``celery -A project.celery:app``."""

import os

from celery import Celery

from project.queue_system.queues import worker_queues
from project.worker_env import WORKER_SERVICES_ENV

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
# Every Celery setting lives in the top-level celeryconfig.py, each with its reason.
app.config_from_object("celeryconfig")
if os.environ.get(WORKER_SERVICES_ENV):
    app.conf.task_queues = worker_queues(os.environ[WORKER_SERVICES_ENV])
app.autodiscover_tasks(["tasks"], related_name=None)
# A service worker's hooks (on_start/on_stop, the drain watchdog) are not imported here:
# the worker command line names them (``--include workers.hooks``, workers/command.py).
