from django.urls import path

from project.services.dinochrome import views

urlpatterns = [
    path("", views.game, name="dino-game"),
]
