# One image for every process of the system (web, workers, capture, flower, avatar);
# docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Chromium + chromedriver for the DinoChrome service; pulseaudio-utils for paplay;
# espeak-ng/sox are used by the local fakes; curl for health checks.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium chromium-driver pulseaudio-utils curl nodejs npm \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app app
WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --chown=app:app . .
# The admin's styles, collected and gzipped once here; WhiteNoise serves them from gunicorn.
RUN if [ -f package.json ]; then npm install --no-audit --no-fund --omit=dev; fi \
    && python manage.py collectstatic --no-input -v 0 \
    && mkdir -p /app/media /app/staticfiles && chown -R app:app /app/media /app/staticfiles

USER 10001:10001
EXPOSE 8000
CMD ["gunicorn", "project.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", "--worker-class", "gthread", "--threads", "16", "--no-control-socket"]
