"""``--replay FILE``: play a recording (``capture_tiktok_live --record FILE``) as the live.

The recording is turned into a scenario the server plays like any other, through
the same endpoints:

- the first fetch of the first connection carries the messages of the recorded
  first fetch (``is_history`` as recorded); a later recorded first fetch (the
  capture had reconnected) becomes a push frame with its messages, in its place;
- every recorded push frame (``"msg"``) is sent again, in order, after its
  recorded gap divided by ``speed`` (0: no waiting), with ``now`` stamped at
  send time (the capture measures how far behind it is from it) and
  ``need_ack`` set, so the simulator's acknowledgements and its redelivery of
  unacknowledged frames after a reconnect work as for its own frames.
  Heartbeats are not replayed (the server answers the client's own); a
  WebSocket message that is not a readable push frame is sent as it was;
- at the end, a recording without the live's end (a capture stopped or killed
  before it) gets one: the simulator ends the live and says so on stderr.

Frames are kept as recorded (compressed) and decoded when sent: a long live
loads fast and stays small in memory. The format is read by the capture's own
reader (``project/tiktok_events/capture/recording.py``), loaded from its file so
that the simulator does not import the project (and Django or Celery with it).
"""

from __future__ import annotations

import gzip
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from TikTokLive.proto import BaseProtoMessage, ProtoMessageFetchResult, WebcastControlMessage, WebcastPushFrame
from TikTokLiveProto.v3.webcast.im import ControlAction

from .scenarios import Action, Scenario, ScenarioError

RECORDING_MODULE = Path(__file__).resolve().parents[2] / "project" / "tiktok_events" / "capture" / "recording.py"
# The control actions after which TikTokLive treats the live as over (LiveEndEvent).
LIVE_OVER = {ControlAction.STREAM_ENDED, ControlAction.STREAM_SUSPENDED}
Fetch = tuple[list[BaseProtoMessage], bytes]  # the messages of a frame to send, and its fetch-result body
NEED_ACK = bytes(ProtoMessageFetchResult(need_ack=True))  # appended: protobuf's last value wins


class ReplayError(ScenarioError):
    """The file cannot be replayed (not a recording, unreadable)."""


@dataclass
class RecordedFrame(Action):
    """A recorded WebSocket message (``first_fetch``: a later connection's first fetch)."""

    data: bytes = b""
    first_fetch: bool = False


@dataclass
class ReplayScenario(Scenario):
    first_messages: list[BaseProtoMessage] = field(default_factory=list)
    live_ended: bool = False  # a recorded end of the live was sent


def recording_module() -> ModuleType:
    name = "ttlive_recording"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, RECORDING_MODULE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return sys.modules[name]


def load_replay(path: str, speed: float = 1.0) -> ReplayScenario:
    """The scenario that plays ``path``; raises ReplayError for a file it cannot play."""
    if speed < 0:
        raise ReplayError(f"--speed must be 0 (as fast as possible) or more, got {speed:g}")
    recording = recording_module()
    try:
        items = list(recording.read_recording(path, on_truncated=_say_truncated))
    except (OSError, recording.RecordingError) as exc:
        raise ReplayError(f"cannot replay {path}: {exc}") from exc
    header, records = items[0], items[1:]
    scenario = ReplayScenario(name=f"replay:{Path(path).name}", actions=[])
    actions = []
    previous = None
    for record in records:
        if record.kind == "first_fetch" and previous is None:
            scenario.first_messages = list(ProtoMessageFetchResult().parse(record.data).messages)
        else:
            gap = record.arrival - previous if previous is not None else 0.0
            if speed and gap > 0:
                actions.append(Action("wait", seconds=gap / speed))
            actions.append(RecordedFrame("recorded", data=record.data, first_fetch=record.kind == "first_fetch"))
        previous = record.arrival
    actions.append(Action("replay_end"))
    scenario.actions = actions
    frames = sum(1 for record in records if record.kind == "frame")
    _say(
        f"replaying {Path(path).name}: {frames} WebSocket messages recorded from @{header.username} "
        f"at {header.started_at} (TikTokLive {header.tiktoklive}), speed {speed:g}"
    )
    return scenario


def take_first_messages(scenario: Scenario) -> list[BaseProtoMessage]:
    """The recorded first fetch's messages, once (for the first connection's first fetch)."""
    if not isinstance(scenario, ReplayScenario):
        return []
    messages, scenario.first_messages = scenario.first_messages, []
    return messages


def decode_recorded(scenario: ReplayScenario, frame: RecordedFrame) -> Fetch | bytes | None:
    """What to send for a recorded frame: (messages, fetch-result body); None to skip it
    (a heartbeat); the recorded bytes themselves when they are not a readable push frame."""
    if frame.first_fetch:
        messages = list(ProtoMessageFetchResult().parse(frame.data).messages)
        return _seen(scenario, messages), bytes(ProtoMessageFetchResult(messages=messages, need_ack=True))
    try:
        push = WebcastPushFrame().parse(frame.data)
        if push.payload_type != "msg":
            return None
        body = push.payload
        if any(header.key == "compress_type" and header.value == "gzip" for header in push.headers or []):
            body = gzip.decompress(body)
        messages = list(ProtoMessageFetchResult().parse(body).messages)
    except Exception:  # garbage or a corrupt payload: the capture saw it so, and sees it again
        return frame.data
    return _seen(scenario, messages), body + NEED_ACK


def end_message_needed(scenario: Scenario) -> bool:
    """At the end of a replay: True (and said on stderr) when the recording did not end the live."""
    if not isinstance(scenario, ReplayScenario) or scenario.live_ended:
        return False
    _say("the recording ends before the live did; the simulator ends the live now (STREAM_ENDED)")
    return True


def _seen(scenario: ReplayScenario, messages: list[BaseProtoMessage]) -> list[BaseProtoMessage]:
    if not scenario.live_ended:
        scenario.live_ended = any(_ends_the_live(message) for message in messages)
    return messages


def _ends_the_live(message: BaseProtoMessage) -> bool:
    if message.method != "WebcastControlMessage":
        return False
    try:
        return WebcastControlMessage().parse(message.payload).action in LIVE_OVER
    except Exception:  # unreadable: it ends nothing for the client either
        return False


def _say_truncated(tail) -> None:
    _say(
        f"skipped a truncated tail ({tail.reason}; {tail.bytes_skipped} bytes of an incomplete record); "
        f"replaying the {tail.records_read} whole records before it"
    )


def _say(text: str) -> None:
    print(f"simulator: {text}", file=sys.stderr, flush=True)
