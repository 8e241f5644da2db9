"""Running the real capture against the TikTok LIVE simulator from a test.

``run_capture`` writes a scenario (a list of simulator steps, see
``scripts/tiktok_sim/scenarios.py``) to a JSON file, runs
``manage.py capture_tiktok_live --simulate that.json`` in a subprocess pointed
at the test database and the test's RabbitMQ vhost, waits until the live ends
and returns what happened. The real TikTokLive client does the connecting, so
the events reach the database and the queues exactly as in production::

    @pytest.mark.django_db(transaction=True)
    def test_it_restarts_the_game_on_a_rose(vhost, seeded):
        run = run_capture(vhost, [gift("maria", "Rose"), comment("pepe", "hola")])
        assert run.returncode == 0, run.output
        rose = run.events().get(event_type="GiftEvent")
        assert rose.event_data["gift"]["name"] == "Rose"

A built-in scenario name works too: ``run_capture(vhost, "streaks", args=["--streak-timeout", "1"])``.
Step builders below (``comment``, ``gift``, ``like``...) return the dicts.
Tests sharing rows with the subprocess need ``@pytest.mark.django_db(transaction=True)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support import ROOT
from tests.support.servers import Vhost, subprocess_env


def simulator_scenarios():
    """The simulator's scenario module (scripts/tiktok_sim/scenarios.py), to count what a scenario sends."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from tiktok_sim import scenarios

    return scenarios


def messages_by_type(scenario) -> dict[str, int]:
    """How many messages of each simulator step type a compiled scenario sends."""
    counts: dict[str, int] = {}
    for action in scenario.actions:
        for spec in action.specs if action.kind == "frame" else ():
            counts[spec["type"]] = counts.get(spec["type"], 0) + 1
    return counts


# -- scenario steps ---------------------------------------------------------------------------------


def comment(user: str, text: str, nickname: str | None = None) -> dict[str, Any]:
    return {"type": "comment", "user": user, "text": text, **({"nickname": nickname} if nickname else {})}


def gift(user: str, name: str = "Rose", repeat: int = 1, **extra: Any) -> dict[str, Any]:
    """A gift; ``repeat`` > 1 on a combo gift (Rose...) is sent as a streak. Extra keys: gift_id,
    diamond_count, streakable, lose_end, streak_interval, nickname, to_user (a guest's handle)."""
    return {"type": "gift", "user": user, "gift": name, "repeat": repeat, **extra}


def like(user: str, count: int = 1, room_total: int | None = None) -> dict[str, Any]:
    """``room_total``: TikTok's like total for the room on this message (default: the running sum)."""
    return {"type": "like", "user": user, "count": count, **({"room_total": room_total} if room_total else {})}


def follow(user: str) -> dict[str, Any]:
    return {"type": "follow", "user": user}


def share(user: str) -> dict[str, Any]:
    return {"type": "share", "user": user}


def join(user: str) -> dict[str, Any]:
    return {"type": "join", "user": user}


def subscribe(user: str, via: str = "subnotify") -> dict[str, Any]:
    """``via``: subnotify (WebcastSubNotifyMessage), superfan (a Super Fan barrage) or member
    (WebcastMemberMessage with action SUBSCRIBED)."""
    return {"type": "subscribe", "user": user, "via": via}


def superfan_join(user: str) -> dict[str, Any]:
    """An existing Super Fan entering the LIVE (a barrage TikTokLive calls SuperFanJoinEvent)."""
    return {"type": "superfan_join", "user": user}


def unknown(method: str = "WebcastBrandNewFeatureMessage") -> dict[str, Any]:
    """A message whose method TikTokLive has no class for."""
    return {"type": "unknown", "method": method}


def truncated() -> dict[str, Any]:
    """A chat message whose payload cannot be parsed."""
    return {"type": "truncated"}


def history(step: dict[str, Any]) -> dict[str, Any]:
    """``step`` sent as TikTok's history: in the first fetch, ``is_history`` set."""
    return {**step, "history": True}


def wait(seconds: float) -> dict[str, Any]:
    return {"type": "wait", "seconds": seconds}


def end() -> dict[str, Any]:
    return {"type": "end"}


# -- running ----------------------------------------------------------------------------------------


@dataclass
class CaptureRun:
    returncode: int
    output: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def session_id(self) -> int | None:
        return self.summary.get("session_id")

    def events(self):
        """This run's LiveEvents (a queryset)."""
        from project.tiktok_events.models import LiveEvent

        return LiveEvent.objects.filter(session_id=self.session_id)


def run_capture(
    vhost: Vhost | None,
    scenario: str | list[dict[str, Any]],
    *,
    args: list[str] | tuple[str, ...] = (),
    add_end: bool = True,
    timeout: float = 180,
    command: str = "capture_tiktok_live",
    env: dict[str, str] | None = None,
) -> CaptureRun:
    """Run ``command`` (capture_tiktok_live or start_event_system) with ``--simulate`` and wait for it.

    A list of steps gets a final ``end`` step unless ``add_end=False``.
    """
    with tempfile.TemporaryDirectory(prefix="capture-") as tmp:
        if isinstance(scenario, list):
            steps = list(scenario)
            if add_end and (not steps or steps[-1].get("type") != "end"):
                steps.append(end())
            path = Path(tmp) / "scenario.json"
            path.write_text(json.dumps({"steps": steps}, ensure_ascii=False), encoding="utf-8")
            scenario = str(path)
        summary = Path(tmp) / "summary.json"
        argv = [
            os.environ.get("PYTHON", sys.executable),
            "manage.py",
            command,
            "--simulate",
            scenario,
            "--summary-json",
            str(summary),
            *args,
        ]
        proc = subprocess.run(
            argv,
            cwd=ROOT,
            env=subprocess_env(vhost, **(env or {})),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        data = json.loads(summary.read_text()) if summary.exists() else {}
    return CaptureRun(proc.returncode, proc.stdout + proc.stderr, data)
