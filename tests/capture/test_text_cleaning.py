import unicodedata

import pytest

from project.tiktok_events.capture.text_cleaning import (
    NICKNAME_MAX_LENGTH,
    clean_nickname,
    clean_text,
    db_safe,
)


def test_it_maps_decorative_alphabets_to_plain_letters():
    assert clean_text("𝓕𝓪𝓷𝓬𝔂 𝕌𝕤𝕖𝕣") == "Fancy User"
    assert clean_text("ＦＵＬＬ　ＷＩＤＴＨ") == "FULL WIDTH"


def test_it_collapses_zalgo_to_one_mark_per_letter():
    zalgo = "Z̷̢̛̛̤̰̈́a̸̧̛̯̓̌l̵̨̛̘̈g̶̢̛̰̈́o̷̡̧̦̓"
    cleaned = clean_text(zalgo)
    bases = [c for c in cleaned if not unicodedata.combining(c)]
    assert "".join(bases) == "Zalgo"
    assert len(cleaned) == 10  # each letter keeps at most one mark


@pytest.mark.parametrize("text", ["Tiếng Việt", "สวัสดี", "नमस्ते", "ño", "Ελληνικά", "Привет"])
def test_it_leaves_ordinary_writing_systems_intact(text):
    assert clean_text(text) == unicodedata.normalize("NFKC", text)


def test_it_removes_bidi_overrides_but_keeps_right_to_left_text():
    assert clean_text("\u202eevil\u202c مرحبا \u2066x\u2069\u200f") == "evil مرحبا x"


def test_it_removes_control_and_zero_width_characters():
    assert clean_text("bad\x00na\x07me\x1b") == "badname"
    assert clean_text("in\u200bvis\u200dible\ufeff\u00ad") == "invisible"


def test_it_folds_whitespace():
    assert clean_text("  hola\tdesde\n\n  aquí \r\n") == "hola desde aquí"


@pytest.mark.parametrize(
    "emoji",
    [
        "🌹",
        "👍🏽",
        "👩\u200d👩\u200d👧\u200d👦",
        "1️⃣",
        "🇲🇽",
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
    ],
)
def test_it_keeps_emoji_whole(emoji):
    assert clean_text(f"hola {emoji} !") == f"hola {emoji} !"


def test_it_caps_the_length():
    assert len(clean_nickname("L" * 300, "long")) == NICKNAME_MAX_LENGTH
    assert clean_nickname("L" * 300, "long").endswith("…")
    assert len(clean_text("x" * 2000)) == 500


def test_it_falls_back_to_the_handle_when_nothing_is_left():
    assert clean_nickname("\u200b\u202e\u0301\u0301", "only_marks") == "only_marks"
    assert clean_nickname("", "someone") == "someone"


def test_it_keeps_raw_values_storable_in_postgresql():
    assert db_safe("a\x00b") == "a\ufffdb"
    assert db_safe("🌹 plain") == "🌹 plain"
