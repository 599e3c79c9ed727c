"""The one Celery app, configured from Django settings (the CELERY_ namespace)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lesionsite.settings")

app = Celery("lesionsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The tasks live in the worker package, not in an installed app.
app.autodiscover_tasks(["worker"])
