import base64

from project.tiktok_events.capture.normalize import MAX_GENERIC_JSON, MAX_RAW_PAYLOAD, Host, normalize
from tests.support import tiktok_messages as tm


def test_it_names_events_as_the_seeds_do():
    assert normalize(tm.comment("maria", "hola")).event_type == "CommentEvent"
    assert normalize(tm.follow("leo")).event_type == "FollowEvent"
    assert normalize(tm.subscribe("ana")).event_type == "SubscribeEvent"  # TikTokLive's SubNotifyEvent


def test_it_extracts_the_user_and_cleans_the_nickname():
    event = normalize(tm.comment("fancy_user", "hola", nickname="𝓕𝓪𝓷𝓬𝔂\u202e"))
    assert event.user_unique_id == "fancy_user"
    assert event.user_id.isdigit()
    assert event.user_nickname == "Fancy"
    assert event.user_nickname_raw == "𝓕𝓪𝓷𝓬𝔂\u202e"


def test_it_keeps_the_comment_raw_and_clean():
    event = normalize(tm.comment("maria", "hola\t\tmundo\x00"))
    assert event.event_data["comment"] == "hola mundo"
    assert event.event_data["comment_raw"] == "hola\t\tmundo\ufffd"  # NUL cannot be stored by PostgreSQL


def test_it_records_the_gift_fields_services_use():
    event = normalize(tm.gift("juan", name="Rose", gift_id=5655, diamonds=1, repeat_count=3, repeat_end=False))
    assert event.event_data["gift"] == {"id": 5655, "name": "Rose", "diamond_count": 1, "streakable": True}
    assert event.event_data["repeat_count"] == 3
    assert event.streakable and not event.streak_end
    assert event.repeat_count == 3


def test_it_treats_a_non_combo_gift_as_complete():
    event = normalize(tm.gift("rich", name="Galaxy", gift_id=11046, diamonds=1000, streakable=False, repeat_end=False))
    assert not event.streakable
    assert event.streak_end
    assert event.event_data["diamonds_total"] == 1000


def test_it_records_like_counts():
    event = normalize(tm.like("ana", count=15, total=900))
    assert event.event_data == {"count": 15, "room_total": 900}


def test_it_keeps_the_message_id_and_the_frame_time():
    event = normalize(tm.comment("maria", "hola", msg_id=123456), frame_sent_ms=1_700_000_000_000)
    assert event.msg_id == 123456
    assert event.frame_sent_ms == 1_700_000_000_000


def test_it_keeps_a_huge_unmodelled_event_as_its_keys_and_the_start_of_its_raw_payload():
    event, payload = tm.barrage("banner", "x" * 100_000)
    data = normalize(event, payload=payload).event_data
    assert data["fields_truncated"] and data["keys"] == ["content"]
    assert data["payload_truncated"] and data["payload_bytes"] == len(payload)
    assert len(data["payload_b64"]) == MAX_GENERIC_JSON
    assert base64.b64decode(data["payload_b64"]) == payload[:MAX_RAW_PAYLOAD]


def test_it_tells_a_gift_for_the_host_from_one_for_a_guest():
    host = Host("@Streamer")
    assert recipient_of(tm.gift("fan"), host) == {"id": "", "unique_id": "", "nickname": "", "is_host": True}
    named = recipient_of(tm.gift("fan", to_user="streamer"), host)
    assert named["is_host"] and named["unique_id"] == "streamer"
    assert not recipient_of(tm.gift("fan", to_user="guest"), host)["is_host"]
    # Named by id only (to_member_id): the host once its id is known from a gift naming it.
    assert recipient_of(tm.gift("fan", to_member_id=named["id"]), host)["is_host"]
    assert not recipient_of(tm.gift("fan", to_member_id="123"), host)["is_host"]
    # Without the streamer's handle every gift counts as the host's.
    assert recipient_of(tm.gift("fan", to_user="guest"), Host())["is_host"]


def recipient_of(event, host):
    return normalize(event, host=host).event_data["to_user"]
