"""Celery settings for ``project.celery:app``.

Reference: https://docs.celeryq.dev/en/stable/userguide/configuration.html
Queues are not listed here: each service's queues are declared from the
database by ``project.queue_system.topology`` (priority arguments must match
exactly what the broker already holds, so one module owns them).
"""

from django.conf import settings as _django_settings

from project.env import env_int

# Loading the Django settings first makes .env and the strict readers apply here too.
broker_url = _django_settings.CELERY_BROKER_URL
result_backend = _django_settings.REDIS_URL

# JSON only: no pickle from the broker.
# https://docs.celeryq.dev/en/stable/userguide/calling.html#serializers
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# Results are not read by anyone; task state lives on QueueItem rows.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-ignore-result
task_ignore_result = True

# Ack after the handler ran, and requeue when the worker process dies, so a
# killed worker's item is redelivered instead of lost.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost
task_acks_late = True
task_reject_on_worker_lost = True

# Prefetch one message per process: with acks_late the worker then takes the
# highest-priority message only when it is free, which is what priority means.
# https://docs.celeryq.dev/en/stable/userguide/optimizing.html#prefetch-limits
worker_prefetch_multiplier = 1

# After a broker restart Celery lowers the prefetch while tasks of the old connection
# run, and raises it again from the thread that acked one of them: under the thread
# pool (ASYNC services) that thread then talks to the consumer's connection beside the
# event loop, and the worker could stop taking messages for minutes with its prefetch
# used up (seen in tests/faults/test_capture_faults.py). The old connection's unacked
# messages go back to the queue anyway, so there is nothing to over-fetch.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-enable-prefetch-count-reduction
worker_enable_prefetch_count_reduction = False

# Publisher confirms: apply_async returns only once the broker has the message.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-transport-options
broker_transport_options = {"confirm_publish": True}
broker_connection_retry_on_startup = True

# Priorities 0–10 on the broker side; see topology.py for x-max-priority.
# https://docs.celeryq.dev/en/stable/userguide/routing.html#rabbitmq-message-priorities
task_queue_max_priority = 10
task_default_priority = 5

# Events for Flower.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-send-task-events
worker_send_task_events = True
task_send_sent_event = True

# A handler that hangs must not block a service for ever: each service's time
# budget (Service.time_budget_seconds) is enforced by the worker itself, for the
# thread pool too, which ignores Celery's limits (project/queue_system/budget.py).
# Celery's hard limit stays as the last resort of a SYNC worker whose child no
# longer runs Python at all (a C call holding the GIL): above the largest budget
# plus the outage waits, so it never cuts a handler the budget allows.
# https://docs.celeryq.dev/en/stable/userguide/workers.html#time-limits
task_soft_time_limit = None
task_time_limit = 3600 + 300

worker_hijack_root_logger = False

# Without this, Celery's Django fixup closes the database connection before and
# after every task, so each event paid for a new PostgreSQL connection (tens of
# ms on a busy machine: a no-op SYNC worker did ~60 items/s). The connection is
# now kept for this many tasks; workers/hooks.py still drops, before each task,
# one that failed or outlived CONN_MAX_AGE (Django's close_old_connections).
# (celery/fixups/django.py: DjangoWorkerFixup.close_database)
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)
