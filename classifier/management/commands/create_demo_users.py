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
        # `make run` prints the accounts again, last, once the site answers (runlocal's login box).
        self.stdout.write(f"Demo accounts ready: {', '.join(name for name, _, _ in DEMO_ACCOUNTS)}.")


def login_box(url: str, accounts=DEMO_ACCOUNTS) -> str:
    """The address and the demo accounts in a box, for the end of `make run`'s start-up output."""
    lines = [f"lesionsite is running at {url}", ""]
    lines += [f"{'admin' if admin else 'clinician':<10} username {name:<10} password {password}"
              for name, password, admin in accounts]  # fmt: skip
    lines += ["", "Ctrl-C stops everything. Research tool, not a diagnosis."]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line:<{width}} |" for line in lines), rule])
