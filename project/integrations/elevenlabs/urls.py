from django.urls import path

from project.integrations.elevenlabs import views

app_name = "elevenlabs"

urlpatterns = [
    path("tts", views.text_to_speech, name="tts"),
    path("voices", views.voices, name="voices"),
    path("audio/<str:name>", views.audio, name="audio"),
]
