from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from project.env import env_str


class Command(BaseCommand):
    help = "Create the admin user (DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD) if no superuser exists."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = env_str("DJANGO_SUPERUSER_USERNAME", "admin")
        password = env_str("DJANGO_SUPERUSER_PASSWORD", "admin")
        User.objects.create_superuser(username, f"{username}@localhost", password)
        self.stdout.write(f"Created superuser '{username}' (change its password in the admin)")
