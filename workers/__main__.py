# Design: docs/architecture.md#processes
"""``python -m workers <slug>``: run the Celery worker of one service.

Declares the service's queues and policy, publishes its items left pending
while the broker was away, then replaces itself with the ``celery worker``
process (same pid, so signals from a supervisor or Docker reach Celery).
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("slug", help="slug of the Service to run")
    parser.add_argument("--node-suffix", default="", help="appended to the node name <slug>@<host>")
    parser.add_argument("--loglevel", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument("--no-redispatch", action="store_true", help="do not publish pending items first")
    parser.add_argument(
        "--quiet-tasks",
        action="store_true",
        help="no INFO line per task (received, succeeded); failures, warnings and the service's own lines stay",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from project.queue_system.broker import BrokerError
    from project.queue_system.dispatcher import redispatch_pending
    from project.queue_system.models import Service
    from project.queue_system.recovery import recover_at_start
    from project.queue_system.topology import TopologyError, declare_all
    from workers.command import worker_argv, worker_env

    service = Service.objects.filter(slug=args.slug).first()
    if service is None:
        known = ", ".join(Service.objects.values_list("slug", flat=True)) or "none"
        print(f"error: no service with slug '{args.slug}' (known: {known})", file=sys.stderr)
        return 2
    if not service.is_active:
        print(f"warning: service '{args.slug}' is inactive: it receives no new events; draining what is queued")
    try:
        report = declare_all([service.slug], strict_policies=False)
        for problem in report.policy_errors:
            print(f"warning: {problem}", file=sys.stderr)
        if not args.no_redispatch:
            recovered = recover_at_start(service)
            if recovered:
                print(f"re-published {recovered} item(s) of {service.slug} that had lost their message")
            result = redispatch_pending([service.slug], older_than=10)
            if result.confirmed:
                print(f"re-published {result.confirmed} pending item(s) of {service.slug}")
    except (BrokerError, TopologyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from django.db import connections

    connections.close_all()
    argv = worker_argv(service, node_suffix=args.node_suffix, loglevel=args.loglevel)
    os.execve(argv[0], argv, worker_env(service, quiet_tasks=args.quiet_tasks))  # noqa: S606 - our own worker, argv built above
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
