"""Start Flower (the Celery monitoring UI) with basic auth: ``./scripts/flower``.

Credentials come from ``FLOWER_BASIC_AUTH`` (``user:password``, environment or
.env) and are handed to Flower through its environment, never the command line
(which ``ps`` shows). Waits for RabbitMQ first, so a container started with the
broker comes up cleanly. Task events are switched on by Flower itself and the
workers send them (``--task-events``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.conf import settings

    from project.queue_system.broker import BrokerError, close_quietly, open_connection

    parser = argparse.ArgumentParser(prog="scripts/flower")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555")))
    parser.add_argument("--address", default=os.environ.get("FLOWER_ADDRESS", "0.0.0.0"))  # noqa: S104 - a server
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for RabbitMQ")
    args = parser.parse_args(argv)

    auth = settings.FLOWER_BASIC_AUTH
    if ":" not in auth or not auth.split(":", 1)[1]:
        print(
            "error: set FLOWER_BASIC_AUTH=user:password (environment or .env) before starting Flower", file=sys.stderr
        )
        return 2
    deadline = time.monotonic() + args.wait
    while True:
        try:
            close_quietly(open_connection())
            break
        except BrokerError as exc:
            if time.monotonic() > deadline:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)

    env = dict(os.environ)
    env["FLOWER_BASIC_AUTH"] = auth
    env["FLOWER_BROKER_API"] = settings.RABBITMQ_MANAGEMENT_URL.rstrip("/") + "/api/"
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "project.celery:app",
        "flower",
        f"--port={args.port}",
        f"--address={args.address}",
    ]
    os.execve(argv[0], argv, env)  # noqa: S606 - Flower itself, argv built above
    return 0


if __name__ == "__main__":
    sys.exit(main())
