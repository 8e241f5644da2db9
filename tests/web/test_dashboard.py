import io

from project.tiktok_events.dashboard import Dashboard, DashboardData, LockedStream, ServiceRow, render


def sample() -> DashboardData:
    return DashboardData(
        uptime_seconds=3725,
        session_id=12,
        events_captured=42,
        services=[
            ServiceRow("DinoChrome", worker_up=True, pending=3, processing=1, async_threads=None),
            ServiceRow("Overlays", worker_up=False, pending=0, processing=2, async_threads=2),
        ],
    )


def test_it_renders_the_seeds_statistics_block():
    text = "\n".join(render(sample()))
    assert "⏱️  Uptime: 1h 2m 5s" in text
    assert "🆔 Session ID: 12" in text
    assert "📊 Events captured: 42" in text
    assert "🔧 Workers active: 1/2" in text
    assert "🟢 DinoChrome\n  • Pending: 3   • Processing: 1\n" in text
    assert "🔴 Overlays\n  • Pending: 0   • Processing: 2   • Async threads: 2" in text


def test_it_prints_plain_blocks_when_not_on_a_terminal():
    out = io.StringIO()
    dashboard = Dashboard(LockedStream(out))
    dashboard.show(sample())
    dashboard.show(sample())
    dashboard.close()
    text = out.getvalue()
    assert "\x1b" not in text
    assert text.count("📊 SYSTEM STATISTICS") == 2


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_it_draws_a_live_view_pinned_at_the_top_of_a_terminal():
    out = Terminal()
    dashboard = Dashboard(LockedStream(out))
    assert dashboard.live
    dashboard.show(sample())
    lines = len(render(sample()))
    text = out.getvalue()
    assert f"\x1b[{lines + 1};" in text  # the scroll region starts below the block
    assert "\x1b7" in text and "\x1b8" in text  # drawn with the cursor saved and restored
    assert "\x1b[1;1H\x1b[2K" in text  # from the first row, each line cleared
    out.seek(0)
    out.truncate()
    dashboard.show(sample())
    assert "r\x1b" not in out.getvalue()  # same height: redrawn in place, region unchanged
    dashboard.close()
    assert out.getvalue().endswith("\n") and "\x1b[r" in out.getvalue()  # scroll region restored


def test_it_shows_how_far_behind_the_live_the_capture_is_only_while_it_is():
    assert "behind the live" not in "\n".join(render(sample()))
    data = sample()
    data.behind_seconds = 6.04
    lines = render(data)
    assert lines[lines.index("📊 Events captured: 42") + 1] == "⚠️  Capture behind the live: 6.0 s"
