"""API tokens: hashed (django-rest-knox keeps only a digest), expiring, one per device or script.

A client gets a new token on each `POST /api/v1/auth/token/` (or from the account page), named
for the device it is for; the key is shown once and never stored. The user sees each token's
name, age, expiry and last use, and revokes one or all; a password change revokes all.
"""

from __future__ import annotations

import binascii
from datetime import timedelta
from hmac import compare_digest

from django.db import models
from django.utils import timezone
from knox.crypto import hash_token
from knox.models import AbstractAuthToken, AuthTokenManager
from knox.settings import CONSTANTS

NAME_MAX_LENGTH = 100
# Last use is recorded to the minute: enough to tell a person whether a device still uses its token,
# and at most one UPDATE a minute per token instead of one per API request (a result page polls).
LAST_USE_RESOLUTION = timedelta(minutes=1)


class ApiTokenQuerySet(models.QuerySet):
    def live(self) -> ApiTokenQuerySet:
        return self.filter(expiry__gt=timezone.now())

    def matching(self, key: str) -> ApiToken | None:
        """The token whose key this is, expired or not; None for a wrong or revoked key."""
        try:
            digest = hash_token(key)
        except (TypeError, ValueError, binascii.Error):
            return None
        for token in self.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related("user"):
            if compare_digest(digest, token.digest):
                return token
        return None


class ApiTokenManager(AuthTokenManager.from_queryset(ApiTokenQuerySet)):
    def issue(self, user, name: str = "") -> tuple[ApiToken, str]:
        """A new token for one of the user's devices, and its key: the only time the key exists in clear.

        The user's expired tokens go now: they were kept until here so that a client using one is
        told it expired (not that it is unknown), and so the table holds at most one TTL's worth
        of tokens per user.
        """
        self.filter(user=user, expiry__lte=timezone.now()).delete()
        return self.create(user=user, name=name.strip())  # knox's create: expiry from REST_KNOX TOKEN_TTL

    def revoke_all(self, user) -> int:
        deleted, _ = self.filter(user=user).delete()
        return deleted


class ApiToken(AbstractAuthToken):
    # knox makes the digest the primary key; a plain id keeps the digest out of URLs and forms
    # (the account page's revoke buttons), where it is of no use to anyone.
    digest = models.CharField(max_length=CONSTANTS.DIGEST_LENGTH, unique=True)
    name = models.CharField(max_length=NAME_MAX_LENGTH, blank=True, help_text="The device or script it is for.")
    last_used = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenManager()

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name or 'API token'} of {self.user} (created {self.created:%Y-%m-%d %H:%M})"

    def has_expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()

    def record_use(self) -> None:
        now = timezone.now()
        if self.last_used is None or now - self.last_used >= LAST_USE_RESOLUTION:
            type(self).objects.filter(pk=self.pk).update(last_used=now)
            self.last_used = now


class RevokeApiTokensOnPasswordChange:
    """Listed in AUTH_PASSWORD_VALIDATORS for its `password_changed` hook, not to judge passwords.

    Django has no "password changed" signal; this hook is its documented stand-in, called after
    every save that follows `set_password()`: the password page, the one-time reset link, the admin
    and `manage.py changepassword` alike. A login that only rehashes the stored password (after a
    Django upgrade) does not call it, so tokens survive that.
    """

    def validate(self, password, user=None) -> None:
        return None

    def password_changed(self, password, user=None) -> None:
        if user is not None and user.pk is not None:
            ApiToken.objects.revoke_all(user)

    def get_help_text(self) -> str:
        return "Changing your password revokes your API tokens: each device then needs a new one."
