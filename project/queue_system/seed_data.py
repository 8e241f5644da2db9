"""What ``populate_initial_data`` creates: the seeds' services and their event tables."""

from __future__ import annotations

from project.moderation.settings import DESCRIPTIONS as MODERATION_KEYS

CONFIG_KEYS: dict[str, str] = {
    "tiktok_user": "TikTok username (without @) of the streamer whose live is captured.",
    "sign_api_key": "Sign-server (Euler Stream) API key: a higher connection rate limit (secret).",
    "tiktok_session_id": "A logged-in TikTok sessionid cookie, for age-restricted or private lives (secret).",
    "tiktok_target_idc": "The tt-target-idc cookie of that session, e.g. useast2a (needed with tiktok_session_id).",
    "tiktok_http_proxy": "Proxy for TikTok's web requests, e.g. http://user:password@host:3128 (secret).",
    "tiktok_ws_proxy": "Proxy for the live's WebSocket; empty = tiktok_http_proxy (secret).",
    "tiktok_room_id": "Connect to this room id without reading the streamer's page (when the page is blocked).",
    "elevenlabs_api": "ElevenLabs API key (secret).",
    "elevenlabs_voice_id": "ElevenLabs voice id used for TTS.",
    "llm_url": "OpenAI-compatible chat completions URL, e.g. https://api.deepseek.com/v1/chat/completions",
    "llm_key": "API key of the LLM endpoint (secret).",
    "llm_model": "Model name, e.g. deepseek-chat.",
    "llm_system_prompt": "System prompt for chat replies.",
    "heygen_api_key": "HeyGen API key (secret).",
    "heygen_avatar_id": "HeyGen streaming avatar id.",
    "elevenlabs_agent_id": "ElevenLabs Conversational AI agent id.",
    "elevenlabs_base_url": "ElevenLabs API URL; empty = ELEVENLABS_BASE_URL or https://api.elevenlabs.io",
    "elevenlabs_model_id": "ElevenLabs TTS model; empty = eleven_multilingual_v2 (1 credit per character).",
    "elevenlabs_output_format": "TTS audio format: wav_<rate>, pcm_<rate> or mp3_<rate>_<kbps>; empty = wav_22050.",
    "elevenlabs_session_char_cap": "Most TTS characters per live session; empty = 20000, 0 = no cap.",
    "elevenlabs_api_requests_per_minute": "Most /api/elevenlabs/ requests (tts, voices) a minute; empty = 30, "
    "0 = no cap.",
    "elevenlabs_cache_max_mb": "Size cap of the TTS audio cache (media/elevenlabs/) in MB; least recently used "
    "phrases are deleted past it; empty = 500.",
    "api_token": "Token for the HTTP API (Authorization: Bearer <token>); empty = staff login only (secret).",
    "llm_reply_cooldown_seconds": "LLM service: at most one reply per viewer per this many seconds; empty = 60.",
    "llm_max_tokens": "LLM service: max_tokens of each reply; empty = 120.",
    "llm_max_reply_characters": "LLM service: replies are cut to this length (TTS cost); empty = 300.",
    "llm_speak_replies": "LLM service: true to speak replies through ElevenLabs; empty = false.",
    "llm_prompt_comment": "LLM prompt for comments; placeholders {user} {comment}; empty = built-in.",
    "llm_prompt_gift": "LLM prompt for gifts; placeholders {user} {gift} {count} {diamonds}; empty = built-in.",
    "llm_prompt_follow": "LLM prompt for follows; placeholder {user}; empty = built-in.",
    "avatar_access_token": "Token a browser must give the avatar server as ?token= (secret).",
    "avatar_max_sessions": "Most avatar conversations the avatar server runs at once (default 1).",
    "avatar_idle_seconds": "Idle seconds before the avatar service stops a HeyGen session it opened (default 60).",
    "avatar_gift_template": "What the avatar says for a gift; {user}, {gift}, {count}. Empty: a Spanish default.",
    "avatar_follow_template": "What the avatar says for a follow; {user}. Empty: a Spanish default.",
    "heygen_base_url": "HeyGen API base URL; empty means https://api.heygen.com.",
    "overlays_token": "Token of the OBS overlay URL (/overlays/?token=…); made on first view of Overlays › OBS "
    "overlay URL in the admin (secret).",
    "avatar_reply_cooldown_seconds": "Avatar: at most one LLM answer per viewer per this many seconds; empty = 60.",
    "avatar_max_tokens": "Avatar: max_tokens of each LLM answer; empty = 120.",
    **MODERATION_KEYS,
}

# (event_type, priority, discardable): the seeds' tables, plus Share and Join
# as discardable events below Comment.
DINOCHROME_EVENTS = [
    ("GiftEvent", 10, False),
    ("SubscribeEvent", 9, False),
    ("FollowEvent", 8, False),
    ("CommentEvent", 6, True),
    ("ShareEvent", 5, True),
    ("LikeEvent", 3, True),
    ("JoinEvent", 2, True),
]
OVERLAYS_EVENTS = [
    ("GiftEvent", 10, False),
    ("SubscribeEvent", 8, False),
    ("FollowEvent", 7, False),
    ("CommentEvent", 5, True),
    ("ShareEvent", 4, True),
    ("LikeEvent", 2, True),
    ("JoinEvent", 1, True),
]
# The avatar says one thing at a time: chat is shed early (small queue), thanks never.
AVATAR_EVENTS = [
    ("GiftEvent", 10, False),
    ("FollowEvent", 8, False),
    ("CommentEvent", 5, True),
]

# The LLM bot answers what deserves an answer; stale chat is shed first.
LLM_EVENTS = [
    ("GiftEvent", 10, False),
    ("FollowEvent", 8, False),
    ("CommentEvent", 6, True),
]

SERVICES = [
    {
        "slug": "dinochrome",
        "name": "DinoChrome",
        "service_class": "project.services.dinochrome.services.DinoChromeService",
        "mode": "SYNC",
        "concurrency": 1,
        "max_queue_size": 50,
        "is_active": True,
        "events": DINOCHROME_EVENTS,
    },
    {
        "slug": "overlays",
        "name": "Overlays",
        "service_class": "project.services.overlays.services.OverlaysService",
        "mode": "ASYNC",
        "concurrency": 8,
        "max_queue_size": 100,
        "is_active": True,
        "events": OVERLAYS_EVENTS,
    },
    {
        "slug": "llm",
        "name": "LLM auto-reply",
        "service_class": "project.integrations.llm.services.LLMService",
        "mode": "SYNC",
        "concurrency": 1,
        "max_queue_size": 20,
        # Off until an LLM endpoint is configured (Config llm_url, llm_model, llm_key).
        "is_active": False,
        "events": LLM_EVENTS,
    },
    {
        "slug": "avatar",
        "name": "Avatar",
        "service_class": "project.services.avatar.services.AvatarService",
        "mode": "SYNC",
        "concurrency": 1,
        "max_queue_size": 10,
        # Inactive until HeyGen is configured: an active service without keys would fail every event.
        "is_active": False,
        "events": AVATAR_EVENTS,
    },
]
