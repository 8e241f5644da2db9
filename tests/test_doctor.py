import io
import os
import subprocess
import sys
import uuid
from urllib.parse import quote

import pytest
from django.core.management import call_command

from tests.support import ROOT
from tests.support.servers import management_request


def run_doctor(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "doctor"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_doctor_passes_when_everything_runs():
    result = run_doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("PostgreSQL", "RabbitMQ (AMQP)", "RabbitMQ management API", "Redis", "Chromium", "chromedriver"):
        assert f"✅ {name}" in result.stdout
    # Optional: a server without autovacuum is a warning, never a failure.
    assert ("✅ PostgreSQL autovacuum: on" in result.stdout) or ("⚠️  PostgreSQL autovacuum: off" in result.stdout)


@pytest.mark.slow
def test_doctor_says_rabbitmq_is_down_and_how_to_fix_it():
    # Nothing listens on port 1: what a stopped RabbitMQ looks like to a client.
    result = run_doctor(
        CELERY_BROKER_URL="amqp://guest:secretpw@127.0.0.1:1//",
        RABBITMQ_MANAGEMENT_URL="http://guest:guest@127.0.0.1:2",
    )
    assert result.returncode == 1
    assert "❌ RabbitMQ (AMQP): 127.0.0.1:1" in result.stdout
    assert "fix: rabbitmq-server -detached" in result.stdout
    assert "fix: rabbitmq-plugins enable rabbitmq_management" in result.stdout
    assert "secretpw" not in result.stdout + result.stderr


@pytest.mark.slow
def test_doctor_names_a_missing_database():
    result = run_doctor(DATABASE_URL="postgres://postgres@127.0.0.1:5432/no_such_db_for_doctor")
    assert result.returncode == 1
    assert "❌ PostgreSQL" in result.stdout and "createdb" in result.stdout


@pytest.mark.django_db
def test_doctor_as_a_command_raises_exit_1_on_a_missing_redis(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(SystemExit) as excinfo:
        call_command("doctor", stdout=io.StringIO())
    assert excinfo.value.code == 1


def server_autovacuum() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        return cursor.fetchone()[0] == "on"


@pytest.mark.django_db
def test_it_reports_the_servers_autovacuum_as_a_warning_when_off():
    from project.app_config.checks import check_autovacuum

    result = check_autovacuum()
    assert not result.required  # a warning: the system still works, it only slows down
    assert "queue_system_queueitem" in result.detail and "tiktok_events_liveevent" in result.detail
    if server_autovacuum():
        assert result.ok, result.detail
        assert result.detail.startswith("on (")
    else:
        assert not result.ok
        assert result.detail.startswith("off for the server")
        assert "autovacuum = on in postgresql.conf" in result.fix and "VACUUM ANALYZE" in result.fix


@pytest.mark.django_db
def test_it_warns_when_a_churning_table_has_autovacuum_disabled():
    from django.db import connection

    from project.app_config.checks import check_autovacuum

    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute("ALTER TABLE queue_system_queueitem SET (autovacuum_enabled = false)")
    result = check_autovacuum()
    assert not result.ok and not result.required
    assert "off for queue_system_queueitem" in result.detail
    assert "tiktok_events_liveevent" not in result.detail.split(":")[0]  # only the table that has it off
    assert "ALTER TABLE queue_system_queueitem RESET (autovacuum_enabled);" in result.fix


@pytest.mark.slow
def test_doctor_warns_without_a_sign_server_key_and_says_where_to_set_it():
    result = run_doctor(SIGN_API_KEY="")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "⚠️  Sign-server API key: No sign-server API key" in result.stdout
    assert "Config → sign_api_key" in result.stdout


@pytest.mark.slow
def test_doctor_shows_a_sign_server_key_masked(tmp_path):
    (tmp_path / "key").write_text("euler-doctor-key-77aa\n")
    result = run_doctor(SIGN_API_KEY_FILE=str(tmp_path / "key"))
    assert "✅ Sign-server API key: set (••••77aa)" in result.stdout
    assert "euler-doctor-key" not in result.stdout + result.stderr


@pytest.mark.slow
def test_doctor_checks_that_the_tiktok_proxy_answers():
    from tests.fakes.http_proxy import HttpProxy

    with HttpProxy() as proxy:
        working = run_doctor(TIKTOK_HTTP_PROXY=f"http://user:doctorpw@127.0.0.1:{proxy.port}")
        asked = list(proxy.seen)
    assert working.returncode == 0, working.stdout
    assert f"✅ TikTok proxy: http://user:***@127.0.0.1:{proxy.port} answers" in working.stdout
    assert asked == ["CONNECT www.tiktok.com:443"]
    stopped = run_doctor(TIKTOK_HTTP_PROXY="http://127.0.0.1:1", TIKTOK_WS_PROXY="socks5://127.0.0.1:2")
    assert stopped.returncode == 1
    assert "❌ TikTok proxy: http://127.0.0.1:1: ConnectionRefusedError" in stopped.stdout
    assert "❌ TikTok proxy: socks5://127.0.0.1:2: ConnectionRefusedError" in stopped.stdout
    assert "fix: check the proxy's address" in stopped.stdout
    assert "doctorpw" not in working.stdout + stopped.stdout


@pytest.mark.slow
def test_doctor_names_a_tiktok_setting_it_cannot_use():
    result = run_doctor(TIKTOK_ROOM_ID="not-a-number")
    assert result.returncode == 1
    assert "❌ TikTok access settings: Config tiktok_room_id='not-a-number' is not a room id" in result.stdout


@pytest.mark.slow
def test_doctor_reads_a_percent_encoded_management_password_as_the_admin_does():
    user, password = f"tte-doctor-{uuid.uuid4().hex[:8]}", "p@ss/w%rd:1 x"
    created = management_request("PUT", f"/api/users/{user}", json={"password": password, "tags": "monitoring"})
    created.raise_for_status()
    try:
        result = run_doctor(RABBITMQ_MANAGEMENT_URL=f"http://{user}:{quote(password, safe='')}@127.0.0.1:15672")
    finally:
        management_request("DELETE", f"/api/users/{user}")
    assert "✅ RabbitMQ management API" in result.stdout, result.stdout
    assert password not in result.stdout + result.stderr
