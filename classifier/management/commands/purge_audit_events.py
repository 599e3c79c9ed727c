from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.audit import AuditEvent


class Command(BaseCommand):
    help = (
        "Delete the audit events older than AUDIT_RETENTION_DAYS (the setting; default 3650 days). "
        "The only way events are ever deleted: run it daily, e.g. from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only say how many events would be deleted")

    def handle(self, *args, dry_run: bool, **options):
        days = settings.AUDIT_RETENTION_DAYS
        if dry_run:
            count = AuditEvent.objects.older_than(days).count()
            self.stdout.write(f"{count} audit events are older than {days} days; none deleted (--dry-run).")
            return
        count = AuditEvent.objects.purge_older_than(days)
        self.stdout.write(f"Deleted {count} audit events older than {days} days.")
