"""The live part of the control room: the page, its event stream and the service actions."""

from django.urls import path

from project.control import room_views

urlpatterns = [
    path("", room_views.room, name="control-room"),
    path("live/snapshot.json", room_views.room_snapshot_json, name="control-room-snapshot"),
    path("live/stream/", room_views.room_stream, name="control-room-stream"),
    path("services/<slug:slug>/pause/", room_views.pause, name="control-room-pause"),
    path("services/<slug:slug>/resume/", room_views.resume, name="control-room-resume"),
    path("services/<slug:slug>/skip/", room_views.skip, name="control-room-skip"),
    path("services/<slug:slug>/purge/", room_views.purge, name="control-room-purge"),
    path("services/<slug:slug>/retry/", room_views.retry, name="control-room-retry"),
]
