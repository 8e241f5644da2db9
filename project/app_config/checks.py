"""Health checks of the configuration and the servers the system needs, each with its fix.

Used by ``manage.py doctor`` and by the commands that start processes, so a
missing server is reported the same way everywhere.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import DatabaseError

from project.logging import redact


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def _host_port(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or default_port}"


def check_configuration() -> list[CheckResult]:
    """Django's system checks (the project's tte.E0xx among them), one line per problem."""
    from django.core import checks

    messages = [m for m in checks.run_checks() if m.level >= checks.WARNING and not m.is_silenced()]
    if not messages:
        return [CheckResult("Configuration", True, "no problems (python manage.py check)")]
    return [
        CheckResult(f"Configuration ({m.id})", False, m.msg, m.hint or "", required=m.is_serious()) for m in messages
    ]


def check_postgres() -> CheckResult:
    from django.db import connection

    db = settings.DATABASES["default"]
    where = f"{db.get('HOST') or 'localhost'}:{db.get('PORT') or 5432}/{db.get('NAME')}"
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        return CheckResult("PostgreSQL", True, f"{where} (server {version})")
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "does not exist" in message:
            host, user = db.get("HOST") or "127.0.0.1", db.get("USER") or "postgres"
            fix = f"createdb -h {host} -U {user} {db.get('NAME')}  (or ./scripts/setup)"
        else:
            fix = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start  (or ./scripts/setup)"
        return CheckResult("PostgreSQL", False, f"{where}: {redact(message)}", fix)


# The tables whose rows are rewritten several times each: a QueueItem is inserted, marked
# dispatched, claimed and finished (or discarded) within seconds.
CHURNING_TABLES = ("queue_system_queueitem", "tiktok_events_liveevent")

AUTOVACUUM_SQL = """
SELECT c.relname, coalesce(s.n_dead_tup, 0), pg_total_relation_size(c.oid),
       coalesce(c.reloptions, '{}'::text[]) @> ARRAY['autovacuum_enabled=false']
FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relname = ANY(%s) AND c.relkind = 'r' ORDER BY c.relname
"""


def check_autovacuum() -> CheckResult:
    """PostgreSQL's autovacuum, on for the server and the two tables that churn (optional: a warning).

    Without it nothing reclaims the rows a live rewrites: the tables and their indexes
    only grow, and every insert and update gets slower (a day of flood benchmarks left
    1.9 million dead QueueItem rows, 314 MB, with no live row among them).
    """
    from django.db import connection

    name = "PostgreSQL autovacuum"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            server_on = cursor.fetchone()[0] == "on"
            cursor.execute(AUTOVACUUM_SQL, [list(CHURNING_TABLES)])
            tables = cursor.fetchall()
    except Exception as exc:
        return CheckResult(name, False, f"could not be read: {type(exc).__name__}", required=False)
    dead = "; ".join(f"{table}: {rows:,} dead rows, {size / 2**20:.0f} MB" for table, rows, size, _ in tables)
    off_tables = [table for table, _, _, disabled in tables if disabled]
    if server_on and not off_tables:
        return CheckResult(name, True, f"on ({dead})" if dead else "on")
    where, fixes = [], []
    if not server_on:
        where.append("off for the server")
        fixes.append("set autovacuum = on in postgresql.conf (the default), then SELECT pg_reload_conf();")
    if off_tables:
        where.append(f"off for {', '.join(off_tables)}")
        fixes += [f"ALTER TABLE {table} RESET (autovacuum_enabled);" for table in off_tables]
    return CheckResult(
        name,
        False,
        f"{' and '.join(where)}: the rows each live rewrites are never reclaimed ({dead or 'no tables yet'})",
        # On tables that hold rows: analyzed empty, the next live's foreign-key checks keep a
        # plan for an empty table on each connection (docs/operations.md, "doctor").
        " ".join(fixes) + " Until then, run VACUUM ANALYZE between lives, while the tables hold rows.",
        required=False,
    )


def check_rabbitmq_amqp() -> CheckResult:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    where = _host_port(url, 5672)
    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
            version = conn.connection.server_properties.get("version", b"?")
            version = version.decode() if isinstance(version, bytes) else version
        return CheckResult("RabbitMQ (AMQP)", True, f"{where} (server {version})")
    except Exception as exc:
        return CheckResult(
            "RabbitMQ (AMQP)",
            False,
            f"{where}: {redact(str(exc)) or type(exc).__name__}",
            "rabbitmq-server -detached  (or ./scripts/setup); check CELERY_BROKER_URL",
        )


def check_rabbitmq_management() -> CheckResult:
    from project.queue_system.broker import Management

    # The admin's client reads the URL (a percent-encoded password included): one reading of it.
    management = Management(settings.RABBITMQ_MANAGEMENT_URL, vhost="/")
    base, auth = management.base, management.auth
    try:
        response = requests.get(f"{base}/api/overview", auth=auth, timeout=3)
    except requests.RequestException as exc:
        return CheckResult(
            "RabbitMQ management API",
            False,
            f"{base}: {type(exc).__name__}",
            "rabbitmq-plugins enable rabbitmq_management  (RabbitMQ must be running; or ./scripts/setup)",
        )
    if response.status_code == 401:
        return CheckResult(
            "RabbitMQ management API",
            False,
            f"{base}: 401 unauthorized",
            "set the user:password in RABBITMQ_MANAGEMENT_URL",
        )
    if response.status_code != 200:
        return CheckResult(
            "RabbitMQ management API", False, f"{base}: HTTP {response.status_code}", "check RABBITMQ_MANAGEMENT_URL"
        )
    return CheckResult(
        "RabbitMQ management API", True, f"{base} (management {response.json().get('management_version', '?')})"
    )


def check_redis() -> CheckResult:
    import redis

    url = settings.REDIS_URL
    where = _host_port(url, 6379)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        info = client.info("server")
        return CheckResult("Redis", True, f"{where} (server {info.get('redis_version', '?')})")
    except Exception as exc:
        return CheckResult(
            "Redis",
            False,
            f"{where}: {redact(str(exc)) or type(exc).__name__}",
            'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no  (or ./scripts/setup)',
        )


def _binary_version(names: list[str]) -> tuple[str | None, str]:
    for name in names:
        path = shutil.which(name)
        if path:
            try:
                out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
            except (OSError, subprocess.TimeoutExpired):
                out = "version unknown"
            return path, out
    return None, ""


def check_chromium() -> CheckResult:
    path, version = _binary_version(["chromium", "chromium-browser", "google-chrome"])
    if not path:
        return CheckResult("Chromium", False, "not found on PATH", "apt-get install -y chromium  (or ./scripts/setup)")
    return CheckResult("Chromium", True, f"{path} ({version})")


def check_chromedriver() -> CheckResult:
    path, version = _binary_version(["chromedriver"])
    if not path:
        return CheckResult(
            "chromedriver", False, "not found on PATH", "apt-get install -y chromium-driver  (or ./scripts/setup)"
        )
    return CheckResult("chromedriver", True, f"{path} ({version.split('(')[0].strip()})")


def check_sign_key() -> CheckResult:
    """The sign-server key (optional: without it, connections share the anonymous rate limit)."""
    from project.app_config.config import get_config
    from project.tiktok_events.capture.access import NO_KEY_WARNING

    try:
        key = get_config("sign_api_key").strip()
    except DatabaseError:
        return CheckResult("Sign-server API key", False, "not read: PostgreSQL does not answer", required=False)
    if not key:
        return CheckResult("Sign-server API key", False, NO_KEY_WARNING, required=False)
    return CheckResult("Sign-server API key", True, f"set (••••{key[-4:]})" if len(key) > 8 else "set")


def check_tiktok_access() -> list[CheckResult]:
    """The capture's access settings parse, and each configured proxy answers."""
    from project.tiktok_events.capture.access import AccessError, TikTokAccess

    try:
        access = TikTokAccess.from_config()
    except DatabaseError:
        return [CheckResult("TikTok access settings", False, "not read: PostgreSQL does not answer", required=False)]
    except AccessError as exc:
        return [CheckResult("TikTok access settings", False, str(exc), "fix it in the admin (Config)")]
    proxies = dict.fromkeys(filter(None, (access.http_proxy, access.ws_proxy)))
    return [check_proxy(url) for url in proxies]


# Where a proxy is asked to tunnel to: TikTok's web host (the answer says the proxy works, not TikTok).
PROXY_PROBE_TARGET = "www.tiktok.com:443"


def check_proxy(url: str, timeout: float = 5.0) -> CheckResult:
    """A proxy answers: an HTTP proxy to a CONNECT (any status but 407), a SOCKS proxy to a connection."""
    import base64
    import socket

    parts = urlsplit(url)
    name, shown = "TikTok proxy", redact(url)
    fix = "check the proxy's address and that it runs (Config tiktok_http_proxy / tiktok_ws_proxy)"
    default_port = {"http": 80, "https": 443}.get(parts.scheme, 1080)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=timeout) as sock:
            if not parts.scheme.startswith("http"):
                return CheckResult(name, True, f"{shown} accepts connections")
            request = f"CONNECT {PROXY_PROBE_TARGET} HTTP/1.1\r\nHost: {PROXY_PROBE_TARGET}\r\n"
            if parts.username:
                token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
                request += f"Proxy-Authorization: Basic {token}\r\n"
            sock.sendall((request + "\r\n").encode())
            status_line = sock.recv(1024).split(b"\r\n", 1)[0].decode("latin-1", "replace")
    except OSError as exc:
        return CheckResult(name, False, f"{shown}: {type(exc).__name__}: {exc.strerror or exc}", fix)
    fields = status_line.split()
    if len(fields) < 2 or not fields[0].startswith("HTTP/"):
        return CheckResult(name, False, f"{shown} answered {status_line[:60]!r}, not HTTP", fix)
    if fields[1] == "407":
        return CheckResult(name, False, f"{shown} wants credentials (HTTP 407)", "put user:password@ in the proxy URL")
    reach = "and reaches TikTok" if fields[1] == "200" else f"(HTTP {fields[1]} for {PROXY_PROBE_TARGET})"
    return CheckResult(name, True, f"{shown} answers {reach}")


ALL_CHECKS = [
    check_configuration,
    check_postgres,
    check_autovacuum,
    check_rabbitmq_amqp,
    check_rabbitmq_management,
    check_redis,
    check_chromium,
    check_chromedriver,
    check_sign_key,
    check_tiktok_access,
]


def run_checks() -> list[CheckResult]:
    results: list[CheckResult] = []
    for check in ALL_CHECKS:
        outcome = check()
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    return results
