import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from project.env import env_str


class Command(BaseCommand):
    help = (
        "Create the admin user if no superuser exists: DJANGO_SUPERUSER_USERNAME (default admin) with "
        "DJANGO_SUPERUSER_PASSWORD, or a generated password printed this once."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = env_str("DJANGO_SUPERUSER_USERNAME", "") or "admin"
        password = env_str("DJANGO_SUPERUSER_PASSWORD", "")
        user = User(username=username, email=f"{username}@localhost")
        if password:
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError(
                    f"DJANGO_SUPERUSER_PASSWORD is refused: {' '.join(exc.messages)} "
                    "Set a stronger one, or leave it empty to have one generated."
                ) from None
            User.objects.create_superuser(username, user.email, password)
            self.stdout.write(f"Created superuser '{username}' with the password in DJANGO_SUPERUSER_PASSWORD.")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username, user.email, password)
        # Shown once and stored nowhere but as the user's hash: the way back is changepassword.
        self.stdout.write(
            f"Created superuser '{username}' with the password {password}  (shown only now; "
            f"forgot it? python manage.py changepassword {username})"
        )
