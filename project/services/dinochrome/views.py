"""The /dino/ page: the runner game that the DinoChrome service drives through Selenium."""

from __future__ import annotations

from pathlib import Path

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

ASSETS = Path(__file__).resolve().parent / "static" / "dinochrome"


def game(request: HttpRequest) -> HttpResponse:
    # Script and style are inlined: the page then works from gunicorn without a static
    # file server, and the browser that shows it on stream loads a single document.
    context = {
        "style": (ASSETS / "game.css").read_text(encoding="utf-8"),
        "script": (ASSETS / "game.js").read_text(encoding="utf-8"),
    }
    return render(request, "dinochrome/game.html", context)
