"""Environment variables a service worker's processes hand to each other; this module imports nothing.

``TTE_`` (TikTok Live Events) marks the project's own variables. The worker launcher
(``workers/command.py``) sets them for the ``celery worker`` it starts; the Celery app
(``project/celery.py``) and the worker hooks (``workers/hooks.py``) read them. They live here,
apart from both, so the Celery app never imports ``workers`` and nothing imports in a circle.
"""

# The service(s) this worker serves: the Celery app declares exactly their queues, as
# topology.py does, so the worker never auto-creates a queue without x-max-priority.
WORKER_SERVICES_ENV = "TTE_WORKER_SERVICES"
# "prefork" (SYNC) or "threads" (ASYNC): where on_start must run.
POOL_ENV = "TTE_WORKER_POOL"
# Set (to 1) for a worker whose per-task INFO lines nobody reads: workers/hooks.py raises
# Celery's task loggers to WARNING. A supervisor that is not --verbose shows none of those
# lines, and a worker writing two lines per item spends CPU a flood needs.
QUIET_TASKS_ENV = "TTE_QUIET_TASKS"
