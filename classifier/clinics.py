"""Clinics: the teams that share patients, and who belongs to which with what role.

A user may belong to several clinics and works in one at a time, their current one
(classifier.access resolves it for each request). Clinic managers manage the members
and read the audit log; platform admins (staff) manage clinics in the Django admin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone


class MembershipError(ValueError):
    """A change of members the clinic refuses; the message says why, to be shown as it is."""


class Clinic(models.Model):
    """A team: its members share its patients, lesions and images; nobody else sees them."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        return ("clinic", self.pk, None, self.pk)

    def add_member(self, user, role: str = "clinician") -> Membership:
        """Make ``user`` a member with ``role``; their current clinic becomes this one if they had none."""
        if role not in Membership.Role.values:
            raise MembershipError(f"Unknown role {role!r}: choose one of {', '.join(Membership.Role.values)}.")
        with transaction.atomic():
            if Membership.objects.filter(clinic=self, user=user).exists():
                raise MembershipError(f"{user.get_username()} is already a member of {self.name}.")
            has_current = Membership.objects.filter(user=user, is_current=True).exists()
            return Membership.objects.create(clinic=self, user=user, role=role, is_current=not has_current)


class MembershipQuerySet(models.QuerySet):
    def managers(self) -> MembershipQuerySet:
        return self.filter(role=Membership.Role.MANAGER)


class Membership(models.Model):
    """A user in a clinic, with a role; ``is_current`` marks the clinic the user works in now."""

    class Role(models.TextChoices):
        CLINICIAN = "clinician", "Clinician"
        MANAGER = "manager", "Clinic manager"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CLINICIAN)
    is_current = models.BooleanField(
        default=False, help_text="The clinic the user works in now; pages show this clinic's records."
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["clinic__name", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_user_and_clinic"),
            models.UniqueConstraint(fields=["user"], condition=Q(is_current=True), name="one_current_clinic_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.clinic} ({self.get_role_display().lower()})"

    @property
    def is_manager(self) -> bool:
        return self.role == self.Role.MANAGER

    @property
    def audit_subject(self) -> tuple[str, int, int | None, int | None]:
        return ("membership", self.pk, None, self.clinic_id)

    def make_current(self) -> None:
        """Work in this clinic from now on (the header's clinic switcher)."""
        with transaction.atomic():
            Membership.objects.filter(user_id=self.user_id, is_current=True).exclude(pk=self.pk).update(
                is_current=False
            )
            Membership.objects.filter(pk=self.pk).update(is_current=True)
        self.is_current = True

    def change_role(self, role: str) -> None:
        """A new role; the clinic's last manager cannot stop being one."""
        if role not in self.Role.values:
            raise MembershipError(f"Unknown role {role!r}: choose one of {', '.join(self.Role.values)}.")
        with transaction.atomic():
            if role != self.Role.MANAGER:
                self._refuse_if_last_manager("change the role of")
            self.role = role
            self.save(update_fields=["role"])

    def remove(self) -> None:
        """Leave the clinic; the clinic's last manager cannot be removed."""
        with transaction.atomic():
            self._refuse_if_last_manager("remove")
            self.delete()

    def _refuse_if_last_manager(self, verb: str) -> None:
        # Locked, so two managers demoting each other at once cannot leave the clinic with none.
        managers = list(Membership.objects.select_for_update().filter(clinic_id=self.clinic_id, role=self.Role.MANAGER))
        if [m.pk for m in managers] == [self.pk]:
            raise MembershipError(
                f"{self.user.get_username()} is the only manager of {self.clinic.name}: "
                f"make another member a manager before you {verb} them."
            )
