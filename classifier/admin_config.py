"""django.contrib.admin's app, whose site lets in only staff whose session gave a two-factor code.

Its own module: an app config module is imported before the models are, and classifier.apps
may declare only the classifier's own config.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class TwoFactorAdminConfig(AdminConfig):
    default_site = "classifier.two_factor_gate.VerifiedAdminSite"
