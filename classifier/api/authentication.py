from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from classifier.tokens import ApiToken


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, checked against the stored digests (knox parses the header).

    Unlike knox's own check, an expired token is refused with its own message and kept until its
    user gets a new token (ApiToken.objects.issue), so a client is told every time why it fails;
    and the use is recorded (at most once a minute) instead of sweeping the user's other tokens on
    every request.
    """

    def authenticate_credentials(self, key: bytes):
        try:
            token = ApiToken.objects.matching(key.decode("utf-8"))
        except UnicodeDecodeError:
            token = None
        if token is None:
            raise AuthenticationFailed(_("Invalid token."))
        if token.has_expired():
            raise AuthenticationFailed(
                f"Token expired at {token.expiry:%Y-%m-%d %H:%M} UTC. "
                "Get a new one: POST your username and password to /api/v1/auth/token/."
            )
        token.record_use()
        return self.validate_user(token)


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the API docs describe it: the same `tokenAuth` scheme that DRF's tokens had."""

    target_class = ApiTokenAuthentication
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
