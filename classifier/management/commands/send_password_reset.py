from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.core.management.base import BaseCommand, CommandError
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode


def password_reset_link(user) -> str:
    """A link that sets the user's password once; Django's token dies with the password or PASSWORD_RESET_TIMEOUT."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    path = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})
    return f"{settings.SITE_URL}{path}"


class Command(BaseCommand):
    help = (
        "E-mail a user a one-time link to set their password (valid PASSWORD_RESET_HOURS hours). "
        "Without EMAIL_HOST the e-mail, link included, is printed here instead of sent."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"{username} is not active: activate the account first.")
        if not user.email:
            raise CommandError(f"{username} has no e-mail address: set one in the admin first.")
        body = render_to_string(
            "registration/password_reset_email.txt",
            {"user": user, "link": password_reset_link(user), "valid_hours": settings.PASSWORD_RESET_TIMEOUT // 3600},
        )
        send_mail("Set your lesionsite password", body, None, [user.email])
        self.stdout.write(f"Sent {username} a link to set a password, to {user.email}.")
