from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.api.authentication import ApiTokenAuthentication
from classifier.lockout import lockout_response
from classifier.tokens import NAME_MAX_LENGTH, ApiToken
from classifier.two_factor import token_refusal


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(write_only=True)
    password = serializers.CharField(write_only=True, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=NAME_MAX_LENGTH,
        help_text="What the token is for (a device or script), shown in your list of tokens.",
    )

    def validate(self, attrs):
        # The request goes to authenticate() so that django-axes counts the attempt.
        user = authenticate(request=self.context["request"], username=attrs["username"], password=attrs["password"])
        if user is None:
            raise serializers.ValidationError("Unable to log in with provided credentials.", code="authorization")
        attrs["user"] = user
        return attrs


ISSUED = inline_serializer(
    "IssuedToken",
    {
        "token": serializers.CharField(help_text="Send it as `Authorization: Token <token>`. Shown only this once."),
        "expiry": serializers.DateTimeField(),
        "name": serializers.CharField(),
    },
)


def issued(token: ApiToken, key: str) -> dict:
    return {"token": key, "expiry": serializers.DateTimeField().to_representation(token.expiry), "name": token.name}


class TokenView(APIView):
    """POST username and password (and a `name` for the device) for a new API token and its expiry.

    Each POST issues another token: one per device, each revoked on its own. After too many
    failures, 429 with how long sign-in is locked.
    """

    # Only the username and password count here: a stale token still in the client's header must
    # not stop it from getting a new one.
    authentication_classes = ()
    permission_classes = ()

    @extend_schema(request=TokenRequestSerializer, responses={200: ISSUED})
    def post(self, request, *args, **kwargs):
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        valid = serializer.is_valid()
        # axes flags a lock on this DRF request, which its middleware (looking at the Django request
        # underneath) never sees: answer it here.
        if getattr(request, "axes_locked_out", False):
            return lockout_response(request)
        if not valid:
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        user = serializer.validated_data["user"]
        refusal = token_refusal(request, user)
        if refusal is not None:
            return refusal
        # What login() would send: axes forgets the account's failures, Django records last_login.
        user_logged_in.send(sender=user.__class__, request=request, user=user)
        token, key = ApiToken.objects.issue(user, name=serializer.validated_data.get("name", ""))
        return Response(issued(token, key))


class RevokeTokenView(APIView):
    """DELETE revokes the token you authenticate with: it stops working at once; your other tokens go on."""

    authentication_classes = [ApiTokenAuthentication]  # a session has no token to revoke
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevokeAllTokensView(APIView):
    """DELETE revokes every API token of yours, this one included (a lost device, a leaked key)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        ApiToken.objects.revoke_all(request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
