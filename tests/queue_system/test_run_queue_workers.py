"""``manage.py run_queue_workers`` and Flower on the real broker: supervised workers,
statistics, a restart after a crash, a clean stop, and Flower showing the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests

from project.queue_system.dispatcher import EventDispatcher
from tests.support.processes import Output
from tests.support.queueing import all_settled, make_events, make_service, make_session, statuses
from tests.support.servers import free_port, subprocess_env
from tests.support.waiting import wait_for
from tests.support.worker_processes import ROOT, consumers, running_workers
from workers.command import launcher_argv

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def worker_pids(node_prefix: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", "--", f"-n {node_prefix}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_it_supervises_one_worker_per_service_and_stops_cleanly(vhost):
    sync = make_service("sup_sync")
    pool = make_service("sup_pool", mode="ASYNC", concurrency=4)
    make_service("sup_off", is_active=False)
    events = make_events(make_session(), ["GiftEvent"] * 5 + ["LikeEvent"] * 5, sleep=0.05)
    EventDispatcher().dispatch_many(events)

    run = Output(
        [sys.executable, "manage.py", "run_queue_workers", "--stats-interval", "3"],
        subprocess_env(vhost, TTE_TEST_RECORD_KEY=f"rec:{vhost.name}"),
    )
    try:
        run.wait_for_text("✅ 2 worker(s) active")
        assert "📦 Starting worker for: Sup Sync" in run.text and "📦 Starting worker for: Sup Pool" in run.text
        assert "Sup Off" not in run.text  # inactive: no worker
        wait_for(lambda: all_settled(sync) and all_settled(pool), timeout=120, what="items not processed")
        assert statuses(sync)["completed"] == 10 and statuses(pool)["completed"] == 10
        run.wait_for_text("📊 QUEUE STATISTICS")
        run.wait_for_text("• Completed: 10 · Failed: 0 · Discarded: 0")
        assert "Async threads busy: " in run.text and "/4" in run.text
        assert "✅ [Sup Sync] GiftEvent (P:10) completed" in run.text

        # A worker that dies is started again.
        victims = worker_pids("sup_sync@")
        assert victims, "no sup_sync worker process found"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        run.wait_for_text("exited with code")
        wait_for(lambda: consumers(vhost, "svc.sup_sync") > 0, timeout=120, what="the worker was not restarted")
        more = make_events(make_session(), ["GiftEvent"] * 3)
        EventDispatcher().dispatch_many(more)
        wait_for(lambda: all_settled(sync), timeout=120, what="the restarted worker did not process")
        assert statuses(sync)["completed"] == 13

        run.signal(signal.SIGTERM)
        assert run.proc.wait(timeout=120) == 0, run.text[-4000:]
    finally:
        run.close()
    assert "👋 2 worker(s) stopped" in run.text
    assert consumers(vhost, "svc.sup_sync") == 0 and consumers(vhost, "svc.sup_pool") == 0


def test_it_refuses_an_unknown_service(vhost):
    make_service("known")
    result = subprocess.run(
        [sys.executable, "manage.py", "run_queue_workers", "--service", "nope"],
        cwd=ROOT,
        env=subprocess_env(vhost),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "nope" in result.stderr


def test_flower_shows_each_services_worker_and_its_tasks_behind_basic_auth(vhost):
    service = make_service("flowered")
    port = free_port()
    env = subprocess_env(vhost, FLOWER_BASIC_AUTH="watcher:s3cret-pass")
    workers = Output([sys.executable, "manage.py", "run_queue_workers", "--service", "flowered"], env)
    flower = Output([str(ROOT / "scripts" / "flower"), "--port", str(port), "--address", "127.0.0.1"], env)
    base = f"http://127.0.0.1:{port}"
    try:
        workers.wait_for_text("✅ 1 worker(s) active")

        def flower_answers() -> bool:
            try:
                return requests.get(f"{base}/api/workers", auth=("watcher", "s3cret-pass"), timeout=5).ok
            except requests.RequestException:
                return False

        wait_for(flower_answers, timeout=120, interval=1, what=f"Flower did not answer:\n{flower.text[-3000:]}")
        assert requests.get(f"{base}/api/workers", timeout=5).status_code == 401
        assert requests.get(f"{base}/api/workers", auth=("watcher", "wrong"), timeout=5).status_code == 401

        EventDispatcher().dispatch_many(make_events(make_session(), ["GiftEvent"] * 2))
        wait_for(lambda: all_settled(service), timeout=120, what="items not processed")

        def seen() -> bool:
            known = requests.get(f"{base}/api/workers?refresh=1", auth=("watcher", "s3cret-pass"), timeout=10).json()
            tasks = requests.get(f"{base}/api/tasks", auth=("watcher", "s3cret-pass"), timeout=10).json()
            names = {task.get("name") for task in tasks.values()}
            return any(name.startswith("flowered@") for name in known) and "tasks.process_event" in names

        wait_for(seen, timeout=60, interval=1, what="Flower never showed the worker and its tasks")
    finally:
        flower.close()
        workers.signal(signal.SIGTERM)
        workers.proc.wait(timeout=120)
        workers.close()
    assert "s3cret-pass" not in flower.text  # the password is never printed


def test_flower_refuses_to_start_without_credentials(vhost):
    result = subprocess.run(
        [str(ROOT / "scripts" / "flower"), "--port", str(free_port())],
        env=subprocess_env(vhost, FLOWER_BASIC_AUTH=""),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr


def test_it_shows_what_a_service_prints_and_hides_the_worker_chatter():
    from workers.supervisor import WorkerSupervisor

    quiet = WorkerSupervisor(verbose=False)
    printed = 'ts=2026-12-01T08:00:00 level=WARNING logger=celery.redirected msg="🚀 Mi Servicio iniciado"'
    assert quiet.format_line("mi_servicio", printed) == "[mi_servicio] 🚀 Mi Servicio iniciado"
    done = 'ts=2026-12-01T08:00:01 level=INFO logger=queue.events msg="✅ [Mi Servicio] GiftEvent (P:10) completed"'
    assert quiet.format_line("mi_servicio", done) == "✅ [Mi Servicio] GiftEvent (P:10) completed"
    chatter = "ts=2026-12-01T08:00:02 level=INFO logger=celery.worker.consumer.connection msg=Connected"
    assert quiet.format_line("mi_servicio", chatter) is None
    assert WorkerSupervisor(verbose=True).format_line("mi_servicio", chatter) == f"[mi_servicio] {chatter}"


def test_quiet_tasks_drops_the_per_task_lines_but_not_outcomes_or_failures(vhost):
    """What a supervisor without --verbose runs: no "received"/"succeeded" line per task
    (it would not show them), the service's outcome lines and errors still written."""
    assert "--quiet-tasks" in launcher_argv("x", quiet_tasks=True)
    assert "--quiet-tasks" not in launcher_argv("x")
    quiet, chatty = make_service("quiet_pool", mode="ASYNC", concurrency=2), make_service("chatty_pool", mode="ASYNC")
    session = make_session()
    dispatcher = EventDispatcher()
    dispatcher.dispatch_many(make_events(session, ["GiftEvent"] * 3))
    dispatcher.dispatch_many(make_events(session, ["FollowEvent"], **{"raise": "the overlay server is down"}))

    quiet_args = {"quiet_pool": ["--quiet-tasks"]}
    with running_workers(vhost, ["quiet_pool", "chatty_pool"], worker_args=quiet_args) as workers:
        wait_for(lambda: all_settled(quiet) and all_settled(chatty), timeout=120, what="items not processed")
        for service in (quiet, chatty):
            assert statuses(service)["completed"] == 3 and statuses(service)["failed"] == 1
        quiet_log, chatty_log = workers.log("quiet_pool"), workers.log("chatty_pool")

    for log in (quiet_log, chatty_log):
        assert log.count("GiftEvent (P:10) completed") == 3, log[-3000:]
        assert "the overlay server is down" in log  # the failure, with its traceback
    assert "succeeded in" in chatty_log and "Task tasks.process_event[" in chatty_log
    assert "succeeded in" not in quiet_log and "Task tasks.process_event[" not in quiet_log, quiet_log[-3000:]
