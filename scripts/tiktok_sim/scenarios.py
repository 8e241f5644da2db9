"""Scenarios the simulator plays: built-in ones and JSON files.

A scenario is a list of *steps*. A JSON file holds either that list or an
object ``{"steps": [...], "loop": false, "frame_size": 8, "interval": 0.02}``.

Message steps (one TikTok message each; ``user`` is the @handle, ``nickname``
defaults to it, ``user_id`` to a stable number derived from it)::

    {"type": "comment",   "user": "maria", "nickname": "María 🌸", "text": "hola"}
    {"type": "gift",      "user": "juan", "gift": "Rose", "repeat": 5}
    {"type": "gift",      "user": "juan", "gift": "Rose", "to_user": "guest_handle"}
                                   for a guest of a multi-guest LIVE (``to_nickname`` optional)
    {"type": "like",      "user": "ana", "count": 15, "room_total": 900}
                                   room_total: TikTok's like total for the room (default:
                                   the running sum of the counts sent)
    {"type": "follow" | "share" | "join", "user": "leo"}
    {"type": "subscribe", "user": "leo", "via": "subnotify" | "superfan" | "member"}
                                   how TikTok says it: a WebcastSubNotifyMessage (default), a
                                   Super Fan WebcastBarrageMessage ("just became a Super Fan"),
                                   or a WebcastMemberMessage with action SUBSCRIBED
    {"type": "superfan_join", "user": "leo"}   an existing Super Fan enters the LIVE (a barrage)
    {"type": "barrage", "user": "leo", "text": "...", "display_type": "pm_mt_notice"}
                                   a banner with no event of its own (stored as a generic event)
    {"type": "viewers",   "total": 120}
    {"type": "unknown",   "method": "WebcastSomethingNewMessage"}
    {"type": "truncated"}          a chat payload cut mid-character (unparseable)
    {"type": "end"}                the streamer ends the LIVE

Any message step with ``"history": true`` is not played on the socket: it goes into
the first fetch (the sign server's answer) with ``is_history`` set, as TikTok sends
a LIVE's recent comments to a client that connects (``Scenario.first_fetch``).

A ``gift`` of a streakable gift (Rose, TikTok, Finger Heart, Doughnut, or
``"streakable": true``) with ``repeat: N`` is sent as N messages, one per
frame, ``streak_interval`` seconds apart (default 0.05), repeat_count 1..N and
repeat_end only on the last; ``"lose_end": true`` never sends that end.
Other gifts: ``gift``, ``gift_id``, ``diamond_count`` override the catalogue.

Transport steps::

    {"type": "wait",  "seconds": 0.5}
    {"type": "frame", "events": [<message steps>]}   several messages in one frame
    {"type": "frame", "events": [...], "late": 6}    ...stamped as sent 6 s ago (it was held up
                                   on the way: the capture is that far behind the live)
    {"type": "drop"}               close the TCP connection, no close frame
    {"type": "stall", "seconds": 40}  socket open, nothing sent (the watchdog case)
    {"type": "garbage"}            a WebSocket message that is not a push frame
    {"type": "bad_payload"}        a "msg" push frame whose gzip payload is corrupt
    {"type": "offline", "seconds": 5}  the streamer's connection drops and the live reads offline
                                   for 5 s, then live again (a reconnect's grace period)

A JSON object may also set how TikTok and the sign server treat the capture:
``"offline_for": 10`` (the live starts 10 s after the simulator), ``"blocked_sockets": 2``
(the first two WebSocket upgrades are refused with TikTok's DEVICE_BLOCKED answer; -1 for
every one; ``"blocked_status"`` and ``"blocked_reason"`` change the answer),
``"rate_limited_fetches": 2`` with ``"retry_after": 20`` (the sign server answers 429 twice,
with ``Retry-After: 20``; 0 gives no hint at all).

Consecutive message steps are packed into frames of up to ``frame_size``
messages, ``interval`` seconds apart, like TikTok batches them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .messages import SUBSCRIBE_VIA, gift_info

MESSAGE_TYPES = {
    "comment",
    "gift",
    "like",
    "follow",
    "share",
    "join",
    "subscribe",
    "superfan_join",
    "barrage",
    "viewers",
    "unknown",
    "truncated",
    "end",
}
TRANSPORT_TYPES = {"wait", "frame", "drop", "stall", "garbage", "bad_payload", "offline"}


@dataclass
class Action:
    """One thing the simulator does on the socket: send a frame, wait, drop..."""

    kind: str
    specs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    late: float = 0.0  # a frame's send time stamped this many seconds in the past


@dataclass
class Scenario:
    name: str
    actions: Sequence[Action]
    loop: bool = False
    mode: str = "live"  # live | offline | not-found
    prebuild: bool = False  # serialize every frame before accepting connections (flood)
    # What real TikTok and its sign server do to a capture (JSON keys of the same names):
    offline_for: float = 0.0  # the streamer goes live this many seconds after the simulator starts
    blocked_sockets: int = 0  # this many WebSocket upgrades are refused (DEVICE_BLOCKED); -1 = every one
    blocked_status: int = 200  # ... with this HTTP status (TikTok answers 200 without upgrading)
    blocked_reason: str = "DEVICE_BLOCKED"  # ... and this Handshake-Msg
    rate_limited_fetches: int = 0  # this many sign requests are answered 429 ...
    retry_after: int | None = None  # ... with this Retry-After (None: RateLimit-Reset in 1 s; 0: no hint)
    # Message steps marked "history": sent in the first fetch of the first connection, is_history set.
    first_fetch: list[dict[str, Any]] = field(default_factory=list)


class ScenarioError(ValueError):
    pass


def compile_steps(
    name: str, steps: list[dict[str, Any]], *, frame_size: int = 8, interval: float = 0.02, loop: bool = False
) -> Scenario:
    actions: list[Action] = []
    pending: list[dict[str, Any]] = []
    first_fetch: list[dict[str, Any]] = []

    def flush() -> None:
        while pending:
            actions.append(Action("frame", specs=pending[:frame_size]))
            del pending[:frame_size]
            if interval:
                actions.append(Action("wait", seconds=interval))

    for number, step in enumerate(steps, 1):
        if not isinstance(step, dict) or "type" not in step:
            raise ScenarioError(f"step {number}: expected an object with a 'type', got {step!r}")
        kind = step["type"]
        if kind in MESSAGE_TYPES:
            _check_message(number, step)
        if step.get("history"):
            if kind not in MESSAGE_TYPES:
                raise ScenarioError(f"step {number}: only a message step can be history, not {kind!r}")
            first_fetch.append(step)
        elif kind == "gift" and int(step.get("repeat", 1)) > 1 and gift_info(step).streakable:
            flush()
            actions.extend(_streak_actions(step))
        elif kind in MESSAGE_TYPES:
            pending.append(step)
            if len(pending) >= frame_size or kind == "end":
                flush()
        elif kind == "frame":
            flush()
            events = step.get("events") or []
            for event in events:
                if event.get("type") not in MESSAGE_TYPES:
                    raise ScenarioError(f"step {number}: frame event {event!r} is not a message step")
                if event.get("history"):
                    raise ScenarioError(f"step {number}: a history message goes on its own, not in a frame")
                _check_message(number, event)
            actions.append(Action("frame", specs=list(events), late=float(step.get("late", 0))))
        elif kind in TRANSPORT_TYPES:
            flush()
            actions.append(Action(kind, seconds=float(step.get("seconds", 0))))
        else:
            raise ScenarioError(f"step {number}: unknown type {kind!r}")
    flush()
    return Scenario(name=name, actions=actions, loop=loop, first_fetch=first_fetch)


def _check_message(number: int, step: dict[str, Any]) -> None:
    """What the message factory would only find out while playing."""
    if step["type"] == "subscribe" and step.get("via", "subnotify") not in SUBSCRIBE_VIA:
        raise ScenarioError(f"step {number}: subscribe via {step['via']!r}: use one of {', '.join(SUBSCRIBE_VIA)}")


def _streak_actions(step: dict[str, Any]) -> list[Action]:
    repeat = int(step["repeat"])
    group_id = int(step.get("group_id", random.randrange(10**12, 10**13)))
    actions = []
    for count in range(1, repeat + 1):
        last = count == repeat and not step.get("lose_end", False)
        spec = {**step, "repeat_count": count, "repeat_end": last, "group_id": group_id}
        actions.append(Action("frame", specs=[spec]))
        if count < repeat:
            actions.append(Action("wait", seconds=float(step.get("streak_interval", 0.05))))
    return actions


SERVER_OPTIONS = {
    "offline_for": float,
    "blocked_sockets": int,
    "blocked_status": int,
    "blocked_reason": str,
    "rate_limited_fetches": int,
    "retry_after": int,
}


def load_file(path: str | Path) -> Scenario:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, list):
        return compile_steps(Path(path).stem, data)
    if isinstance(data, dict) and isinstance(data.get("steps"), list):
        scenario = compile_steps(
            str(data.get("name", Path(path).stem)),
            data["steps"],
            frame_size=int(data.get("frame_size", 8)),
            interval=float(data.get("interval", 0.02)),
            loop=bool(data.get("loop", False)),
        )
        for key, cast in SERVER_OPTIONS.items():
            if key in data:
                try:
                    setattr(scenario, key, cast(data[key]))
                except (TypeError, ValueError):
                    raise ScenarioError(f"{path}: {key} must be a number, got {data[key]!r}") from None
        return scenario
    raise ScenarioError(f"{path}: expected a list of steps or an object with 'steps'")


# -- built-in scenarios ------------------------------------------------------------------------

VIEWERS = [
    ("maria_garcia", "María 🌸"),
    ("juanito99", "Juanito"),
    ("lucia.fit", "Lucía ✨"),
    ("pedro_gamer", "Pedro"),
    ("ana_b", "Ana B."),
    ("carlos.mx", "Carlos 🇲🇽"),
    ("sofi_luna", "Sofi 🌙"),
    ("diego_dev", "Diego"),
]
CHAT = ["Hola!", "¿De dónde eres?", "jajaja", "Saludos desde Lima 🇵🇪", "qué buen live", "❤️❤️❤️", "otra partida!"]


def demo() -> Scenario:
    """A realistic, endless mix: chat, likes, joins, follows, a share, a sub, Rose gifts, and a
    comment and a nickname with blocked words (moderation)."""
    rng = random.Random(7)
    steps: list[dict[str, Any]] = [{"type": "viewers", "total": 37}]
    for round_number in range(6):
        for _ in range(4):
            user, nick = rng.choice(VIEWERS)
            steps.append({"type": "join", "user": user, "nickname": nick})
            steps.append({"type": "comment", "user": user, "nickname": nick, "text": rng.choice(CHAT)})
            steps.append({"type": "like", "user": user, "nickname": nick, "count": rng.randint(1, 15)})
            steps.append({"type": "wait", "seconds": round(rng.uniform(0.3, 0.9), 2)})
        if round_number == 0:
            # For moderation (docs/moderation.md): a comment and a name no voice says nor screen shows as written.
            steps.append({"type": "comment", "user": "troll_42", "nickname": "Troll", "text": "qué juego de m1erda"})
            steps.append({"type": "follow", "user": "pendejo_69", "nickname": "Pendejo_69"})
        user, nick = VIEWERS[round_number % len(VIEWERS)]
        steps.append({"type": "gift", "user": user, "nickname": nick, "gift": "Rose", "repeat": 1})
        if round_number % 2 == 0:
            steps.append({"type": "follow", "user": user, "nickname": nick})
        if round_number == 2:
            steps.append({"type": "gift", "user": "lucia.fit", "nickname": "Lucía ✨", "gift": "Rose", "repeat": 5})
            steps.append({"type": "share", "user": "pedro_gamer", "nickname": "Pedro"})
        if round_number == 4:
            steps.append({"type": "subscribe", "user": "ana_b", "nickname": "Ana B."})
            steps.append({"type": "gift", "user": "carlos.mx", "nickname": "Carlos 🇲🇽", "gift": "Galaxy"})
        steps.append({"type": "viewers", "total": 37 + round_number * 5})
        steps.append({"type": "wait", "seconds": 0.5})
    return compile_steps("demo", steps, frame_size=4, interval=0.05, loop=True)


def flood(seconds: float = 10.0, likes_per_s: int = 2000, comments_per_s: int = 150) -> Scenario:
    """≥ 1,000 likes/s with chat, a gift every 0.5 s and a follow every second; then the end."""
    frames_per_s = 50
    users = [(f"fan{n:04d}", f"Fan {n}") for n in range(500)]
    rng = random.Random(11)
    actions: list[Action] = []
    for tick in range(int(seconds * frames_per_s)):
        specs: list[dict[str, Any]] = []
        for _ in range(likes_per_s // frames_per_s):
            user, nick = rng.choice(users)
            specs.append({"type": "like", "user": user, "nickname": nick, "count": rng.randint(1, 15)})
        for _ in range(comments_per_s // frames_per_s):
            user, nick = rng.choice(users)
            specs.append({"type": "comment", "user": user, "nickname": nick, "text": rng.choice(CHAT)})
        if tick % (frames_per_s // 2) == 0:
            user, nick = rng.choice(users)
            specs.append({"type": "gift", "user": user, "nickname": nick, "gift": rng.choice(["Galaxy", "Lion"])})
        if tick % frames_per_s == 0:
            user, nick = rng.choice(users)
            specs.append({"type": "follow", "user": user, "nickname": nick})
        actions.append(Action("frame", specs=specs))
        actions.append(Action("wait", seconds=1 / frames_per_s))
    actions.append(Action("frame", specs=[{"type": "end"}]))
    return Scenario("flood", actions, prebuild=True)


# Streak group ids the steady scenario hands out, one per gift it sends (see SteadyActions).
STEADY_GROUP_BASE = 10**12
STEADY_FRAMES_PER_SECOND = 50


class SteadyActions(Sequence[Action]):
    """The demo's messages in a loop at a fixed rate, each action built when it is played;
    after ``seconds`` (if given) the streamer ends the live.

    A long soak at a big live's rate would need millions of specs up front; these are
    derived from their index instead (even indexes are frames, odd ones the waits
    between them). Every gift gets a group id of its own: a later loop's Rose by the
    same viewer is a new gift, not a late repeat of the one before (the capture keeps
    closed streaks by (user, gift, group) for minutes).
    """

    def __init__(self, mix: list[dict[str, Any]], rate: float, seconds: float | None = None) -> None:
        if rate <= 0:
            raise ScenarioError(f"steady rate must be above 0 messages/s, got {rate}")
        self.mix = mix
        self.rate = rate
        self.frames_per_s = max(1.0, min(float(STEADY_FRAMES_PER_SECOND), rate))
        self.frames = None if seconds is None else round(seconds * self.frames_per_s)
        first_of_group: dict[int, int] = {}
        self.streak_start = [
            first_of_group.setdefault(spec["group_id"], position) if "group_id" in spec else position
            for position, spec in enumerate(mix)
        ]

    def __len__(self) -> int:
        return 10**15 if self.frames is None else 2 * self.frames + 1  # endless in practice without seconds

    def __getitem__(self, index):  # type: ignore[override] # slices are never asked for
        if index < 0 or index >= len(self):
            raise IndexError(index)
        frame, is_wait = divmod(index, 2)
        if frame == self.frames:
            return Action("frame", specs=[{"type": "end"}])
        if is_wait:
            return Action("wait", seconds=1 / self.frames_per_s)
        first = int(frame * self.rate / self.frames_per_s)
        last = int((frame + 1) * self.rate / self.frames_per_s)
        return Action("frame", specs=[self._spec(number) for number in range(first, last)])

    def _spec(self, number: int) -> dict[str, Any]:
        loop, position = divmod(number, len(self.mix))
        spec = self.mix[position]
        if spec["type"] != "gift":
            return spec
        return {**spec, "group_id": STEADY_GROUP_BASE + loop * len(self.mix) + self.streak_start[position]}


def steady(rate: float = 300.0, seconds: float | None = None) -> Scenario:
    """The demo's mix (chat, likes, joins, follows, gifts and a streak, a share, a sub, viewer counts)
    at ``rate`` messages per second in frames of 50 per second, endlessly or for ``seconds`` and then
    the end of the live: a big live for a soak."""
    mix = [spec for action in demo().actions if action.kind == "frame" for spec in action.specs]
    return Scenario("steady", SteadyActions(mix, rate, seconds))


LIVE_LOAD_PHASES = ("warmup", "idle", "load", "flood")


def live_load(
    phase_seconds: float = 20.0,
    load_rate: float = 300.0,
    flood_likes: int = 2000,
    flood_comments: int = 150,
    *,
    warmup_seconds: float = 5.0,
    gift_interval: float = 0.5,
) -> Scenario:
    """scripts/bench/live_load.py's live: a probe gift (a Galaxy, never a streak) every
    ``gift_interval`` seconds through four phases, then the end. *warmup* and *idle*: nothing
    else; *load*: the demo's mix at ``load_rate`` messages/s; *flood*: ``flood_likes`` likes and
    ``flood_comments`` comments per second. A phase's probes are sent by ``@<phase>_probe``, in
    the middle of their frame."""
    frames_per_s = STEADY_FRAMES_PER_SECOND
    every = max(1, round(gift_interval * frames_per_s))
    mix = [spec for action in demo().actions if action.kind == "frame" for spec in action.specs]
    load = SteadyActions(mix, load_rate)
    fans = [(f"fan{n:04d}", f"Fan {n}") for n in range(500)]
    rng = random.Random(13)
    actions: list[Action] = []
    load_frame = 0
    lengths = (warmup_seconds, phase_seconds, phase_seconds, phase_seconds)
    for phase, seconds in zip(LIVE_LOAD_PHASES, lengths, strict=True):
        for tick in range(round(seconds * frames_per_s)):
            specs: list[dict[str, Any]] = []
            if phase == "load":
                specs = list(load[2 * load_frame].specs)
                load_frame += 1
            elif phase == "flood":
                for kind, count in (("like", flood_likes), ("comment", flood_comments)):
                    for _ in range(count // frames_per_s):
                        user, nick = rng.choice(fans)
                        extra = {"count": rng.randint(1, 15)} if kind == "like" else {"text": rng.choice(CHAT)}
                        specs.append({"type": kind, "user": user, "nickname": nick, **extra})
            if tick % every == 0:
                probe = {"type": "gift", "user": f"{phase}_probe", "nickname": f"Probe {phase}", "gift": "Galaxy"}
                specs.insert(len(specs) // 2, probe)
            if specs:
                actions.append(Action("frame", specs=specs))
            actions.append(Action("wait", seconds=1 / frames_per_s))
    actions.append(Action("wait", seconds=1.0))
    actions.append(Action("frame", specs=[{"type": "end"}]))
    return Scenario("live-load", actions, prebuild=True)


def streaks() -> Scenario:
    steps = [
        {"type": "comment", "user": "host_friend", "text": "¡Vamos con las rosas!"},
        {"type": "gift", "user": "rosa_fan", "nickname": "Rosa Fan", "gift": "Rose", "repeat": 5},
        {"type": "gift", "user": "big_spender", "nickname": "Big Spender", "gift": "Galaxy"},
        {"type": "gift", "user": "heart_girl", "nickname": "Heart", "gift": "Finger Heart", "repeat": 3},
        {"type": "gift", "user": "lost_end", "nickname": "Lost End", "gift": "TikTok", "repeat": 4, "lose_end": True},
        {"type": "like", "user": "liker", "count": 10},
        {"type": "like", "user": "liker", "count": 5},
        # Long enough for a capture run with --streak-timeout below 3 s to close the lost streak.
        {"type": "wait", "seconds": 3.0},
        {"type": "end"},
    ]
    return compile_steps("streaks", steps)


def disconnect() -> Scenario:
    def chat(n: int) -> dict[str, Any]:
        return {"type": "comment", "user": f"viewer{n % 5}", "text": f"message {n}"}

    steps: list[dict[str, Any]] = [chat(n) for n in range(1, 11)]
    steps += [{"type": "wait", "seconds": 0.3}, {"type": "drop"}]
    steps += [chat(n) for n in range(11, 21)]
    steps += [{"type": "wait", "seconds": 0.3}, {"type": "stall", "seconds": 40}]
    steps += [chat(n) for n in range(21, 31)]
    steps += [{"type": "wait", "seconds": 0.3}, {"type": "end"}]
    return compile_steps("disconnect", steps, frame_size=3)


WEIRD_NAMES = [
    ("fancy_user", "𝓕𝓪𝓷𝓬𝔂 𝕌𝕤𝕖𝕣"),
    ("zalgo", "Z̷̢̛̛̤̰̈́a̸̧̛̯̓̌l̵̨̛̘̈g̶̢̛̰̈́o̷̡̧̦̓ ̴̧̛̯t̷̢̛̤̾e̶̢̛̠̓x̸̢̛̣̊t̷̡̛̙̓"),
    ("rtl_user", "\u202eevil\u202c مرحبا"),
    ("control_chars", "bad\x00na\x07me\x1b[31m red\r\n"),
    ("zero_width", "in\u200bvis\u200dible\ufeff"),
    ("emoji_lover", "🌸 Flor 🌸👩‍👩‍👧‍👦"),
    ("long_name", "L" * 300),
    ("fullwidth", "ＦＵＬＬ　ＷＩＤＴＨ"),
    ("only_marks", "\u200b\u202e\u0301\u0301"),
]


def weird_names() -> Scenario:
    steps: list[dict[str, Any]] = []
    for user, nick in WEIRD_NAMES:
        steps.append({"type": "comment", "user": user, "nickname": nick, "text": f"hola\tdesde\n{nick}"})
        steps.append({"type": "follow", "user": user, "nickname": nick})
    steps.append({"type": "gift", "user": "zalgo", "nickname": WEIRD_NAMES[1][1], "gift": "Galaxy"})
    steps.append({"type": "end"})
    return compile_steps("weird-names", steps, frame_size=4)


def malformed() -> Scenario:
    steps = [
        {"type": "comment", "user": "ok1", "text": "before garbage"},
        {"type": "garbage"},
        {"type": "comment", "user": "ok2", "text": "after garbage"},
        {"type": "bad_payload"},
        {"type": "comment", "user": "ok3", "text": "after a corrupt payload"},
        {
            "type": "frame",
            "events": [
                {"type": "unknown", "method": "WebcastBrandNewFeatureMessage"},
                {"type": "truncated"},
                {"type": "comment", "user": "ok4", "text": "same frame as the broken ones"},
            ],
        },
        {"type": "comment", "user": "ok5", "text": "the end is near"},
        {"type": "end"},
    ]
    return compile_steps("malformed", steps)


def live_end() -> Scenario:
    steps = [
        {"type": "comment", "user": "early_bird", "text": "first!"},
        {"type": "like", "user": "early_bird", "count": 3},
        {"type": "gift", "user": "early_bird", "gift": "Rose", "repeat": 1},
        {"type": "wait", "seconds": 0.3},
        {"type": "end"},
    ]
    return compile_steps("live-end", steps)


def _named(mode: str, **server_options) -> Scenario:
    scenario = live_end()
    scenario.name = mode
    if mode in ("offline", "not-found"):
        scenario.mode = mode
    for key, value in server_options.items():
        setattr(scenario, key, value)
    return scenario


BUILT_IN = {
    "demo": demo,
    "flood": flood,
    "steady": steady,
    "live-load": live_load,
    "streaks": streaks,
    "disconnect": disconnect,
    "weird-names": weird_names,
    "malformed": malformed,
    "live-end": live_end,
    "offline": lambda: _named("offline"),
    "not-found": lambda: _named("not-found"),
    "rate-limit": lambda: _named("rate-limit", rate_limited_fetches=2),
    # What a real live does to a capture (docs/capture.md, "When TikTok misbehaves"):
    "offline-then-live": lambda: _named("offline-then-live", offline_for=10.0),
    "blocked": lambda: _named("blocked", blocked_sockets=-1),
    "rate-limit-long": lambda: _named("rate-limit-long", rate_limited_fetches=2, retry_after=20),
}
