"""The capture's decoder patch (``proto_validation`` + ``proto_decode``) decodes what TikTok
sends exactly as betterproto2 does: proven on recordings of every simulator scenario, message
by message, field by field; and only installed on the versions that proof ran on."""

from __future__ import annotations

import gzip
import itertools
import logging
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import betterproto2
import pytest
from TikTokLive.events import EVENT_MAPPINGS
from TikTokLive.proto import ProtoMessageFetchResult, WebcastPushFrame

from project.tiktok_events.capture import proto_validation, recording
from project.tiktok_events.capture.client import LIVE_EVENT_CLASSES
from tests.support.capture import ROOT, run_capture, simulator_scenarios
from tests.support.servers import create_vhost, delete_vhost

# Per scenario: what makes a run of it short, and end (the rest end with their live).
SHORT = {
    "demo": ["--duration", "5"],
    "flood": ["--simulator-arg=--flood-seconds=1"],
    "steady": ["--simulator-arg=--steady-seconds=1"],
    "disconnect": ["--silence-timeout", "2"],
    "live-load": ["--simulator-arg=--phase-seconds=1"],
}
# The message types every simulator scenario together sends: the proof must meet each one's class.
SIMULATOR_CLASSES = {
    "WebcastChatMessage", "WebcastGiftMessage", "WebcastLikeMessage", "WebcastMemberMessage",
    "WebcastSocialMessage", "WebcastSubNotifyMessage", "WebcastRoomUserSeqMessage", "WebcastControlMessage",
}  # fmt: skip


def connection_only(scenario) -> bool:
    """A scenario about reaching the live (offline, refused, rate-limited): it sends no frames,
    or live-end's frames after a wait."""
    return (
        scenario.mode in ("offline", "not-found")
        or bool(getattr(scenario, "blocked_sockets", 0))
        or bool(getattr(scenario, "rate_limited_fetches", 0))
        or bool(getattr(scenario, "offline_for", 0))
    )


def step_types(scenario) -> set[str]:
    actions = itertools.islice(scenario.actions, 100_000)  # the steady scenario's are endless
    return {spec["type"] for action in actions if action.kind == "frame" for spec in action.specs}


@pytest.fixture(scope="module")
def recordings(django_db_setup, django_db_blocker, tmp_path_factory) -> dict[str, Any]:
    """Every built-in scenario that sends frames, recorded once by the capture (``--record``)."""
    from project.tiktok_events.models import LiveSession

    built_in = simulator_scenarios().BUILT_IN
    names = [name for name, make in built_in.items() if not connection_only(make())]
    folder = tmp_path_factory.mktemp("recordings")
    vhost = create_vhost()

    def record(name: str):
        path = folder / f"{name}.ttlive"
        args = ["--username", "proof", "--quiet", "--duration", "60", "--record", str(path), *SHORT.get(name, [])]
        return name, path, run_capture(vhost, name, args=args, timeout=150)

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            runs = list(pool.map(record, names))
    finally:
        delete_vhost(vhost)
        with django_db_blocker.unblock():
            LiveSession.objects.filter(streamer="proof").delete()
    for name, path, run in runs:
        # Whether the run itself went well is the capture tests' business; the proof needs its frames.
        frames = [item for item in recording.read_recording(path) if getattr(item, "kind", "") == "frame"]
        assert frames, f"{name}: nothing recorded; {run.output[-3000:]}"
    skipped = [make() for name, make in built_in.items() if name not in names]
    return {"paths": {name: path for name, path, _ in runs}, "skipped": skipped, "built_in": built_in}


def decoding_cases(paths) -> tuple[list[tuple[type, bytes]], Counter]:
    """(class, bytes) for every push frame, fetch result and message in the recordings, as
    TikTokLive decodes them; and how many messages of each method had no class (unknown)."""
    cases: list[tuple[type, bytes]] = []
    unknown: Counter[str] = Counter()
    for path in paths:
        for record in list(recording.read_recording(path))[1:]:
            if record.kind == "first_fetch":
                fetches = [record.data]
            else:
                cases.append((WebcastPushFrame, record.data))
                fetches = list(payloads(record.data))
            for fetch in fetches:
                cases.append((ProtoMessageFetchResult, fetch))
                for message in ProtoMessageFetchResult.parse(fetch).messages:
                    base = EVENT_MAPPINGS.get(message.method)
                    if base is None:
                        unknown[message.method] += 1
                        continue
                    derived = [cls for cls in LIVE_EVENT_CLASSES if cls is not base and issubclass(cls, base)]
                    cases.extend((cls, message.payload) for cls in (base, *derived))
    return cases, unknown


def payloads(frame: bytes):
    """The fetch-result bytes of a "msg" push frame (none for a heartbeat, garbage or a corrupt payload)."""
    try:
        push = WebcastPushFrame.parse(frame)
        if push.payload_type != "msg":
            return
        gzipped = any(h.key == "compress_type" and h.value == "gzip" for h in push.headers)
        yield gzip.decompress(push.payload) if gzipped else push.payload
    except Exception:  # the capture skips these frames too (see the malformed scenario)
        return


def outcome(cls: type, data: bytes) -> tuple[str, Any]:
    try:
        return "message", cls.parse(data)
    except Exception as exc:  # an unparseable payload: the same error is the same answer
        return "error", (type(exc).__name__, str(exc))


def differences(fast: Any, original: Any, path: str) -> list[str]:
    """Field by field, nested messages and lists included."""
    if type(fast) is not type(original):
        return [f"{path}: {type(fast).__name__} != {type(original).__name__}"]
    if isinstance(fast, betterproto2.Message):
        if list(fast.__dict__) != list(original.__dict__):
            return [f"{path}: fields {list(fast.__dict__)} != {list(original.__dict__)}"]
        pairs = [(fast.__dict__[name], original.__dict__[name], f"{path}.{name}") for name in fast.__dict__]
        return [d for a, b, where in pairs for d in differences(a, b, where)]
    if isinstance(fast, list | tuple):
        if len(fast) != len(original):
            return [f"{path}: {len(fast)} items != {len(original)}"]
        pairs = [(a, b, f"{path}[{n}]") for n, (a, b) in enumerate(zip(fast, original, strict=True))]
        return [d for a, b, where in pairs for d in differences(a, b, where)]
    if isinstance(fast, dict):
        if fast.keys() != original.keys():
            return [f"{path}: keys differ"]
        return [d for key in fast for d in differences(fast[key], original[key], f"{path}[{key!r}]")]
    return [] if fast == original else [f"{path}: {fast!r} != {original!r}"]


def message_classes_in(message: Any, seen: set[type]) -> None:
    if isinstance(message, betterproto2.Message):
        seen.add(type(message))
        for value in message.__dict__.values():
            message_classes_in(value, seen)
    elif isinstance(message, list | tuple):
        for value in message:
            message_classes_in(value, seen)
    elif isinstance(message, dict):
        for value in message.values():
            message_classes_in(value, seen)


@pytest.mark.django_db
@pytest.mark.slow
def test_the_fast_decoder_equals_betterproto2_on_every_message_of_every_scenario(recordings):
    cases, unknown = decoding_cases(recordings["paths"].values())
    assert proto_validation.install(), "the installed versions are not the proven ones: nothing to prove"
    try:
        assert betterproto2.Message.parse.__func__ is proto_validation._parse
        fast = [outcome(cls, data) for cls, data in cases]
    finally:
        proto_validation.uninstall()
    assert betterproto2.Message.__dict__["parse"] is proto_validation._original_parse
    original = [outcome(cls, data) for cls, data in cases]

    compared: Counter[type] = Counter()
    nested: set[type] = set()
    errors = 0
    problems: list[str] = []
    for (cls, _), (fast_kind, fast_value), (kind, value) in zip(cases, fast, original, strict=True):
        compared[cls] += 1
        if fast_kind != kind:
            problems.append(f"{cls.__name__}: {fast_kind} {fast_value!r} != {kind} {value!r}")
        elif kind == "error":
            errors += 1
            if fast_value != value:
                problems.append(f"{cls.__name__}: error {fast_value} != {value}")
        else:
            problems += differences(fast_value, value, cls.__name__)
            if bytes(fast_value) != bytes(value):
                problems.append(f"{cls.__name__}: serializes differently")
            message_classes_in(value, nested)
    assert not problems, f"{len(problems)} differences, first: {problems[:5]}"

    seen = {WebcastPushFrame, ProtoMessageFetchResult}
    seen |= {cls for cls, _ in cases}
    assert seen == set(compared)
    names = {cls.__name__ for cls in compared} | {base.__name__ for cls in compared for base in cls.__mro__}
    assert SIMULATOR_CLASSES <= names, SIMULATOR_CLASSES - names
    assert errors >= 1  # the malformed scenario's cut chat payload: refused the same way
    assert unknown["WebcastBrandNewFeatureMessage"] >= 1
    print(
        f"\ndecoder proof: {len(cases)} decodings compared, {len(compared)} TikTokLive classes "
        f"({', '.join(sorted(cls.__name__ for cls in compared))}), {len(nested)} message classes "
        f"reached with nesting, {errors} refused alike, unknown methods {dict(unknown)}; "
        f"scenarios {sorted(recordings['paths'])}"
    )


@pytest.mark.django_db
@pytest.mark.slow
def test_every_scenario_left_out_of_the_proof_sends_only_what_the_proof_covers(recordings):
    built_in = recordings["built_in"]
    proven = set().union(*(step_types(built_in[name]()) for name in recordings["paths"]))
    assert {"demo", "flood", "streaks", "disconnect", "weird-names", "malformed", "live-end"} <= set(
        recordings["paths"]
    )
    for scenario in recordings["skipped"]:
        assert step_types(scenario) <= proven, scenario.name


FRESH_PROCESS = """
import sys
from project.tiktok_events.capture import proto_validation
from TikTokLive.proto import WebcastSubNotifyMessage
data = bytes.fromhex(sys.argv[1])
assert proto_validation.install()
fast = WebcastSubNotifyMessage.parse(data)  # the class's first use: its pydantic schema is still deferred
proto_validation.uninstall()
assert fast == WebcastSubNotifyMessage.parse(data) and bytes(fast) == data, fast
print(fast.user.nickname)
"""


@pytest.mark.slow
def test_a_class_used_for_the_first_time_decodes_as_with_betterproto2():
    from TikTokLive.proto import User, WebcastSubNotifyMessage

    data = bytes(WebcastSubNotifyMessage(sub_month=3, user=User(id=7, nickname="Sofi 🌙")))
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, data.hex()], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "Sofi 🌙"


# -- only on the proven versions -------------------------------------------------------------------


def pinned(requirement: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    return re.search(rf"(?mi)^{re.escape(requirement)}==(\S+)$", text).group(1)


def test_the_proven_versions_are_the_pinned_ones():
    assert proto_validation.PROVEN_ON == {name: pinned(name) for name in proto_validation.PROVEN_ON}
    assert proto_validation.unproven_versions() == {}


@pytest.fixture
def fresh_warning(monkeypatch):
    monkeypatch.setattr(proto_validation, "_warned", False)
    yield
    proto_validation.uninstall()


def test_on_another_version_it_keeps_betterproto2_and_says_so_once(monkeypatch, caplog, fresh_warning):
    monkeypatch.setitem(proto_validation.PROVEN_ON, "betterproto2", "0.8.0")
    with caplog.at_level(logging.WARNING, logger="capture.proto"):
        assert proto_validation.install() is False
        assert proto_validation.install() is False
    assert betterproto2.Message.__dict__["parse"] is proto_validation._original_parse
    assert betterproto2.Message._validate is proto_validation._original
    warnings = [record.getMessage() for record in caplog.records if record.name == "capture.proto"]
    assert warnings == [
        "betterproto2 0.9.1 is not the version the fast decoder was proven on (0.8.0); "
        "using betterproto2's own decoding"
    ]


def test_a_version_reader_that_finds_another_tiktoklive_keeps_betterproto2(monkeypatch, caplog, fresh_warning):
    real = proto_validation.installed_version
    monkeypatch.setattr(
        proto_validation, "installed_version", lambda name: "7.1.0" if name == "TikTokLive" else real(name)
    )
    with caplog.at_level(logging.WARNING, logger="capture.proto"):
        assert proto_validation.install() is False
    assert betterproto2.Message.__dict__["parse"] is proto_validation._original_parse
    assert "TikTokLive 7.1.0 is not the version the fast decoder was proven on (7.0.1)" in caplog.text
    monkeypatch.setattr(proto_validation, "installed_version", real)
    assert proto_validation.install() is True
    assert betterproto2.Message.parse.__func__ is proto_validation._parse
