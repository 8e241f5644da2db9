"""Reading what the services show or say from a ``LiveEvent``.

The capture stores TikTokLive's data in ``event_data`` (``event_data["gift"]["name"]``
and ``event_data["comment"]`` as in the seeds); these readers also accept the flat
spellings older rows used, so a service never fails on a missing key — it falls back
to something sensible to show.
"""

from __future__ import annotations

from typing import Any


def _data(live_event: Any) -> dict[str, Any]:
    data = getattr(live_event, "event_data", None)
    return data if isinstance(data, dict) else {}


def _first(mapping: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def _positive_int(value: Any, default: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


def nickname(live_event: Any) -> str:
    """The cleaned nickname, else the @unique_id, else a neutral word."""
    return (
        (getattr(live_event, "user_nickname", "") or "").strip()
        or (getattr(live_event, "user_unique_id", "") or "").strip()
        or "someone"
    )


def gift_fields(live_event: Any) -> dict[str, Any]:
    """``{"name", "count", "image"}`` of a gift event; image is an http(s) URL or ""."""
    data = _data(live_event)
    gift = data.get("gift") if isinstance(data.get("gift"), dict) else {}
    flat_name = data.get("gift") if isinstance(data.get("gift"), str) else None
    name = _first(gift, "name", "gift_name") or data.get("gift_name") or flat_name or "a gift"
    image = _first(gift, "image", "image_url", "icon", "picture", "picture_url") or _first(data, "gift_image", "image")
    if isinstance(image, dict):  # TikTokLive's ImageModel: {"url_list": [...]} or {"urls": [...]}
        urls = image.get("url_list") or image.get("urls") or image.get("m_urls") or []
        image = urls[0] if urls else ""
    image = str(image or "")
    if not image.startswith(("https://", "http://")):
        image = ""
    count = (
        getattr(live_event, "repeat_count", None) or _first(gift, "repeat_count", "count") or data.get("repeat_count")
    )
    return {"name": str(name), "count": _positive_int(count), "image": image}


def gift_name(live_event: Any) -> str:
    return gift_fields(live_event)["name"]


def comment_text(live_event: Any) -> str:
    data = _data(live_event)
    return str(_first(data, "comment", "text", "content") or "")


def like_count(live_event: Any) -> int:
    data = _data(live_event)
    return _positive_int(_first(data, "count", "like_count", "likes") or getattr(live_event, "repeat_count", None))
