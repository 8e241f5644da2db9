"""Worker launch: turning a Service row into a ``celery worker`` command line.

- ``workers.command.worker_argv(service)`` / ``worker_env(service)`` — the one place
  that knows the command line (used by ``python -m workers``, the supervisor,
  docker-compose through ``python -m workers <slug>``, and the tests).
- ``python -m workers <slug>`` — declares the topology, re-publishes the
  service's pending items, then execs the worker.
- ``workers.supervisor.WorkerSupervisor`` — starts, restarts and stops one worker
  per active service (``run_queue_workers``, ``start_event_system``).
- ``workers.hooks`` — loaded inside the worker: service on_start/on_stop and
  the drain-ticket watchdog.
"""
