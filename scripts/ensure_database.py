"""Create the database named in DATABASE_URL if it does not exist yet."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django

django.setup()

import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from psycopg import sql  # noqa: E402

db = settings.DATABASES["default"]
params = {
    "host": db.get("HOST") or "127.0.0.1",
    "port": db.get("PORT") or 5432,
    "user": db.get("USER") or "postgres",
    "password": db.get("PASSWORD") or None,
    "dbname": "postgres",
}
with psycopg.connect(**params, autocommit=True) as conn:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
        print(f"Created database {db['NAME']}")
