"""A local TikTok LIVE simulator (a test fake, never imported by product code).

It speaks what the real TikTokLive client calls: the live page and room API
(room id lookup), ``room/check_alive`` (live check), the sign server's
``/webcast/fetch`` (the first ``ProtoMessageFetchResult`` and the push-server
address) and the webcast push WebSocket (``WebcastPushFrame`` with gzip, acks,
heartbeats, ``im_enter_room``). Scenario messages are built with TikTokLive's
own protobuf classes. Entry point: ``scripts/tiktok_simulator.py``.
"""
