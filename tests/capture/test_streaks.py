from project.tiktok_events.capture.normalize import normalize
from project.tiktok_events.capture.rows import Streak
from project.tiktok_events.capture.streaks import StreakTracker
from tests.support import tiktok_messages as tm


def repeat(count: int, *, end: bool = False, handle: str = "rosa_fan", group: int = 1):
    return normalize(tm.gift(handle, repeat_count=count, repeat_end=end, group_id=group))


def test_it_keeps_a_streak_on_one_row_and_dispatches_once_at_its_end():
    tracker = StreakTracker(timeout=10)
    first = tracker.gift(repeat(1), now=0)
    assert first.new and not first.dispatch
    assert first.row.streak_status == Streak.OPEN
    for count in (2, 3, 4):
        outcome = tracker.gift(repeat(count), now=count)
        assert outcome.row is first.row and not outcome.new and not outcome.dispatch
    last = tracker.gift(repeat(5, end=True), now=5)
    assert last.row is first.row and last.dispatch
    assert first.row.streak_status == Streak.ENDED
    assert first.row.event.repeat_count == 5
    assert first.row.event.event_data["repeat_count"] == 5
    assert tracker.expire(now=100) == []


def test_it_closes_a_streak_whose_end_never_comes_exactly_once():
    tracker = StreakTracker(timeout=2)
    opened = tracker.gift(repeat(1), now=0).row
    tracker.gift(repeat(2), now=1)
    assert tracker.expire(now=2.5) == []
    expired = tracker.expire(now=3.1)
    assert expired == [opened]
    assert opened.streak_status == Streak.TIMED_OUT
    assert opened.event.repeat_count == 2
    assert tracker.expire(now=60) == []


def test_it_updates_a_timed_out_streak_on_a_late_repeat_without_dispatching_again():
    tracker = StreakTracker(timeout=1)
    row = tracker.gift(repeat(1), now=0).row
    tracker.expire(now=5)
    late = tracker.gift(repeat(4, end=True), now=6)
    assert late.row is row and not late.new and not late.dispatch
    assert row.event.repeat_count == 4
    assert row.streak_status == Streak.TIMED_OUT


def test_it_dispatches_non_combo_gifts_at_once():
    tracker = StreakTracker(timeout=10)
    outcome = tracker.gift(normalize(tm.gift("rich", name="Galaxy", streakable=False, repeat_end=False)), now=0)
    assert outcome.new and outcome.dispatch
    assert outcome.row.streak_status == Streak.NONE


def test_it_completes_a_one_tap_streak_at_once():
    tracker = StreakTracker(timeout=10)
    outcome = tracker.gift(repeat(1, end=True), now=0)
    assert outcome.new and outcome.dispatch
    assert outcome.row.streak_status == Streak.ENDED


def test_it_tells_concurrent_streaks_apart():
    tracker = StreakTracker(timeout=10)
    a = tracker.gift(repeat(1, handle="a"), now=0).row
    b = tracker.gift(repeat(1, handle="b"), now=0).row
    a2 = tracker.gift(repeat(1, handle="a", group=2), now=0).row  # a second combo of the same user
    assert len({id(a), id(b), id(a2)}) == 3
    assert tracker.gift(repeat(3, end=True, handle="b"), now=1).row is b
    assert a.streak_status == Streak.OPEN and b.streak_status == Streak.ENDED


def test_it_closes_every_open_streak_when_the_capture_ends():
    tracker = StreakTracker(timeout=10)
    row = tracker.gift(repeat(1), now=0).row
    assert tracker.close_all(now=0.5) == [row]
    assert row.streak_status == Streak.TIMED_OUT
