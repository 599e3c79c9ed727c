from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from classifier.lib.demo_pictures import lesion_picture
from classifier.models import Clinic, Lesion, Membership, Patient
from classifier.uploads import store_uploads


@dataclass(frozen=True)
class DemoAccount:
    role: str  # as the login box names it
    username: str
    password: str
    is_staff: bool
    clinic_role: str  # the account's role in the demo clinic


# Local demo accounts only: `make run` creates them on a laptop; production never runs this.
DEMO_ACCOUNTS = [
    DemoAccount("clinician", "clinician", "lesionsite-clinician", False, Membership.Role.CLINICIAN),
    DemoAccount("manager", "manager", "lesionsite-manager", False, Membership.Role.MANAGER),
    DemoAccount("admin", "admin", "lesionsite-admin", True, Membership.Role.CLINICIAN),
]
DEMO_CLINIC = "Demo clinic"
DEMO_PATIENT = "DEMO-001"
DEMO_LESION = "L1, left scapula"
# The demo lesion's visits: months before today, and how much it has grown by then.
DEMO_VISITS = [(12, 0.0), (6, 0.35), (0, 0.8)]
DEMO_PICTURE_SEED = 18


class Command(BaseCommand):
    help = (
        "Create (or reset) the demo accounts for local use — a clinician and a clinic manager of a demo clinic, "
        "and an admin — with a demo patient whose lesion has three generated pictures taken months apart, "
        "and print how to log in."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        clinic, _ = Clinic.objects.get_or_create(name=DEMO_CLINIC)
        users = {}
        for account in DEMO_ACCOUNTS:
            user, _ = User.objects.get_or_create(username=account.username)
            user.set_password(account.password)
            user.is_staff = user.is_superuser = account.is_staff
            user.save()
            membership, _ = Membership.objects.update_or_create(
                user=user, clinic=clinic, defaults={"role": account.clinic_role}
            )
            membership.make_current()
            users[account.username] = user
        pictures = self._demo_patient(clinic, users["clinician"])
        # `make run` prints the accounts again, last, once the site answers (runlocal's login box).
        self.stdout.write(
            f"Demo accounts ready: {', '.join(account.username for account in DEMO_ACCOUNTS)}, in {DEMO_CLINIC}; "
            f"demo patient {DEMO_PATIENT}: {pictures}."
        )

    def _demo_patient(self, clinic: Clinic, clinician) -> str:
        """The demo patient with a followed lesion; its pictures are uploaded once, as a clinician would."""
        with transaction.atomic():
            patient, _ = Patient.objects.get_or_create(
                clinic=clinic,
                reference=DEMO_PATIENT,
                defaults={"year_of_birth": 1968, "sex": "female", "skin_type": "II", "created_by": clinician,
                          "note": "A demo patient: the pictures are drawn by lesionsite, not of a person."},
            )  # fmt: skip
            lesion, _ = Lesion.objects.get_or_create(
                patient=patient,
                label=DEMO_LESION,
                defaults={"site": "back", "side": "left", "map_view": "back", "map_x": 0.38, "map_y": 0.3,
                          "created_by": clinician},
            )  # fmt: skip
        if lesion.images.exists():
            return f"its lesion already has {lesion.images.count()} pictures"
        now = timezone.now()
        files = [
            SimpleUploadedFile(
                f"demo-visit-{index + 1}.jpg",
                lesion_picture(DEMO_PICTURE_SEED, growth, taken_at=timezone.localtime(now - timedelta(days=30 * ago))),
            )
            for index, (ago, growth) in enumerate(DEMO_VISITS)
        ]
        # The normal upload path: each picture's date is read from its EXIF, and the
        # predictions are queued (the sweep sends them if no worker is up yet).
        lesion.patient = patient
        store_uploads(clinician, files, clinic=clinic, lesion=lesion)
        return f"{len(files)} pictures of its lesion queued for prediction"


def login_box(url: str, accounts=DEMO_ACCOUNTS) -> str:
    """The address and the demo accounts in a box, for the end of `make run`'s start-up output."""
    lines = [f"lesionsite is running at {url}", ""]
    lines += [f"{account.role:<10} username {account.username:<10} password {account.password}" for account in accounts]
    lines += ["", f"The clinician and the manager work in {DEMO_CLINIC}; open patient {DEMO_PATIENT}."]
    lines += ["The manager and the admin set up two-factor sign-in (an authenticator app) at first sign-in."]
    lines += ["Ctrl-C stops everything. Research tool, not a diagnosis."]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 2) + "+"
    return "\n".join([rule, *(f"| {line:<{width}} |" for line in lines), rule])
