import os

from django.core import checks
from django.core.management.base import SystemCheckError
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()

# gunicorn runs no system checks of its own: refuse to serve with an unsafe configuration
# (tte.E001-E004: no secret key, change-me passwords, Flower without one) as manage.py does.
if serious := [message for message in checks.run_checks(tags=[checks.Tags.security]) if message.is_serious()]:
    raise SystemCheckError("\n".join(["The configuration is unsafe:", *(str(m) for m in serious)]))
