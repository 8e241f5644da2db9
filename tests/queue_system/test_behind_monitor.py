"""BehindMonitor: when the capture says it is behind the live, and when it caught up."""

from project.tiktok_events.capture.stats import BEHIND_REPEAT_SECONDS, BehindMonitor


def test_a_constant_clock_offset_is_not_lag():
    monitor = BehindMonitor()
    # This machine's clock 40 s behind TikTok's: every delay is -40 s give or take the path.
    for now, delays in enumerate([[-40_000, -39_990], [-39_980, -39_995], [-39_970]]):
        assert monitor.observe(delays, float(now)) is None
    assert monitor.warnings == 0 and monitor.max_ms < 100


def test_it_warns_once_while_behind_then_says_it_caught_up():
    monitor = BehindMonitor()
    assert monitor.observe([20, 25], 0.0) is None
    change, seconds = monitor.observe([20, 3_400], 1.0)
    assert change == "behind" and abs(seconds - 3.38) < 0.01
    assert monitor.observe([5_000], 2.0) is None  # still behind: no second warning yet
    assert monitor.observe([2_000], 3.0) is None  # under the warning level, not yet caught up
    assert monitor.behind and abs(monitor.last_s - 1.98) < 0.01
    change, seconds = monitor.observe([300], 4.0)
    assert change == "caught-up" and abs(seconds - 0.28) < 0.01
    assert not monitor.behind and monitor.warnings == 1 and monitor.max_ms == 4_980


def test_a_long_stretch_behind_repeats_the_warning_now_and_then():
    monitor = BehindMonitor()
    monitor.observe([0], 0.0)
    assert monitor.observe([4_000], 1.0)[0] == "behind"
    assert monitor.observe([4_000], 1.0 + BEHIND_REPEAT_SECONDS - 1) is None
    assert monitor.observe([4_000], 1.0 + BEHIND_REPEAT_SECONDS)[0] == "behind"
    assert monitor.warnings == 2


def test_a_batch_without_send_times_changes_nothing():
    monitor = BehindMonitor()
    assert monitor.observe([], 0.0) is None
    assert monitor.floor_ms is None
