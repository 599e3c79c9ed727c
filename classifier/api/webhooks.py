"""The webhooks API: a user's endpoints (`/api/v1/webhooks/`) and each one's delivery log.

Per user, not per clinic: another user's endpoint answers 404 like a missing one.
"""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from classifier.clinics import Clinic
from classifier.lib.webhook_signature import new_secret
from classifier.lib.webhook_targets import TargetRefused, check_target
from classifier.webhook_delivery import target_rules
from classifier.webhooks import Event, WebhookDelivery, WebhookEndpoint

NOT_YOURS = OpenApiResponse(description="Another user's endpoint: the same answer as an id that does not exist.")
MAX_ENDPOINTS_PER_USER = 10  # each is sent every event of its clinics: more would multiply the platform's traffic


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.CharField(
        max_length=500, help_text="Where events are POSTed: https, at a public address (checked when registered "
        "and before every delivery). It cannot be changed: register a new endpoint instead.",
    )  # fmt: skip
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Event.choices), min_length=1, help_text="The event types to be sent."
    )
    clinic = serializers.PrimaryKeyRelatedField(
        queryset=Clinic.objects.all(), allow_null=True, required=False,
        help_text="Only this clinic's events (one you belong to); empty: every clinic you belong to.",
    )  # fmt: skip
    deliveries = serializers.HyperlinkedIdentityField(view_name="api:webhook-deliveries")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "clinic", "is_active", "disabled_reason", "consecutive_failures",
                  "created_at", "deliveries"]  # fmt: skip
        read_only_fields = ["disabled_reason", "consecutive_failures", "created_at"]

    def validate_url(self, value: str) -> str:
        if self.instance is not None and value != self.instance.url:
            raise serializers.ValidationError("An endpoint's URL cannot be changed: register a new endpoint.")
        try:
            check_target(value, **target_rules())
        except TargetRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_events(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate_clinic(self, value: Clinic | None) -> Clinic | None:
        user = self.context["request"].user
        if value is not None and not value.memberships.filter(user=user).exists():
            raise serializers.ValidationError(f"You are not a member of clinic {value.pk}.")
        return value


class NewWebhookEndpointSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="The key that signs every event (Lesionsite-Signature). Shown only in this answer."
    )

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    state = serializers.ChoiceField(choices=WebhookDelivery.State.choices, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_type", "event_id", "state", "attempts", "last_status_code", "last_error",
                  "delivered_at", "next_attempt_at", "created_at", "payload"]  # fmt: skip
        read_only_fields = fields


@extend_schema_view(
    create=extend_schema(responses={201: NewWebhookEndpointSerializer}),
    partial_update=extend_schema(
        description="Change the events sent or the clinic, or enable an endpoint again after it was disabled "
        "(is_active=true also clears its failures)."
    ),
)
class WebhookEndpointViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your webhook endpoints: URLs that are POSTed a signed JSON event when a prediction, or the last
    prediction of a multi-file upload, finishes. The secret is shown once, when the endpoint is created."""

    serializer_class = WebhookEndpointSerializer
    parser_classes = [JSONParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return WebhookEndpoint.objects.none()
        return WebhookEndpoint.objects.filter(user=self.request.user)

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            if WebhookEndpoint.objects.select_for_update().filter(user=request.user).count() >= MAX_ENDPOINTS_PER_USER:
                raise serializers.ValidationError(
                    {"url": [f"You have {MAX_ENDPOINTS_PER_USER} webhook endpoints already: delete one first."]}
                )
            endpoint = serializer.save(user=request.user, secret=new_secret())
        shown_once = NewWebhookEndpointSerializer(endpoint, context=self.get_serializer_context())
        return Response(shown_once.data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        enabling = serializer.validated_data.get("is_active") and not serializer.instance.is_active
        endpoint = serializer.save()
        if enabling:
            endpoint.enable()

    @extend_schema(
        responses={200: WebhookDeliverySerializer(many=True), 404: OpenApiResponse(description="Not yours.")}
    )
    @action(detail=True, methods=["get"], url_path="deliveries", url_name="deliveries")
    def deliveries(self, request, pk=None):
        """The endpoint's deliveries, newest first: each event, its attempts, the last status code or error."""
        page = self.paginate_queryset(self.get_object().deliveries.all())
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
