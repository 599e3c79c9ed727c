from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from classifier.lockout import lockout_response
from classifier.two_factor import token_refusal


class TokenView(ObtainAuthToken):
    """POST username and password for your API token, and otp (a current code) if your account uses two-factor
    sign-in. After too many failures, 429 with how long sign-in is locked."""

    def post(self, request, *args, **kwargs):
        # AuthTokenSerializer passes this DRF request to authenticate(), so django-axes counts the
        # attempt; axes flags a lock on the DRF request, which its middleware (looking at the
        # Django request underneath) never sees: answer it here.
        serializer = self.get_serializer(data=request.data)
        valid = serializer.is_valid()
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
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


class RevokeTokenView(APIView):
    """DELETE revokes the token you authenticate with: it stops working at once. POST /auth/token/ issues a new one."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
