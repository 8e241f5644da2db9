"""The project's modules import without a cycle, in whichever order a process reaches them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

WORKER_VARIABLES = {"TTE_WORKER_SERVICES": "dinochrome", "TTE_WORKER_POOL": "prefork", "TTE_QUIET_TASKS": "1"}


def _import_in_a_fresh_interpreter(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **WORKER_VARIABLES, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("first", ["workers.command", "workers.hooks", "project.celery", "project", "workers"])
def test_a_module_imported_first_with_the_worker_variables_set_imports_cleanly(first):
    run = _import_in_a_fresh_interpreter(f"import {first}")
    assert run.returncode == 0, run.stderr


def test_the_celery_app_does_not_import_the_workers_package():
    run = _import_in_a_fresh_interpreter(
        "import sys, project.celery; print(sorted(m for m in sys.modules if m.split('.')[0] == 'workers'))"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_a_service_worker_is_told_to_load_its_hooks():
    from workers.command import HOOKS_MODULE, worker_argv

    class Service:  # the fields worker_argv reads; a row is not needed for a command line
        slug = "dinochrome"
        concurrency = 1

        class Mode:
            ASYNC = "ASYNC"

        mode = "SYNC"

    argv = worker_argv(Service())
    assert argv[argv.index("--include") + 1] == HOOKS_MODULE == "workers.hooks"
