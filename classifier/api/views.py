from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response

from classifier.api.filters import ImageFilter, PredictionFilter
from classifier.api.serializers import (
    ActivateSerializer,
    ConfirmationRequiredSerializer,
    ImageSerializer,
    LabelledImageSerializer,
    LabelSerializer,
    ModelVersionSerializer,
    NotEnoughDataSerializer,
    OperatingPointSerializer,
    PredictionSerializer,
    TrainingJobSerializer,
    UploadErrorSerializer,
    UploadResultSerializer,
    UploadSerializer,
)
from classifier.api.throttling import UploadRateThrottle
from classifier.history import annotate_latest_prediction
from classifier.models import (
    ActivationNeedsConfirmation,
    JobConflict,
    LesionImage,
    ModelActivation,
    ModelVersion,
    Prediction,
    TrainingJob,
)
from classifier.training_data import NotEnoughData
from classifier.uploads import UploadRefused, UploadRejected, store_uploads


class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your uploaded images, newest first. POST uploads one or more images for classification.

    The list's `status`, `top_class`, `is_malignant` and `is_out_of_distribution` are those of each
    image's latest prediction.
    """

    serializer_class = ImageSerializer
    parser_classes = [MultiPartParser, FormParser]
    filterset_class = ImageFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return LesionImage.objects.none()
        return annotate_latest_prediction(LesionImage.objects.visible_to(self.request.user)).select_related("batch")

    def get_throttles(self):
        return [UploadRateThrottle()] if self.action == "create" else super().get_throttles()

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: UploadResultSerializer,
            200: OpenApiResponse(UploadResultSerializer, description="Every file had been uploaded before."),
            400: OpenApiResponse(
                UploadErrorSerializer,
                description="Nothing was stored: `errors` lists every refused file with its reason "
                "(`detail`, `code`, `file` describe the first one), or the request itself was refused "
                "(`no_file`). A request with a too-large file and another refused file is a 400.",
            ),
            413: OpenApiResponse(
                UploadErrorSerializer,
                description="Nothing was stored: more than UPLOAD_MAX_FILES files (`too_many_files`), or every "
                "refused file is too large (`too_large`, each listed in `errors`), so sending fewer bytes helps.",
            ),
        },
    )
    def create(self, request, *args, **kwargs):
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = {key: form.validated_data.get(key) for key in ("age", "sex", "site")}
        try:
            batch, stored = store_uploads(request.user, form.validated_data["file"], **fields)
        except (UploadRefused, UploadRejected) as exc:
            return Response(exc.as_dict(), status=exc.http_status)
        body = UploadResultSerializer(
            {
                "batch": batch.pk if batch else None,
                "images": [
                    {
                        "id": item.image.pk,
                        "created": item.created,
                        "already_uploaded_at": None if item.created else item.image.created_at,
                        "original_filename": item.image.original_filename,
                        "ignored_fields": list(item.ignored_fields),
                        "prediction": item.prediction,
                    }
                    for item in stored
                ],
            },
            context={"request": request},
        ).data
        any_created = any(item.created for item in stored)
        return Response(body, status=status.HTTP_201_CREATED if any_created else status.HTTP_200_OK)

    @extend_schema(request=LabelSerializer, responses={200: LabelledImageSerializer})
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsAdminUser],
        parser_classes=[JSONParser, FormParser, MultiPartParser],
    )
    def label(self, request, pk=None):
        """Admins: set the image's confirmed diagnosis (one of the seven classes) and how it was confirmed."""
        image = self.get_object()
        form = LabelSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        image.set_label(data["diagnosis"], data["method"], data["note"], by=request.user)
        return Response(LabelledImageSerializer(image).data)


class PredictionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Predictions on your images, newest first; filter by `batch`, `image`, the reading, dates, a search."""

    serializer_class = PredictionSerializer
    filterset_class = PredictionFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema is built without a user
            return Prediction.objects.none()
        return Prediction.objects.visible_to(self.request.user)


class TrainingJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Admins: retraining jobs. POST {"epochs": 1, "start_from": "active" | "imagenet"} starts one."""

    serializer_class = TrainingJobSerializer
    permission_classes = [IsAdminUser]
    queryset = TrainingJob.objects.select_related("requested_by", "base_version", "result_version")

    @extend_schema(responses={201: TrainingJobSerializer, 400: NotEnoughDataSerializer, 409: UploadErrorSerializer})
    def create(self, request, *args, **kwargs):
        form = self.get_serializer(data=request.data)
        form.is_valid(raise_exception=True)
        options = {key: form.validated_data[key] for key in ("epochs", "start_from") if key in form.validated_data}
        try:
            job = TrainingJob.start(request.user, **options)
        except JobConflict as exc:
            return Response({"detail": str(exc), "code": "job_running"}, status=status.HTTP_409_CONFLICT)
        except NotEnoughData as exc:
            body = {"detail": str(exc), "code": "not_enough_data", "counts": exc.counts, "minimum": exc.minimum}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        except ValueError as exc:
            return Response({"detail": str(exc), "code": "invalid"}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TrainingJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued job at once, or a running one at its next epoch. Nothing served changes."""
        job = self.get_object()
        job.request_cancel()
        return Response(self.get_serializer(job).data)


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Admins: the registered model versions with their held-out metrics; activate one (or roll back)."""

    serializer_class = ModelVersionSerializer
    permission_classes = [IsAdminUser]
    queryset = ModelVersion.objects.all()

    @extend_schema(
        request=ActivateSerializer, responses={200: ModelVersionSerializer, 409: ConfirmationRequiredSerializer}
    )
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        """Make this version serve new predictions; workers switch on their next task.

        A version that failed the quality gate, or was never gated and would replace the
        active one, answers 409 with the reasons unless the body has {"confirm": true};
        every activation is recorded (the version's `activations`)."""
        version = self.get_object()
        form = ActivateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            version.activate_confirmed(
                request.user, via=ModelActivation.Via.API, confirmed=form.validated_data["confirm"]
            )
        except ActivationNeedsConfirmation as exc:
            body = {"detail": str(exc), "code": "confirmation_required", "reasons": exc.reasons}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(version).data)

    @extend_schema(request=OperatingPointSerializer, responses={200: ModelVersionSerializer})
    @action(detail=True, methods=["post"], url_path="operating-point")
    def operating_point(self, request, pk=None):
        """Flag new predictions at one of the card's operating points (earlier ones keep their threshold)."""
        version = self.get_object()
        form = OperatingPointSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            version.choose_operating_point(form.validated_data["target_sensitivity"], by=request.user)
        except ValueError as exc:
            raise ValidationError({"target_sensitivity": [str(exc)]}) from exc
        return Response(self.get_serializer(version).data)
