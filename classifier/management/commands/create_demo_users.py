from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

# Local demo accounts only: `make run` creates them on a laptop; production never runs this.
DEMO_ACCOUNTS = [
    ("clinician", "lesionsite-clinician", False),
    ("admin", "lesionsite-admin", True),
]


class Command(BaseCommand):
    help = "Create (or reset) a demo clinician and a demo admin for local use, and print how to log in."

    def handle(self, *args, **options):
        User = get_user_model()
        for username, password, is_admin in DEMO_ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username)
            user.set_password(password)
            user.is_staff = user.is_superuser = is_admin
            user.save()
            role = "admin" if is_admin else "clinician"
            self.stdout.write(f"Demo {role}: username '{username}', password '{password}'")
